"""FastAPI glue shared by the FastAPI services: problem answers, health routes, tracing.

Import only from FastAPI services (``flotilla-core[fastapi]``); the edge and the workers do
not need FastAPI.
"""

from ._app import health_router, install_problem_handlers, problem_response, service_app

__all__ = ["health_router", "install_problem_handlers", "problem_response", "service_app"]
