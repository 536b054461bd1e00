"""``python -m flotilla.notifications worker`` as a real process, as the supervisor runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from flotilla.core import broker_from_url, send_message
from flotilla.notifications.__main__ import main
from tests.notifications.conftest import Inbox, SmtpServer, confirmation
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_the_worker_process_mails_confirmations_and_stops_on_sigterm(
    redis_url: str, smtp: SmtpServer, inbox: Inbox
) -> None:
    env = {
        **os.environ,
        "FLOTILLA_NOTIFICATIONS_BROKER_URL": redis_url,
        "FLOTILLA_NOTIFICATIONS_SMTP_PORT": str(smtp.port),
        "FLOTILLA_NOTIFICATIONS_WORKER_THREADS": "2",
        "OTEL_TRACES_EXPORTER": "none",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "flotilla.notifications", "worker"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    broker = broker_from_url(redis_url)
    try:
        sent = confirmation()
        send_message(broker, sent)
        wait_for(lambda: inbox.mails or worker.poll() is not None, timeout_s=30)
        assert [mail["To"] for mail in inbox.mails] == ["ada@example.com"]
        assert str(sent.order_id) in inbox.mails[0]["Subject"]
    finally:
        broker.close()
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert "worker stopped" in stderr


def test_an_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
