"""The study database (SQLite in WAL mode). The truth about each image lives only here.

Tables: ``images`` (opaque id, truth, contrast, model, source subject), ``readers`` (name,
secret token, personal random order), ``answers`` (one row per reader and image, never updated),
``meta`` (admin token, seed, counts). Every write is committed with ``synchronous=FULL`` before
the request that made it returns, so an answer acknowledged to a reader survives a crash.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY, truth TEXT NOT NULL CHECK (truth IN ('real', 'synthetic')),
    contrast TEXT NOT NULL, model TEXT, subject TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS readers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, token TEXT NOT NULL UNIQUE,
    image_order TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    reader_id INTEGER NOT NULL REFERENCES readers(id), image_id TEXT NOT NULL REFERENCES images(id),
    label TEXT NOT NULL CHECK (label IN ('real', 'synthetic')), position INTEGER NOT NULL,
    answered REAL NOT NULL, PRIMARY KEY (reader_id, image_id));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

DB_NAME = "study.sqlite"


def connect(study: Path) -> sqlite3.Connection:
    """A new connection (one per request/thread) with WAL, full sync and foreign keys."""
    conn = sqlite3.connect(
        str(Path(study) / DB_NAME), timeout=30, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection):
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def create(study: Path, images: list[dict], meta: dict) -> None:
    conn = connect(study)
    try:
        conn.executescript(SCHEMA)
        with transaction(conn):
            conn.executemany(
                "INSERT INTO images (id, truth, contrast, model, subject) "
                "VALUES (:id, :truth, :contrast, :model, :subject)",
                images,
            )
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in meta.items()],
            )
    finally:
        conn.close()


def get_meta(conn: sqlite3.Connection, key: str):
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else json.loads(row["value"])


def add_reader(conn: sqlite3.Connection, name: str, token: str, order: list[str]) -> int:
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO readers (name, token, image_order, created) VALUES (?, ?, ?, ?)",
            (name, token, json.dumps(order), time.time()),
        )
    return int(cur.lastrowid)


def reader_by_token(conn: sqlite3.Connection, token: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM readers WHERE token = ?", (token,)).fetchone()


def answered_ids(conn: sqlite3.Connection, reader_id: int) -> set[str]:
    rows = conn.execute("SELECT image_id FROM answers WHERE reader_id = ?", (reader_id,))
    return {r["image_id"] for r in rows}


def add_answer(
    conn: sqlite3.Connection, reader_id: int, image_id: str, label: str, position: int
) -> bool:
    """Store an answer; False when this reader already answered this image (no change)."""
    try:
        with transaction(conn):
            conn.execute(
                "INSERT INTO answers (reader_id, image_id, label, position, answered) "
                "VALUES (?, ?, ?, ?, ?)",
                (reader_id, image_id, label, position, time.time()),
            )
    except sqlite3.IntegrityError:
        return False
    return True


def all_rows(study: Path) -> dict[str, list[dict]]:
    """Everything needed for the analysis (images with truth, readers, answers)."""
    conn = connect(study)
    try:
        return {
            "images": [dict(r) for r in conn.execute("SELECT * FROM images ORDER BY id")],
            "readers": [
                dict(r) for r in conn.execute("SELECT id, name, created FROM readers ORDER BY id")
            ],
            "answers": [
                dict(r)
                for r in conn.execute(
                    "SELECT reader_id, image_id, label, position, answered FROM answers "
                    "ORDER BY reader_id, position"
                )
            ],
        }
    finally:
        conn.close()


def _cell(value) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP: prefix with ')."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def answers_csv(study: Path) -> str:
    """One row per answer with the truth (for the admin export). Readers are identified by their
    id; the name is a label only, and no cell can start a spreadsheet formula."""
    data = all_rows(study)
    images = {img["id"]: img for img in data["images"]}
    names = {r["id"]: r["name"] for r in data["readers"]}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "reader_id",
            "reader_name",
            "position",
            "image_id",
            "label",
            "truth",
            "contrast",
            "model",
            "subject",
            "answered_unix",
        ]
    )
    for a in data["answers"]:
        img = images[a["image_id"]]
        writer.writerow(
            [
                a["reader_id"],
                _cell(names[a["reader_id"]]),
                a["position"],
                a["image_id"],
                a["label"],
                img["truth"],
                img["contrast"],
                _cell(img["model"]),
                _cell(img["subject"]),
                f"{a['answered']:.3f}",
            ]
        )
    return buf.getvalue()
