"""One SQLite file of the hub-data volume, written from one worker thread of its own: the
console's progress book (progress.py) and its raised hands (hands.py).

WAL mode, so readers never block the writer and a file survives the console's and the hub's
restarts. The console hands each blocking call to ``worker`` (console.in_the_book), off its
event loop: writes queue up there rather than contend for SQLite's lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path


class SqliteFile:
    def __init__(self, path: Path, schema: str, thread_name: str, rows_by_name: bool = False):
        self.path = path
        self.worker = ThreadPoolExecutor(1, thread_name_prefix=thread_name)
        self._rows_by_name = rows_by_name
        self._per_thread = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(schema)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (opened once: opening costs more than a write), in a
        transaction that commits, or rolls back on an error."""
        db = getattr(self._per_thread, "db", None)
        if db is None:
            db = self._per_thread.db = sqlite3.connect(self.path, timeout=10)
            if self._rows_by_name:
                db.row_factory = sqlite3.Row
            # In WAL mode a commit that survives a crash of the process needs no fsync of its
            # own; a power cut may lose the last writes, which the next report sends again.
            db.execute("PRAGMA synchronous=NORMAL")
        with db:
            yield db
