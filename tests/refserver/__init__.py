"""Local reference server (Django REST framework + simplejwt, and OAuth 2.0 through django-oauth-toolkit, over TLS)
for end-to-end tests and `make demo`.

Only standard-library names live here so that `refserver.harness` can be imported without Django.
"""

DEMO_USERNAME = "demo@spec-kitty.test"
DEMO_PASSWORD = "demo-password"

DEFAULT_ACCESS_LIFETIME = 900  # seconds, as the contract's 15 minutes
DEFAULT_REFRESH_LIFETIME = 604800  # seconds, as the contract's 7 days
DEFAULT_WS_TOKEN_LIFETIME = 900  # seconds
DEFAULT_PING_INTERVAL = 1.0  # seconds between application-level pings on the WebSocket

DEMO_NAME = "Demo User"
DEMO_TEAM_SLUG = "acme"  # the shared team named by password logins' `team_slug`
DEMO_PRIVATE_TEAM_SLUG = "demo"  # the demo user's private teamspace (OAuth sessions' team)

# Password (simplejwt) server and the spec-kitty 2.x host's endpoints
TOKEN_PATH = "/api/v1/token/"
REFRESH_PATH = "/api/v1/token/refresh/"
BLACKLIST_PATH = "/api/v1/token/blacklist/"
WS_TOKEN_PATH = "/api/v1/ws-token/"
WS_EVENTS_PATH = "/ws/v1/events/"
SYNC_HEALTH_PATH = "/api/v1/sync/health/"
EVENTS_BATCH_PATH = "/api/v1/events/batch/"
PUSH_CONTENT_PATH = "/api/dossier/push-content/"
ME_PATH = "/api/v1/me"

# OAuth server (spec-kitty 3.x)
OAUTH_CLIENT_ID = "cli_native"
OAUTH_SCOPE = "offline_access"
OAUTH_METADATA_PATH = "/.well-known/oauth-authorization-server"
OAUTH_AUTHORIZE_PATH = "/oauth/authorize"
OAUTH_TOKEN_PATH = "/oauth/token"
OAUTH_DEVICE_PATH = "/oauth/device"
OAUTH_REVOKE_PATH = "/oauth/revoke"
DEVICE_VERIFY_PATH = "/oauth/device/verify"
LOGIN_PATH = "/accounts/login/"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

CONTROL_PREFIX = "/_control/"
CONTROL_SECRET_HEADER = "X-Control-Secret"
