"""Pydantic field types and strict parsing for server responses, shared by the simplejwt and OAuth gateways.

A response that does not validate is MalformedResponseError (or the caller's own error), never
chained: a ValidationError's text quotes the input, which holds tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, StrictFloat, StrictInt, StrictStr, ValidationError

from kitty_auth.adapters.token_syntax import MAX_TOKEN_LENGTH, TOKEN_PATTERN
from kitty_auth.domain.errors import MalformedResponseError
from kitty_auth.domain.model import server_instant

Token = Annotated[StrictStr, Field(min_length=1, max_length=MAX_TOKEN_LENGTH, pattern=TOKEN_PATTERN)]
Seconds = StrictInt | StrictFloat  # the model judges the value (lifetime_from_seconds)
Slug = Annotated[StrictStr, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
SessionId = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]


def _instant(value: datetime) -> datetime:
    try:
        return server_instant(value)
    except MalformedResponseError:
        raise ValueError("not a plausible instant") from None  # pydantic reports a ValueError as invalid


# An expiry instant with a zone, in UTC; Go's zero time, 9999-12-31 and the like are invalid (server_instant).
Instant = Annotated[AwareDatetime, Field(strict=True), AfterValidator(_instant)]

_M = TypeVar("_M", bound=BaseModel)


def parse(model: type[_M], body: bytes, error: Callable[[], Exception] = MalformedResponseError) -> _M:
    """``body`` validated as ``model``; ``error()`` raised (unchained) when it is not one."""
    try:
        return model.model_validate_json(body)
    except (ValidationError, ValueError):
        raise error() from None  # never chained: the validation text quotes the body
