"""The collection store interface: collection records, their logs and merged findings.

A backend keeps a collection's log where it keeps scans' logs, under the collection's
``log_id``: ``Store.events_after`` reads it and the bus carries it like any scan's (the
embedded backend's appends reach the scan store's listeners, through the file's one writer;
replicas read every log from Redis), so the stream route serves it with the same code. The
records, the cursors into the children's logs and the merged findings are this interface's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from gateway.domain.collections import CollectionRecord, CollectionUpdate, NewCollection
from gateway.domain.models import Event, FindingsPage

__all__ = ["CollectionStore"]


class CollectionStore(ABC):
    """``append`` is atomic: the event, the record's new state (the children's cursors
    included) and, on the terminal event, the merged findings are written together, and
    sequence numbers have no gaps. Whoever resumes a collection resumes from its record.

    With several processes, one at a time holds a collection (a lease): ``claim_unfinished``
    hands over those nobody holds, ``append`` raises ``CollectionLost`` for one no longer
    held, and ``release`` gives one up.
    """

    # How often a process looks for collections to take over (None: only when it starts,
    # for a store that only this process uses).
    sweep_interval: float | None = None

    @abstractmethod
    async def create(self, new: NewCollection) -> CollectionRecord:
        """Store a new collection (its log empty), held by this process."""

    @abstractmethod
    async def append(self, collection_id: str, update: CollectionUpdate, *, after: int) -> Event:
        """Append one event after the one numbered ``after``: ``CollectionFinished`` once the
        log has its terminal event, ``CollectionLost`` if another process appended meanwhile.
        An append that was stored although its caller heard nothing back (a shared store's
        connection lost) is not stored twice: the stored event is returned."""

    @abstractmethod
    async def get(self, collection_id: str) -> CollectionRecord | None: ...

    @abstractmethod
    async def list_owned(self, owner: str, *, limit: int) -> list[CollectionRecord]:
        """The owner's collections, newest first."""

    @abstractmethod
    async def request_cancel(self, collection_id: str) -> None:
        """Mark the collection as cancelled by its owner (its status says so at the end)."""

    @abstractmethod
    async def findings_page(
        self, collection_id: str, *, start: int, limit: int, max_bytes: int | None = None
    ) -> FindingsPage:
        """A page of the merged findings stored with the terminal event."""

    @abstractmethod
    async def claim_unfinished(self) -> list[CollectionRecord]:
        """The unfinished collections no process holds, now held by this one."""

    def release(self, collection_id: str) -> None:  # noqa: B027 (optional hook)
        """Stop holding a collection (another process may then take it over)."""

    @abstractmethod
    async def close(self) -> None: ...
