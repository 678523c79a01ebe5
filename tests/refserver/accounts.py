"""Users of the reference server and their teams: who a token belongs to, `team_slug` and `GET /api/v1/me`.

Teams live in memory beside the Django user (the server starts from a fresh database every time). The demo user
has a private teamspace ("demo") and a shared team ("acme", the `team_slug` of password logins); a user created
through the control API has a private teamspace named after its address, unless told otherwise.

Import only after `refserver.config.configure_django` has run.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from typing import Any

from django.contrib.auth import get_user_model

from refserver import DEMO_NAME, DEMO_PASSWORD, DEMO_PRIVATE_TEAM_SLUG, DEMO_TEAM_SLUG, DEMO_USERNAME


@dataclasses.dataclass(frozen=True)
class Team:
    slug: str
    name: str
    role: str = "member"
    is_private_teamspace: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"id": f"team_{self.slug}", **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    team_slug: str
    teams: tuple[Team, ...]


_lock = threading.Lock()
_profiles: dict[str, Profile] = {}


def default_profile(username: str) -> Profile:
    slug = re.sub(r"[^a-z0-9]+", "-", username.split("@")[0].lower()).strip("-") or "user"
    private = Team(slug, f"{username}'s teamspace", "owner", True)
    return Profile(username, private.slug, (private,))


def create_user(
    username: str,
    password: str,
    *,
    name: str | None = None,
    team_slug: str | None = None,
    teams: list[dict[str, Any]] | None = None,
) -> Profile:
    """Create the user, or reset the password (and teams) of an existing one.

    `teams`: [{"slug", "name", "role", "is_private_teamspace"}]; `team_slug` defaults to the first shared team,
    else the private teamspace."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.email = username if "@" in username else ""
    user.is_active = True
    user.save()
    profile = default_profile(username)
    if teams:
        team_objects = tuple(Team(**team) for team in teams)
        shared = [team.slug for team in team_objects if not team.is_private_teamspace]
        profile = Profile(profile.name, (shared or [team_objects[0].slug])[0], team_objects)
    profile = dataclasses.replace(profile, name=name or profile.name, team_slug=team_slug or profile.team_slug)
    with _lock:
        _profiles[username] = profile
    return profile


def create_demo_user() -> Profile:
    return create_user(
        DEMO_USERNAME,
        DEMO_PASSWORD,
        name=DEMO_NAME,
        teams=[
            {"slug": DEMO_PRIVATE_TEAM_SLUG, "name": "Demo's teamspace", "role": "owner", "is_private_teamspace": True},
            {"slug": DEMO_TEAM_SLUG, "name": "Acme", "role": "member", "is_private_teamspace": False},
        ],
    )


def profile(username: str) -> Profile:
    with _lock:
        return _profiles.get(username) or default_profile(username)


def me(user: Any) -> dict[str, Any]:
    """The body of `GET /api/v1/me` for a Django user."""
    found = profile(user.get_username())
    return {
        "email": user.email or user.get_username(),
        "name": found.name,
        "user_id": f"user_{user.pk}",
        "teams": [team.as_json() for team in found.teams],
    }
