"""Local worker pools: the operator's policy, a real Redis depth, real worker processes.

The "workers" are tiny Python processes that log and wait for SIGTERM: the pool's job is to
start and retire processes; what a real worker does on SIGTERM is tested in tests/core.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import dramatiq
import psutil
import pytest
from rich.console import Console

from flotilla.cli import ProcessSpec, Supervisor
from flotilla.cli._pools import LocalAutoscaler, WorkerPool
from flotilla.core import broker_from_url
from flotilla.operator import ScalingSpec
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def idle_cpu() -> float:
    """The machine's CPU as these tests see it: idle. A scale-up held on a saturated machine
    has its own test below; elsewhere the load of the tests running beside (pytest-xdist's
    workers) must not decide."""
    return 0.0


WORKER = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
    "print('worker up', flush=True); time.sleep(120)"
)


def _pool(redis_url: str) -> tuple[dramatiq.Broker, Any, Console, Supervisor, WorkerPool]:
    """A pool of stand-in worker processes (1 to 4, 10 messages each) on a fresh queue, and
    an actor that sends to it."""
    queue = f"pool-{uuid.uuid4().hex[:8]}"
    broker = broker_from_url(redis_url)

    @dramatiq.actor(broker=broker, queue_name=queue)
    def job(i: int) -> None: ...

    shown = Console(file=io.StringIO(), width=200)
    supervisor = Supervisor(shown, grace_period_s=5)
    spec = ScalingSpec(
        min_replicas=1,
        max_replicas=4,
        target_per_replica=10,
        scale_up_max_step=4,
        scale_down_window_s=5,
    )
    pool = WorkerPool(
        ProcessSpec("w", [sys.executable, "-c", WORKER], queue=queue), spec, supervisor
    )
    return broker, job, shown, supervisor, pool


def test_depth_scales_worker_processes_up_then_down_after_the_window(
    redis_url: str, tmp_path: Path
) -> None:
    broker, job, shown, supervisor, pool = _pool(redis_url)
    status = tmp_path / "status.json"
    autoscaler = LocalAutoscaler([pool], redis_url, status, shown, cpu_busy=idle_cpu)
    try:
        pool.scale_to(1)
        for i in range(35):
            job.send(i)
        autoscaler.tick(now=100)
        assert len(pool.replicas) == 4  # ceil(35 / 10)
        written = json.loads(status.read_text())["pools"][0]
        assert (written["name"], written["depth"], written["replicas"]) == ("w", 35, 4)
        assert written["last_decision"].startswith("1→4")

        broker.flush(pool.queue)
        autoscaler.tick(now=102)
        assert len(pool.replicas) == 4  # inside the window: nothing is stopped
        retired = list(pool.replicas[1:])
        autoscaler.tick(now=106)
        assert len(pool.replicas) == 1
        deadline = time.monotonic() + 10
        while any(c.process.poll() is None for c in retired) and time.monotonic() < deadline:
            time.sleep(0.05)
        # stopped by SIGTERM (a replica still booting dies of it before its handler exists)
        assert {c.process.returncode for c in retired} <= {0, -15}
    finally:
        supervisor.stop()
        broker.close()
    assert "scale-up 1→4" in shown.file.getvalue()  # type: ignore[attr-defined]
    assert not [
        p for p in psutil.Process().children(recursive=True) if "worker up" in " ".join(p.cmdline())
    ]


def test_status_without_a_running_platform_says_so(tmp_path: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "flotilla.cli", "status", "--var-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 1
    assert shown.stderr.startswith("flotilla: no running platform writes")
    assert shown.stderr.count("\n") == 1


def test_a_killed_worker_is_a_lost_replica_its_pool_replaces(
    redis_url: str, tmp_path: Path
) -> None:
    """SIGKILL one of two replicas: the pool counts it lost, replaces it after the back-off
    (the desired count is unchanged) and reports the restart and its exit code."""
    from flotilla.cli import RestartPolicy

    queue = f"pool-{uuid.uuid4().hex[:8]}"
    shown = Console(file=io.StringIO(), width=200)
    supervisor = Supervisor(shown, grace_period_s=5, restart_policy=RestartPolicy(initial_s=0.5))
    spec = ScalingSpec(min_replicas=2, max_replicas=4, target_per_replica=10)
    pool = WorkerPool(
        ProcessSpec("w", [sys.executable, "-c", WORKER], queue=queue), spec, supervisor
    )
    status = tmp_path / "status.json"
    autoscaler = LocalAutoscaler(
        [pool], redis_url, status, shown, processes=supervisor.snapshot, cpu_busy=idle_cpu
    )
    try:
        pool.scale_to(2)
        victim = pool.replicas[0]
        victim.process.kill()
        victim.process.wait(5)
        supervisor.tend()
        autoscaler.tick(now=time.monotonic())
        assert len(pool.replicas) == 1 and pool.desired == 2  # inside the back-off
        time.sleep(0.6)
        autoscaler.tick(now=time.monotonic())
        assert len(pool.replicas) == 2
        assert victim not in pool.replicas and victim not in supervisor.children
        written = json.loads(status.read_text())
        (row,) = written["pools"]
        assert (row["replicas"], row["restarts"], row["last_exit_code"]) == (2, 1, -9)
        names = {p["name"] for p in written["processes"]}
        assert names == {c.spec.name for c in pool.replicas}
    finally:
        supervisor.stop()
        autoscaler.reader.close()
    assert "w exited with code -9 (SIGKILL); its pool replaces it" in shown.file.getvalue()  # type: ignore[attr-defined]


BUSY_WORKER = """
import pathlib, sys, time, dramatiq
from flotilla.core import broker_from_url, run_worker, worker_name
url, queue, marks = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
broker = broker_from_url(url)

