"""Each order's confirmation is mailed once: a ledger in Redis, keyed by the order.

The confirmation can reach the worker twice: the outbox relay publishes, then marks its row
in a second transaction (a crash or a failed mark in between publishes again), and the
broker delivers at least once (a worker killed after the mail went out, before the ack). The
ledger turns both into one mail: before it talks to SMTP a worker claims the order
(``SET NX`` with a lease as long as the actor's time limit); once the server accepted the
mail the claim becomes ``sent`` for a week. A later copy finds ``sent`` and is done; one that
finds another worker's claim is retried after a pause (:class:`MailInProgress`); a claim
whose worker died runs out and the next copy mails it. What remains is the instant between
the server's 250 and the ``sent`` mark: the ``Message-ID`` is the same for every copy
(``confirmation_message_id``), so a mail client shows a duplicate from there once.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from flotilla.core import redis_client, redis_namespace, worker_name

from ._mail import MailUndeliverable

#: how long a sent mark is kept (a copy older than this is not expected)
SENT_FOR_S = 7 * 86_400
SENT = b"sent"
#: deletes the claim only if it is still this worker's (compare and delete)
_GIVE_BACK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"


class MailInProgress(RuntimeError):
    """Another worker holds this order's claim: try again after a pause."""


class LedgerUnavailable(MailUndeliverable):
    """The ledger could not be asked whether the order was mailed (retried like SMTP)."""


class MailLedger:
    """The sent marks and claims of confirmations, in Redis at ``url`` (a broker URL's
    ``?namespace=`` prefixes the keys).

    Args:
        url: the Redis.
        claim_s: how long a claim lasts: the longest an attempt may run (the time limit).
    """

    def __init__(self, url: str, *, claim_s: float) -> None:
        clean, namespace = redis_namespace(url)
        self.redis: Any = redis_client(clean)
        self.prefix = f"{namespace}:mail:confirmation:"
        self.claim_ms = int(claim_s * 1000)
        self._give_back = self.redis.register_script(_GIVE_BACK)

    def claim(self, order_id: str, message_id: str | None = None) -> bytes | None:
        """This worker's claim on mailing the order, or None when it was mailed already.

        ``message_id``, the queue message's id, is the same for each retry and redelivery of
        one message: a claim made for it (by an earlier try whose answer was lost with the
        connection, or by a worker that died with it) is taken over at once instead of
        waiting for its lease to run out. Two copies of a confirmation are two messages.

        Raises:
            MailInProgress: another worker is mailing it now.
            LedgerUnavailable: Redis did not answer.
        """
        key = self.prefix + order_id
        # NOTE: the holder's name and pid say whose claim it is (a claim a SIGKILLed worker
        # left can be told from its restarted successor's)
        attempt = message_id or uuid.uuid4().hex
        token = f"sending {worker_name()} {os.getpid()} {attempt}".encode()
        try:
            if self.redis.set(key, token, nx=True, px=self.claim_ms):
                return token
            state = self.redis.get(key)
        except Exception as exc:  # redis' connection and timeout errors
            raise LedgerUnavailable(f"the mail ledger did not answer: {exc}") from exc
        if state == SENT:
            return None
        if message_id is not None and state is not None and state.endswith(f" {attempt}".encode()):
            # NOTE: a claim made for this very message: by an earlier try of this process
            # whose answer was lost, or by a worker that died (Dramatiq delivers a message
            # again only once its worker is gone): it is ours now, without its lease's wait
            try:
                self.redis.set(key, token, px=self.claim_ms)
            except Exception as exc:
                raise LedgerUnavailable(f"the mail ledger did not answer: {exc}") from exc
            return token
        raise MailInProgress(f"order {order_id} is being mailed by another worker")

    def sent(self, order_id: str) -> bool:
        """The SMTP server accepted the order's mail; False if the mark could not be written
        (never an error: the mail went out, and retrying the message would send it again;
        the claim runs out instead, and only a copy arriving after that repeats the mail)."""
        try:
            self.redis.set(self.prefix + order_id, SENT, ex=SENT_FOR_S)
        except Exception:  # NOTE: redis' connection and timeout errors
            return False
        return True

    def give_back(self, order_id: str, token: bytes) -> None:
        """The attempt failed before the mail went out: the next copy may try at once."""
        try:
            self._give_back(keys=[self.prefix + order_id], args=[token])
        except Exception:  # NOTE: best effort: the claim runs out by itself
            return

    def close(self) -> None:
        self.redis.close()
