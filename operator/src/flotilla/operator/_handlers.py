"""kopf handlers: one daemon per WorkerAutoscaler runs the policy at its poll interval.

Thin on purpose: read the spec, the Deployment's replicas and the queue depth; call
:func:`flotilla.operator.decide`; patch the ``scale`` subresource when the answer changes,
post an Event, write the status, and record the decision as a span.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf
from opentelemetry import trace

from ._depth import DepthUnavailable, RabbitmqDepthReader, RedisDepthReader, depth_reader
from ._kube import KubeApi, KubeError
from ._policy import History, Observation, ScaleDecision, decide
from ._spec import AutoscalerSpec, InvalidSpec, parse_spec

GROUP, VERSION, PLURAL = "flotilla.dev", "v1alpha1", "workerautoscalers"
PAUSED = "flotilla.dev/paused"
REASONS = {"scale-up": "ScaledUp", "scale-down": "ScaledDown", "fallback": "Fallback"}
tracer = trace.get_tracer("flotilla.operator")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": _now(),
    }


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
) -> tuple[ScaleDecision | None, float]:
    """One round: returns the decision (None for an invalid spec) and the next interval.

    ``readers`` caches a depth reader per broker URL across rounds (the caller closes them).
    """
    try:
        parsed = parse_spec(dict(body.get("spec", {})))
    except InvalidSpec as exc:
        await api.patch_status(
            namespace,
            name,
            {
                "conditions": [_condition("Ready", False, "InvalidSpec", str(exc))],
                "lastDecision": str(exc),
            },
        )
        return None, 5.0
    paused = body.get("metadata", {}).get("annotations", {}).get(PAUSED) == "true"
    current = await api.deployment_replicas(namespace, parsed.target)
    depth, error = None, None
    try:
        url = await _broker_url(api, namespace, parsed)
        if url not in readers:  # PERF: one client per broker, not a new pool every poll
            readers[url] = depth_reader(url)
        reading = await asyncio.to_thread(readers[url].read, list(parsed.queues))
        depth = reading.depth
    except (DepthUnavailable, KubeError) as exc:
        error = str(exc)
    with tracer.start_as_current_span(
        "autoscale decision",
        attributes={
            "flotilla.autoscaler": f"{namespace}/{name}",
            "flotilla.target": parsed.target,
        },
    ) as span:
        decision = decide(
            parsed.scaling, Observation(current, depth, paused, error), history, time.monotonic()
        )
        span.set_attributes(
            {
                "flotilla.action": decision.action,
                "flotilla.reason": decision.reason,
                "flotilla.replicas.current": current,
                "flotilla.replicas.desired": decision.desired,
                "flotilla.depth": depth.total if depth else -1,
            }
        )
    status: dict[str, Any] = {
        "currentReplicas": current,
        "desiredReplicas": decision.desired,
        "lastDecision": decision.reason,
        "conditions": [
            _condition("Ready", True, "Evaluated", "the policy ran"),
            _condition(
                "BrokerReachable",
                error is None,
                "Read" if error is None else "Unreachable",
                error or "depth read",
            ),
            _condition(
                "Paused",
                paused,
                "Annotation" if paused else "NotPaused",
                f"{PAUSED}={'true' if paused else 'false'}",
            ),
            _condition(
                "Fallback",
                decision.action == "fallback",
                "BrokerUnreachable" if decision.action == "fallback" else "DepthKnown",
                decision.reason if decision.action == "fallback" else "depth known",
            ),
        ],
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


def register(registry: kopf.OperatorRegistry, api_factory: Callable[[], KubeApi]) -> None:
    """Declare the handlers on ``registry``; ``api_factory`` gives the API client."""

    @kopf.daemon(GROUP, VERSION, PLURAL, registry=registry, cancellation_timeout=10)
    async def autoscale(**kwargs: Any) -> None:
        body, name, namespace = kwargs["body"], kwargs["name"], kwargs["namespace"]
        stopped, logger = kwargs["stopped"], kwargs["logger"]
        api = api_factory()
        history = History()
        readers: dict[str, RedisDepthReader | RabbitmqDepthReader] = {}
        try:
            while not stopped:
                interval = 2.0
                try:
                    decision, interval = await evaluate(
                        api, body, namespace, name, history, readers
                    )
                    if decision is not None:
                        history = decision.history
                except KubeError as exc:
                    logger.warning(f"autoscaler round failed: {exc}")
                await stopped.wait(interval)
        finally:
            await api.close()
            for reader in readers.values():
                reader.close()
