"""Composing and sending the order confirmation over SMTP."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from flotilla.core import OrderConfirmation

from ._settings import NotificationsSettings

tracer = trace.get_tracer("flotilla.notifications")


class MailUndeliverable(RuntimeError):
    """The SMTP server could not be reached or refused the message (worth retrying)."""


def compose_confirmation(confirmation: OrderConfirmation, *, sender: str) -> EmailMessage:
    """The confirmation mail; its Message-ID derives from the order, so duplicates are visible."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = str(confirmation.customer_email)
    mail["Subject"] = f"Your Flotilla order {confirmation.order_id} is on its way"
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = f"<order-{confirmation.order_id}@flotilla.local>"
    lines = "\n".join(f"  {line.quantity} x {line.sku}" for line in confirmation.items)
    mail.set_content(
        f"Hello,\n\nyour order {confirmation.order_id} has been fulfilled:\n\n{lines}\n\n"
        "Thank you for sailing with Flotilla.\n"
    )
    return mail


def send_mail(mail: EmailMessage, settings: NotificationsSettings) -> None:
    """Deliver ``mail`` to the configured SMTP server.

    Raises:
        MailUndeliverable: connection refused, timeout, or an SMTP error answer.
    """
    with tracer.start_as_current_span(
        "smtp.send",
        kind=SpanKind.CLIENT,
        attributes={
            "server.address": settings.smtp_host,
            "server.port": settings.smtp_port,
            "email.recipient_count": len(mail.get_all("To", [])),
        },
    ):
        try:
            with smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s
            ) as smtp:
                if settings.smtp_starttls:
                    smtp.starttls()
                if settings.smtp_username and settings.smtp_password:
                    smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailUndeliverable(f"{settings.smtp_host}:{settings.smtp_port}: {exc}") from exc
