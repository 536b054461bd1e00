"""The payment stand-in's settings (``FLOTILLA_PAYMENTS_*``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flotilla.contracts import catalogue
from flotilla.core import ComponentSettings, component_config

Rate = Annotated[float, Field(ge=0, le=1)]


class PaymentsSettings(ComponentSettings):
    """payments-api's settings (``FLOTILLA_PAYMENTS_*``).

    The fault settings are where injected faults start; ``PUT /faults`` changes them while
    the stand-in runs (like the OpenTelemetry demo's feature flags).

    Attributes:
        latency_ms: extra time every charge and refund takes (a slow provider).
        failure_rate: the share of charges refused with 503 before anything is charged.
        lost_reply_rate: the share of charges made and then answered with 503, as if the
            reply was lost on the way: the caller cannot know, and must retry with its key.
    """

    model_config = component_config("PAYMENTS")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = catalogue.port("payments-api")
    database_url: str = "sqlite:///var/payments.db"
    #: threads that serve requests (sync endpoints and dependencies): each may hold one
    #: database connection; the pool holds two more (pool_size_for, the chart's budget)
    request_threads: Annotated[int, Field(ge=1, le=256)] = catalogue.concurrency("payments-api")
    latency_ms: Annotated[int, Field(ge=0, le=60_000)] = 0
    failure_rate: Rate = 0.0
    lost_reply_rate: Rate = 0.0
