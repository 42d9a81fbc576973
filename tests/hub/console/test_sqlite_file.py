"""One SQLite file written from one worker thread (workshop_hub/console/sqlite_file.py): WAL,
a transaction per use that commits or rolls back, and what was written survives a restart."""

from __future__ import annotations

import sqlite3

import pytest

from workshop_hub.console.sqlite_file import SqliteFile

SCHEMA = "CREATE TABLE IF NOT EXISTS notes (who TEXT PRIMARY KEY, note TEXT)"


def test_a_write_survives_a_new_process_and_a_failed_one_leaves_nothing(tmp_path):
    book = SqliteFile(tmp_path / "hub-data" / "notes.sqlite", SCHEMA, "notes")
    with book._connection() as db:
        db.execute("INSERT INTO notes VALUES ('ada', 'stuck on lab 2')")
    with pytest.raises(sqlite3.IntegrityError), book._connection() as db:
        db.execute("INSERT INTO notes VALUES ('bob', 'first')")
        db.execute("INSERT INTO notes VALUES ('ada', 'twice')")  # the key again: rolled back
    # As the console after a restart: a new object on the same file, rows by name.
    again = SqliteFile(book.path, SCHEMA, "notes", rows_by_name=True)
    with again._connection() as db:
        rows = [dict(row) for row in db.execute("SELECT * FROM notes")]
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert rows == [{"who": "ada", "note": "stuck on lab 2"}]
    assert mode == "wal"


def test_each_thread_gets_its_own_connection_and_the_worker_is_one_thread(tmp_path):
    book = SqliteFile(tmp_path / "notes.sqlite", SCHEMA, "notes")

    def write(who: str) -> int:
        with book._connection() as db:
            db.execute("INSERT INTO notes VALUES (?, '')", (who,))
            return id(db)

    connections = {book.worker.submit(write, f"n{i}").result() for i in range(5)}
    with book._connection() as db:
        assert db.execute("SELECT count(*) FROM notes").fetchone()[0] == 5
        assert id(db) not in connections
    assert len(connections) == 1
