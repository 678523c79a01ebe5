"""The reference server's Django URLs (the root URLconf); the WebSocket and /_control/ are served by `refserver.asgi`."""

from django.urls import path

from refserver import (
    BLACKLIST_PATH,
    EVENTS_BATCH_PATH,
    ME_PATH,
    PUSH_CONTENT_PATH,
    REFRESH_PATH,
    SYNC_HEALTH_PATH,
    TOKEN_PATH,
    WS_TOKEN_PATH,
    api,
    host,
)


def route(url_path: str, view) -> object:
    return path(url_path.removeprefix("/"), view)


urlpatterns = [
    route(TOKEN_PATH, api.TokenView.as_view()),
    route(REFRESH_PATH, api.RefreshView.as_view()),
    route(BLACKLIST_PATH, api.BlacklistView.as_view()),
    route(WS_TOKEN_PATH, api.WsTokenView.as_view()),
    route(ME_PATH, api.MeView.as_view()),
    route(SYNC_HEALTH_PATH, host.SyncHealthView.as_view()),
    route(EVENTS_BATCH_PATH, host.EventsBatchView.as_view()),
    route(PUSH_CONTENT_PATH, host.PushContentView.as_view()),
]
