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
from ._contract import EDGE_ANSWERS, SERVICE_ANSWERS, documented_answers, problem_openapi
from ._router import ServiceRouter, ending_transactions

__all__ = [
    "EDGE_ANSWERS",
    "SERVICE_ANSWERS",
    "ServiceRouter",
    "db_session",
    "documented_answers",
    "ending_transactions",
    "health_router",
    "install_problem_handlers",
    "problem_openapi",
    "problem_response",
    "read_session",
    "service_app",
]
