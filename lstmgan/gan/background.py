"""A bounded background writer: metrics rows, sample grids and checkpoints leave the training thread."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """One writer thread for what the training step need not wait for, run in submission order. Bounded (a
    slow disk slows training instead of filling memory). `drain` waits until everything submitted is done
    and re-raises the first failure on the training thread; leaving the `with` block drains too, so a stop,
    an error or Ctrl-C still writes every row and the checkpoint queued before it."""

    def __init__(self, depth: int = 8) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="lstmgan-gan-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (task := self._queue.get()) is not None:
            try:
                if self._error is None:  # after a failure, the rest is skipped (its order is broken)
                    task()
            except BaseException as e:  # noqa: BLE001 - handed to the training thread by drain()
                self._error = e
            finally:
                self._queue.task_done()

    def submit(self, task: Callable[[], None]) -> None:
        self._raise()
        self._queue.put(task)

    def drain(self) -> None:
        self._queue.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self) -> Background:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        try:
            self._queue.join()
        finally:
            self._queue.put(None)
            self._thread.join()
        if kind is None:
            self._raise()
        elif self._error is not None:
            log.warning("a background write failed too: %s", self._error)
