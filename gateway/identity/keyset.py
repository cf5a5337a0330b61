"""An identity provider's signing keys, fetched and kept fresh by one background task.

``KeySet.run`` (started by the app's cleanup context with the session it owns) fetches the
key set at once, then again when the answer's ``Cache-Control`` max-age runs out (bounded by
``jwt.jwks_min_interval_seconds`` and ``jwt.jwks_max_cache_seconds``; ``jwt.jwks_cache_seconds``
when it says nothing). A failed fetch keeps the keys already held, so tokens keep being
verified while the provider is down, and is retried with a doubling delay.

A token with an unknown ``kid`` asks for one fetch more (``refetch``): single-flight, since
every request waits for the same fetch, and rate limited, since none starts sooner than
``jwt.jwks_min_interval_seconds`` after the one before; a flood of forged kids costs the
provider one fetch per interval at most, and the requests beyond that are refused at once.
Only this task ever fetches, so no request handler starts a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Final

import aiohttp

from gateway.config import JWTConfig
from gateway.identity.jwks import KeySetError, SigningKey, read_key_set
from gateway.identity.provider import ProviderError, discover, fetch

__all__ = ["MAX_RETRY_SECONDS", "KeySet"]

log = logging.getLogger(__name__)

MAX_RETRY_SECONDS: Final = 60.0  # the longest wait between retries (unless the interval is)


class KeySet:
    """The keys of ``jwt.jwks_url`` or of ``jwt.oidc_issuer``'s discovery document, by kid."""

    def __init__(self, config: JWTConfig, clock: Callable[[], float] = time.monotonic) -> None:
        assert config.key_set_source is not None
        self._config = config
        self._clock = clock
        self._keys: dict[str | None, SigningKey] | None = None
        self._jwks_url = config.jwks_url  # an OpenID provider's: from discovery
        self._error = "not fetched yet"
        self._running = False
        self._fetching = False
        self._last_attempt = -math.inf
        self._attempts = 0  # fetches ended, well or not
        self._failures = 0  # in a row
        self._wanted = asyncio.Event()  # a token with an unknown kid asks for a fetch
        self._ended = asyncio.Condition()  # notified when a fetch ends

    @property
    def loaded(self) -> bool:
        return self._keys is not None

    def status(self) -> str:
        """``ok`` once a key set is held (even if a later refresh failed), else why not."""
        return "ok" if self._keys is not None else f"no key set yet: {self._error}"

    def find(self, kid: str | None, algorithm: str) -> SigningKey | None:
        """The key a token's header names; without a kid, the one key for its algorithm."""
        keys = self._keys or {}
        if kid is not None:
            return keys.get(kid)
        matching = [key for key in keys.values() if algorithm in key.algorithms]
        return matching[0] if len(matching) == 1 else None

    async def refetch(self) -> bool:
        """Fetch again for a token with an unknown kid, or join the fetch under way, and wait
        for it to end. False at once when the last one began less than
        ``jwt.jwks_min_interval_seconds`` ago, or when nothing fetches (not running)."""
        if not self._running:
            return False
        if not self._fetching:
            if self._clock() - self._last_attempt < self._config.jwks_min_interval_seconds:
                return False
            self._wanted.set()
        target = self._attempts + 1
        # A fetch is bounded (discovery and key set: a timeout each); this is a last guard.
        try:
            async with asyncio.timeout(2 * self._config.jwks_timeout_seconds + 1), self._ended:
                await self._ended.wait_for(lambda: self._attempts >= target or not self._running)
        except TimeoutError:
            return False
        return self._attempts >= target

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Fetch now, then whenever the keys go stale, a retry is due or a token asks; until
        cancelled."""
        self._running = True
        try:
            while True:
                delay = await self._attempt(session)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wanted.wait()
        finally:
            self._running = False  # the app is closing: nobody waits for a fetch any more
            async with self._ended:
                self._ended.notify_all()

    async def _attempt(self, session: aiohttp.ClientSession) -> float:
        """One fetch; the seconds until the next one is due."""
        self._fetching = True
        self._last_attempt = self._clock()
        try:
            fresh_for = await self._fetch(session)
            self._failures = 0
        except (ProviderError, KeySetError) as exc:
            self._failed(str(exc))
            fresh_for = None
        except Exception as exc:  # a bug must not end the refreshes: the keys would go stale
            log.exception("identity provider key set: fetching failed unexpectedly")
            self._failed(f"unexpected {type(exc).__name__}")
            fresh_for = None
        finally:
            self._fetching = False
            self._attempts += 1
            self._wanted.clear()  # what was asked for is answered
            async with self._ended:
                self._ended.notify_all()
        return self._delay(fresh_for)

    async def _fetch(self, session: aiohttp.ClientSession) -> float | None:
        config = self._config
        if config.oidc_issuer is not None and (self._jwks_url is None or self._failures):
            self._jwks_url = await discover(session, config)  # again after a failure: moved?
        assert self._jwks_url is not None
        answer = await fetch(session, self._jwks_url, config)
        try:
            keys, skipped = read_key_set(answer.body, config.algorithms, config.jwks_max_keys)
        except KeySetError as exc:
            raise KeySetError(f"the key set at {self._jwks_url}: {exc}") from None
        if self._keys is None or set(keys) != set(self._keys):
            kids = ", ".join(repr(kid) for kid in keys)
            log.info("identity provider key set loaded: %d key(s): %s", len(keys), kids)
            for why in skipped:
                log.warning("identity provider key set: left out %s", why)
        self._keys = keys
        return answer.max_age

    def _failed(self, error: str) -> None:
        self._failures += 1
        self._error = error
        if self._keys is None:
            log.warning("identity provider key set not loaded: %s", self._error)
        else:
            log.warning(
                "identity provider key set not refreshed (the %d cached key(s) stay in use): %s",
                len(self._keys),
                self._error,
            )

    def _delay(self, fresh_for: float | None) -> float:
        config = self._config
        floor = config.jwks_min_interval_seconds
        if self._failures:
            longest = max(floor, MAX_RETRY_SECONDS)
            return float(min(floor * 2 ** min(self._failures - 1, 30), longest))
        if fresh_for is None:
            fresh_for = config.jwks_cache_seconds
        return float(min(max(fresh_for, floor), config.jwks_max_cache_seconds))