@dramatiq.actor(broker=broker, queue_name=queue, actor_name="long_job")
def long_job():
    (marks / worker_name()).touch()
    time.sleep(60)

run_worker(broker, queues=[queue], threads=1, drain_timeout_s=1)
"""


def test_scaling_in_retires_the_idle_replica_not_the_busy_one(
    redis_url: str, tmp_path: Path
) -> None:
    """Two replicas, the newer one in the middle of a long job: scaling to one retires the
    idle one (what the operator's pod-deletion-cost makes Kubernetes do), not the newest."""
    queue = f"pool-{uuid.uuid4().hex[:8]}"
    broker = broker_from_url(redis_url)

    @dramatiq.actor(broker=broker, queue_name=queue, actor_name="long_job")
    def long_job() -> None: ...

    shown = Console(file=io.StringIO(), width=200)
    supervisor = Supervisor(shown, grace_period_s=5)
    spec = ScalingSpec(min_replicas=1, max_replicas=2, target_per_replica=10, scale_down_window_s=0)
    argv = [sys.executable, "-c", BUSY_WORKER, redis_url, queue, str(tmp_path)]
    pool = WorkerPool(ProcessSpec("w", argv, queue=queue), spec, supervisor)
    autoscaler = LocalAutoscaler(
        [pool], redis_url, tmp_path / "status.json", shown, cpu_busy=idle_cpu
    )
    try:
        pool.scale_to(2)
        first = pool.replicas[0].process
        os.kill(first.pid, signal.SIGSTOP)  # NOTE: so the job goes to the newer replica
        long_job.send()
        (busy,) = wait_for(lambda: list(tmp_path.glob("w*")), timeout_s=30)
        os.kill(first.pid, signal.SIGCONT)
        assert busy.name == "w-2"
        autoscaler.tick(now=time.monotonic())  # depth: 1 in flight → 1 replica
        assert [r.spec.name for r in pool.replicas] == [busy.name]
    finally:
        supervisor.stop()
        autoscaler.reader.close()
        broker.close()


def test_a_scale_up_is_held_while_the_machine_cpu_is_saturated(
    redis_url: str, tmp_path: Path
) -> None:
    """Locally every replica shares the same cores: with the CPU busy past the ceiling the
    pool keeps the replicas it has (and says why); once the CPU has room it scales up. The
    CPU reading is given by the test (a real one would depend on the machine)."""
    broker, job, shown, supervisor, pool = _pool(redis_url)
    busy = [97.0]
    autoscaler = LocalAutoscaler(
        [pool], redis_url, tmp_path / "status.json", shown, cpu_busy=lambda: busy[0]
    )
    try:
        pool.scale_to(1)
        for i in range(35):
            job.send(i)
        autoscaler.tick(now=100)
        assert len(pool.replicas) == 1
        written = json.loads((tmp_path / "status.json").read_text())["pools"][0]
        assert "the CPU is 97% busy" in written["last_decision"]
        busy[0] = 40.0
        autoscaler.tick(now=101)
        assert len(pool.replicas) == 4
    finally:
        supervisor.stop()
        broker.close()


def test_a_ceiling_of_100_percent_never_holds_a_scale_up(redis_url: str, tmp_path: Path) -> None:
    broker, job, shown, supervisor, pool = _pool(redis_url)
    autoscaler = LocalAutoscaler(
        [pool], redis_url, tmp_path / "status.json", shown,
        cpu_ceiling_percent=100, cpu_busy=lambda: 100.0,
    )  # fmt: skip
    try:
        pool.scale_to(1)
        for i in range(35):
            job.send(i)
        autoscaler.tick(now=100)
        assert len(pool.replicas) == 4
    finally:
        supervisor.stop()
        broker.close()
