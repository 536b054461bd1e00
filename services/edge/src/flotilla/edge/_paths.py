"""Reading a request's raw path safely (pure functions).

The edge routes on the path exactly as the client sent it (the ASGI ``raw_path``), never on a
decoded and re-joined one: decoding first is how ``/api/orders/%2e%2e/openapi.json`` or
``/api/orders/..%2freadyz`` escape a route's prefix. A path is split on its literal ``/``,
each segment is percent-decoded on its own, and anything that could mean something else to
the next hop is refused before routing: dot segments (plain or encoded), empty segments,
encoded ``/``, ``?`` and ``#``, backslashes, NUL and other control characters, malformed
percent-encoding, bytes that are not UTF-8, and overlong paths. What the upstream receives is
the decoded segments encoded again (:func:`encode_segments`), so it sees one spelling of one
path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

#: RFC 3986 pchar minus percent: what may stay literal in a path segment.
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"
_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
# NOTE: what a segment may not contain once decoded: separators that would change the path,
# query or fragment on the next hop, Windows' separator, and every control character.
_FORBIDDEN = {
    "/": "an encoded '/' (%2F)",
    "?": "an encoded '?' (%3F)",
    "#": "an encoded '#' (%23)",
    "\\": "a backslash",
}

#: The longest raw path the edge reads (Envoy's default header limit is far larger; no route
#: of ours needs more than a few hundred bytes).
MAX_PATH_BYTES = 2048


@dataclass(frozen=True)
class UnsafePath(Exception):
    """A path the edge refuses to route; ``detail`` says what is wrong with it."""

    status: int
    detail: str

    def __str__(self) -> str:
        return self.detail


def parse_path(raw: bytes, *, max_bytes: int = MAX_PATH_BYTES) -> tuple[str, ...]:
    """The decoded segments of the raw request path ``raw`` (``b"/a/b%20c"`` → ``("a", "b c")``).

    Raises:
        UnsafePath: 414 for an overlong path, 400 for anything ambiguous or unsafe.
    """
    if len(raw) > max_bytes:
        raise UnsafePath(414, f"the path is longer than {max_bytes} bytes")
    if not raw.startswith(b"/"):
        raise UnsafePath(400, "the path must start with '/'")
    if raw == b"/":
        return ()
    if any(byte > 0x7E or byte < 0x21 for byte in raw):
        raise UnsafePath(400, "the path holds a byte that must be percent-encoded")
    if _PERCENT.search(raw):
        raise UnsafePath(400, "the path holds a '%' that does not start a %XX escape")
    return tuple(_segment(part) for part in raw[1:].split(b"/"))


def _segment(raw: bytes) -> str:
    if not raw:
        raise UnsafePath(400, "the path holds an empty segment ('//' or a trailing '/')")
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafePath(400, "a path segment does not decode to UTF-8") from None
    if text in (".", ".."):
        raise UnsafePath(400, "the path holds a dot segment ('.' or '..', plain or encoded)")
    for char, name in _FORBIDDEN.items():
        if char in text:
            raise UnsafePath(400, f"the path holds {name}")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise UnsafePath(400, "the path holds a control character (NUL included)")
    return text


def encode_segments(segments: tuple[str, ...]) -> str:
    """The one spelling of ``segments`` sent upstream: ``("b c",)`` → ``"/b%20c"``."""
    return "".join("/" + quote(segment, safe=_SEGMENT_SAFE) for segment in segments)
