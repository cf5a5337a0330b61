"""The one writer the Redis limits send through: commands applied in the order queued, each
caller its own answer, commands sent even for callers that stopped waiting, scripts Redis has
forgotten loaded again, and Redis down told to every caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.backends.redis.batches import Batches, Queue
from gateway.domain.errors import StoreUnavailable
from tests.redis_server import RedisServer

APPEND = "redis.call('RPUSH', KEYS[1], ARGV[1]); return redis.call('LLEN', KEYS[1])"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_commands_apply_in_order_and_each_caller_gets_its_answer(client):
    script = client.register_script(APPEND)
    batches = Batches(client, scripts=[script], name="test-writer")

    def append(value: str) -> Queue:
        return lambda pipe: pipe.evalsha(script.sha, 1, "list", value)

    try:
        answers = await asyncio.gather(
            *(batches.call(append(f"v{i}"), seconds=5) for i in range(1000))
        )
        assert answers == list(range(1, 1001))
        assert await client.lrange("list", 0, -1) == [f"v{i}".encode() for i in range(1000)]
        with pytest.raises(ResponseError):  # a command Redis refuses: its caller alone hears
            await batches.call(lambda pipe: pipe.incr("list"), seconds=5)
        assert await batches.call(lambda pipe: pipe.llen("list"), seconds=5) == 1000
    finally:
        await batches.close(5)


async def test_a_caller_that_stops_waiting_still_has_its_command_sent_in_turn(client):
    batches = Batches(client, scripts=[], name="test-writer")
    try:
        waiting = asyncio.create_task(batches.call(lambda pipe: pipe.set("k", "first"), seconds=5))
        await asyncio.sleep(0)  # one turn of the loop: it runs up to its wait, queued
        waiting.cancel()
        then = await batches.call(lambda pipe: pipe.append("k", "+second"), seconds=5)
        assert then == len("first+second")
        assert waiting.cancelled()
    finally:
        await batches.close(5)


async def test_scripts_redis_forgot_are_loaded_again(client):
    script = client.register_script(APPEND)
    batches = Batches(client, scripts=[script], name="test-writer")
    try:
        send = lambda pipe: pipe.evalsha(script.sha, 1, "list", "v")  # noqa: E731
        assert await batches.call(send, seconds=5) == 1  # never loaded before
        await client.script_flush()  # as a Redis restart forgets them
        assert await batches.call(send, seconds=5) == 2  # applied once, not twice
    finally:
        await batches.close(5)


async def test_without_redis_every_caller_is_told(client, redis_server):
    batches = Batches(client, scripts=[], name="test-writer")
    await redis_server.stop()
    try:
        results = await asyncio.gather(
            *(batches.call(lambda pipe: pipe.incr("n"), seconds=5) for _ in range(10)),
            return_exceptions=True,
        )
        assert all(isinstance(result, StoreUnavailable) for result in results), results
    finally:
        await batches.close(1)
        await redis_server.start()


async def test_closing_sends_what_is_queued_then_refuses(client):
    batches = Batches(client, scripts=[], name="test-writer")

    def push(value: int) -> Queue:
        return lambda pipe: pipe.rpush("list", value)

    answers = [batches.send(push(i)) for i in range(100)]
    await batches.close(5)
    assert [answer.result() for answer in answers] == list(range(1, 101))
    with pytest.raises(StoreUnavailable, match="closed"):
        batches.send(lambda pipe: pipe.incr("n"))
