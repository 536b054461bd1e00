"""``python -m flotilla.core.alive [MAX_AGE_S]``: a worker's liveness probe.

Exits 0 when the worker's heartbeat file was touched within ``MAX_AGE_S`` seconds (default 60),
1 otherwise, with one line saying why. The worker touches it every few seconds while its
consumer and worker threads are alive (:func:`flotilla.core.run_worker`).
"""

from __future__ import annotations

import sys
import time

from ._worker import HEARTBEAT_FILE


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    max_age_s = float(args[0]) if args else 60.0
    try:
        age = time.time() - HEARTBEAT_FILE.stat().st_mtime
    except FileNotFoundError:
        print(f"no heartbeat yet at {HEARTBEAT_FILE}", file=sys.stderr)
        return 1
    if age > max_age_s:
        print(f"last heartbeat {age:.0f} s ago (more than {max_age_s:.0f} s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
