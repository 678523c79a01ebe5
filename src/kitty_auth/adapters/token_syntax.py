"""What a token (or a header value carrying one) may look like on the wire, for every adapter.

One definition, so that the HTTP gateway and the WebSocket connector accept and send the same
tokens: a token is 1 to 16,384 printable ASCII characters without spaces. Anything else (a CR/LF,
a control character, non-ASCII) is never put in a header: h11 and websockets would refuse it and
quote the value in their error message.
"""

from __future__ import annotations

import re
from typing import Final

MAX_TOKEN_LENGTH: Final = 16_384
TOKEN_PATTERN: Final = r"^[\x21-\x7e]+$"  # the length is checked separately (MAX_TOKEN_LENGTH)
_TOKEN_RE: Final = re.compile(TOKEN_PATTERN)
_HEADER_VALUE_RE: Final = re.compile(r"^[\x20-\x7e]+$")  # spaces allowed: "Bearer <token>"


def is_token(value: object) -> bool:
    """True for a value we may send as (or accept for) a token."""
    return isinstance(value, str) and len(value) <= MAX_TOKEN_LENGTH and bool(_TOKEN_RE.fullmatch(value))


def is_header_value(value: object) -> bool:
    """True for a header value we may send (printable ASCII, spaces allowed)."""
    return isinstance(value, str) and len(value) <= MAX_TOKEN_LENGTH + 64 and bool(_HEADER_VALUE_RE.fullmatch(value))
