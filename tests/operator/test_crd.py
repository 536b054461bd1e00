"""The WorkerAutoscaler CRD: it accepts our examples, refuses nonsense with a message, shows the
columns `kubectl get wa` promises, and the chart ships the same file.

No API server runs here: tests.support.crd applies defaults, the schema and the CEL rules as
admission would (see its docstring).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla.operator import parse_spec
from flotilla.operator.kube import GROUP, PLURAL, VERSION
from tests.support.crd import (
    CHART_CRD_PATH,
    CRD_PATH,
    ROOT,
    admission_errors,
    crd,
    version,
    with_defaults,
)

pytestmark = pytest.mark.unit

EXAMPLES = sorted((ROOT / "k8s" / "examples").glob("*.yaml"))


def example() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(EXAMPLES[0].read_text())
    return loaded


def test_the_crd_names_what_the_operator_watches() -> None:
    spec = crd()["spec"]
    assert (spec["group"], spec["names"]["plural"], version()["name"]) == (GROUP, PLURAL, VERSION)
    assert spec["names"]["shortNames"] == ["wa"]
    assert spec["scope"] == "Namespaced"
    assert version()["subresources"] == {"status": {}}


def test_kubectl_get_wa_shows_target_depth_in_flight_replicas_desired_and_age() -> None:
    columns = [c["name"] for c in version()["additionalPrinterColumns"]]
    assert columns == ["Target", "Depth", "In-Flight", "Replicas", "Desired", "Age"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_admitted_and_the_operator_can_act_on_it(path: Path) -> None:
    for obj in yaml.safe_load_all(path.read_text()):
        assert admission_errors(obj) == []
        stored = with_defaults(obj, crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
        parsed = parse_spec(stored["spec"])  # defaults and operator agree on a usable spec
        assert parsed.scaling.min_replicas <= parsed.scaling.max_replicas


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        ({"minReplicas": 5, "maxReplicas": 2}, "minReplicas must not exceed maxReplicas"),
        ({"targetPerReplica": 0}, "spec.targetPerReplica: 0 is less than the minimum of 1"),
        ({"queues": []}, "spec.queues: [] should be non-empty"),
        ({"broker": {}}, "broker needs url or urlFrom.secretKeyRef"),
        (
            {"broker": {"url": "http://redis:6379"}},
            "does not match '^(redis|rediss|amqp|amqps)://'",
        ),
        ({"pollIntervalSeconds": 0}, "spec.pollIntervalSeconds: 0 is less than the minimum of 0.1"),
        ({"scaleTargetRef": {"name": "w", "kind": "StatefulSet"}}, "is not one of ['Deployment']"),
        ({"scaleUp": {"maxStep": 0}}, "spec.scaleUp.maxStep: 0 is less than the minimum of 1"),
    ],
)
def test_nonsense_is_refused_with_the_field_at_fault(change: dict[str, Any], fault: str) -> None:
    obj = copy.deepcopy(example())
    obj["spec"].update(change)
    errors = admission_errors(obj)
    assert any(fault in error for error in errors), errors


def test_defaults_fill_in_what_the_operator_documents() -> None:
    obj = copy.deepcopy(example())
    obj["spec"] = {
        "scaleTargetRef": {"name": "w"},
        "broker": {"url": "redis://r:6379/0"},
        "queues": ["q"],
    }
    stored = with_defaults(obj, crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    assert admission_errors(obj) == []
    spec = stored["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"], spec["pollIntervalSeconds"]) == (1, 10, 2)
    assert spec["scaleTargetRef"]["kind"] == "Deployment"
    # the operator's own defaults (for objects stored before a default existed) are the same
    bare = parse_spec(obj["spec"])
    defaulted = parse_spec(spec)
    assert (bare.scaling, bare.poll_interval_s) == (defaulted.scaling, defaulted.poll_interval_s)


def test_the_chart_ships_the_same_crd() -> None:
    """charts/flotilla/crds/ holds a copy made by `make crds`; Helm cannot template crds/."""
    assert CHART_CRD_PATH.read_bytes() == CRD_PATH.read_bytes(), "run `make crds`"
