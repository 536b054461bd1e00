"""Who is calling: API keys (stored hashed) and JWT bearer tokens. Pure functions."""

from __future__ import annotations

import hashlib
import hmac
import string
from dataclasses import dataclass

import jwt


@dataclass(frozen=True)
class Client:
    """An authenticated caller; ``id`` keys its rate limit."""

    id: str
    method: str


class AuthError(Exception):
    """The request carries no usable credentials; the message says what to fix."""


def hash_api_key(key: str) -> str:
    """The form in which an API key is configured: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_api_keys(spec: str) -> dict[str, str]:
    """``client:sha256hex,…`` → {sha256hex: client}."""
    keys = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        client, _, digest = item.partition(":")
        if not client or len(digest) != 64 or digest.strip(string.hexdigits):
            raise ValueError(f"FLOTILLA_EDGE_API_KEYS entry {item!r} is not client:sha256hex")
        keys[digest.lower()] = client
    return keys


@dataclass(frozen=True)
class Authenticator:
    api_keys: dict[str, str]
    jwt_key: str
    jwt_algorithms: tuple[str, ...]
    jwt_issuer: str
    jwt_audience: str

    def _by_api_key(self, key: str) -> Client:
        digest = hash_api_key(key)
        for known, client in self.api_keys.items():
            if hmac.compare_digest(known, digest):
                return Client(id=f"key:{client}", method="api-key")
        raise AuthError("the API key is not known")

    def _by_jwt(self, token: str) -> Client:
        try:
            claims = jwt.decode(
                token,
                self.jwt_key,
                algorithms=list(self.jwt_algorithms),
                audience=self.jwt_audience,
                issuer=self.jwt_issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError(f"the token's audience is not {self.jwt_audience}") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(f"the token's issuer is not {self.jwt_issuer}") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"the token is invalid: {exc}") from exc
        return Client(id=f"jwt:{claims['sub']}", method="jwt")

    def authenticate(self, authorization: str | None, api_key: str | None) -> Client:
        """Identify the caller from ``Authorization: Bearer …`` or ``X-API-Key``.

        Raises:
            AuthError: no credentials, or credentials that do not check out.
        """
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
