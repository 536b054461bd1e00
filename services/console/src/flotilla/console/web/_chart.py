"""A pool's history as an inline SVG chart (no chart library: a few polylines)."""

from __future__ import annotations

from markupsafe import Markup, escape

from .._decisions import PoolView

WIDTH, HEIGHT, PAD = 800, 170, 28
SERIES = (  # (css class, label, colour, which axis)
    ("depth", "depth", "#0a58ca", "left"),
    ("in-flight", "in-flight", "#8250df", "left"),
    ("replicas", "replicas", "#1a7f37", "right"),
    ("desired", "desired", "#bc4c00", "right"),
)


def _values(pool: PoolView, name: str) -> list[float | None]:
    if name == "depth":
        return [d.depth for d in pool.series]
    if name == "in-flight":
        return [d.in_flight for d in pool.series]
    if name == "replicas":
        return [d.current for d in pool.series]
    return [d.desired for d in pool.series]


def chart(pool: PoolView, *, since_ns: int, now_ns: int) -> Markup:
    """Depth and in-flight (left axis), replicas and desired (right axis, steps) over time."""
    span = max(now_ns - since_ns, 1)
    times = [d.time for d in pool.series]
    messages = max([v for n in ("depth", "in-flight") for v in _values(pool, n) if v] + [1])
    replicas = max([d.max for d in pool.series] + [d.current for d in pool.series] + [1])
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x(t: int) -> float:
        return PAD + (t - since_ns) / span * inner_w

    def y(value: float, top: float) -> float:
        return PAD + inner_h - value / top * inner_h

    lines = []
    for css, _label, _colour, axis in SERIES:
        top = messages if axis == "left" else replicas
        points: list[str] = []
        previous: float | None = None
        for t, value in zip(times, _values(pool, css), strict=True):
            if value is None:
                continue
            if axis == "right" and previous is not None:  # a step: hold, then jump
                points.append(f"{x(t):.1f},{y(previous, top):.1f}")
            points.append(f"{x(t):.1f},{y(value, top):.1f}")
            previous = value
        if points:
            joined = " ".join(points)
            lines.append(
                f'<polyline class="{css}" fill="none" stroke-width="2" points="{joined}"/>'
            )
    latest = pool.latest
    summary = escape(
        f"{pool.name}: depth up to {messages}, replicas between {latest.min} and {latest.max}; "
        f"now {latest.current} replicas, desired {latest.desired}"
    )
    axes = (
        f'<line x1="{PAD}" y1="{PAD + inner_h}" x2="{WIDTH - PAD}" y2="{PAD + inner_h}" '
        'stroke="#d0d7de"/>'
        f'<text x="4" y="{PAD - 8}" font-size="11" fill="#57606a">{messages} msgs</text>'
        f'<text x="{WIDTH - 4}" y="{PAD - 8}" font-size="11" fill="#57606a" '
        f'text-anchor="end">{replicas} replicas</text>'
        f'<text x="{PAD}" y="{HEIGHT - 6}" font-size="11" fill="#57606a">'
        f"{span / 60e9:.0f} min ago</text>"
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" font-size="11" fill="#57606a" '
        'text-anchor="end">now</text>'
    )
    legend = "".join(
        f'<li style="--k: {colour}">{label}{" (right axis)" if axis == "right" else ""}</li>'
        for _css, label, colour, axis in SERIES
    )
    return Markup(  # noqa: S704  # every interpolated value is a number or escaped above
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{summary}">'
        f"<title>{summary}</title>{axes}{''.join(lines)}</svg>"
        f'<ul class="chart-legend">{legend}</ul>'
    )
