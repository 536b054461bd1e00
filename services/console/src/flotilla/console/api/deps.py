"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .._settings import ConsoleSettings
from .._store import SpanStore


async def span_store(request: Request) -> SpanStore:
    """The app's span store (one per app, shared by every request)."""
    store: SpanStore = request.app.state.store
    return store


async def console_settings(request: Request) -> ConsoleSettings:
    """The settings the app was created with."""
    settings: ConsoleSettings = request.app.state.settings
    return settings


#: The span store.
Store = Annotated[SpanStore, Depends(span_store)]
#: The console's settings.
Settings = Annotated[ConsoleSettings, Depends(console_settings)]
