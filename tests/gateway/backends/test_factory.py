"""The backend factory: whichever backend config names, a store and a bus that work together."""

from __future__ import annotations

import asyncio

import pytest

from gateway.backends.factory import open_backend
from gateway.domain.models import EventDraft, NewScan, Status
from gateway.engine.hub import Hub
from tests.helpers import BACKENDS

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


async def test_an_event_appended_to_the_store_reaches_the_bus_subscribers(make_config):
    async with open_backend(make_config(), Hub(subscriber_buffer=10)) as (store, bus):
        await store.create_scan(
            NewScan("s1", "alice", "acme/web", "secret_scanner", True, {}),
            EventDraft(Status.PENDING),
        )
        async with bus.subscribe("s1") as subscription:
            await store.append_event("s1", EventDraft(Status.COMPLETED))
            await asyncio.wait_for(subscription.wait(), 30)
            assert [(event.seq, event.terminal) for event in subscription.take()] == [(2, True)]


async def test_a_store_write_waits_for_the_store_only_where_it_can_come_back(make_config, backend):
    config = make_config(redis={"store_retry_seconds": 7})
    async with open_backend(config, Hub(subscriber_buffer=10)) as (store, _):
        assert store.retry_seconds == (7 if backend == "redis" else 0)
