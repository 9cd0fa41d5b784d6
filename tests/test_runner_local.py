"""The one signal set-up of every runner path, with real signals to this process (the CLI-level behaviour,
exit codes and checkpoints, is in tests/faults/test_interrupt.py)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from lstmgan.runner.job import handle_stop_signals, stop_on_signals, stop_requested


def test_the_first_signal_asks_to_stop_and_a_second_stops_at_once():
    told = []
    with stop_on_signals(first=lambda: told.append("first")):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop_requested() and told == ["first"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert told == ["first"]


def test_without_at_once_every_signal_only_asks_to_stop():
    told = []
    with stop_on_signals(first=lambda: told.append("first"), at_once=False):
        for _ in range(3):  # a worker's Ctrl-C from the terminal, then the parent's, …
            os.kill(os.getpid(), signal.SIGINT)
        assert stop_requested() and told == ["first"]


def test_the_previous_handlers_and_a_clear_flag_come_back():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stop_on_signals(first=None):
        os.kill(os.getpid(), signal.SIGINT)
    assert not stop_requested()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_signal_blocked_before_the_handler_is_in_place_is_handled_not_lost():
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    try:
        # pending, as in a worker still importing torch (to this thread: other threads do not block it)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
        previous = handle_stop_signals([signal.SIGTERM], at_once=False)  # unblocks: the signal arrives now
        try:
            assert stop_requested()
        finally:
            signal.signal(signal.SIGTERM, previous[signal.SIGTERM])
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
        with stop_on_signals([signal.SIGUSR1], first=None):
            pass  # leaves the flag clear for the next test
    assert not stop_requested()
