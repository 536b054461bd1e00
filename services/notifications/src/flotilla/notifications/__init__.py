"""notifications-worker: mails order confirmations over SMTP."""

from ._ledger import LedgerUnavailable, MailInProgress, MailLedger
from ._mail import (
    MailRejected,
    MailUndeliverable,
    compose_confirmation,
    confirmation_message_id,
    send_mail,
)
from ._settings import NotificationsSettings
from .actors import MalformedConfirmation, declare_actors

__all__ = [
    "LedgerUnavailable",
    "MailInProgress",
    "MailLedger",
    "MailRejected",
    "MailUndeliverable",
    "MalformedConfirmation",
    "NotificationsSettings",
    "compose_confirmation",
    "confirmation_message_id",
    "declare_actors",
    "send_mail",
]
