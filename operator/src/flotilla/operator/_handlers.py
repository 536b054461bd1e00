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
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf
from opentelemetry import trace

from ._decisions import DECISION_SPAN, decision_attributes
from ._depth import DepthUnavailable, RabbitmqDepthReader, RedisDepthReader, depth_reader
from ._kube import DELETION_COST, KubeApi, KubeError
from ._metrics import OperatorMetrics
from ._policy import History, Observation, ScaleDecision, decide
from ._session import wait_for_login
from ._spec import AutoscalerSpec, InvalidSpec, parse_spec

GROUP, VERSION, PLURAL = "flotilla.dev", "v1alpha1", "workerautoscalers"
PAUSED = "flotilla.dev/paused"
REASONS = {"scale-up": "ScaledUp", "scale-down": "ScaledDown", "fallback": "Fallback"}
tracer = trace.get_tracer("flotilla.operator")
logger = logging.getLogger(__name__)


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
        if decision.desired < current and depth is not None:
            costs = await _prefer_idle_pods(api, namespace, parsed, readers[key])
            if costs:
                decision = dataclasses.replace(
                    decision, reason=f"{decision.reason}; idle pods go first ({costs})"
                )
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


#: the longest wait between two rounds that failed
ERROR_BACKOFF_CAP_S = 60.0


async def _object_gone(api: KubeApi, namespace: str, name: str) -> bool:
    """Whether the WorkerAutoscaler itself no longer exists (not just its target)."""
    try:
        await api.autoscaler(namespace, name)
    except KubeError as exc:
        return exc.gone
    return False


async def _report_error(
    api: KubeApi, body: Any, namespace: str, name: str, error: Exception, retry_s: float
) -> None:
    """Say on the object what went wrong (``Ready=False``, reason ``Error``); best effort."""
    message = f"{type(error).__name__}: {error}"[:300] + f" (retrying in {retry_s:g} s)"
    try:
        await api.patch_status(
            namespace,
            name,
            {
                "conditions": _conditions(body, ("Ready", False, "Error", message)),
                "lastDecision": message,
            },
        )
    except Exception:  # the API server itself may be what fails; the next round tries again
        logger.warning("could not write the error condition", exc_info=True)


async def _prefer_idle_pods(
    api: KubeApi,
    namespace: str,
    parsed: AutoscalerSpec,
    reader: RedisDepthReader | RabbitmqDepthReader,
) -> str:
    """Before a scale-in: mark each pod with the work it holds as its deletion cost, so the
    ReplicaSet removes idle pods and the busy ones keep their messages.

    KEDA and the HPA pick no pod; Kubernetes then removes, roughly, the youngest, which may
    be the one in the middle of a long job (kedacore/keda#3680). Best effort: when the broker
    or the pods cannot be read, the scale-in still happens, as it would without this.

    Returns:
        ``pod=held`` for each pod, most idle first (for the Event), or ``""``.
    """
    try:
        held = await asyncio.to_thread(reader.in_flight_by_pod, list(parsed.queues))
        pods = await api.pods_of(namespace, parsed.target)
        for pod, meta in pods.items():
            cost = held.get(pod, 0)
            if (meta.get("annotations") or {}).get(DELETION_COST) != str(cost):
                await api.set_deletion_cost(namespace, pod, cost)
    except (DepthUnavailable, KubeError) as exc:
        logger.warning("could not mark idle pods before scaling in: %s", exc)
        return ""
    ranked = sorted(pods, key=lambda pod: (held.get(pod, 0), pod))
    return ", ".join(f"{pod}={held.get(pod, 0)}" for pod in ranked)


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
        failures = 0
        try:
            while not stopped:
                try:
                    decision, interval = await evaluate(
                        api, body, namespace, name, history, readers, metrics
                    )
                    if decision is not None:
                        history = decision.history
                    failures = 0
                except KubeError as exc:
                    if exc.status == 401:
                        # NOTE: the token was refused (logged once by the credentials); no
                        # round can work until the API server accepts one, so wait for that
                        # as the login does, and go on at once when it does
                        logger.warning("the API server refused the token; this autoscaler waits")
                        await wait_for_login(api)
                        continue
                    if exc.gone and await _object_gone(api, namespace, name):
                        logger.info("the WorkerAutoscaler is gone; its daemon stops")
                        return
                    failures += 1
                    interval = min(ERROR_BACKOFF_CAP_S, 2.0 * 2 ** (failures - 1))
                    logger.warning(f"autoscaler round failed: {exc}; retrying in {interval:g} s")
                    await _report_error(api, body, namespace, name, exc, interval)
                except Exception as exc:  # NOTE: a round that fails is a condition and a retry
                    failures += 1
                    interval = min(ERROR_BACKOFF_CAP_S, 2.0 * 2 ** (failures - 1))
                    logger.exception(f"autoscaler round failed; retrying in {interval:g} s")
                    await _report_error(api, body, namespace, name, exc, interval)
                await _pause(stopped, wake, interval)
        finally:
            wakeups.pop(kwargs["uid"], None)
            await api.close()
            for reader in readers.values():
                reader.close()
            metrics.forget(namespace, name)

    # NOTE: kopf's id for a handler is its function's qualified name
    _without_finalizer(registry, str(getattr(autoscale, "__qualname__", "autoscale")))
    return metrics


def _without_finalizer(registry: kopf.OperatorRegistry, handler_id: str) -> None:
    """Let the daemon run without kopf's finalizer on every WorkerAutoscaler.

    kopf puts a finalizer on an object for each of its daemons, so that the daemon is
    stopped before the object goes. Then ``helm uninstall`` (which removes the operator
    first) and deleting the CRD hang for ever on objects nobody unblocks. The daemon needs
    no such guarantee: it stops itself once its object is gone (a 404), and a stopped
    daemon leaves the Deployment as it is.

    NOTE: kopf offers no switch for this (``requires_finalizer`` is fixed to True for
    daemons), so the registered handler is replaced; tests/operator checks that the objects
    carry no finalizer and are deletable with the operator gone.
    """
    spawning: Any = registry._spawning  # kopf's own registry, see NOTE
    spawning._handlers = [
        dataclasses.replace(h, requires_finalizer=False) if h.id == handler_id else h
        for h in spawning._handlers
    ]
