"""What a mock scan says: progress steps and canned findings for each scanner kind.

Pure data and pure functions (no I/O, no clock, no randomness: the same arguments always give
the same answer), shared by the mock scanner service and the gateway's simulated mock mode.

``progress_steps`` gives the ``(status, progress_percent, message)`` of each progress event;
the final ``completed`` event at 100 % is not part of it. ``findings`` gives the raw findings a
real scanner of that kind would report, each kind in its own shape (keys, severity spelling,
line format), so that whatever normalises them has something realistic to chew on.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["COMPLETED_MESSAGE", "SCANNER_KINDS", "findings", "progress_steps"]

SCANNER_KINDS: Final = ("secret_scanner", "sast_scanner", "llm_scanner", "dast_scanner")
COMPLETED_MESSAGE: Final = "Scan complete."


@dataclass(frozen=True)
class _Phase:
    status: str
    rank: int
    """Which phases survive when there are fewer steps than phases: lowest rank first.
    Rank 0 is the main phase, the one that receives every step beyond one per phase."""
    message: Callable[[int, int], str]
    """``message(index, count)``: the text of step ``index`` (1-based) of ``count`` in it."""


def _fixed(text: str) -> Callable[[int, int], str]:
    return lambda _index, _count: text


def _counted(text: str, total: int, unit: str) -> Callable[[int, int], str]:
    """``text`` alone for a single step, else ``text`` with ``(done/total unit)`` added."""

    def message(index: int, count: int) -> str:
        if count == 1:
            return f"{text}..."
        return f"{text} ({index * total // count}/{total} {unit})..."

    return message


def _seed(kind: str, repository_name: str) -> int:
    return zlib.crc32(f"{kind}:{repository_name}".encode())


def _host(repository_name: str) -> str:
    name = repository_name.rsplit("/", 1)[-1].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "app"
    return f"{slug}.staging.example.com"


def _phases(kind: str, repository_name: str) -> list[_Phase]:
    seed = _seed(kind, repository_name)
    files = 24 + seed % 377
    cloning = _Phase("cloning", 3, _fixed(f"Cloning {repository_name}..."))
    saving = _Phase("saving", 1, _fixed("Saving results..."))
    if kind == "secret_scanner":
        return [
            _Phase(
                "initializing", 2, _fixed("Initializing secret scanner (148 detection rules)...")
            ),
            cloning,
            _Phase("scanning", 0, _counted(f"Scanning {files} files for secrets", files, "files")),
            _Phase("processing", 4, _fixed(f"Verifying {3 + seed % 5} candidate secrets...")),
            saving,
        ]
    if kind == "sast_scanner":
        return [
            _Phase("initializing", 2, _fixed("Loading 312 SAST rules...")),
            cloning,
            _Phase("analyzing", 4, _fixed(f"Parsing {files} source files into syntax trees...")),
            _Phase(
                "scanning", 0, _counted(f"Running taint analysis on {files} files", files, "files")
            ),
            _Phase("processing", 5, _fixed(f"Deduplicating {5 + seed % 9} raw findings...")),
            saving,
        ]
    if kind == "llm_scanner":
        chunks = files * 3 + seed % 7
        return [
            _Phase("initializing", 2, _fixed("Loading model and review prompts...")),
            cloning,
            _Phase("analyzing", 4, _fixed(f"Splitting {files} files into {chunks} chunks...")),
            _Phase(
                "scanning",
                0,
                _counted(f"Reviewing {chunks} code chunks with the LLM", chunks, "chunks"),
            ),
            _Phase("processing", 5, _fixed("Ranking findings by confidence...")),
            saving,
        ]
    if kind == "dast_scanner":
        host = _host(repository_name)
        urls = 12 + seed % 60
        return [
            _Phase("initializing", 2, _fixed(f"Starting headless browser for https://{host}...")),
            _Phase("analyzing", 3, _fixed(f"Crawling https://{host} ({urls} URLs found)...")),
            _Phase(
                "scanning",
                0,
                _counted(f"Probing {urls} endpoints with attack payloads", urls, "endpoints"),
            ),
            _Phase("processing", 4, _fixed(f"Confirming {2 + seed % 4} potential issues...")),
            saving,
        ]
    raise ValueError(f"unknown scanner kind {kind!r}; expected one of: {', '.join(SCANNER_KINDS)}")


def progress_steps(
    kind: str, steps: int, repository_name: str = "repository"
) -> list[tuple[str, int, str]]:
    """The ``steps`` progress events of a scan, as ``(status, progress_percent, message)``.

    Statuses go through the kind's phases in order (for instance initializing, cloning,
    scanning..., processing, saving); with fewer steps than phases the least telling phases are
    left out, with more the main phase repeats with a running count. ``progress_percent`` is
    ``i * 100 // (steps + 1)`` for step ``i``: always below 100 and strictly increasing up to
    99 steps (integers cannot do better beyond that, where it is non-decreasing). The final
    ``completed`` event at 100 is not included.
    """
    phases = _phases(kind, repository_name)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if steps < len(phases):
        kept = sorted(sorted(range(len(phases)), key=lambda i: phases[i].rank)[:steps])
        plan = [(phases[i], 1) for i in kept]
    else:
        extra = steps - len(phases)
        plan = [(phase, 1 + extra if phase.rank == 0 else 1) for phase in phases]
    result: list[tuple[str, int, str]] = []
    for phase, count in plan:
        for index in range(1, count + 1):
            step = len(result) + 1
            result.append((phase.status, step * 100 // (steps + 1), phase.message(index, count)))
    return result


def findings(kind: str, repository_name: str) -> list[dict[str, Any]]:
    """The raw findings a scanner of ``kind`` reports for ``repository_name`` (2 to 4).

    Each kind has its own shape, as real scanners do: the secret scanner gives ``line`` as a
    ``[start, end]`` list and upper-case severities, the SAST scanner ``"CWE-89"`` strings and
    mixed-case severities, the LLM scanner a ``confidence`` and severities like
    ``"moderate"``, the DAST scanner a URL, method and parameter and ``cwe`` as an integer.
    A new list of new dicts is returned on every call.
    """
    if kind == "secret_scanner":
        return [
            {
                "rule_id": "aws-access-key-id",
                "file": "config/settings.py",
                "line": [12, 12],
                "severity": "HIGH",
                "secret_type": "AWS Access Key ID",
                "match": "AKIA****************",
                "commit": "3f2c9e1a",
            },
            {
                "rule_id": "generic-api-key",
                "file": ".env.example",
                "line": [3, 3],
                "severity": "MEDIUM",
                "secret_type": "Generic API Key",
                "entropy": 4.31,
            },
            {
                "rule_id": "private-key",
                "file": "deploy/keys/id_rsa",
                "line": [1, 27],
                "severity": "CRITICAL",
                "secret_type": "RSA Private Key",
            },
        ]
    if kind == "sast_scanner":
        return [
            {
                "check_id": "python.lang.security.sqli.formatted-sql-query",
                "file_path": "app/db/queries.py",
                "line_number": 88,
                "column": 17,
                "cwe": "CWE-89",
                "severity": "critical",
                "message": "SQL query built with an f-string from user input.",
                "code_snippet": 'cursor.execute(f"SELECT * FROM users WHERE id = {user_id}")',
                "remediation": "Use a parameterised query: cursor.execute(sql, (user_id,)).",
            },
            {
                "check_id": "python.flask.security.xss.unescaped-template",
                "file_path": "app/templates/profile.html",
                "line_number": 23,
                "column": 9,
                "cwe": "CWE-79",
                "severity": "Medium",
                "message": "Template renders user data with |safe.",
                "code_snippet": "<p>{{ user.bio | safe }}</p>",
                "remediation": "Drop |safe and let the template engine escape the value.",
            },
            {
                "check_id": "python.lang.security.insecure-hash-md5",
                "file_path": "app/auth/tokens.py",
                "line_number": 41,
                "column": 12,
                "cwe": "CWE-327",
                "severity": "Low",
                "message": "MD5 used to derive a token.",
                "code_snippet": "digest = hashlib.md5(secret.encode()).hexdigest()",
                "remediation": "Use secrets.token_urlsafe() or HMAC-SHA256.",
            },
        ]
    if kind == "llm_scanner":
        return [
            {
                "title": "Missing authorization check on admin endpoint",
                "description": (
                    "The /admin/users handler only checks that a session exists, not that "
                    "the user is an administrator."
                ),
                "confidence": 0.82,
                "severity": "moderate",
                "location": {"file": "app/routes/admin.py", "start_line": 41, "end_line": 58},
            },
            {
                "title": "Verbose error pages leak stack traces",
                "description": "Unhandled exceptions are rendered with the full traceback.",
                "confidence": 0.64,
                "severity": "info",
                "location": "app/errors.py:12",
            },
        ]
    if kind == "dast_scanner":
        base = f"https://{_host(repository_name)}"
        return [
            {
                "url": f"{base}/search?q=test",
                "method": "GET",
                "parameter": "q",
                "severity": "Medium",
                "cwe": 79,
                "name": "Reflected Cross-Site Scripting",
                "evidence": "<script>alert(1)</script>",
            },
            {
                "url": f"{base}/login",
                "method": "POST",
                "parameter": "username",
                "severity": "High",
                "cwe": 89,
                "name": "SQL Injection (error based)",
                "evidence": "You have an error in your SQL syntax",
            },
            {
                "url": f"{base}/",
                "method": "GET",
                "parameter": None,
                "severity": "Low",
                "cwe": 693,
                "name": "Content-Security-Policy header missing",
                "evidence": "HTTP/1.1 200 OK (no Content-Security-Policy header)",
            },
        ]
    raise ValueError(f"unknown scanner kind {kind!r}; expected one of: {', '.join(SCANNER_KINDS)}")
