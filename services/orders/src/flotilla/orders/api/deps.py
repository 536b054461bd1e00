from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from .._inventory import InventoryClient
from .._outbox import OutboxRelay


def _session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


def _read_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.read_sessions
    with factory() as session:
        yield session


def _inventory(request: Request) -> InventoryClient:
    client: InventoryClient = request.app.state.inventory
    return client


def _relay(request: Request) -> OutboxRelay | None:
    relay: OutboxRelay | None = request.app.state.relay
    return relay


DbSession = Annotated[Session, Depends(_session)]
ReadSession = Annotated[Session, Depends(_read_session)]
Inventory = Annotated[InventoryClient, Depends(_inventory)]
Relay = Annotated[OutboxRelay | None, Depends(_relay)]
