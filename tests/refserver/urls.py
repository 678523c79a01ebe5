"""The reference server's Django URLs (the root URLconf); the WebSocket and /_control/ are served by `refserver.asgi`.

The OAuth views carry django-oauth-toolkit's URL names in its `oauth2_provider` namespace, which its views reverse.
"""

from django.contrib.auth.views import LoginView
from django.urls import include, path

from refserver import (
    BLACKLIST_PATH,
    DEVICE_VERIFY_PATH,
    EVENTS_BATCH_PATH,
    LOGIN_PATH,
    ME_PATH,
    OAUTH_AUTHORIZE_PATH,
    OAUTH_DEVICE_PATH,
    OAUTH_METADATA_PATH,
    OAUTH_REVOKE_PATH,
    OAUTH_TOKEN_PATH,
    PUSH_CONTENT_PATH,
    REFRESH_PATH,
    SYNC_HEALTH_PATH,
    TOKEN_PATH,
    WS_TOKEN_PATH,
    api,
    host,
    oauth,
)
from oauth2_provider import views as dot_views


def route(url_path: str, view, name: str | None = None) -> object:
    return path(url_path.removeprefix("/"), view, name=name)


def oauth_route(url_path: str, view, name: str) -> object:
    return route(url_path, oauth.switchable(view), name)


oauth_urlpatterns = [
    oauth_route(OAUTH_AUTHORIZE_PATH, dot_views.AuthorizationView.as_view(), "authorize"),
    oauth_route(OAUTH_TOKEN_PATH, oauth.TokenView.as_view(), "token"),
    oauth_route(OAUTH_REVOKE_PATH, dot_views.RevokeTokenView.as_view(), "revoke-token"),
    oauth_route(OAUTH_DEVICE_PATH, oauth.DeviceAuthorizationView.as_view(), "device-authorization"),
    oauth_route(DEVICE_VERIFY_PATH, dot_views.DeviceUserCodeView.as_view(), "device"),
    oauth_route(f"{OAUTH_DEVICE_PATH}/confirm/<slug:client_id>/<slug:user_code>", dot_views.DeviceConfirmView.as_view(), "device-confirm"),
    oauth_route(f"{OAUTH_DEVICE_PATH}/status/<slug:client_id>/<slug:user_code>", dot_views.DeviceGrantStatusView.as_view(), "device-grant-status"),
]

urlpatterns = [
    route(TOKEN_PATH, api.TokenView.as_view()),
    route(REFRESH_PATH, api.RefreshView.as_view()),
    route(BLACKLIST_PATH, api.BlacklistView.as_view()),
    route(WS_TOKEN_PATH, api.WsTokenView.as_view()),
    route(ME_PATH, api.MeView.as_view()),
    route(SYNC_HEALTH_PATH, host.SyncHealthView.as_view()),
    route(EVENTS_BATCH_PATH, host.EventsBatchView.as_view()),
    route(PUSH_CONTENT_PATH, host.PushContentView.as_view()),
    route(OAUTH_METADATA_PATH, oauth.metadata),
    route(LOGIN_PATH, oauth.switchable(LoginView.as_view()), "login"),
    path("", include((oauth_urlpatterns, "oauth2_provider"))),
]
