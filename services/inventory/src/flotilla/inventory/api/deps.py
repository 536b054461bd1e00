from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker


def _session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


def _read_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.read_sessions
    with factory() as session:
        yield session


DbSession = Annotated[Session, Depends(_session)]
ReadSession = Annotated[Session, Depends(_read_session)]
