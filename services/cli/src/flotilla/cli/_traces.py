"""``flotilla traces``: one trace from the console, as a tree in the terminal, with each log
line under the span that wrote it."""

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


LEVEL_STYLES = {"warn": "yellow", "error": "bold red", "fatal": "bold red"}


def _log_label(line: dict[str, Any]) -> Text:
    level = line["level"]
    label = Text.assemble(
        (f"{level.upper():5}", LEVEL_STYLES.get(level, "dim")), "  ", line["body"]
    )
    for key, value in sorted(line.get("attributes", {}).items()):
        if key != "exception.stacktrace":
            label.append(f"  {key}={value}", style="dim")
    return label


def trace_tree(trace: dict[str, Any]) -> Tree:
    """Spans nested under their parents, children by start time; orphans hang off the root.
    A span's log lines sit among its children by time; lines of spans not stored, at the
    root."""
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

    lines: dict[str | None, list[dict[str, Any]]] = {}
    for line in trace.get("logs", []):
        owner = line.get("span_id") if line.get("span_id") in known else None
        lines.setdefault(owner, []).append(line)

    def grow(node: Tree, parent: str | None) -> None:
        entries = [(s["start"], 1, s) for s in children.get(parent, [])]
        entries += [(line["time"], 0, line) for line in lines.get(parent, [])]
        for _, is_span, entry in sorted(entries, key=lambda e: (e[0], e[1])):
            if is_span:
                grow(node.add(_label(entry)), entry["span_id"])
            else:
                node.add(_log_label(entry))

    grow(root, None)
    return root
