"""The journal of every token the reference server hands out (access, refresh, ws, device code), for leak checks and
for telling which request rotated which refresh token.

One JSON object a line in `STATE_DIR/issued-tokens.jsonl` (0600, beside the database, which holds most of these
tokens anyway): {"time": epoch seconds, "kind", "token", "path", "request_time": epoch seconds the request arrived,
"fault": the id of the fault applied to the request or None, "rotated_from_sha256": for a refresh, the SHA-256 of
the refresh token that was sent}. The file survives a restart with the same state (`--keep-state`), so a run that
restarts the server still has every token; the harness reads it directly (`RefServer.issued_tokens()`), even once
the server has stopped.

Standard library only: `refserver.asgi` sets `current_request` (its stats entry for the request) before handing the
request to Django; asgiref copies the context into the worker thread where the views call `record`.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

FILE_NAME = "issued-tokens.jsonl"

current_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("current_request", default=None)

_lock = threading.Lock()
_path: Path | None = None


def fingerprint(token: str) -> str:
    """SHA-256 (hex) of a token: how the journal names the refresh token a refresh consumed."""
    return hashlib.sha256(token.encode()).hexdigest()


def open_journal(state_dir: Path, *, keep: bool) -> Path:
    """Journal to `state_dir`/issued-tokens.jsonl from now on: emptied first unless `keep`; created 0600."""
    global _path
    path = state_dir / FILE_NAME
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if keep else os.O_TRUNC)
    os.close(os.open(path, flags, 0o600))
    _path = path
    return path


def record(kind: str, token: object, *, rotated_from: object = None) -> None:
    """Journal one issued token (nothing happens for a non-string, or before `open_journal`)."""
    if _path is None or not isinstance(token, str) or not token:
        return
    request = current_request.get()
    arrived = None
    if request is not None:
        try:
            arrived = datetime.fromisoformat(request["time"]).timestamp()
        except (KeyError, TypeError, ValueError):
            arrived = None
    line = {
        "time": time.time(),
        "kind": kind,
        "token": token,
        "path": request.get("path") if request else None,
        "request_time": arrived,
        "fault": request.get("fault") if request else None,
        "rotated_from_sha256": fingerprint(rotated_from) if isinstance(rotated_from, str) and rotated_from else None,
    }
    with _lock, open(_path, "a", encoding="utf-8") as journal:
        journal.write(json.dumps(line) + "\n")


def read(state_dir: Path) -> list[dict[str, Any]]:
    """Every journaled token, oldest first ([] when there is no journal); a line cut short is skipped."""
    try:
        text = (Path(state_dir) / FILE_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries
