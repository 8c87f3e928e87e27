"""Every kustomization renders, and every rendered object is valid against its schema.

Built-in kinds: the Kubernetes OpenAPI schemas (strict: unknown fields are errors) for the
oldest supported and the newest known Kubernetes version. KEDA and Prometheus Operator
objects: models generated from their CRDs; a field the model does not know, or a value it
had to coerce, shows up as a difference on the round trip and fails the test.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cloudcoil.models.keda import v1alpha1 as keda
from cloudcoil.models.prometheus_operator import v1 as promop
from kubernetes_validate import utils as kv

from tests.deploy.support import K8S_MIN_VERSION, KUSTOMIZATIONS, Doc, one

CRD_MODELS: dict[tuple[str, str], Any] = {
    ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication,
    ("monitoring.coreos.com/v1", "PodMonitor"): promop.PodMonitor,
}
VERSIONS = (K8S_MIN_VERSION, kv.latest_version())


def validate_builtin(doc: Doc, version: str) -> None:
    kv.validate(doc, version, strict=True)


def validate_crd(doc: Doc) -> None:
    """Raise AssertionError if ``doc`` does not survive its CRD model unchanged."""
    model = CRD_MODELS[(doc["apiVersion"], doc["kind"])]
    parsed = model.model_validate(doc)  # raises pydantic.ValidationError on bad types
    back = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert back == doc, f"{doc['kind']} changed on validation (unknown or coerced fields):\n{back}\n!=\n{doc}"


def validate(doc: Doc, version: str) -> None:
    if (doc["apiVersion"], doc["kind"]) in CRD_MODELS:
        validate_crd(doc)
    else:
        validate_builtin(doc, version)


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_kustomization_renders_expected_kinds(rendered: dict[str, list[Doc]], name: str) -> None:
    kinds = sorted(d["kind"] for d in rendered[name])
    for kind in ("ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget",
                 "PodMonitor", "ScaledObject", "Service", "ServiceAccount"):
        assert kind in kinds, f"{name}: no {kind} rendered (got {kinds})"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_every_object_matches_its_schema(rendered: dict[str, list[Doc]], name: str, version: str) -> None:
    failures = []
    for doc in rendered[name]:
        try:
            validate(doc, version)
        except kv.SchemaNotFoundError:
            failures.append(f"{doc['kind']} {doc['apiVersion']}: no schema (add a CRD model)")
        except Exception as exc:  # collect all, report together
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc}")
    assert not failures, f"{name} @ {version}:\n" + "\n".join(failures)


def test_strict_schema_rejects_a_misspelt_field(rendered: dict[str, list[Doc]]) -> None:
    # Proves the validator is not vacuous: a typo Kubernetes would silently drop fails.
    deployment = copy.deepcopy(one(rendered["prod"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProb"] = {}
    with pytest.raises(kv.ValidationError):
        validate_builtin(deployment, kv.latest_version())


def test_schema_rejects_a_wrong_type(rendered: dict[str, list[Doc]]) -> None:
    pdb = copy.deepcopy(one(rendered["prod"], "PodDisruptionBudget"))
    pdb["spec"]["selector"] = "app=pynomaly"
    with pytest.raises(kv.ValidationError):
        validate_builtin(pdb, K8S_MIN_VERSION)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda so: so["spec"].__setitem__("maxReplicaCount", "many"),  # not an integer
        lambda so: so["spec"].__setitem__("maxReplicas", 3),  # not a ScaledObject field
        lambda so: so["spec"].pop("triggers"),  # required by the CRD
        lambda so: so["spec"].__setitem__("minReplicaCount", "1"),  # coerced string
    ],
    ids=["bad-type", "unknown-field", "missing-required", "string-for-int"],
)
def test_crd_check_rejects_bad_scaledobjects(rendered: dict[str, list[Doc]], mutate: Any) -> None:
    so = copy.deepcopy(one(rendered["prod"], "ScaledObject"))
    mutate(so)
    with pytest.raises(Exception) as info:
        validate_crd(so)
    assert not isinstance(info.value, KeyError)


def test_crd_check_rejects_bad_podmonitor(rendered: dict[str, list[Doc]]) -> None:
    pm = copy.deepcopy(one(rendered["prod"], "PodMonitor"))
    pm["spec"]["podMetricsEndpoints"][0]["scrapeInterval"] = "15s"  # the field is `interval`
    with pytest.raises(AssertionError):
        validate_crd(pm)
