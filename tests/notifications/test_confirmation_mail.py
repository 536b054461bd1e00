"""send_order_confirmation end to end: Redis → worker → SMTP, with its trace.

Everything is real: Redis as the broker, a Dramatiq worker in this process and an SMTP server
(aiosmtpd) on a free port. Attempts are counted from the worker's CONSUMER spans.
"""

from __future__ import annotations

import time
from typing import Any

import dramatiq
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from flotilla.core import broker_from_url, send_message
from flotilla.notifications import (
    LedgerUnavailable,
    MailLedger,
    NotificationsSettings,
    declare_actors,
)
from tests.notifications.conftest import (
    UNKNOWN_MAILBOX,
    Inbox,
    SmtpServer,
    confirmation,
    worker_on,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def _failed(attempts: list[ReadableSpan]) -> list[ReadableSpan]:
    return [a for a in attempts if a.status.status_code == StatusCode.ERROR]


def _attempts(spans: InMemorySpanExporter, message_id: str) -> list[ReadableSpan]:
    """The worker's CONSUMER spans for one message, one per delivery attempt."""
    return [
        span
        for span in spans.get_finished_spans()
        if span.name == "process notifications"
        and (span.attributes or {}).get("messaging.message.id") == message_id
    ]


def test_a_confirmation_message_becomes_a_mail_to_the_customer(
    inbox: Inbox, broker: dramatiq.Broker
) -> None:
    sent = confirmation()
    send_message(broker, sent)
    wait_for(lambda: inbox.mails)
    mail = inbox.mails[0]
    assert inbox.envelopes[0].rcpt_tos == ["ada@example.com"]
    assert mail["To"] == "ada@example.com"
    assert mail["From"] == "orders@flotilla.local"
    assert mail["Subject"] == f"Your Flotilla order {sent.order_id} is on its way"
    assert mail["Message-ID"] == f"<order-{sent.order_id}@flotilla.local>"
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert "2 x FLT-KAYAK" in text.get_content()
    assert "1 x FLT-PADDLE" in text.get_content()
    assert "FLT-PADDLE" in html.get_content()


def test_the_smtp_span_is_a_child_of_the_consumer_span_which_continues_the_producer(
    smtp: SmtpServer, inbox: Inbox, broker: dramatiq.Broker, spans: InMemorySpanExporter
) -> None:
    message_id = send_message(broker, confirmation())
    wait_for(lambda: _attempts(spans, message_id))
    (process,) = _attempts(spans, message_id)
    (publish,) = [s for s in spans.get_finished_spans() if s.name == "publish notifications"]
    (send,) = [s for s in spans.get_finished_spans() if s.name == "smtp.send"]

    assert (publish.kind, process.kind, send.kind) == (
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.CLIENT,
    )
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    assert send.parent is not None and send.parent.span_id == process.context.span_id
    assert send.context.trace_id == publish.context.trace_id
    attributes = dict(send.attributes or {})
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == smtp.port
    assert attributes["email.recipient_count"] == 1
    assert process.status.status_code != StatusCode.ERROR


def test_mail_waits_while_smtp_is_down_and_goes_out_once_it_is_back(
    smtp: SmtpServer, broker: dramatiq.Broker, spans: InMemorySpanExporter
) -> None:
    """No SMTP server at first: the message is retried with backoff, not lost."""
    sent = confirmation()
    message_id = send_message(broker, sent)
    failed = wait_for(lambda: _failed(_attempts(spans, message_id)))
    assert failed[0].events and "MailUndeliverable" in str(failed[0].events[0].attributes)

    smtp.start()
    wait_for(lambda: smtp.inbox.mails, timeout_s=30)
    broker.join("notifications", timeout=30_000)
    assert len(smtp.inbox.mails) == 1
    assert str(sent.order_id) in smtp.inbox.mails[0]["Subject"]
    last = _attempts(spans, message_id)[-1]
    assert last.status.status_code != StatusCode.ERROR
    assert (last.attributes or {})["messaging.dramatiq.retries"] >= 1


def test_a_malformed_payload_is_given_up_at_once_and_the_worker_goes_on(
    inbox: Inbox, broker: dramatiq.Broker, spans: InMemorySpanExporter
) -> None:
    bad: dramatiq.Message[Any] = dramatiq.Message(
        queue_name="notifications",
        actor_name="send_order_confirmation",
        args=({"order_id": "not-a-uuid"},),
        kwargs={},
        options={},
    )
    broker.enqueue(bad)
    good = confirmation()
    send_message(broker, good)
    broker.join("notifications", timeout=20_000)  # a retried message would still be queued

    (attempt,) = _attempts(spans, bad.message_id)
    assert attempt.status.status_code == StatusCode.ERROR
    assert len(inbox.mails) == 1
    assert str(good.order_id) in inbox.mails[0]["Subject"]


def test_a_mail_the_server_refuses_for_good_is_not_retried(
    inbox: Inbox, broker: dramatiq.Broker, spans: InMemorySpanExporter
) -> None:
    message_id = send_message(broker, confirmation(UNKNOWN_MAILBOX))
    broker.join("notifications", timeout=20_000)
    (attempt,) = _attempts(spans, message_id)
    assert attempt.status.status_code == StatusCode.ERROR
    assert inbox.recipients_tried == [UNKNOWN_MAILBOX]
    assert inbox.mails == []


def test_a_confirmation_published_twice_is_mailed_once(
    inbox: Inbox, broker: dramatiq.Broker, spans: InMemorySpanExporter
) -> None:
    """The relay may publish a confirmation again (its mark failed, or it died between the
    publish and the mark): two messages for one order, processed side by side by two
    threads, make one mail; the copy is acknowledged as mailed before."""
    sent = confirmation()
    first, second = send_message(broker, sent), send_message(broker, sent)
    wait_for(lambda: _attempts(spans, first) and _attempts(spans, second), timeout_s=20)
    wait_for(
        lambda: any(
            (a.attributes or {}).get("flotilla.mail.already_sent")
            for a in _attempts(spans, first) + _attempts(spans, second)
        ),
        timeout_s=20,
    )
    assert len(inbox.mails) == 1
    assert inbox.mails[0]["Message-ID"] == f"<order-{sent.order_id}@flotilla.local>"


def test_a_claim_left_by_a_dead_worker_runs_out_and_the_mail_goes_out_once(
    inbox: Inbox, settings: NotificationsSettings, redis_url: str
) -> None:
    """A worker killed after it claimed an order and before it mailed leaves a claim; the
    redelivered copy waits (retried) until the claim runs out, then mails it, once."""
    ledger = MailLedger(settings.ledger, claim_s=1.5)
    broker = broker_from_url(settings.broker_url)
    declare_actors(broker, settings, ledger=ledger)
    sent = confirmation()
    assert ledger.claim(str(sent.order_id))  # the worker that died
    with worker_on(broker, threads=1):
        send_message(broker, sent)
        wait_for(lambda: inbox.mails, timeout_s=30)
        send_message(broker, sent)  # and one more copy, later: mailed before
        time.sleep(2)
    assert len(inbox.mails) == 1
    assert ledger.claim(str(sent.order_id)) is None  # marked sent


class _ShutsDownAtQuit(Inbox):
    """Accepts every mail, then answers the goodbye as a server shutting down does."""

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return "421 4.3.2 shutting down"


def test_a_failed_goodbye_after_the_server_took_the_mail_mails_once(
    settings: NotificationsSettings, spans: InMemorySpanExporter
) -> None:
    """The server answered 250 to the mail's data, then 421 to ``QUIT``:
    the mail is the server's, so it is marked sent and not retried (a retry would mail it
    again)."""
    server = SmtpServer(settings.smtp_port)
    server.inbox = _ShutsDownAtQuit()
    server.start()
    try:
        broker = broker_from_url(settings.broker_url)
        declare_actors(broker, settings)
        with worker_on(broker, threads=1):
            sent = confirmation()
            message_id = send_message(broker, sent)
            wait_for(lambda: server.inbox.mails and _attempts(spans, message_id), timeout_s=20)
            time.sleep(1.5)  # NOTE: longer than the retry's 100 ms backoff
    finally:
        server.stop()
    (attempt,) = _attempts(spans, message_id)
    assert attempt.status.status_code != StatusCode.ERROR
    assert len(server.inbox.mails) == 1
    ledger = MailLedger(settings.ledger, claim_s=1)
    assert ledger.claim(str(sent.order_id)) is None  # marked sent


class _AnswerLostOnce(MailLedger):
    """The ledger's Redis runs the first claim, and the connection breaks before its answer
    comes back (a Redis stopped at that moment): a network fault this test cannot make Redis
    produce on cue, so the ledger raises it right after the claim ran."""

    lost = False

    def claim(self, order_id: str, message_id: str | None = None) -> bytes | None:
        made = super().claim(order_id, message_id)
        if not self.lost:
            self.lost = True
            raise LedgerUnavailable("the mail ledger did not answer: connection lost")
        return made


def test_a_claim_whose_answer_was_lost_is_the_retrys_own_and_the_mail_goes_out_at_once(
    inbox: Inbox, settings: NotificationsSettings, spans: InMemorySpanExporter
) -> None:
    """The attempt asks the ledger again, finds the claim it made itself (same message id)
    and mails: no failed attempt (whose retry Dramatiq would enqueue into a Redis that may be
    down), and no wait for the claim's minute to run out."""
    ledger = _AnswerLostOnce(settings.ledger, claim_s=60)
    broker = broker_from_url(settings.broker_url)
    declare_actors(broker, settings, ledger=ledger)
    with worker_on(broker, threads=1):
        message_id = send_message(broker, confirmation())
        wait_for(lambda: inbox.mails, timeout_s=20)  # NOTE: far less than the claim's 60 s
    assert len(inbox.mails) == 1
    # NOTE: the attempt asked the ledger again instead of failing (its retry would be enqueued
    # into a Redis that may be down)
    (attempt,) = _attempts(spans, message_id)
    assert attempt.status.status_code != StatusCode.ERROR
