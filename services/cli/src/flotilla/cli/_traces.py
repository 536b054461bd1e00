"""``flotilla traces``: one trace from the console, as a tree in the terminal."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from rich.tree import Tree

QUEUE_WAIT = "messaging.dramatiq.queue_wait_ms"
SERVICE_STYLES = {
    "edge": "cyan",
    "orders-api": "green",
    "inventory-api": "yellow",
    "orders-worker": "magenta",
    "notifications-worker": "blue",
}


def _label(span: dict[str, Any]) -> Text:
    duration_ms = (span["end"] - span["start"]) / 1e6
    style = SERVICE_STYLES.get(span["service"], "white")
    label = Text.assemble(
        (f"{span['service']}", f"bold {style}"),
        "  ",
        span["name"],
        (f"  {span['kind'].lower()}", "dim"),
        f"  {duration_ms:.1f} ms",
    )
    wait = span.get("attributes", {}).get(QUEUE_WAIT)
    if wait is not None:
        label.append(f"  waited {float(wait):.1f} ms in the queue", style="italic")
    if span.get("status") == "ERROR":
        label.append(f"  ERROR {span.get('status_message', '')}".rstrip(), style="bold red")
    return label


def trace_tree(trace: dict[str, Any]) -> Tree:
    """Spans nested under their parents, children by start time; orphans hang off the root."""
    spans = sorted(trace["spans"], key=lambda s: s["start"])
    known = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_span_id"] if span["parent_span_id"] in known else None
        children.setdefault(parent, []).append(span)
    total_ms = (max(s["end"] for s in spans) - spans[0]["start"]) / 1e6 if spans else 0
    services = sorted({s["service"] for s in spans})
    root = Tree(
        Text.assemble(
            ("trace ", "bold"),
            trace["trace_id"],
            f"  {len(spans)} spans, {len(services)} services, {total_ms:.1f} ms",
        )
    )

    def grow(node: Tree, parent: str | None) -> None:
        for span in children.get(parent, []):
            grow(node.add(_label(span)), span["span_id"])

    grow(root, None)
    return root
