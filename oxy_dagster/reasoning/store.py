"""The instruction store: latest instruction + embedding per user id, behind one interface.

``make_store(url)``: ``sqlite:///path.db`` (the embedded default) or
``redis://host:port/db`` (production). Both keep, per user, the latest record
(instruction, reason, float32 vector, version, timestamp, source) and, for the
near-line path, one entry per (user, 5-minute window) so a replayed window
overwrites itself instead of adding a duplicate; plus named cursors. A batch of
records, with the cursor that follows it, is written atomically (one SQLite
transaction / one Redis MULTI).

The same store keeps each user's recent behaviour history (item ids and behaviours,
oldest first), which the pipeline writes (``deployed_model``) and the recommendation
service reads when a request does not send a history.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class InstructionRecord:
    user_id: str
    instruction: str
    reason: str
    vector: np.ndarray = field(repr=False)
    version: str
    ts: float
    source: str  # daily | nearline | default
    window: int | None = None  # near-line window start (epoch seconds)

    def meta(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("vector",)}


def _vec(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32).copy()


class SqliteStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS latest (user_id TEXT PRIMARY KEY, meta TEXT NOT NULL, vector BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS windows (user_id TEXT, window INTEGER, meta TEXT NOT NULL,
                                                PRIMARY KEY (user_id, window));
            CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS histories (user_id TEXT PRIMARY KEY, events TEXT NOT NULL);""")

    def put_many(self, records: list[InstructionRecord], cursor: tuple[str, str] | None = None) -> None:
        """Write ``records`` (and commit ``cursor`` = (name, value)) in one transaction."""
        with self.db:  # one transaction
            self.db.execute("BEGIN")
            if cursor is not None:
                self.db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", cursor)
            for r in records:
                meta = json.dumps(r.meta())
                self.db.execute("INSERT OR REPLACE INTO latest VALUES (?, ?, ?)",
                                (r.user_id, meta, np.asarray(r.vector, np.float32).tobytes()))
                if r.window is not None:
                    self.db.execute("INSERT OR REPLACE INTO windows VALUES (?, ?, ?)", (r.user_id, r.window, meta))

    def get(self, user_id: str) -> InstructionRecord | None:
        row = self.db.execute("SELECT meta, vector FROM latest WHERE user_id = ?", (user_id,)).fetchone()
        return InstructionRecord(**json.loads(row[0]), vector=_vec(row[1])) if row else None

    def windows(self, user_id: str | None = None) -> list[dict]:
        q, args = "SELECT meta FROM windows", ()
        if user_id is not None:
            q, args = q + " WHERE user_id = ?", (user_id,)
        return [json.loads(m) for (m,) in self.db.execute(q + " ORDER BY user_id, window", args)]

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM latest").fetchone()[0]

    def get_cursor(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_cursor(self, name: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (name, value))

    def put_histories(self, histories: dict[str, list[tuple[str, str]]]) -> None:
        """user -> [(item_id, behavior), ...] oldest first; one transaction."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO histories VALUES (?, ?)",
                                ((u, json.dumps(h)) for u, h in histories.items()))

    def get_history(self, user_id: str) -> list[tuple[str, str]] | None:
        row = self.db.execute("SELECT events FROM histories WHERE user_id = ?", (user_id,)).fetchone()
        return [tuple(e) for e in json.loads(row[0])] if row else None

    def close(self) -> None:
        self.db.close()


class RedisStore:
    def __init__(self, url: str, prefix: str = "oxy"):
        import redis

        self.r = redis.Redis.from_url(url)
        self.p = prefix

    def put_many(self, records: list[InstructionRecord], cursor: tuple[str, str] | None = None) -> None:
        """Write ``records`` (and commit ``cursor`` = (name, value)) in one MULTI ... EXEC: all or nothing."""
        pipe = self.r.pipeline(transaction=True)
        if cursor is not None:
            pipe.set(f"{self.p}:cursor:{cursor[0]}", cursor[1])
        for rec in records:
            meta = json.dumps(rec.meta())
            pipe.hset(f"{self.p}:instr:{rec.user_id}", mapping={
                "meta": meta, "vector": np.asarray(rec.vector, np.float32).tobytes()})
            if rec.window is not None:
                pipe.hset(f"{self.p}:windows:{rec.user_id}", str(rec.window), meta)
                pipe.sadd(f"{self.p}:window_users", rec.user_id)
        pipe.execute()

    def get(self, user_id: str) -> InstructionRecord | None:
        h = self.r.hgetall(f"{self.p}:instr:{user_id}")
        return InstructionRecord(**json.loads(h[b"meta"]), vector=_vec(h[b"vector"])) if h else None

    def windows(self, user_id: str | None = None) -> list[dict]:
        users = [user_id] if user_id is not None else sorted(u.decode() for u in
                                                             self.r.smembers(f"{self.p}:window_users"))
        out = []
        for u in users:
            entries = self.r.hgetall(f"{self.p}:windows:{u}")
            out += [json.loads(v) for _, v in sorted(entries.items(), key=lambda kv: int(kv[0]))]
        return out

    def count(self) -> int:
        return sum(1 for _ in self.r.scan_iter(f"{self.p}:instr:*"))

    def get_cursor(self, name: str) -> str | None:
        v = self.r.get(f"{self.p}:cursor:{name}")
        return v.decode() if v is not None else None

    def set_cursor(self, name: str, value: str) -> None:
        self.r.set(f"{self.p}:cursor:{name}", value)

    def put_histories(self, histories: dict[str, list[tuple[str, str]]], chunk: int = 5000) -> None:
        """user -> [(item_id, behavior), ...] oldest first; MULTI/EXEC per chunk of users."""
        users = list(histories)
        for i in range(0, len(users), chunk):
            pipe = self.r.pipeline(transaction=True)
            for u in users[i:i + chunk]:
                pipe.set(f"{self.p}:hist:{u}", json.dumps(histories[u]))
            pipe.execute()

    def get_history(self, user_id: str) -> list[tuple[str, str]] | None:
        v = self.r.get(f"{self.p}:hist:{user_id}")
        return [tuple(e) for e in json.loads(v)] if v is not None else None

    def close(self) -> None:
        self.r.close()


def make_store(url: str):
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///"):])
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url)
    raise ValueError(f"instruction store URL must be sqlite:///PATH or redis://HOST:PORT/DB, not {url!r}")
