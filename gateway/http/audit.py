"""The audit log: one structured line per state change a caller makes (a scan started or
cancelled, a stream ticket issued, a session opened, a development token minted), on the
``gateway.audit`` logger at INFO.

Each line says who (``subject``, ``via`` which credential, the token's ``jti`` and ``azp``
when it has them), what (``action`` and its object: ``scan_id``, ...) and from where
(``client``, the peer address; ``request_id``, also in the ``X-Request-ID`` answer header).
It never holds a credential: no token, ticket or cookie value is passed to it, and the log
filters redact anything shaped like one all the same. The text is ``audit key=value ...``
with every string a JSON string (quoted, control characters escaped: a subject cannot forge a
line or a field, and ``via="bearer"`` is not taken for a credential by the filters); with
``logging.json: true`` the fields are the ``audit`` object of the JSON line.
"""

from __future__ import annotations

import json
import logging
from typing import Final

from aiohttp import web

from gateway.http.appkeys import PRINCIPAL, REQUEST_ID

__all__ = ["AUDIT_LOGGER", "audit"]

AUDIT_LOGGER: Final = "gateway.audit"
log = logging.getLogger(AUDIT_LOGGER)

Value = str | int | float | bool | None


def audit(request: web.Request, action: str, **details: Value) -> None:
    """Log ``action`` by the request's caller, with ``details`` (None values left out)."""
    who = request.get(PRINCIPAL)
    fields: dict[str, Value] = {
        "action": action,
        "subject": who.subject if who else None,
        "via": who.via if who else None,
        "jti": who.token_id if who else None,
        "azp": who.client_id if who else None,
        **details,
        "client": request.remote,
        "request_id": request.get(REQUEST_ID),
    }
    kept = {name: value for name, value in fields.items() if value is not None}
    # JSON values, ASCII only: strings quoted, control characters and newlines escaped.
    line = " ".join(f"{name}={json.dumps(value)}" for name, value in kept.items())
    log.info("audit %s", line, extra={"audit": kept})
