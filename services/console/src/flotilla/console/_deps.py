"""What the API routes and the pages share: their dependencies as ``Annotated`` aliases, and
the performance of a window (the API and the services page show the same figures)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from ._performance import Performance
from ._settings import ConsoleSettings
from ._store import SpanStore


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


def performance(store: SpanStore, minutes: int) -> Performance:
    """The performance of the last ``minutes`` minutes."""
    window_s = minutes * 60
    return store.performance(since_ns=time.time_ns() - window_s * 1_000_000_000, window_s=window_s)
