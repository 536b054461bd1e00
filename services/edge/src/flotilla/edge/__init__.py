"""edge: the platform's front door (Falcon, ASGI)."""

from ._auth import Authenticator, AuthError, Client, hash_api_key, parse_api_keys
from ._breaker import CircuitBreaker
from ._headers import downstream_response_headers, upstream_request_headers
from ._routing import Destination, resolve
from ._settings import EdgeSettings, Route
from .app import create_app

__all__ = [
    "AuthError",
    "Authenticator",
    "CircuitBreaker",
    "Client",
    "Destination",
    "EdgeSettings",
    "Route",
    "create_app",
    "downstream_response_headers",
    "hash_api_key",
    "parse_api_keys",
    "resolve",
    "upstream_request_headers",
]
