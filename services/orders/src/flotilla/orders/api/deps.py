from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from flotilla.core.fastapi import db_session, read_session

from .._inventory import InventoryClient
from .._outbox import OutboxRelay
from .._settings import OrdersSettings


def _inventory(request: Request) -> InventoryClient:
    client: InventoryClient = request.app.state.inventory
    return client


def _relay(request: Request) -> OutboxRelay | None:
    relay: OutboxRelay | None = request.app.state.relay
    return relay


def _settings(request: Request) -> OrdersSettings:
    settings: OrdersSettings = request.app.state.settings
    return settings


DbSession = Annotated[Session, Depends(db_session)]
ReadSession = Annotated[Session, Depends(read_session)]
Inventory = Annotated[InventoryClient, Depends(_inventory)]
Relay = Annotated[OutboxRelay | None, Depends(_relay)]
Settings = Annotated[OrdersSettings, Depends(_settings)]
