"""The base of a message that crosses services, and how to send one by name.

The messages themselves are their domain's (``flotilla.contracts``); a producer never imports
the consumer's actor: it builds a Dramatiq message for the consumer's queue and actor name
from the message's schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import dramatiq
from pydantic import BaseModel, ConfigDict

from ._broker_urls import BrokerUnavailable


class QueueMessage(BaseModel):
    """Base of a cross-service message: the schema, its queue and the actor that takes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: ClassVar[str]
    actor: ClassVar[str]

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Self:
        """Validate the single positional argument an actor received."""
        return cls.model_validate(payload)


def build_message(message: QueueMessage) -> dramatiq.Message[Any]:
    """The Dramatiq message that delivers ``message`` to its actor."""
    return dramatiq.Message(
        queue_name=message.queue,
        actor_name=message.actor,
        args=(message.model_dump(mode="json"),),
        kwargs={},
        options={},
    )


@dataclass(frozen=True)
class Published:
    """A message the broker took: its Dramatiq id, and the broker's reference to it.

    The reference is what :func:`~flotilla.core.broker_holds` asks about later: the id Redis
    stores this delivery under (each delivery gets its own), or the Dramatiq message id.
    """

    message_id: str
    reference: str


def publish(
    broker: dramatiq.Broker, message: QueueMessage, *, delay_ms: int | None = None
) -> Published:
    """Enqueue ``message`` on its queue.

    Raises:
        BrokerUnavailable: the broker could not be reached; nothing was enqueued.
    """
    built = build_message(message)
    try:
        broker.declare_queue(message.queue)
        sent = broker.enqueue(built, delay=delay_ms)
    except Exception as exc:  # translate redis/pika/dramatiq connection errors at the boundary
        raise BrokerUnavailable(f"could not enqueue on {message.queue!r}: {exc}") from exc
    return Published(
        str(sent.message_id), str(sent.options.get("redis_message_id") or sent.message_id)
    )


def send_message(
    broker: dramatiq.Broker, message: QueueMessage, *, delay_ms: int | None = None
) -> str:
    """Enqueue ``message`` on its queue; returns the Dramatiq message id (see :func:`publish`).

    Raises:
        BrokerUnavailable: the broker could not be reached; nothing was enqueued.
    """
    return publish(broker, message, delay_ms=delay_ms).message_id
