"""notifications-worker's actor, declared on the broker it is given."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from opentelemetry import trace
from pydantic import ValidationError

from flotilla.core import OrderConfirmation

from ._mail import MailRejected, MailUndeliverable, compose_confirmation, send_mail
from ._settings import NotificationsSettings

logger = logging.getLogger(__name__)


class MalformedConfirmation(ValueError):
    """The message is not a valid :class:`~flotilla.core.OrderConfirmation`."""


def declare_actors(
    broker: dramatiq.Broker, settings: NotificationsSettings
) -> dramatiq.Actor[Any, Any]:
    """Declare ``send_order_confirmation`` on queue ``notifications`` of ``broker``.

    Only :class:`MailUndeliverable` is retried, with exponential backoff; a malformed payload
    or a mail the server refuses for good fails at once and lands in the dead-letter queue.

    Returns:
        The actor.
    """

    def retry_only_delivery_failures(retries: int, exc: BaseException) -> bool:
        # NOTE: a malformed payload never becomes valid; retrying it would only clog the queue.
        return isinstance(exc, MailUndeliverable) and retries < settings.max_retries

    @dramatiq.actor(
        broker=broker,
        queue_name=OrderConfirmation.queue,
        actor_name=OrderConfirmation.actor,
        retry_when=retry_only_delivery_failures,
        min_backoff=settings.retry_min_backoff_ms,
        max_backoff=settings.retry_max_backoff_ms,
        time_limit=max(60_000, int(settings.smtp_timeout_s * 4_000)),
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
        trace.get_current_span().set_attribute("flotilla.order.id", str(confirmation.order_id))
        mail = compose_confirmation(confirmation, sender=settings.mail_from)
        try:
            send_mail(mail, settings)
        except MailRejected:
            logger.error(
                "the SMTP server refused the confirmation; giving up",
                extra={"order_id": str(confirmation.order_id)},
            )
            raise
        except MailUndeliverable as exc:
            logger.warning(
                "confirmation not delivered, will retry",
                extra={"order_id": str(confirmation.order_id), "reason": str(exc)},
            )
            raise
        logger.info("confirmation sent", extra={"order_id": str(confirmation.order_id)})

    return send_order_confirmation
