"""kopf handlers: one daemon per WorkerAutoscaler runs the policy at its poll interval.

Thin on purpose: read the spec, the Deployment's replicas and the queue depth; call
:func:`flotilla.operator.decide`; patch the ``scale`` subresource when the answer changes,
post an Event, write the status, record the decision as a span and in the metrics.

Why a daemon and not ``@kopf.timer``: a timer's interval is fixed when it is declared, while
``pollIntervalSeconds`` belongs to each object. The daemon covers the object's life cycle:
kopf starts it on create and on resume (operator restart), stops it on delete (the Deployment
keeps its replicas), and it reads the live body every round, so annotations apply at the next
poll; a spec update also wakes it at once (``on.update`` of ``spec``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf
from opentelemetry import trace

from ._decisions import DECISION_SPAN, decision_attributes
from ._depth import DepthUnavailable, RabbitmqDepthReader, RedisDepthReader, depth_reader
from ._kube import KubeApi, KubeError
from ._metrics import OperatorMetrics
from ._policy import History, Observation, ScaleDecision, decide
from ._spec import AutoscalerSpec, InvalidSpec, parse_spec

GROUP, VERSION, PLURAL = "flotilla.dev", "v1alpha1", "workerautoscalers"
PAUSED = "flotilla.dev/paused"
REASONS = {"scale-up": "ScaledUp", "scale-down": "ScaledDown", "fallback": "Fallback"}
tracer = trace.get_tracer("flotilla.operator")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(body: Any, *wanted: tuple[str, bool, str, str]) -> list[dict[str, str]]:
    """Conditions ``(type, ok, reason, message)``; a transition time moves only on a change."""
    before = {c.get("type"): c for c in body.get("status", {}).get("conditions", [])}
    conditions = []
    for kind, ok, reason, message in wanted:
        status = "True" if ok else "False"
        previous = before.get(kind, {})
        since = previous.get("lastTransitionTime") if previous.get("status") == status else None
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": since or _now(),
            }
        )
    return conditions


async def _broker_url(api: KubeApi, namespace: str, parsed: AutoscalerSpec) -> str:
    if parsed.broker_url:
        return parsed.broker_url
    assert parsed.broker_secret is not None
    return await api.secret_value(namespace, *parsed.broker_secret)


async def evaluate(
    api: KubeApi,
    body: Any,
    namespace: str,
    name: str,
    history: History,
    readers: dict[str, RedisDepthReader | RabbitmqDepthReader],
    metrics: OperatorMetrics,
) -> tuple[ScaleDecision | None, float]:
    """One round: returns the decision (None for an invalid spec) and the next interval.

    ``readers`` caches a depth reader per broker across rounds (the caller closes them).
    """
    try:
        parsed = parse_spec(dict(body.get("spec", {})))
    except InvalidSpec as exc:
        await api.patch_status(
            namespace,
            name,
            {
                "conditions": _conditions(body, ("Ready", False, "InvalidSpec", str(exc))),
                "lastDecision": str(exc),
            },
        )
        return None, 5.0
    paused = body.get("metadata", {}).get("annotations", {}).get(PAUSED) == "true"
    current = await api.deployment_replicas(namespace, parsed.target)
    depth, error, note = None, None, None
    try:
        url = await _broker_url(api, namespace, parsed)
        key = f"{url} {parsed.management_url}"
        if key not in readers:  # PERF: one client per broker, not a new pool every poll
            readers[key] = depth_reader(url, management_url=parsed.management_url)
        with metrics.read_seconds.labels(namespace, name).time():
            reading = await asyncio.to_thread(readers[key].read, list(parsed.queues))
        depth, note = reading.depth, reading.note
    except (DepthUnavailable, KubeError) as exc:
        error = str(exc)
    with tracer.start_as_current_span(DECISION_SPAN) as span:
        observation = Observation(current, depth, paused, error)
        decision = decide(parsed.scaling, observation, history, time.monotonic())
        span.set_attributes(
            decision_attributes(
                autoscaler=f"{namespace}/{name}",
                target=parsed.target,
                queues=parsed.queues,
                spec=parsed.scaling,
                observation=observation,
                decision=decision,
            )
        )
    metrics.record(namespace, name, current, depth, decision)
    fallback = decision.action == "fallback"
    status: dict[str, Any] = {
        "currentReplicas": current,
        "desiredReplicas": decision.desired,
        "lastDecision": decision.reason,
        "conditions": _conditions(
            body,
            ("Ready", True, "Evaluated", "the policy ran"),
            (
                "BrokerReachable",
                error is None,
                "Unreachable" if error else ("PartialRead" if note else "Read"),
                error or note or "depth read",
            ),
            (
                "Paused",
                paused,
                "Annotation" if paused else "NotPaused",
                f"{PAUSED}={'true' if paused else 'false'}",
            ),
            (
                "Fallback",
                fallback,
                "BrokerUnreachable" if fallback else "DepthKnown",
                decision.reason if fallback else "depth known",
            ),
        ),
    }
    if depth is not None:
        status.update(
            {"depth": depth.total, "inFlight": depth.in_flight, "delayedDue": depth.delayed_due}
        )
    if decision.desired != current and decision.action != "paused":
        await api.scale(namespace, parsed.target, decision.desired)
        status["currentReplicas"] = decision.desired
        status["lastScaleTime"] = _now()
        kopf.event(
            body,
            type="Normal" if decision.action != "fallback" else "Warning",
            reason=REASONS.get(decision.action, "Scaled"),
            message=decision.reason,
        )
    await api.patch_status(namespace, name, status)
    return decision, parsed.poll_interval_s


async def _pause(stopped: Any, wake: asyncio.Event, interval: float) -> None:
    """Sleep ``interval`` seconds, or less if the daemon is stopped or woken."""
    waits = {asyncio.ensure_future(stopped.wait(interval)), asyncio.ensure_future(wake.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
        wake.clear()


def register(
    registry: kopf.OperatorRegistry,
    api_factory: Callable[[], KubeApi],
    metrics: OperatorMetrics | None = None,
) -> OperatorMetrics:
    """Declare the handlers on ``registry``; ``api_factory`` gives the API client.

    Returns the metrics the handlers record into (serve their ``registry`` to Prometheus).
    """
    metrics = metrics or OperatorMetrics()
    wakeups: dict[str, asyncio.Event] = {}

    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, field="spec")
    async def respec(**kwargs: Any) -> None:
        """A new spec applies now, not at the end of a long poll interval."""
        if wake := wakeups.get(kwargs["uid"]):
            wake.set()

    @kopf.daemon(GROUP, VERSION, PLURAL, registry=registry, cancellation_timeout=10)
    async def autoscale(**kwargs: Any) -> None:
        body, name, namespace = kwargs["body"], kwargs["name"], kwargs["namespace"]
        stopped, logger = kwargs["stopped"], kwargs["logger"]
        api = api_factory()
        wake = wakeups.setdefault(kwargs["uid"], asyncio.Event())
        history = History()
        readers: dict[str, RedisDepthReader | RabbitmqDepthReader] = {}
        try:
            while not stopped:
                interval = 2.0
                try:
                    decision, interval = await evaluate(
                        api, body, namespace, name, history, readers, metrics
                    )
                    if decision is not None:
                        history = decision.history
                except KubeError as exc:
                    logger.warning(f"autoscaler round failed: {exc}")
                await _pause(stopped, wake, interval)
        finally:
            wakeups.pop(kwargs["uid"], None)
            await api.close()
            for reader in readers.values():
                reader.close()
            metrics.forget(namespace, name)

    return metrics
