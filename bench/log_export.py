"""What exporting logs over OTLP costs a process: a log line written as JSON to stderr only,
against the same line also exported (OpenTelemetry's logging handler, the batch processor,
OTLP/HTTP protobuf to a real console process), side by side in one run.

Each variant runs in a child process of its own (the platform's ``configure_logging`` and
``configure_telemetry``, as a component starts), logs ``--lines`` lines inside spans with two
``extra=`` fields, as a service's line for an order does, and reports its CPU time per line,
every thread counted (the exporter's thread included), until its last line is exported; and
the console's CPU time per line for receiving and storing them (its spans' too). The variants
alternate for ``--rounds`` rounds; prints medians and the ratio::

    uv run python bench/log_export.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._support import console_process

CHILD = textwrap.dedent(
    """
    import json, logging, sys, time
    from opentelemetry import trace
    from flotilla.core import configure_logging, configure_telemetry, flush_telemetry

    configure_logging("bench-api")
    configure_telemetry("bench-api")
    log, tracer = logging.getLogger("bench.orders"), trace.get_tracer("bench")
    lines = int(sys.argv[1])
    for n in range(200):  # warm up
        log.info("order accepted", extra={"order": n, "amount_cents": 4200})
    flush_telemetry()
    started = time.process_time()
    for n in range(lines // 10):
        with tracer.start_as_current_span("POST /orders"):
            for _ in range(10):
                log.info("order accepted", extra={"order": n, "amount_cents": 4200})
    flush_telemetry()
    print(json.dumps({"cpu_s": time.process_time() - started}))
    """
)


def cpu_s(pid: int) -> float:
    """A process's CPU time so far (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(variant: str, console: str, lines: int) -> float:
    """CPU microseconds per line (spans included) of one child process."""
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": console,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "otlp" if variant == "stderr + OTLP" else "none",
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(lines)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the JSON lines: written, and dropped here
        check=True,
        text=True,
    )
    return float(json.loads(done.stdout)["cpu_s"]) / lines * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    variants = ("stderr only", "stderr + OTLP")
    results: dict[str, list[float]] = {v: [] for v in variants}
    received: dict[str, list[float]] = {v: [] for v in variants}
    out = Console()
    with console_process() as (console, receiver):
        for round_ in range(args.rounds):
            for variant in variants:
                before = cpu_s(receiver.pid)
                results[variant].append(run(variant, console, args.lines))
                time.sleep(1.0)  # the console stores the last export
                received[variant].append((cpu_s(receiver.pid) - before) / args.lines * 1e6)
                out.print(f"round {round_ + 1} {variant}: {results[variant][-1]:.1f} µs/line")
    table = Table(title=f"a log line inside a span, {args.lines} lines x {args.rounds} rounds")
    table.add_column("variant")
    table.add_column("process CPU per line", justify="right")
    table.add_column("console CPU per line", justify="right")
    for variant in variants:
        table.add_row(
            variant,
            f"{statistics.median(results[variant]):.1f} µs",
            f"{statistics.median(received[variant]):.1f} µs",
        )
    out.print(table)
    base, exported = (statistics.median(results[v]) for v in variants)
    out.print(
        f"exporting costs {exported / base:.2f}x stderr alone: {exported - base:.1f} µs more a line"
    )
    stored = statistics.median(received[variants[1]]) - statistics.median(received[variants[0]])
    out.print(f"and the console {stored:.1f} µs a line to receive and store it")


if __name__ == "__main__":
    main()
