"""A router whose endpoints end their database transactions before they answer.

FastAPI closes a request's session (a ``yield`` dependency) only once the response has been
serialized and sent. For a sync endpoint that is after it gave its worker thread back, and
serializing the answer waits for a thread from the same pool. On SQLite that is a deadlock
under load: the request that holds the write lock (``BEGIN IMMEDIATE``, a transaction the
endpoint left open, e.g. by returning what it had only read) waits for a thread, while every
thread runs an endpoint waiting for that lock or for a pooled connection. It was seen in the
chaos tests (inventory-api stopped answering, 40 threads blocked, the pool empty).

:class:`ServiceRouter` wraps each sync endpoint so that, in its own thread and before it
returns, every :class:`~sqlalchemy.orm.Session` it was given is rolled back if a transaction
is still open: whatever the endpoint did not commit was never meant to stay, and the lock and
the connection go back at once. Endpoints still commit explicitly; the dependency still closes
the session.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from ._contract import documented_answers


def ending_transactions(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint``, ending the transactions of the sessions it receives before it returns."""
    if inspect.iscoroutinefunction(endpoint):
        return endpoint  # NOTE: async endpoints do their database work in threads of their own

    @functools.wraps(endpoint)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return endpoint(*args, **kwargs)
        finally:
            # NOTE: a process that never imported SQLAlchemy (the console) has no sessions.
            orm = sys.modules.get("sqlalchemy.orm")
            sessions = [v for v in (*args, *kwargs.values()) if orm and isinstance(v, orm.Session)]
            for session in sessions:
                if session.in_transaction():
                    session.rollback()

    return wrapper


class ServiceRouter(APIRouter):
    """An :class:`~fastapi.APIRouter` whose sync endpoints end their transactions, and whose
    routes document every answer they can give.

    Args:
        behind_edge: the routes are reachable through the edge, so its answers (401, 403,
            429…) are documented too.
        **options: as for :class:`~fastapi.APIRouter`.

    A route's own error answers are given as FastAPI's
    ``responses={404: {"description": "no such order"}}``.
    """

    def __init__(self, *, behind_edge: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.behind_edge = behind_edge

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        answers = documented_answers({}, behind_edge=self.behind_edge)
        kwargs["responses"] = {**answers, **(kwargs.get("responses") or {})}
        super().add_api_route(path, ending_transactions(endpoint), **kwargs)
