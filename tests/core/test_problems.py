"""The one mapping from a failed call to another service to the answer: the Falcon edge (a
gateway) and the FastAPI services (answering for a dependency) both use it."""

from __future__ import annotations

import pytest

from flotilla.core import (
    DEPENDENCY_FAILURE_HEADER,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_problem,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("failure", "dependency", "status", "slug"),
    [
        (UpstreamTimeout("orders-api did not answer within 5 s"), False, 504, "upstream-timeout"),
        (
            UpstreamUnavailable("orders-api could not be reached"),
            False,
            503,
            "upstream-unreachable",
        ),
        (UpstreamTimeout("inventory did not answer in time"), True, 503, "upstream-timeout"),
        (UpstreamError("inventory answered 500"), True, 503, "upstream-unreachable"),
    ],
)
def test_a_failed_upstream_call_maps_to_one_problem_shape(
    failure: UpstreamError, dependency: bool, status: int, slug: str
) -> None:
    """A gateway tells a timeout (504) from an unreachable upstream (503); a service whose own
    dependency failed is unavailable either way (503) and marks the answer so the edge does
    not count it against the service. Every one says which upstream and when to retry."""
    problem = upstream_problem(failure, "upstream-x", dependency=dependency, retry_after_s=2)
    body = problem.problem.to_dict()
    assert body["status"] == status
    assert body["type"] == f"https://flotilla.dev/problems/{slug}"
    assert body["detail"] == str(failure)
    assert body["upstream"] == "upstream-x"
    assert problem.headers["Retry-After"] == "2"
    assert (DEPENDENCY_FAILURE_HEADER in problem.headers) is dependency
