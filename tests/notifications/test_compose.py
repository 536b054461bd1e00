"""The confirmation mail as composed, and the worker's settings (no servers needed)."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from flotilla.contracts import OrderConfirmation, OrderLine
from flotilla.notifications import NotificationsSettings, compose_confirmation

pytestmark = pytest.mark.unit


def _confirmation(order_id: uuid.UUID | None = None) -> OrderConfirmation:
    return OrderConfirmation(
        order_id=order_id or uuid.uuid4(),
        customer_email="ada@example.com",
        items=(OrderLine(sku="FLT-VEST", quantity=3), OrderLine(sku="<b>", quantity=1)),
    )


def test_a_duplicate_delivery_produces_the_same_message_id() -> None:
    """At-least-once delivery: a second mail for one order is recognisably the same mail."""
    order_id = uuid.uuid4()
    first = compose_confirmation(_confirmation(order_id), sender="orders@shop.example")
    again = compose_confirmation(_confirmation(order_id), sender="orders@shop.example")
    other = compose_confirmation(_confirmation(), sender="orders@shop.example")
    assert first["Message-ID"] == again["Message-ID"] == f"<order-{order_id}@shop.example>"
    assert other["Message-ID"] != first["Message-ID"]


def test_the_mail_lists_every_item_in_text_and_in_html() -> None:
    mail = compose_confirmation(_confirmation(), sender="orders@flotilla.local")
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert "3 x FLT-VEST" in text.get_content()
    assert "1 x <b>" in text.get_content()
    assert "3 &times; FLT-VEST" in html.get_content()
    assert "&lt;b&gt;" in html.get_content()  # a sku can never inject markup


def test_the_long_subject_stays_on_one_line() -> None:
    confirmation = _confirmation()
    raw = compose_confirmation(confirmation, sender="orders@flotilla.local").as_bytes()
    expected = f"Subject: Your Flotilla order {confirmation.order_id} is on its way\r\n"
    assert expected.encode() in raw


def test_settings_come_from_flotilla_notifications_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOTILLA_NOTIFICATIONS_SMTP_HOST", "mail.internal")
    monkeypatch.setenv("FLOTILLA_NOTIFICATIONS_SMTP_PORT", "2525")
    monkeypatch.setenv("FLOTILLA_NOTIFICATIONS_SMTP_STARTTLS", "true")
    monkeypatch.setenv("FLOTILLA_NOTIFICATIONS_SMTP_PASSWORD", "hunter2")
    monkeypatch.setenv("FLOTILLA_NOTIFICATIONS_MAIL_FROM", "shop@example.com")
    settings = NotificationsSettings()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls) == (
        "mail.internal",
        2525,
        True,
    )
    assert settings.mail_from == "shop@example.com"
    assert "hunter2" not in repr(settings)  # a secret never reaches a log line


def test_defaults_match_the_contract() -> None:
    settings = NotificationsSettings()
    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert (settings.smtp_host, settings.smtp_port) == ("127.0.0.1", 1025)
    assert settings.mail_from == "orders@flotilla.local"


def test_an_impossible_port_is_refused() -> None:
    with pytest.raises(ValidationError, match="smtp_port"):
        NotificationsSettings(smtp_port=0)
