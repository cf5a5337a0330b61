"""The aggregate rules of a collection: status and progress from its scans'."""

from __future__ import annotations

import pytest

from gateway.domain.collections import ChildState, CollectionStatus, aggregate, log_id
from gateway.domain.models import Status


def children(*states: tuple[Status, int]) -> dict[str, ChildState]:
    return {
        f"scan{index}": ChildState(f"scanner{index}", index + 1, status, progress)
        for index, (status, progress) in enumerate(states)
    }


@pytest.mark.parametrize(
    ("states", "cancel", "expected"),
    [
        ([(Status.PENDING, 0), (Status.PENDING, 0)], False, (CollectionStatus.PENDING, 0)),
        ([(Status.CONNECTING, 0), (Status.PENDING, 0)], False, (CollectionStatus.RUNNING, 0)),
        ([(Status.SCANNING, 50), (Status.COMPLETED, 100)], False, (CollectionStatus.RUNNING, 75)),
        (
            [(Status.COMPLETED, 100), (Status.COMPLETED, 100)],
            False,
            (CollectionStatus.COMPLETED, 100),
        ),
        # Failed only once every scan has ended, with the mean as it stands.
        ([(Status.FAILED, 40), (Status.SCANNING, 90)], False, (CollectionStatus.RUNNING, 65)),
        ([(Status.FAILED, 40), (Status.COMPLETED, 100)], False, (CollectionStatus.FAILED, 70)),
        (
            [(Status.CANCELLED, 10), (Status.COMPLETED, 100)],
            False,
            (CollectionStatus.CANCELLED, 55),
        ),
        ([(Status.CANCELLED, 10), (Status.FAILED, 20)], False, (CollectionStatus.FAILED, 15)),
        # Cancelled through the collection wins over a failure.
        ([(Status.CANCELLED, 10), (Status.FAILED, 20)], True, (CollectionStatus.CANCELLED, 15)),
        # ... but not when nothing was cancelled (every scan had ended first).
        (
            [(Status.COMPLETED, 100), (Status.COMPLETED, 100)],
            True,
            (CollectionStatus.COMPLETED, 100),
        ),
        (
            [(Status.SCANNING, 33), (Status.SCANNING, 33), (Status.SCANNING, 34)],
            False,
            (CollectionStatus.RUNNING, 33),
        ),
    ],
)
def test_aggregate(states, cancel, expected):
    assert aggregate(children(*states), cancel_requested=cancel) == expected


def test_progress_is_100_only_when_every_scan_is():
    assert aggregate(children((Status.COMPLETED, 100), (Status.SCANNING, 99)),
                     cancel_requested=False)[1] == 99  # fmt: skip


def test_child_state_round_trips_and_log_ids_are_their_own_namespace():
    state = ChildState("sast_scanner", 7, Status.COMPLETED, 100, 250)
    assert ChildState.from_json(state.to_json()) == state
    assert log_id("abc") == "collection:abc"
