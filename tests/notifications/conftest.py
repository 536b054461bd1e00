"""Fixtures of the notifications tests: a real SMTP server and a real worker on Redis.

The SMTP server is aiosmtpd on a free port; the worker is ``flotilla.core.run_worker`` in a
thread, consuming the ``notifications`` queue of a real Redis under a fresh namespace.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import dramatiq
import pytest
from aiosmtpd.controller import Controller

from flotilla.contracts import OrderConfirmation, OrderLine
from flotilla.core import broker_from_url, run_worker
from flotilla.notifications import NotificationsSettings, declare_actors
from tests.support.ports import free_port

#: A mailbox the test SMTP server refuses for good (550).
UNKNOWN_MAILBOX = "nobody@example.com"


class Inbox:
    """An aiosmtpd handler that keeps every mail it accepts."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.envelopes: list[Any] = []
        self.recipients_tried: list[str] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self.recipients_tried.append(address)
        if address == UNKNOWN_MAILBOX:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append(mail)
        return "250 OK"


class SmtpServer:
    """aiosmtpd on a given port, which a test can start late (SMTP down, then back)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An SMTP server on a free port, not started yet."""
    server = SmtpServer(free_port())
    yield server
    server.stop()


@pytest.fixture
def inbox(smtp: SmtpServer) -> Inbox:
    """The inbox of a running SMTP server."""
    smtp.start()
    return smtp.inbox


@pytest.fixture
def settings(redis_url: str, smtp: SmtpServer) -> NotificationsSettings:
    """Settings pointing at the test SMTP server, with short retry backoffs."""
    return NotificationsSettings(
        broker_url=redis_url,
        smtp_port=smtp.port,
        smtp_timeout_s=5,
        retry_min_backoff_ms=100,
        retry_max_backoff_ms=1_000,
    )


@contextlib.contextmanager
def worker_on(broker: dramatiq.Broker, *, threads: int = 2) -> Iterator[dramatiq.Broker]:
    """``run_worker`` consuming ``notifications`` of ``broker`` in a thread, stopped on exit."""
    stop = threading.Event()
    worker = threading.Thread(
        target=run_worker,
        args=(broker,),
        kwargs={"queues": ["notifications"], "threads": threads, "drain_timeout_s": 5}
        | {"stop": stop},
        daemon=True,
    )
    worker.start()
    try:
        yield broker
    finally:
        stop.set()
        worker.join(15)


@pytest.fixture
def broker(settings: NotificationsSettings) -> Iterator[dramatiq.Broker]:
    """A worker consuming ``notifications`` in this process; yields its broker."""
    broker = broker_from_url(settings.broker_url)
    declare_actors(broker, settings)
    with worker_on(broker):
        yield broker


def confirmation(email: str = "ada@example.com") -> OrderConfirmation:
    """An order confirmation for two lines."""
    return OrderConfirmation(
        order_id=uuid.uuid4(),
        customer_email=email,
        items=(OrderLine(sku="FLT-KAYAK", quantity=2), OrderLine(sku="FLT-PADDLE", quantity=1)),
    )
