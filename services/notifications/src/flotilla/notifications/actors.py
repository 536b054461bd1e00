"""notifications-worker's actor, declared on the broker it is given."""

from __future__ import annotations

import logging
import time
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage
from opentelemetry import trace
from pydantic import ValidationError

from flotilla.contracts import OrderConfirmation

from ._ledger import LedgerUnavailable, MailInProgress, MailLedger
from ._mail import MailRejected, MailUndeliverable, compose_confirmation, send_mail
from ._settings import NotificationsSettings

logger = logging.getLogger(__name__)


class MalformedConfirmation(ValueError):
    """The message is not a valid :class:`~flotilla.core.OrderConfirmation`."""


#: how long an attempt waits for the ledger's Redis to answer before it fails (and is retried)
LEDGER_PATIENCE_S = 30.0


def _claim_riding_out(ledger: MailLedger, order_id: str, message_id: str | None) -> bytes | None:
    """The ledger's claim, asked again with backoff while its Redis does not answer (for up
    to ``LEDGER_PATIENCE_S``). The ledger's Redis is usually the broker's: failing the message
    then makes Dramatiq enqueue its retry into a Redis that is down, which a blip of a few
    seconds should not cost; the message waits in this worker instead (unacknowledged: if
    the worker dies, it is delivered again)."""
    deadline, pause = time.monotonic() + LEDGER_PATIENCE_S, 0.2
    while True:
        try:
            return ledger.claim(order_id, message_id)
        except LedgerUnavailable:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def declare_actors(
    broker: dramatiq.Broker, settings: NotificationsSettings, ledger: MailLedger | None = None
) -> dramatiq.Actor[Any, Any]:
    """Declare ``send_order_confirmation`` on queue ``notifications`` of ``broker``.

    Each order is mailed once (``_ledger.py``): a copy of a confirmation already mailed is
    acknowledged without a mail. Only :class:`MailUndeliverable` (the ledger's Redis away
    included) and :class:`MailInProgress` are retried, with exponential backoff; a malformed
    payload or a mail the server refuses for good fails at once and lands in the dead-letter
    queue.

    Args:
        broker: the broker.
        settings: the settings.
        ledger: the mail ledger (by default on ``settings.ledger``).

    Returns:
        The actor.
    """
    time_limit_ms = max(60_000, int(settings.smtp_timeout_s * 4_000))
    ledger = ledger or MailLedger(settings.ledger, claim_s=time_limit_ms / 1000)

    def retry_only_delivery_failures(retries: int, exc: BaseException) -> bool:
        # NOTE: a malformed payload never becomes valid; retrying it would only clog the queue.
        retryable = isinstance(exc, MailUndeliverable | MailInProgress)
        return retryable and retries < settings.max_retries

    @dramatiq.actor(
        broker=broker,
        queue_name=OrderConfirmation.queue,
        actor_name=OrderConfirmation.actor,
        retry_when=retry_only_delivery_failures,
        min_backoff=settings.retry_min_backoff_ms,
        max_backoff=settings.retry_max_backoff_ms,
        time_limit=time_limit_ms,
    )
    def send_order_confirmation(payload: dict[str, Any]) -> None:
        try:
            confirmation = OrderConfirmation.from_payload(payload)
        except ValidationError as exc:
            logger.error(
                "giving up on a malformed order confirmation",
                extra={"errors": exc.errors(include_url=False, include_input=False)},
            )
            raise MalformedConfirmation(str(exc)) from exc
        order_id = str(confirmation.order_id)
        span = trace.get_current_span()
        span.set_attribute("flotilla.order.id", order_id)
        message = CurrentMessage.get_current_message()
        claim = _claim_riding_out(ledger, order_id, message.message_id if message else None)
        span.set_attribute("flotilla.mail.already_sent", claim is None)
        if claim is None:
            logger.info("confirmation mailed before; not again", extra={"order_id": order_id})
            return
        mail = compose_confirmation(confirmation, sender=settings.mail_from)
        marked: list[bool] = []
        try:
            # NOTE: marked sent the moment the server has it (before the goodbye): the window
            # in which a killed worker leaves a mailed order unmarked is one Redis round trip
            send_mail(mail, settings, accepted=lambda: marked.append(ledger.sent(order_id)))
        except MailRejected:
            ledger.give_back(order_id, claim)
            logger.error(
                "the SMTP server refused the confirmation; giving up", extra={"order_id": order_id}
            )
            raise
        except MailUndeliverable as exc:
            ledger.give_back(order_id, claim)
            logger.warning(
                "confirmation not delivered, will retry",
                extra={"order_id": order_id, "reason": str(exc)},
            )
            raise
        except BaseException:  # the time limit, a bug: the next copy may try at once
            ledger.give_back(order_id, claim)
            raise
        if not all(marked):
            logger.warning("confirmation sent, but not marked so", extra={"order_id": order_id})
        logger.info("confirmation sent", extra={"order_id": order_id})

    return send_order_confirmation
