"""``python -m flotilla.cli.mailsink``: a local SMTP server that files every mail in a folder.

A mailbox, as people's mail providers keep one: a mail with a ``Message-ID`` is filed once
under that id (a second delivery of the same message, which an at-least-once sender may make,
is the same mail, as Gmail shows it once), others as ``<time>-<n>.eml``. Every delivery is
also a line of ``deliveries.log`` (``new`` or ``duplicate``), so duplicates are counted, not
hidden.
"""

from __future__ import annotations

import argparse
import itertools
import re
import signal
import threading
import time
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

_UNSAFE = re.compile(r"[^A-Za-z0-9@._-]")


class MailFolder:
    """aiosmtpd handler: each accepted message is filed as one ``.eml`` file in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def _name(self, content: bytes) -> str:
        message_id = (BytesHeaderParser().parsebytes(content).get("Message-ID") or "").strip()
        if message_id:
            return _UNSAFE.sub("_", message_id.strip("<>"))[:200] + ".eml"
        return f"{time.strftime('%Y%m%dT%H%M%S')}-{next(self._numbers):05d}.eml"

    async def handle_DATA(
        self, server: Any, session: Any, envelope: Any
    ) -> str:  # aiosmtpd's hook name
        name = self._name(envelope.content)
        target = self.folder / name
        with self._lock:
            fresh = not target.exists()
            if fresh:
                temporary = self.folder / f".{name}.part"
                temporary.write_bytes(envelope.content)
                temporary.rename(target)  # NOTE: readers never see half a mail
            with (self.folder / "deliveries.log").open("a") as log:
                log.write(f"{time.time():.3f} {'new' if fresh else 'duplicate'} {name}\n")
        verdict = "filed as" if fresh else "already filed as"
        print(f"mail to {', '.join(envelope.rcpt_tos)} {verdict} {name}", flush=True)
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path("var/mail"))
    args = parser.parse_args()
    controller = Controller(MailFolder(args.dir), hostname=args.host, port=args.port)
    controller.start()
    print(f"mail sink on {args.host}:{args.port}, filing into {args.dir}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
