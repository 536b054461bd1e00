"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from flotilla.core.fastapi import db_session, read_session

from .._faults import FaultInjector


async def _faults(request: Request) -> FaultInjector:
    injector: FaultInjector = request.app.state.faults
    return injector


DbSession = Annotated[Session, Depends(db_session)]
ReadSession = Annotated[Session, Depends(read_session)]
Injector = Annotated[FaultInjector, Depends(_faults)]
