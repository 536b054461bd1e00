"""FastAPI glue shared by the FastAPI services: problem answers, health routes, tracing.

Import only from FastAPI services (``flotilla-core[fastapi]``); the edge and the workers do
not need FastAPI.
"""

from ._app import (
    db_session,
    health_router,
    install_problem_handlers,
    problem_response,
    read_session,
    service_app,
)
from ._router import ServiceRouter, ending_transactions

__all__ = [
    "ServiceRouter",
    "db_session",
    "ending_transactions",
    "health_router",
    "install_problem_handlers",
    "problem_response",
    "read_session",
    "service_app",
]
