"""edge: the platform's front door (Falcon, ASGI)."""

from ._auth import Authenticator, AuthError, Client, KeyHolder, hash_api_key, parse_api_keys
from ._breaker import CircuitBreaker
from ._headers import (
    downstream_response_headers,
    public_location,
    retry_after_s,
    upstream_request_headers,
)
from ._paths import UnsafePath, encode_segments, parse_path
from ._routing import (
    CUSTOMER_SCOPES,
    OPERATOR_SCOPE,
    ROUTE_TABLE,
    Destination,
    MethodNotAllowed,
    NoRoute,
    Route,
    Rule,
    resolve,
)
from ._settings import EdgeSettings
from .app import create_admin_app, create_app

__all__ = [
    "CUSTOMER_SCOPES",
    "OPERATOR_SCOPE",
    "ROUTE_TABLE",
    "AuthError",
    "Authenticator",
    "CircuitBreaker",
    "Client",
    "Destination",
    "EdgeSettings",
    "KeyHolder",
    "MethodNotAllowed",
    "NoRoute",
    "Route",
    "Rule",
    "UnsafePath",
    "create_admin_app",
    "create_app",
    "downstream_response_headers",
    "encode_segments",
    "hash_api_key",
    "parse_api_keys",
    "parse_path",
    "public_location",
    "resolve",
    "retry_after_s",
    "upstream_request_headers",
]
