"""docs/security.md's route table is the code's: one row per rule, and nothing more."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flotilla.edge import ROUTE_TABLE

pytestmark = pytest.mark.unit

DOC = Path(__file__).parents[2] / "docs" / "security.md"


def documented_rows() -> set[tuple[str, str, str, str]]:
    text = DOC.read_text()
    section = text.split("## Routes", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] and cells[0][0].isupper() and cells[0] != "methods":
            rows.add((cells[0], cells[1], cells[2], re.sub(r"`", "", cells[3])))
    return rows


def test_the_documented_routes_are_exactly_the_route_table() -> None:
    from_code = {
        (
            ", ".join(rule.methods),
            route.prefix + rule.path,
            rule.scope,
            f"{route.upstream} {route.rewrite + rule.path or '/'}",
        )
        for route in ROUTE_TABLE
        for rule in route.rules
    }
    assert documented_rows() == from_code
