"""RFC 9457 problem details, framework-neutral: the one vocabulary of the Falcon edge and the
FastAPI services, each with its own adapter that writes a :class:`ProblemError` as its
framework answers (``flotilla.edge.app``, ``flotilla.core.fastapi``).

Every error a Flotilla service answers is ``application/problem+json``; the field at fault is
named in ``errors[].field`` (a dotted path such as ``items.0.sku``). Never a traceback. A call
to another service that fails before it answers is an :class:`UpstreamError`, and
:func:`upstream_problem` is the one mapping from it to an answer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://flotilla.dev/problems/"
#: Set on a 5xx a service answers because one of *its* dependencies failed (orders-api's
#: "inventory unavailable"): the edge then does not count the answer against the service's
#: circuit breaker, and does not pass the header on to the client.
DEPENDENCY_FAILURE_HEADER = "Flotilla-Failed-Dependency"


class FieldError(BaseModel):
    """One invalid input: where it is and what is wrong with it."""

    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document with Flotilla's extensions."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON body, without empty members."""
        return self.model_dump(mode="json", exclude_none=True)


class ProblemError(Exception):
    """Raise from a handler to answer with a problem document.

    Args:
        status: the HTTP status.
        title: a short, stable summary of the problem type.
        detail: what happened this time, for a person.
        slug: the problem type's last path segment (``type`` becomes a URL under
            ``https://flotilla.dev/problems/``).
        field: the input field at fault, if one is.
        headers: extra response headers (``Retry-After``…).
        dependency: the dependency whose failure this answer reports (a 5xx that is not the
            service's own fault; see :data:`DEPENDENCY_FAILURE_HEADER`).
        extensions: more members of the problem document.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        slug: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        dependency: str | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.problem = Problem(
            type=PROBLEM_TYPE_BASE + slug if slug else "about:blank",
            title=title,
            status=status,
            detail=detail,
            errors=[FieldError(field=field, message=detail or title)] if field else None,
            **extensions,
        )
        self.headers = dict(headers or {})
        if dependency is not None:
            self.headers[DEPENDENCY_FAILURE_HEADER] = dependency


class UpstreamError(RuntimeError):
    """A call to another service failed before it produced an answer."""


class UpstreamTimeout(UpstreamError):
    """The other service did not answer within the timeout."""


class UpstreamUnavailable(UpstreamError):
    """The other service could not be reached (refused, reset, DNS)."""


def upstream_problem(
    exc: UpstreamError,
    upstream: str,
    *,
    detail: str | None = None,
    dependency: bool = False,
    retry_after_s: int = 1,
) -> ProblemError:
    """The answer to a request whose call to ``upstream`` failed before it answered.

    A gateway (the edge, ``dependency=False``) answers 504 when the upstream did not answer in
    time and 503 when it could not be reached: the client may retry after ``Retry-After``.
    A service that failed because one of *its* dependencies did (``dependency=True``) answers
    503 either way, marked with :data:`DEPENDENCY_FAILURE_HEADER` so the edge does not count
    it against the service. The detail says which upstream and what happened (``detail``,
    else the error's own words).
    """
    timed_out = isinstance(exc, UpstreamTimeout)
    return ProblemError(
        504 if timed_out and not dependency else 503,
        "Upstream timeout" if timed_out else "Upstream unavailable",
        detail or str(exc) or f"{upstream} failed",
        slug="upstream-timeout" if timed_out else "upstream-unreachable",
        headers={"Retry-After": str(retry_after_s)},
        dependency=upstream if dependency else None,
        upstream=upstream,
    )


def field_path(location: tuple[Any, ...] | list[Any]) -> str:
    """Dotted path of a pydantic error location, without the leading ``body``."""
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts) or "body"
