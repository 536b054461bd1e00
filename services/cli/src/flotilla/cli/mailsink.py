"""``python -m flotilla.cli.mailsink``: a local SMTP server that files every mail in a folder.

Each message is written as ``<time>-<n>.eml``, so a person can open it and a test can read it.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MailFolder:
    """aiosmtpd handler: each accepted message becomes one ``.eml`` file in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._numbers = itertools.count(1)

    async def handle_DATA(
        self, server: Any, session: Any, envelope: Any
    ) -> str:  # aiosmtpd's hook name
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{next(self._numbers):05d}.eml"
        temporary = self.folder / f".{name}.part"
        temporary.write_bytes(envelope.content)
        temporary.rename(self.folder / name)  # NOTE: readers never see half a mail
        print(f"mail to {', '.join(envelope.rcpt_tos)} filed as {name}", flush=True)
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
