"""The shared backend: Redis holds the scans (``store``, laid out as ``layout`` says, with
``leases`` on running scans and ``pages`` for paged reads, through ``transaction``), ``bus``
feeds each replica's hub from the logs, and ``limits`` counts what every replica runs."""

from gateway.backends.redis.bus import RedisBus
from gateway.backends.redis.limits import RedisLimits
from gateway.backends.redis.store import RedisStore

__all__ = ["RedisBus", "RedisLimits", "RedisStore"]
