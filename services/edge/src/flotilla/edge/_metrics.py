"""Prometheus metrics of the edge (one registry per app, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class EdgeMetrics:
    """The edge's counters, histogram and gauges, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edge_requests",
            "Requests answered by the edge",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "edge_request_duration_seconds",
            "Time from request to answer",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "edge_rate_limited", "Requests refused by the rate limit", registry=self.registry
        )
        self.upstream_errors = Counter(
            "edge_upstream_errors",
            "Failed upstream attempts",
            ["upstream", "kind"],
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "edge_circuit_state",
            "State of each upstream's circuit breaker: 0 closed, 1 half-open, 2 open",
            ["upstream"],
            registry=self.registry,
        )
