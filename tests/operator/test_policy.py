"""The autoscaling policy: decision tables and properties (hypothesis)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.operator import History, Observation, QueueDepth, ScalingSpec, decide

pytestmark = pytest.mark.unit

SPEC = ScalingSpec(
    min_replicas=1,
    max_replicas=10,
    target_per_replica=100,
    activation_depth=1,
    scale_up_max_step=4,
    scale_down_window_s=60,
    fallback_replicas=2,
)


def look(current: int, ready: int = 0, in_flight: int = 0, delayed: int = 0) -> Observation:
    return Observation(current, QueueDepth(ready=ready, delayed_due=delayed, in_flight=in_flight))


@pytest.mark.parametrize(
    ("current", "ready", "in_flight", "desired", "action"),
    [
        (1, 0, 0, 1, "hold"),  # idle at the minimum
        (2, 480, 20, 5, "scale-up"),  # ceil(500 / 100)
        (1, 5000, 0, 5, "scale-up"),  # at most 4 more at a time
        (1, 100_000, 0, 5, "scale-up"),
        (9, 100_000, 0, 10, "scale-up"),  # never above the maximum
        (3, 0, 250, 3, "hold"),  # in-flight work counts as demand
    ],
)
def test_decision_table(
    current: int, ready: int, in_flight: int, desired: int, action: str
) -> None:
    decision = decide(SPEC, look(current, ready, in_flight), History(), now=1000)
    assert (decision.desired, decision.action) == (desired, action)


def test_the_reason_says_what_was_seen() -> None:
    decision = decide(SPEC, look(2, 480, 20), History(), now=0)
    assert decision.reason.startswith("2→5")
    assert "depth 500" in decision.reason and "in-flight 20" in decision.reason
    assert "100/replica" in decision.reason


def test_scale_down_waits_for_the_window_then_follows_the_highest_recent_demand() -> None:
    history = decide(SPEC, look(5, 480, 20), History(), now=0).history
    waiting = decide(SPEC, look(5), history, now=30)
    assert (waiting.desired, waiting.action) == (5, "hold")
    assert "window" in waiting.reason
    after = decide(SPEC, look(5), waiting.history, now=61)
    assert (after.desired, after.action) == (1, "scale-down")


def test_scale_to_zero_and_activation() -> None:
    spec = ScalingSpec(
        min_replicas=0,
        max_replicas=5,
        target_per_replica=10,
        activation_depth=5,
        scale_down_window_s=0,
    )
    assert decide(spec, look(0, ready=4), History(), now=0).desired == 0  # below activation
    assert decide(spec, look(0, ready=5), History(), now=0).desired == 1
    assert decide(spec, look(1, ready=0), History(), now=0).desired == 0  # idle: back to zero
    assert decide(spec, look(1, ready=3), History(), now=0).desired == 1  # running: no threshold


def test_one_failed_read_changes_nothing_three_give_the_fallback() -> None:
    """One lost read is not an outage: replicas stay until three reads in a row failed,
    then the fallback applies, and a good read starts the count again."""
    static = dataclasses.replace(SPEC, fallback_behavior="static")
    seen = Observation(current_replicas=1, depth=None, broker_error="redis: connection refused")
    history = History()
    actions = []
    for _ in range(3):
        decision = decide(static, seen, history, now=0)
        history = decision.history
        actions.append((decision.desired, decision.action))
    assert actions == [(1, "hold"), (1, "hold"), (2, "fallback")]
    assert "1 of 3 failures before fallback" in decide(static, seen, History(), now=0).reason
    assert "connection refused" in decision.reason
    ok = decide(static, look(2, ready=0), history, now=1)
    assert ok.history.failures == 0
    assert decide(static, seen, ok.history, now=2).action == "hold"


def test_the_fallback_never_stops_busy_workers_unless_asked_to() -> None:
    """Seven replicas at work and the broker unreadable: currentReplicasIfHigher (the
    default) keeps the seven; a static fallback goes to 2 as configured."""
    seen = Observation(current_replicas=7, depth=None, broker_error="redis: timeout")
    failing = History(failures=2)
    keep = decide(SPEC, seen, failing, now=0)
    assert (keep.desired, keep.action) == (7, "fallback")
    assert "currentReplicasIfHigher" in keep.reason
    static = decide(dataclasses.replace(SPEC, fallback_behavior="static"), seen, failing, now=0)
    assert (static.desired, static.action) == (2, "fallback")
    low = Observation(current_replicas=1, depth=None, broker_error="redis: timeout")
    assert decide(SPEC, low, failing, now=0).desired == 2  # below the fallback: up to it


def test_paused_changes_nothing() -> None:
    seen = Observation(current_replicas=3, depth=QueueDepth(ready=10_000), paused=True)
    decision = decide(SPEC, seen, History(), now=0)
    assert (decision.desired, decision.action) == (3, "paused")


def test_nonsense_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="min_replicas <= max_replicas"):
        ScalingSpec(min_replicas=5, max_replicas=2)
    with pytest.raises(ValueError, match="positive"):
        ScalingSpec(target_per_replica=0)


# -- properties ------------------------------------------------------------------------------

specs = st.builds(
    lambda lo, span, target, step, down, window, act, fb, periods, threshold, behavior: ScalingSpec(
        min_replicas=lo,
        max_replicas=lo + span,
        target_per_replica=target,
        scale_up_max_step=step,
        scale_down_max_step=down,
        scale_down_window_s=window,
        activation_depth=act,
        fallback_replicas=fb,
        scale_up_period_s=periods[0],
        scale_down_period_s=periods[1],
        fallback_failure_threshold=threshold,
        fallback_behavior=behavior,
    ),
    st.integers(0, 5),
    st.integers(0, 20),
    st.integers(1, 500),
    st.integers(1, 10),
    st.integers(1, 50),
    st.floats(0, 600),
    st.integers(1, 50),
    st.integers(0, 30),
    st.tuples(st.floats(0, 120), st.floats(0, 120)),
    st.integers(1, 5),
    st.sampled_from(["static", "currentReplicasIfHigher"]),
)
depths = st.builds(
    QueueDepth, st.integers(0, 100_000), st.integers(0, 10_000), st.integers(0, 10_000)
)
histories = st.builds(
    lambda recs, changes, failures: History(tuple(sorted(recs)), tuple(sorted(changes)), failures),
    st.lists(st.tuples(st.floats(0, 1000), st.integers(0, 30)), max_size=10),
    st.lists(st.tuples(st.floats(900, 1000), st.integers(-10, 10)), max_size=5),
    st.integers(0, 6),
)


@settings(max_examples=300, deadline=None)
@given(specs, st.integers(0, 30), histories, st.floats(1000, 2000))
def test_an_unreadable_broker_never_lowers_replicas_by_default(
    spec: ScalingSpec, current: int, history: History, now: float
) -> None:
    """Before the threshold nothing changes; after it, currentReplicasIfHigher never goes
    below the current count (within the bounds)."""
    decision = decide(spec, Observation(current, None, broker_error="x"), history, now)
    inside = max(spec.min_replicas, min(spec.max_replicas, current))
    if history.failures + 1 < spec.fallback_failure_threshold:
        assert (decision.desired, decision.action) == (inside, "hold")
    elif spec.fallback_behavior == "currentReplicasIfHigher":
        assert decision.desired >= inside
    assert decision.history.failures == history.failures + 1


@settings(max_examples=300, deadline=None)
@given(specs, st.integers(0, 30), st.one_of(st.none(), depths), histories, st.floats(1000, 2000))
def test_never_outside_the_bounds(
    spec: ScalingSpec, current: int, depth: QueueDepth | None, history: History, now: float
) -> None:
    decision = decide(spec, Observation(current, depth), history, now)
    assert spec.min_replicas <= decision.desired <= spec.max_replicas


@settings(max_examples=300, deadline=None)
@given(specs, st.integers(0, 30), depths, histories, st.floats(1000, 2000))
def test_no_scale_down_below_a_recommendation_inside_the_window(
    spec: ScalingSpec, current: int, depth: QueueDepth, history: History, now: float
) -> None:
    decision = decide(spec, Observation(current, depth), history, now)
    recent = [r for t, r in history.recommendations if t > now - spec.scale_down_window_s]
    if decision.desired < current and recent:
        # whatever was recommended within the window is still honoured
        assert decision.desired >= min(max(recent), spec.max_replicas)


@settings(max_examples=300, deadline=None)
@given(specs, st.integers(0, 30), depths, depths, histories, st.floats(1000, 2000))
def test_monotone_in_depth(
    spec: ScalingSpec, current: int, a: QueueDepth, b: QueueDepth, history: History, now: float
) -> None:
    low, high = sorted((a, b), key=lambda d: d.total)
    more_ready = QueueDepth(
        ready=high.total - low.total + low.ready,
        delayed_due=low.delayed_due,
        in_flight=low.in_flight,
    )
    first = decide(spec, Observation(current, low), history, now)
    second = decide(spec, Observation(current, more_ready), history, now)
    assert second.desired >= first.desired


@settings(max_examples=300, deadline=None)
@given(specs, st.integers(1, 30), depths, histories, st.floats(1000, 2000))
def test_never_below_in_flight_demand(
    spec: ScalingSpec, current: int, depth: QueueDepth, history: History, now: float
) -> None:
    decision = decide(spec, Observation(current, depth), history, now)
    needed = min(spec.max_replicas, math.ceil(depth.in_flight / spec.target_per_replica))
    if decision.desired < current:  # a scale-down never drops below what in-flight work needs
        assert decision.desired >= needed


def test_scale_up_adds_at_most_max_step_per_period() -> None:
    """Given scaleUp {maxStep: 4, periodSeconds: 10}, a deep queue adds 4 now, then waits."""
    spec = ScalingSpec(max_replicas=20, scale_up_max_step=4, scale_up_period_s=10)
    first = decide(spec, look(1, 5000), History(), now=0)
    assert (first.desired, first.action) == (5, "scale-up")
    held = decide(spec, look(5, 5000), first.history, now=5)
    assert (held.desired, held.action) == (5, "hold")
    assert "scale-up step used (4 added in the last 10s)" in held.reason
    later = decide(spec, look(5, 5000), held.history, now=10.5)
    assert (later.desired, later.action) == (9, "scale-up")


def test_scale_down_removes_at_most_max_step_per_period() -> None:
    spec = ScalingSpec(
        max_replicas=20, scale_down_max_step=2, scale_down_period_s=30, scale_down_window_s=0
    )
    first = decide(spec, look(8), History(), now=0)
    assert (first.desired, first.action) == (6, "scale-down")
    held = decide(spec, look(6), first.history, now=10)
    assert (held.desired, held.action) == (6, "hold")
    assert "scale-down step used" in held.reason
    assert decide(spec, look(6), held.history, now=31).desired == 4


@settings(max_examples=200, deadline=None)
@given(specs, st.lists(depths, min_size=1, max_size=30), st.floats(0.1, 10))
def test_steps_stay_within_each_period(
    spec: ScalingSpec, seen: list[QueueDepth], interval: float
) -> None:
    """Across a run of decisions, no period adds more than maxStep (or removes more), except
    to get back inside the bounds."""
    current, history, now = spec.min_replicas, History(), 0.0
    made: list[tuple[float, int]] = []
    for depth in seen:
        decision = decide(spec, Observation(current, depth), history, now)
        if decision.desired != current:
            made.append((now, decision.desired - current))
        current, history, now = decision.desired, decision.history, now + interval
    for at, _ in made:
        up = sum(d for t, d in made if d > 0 and at - spec.scale_up_period_s < t <= at)
        down = -sum(d for t, d in made if d < 0 and at - spec.scale_down_period_s < t <= at)
        assert up <= max(spec.scale_up_max_step, spec.min_replicas)
        assert down <= spec.scale_down_max_step
