"""Configures Django in code for the reference server: settings, a fresh SQLite database, migrations and the demo user."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import django
from django.conf import settings
from django.core.management import call_command

from refserver import DEMO_PASSWORD, DEMO_USERNAME


def configure_django(state_dir: Path, access_lifetime: float, refresh_lifetime: float) -> None:
    """Configure settings, set Django up, migrate a fresh database in `state_dir` and seed the demo user."""
    database = state_dir / "db.sqlite3"
    database.unlink(missing_ok=True)
    settings.configure(
        DEBUG=False,
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF="refserver.api",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "rest_framework_simplejwt.token_blacklist",
        ],
        MIDDLEWARE=[],
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

    from refserver.api import create_user

    create_user(DEMO_USERNAME, DEMO_PASSWORD)
