"""Write what is generated from the component catalogue (``flotilla.contracts.catalogue``):
the chart's ``charts/flotilla/catalogue.yaml`` and the tables of ``docs/contracts.md`` and the
README (between ``<!-- catalogue:NAME -->`` and ``<!-- /catalogue:NAME -->``).

``make catalogue`` runs it; ``--check`` writes nothing and exits 1 naming each stale file
(tests/contracts/test_catalogue.py asserts the same).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from flotilla.contracts import FulfilOrder, OrderConfirmation
from flotilla.contracts.catalogue import CATALOGUE, Catalogue, Component, chart_file

ROOT = Path(__file__).resolve().parents[1]
CHART_FILE = Path("charts/flotilla/catalogue.yaml")
MESSAGES = (FulfilOrder, OrderConfirmation)
NONE = "\N{EN DASH}"  # an empty cell


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) or NONE for cell in cells) + " |"


def _ports(c: Component) -> str:
    """Its port and admin port, as one cell: ``8080 (admin 9080)``."""
    return f"{c.port or ''}" + (f" (admin {c.admin_port})" if c.admin_port else "")


def _process_row(c: Component) -> str:
    command = f"`{' '.join(c.argv())}`" + (" (and `… migrate`)" if c.migrate else "")
    calls = ", ".join(c.connects_to())
    return _row(c.name, c.kind, command, _ports(c), f"`{c.settings_prefix}`", calls, c.description)


def processes_table(catalogue: Catalogue) -> str:
    """Every component run by ``flotilla up`` and the chart, in start order."""
    columns = ("component", "kind", "command", "default port", "settings `FLOTILLA_…_*`",
               "connects to", "what")  # fmt: skip
    head = _row(*columns) + "\n" + "|---" * len(columns) + "|"
    infra = "\n".join(
        _row(i.name, "infrastructure", "", f"{i.port} ({i.protocol})", "", "", i.description)
        for i in catalogue.infrastructure
    )
    rows = "\n".join(_process_row(c) for c in catalogue.components)
    return f"{head}\n{rows}\n{infra}"


def queues_table(catalogue: Catalogue) -> str:
    """Each queue: its message schema and actor, who produces, who consumes."""
    schemas = {m.queue: m for m in MESSAGES}
    queues = dict.fromkeys(q for c in catalogue.components for q in (*c.produces, *c.consumes))
    lines = ["| queue | message (`flotilla.contracts`) → actor | producers | consumers |",
             "|---|---|---|---|"]  # fmt: skip
    for queue in queues:
        schema = schemas.get(queue)
        message = f"`{schema.__name__}` → `{schema.actor}`" if schema else ""
        producers = ", ".join(c.name for c in catalogue.components if queue in c.produces)
        consumers = ", ".join(c.name for c in catalogue.components if queue in c.consumes)
        lines.append(_row(f"`{queue}`", message, producers, consumers))
    return "\n".join(lines)


def inside_table(catalogue: Catalogue) -> str:
    """The README's: each process, its default port and what it does."""
    lines = [_row("process", "port", "what it does"), "|---|---|---|"]
    for c in catalogue.components:
        lines.append(_row(c.name, _ports(c), c.description))
    return "\n".join(lines)


#: each generated section: the file it is in, and what writes it
TABLES = {
    "processes": (Path("docs/contracts.md"), processes_table),
    "queues": (Path("docs/contracts.md"), queues_table),
    "inside": (Path("README.md"), inside_table),
}


def with_tables(text: str, catalogue: Catalogue, document: Path) -> str:
    """``text`` with each ``<!-- catalogue:NAME -->`` section of ``document`` replaced."""
    for name, (where, table) in TABLES.items():
        if where != document:
            continue
        pattern = re.compile(
            rf"(<!-- catalogue:{name} -->\n)(?:.*?\n)?(<!-- /catalogue:{name} -->)", re.DOTALL
        )
        if not pattern.search(text):
            raise SystemExit(f"{document}: no <!-- catalogue:{name} --> section to fill")
        text = pattern.sub(lambda m, t=table: m.group(1) + t(catalogue) + "\n" + m.group(2), text)
    return text


def generated(root: Path, catalogue: Catalogue = CATALOGUE) -> dict[Path, str]:
    """Each generated file under ``root`` and the text it should hold."""
    documents = dict.fromkeys(where for where, _ in TABLES.values())
    return {
        root / CHART_FILE: chart_file(catalogue),
        **{
            root / document: with_tables((root / document).read_text(), catalogue, document)
            for document in documents
        },
    }


def stale(root: Path = ROOT, catalogue: Catalogue = CATALOGUE) -> list[Path]:
    """The generated files that differ from what the catalogue makes."""
    return [
        path.relative_to(root)
        for path, text in generated(root, catalogue).items()
        if not path.exists() or path.read_text() != text
    ]


def write(root: Path = ROOT, catalogue: Catalogue = CATALOGUE) -> list[Path]:
    """Write every generated file that changed; returns them."""
    changed = stale(root, catalogue)
    for path, text in generated(root, catalogue).items():
        path.write_text(text)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail when stale")
    args = parser.parse_args()
    if args.check:
        if changed := stale():
            names = ", ".join(str(p) for p in changed)
            print(f"catalogue: {names} out of date; run `make catalogue`", file=sys.stderr)
            return 1
        return 0
    for path in write():
        print(f"catalogue: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
