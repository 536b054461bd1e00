"""The shape of the code: no module of a member grows past about 400 lines (issue 23), so each
stays one concern a reader can hold; a module that grows past it is split along its seams."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
#: "about 400": a little room for a docstring or a fix, not for a second concern
MOST_LINES = 410


def test_no_module_of_a_member_is_over_about_400_lines() -> None:
    modules = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("operator/src/**/*.py")]
    assert len(modules) > 50  # NOTE: the globs found the members
    long = {
        str(path.relative_to(ROOT)): lines
        for path in modules
        if (lines := len(path.read_text().splitlines())) > MOST_LINES
    }
    assert not long, f"split these along their seams (at most {MOST_LINES} lines): {long}"
