"""notifications-worker against a real SMTP server (aiosmtpd) and a real Redis broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from dramatiq import Worker
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.core import OrderConfirmation, OrderLine, broker_from_url, send_message
from flotilla.notifications import NotificationsSettings, declare_actors
from tests.support.ports import free_port
from tests.support.waiting import wait_for


class Inbox:
    def __init__(self) -> None:
        self.mails: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def inbox(smtp_port: int) -> Iterator[Inbox]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture
def worker(redis_url: str, smtp_port: int) -> Iterator[Any]:
    settings = NotificationsSettings(smtp_port=smtp_port, broker_url=redis_url)
    broker = broker_from_url(redis_url)
    declare_actors(broker, settings)
    running = Worker(broker, worker_threads=1)
    running.start()
    yield broker
    running.stop()
    broker.close()


def confirmation() -> OrderConfirmation:
    return OrderConfirmation(
        order_id=uuid.uuid4(),
        customer_email="ada@example.com",
        items=(OrderLine(sku="FLT-KAYAK", quantity=2),),
    )


def test_a_confirmation_message_becomes_a_mail(
    inbox: Inbox, worker: Any, spans: InMemorySpanExporter
) -> None:
    sent = confirmation()
    send_message(worker, sent)
    wait_for(lambda: len(inbox.mails) == 1)
    mail = inbox.mails[0]
    assert mail["To"] == "ada@example.com"
    assert str(sent.order_id) in mail["Subject"]
    assert mail["Message-ID"] == f"<order-{sent.order_id}@flotilla.local>"
    assert "2 x FLT-KAYAK" in mail.get_payload()

    wait_for(lambda: any(s.name == "smtp.send" for s in spans.get_finished_spans()))
    by_name = {s.name: s for s in spans.get_finished_spans()}
    smtp, process, publish = (
        by_name["smtp.send"],
        by_name["process notifications"],
        by_name["publish notifications"],
    )
    assert smtp.parent is not None and smtp.parent.span_id == process.context.span_id
    assert process.parent is not None and process.parent.span_id == publish.context.span_id


def test_mail_waits_while_smtp_is_down_and_goes_out_when_it_is_back(
    smtp_port: int, worker: Any
) -> None:
    """No SMTP server at first: the message is retried, not lost."""
    sent = confirmation()
    send_message(worker, sent)
    time.sleep(1.0)  # at least one failed delivery attempt
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        wait_for(lambda: len(handler.mails) == 1, timeout_s=30)
    finally:
        controller.stop()
    assert str(sent.order_id) in handler.mails[0]["Subject"]


def test_a_malformed_payload_is_dropped_and_the_worker_goes_on(inbox: Inbox, worker: Any) -> None:
    import dramatiq

    bad: dramatiq.Message[Any] = dramatiq.Message(
        queue_name="notifications",
        actor_name="send_order_confirmation",
        args=({"order_id": "not-a-uuid"},),
        kwargs={},
        options={},
    )
    worker.enqueue(bad)
    good = confirmation()
    send_message(worker, good)
    wait_for(lambda: len(inbox.mails) == 1)
    assert str(good.order_id) in inbox.mails[0]["Subject"]
    threading.Event().wait(0.2)
    assert len(inbox.mails) == 1
