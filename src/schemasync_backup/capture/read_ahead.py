"""Reads that run on a second connection while capture's own connection reads the rest.

The server answers one connection's queries one after another, on one thread: for 5,000
tables ``information_schema.COLUMNS`` alone takes a third of the time capture waits for it.
Read on a second connection it overlaps the other reads, on a second server thread. Capture
takes no locked snapshot, so reading on two connections at once changes nothing it promises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from schemasync_backup.capture.connection import Connection, sibling
from schemasync_backup.errors import DatabaseError

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """Answers read on a second connection like ``connection`` (:func:`~.connection.sibling`), by key.

    Nothing runs ahead for a connection that has no sibling, or when the server takes no further
    connection: :meth:`take` then answers None and the caller reads on its own connection.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._pending: dict[Hashable, Future[T | None]] = {}
        # One worker: the reads run one after another on one second connection, opened by the first.
        self._executor: ThreadPoolExecutor | None = None
        self._second: Connection | None = None
        self._no_second = False

    def start(self, key: Hashable, read: Callable[[Connection], T]) -> None:
        """Run ``read`` on the second connection; :meth:`take` with ``key`` returns its answer."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="schemasync-read-ahead")
        self._pending[key] = self._executor.submit(self._run, read)

    def take(self, key: Hashable) -> T | None:
        """What the read started for ``key`` returned (raising what it raised); None if none ran."""
        future = self._pending.pop(key, None)
        return None if future is None else future.result()

    def close(self) -> None:
        """Wait for the reads still running and close the second connection."""
        if self._executor is not None:
            self._executor.submit(self._close_second)
            self._executor.shutdown(wait=True)
            self._executor = None
        self._pending.clear()

    def _run(self, read: Callable[[Connection], T]) -> T | None:
        # Only the worker thread touches the second connection.
        if self._second is None and not self._no_second:
            # Too many connections (error 1040, or 1226 for a user's limit), say: then the first connection
            # reads it all, as without a sibling. Opening a second connection never fails a capture.
            with contextlib.suppress(DatabaseError):
                self._second = sibling(self._connection)
            self._no_second = self._second is None
        return None if self._second is None else read(self._second)

    def _close_second(self) -> None:
        if self._second is not None:
            self._second.close()
            self._second = None
