"""Check an object against a CRD the way the API server would: the WorkerAutoscaler's (the
default), or another one, e.g. the Prometheus Operator's PodMonitor (``PODMONITOR_CRD_PATH``).

No API server can run here, so this does the two parts of its admission that matter for our
objects: defaults are applied from the schema, then the object is validated against the
``openAPIV3Schema`` (jsonschema; the OpenAPI subset a structural schema uses is plain JSON
Schema) and every ``x-kubernetes-validations`` CEL rule is evaluated with ``self`` bound to its
node (cel-python). Printer columns are resolved from their ``jsonPath``.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "k8s" / "crds" / "workerautoscalers.flotilla.dev.yaml"
CHART_CRD_PATH = ROOT / "charts" / "flotilla" / "crds" / CRD_PATH.name
#: vendored from the Prometheus Operator (its license and version in the file's header)
PODMONITOR_CRD_PATH = ROOT / "tests" / "support" / "crds" / "monitoring.coreos.com_podmonitors.yaml"


@cache
def crd(path: Path = CRD_PATH) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def version(path: Path = CRD_PATH) -> dict[str, Any]:
    (served,) = crd(path)["spec"]["versions"]
    return dict(served)


def schema(path: Path = CRD_PATH) -> dict[str, Any]:
    return dict(version(path)["schema"]["openAPIV3Schema"])


def with_defaults(value: Any, node: dict[str, Any]) -> Any:
    """The object as the API server stores it: schema defaults filled in."""
    if isinstance(value, dict) and node.get("type") == "object":
        value = dict(value)
        for key, child in node.get("properties", {}).items():
            if key not in value and "default" in child:
                value[key] = copy.deepcopy(child["default"])
            if key in value:
                value[key] = with_defaults(value[key], child)
    elif isinstance(value, list) and "items" in node:
        value = [with_defaults(item, node["items"]) for item in value]
    return value


def _cel_errors(value: Any, node: dict[str, Any], path: str) -> list[str]:
    errors = []
    env = celpy.Environment()
    for rule in node.get("x-kubernetes-validations", []):
        program = env.program(env.compile(rule["rule"]))
        if not program.evaluate({"self": celpy.json_to_cel(value)}):
            errors.append(f"{path}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for key, child in node.get("properties", {}).items():
            if key in value:
                errors += _cel_errors(value[key], child, f"{path}.{key}")
    return errors


def admission_errors(obj: dict[str, Any], crd_path: Path = CRD_PATH) -> list[str]:
    """What the API server would refuse in ``obj``, one line each ([] = accepted)."""
    root = schema(crd_path)
    stored = with_defaults(obj, root)
    validator = jsonschema.Draft7Validator(root, format_checker=jsonschema.FormatChecker())
    errors = [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(stored)
    ]
    return errors or _cel_errors(stored, root, "")


def printer_column(obj: dict[str, Any], json_path: str) -> Any:
    """The value `kubectl get` shows for a column's simple ``.a.b.c`` jsonPath."""
    value: Any = obj
    for part in json_path.lstrip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
