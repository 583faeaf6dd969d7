"""Conversations saved as they happen, in SQLite, safe for several llmcli processes.

Every message is written in its own short transaction the moment it exists (the
user's message before the model answers), so a crash loses at most the answer
being generated. WAL mode lets a chat read while another process writes, and a
busy timeout makes two chats and a few ``ask -c`` wait for each other instead of
failing. Nothing touches the database until a command needs it, so a corrupt file
breaks only the commands that use history, each with a message naming the file.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcli import paths
from llmcli.errors import DataError, LlmcliError, StorageError, TemporaryFailure
from llmcli.session.conversation import ChatMessage, Conversation

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    model TEXT,
    model_ref TEXT,
    system TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    interrupted INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    stats TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
"""


@dataclass
class ConversationInfo:
    """A row of ``llmcli history list``."""

    id: int
    created: float
    updated: float
    model: str | None
    model_ref: str | None
    system: str | None
    messages: int
    title: str

    def to_dict(self) -> dict[str, Any]:
        """``history list --json``'s object (docs/json.md): ``message_count`` is a count."""
        return {
            "id": self.id,
            "created": _iso(self.created),
            "updated": _iso(self.updated),
            "model": self.model,
            "ref": self.model_ref,
            "system": self.system,
            "message_count": self.messages,
            "title": self.title,
        }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class HistoryStore:
    """The conversations database (``llmcli.paths.conversations_db()`` by default)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.conversations_db()
        self._conn: sqlite3.Connection | None = None

    # -- connection -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create {self.path.parent}: {exc.strerror or exc}",
                hint="check the permissions of the llmcli data directory",
            ) from exc
        with self._errors():
            self._conn = self._open_with_retries()
        return self._conn

    def _open_with_retries(self) -> sqlite3.Connection:
        """Open and set up the database, waiting out other processes doing the same.

        Switching to WAL and creating the schema take locks for which SQLite can answer
        "database is locked" at once, without calling the busy handler, when several
        processes open a new database at the same moment; so setup is retried until
        the busy timeout instead.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA foreign_keys = ON")
                self._migrate(conn)
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            except BaseException:
                conn.close()
                raise

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise DataError(
                f"conversation history {self.path} was written by a newer llmcli "
                f"(schema {version})",
                hint="upgrade llmcli",
            )
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's exceptions as llmcli errors that name the file and the fix."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise TemporaryFailure(
                    f"conversation history {self.path} is busy: {text}",
                    hint="another llmcli is writing to it; try again",
                ) from exc
            if "disk" in text or "readonly" in text or "unable to open" in text:
                raise StorageError(
                    f"cannot write conversation history {self.path}: {text}",
                    hint="check free disk space and the file's permissions",
                ) from exc
            raise self._corrupt(exc) from exc
        except sqlite3.IntegrityError as exc:  # a foreign key: the conversation was removed
            raise LlmcliError(
                "the conversation was removed (llmcli history rm) while this command was "
                "writing to it; this message was not saved",
                hint="start a new conversation: /clear in a chat, or llmcli chat",
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc

    def _corrupt(self, exc: Exception) -> DataError:
        return DataError(
            f"conversation history {self.path} is unreadable ({exc})",
            hint=f"move it aside to start a new history: mv '{self.path}' '{self.path}.bad'",
        )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (taken at once, so writers queue instead of deadlocking)."""
        conn = self._connect()
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        conn = self._connect()
        with self._errors():
            conn.row_factory = sqlite3.Row
            try:
                return list(conn.execute(sql, args))
            finally:
                conn.row_factory = None

    # -- writing ----------------------------------------------------------------------

    def create(
        self, *, model: str | None, model_ref: str | None = None, system: str | None = None
    ) -> int:
        now = time.time()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO conversations (created, updated, model, model_ref, system) "
                "VALUES (?, ?, ?, ?, ?)",
                (now, now, model, model_ref, system),
            )
            return int(cursor.lastrowid or 0)

    def append(
        self, conversation_id: int, message: ChatMessage, *, stats: Mapping[str, Any] | None = None
    ) -> int:
        """Save one message at the end of a conversation; sets and returns ``message.id``."""
        now = time.time()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO messages (conversation_id, role, content, interrupted, created, stats)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    message.role,
                    message.content,
                    int(message.interrupted),
                    now,
                    json.dumps(dict(stats)) if stats else None,
                ),
            )
            conn.execute(
                "UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id)
            )
        message.id = int(cursor.lastrowid or 0)
        return message.id

    def append_exchange(
        self,
        conversation_id: int | None,
        messages: Sequence[tuple[ChatMessage, Mapping[str, Any] | None]],
        *,
        create: Mapping[str, str | None] | None = None,
    ) -> int:
        """Save several messages (a question and its answer) in one transaction, so turns of
        concurrent ``ask -c`` never interleave; with ``conversation_id`` None a conversation
        is created first (``create`` holds its model, model_ref and system). Returns its id."""
        now = time.time()
        with self._write() as conn:
            if conversation_id is None:
                fields = dict(create or {})
                cursor = conn.execute(
                    "INSERT INTO conversations (created, updated, model, model_ref, system) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (now, now, fields.get("model"), fields.get("model_ref"), fields.get("system")),
                )
                conversation_id = int(cursor.lastrowid or 0)
            elif create is not None and "system" in create:
                conn.execute(
                    "UPDATE conversations SET system = ? WHERE id = ?",
                    (create["system"], conversation_id),
                )
            for message, stats in messages:
                cursor = conn.execute(
                    "INSERT INTO messages (conversation_id, role, content, interrupted, created, "
                    "stats) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        message.role,
                        message.content,
                        int(message.interrupted),
                        now,
                        json.dumps(dict(stats)) if stats else None,
                    ),
                )
                message.id = int(cursor.lastrowid or 0)
            conn.execute(
                "UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id)
            )
        return conversation_id

    def delete_messages(self, conversation_id: int, messages: list[ChatMessage]) -> None:
        ids = [m.id for m in messages if m.id is not None]
        if not ids:
            return
        with self._write() as conn:
            conn.executemany(
                "DELETE FROM messages WHERE id = ? AND conversation_id = ?",
                [(i, conversation_id) for i in ids],
            )
            conn.execute(
                "UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), conversation_id)
            )

    def update(self, conversation_id: int, **fields: str | None) -> None:
        """Change ``system``, ``model`` or ``model_ref`` of a conversation."""
        allowed = {"system", "model", "model_ref"}
        if not fields or not set(fields) <= allowed:
            raise ValueError(f"can only update {sorted(allowed)}")
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self._write() as conn:
            conn.execute(
                f"UPDATE conversations SET {columns}, updated = ? WHERE id = ?",
                (*fields.values(), time.time(), conversation_id),
            )

    def remove(self, conversation_id: int) -> bool:
        with self._write() as conn:
            conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            cursor = conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            return cursor.rowcount > 0

    def save_new(
        self, conversation: Conversation, *, model: str | None, model_ref: str | None = None
    ) -> int:
        """Store a whole conversation (``/load``) as a new one; sets the ids."""
        conversation.id = self.create(model=model, model_ref=model_ref, system=conversation.system)
        for message in conversation.messages:
            self.append(conversation.id, message)
        return conversation.id

    # -- reading ----------------------------------------------------------------------

    def last_id(self) -> int | None:
        rows = self._read("SELECT id FROM conversations ORDER BY updated DESC, id DESC LIMIT 1")
        return int(rows[0]["id"]) if rows else None

    def info(self, conversation_id: int) -> ConversationInfo:
        rows = self._list_query("WHERE c.id = ?", (conversation_id,))
        if not rows:
            raise LlmcliError(
                f"no conversation {conversation_id} in the history",
                hint="see 'llmcli history list'",
            )
        return rows[0]

    def load(self, conversation_id: int) -> Conversation:
        info = self.info(conversation_id)
        rows = self._read(
            "SELECT id, role, content, interrupted FROM messages "
            "WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        )
        messages = [
            ChatMessage(r["role"], r["content"], bool(r["interrupted"]), int(r["id"])) for r in rows
        ]
        return Conversation(system=info.system, messages=messages, id=conversation_id)

    def message_stats(self, conversation_id: int) -> dict[int, dict[str, Any]]:
        rows = self._read(
            "SELECT id, stats FROM messages WHERE conversation_id = ? AND stats IS NOT NULL",
            (conversation_id,),
        )
        return {int(r["id"]): json.loads(r["stats"]) for r in rows}

    def conversations(self, limit: int | None = None) -> list[ConversationInfo]:
        return self._list_query("", (), limit=limit)

    def _list_query(
        self, where: str, args: tuple[Any, ...], *, limit: int | None = None
    ) -> list[ConversationInfo]:
        sql = (
            "SELECT c.id, c.created, c.updated, c.model, c.model_ref, c.system, "
            "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS n, "
            "(SELECT content FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user' "
            "ORDER BY m.id LIMIT 1) AS first "
            f"FROM conversations c {where} ORDER BY c.updated DESC, c.id DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [
            ConversationInfo(
                id=int(r["id"]),
                created=float(r["created"]),
                updated=float(r["updated"]),
                model=r["model"],
                model_ref=r["model_ref"],
                system=r["system"],
                messages=int(r["n"]),
                title=Conversation(messages=[ChatMessage("user", r["first"] or "")]).title,
            )
            for r in self._read(sql, args)
        ]
