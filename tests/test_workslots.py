"""WorkSlots: how many costly requests run at once, and how long the others wait."""

from __future__ import annotations

import threading

import pytest

from memegen.web.workslots import SPARE_THREADS, Busy, WorkSlots


def join_the_line(slots: WorkSlots) -> tuple[threading.Thread, threading.Event]:
    """A request in another thread that waits for a slot; the event is set once it has one."""
    got_in = threading.Event()

    def wait_for_a_turn() -> None:
        with slots.slot():
            got_in.set()

    waiter = threading.Thread(target=wait_for_a_turn)
    waiter.start()
    return waiter, got_in


def test_a_request_in_line_gets_the_slot_that_frees():
    slots = WorkSlots(running=1, waiting=1, wait_seconds=30)
    with slots.slot():
        waiter, got_in = join_the_line(slots)
        assert not got_in.wait(0.2)
        with pytest.raises(Busy), slots.slot():  # the line is full
            pass
    waiter.join(timeout=5)
    assert got_in.is_set()


def test_a_request_whose_wait_runs_out_is_refused_and_leaves_the_line():
    slots = WorkSlots(running=1, waiting=1, wait_seconds=0.05)
    with slots.slot():
        for _ in range(2):
            with pytest.raises(Busy), slots.slot():
                pass
    with slots.slot():  # the slot and the line are free again
        pass


def test_the_server_runs_a_thread_for_every_request_that_may_hold_one_and_spares():
    assert WorkSlots(running=4, waiting=4).threads_needed == 8 + SPARE_THREADS


def test_closed_slots_refuse_new_work_and_let_the_line_finish():
    """How a server stops on SIGTERM: nothing new starts, nothing started is dropped."""
    slots = WorkSlots(running=1, waiting=1, wait_seconds=30)
    with slots.slot():
        waiter, got_in = join_the_line(slots)
        assert not got_in.wait(0.2)  # it is in line
        slots.close()
        with pytest.raises(Busy), slots.slot():
            pass
        assert not slots.wait_idle(0.05), "one runs and one waits"
    assert slots.wait_idle(5)
    assert got_in.is_set()
    waiter.join(timeout=5)
