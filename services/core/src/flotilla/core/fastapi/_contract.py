"""The answers a service's OpenAPI document promises, errors included.

FastAPI documents the success answer and a 422 in its own shape; a Flotilla service answers
every error as an RFC 9457 problem (``application/problem+json``), and behind the edge a
client may also get the edge's own answers. :func:`documented_answers` is what every route of
a :class:`~flotilla.core.fastapi.ServiceRouter` declares; :func:`problem_openapi` then gives
every 4xx/5xx answer of the document the problem schema, so contract tests (schemathesis) and
generated clients see what really comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from flotilla.core._problems import PROBLEM_CONTENT_TYPE, FieldError, Problem

#: What the service itself may answer to any request with parameters or a body.
SERVICE_ANSWERS = {
    400: "the body is not valid JSON",
    422: "a parameter, header or body field is invalid (errors[].field names it)",
    500: "the service failed; the problem names the trace to look at",
}

#: What the edge may answer in front of any routed operation (docs/security.md).
EDGE_ANSWERS = {
    400: "through the edge: an unsafe path (dot segments, encoded separators)",
    401: "through the edge: no or unknown credentials",
    403: "through the edge: the credentials lack the route's scope",
    404: "through the edge: no route covers the path",
    405: "through the edge: a method the route does not allow",
    413: "through the edge: the body is over the edge's limit",
    414: "through the edge: the path is over 2,048 bytes",
    429: "through the edge: over the caller's rate limit (see Retry-After)",
    503: "through the edge: the service is unreachable or its circuit is open",
    504: "through the edge: the service did not answer in time",
}


def documented_answers(
    own: Mapping[int, str], *, behind_edge: bool
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: its own error answers, the service's, the edge's."""
    answers: dict[int, str] = dict(EDGE_ANSWERS) if behind_edge else {}
    answers.update(SERVICE_ANSWERS)
    answers.update(own)
    return {status: {"description": text} for status, text in sorted(answers.items())}


def problem_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """An ``app.openapi`` whose 4xx/5xx answers are problem documents."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, routes=app.routes, description=app.description
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in (FieldError, Problem):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schema.pop("$defs", None)
            schemas[model.__name__] = schema
        # NOTE: FastAPI's own 422 shape is never sent; the problem handler answers instead.
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        problem = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                for status, answer in operation.get("responses", {}).items():
                    if str(status)[0] in "45":
                        answer["content"] = problem
        app.openapi_schema = document
        return document

    return openapi
