"""notifications-worker: mails order confirmations over SMTP."""

from ._mail import MailUndeliverable, compose_confirmation, send_mail
from ._settings import NotificationsSettings
from .actors import declare_actors

__all__ = [
    "MailUndeliverable",
    "NotificationsSettings",
    "compose_confirmation",
    "declare_actors",
    "send_mail",
]
