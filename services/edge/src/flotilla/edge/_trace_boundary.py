"""Whether the edge believes a caller's trace context.

A ``traceparent`` from the internet lets the caller choose the platform's trace id and its
sampling decision, and ``baggage`` would flow into every internal service. Untrusted (the
chart's default), the edge starts a trace of its own and records the caller's context as a
span link (so the two traces can still be joined), and drops incoming ``baggage``. Trusted
(``flotilla up``), a developer's client continues its own trace. Either way ``X-Trace-Id``
names the trace the platform recorded.

It runs outside OpenTelemetry's ASGI middleware: the headers are taken out of the request's
scope before that middleware extracts a parent from them.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

#: Headers that carry trace context or baggage (W3C Trace Context and Baggage).
CONTEXT_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
#: Where the caller's span context waits for the SERVER span (see :func:`link_caller`).
CALLER_CONTEXT = "flotilla.caller_context"


class TraceBoundary:
    """ASGI middleware: pass trace context on when ``trust``, else keep it for a link."""

    def __init__(self, app: Any, *, trust: bool) -> None:
        self.app, self.trust = app, trust

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.trust or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kept, given = [], {}
        for name, value in scope.get("headers", ()):
            lower = name.lower()
            if lower in CONTEXT_HEADERS:
                given[lower.decode("latin-1")] = value.decode("latin-1")
            else:
                kept.append((name, value))
        scope = {**scope, "headers": kept}
        if "traceparent" in given:
            caller = trace.get_current_span(TraceContextTextMapPropagator().extract(given))
            context = caller.get_span_context()
            if context.is_valid:
                scope[CALLER_CONTEXT] = context
        await self.app(scope, receive, send)


def link_caller(span: Any, scope: dict[str, Any]) -> None:
    """OpenTelemetry's ``server_request_hook``: link the SERVER span to the caller's span."""
    context = scope.get(CALLER_CONTEXT)
    if context is not None and span.is_recording():
        span.add_link(context, {"flotilla.link": "untrusted caller"})
