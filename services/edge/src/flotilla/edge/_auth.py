"""Who is calling, and what they may do: API keys (stored hashed) and JWT bearer tokens,
each with scopes. Pure functions.

An API key is configured as ``client:sha256hex[:scope scope …]`` (a key without scopes gets
the customer scopes); a JWT's client is its ``sub`` and its scopes the standard
space-separated ``scope`` claim (RFC 8693 §4.2). Verification is CPU only and bounded
(credentials longer than :data:`MAX_CREDENTIAL_BYTES` are refused unread), so it can run
before the rate limit decides, in one round trip, whether the caller may go on.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from dataclasses import dataclass

import jwt

from ._routing import CUSTOMER_SCOPES

#: Longer credentials are refused before any parsing or hashing.
MAX_CREDENTIAL_BYTES = 4096


@dataclass(frozen=True)
class Client:
    """An authenticated caller; ``id`` keys its rate limit and owns its orders."""

    id: str
    method: str
    scopes: frozenset[str] = frozenset(CUSTOMER_SCOPES)


class AuthError(Exception):
    """The request carries no usable credentials; the message says what to fix."""


def hash_api_key(key: str) -> str:
    """The form in which an API key is configured: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyHolder:
    """Whose an API key is and what it may do."""

    client: str
    scopes: frozenset[str]


def parse_api_keys(spec: str) -> dict[str, KeyHolder]:
    """``client:sha256hex[:scope scope …],…`` → {sha256hex: holder}."""
    keys = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        client, _, rest = item.partition(":")
        digest, scopes = rest[:64], rest[64:]
        if (
            not client
            or len(digest) != 64
            or digest.strip(string.hexdigits)
            or (scopes and not scopes.startswith(":"))
        ):
            raise ValueError(
                f"FLOTILLA_EDGE_API_KEYS entry {item!r} is not client:sha256hex[:scope scope …]"
            )
        granted = frozenset(scopes[1:].split()) if scopes else frozenset(CUSTOMER_SCOPES)
        keys[digest.lower()] = KeyHolder(client, granted)
    return keys


@dataclass(frozen=True)
class Authenticator:
    api_keys: dict[str, KeyHolder]
    jwt_key: str
    jwt_algorithms: tuple[str, ...]
    jwt_issuer: str
    jwt_audience: str
    jwt_leeway_s: float = 30.0

    def _by_api_key(self, key: str) -> Client:
        digest = hash_api_key(key)
        for known, holder in self.api_keys.items():
            if hmac.compare_digest(known, digest):
                return Client(id=f"key:{holder.client}", method="api-key", scopes=holder.scopes)
        raise AuthError("the API key is not known")

    def _by_jwt(self, token: str) -> Client:
        try:
            claims = jwt.decode(
                token,
                self.jwt_key,
                algorithms=list(self.jwt_algorithms),
                audience=self.jwt_audience,
                issuer=self.jwt_issuer,
                leeway=self.jwt_leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthError("the token is not valid yet (nbf or iat in the future)") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError(f"the token's audience is not {self.jwt_audience}") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(f"the token's issuer is not {self.jwt_issuer}") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"the token is invalid: {exc}") from exc
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise AuthError("the token's scope claim is not a space-separated string")
        return Client(id=f"jwt:{claims['sub']}", method="jwt", scopes=frozenset(scope.split()))

    def authenticate(self, authorization: str | None, api_key: str | None) -> Client:
        """Identify the caller from ``Authorization: Bearer …`` or ``X-API-Key``.

        Raises:
            AuthError: no credentials, or credentials that do not check out.
        """
        if len(api_key or "") > MAX_CREDENTIAL_BYTES or len(authorization or "") > (
            MAX_CREDENTIAL_BYTES
        ):
            raise AuthError(f"credentials longer than {MAX_CREDENTIAL_BYTES} bytes are refused")
        if api_key:
            return self._by_api_key(api_key)
        if not authorization:
            raise AuthError("send Authorization: Bearer <API key or JWT>")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise AuthError("use the Bearer scheme: Authorization: Bearer <API key or JWT>")
        credentials = credentials.strip()
        if credentials.count(".") == 2:  # NOTE: the shape of a JWT; API keys have no dots
            return self._by_jwt(credentials)
        return self._by_api_key(credentials)
