"""Configures Django in code for the reference server: settings, a fresh SQLite database, migrations, the demo user
and the OAuth client."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import django
from django.conf import settings
from django.core.management import call_command

from refserver import DEVICE_VERIFY_PATH, LOGIN_PATH, OAUTH_SCOPE

TEMPLATES_DIR = Path(__file__).resolve().with_name("templates")


def oauth_access_lifetime(_request: object) -> int:
    """The access-token lifetime oauthlib gives new OAuth tokens: read at each issue, so `set_lifetimes` takes
    effect at once (and 0 stays 0: oauthlib replaces a plain 0 by an hour)."""
    from oauth2_provider.settings import oauth2_settings

    return int(oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS)


def configure_django(
    state_dir: Path, access_lifetime: float, refresh_lifetime: float, *, keep_database: bool = False, secret_key: str | None = None
) -> None:
    """Configure settings, set Django up, migrate a fresh database in `state_dir` (`keep_database`: the one already
    there, so its tokens stay valid), seed the demo user and client. `secret_key` signs the JWTs (default: a new one)."""
    database = state_dir / "db.sqlite3"
    if not keep_database:
        database.unlink(missing_ok=True)
    settings.configure(
        DEBUG=False,
        SECRET_KEY=secret_key or secrets.token_urlsafe(50),
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF="refserver.urls",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "rest_framework",
            "rest_framework_simplejwt.token_blacklist",
            "oauth2_provider",
        ],
        # Sessions, CSRF and users for the login, consent and device pages; the API views are CSRF-exempt.
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [str(TEMPLATES_DIR)],  # before the apps': our base.html replaces the toolkit's
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                    ]
                },
            }
        ],
        LOGIN_URL=LOGIN_PATH,
        LOGIN_REDIRECT_URL=DEVICE_VERIFY_PATH,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(database)}},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        USE_TZ=True,
        TIME_ZONE="UTC",
        # A test server: a fast hasher keeps each login in milliseconds instead of ~0.5 s.
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
            "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
        },
        SIMPLE_JWT={
            "ACCESS_TOKEN_LIFETIME": timedelta(seconds=access_lifetime),
            "REFRESH_TOKEN_LIFETIME": timedelta(seconds=refresh_lifetime),
            "ROTATE_REFRESH_TOKENS": True,
            "BLACKLIST_AFTER_ROTATION": True,
            "UPDATE_LAST_LOGIN": False,
        },
        OAUTH2_PROVIDER={
            "OAUTH2_VALIDATOR_CLASS": "refserver.machine.MachineValidator",  # refserver.oauth.Validator + machine clients
            "OAUTH2_SERVER_CLASS": "refserver.machine.Server",  # a client credentials grant that can give a refresh token
            "SCOPES": {OAUTH_SCOPE: "Stay logged in (refresh tokens)"},
            "DEFAULT_SCOPES": [OAUTH_SCOPE],
            "PKCE_REQUIRED": True,
            "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,  # S256 only
            "ROTATE_REFRESH_TOKEN": True,
            "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,  # a rotated-out refresh token is refused at once
            "ACCESS_TOKEN_EXPIRE_SECONDS": access_lifetime,
            "REFRESH_TOKEN_EXPIRE_SECONDS": refresh_lifetime,
            "OAUTH_DEVICE_VERIFICATION_URI": DEVICE_VERIFY_PATH,  # made absolute per request by refserver.oauth
            "EXTRA_SERVER_KWARGS": {"token_expires_in": oauth_access_lifetime},
        },
        # Only server errors reach stderr; request lines (and so URLs) are never logged.
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"stderr": {"class": "logging.StreamHandler"}},
            "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False}},
        },
    )
    django.setup()
    call_command("migrate", verbosity=0)

    from refserver import accounts, oauth

    accounts.create_demo_user()
    oauth.create_client()
