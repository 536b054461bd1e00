from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from flotilla.contracts.scopes import OPERATOR_SCOPE
from flotilla.core import ProblemError
from flotilla.core.fastapi import db_session, read_session

from .._admission import Admission
from .._inventory import InventoryClient
from .._outbox import OutboxRelay
from .._settings import OrdersSettings


async def _inventory(request: Request) -> InventoryClient:
    client: InventoryClient = request.app.state.inventory
    return client


async def _relay(request: Request) -> OutboxRelay | None:
    relay: OutboxRelay | None = request.app.state.relay
    return relay


async def _admission(request: Request) -> Admission:
    admission: Admission = request.app.state.admission
    return admission


async def _settings(request: Request) -> OrdersSettings:
    settings: OrdersSettings = request.app.state.settings
    return settings


@dataclass(frozen=True)
class CallerIdentity:
    """The client a request is for, as the edge names it (X-Client-Id, X-Client-Scopes)."""

    client_id: str
    scopes: frozenset[str]

    @property
    def is_operator(self) -> bool:
        return OPERATOR_SCOPE in self.scopes

    def may_see(self, owner: str) -> bool:
        return self.is_operator or owner == self.client_id


async def _caller(
    x_client_id: Annotated[
        str | None,
        # NOTE: not in the OpenAPI document: the edge sets it and a client never can
        Header(max_length=200, include_in_schema=False),
    ] = None,
    x_client_scopes: Annotated[str, Header(max_length=1000, include_in_schema=False)] = "",
) -> CallerIdentity:
    if not x_client_id:
        # NOTE: only the edge reaches orders-api (NetworkPolicies; loopback locally), and it
        # always says who the caller is; a request without it did not come through the edge.
        raise ProblemError(
            401,
            "Unknown caller",
            "X-Client-Id is missing: call orders through the edge, which sets it",
            slug="unknown-caller",
            field="X-Client-Id",
        )
    return CallerIdentity(x_client_id, frozenset(x_client_scopes.split()))


DbSession = Annotated[Session, Depends(db_session)]
ReadSession = Annotated[Session, Depends(read_session)]
Inventory = Annotated[InventoryClient, Depends(_inventory)]
Relay = Annotated[OutboxRelay | None, Depends(_relay)]
Settings = Annotated[OrdersSettings, Depends(_settings)]
Admit = Annotated[Admission, Depends(_admission)]
Caller = Annotated[CallerIdentity, Depends(_caller)]
