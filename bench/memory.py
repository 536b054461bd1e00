"""Resident memory of every process of the idle local platform (target: under 1 GiB together).

Starts the real ``flotilla up`` on free ports with its own embedded broker, waits until it is
ready and has been idle for a few seconds, then reads each process's RSS with psutil.

    uv run python bench/memory.py [--idle-seconds 10]
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _support import start_platform


def _name(process: psutil.Process) -> str:
    argv = process.cmdline()
    if "-m" in argv:
        module = argv[argv.index("-m") + 1].removeprefix("flotilla.")
        rest = argv[argv.index("-m") + 2 : argv.index("-m") + 3]
        return f"{module} {' '.join(rest)}".strip()
    return Path(argv[0]).name if argv else process.name()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=10)
    args = parser.parse_args()
    console = Console()
    with console.status("starting the platform"):
        up = start_platform("flotilla-mem-").process
    with console.status(f"idle for {args.idle_seconds:.0f} s"):
        time.sleep(args.idle_seconds)
    supervisor = psutil.Process(up.pid)
    rows = [("flotilla up (supervisor)", supervisor.memory_info().rss)]
    rows += sorted(
        ((_name(p), p.memory_info().rss) for p in supervisor.children(recursive=True)),
        key=lambda row: -row[1],
    )
    up.send_signal(signal.SIGINT)
    up.wait(60)

    table = Table(title="Resident memory of the idle local platform")
    table.add_column("process")
    table.add_column("RSS", justify="right")
    for name, rss in rows:
        table.add_row(name, f"{rss / 2**20:,.0f} MiB")
    total = sum(rss for _, rss in rows)
    table.add_row("[bold]all together[/]", f"[bold]{total / 2**20:,.0f} MiB[/]")
    console.print(table)


if __name__ == "__main__":
    main()
