"""Local reference server (Django REST framework + simplejwt over TLS) for end-to-end tests and `make demo`.

Only standard-library names live here so that `refserver.harness` can be imported without Django.
"""

DEMO_USERNAME = "demo@spec-kitty.test"
DEMO_PASSWORD = "demo-password"

DEFAULT_ACCESS_LIFETIME = 900  # seconds, as the contract's 15 minutes
DEFAULT_REFRESH_LIFETIME = 604800  # seconds, as the contract's 7 days
DEFAULT_WS_TOKEN_LIFETIME = 900  # seconds
DEFAULT_PING_INTERVAL = 1.0  # seconds between application-level pings on the WebSocket

TOKEN_PATH = "/api/v1/token/"
REFRESH_PATH = "/api/v1/token/refresh/"
WS_TOKEN_PATH = "/api/v1/ws-token/"
WS_EVENTS_PATH = "/ws/v1/events/"
CONTROL_PREFIX = "/_control/"
CONTROL_SECRET_HEADER = "X-Control-Secret"
