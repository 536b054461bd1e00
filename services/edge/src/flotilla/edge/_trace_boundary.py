"""Whether the edge believes a caller's trace context.

A ``traceparent`` from the internet lets the caller choose the platform's trace id and its
sampling decision, and ``baggage`` would flow into every internal service. Untrusted (the
chart's default), the edge starts a trace of its own and records the caller's context as a
span link (so the two traces can still be joined), and drops incoming ``baggage``. Trusted
(``flotilla up``), a developer's client continues its own trace. Either way ``X-Trace-Id``
names the trace the platform recorded.

It runs outside OpenTelemetry's ASGI middleware: the headers are taken out of the request's
scope before that middleware extracts a parent from them.

The SERVER span is named as the semantic conventions ask, ``{method} {http.route}``, with the
route table's template (``GET /api/orders/{order_id}``) once the request is routed, and by
its method alone until then: the ASGI middleware would name it by the raw path, so every
order id, and whatever path a client makes up, would be a span name of its own.
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
    """OpenTelemetry's ``server_request_hook``: link the SERVER span to the caller's span, and
    name it by its method (the middleware's name, without the path)."""
    if not span.is_recording():
        return
    span.update_name(span.name.split(" ", 1)[0])
    context = scope.get(CALLER_CONTEXT)
    if context is not None:
        span.add_link(context, {"flotilla.link": "untrusted caller"})


def name_route(method: str, template: str) -> None:
    """Name the current SERVER span by the route template the request matched."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("http.route", template)
        span.update_name(f"{method.upper()} {template}")
