"""Choosing a signal's exporters from ``OTEL_<SIGNAL>_EXPORTER``, as the OpenTelemetry SDK's
own autoconfiguration reads it: names, comma separated, ``none`` (or nothing) for none; an
unknown name is warned about and skipped, never fatal."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


def chosen(variable: str, default: str, factories: Mapping[str, Callable[[], T]]) -> list[T]:
    """One exporter (or reader) per name ``variable`` lists (``default`` when it is unset),
    each made by its factory (the factories import their exporter only when it is named)."""
    made: list[T] = []
    for name in (n.strip().lower() for n in os.environ.get(variable, default).split(",")):
        if name in factories:
            made.append(factories[name]())
        elif name not in ("none", ""):
            logger.warning(f"{variable} names an unknown exporter", extra={"name": name})
    return made
