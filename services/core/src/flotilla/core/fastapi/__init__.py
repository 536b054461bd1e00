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

__all__ = [
    "db_session",
    "health_router",
    "install_problem_handlers",
    "problem_response",
    "read_session",
    "service_app",
]
