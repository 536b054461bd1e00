"""Composing the order confirmation and handing it to an SMTP server.

SMTP failures are split in two, because only one kind is worth retrying: the server could not
be reached or answered "try later" (4xx) → :class:`MailUndeliverable`; the server refused this
mail for good (5xx, e.g. an unknown mailbox) → :class:`MailRejected`.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, getaddresses

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from flotilla.contracts import OrderConfirmation

from ._settings import NotificationsSettings

tracer = trace.get_tracer("flotilla.notifications")

# NOTE: with the 78-column default, Python folds the subject (long because of the order id)
# right after "Subject:", and many readers then show it with a leading blank. RFC 5322 only
# requires lines under 998 characters.
_MAIL_POLICY = policy.SMTP.clone(max_line_length=998)


class MailUndeliverable(RuntimeError):
    """The SMTP server could not be reached or asked to try later (worth retrying)."""


class MailRejected(RuntimeError):
    """The SMTP server refused this mail permanently (retrying cannot help)."""


def confirmation_message_id(confirmation: OrderConfirmation, *, sender: str) -> str:
    """The Message-ID of an order's confirmation: the same for every delivery of it.

    A duplicate delivery of the queue message (at-least-once) thus produces a mail a client
    or a sink recognises as the same message.
    """
    domain = sender.rpartition("@")[2] or "flotilla.local"
    return f"<order-{confirmation.order_id}@{domain}>"


def compose_confirmation(confirmation: OrderConfirmation, *, sender: str) -> EmailMessage:
    """The confirmation mail: plain text with an HTML alternative, listing every item.

    Args:
        confirmation: the message the actor received.
        sender: the ``From`` address.
    """
    order_id = confirmation.order_id
    mail = EmailMessage(policy=_MAIL_POLICY)
    mail["From"] = sender
    mail["To"] = str(confirmation.customer_email)
    mail["Subject"] = f"Your Flotilla order {order_id} is on its way"
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = confirmation_message_id(confirmation, sender=sender)
    lines = "\n".join(f"  {line.quantity} x {line.sku}" for line in confirmation.items)
    mail.set_content(
        f"Hello,\n\nyour order {order_id} has been fulfilled:\n\n{lines}\n\n"
        "Thank you for sailing with Flotilla.\n"
    )
    rows = "".join(
        f"<li>{line.quantity} &times; {html.escape(line.sku)}</li>" for line in confirmation.items
    )
    mail.add_alternative(
        f"<html><body><p>Hello,</p><p>your order <b>{order_id}</b> has been fulfilled:</p>"
        f"<ul>{rows}</ul><p>Thank you for sailing with Flotilla.</p></body></html>",
        subtype="html",
    )
    return mail


def _translate(exc: Exception, where: str) -> MailUndeliverable | MailRejected:
    """Map an smtplib/socket error to one we retry or one we give up on."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            return MailRejected(f"{where} refused every recipient: {exc.recipients}")
    elif (
        isinstance(exc, smtplib.SMTPResponseException)
        and exc.smtp_code >= 500
        # NOTE: a refused login is our configuration, not this mail: retry while it is fixed
        and not isinstance(exc, smtplib.SMTPAuthenticationError)
    ):
        return MailRejected(f"{where} refused the mail: {exc.smtp_code} {exc.smtp_error!r}")
    return MailUndeliverable(f"{where}: {type(exc).__name__}: {exc}")


def send_mail(
    mail: EmailMessage,
    settings: NotificationsSettings,
    *,
    accepted: Callable[[], object] | None = None,
) -> None:
    """Hand ``mail`` to the configured SMTP server, inside a CLIENT span ``smtp.send``.

    ``accepted`` is called the moment the server has answered 250 to the mail's data, before
    the goodbye (``QUIT``): from then on the mail is the server's, so the mail ledger marks it
    sent at once, and a connection that breaks during the goodbye is no failure (retrying
    would mail it again).

    Raises:
        MailUndeliverable: connection refused, timeout, dropped connection, or a 4xx answer,
            each before the server accepted the mail.
        MailRejected: a 5xx answer (the mail itself is refused).
    """
    recipients = getaddresses(mail.get_all("To", []) + mail.get_all("Cc", []))
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    with tracer.start_as_current_span(
        "smtp.send",
        kind=SpanKind.CLIENT,
        attributes={
            "server.address": settings.smtp_host,
            "server.port": settings.smtp_port,
            "email.recipient_count": len(recipients),
        },
    ) as span:
        smtp = smtplib.SMTP(timeout=settings.smtp_timeout_s)
        try:
            smtp.connect(settings.smtp_host, settings.smtp_port)
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username and settings.smtp_password:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            smtp.close()
            raise _translate(exc, where) from exc
        if accepted is not None:
            accepted()
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException) as exc:
            # NOTE: the server has the mail; only the goodbye was lost
            span.add_event("smtp.quit_failed", {"exception.message": str(exc)})
            smtp.close()
