"""Endpoints the spec-kitty 2.x host (spec-kitty-cli 2.1.3) calls besides authentication, and the store of the events
it sent, which tests read through the control API (`RefServer.events()`).

- `GET /api/v1/sync/health/` (`sync status --check`, `sync doctor`): 200 for a valid Bearer token.
- `POST /api/v1/events/batch/` (`sync now`, background sync): gzip-compressed (`Content-Encoding: gzip`) or plain
  JSON `{"events": [...]}`; answers 200 `{"results": [{"event_id", "status": "success" | "duplicate"}]}`, or 400
  `{"error": "No events provided"}` for an empty list (the host's legacy health probe relies on that sentence).
- `POST /api/dossier/push-content/` (artifact bodies after a batch): 201 stored, 200 already there.

Events sent over the events WebSocket are stored too (`source: "ws"`).

Import only after `refserver.config.configure_django` has run.
"""

from __future__ import annotations

import gzip
import json
import threading
from datetime import datetime, timezone
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from refserver.api import ProtectedView


class EventStore:
    """Events received, in order, each as {"source", "user", "received_at", "event"}."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._ids: set[str] = set()

    def add(self, source: str, user: str, event: Any) -> str:
        """Store one event; "duplicate" if its event_id was seen before (it is then not stored again)."""
        event_id = event.get("event_id") if isinstance(event, dict) else None
        with self._lock:
            if isinstance(event_id, str) and event_id in self._ids:
                return "duplicate"
            if isinstance(event_id, str):
                self._ids.add(event_id)
            received_at = datetime.now(timezone.utc).isoformat()
            self._events.append({"source": source, "user": user, "received_at": received_at, "event": event})
        return "success"

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self._ids.clear()


events = EventStore()
artifacts: dict[tuple[Any, ...], str] = {}  # (project, feature, branch, path) -> content hash


def reset() -> None:
    events.clear()
    artifacts.clear()


def bad_request(error: str, details: str = "") -> Response:
    return Response({"error": error, "details": details}, status=400)


class SyncHealthView(ProtectedView):
    def get(self, request: Request) -> Response:
        return Response({"status": "ok", "user": request.user.get_username()})


class GzipJSONParser(JSONParser):
    """JSON, gzip-compressed when the request says `Content-Encoding: gzip`."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        request = (parser_context or {}).get("request")
        if request is None or request.headers.get("Content-Encoding", "").lower() != "gzip":
            return super().parse(stream, media_type, parser_context)
        try:
            return json.loads(gzip.decompress(stream.read()))
        except (OSError, EOFError, ValueError) as exc:
            raise ParseError(f"gzip JSON parse error - {exc}") from exc


class EventsBatchView(ProtectedView):
    parser_classes = [GzipJSONParser]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ParseError):  # in the shape the host reads 400s in
            return bad_request("Invalid payload", str(exc.detail))
        return super().handle_exception(exc)

    def post(self, request: Request) -> Response:
        payload = request.data
        batch = payload.get("events") if isinstance(payload, dict) else None
        if not isinstance(batch, list):
            return bad_request("Invalid payload", "expected an object with a list 'events'")
        if not batch:
            return bad_request("No events provided")
        user = request.user.get_username()
        results = []
        for event in batch:
            if not isinstance(event, dict) or not isinstance(event.get("event_id"), str):
                results.append({"event_id": None, "status": "rejected", "error": "invalid event: missing event_id"})
                continue
            results.append({"event_id": event["event_id"], "status": events.add("batch", user, event)})
        return Response({"results": results})


class PushContentView(ProtectedView):
    def post(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        key = tuple(data.get(name) for name in ("project_uuid", "feature_slug", "target_branch", "artifact_path"))
        if not data.get("artifact_path") or not data.get("content_hash"):
            return Response({"detail": "artifact_path and content_hash are required"}, status=400)
        if artifacts.get(key) == data["content_hash"]:
            return Response({"status": "already_exists"}, status=200)
        artifacts[key] = data["content_hash"]
        return Response({"status": "stored"}, status=201)
