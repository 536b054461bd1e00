"""notifications-worker's actor, declared on the broker it is given."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from pydantic import ValidationError

from flotilla.core import OrderConfirmation

from ._mail import MailUndeliverable, compose_confirmation, send_mail
from ._settings import NotificationsSettings

logger = logging.getLogger(__name__)


def declare_actors(
    broker: dramatiq.Broker, settings: NotificationsSettings
) -> dramatiq.Actor[Any, Any]:
    """Declare ``send_order_confirmation`` on queue ``notifications``."""

    def retry_only_delivery_failures(retries: int, exc: BaseException) -> bool:
        # NOTE: a malformed payload will never become valid; retrying it only clogs the queue.
        return isinstance(exc, MailUndeliverable) and retries < settings.max_retries

    @dramatiq.actor(
        broker=broker,
        queue_name=OrderConfirmation.queue,
        actor_name=OrderConfirmation.actor,
        retry_when=retry_only_delivery_failures,
        min_backoff=500,
        max_backoff=30_000,
        time_limit=60_000,
    )
    def send_order_confirmation(payload: dict[str, Any]) -> None:
        try:
            confirmation = OrderConfirmation.from_payload(payload)
        except ValidationError as exc:
            logger.error("dropping a malformed confirmation", extra={"errors": exc.errors()})
            raise
        send_mail(compose_confirmation(confirmation, sender=settings.mail_from), settings)
        logger.info("confirmation sent", extra={"order": str(confirmation.order_id)})

    return send_order_confirmation
