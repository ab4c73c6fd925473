# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of kube/apply.py and the pure parts of kube/resource.py: identity, ordering, namespaces,
ownership, action decision, Secret masking, planning without writes."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import apply
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import (
    KubeApiError,
    ResourceType,
    crd_kinds,
    crd_scopes,
    split_api_version,
)

TYPES = {
    ("v1", "ConfigMap"): ResourceType("", "v1", "ConfigMap", "configmaps", True),
    ("v1", "Secret"): ResourceType("", "v1", "Secret", "secrets", True),
    ("v1", "Namespace"): ResourceType("", "v1", "Namespace", "namespaces", False),
    ("apps/v1", "Deployment"): ResourceType("apps", "v1", "Deployment", "deployments", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"):
        ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
        ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False),
}


class FakeMapper:
    def find(self, api_version, kind):
        return TYPES.get((api_version, kind))


def obj(kind, name, api_version="v1", namespace=None, annotations=None, **fields):
    metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}


CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "gadgets.example.com"},
       "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Gadget", "plural": "gadgets"},
                "versions": [{"name": "v1", "served": True}, {"name": "v0", "served": False}]}}


# --- identity and REST paths --------------------------------------------------------------------

def test_identity_uses_group_not_version():
    v1 = apply.ResourceId.of(obj("HorizontalPodAutoscaler", "web", "autoscaling/v1", "shop"))
    v2 = apply.ResourceId.of(obj("HorizontalPodAutoscaler", "web", "autoscaling/v2", "shop"))
    assert v1 == v2 == apply.ResourceId("autoscaling", "HorizontalPodAutoscaler", "shop", "web")
    assert v1.label == "HorizontalPodAutoscaler shop/web"
    assert apply.ResourceId.of(obj("Namespace", "shop")).label == "Namespace shop"


def test_split_api_version_and_paths():
    assert split_api_version("v1") == ("", "v1")
    assert split_api_version("apps/v1") == ("apps", "v1")
    assert TYPES[("v1", "ConfigMap")].path("shop", "cfg") == "/api/v1/namespaces/shop/configmaps/cfg"
    assert TYPES[("apps/v1", "Deployment")].path("shop") == "/apis/apps/v1/namespaces/shop/deployments"
    cluster_role = TYPES[("rbac.authorization.k8s.io/v1", "ClusterRole")]
    assert cluster_role.path("ignored", "admin") == "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin"
    assert cluster_role.api_version == "rbac.authorization.k8s.io/v1"


def test_crd_kinds_and_scopes():
    assert crd_kinds(CRD) == [("example.com/v1", "Gadget")]
    assert crd_scopes([CRD, obj("ConfigMap", "x")]) == {("example.com", "Gadget"): False}


# --- ordering -----------------------------------------------------------------------------------

def test_order_key_crds_namespaces_then_weights():
    assert apply.order_key(CRD) == (0, 0)
    assert apply.order_key(obj("Namespace", "shop")) == (1, 0)
    assert apply.order_key(obj("ConfigMap", "a")) == (2, 0)
    assert apply.order_key(obj("Job", "migrate", "batch/v1", annotations={"werf.io/weight": "-5"})) == (2, -5)


def test_invalid_weight_names_the_object():
    with pytest.raises(ConvergeError, match=r"Job shop/migrate: annotation werf.io/weight must be an integer"):
        apply.order_key(obj("Job", "migrate", "batch/v1", "shop", annotations={"werf.io/weight": "soon"}))


def test_apply_groups_are_sorted_and_stable_within_a_group():
    manifests = [obj("ConfigMap", "late", annotations={"werf.io/weight": "10"}), obj("ConfigMap", "b"),
                 obj("Namespace", "shop"), obj("ConfigMap", "a"), CRD,
                 obj("Job", "first", "batch/v1", annotations={"werf.io/weight": "-1"})]
    items = [apply.Desired(m, apply.ResourceId.of(m), apply.order_key(m)) for m in manifests]
    groups = [[item.rid.name for item in group] for group in apply.apply_groups(items)]
    assert groups == [["gadgets.example.com"], ["shop"], ["first"], ["b", "a"], ["late"]]


# --- prepare: namespaces, annotations, duplicates ------------------------------------------------

def test_prepare_defaults_namespace_only_for_namespaced_kinds_and_keeps_input():
    manifests = [obj("ConfigMap", "cfg"), obj("ConfigMap", "other", namespace="elsewhere"),
                 obj("ClusterRole", "reader", "rbac.authorization.k8s.io/v1", namespace="shop"), CRD,
                 {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": "x"}}]
    before = copy.deepcopy(manifests)
    desired = apply.prepare(manifests, "rel", "shop", FakeMapper())
    assert manifests == before
    assert [d.rid.namespace for d in desired] == ["shop", "elsewhere", "", "", ""]
    assert "namespace" not in desired[2].obj["metadata"]
    assert desired[4].rtype is None  # served only once the CRD of the set is applied
    for item in desired:
        assert item.obj["metadata"]["labels"] == {apply.MANAGED_BY_LABEL: "Helm"}
        assert item.obj["metadata"]["annotations"] == {apply.HELM_RELEASE_ANNOTATION: "rel",
                                                       apply.HELM_NAMESPACE_ANNOTATION: "shop"}


def test_prepare_adds_werf_metadata_everywhere_and_ownership_only_to_owned_non_hooks():
    metadata = apply.ObjectMetadata.werf(project="shop", env="", version="berth.converge/0.1.0",
                                         labels={"team": "a", "app.kubernetes.io/managed-by": "me"},
                                         annotations={"ci/url": "https://ci/1", "replicas": 3})
    chart_obj = obj("ConfigMap", "cfg")
    chart_obj["metadata"]["annotations"] = {"ci/url": "from-chart", "keep": "me"}
    owned, = apply.prepare([chart_obj], "rel", "shop", FakeMapper(), metadata)
    hook, = apply.prepare([obj("ConfigMap", "h")], "rel", "shop", FakeMapper(), metadata, hooks=True)
    crd, = apply.prepare([CRD], "rel", "shop", FakeMapper(), owned=False)
    werf = {"werf.io/version": "berth.converge/0.1.0", "project.werf.io/name": "shop"}  # no env: not set
    assert owned.obj["metadata"]["labels"] == {"team": "a", "app.kubernetes.io/managed-by": "Helm"}
    assert owned.obj["metadata"]["annotations"] == {"keep": "me", "ci/url": "https://ci/1", "replicas": "3", **werf,
                                                    "meta.helm.sh/release-name": "rel",
                                                    "meta.helm.sh/release-namespace": "shop"}
    assert hook.hook and hook.obj["metadata"]["labels"] == {"team": "a", "app.kubernetes.io/managed-by": "me"}
    assert hook.obj["metadata"]["annotations"] == {"ci/url": "https://ci/1", "replicas": "3", **werf}
    assert "labels" not in crd.obj["metadata"] and "annotations" not in crd.obj["metadata"]
    with pytest.raises(ConvergeError, match="annotations: the value of x must be a string"):
        apply.ObjectMetadata.werf(annotations={"x": {"a": 1}})


def test_import_refusal_is_helms_ownership_check():
    mine = {"metadata": {"labels": {"app.kubernetes.io/managed-by": "Helm"},
                         "annotations": {"meta.helm.sh/release-name": "rel",
                                         "meta.helm.sh/release-namespace": "shop"}}}
    assert apply.import_refusal(mine, "rel", "shop") is None
    refusal = apply.import_refusal({"metadata": {"annotations": {"meta.helm.sh/release-name": "other"}}},
                                   "rel", "shop")
    assert refusal == (
        "exists and cannot be imported into the current release: invalid ownership metadata; "
        "label validation error: missing key 'app.kubernetes.io/managed-by': must be set to 'Helm'; "
        "annotation validation error: key 'meta.helm.sh/release-name' must equal 'rel': current value is 'other'; "
        "annotation validation error: missing key 'meta.helm.sh/release-namespace': must be set to 'shop'")


def test_prepare_rejects_duplicates_and_incomplete_items():
    with pytest.raises(ConvergeError, match=r"ConfigMap shop/cfg appears twice in the manifests \(items 0 and 2\)"):
        apply.prepare([obj("ConfigMap", "cfg"), obj("ConfigMap", "x"), obj("ConfigMap", "cfg", namespace="shop")],
                      "rel", "shop", FakeMapper())
    with pytest.raises(ConvergeError, match=r"manifests item 1 \(ConfigMap\) lacks metadata.name"):
        apply.prepare([obj("ConfigMap", "ok"), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}],
                      "rel", "shop", FakeMapper())
    with pytest.raises(ConvergeError, match="manifests item 0 is not a mapping"):
        apply.prepare(["kind: ConfigMap"], "rel", "shop", FakeMapper())


def test_ownership_by_helm_annotations():
    ours = {"metadata": {"annotations": {apply.HELM_RELEASE_ANNOTATION: "rel",
                                         apply.HELM_NAMESPACE_ANNOTATION: "shop"}}}
    helm = {"metadata": {"annotations": {apply.HELM_RELEASE_ANNOTATION: "legacy",
                                         apply.HELM_NAMESPACE_ANNOTATION: "shop"}}}
    assert apply.foreign_owner(ours, "rel", "shop") is None
    assert apply.foreign_owner(ours, "rel", "staging") == ("rel", "shop")
    assert apply.foreign_owner(helm, "rel", "shop") == ("legacy", "shop")
    assert apply.foreign_owner({"metadata": {}}, "rel", "shop") is None
    assert apply.foreign_owner(None, "rel", "shop") is None


# --- action decision ------------------------------------------------------------------------------

LIVE = {"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "shop", "uid": "u1", "resourceVersion": "41",
                     "creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": [{"manager": "berth-converge"}],
                     "generation": 1},
        "data": {"a": "1"}}


def test_decide_action():
    assert apply.decide_action(None, LIVE) == apply.CREATE
    dry_run = copy.deepcopy(LIVE)
    dry_run["metadata"].update(resourceVersion="42", managedFields=[{"manager": "other"}], generation=2)
    dry_run["status"] = {"observed": True}
    assert apply.decide_action(LIVE, dry_run) == apply.UNCHANGED
    dry_run["data"]["a"] = "2"
    assert apply.decide_action(LIVE, dry_run) == apply.UPDATE


def test_comparable_leaves_the_input_alone():
    before = copy.deepcopy(LIVE)
    view = apply.comparable(LIVE)
    assert LIVE == before
    assert view["metadata"] == {"name": "cfg", "namespace": "shop"}


# --- Secret masking -------------------------------------------------------------------------------

SECRET = {"apiVersion": "v1", "kind": "Secret",
          "metadata": {"name": "db", "annotations": {apply.LAST_APPLIED_ANNOTATION:
                                                     '{"stringData":{"password":"hunter2-plain"}}'}},
          "data": {"password": "aHVudGVyMi1wbGFpbg=="}, "stringData": {"token": "tok-plain-123"}}


def test_mask_secrets_hides_every_value_and_keeps_changes_visible():
    masked = apply.mask_secrets(SECRET)
    text = json.dumps(masked)
    for plain in ("hunter2-plain", "aHVudGVyMi1wbGFpbg==", "tok-plain-123"):
        assert plain not in text
    assert masked["data"]["password"].startswith("<hidden:")
    assert apply.mask_secrets(SECRET)["data"] == masked["data"]  # equal values, equal masks
    changed = copy.deepcopy(SECRET)
    changed["data"]["password"] = "b3RoZXI="
    assert apply.mask_secrets(changed)["data"]["password"] != masked["data"]["password"]
    assert SECRET["data"]["password"] == "aHVudGVyMi1wbGFpbg=="  # input untouched


def test_error_messages_never_quote_secret_values():
    secret = obj("Secret", "db", stringData={"pin": 918273, "x": "ab"}, data={"key": "c2VjcmV0"})
    message = 'Secret "db": .stringData.pin: expected string, got &value{Value:918273}; data.key "c2VjcmV0" ab'
    scrubbed = apply.scrub_secret_values(message, secret)
    assert "918273" not in scrubbed and "c2VjcmV0" not in scrubbed
    assert scrubbed.endswith(" ab") and scrubbed.startswith('Secret "db": .stringData.pin')
    assert apply.scrub_secret_values("918273", obj("ConfigMap", "c", data={"a": "918273"})) == "918273"


def test_mask_secrets_ignores_other_kinds():
    config = obj("ConfigMap", "cfg", data={"password": "visible"})
    assert apply.mask_secrets(config) is config
    assert apply.mask_secrets(None) is None


def test_results_with_diff_mask_secrets():
    planned = apply.Planned(apply.ResourceId("", "Secret", "shop", "db"), "v1", apply.UPDATE, live=SECRET,
                            after=SECRET)
    result = planned.result(with_diff=True)
    assert result["changed"] is True and result["namespace"] == "shop"
    assert "hunter2-plain" not in json.dumps(result)
    deleted = apply.Planned(apply.ResourceId("", "Secret", "shop", "db"), "v1", apply.DELETE, live=SECRET)
    assert deleted.result(with_diff=True)["diff"]["after"] is None
    cluster = apply.Planned(apply.ResourceId("", "Namespace", "", "shop"), "v1", apply.UNCHANGED)
    assert cluster.result() == {"apiVersion": "v1", "kind": "Namespace", "namespace": None, "name": "shop",
                                "action": "unchanged", "changed": False}


# --- planning: validation before any write -------------------------------------------------------

class FakeKube:
    """Answers like an API server holding `live` objects (by path); rejects the dry run of `invalid` names."""

    def __init__(self, live=None, invalid=(), namespaces=("shop",)):
        self.live = live or {}
        self.invalid = set(invalid)
        self.namespaces = set(namespaces)
        self.requests = []

    def get_or_none(self, path):
        self.requests.append(("GET", path, None))
        if path.startswith("/api/v1/namespaces/") and path.count("/") == 4:
            name = path.rsplit("/", 1)[1]
            return {"metadata": {"name": name}} if name in self.namespaces else None
        return copy.deepcopy(self.live.get(path))

    def request(self, method, path, query=None, body=None, content_type=None):
        self.requests.append((method, path, query))
        if body["metadata"]["name"] in self.invalid:
            raise KubeApiError(422, "Invalid", f'{body["kind"]} "{body["metadata"]["name"]}" is invalid: '
                                               "spec.replicas: Invalid value")
        merged = copy.deepcopy(self.live.get(path) or {})
        merged.update(copy.deepcopy(body))
        return merged


def _planned(kube, manifests, creatable=(), known=()):
    desired = apply.prepare(manifests, "rel", "shop", FakeMapper())
    applier = apply.Applier(kube, FakeMapper(), "rel", "shop")
    applier.known = frozenset(known)
    return applier.plan(desired, creatable)


def test_plan_writes_nothing_and_decides_each_action():
    existing = apply.prepare([obj("ConfigMap", "same", data={"a": "1"}), obj("ConfigMap", "old", data={"a": "1"})],
                             "rel", "shop", FakeMapper())
    live = {f"/api/v1/namespaces/shop/configmaps/{d.rid.name}": d.obj for d in existing}
    kube = FakeKube(live)
    planned = _planned(kube, [obj("ConfigMap", "same", data={"a": "1"}), obj("ConfigMap", "old", data={"a": "2"}),
                              obj("ConfigMap", "new", data={"a": "1"})], known=[d.rid for d in existing])
    assert [(p.rid.name, p.action) for p in planned] == [("same", "unchanged"), ("old", "update"), ("new", "create")]
    writes = [r for r in kube.requests if r[0] != "GET"]
    assert writes and all(r[2]["dryRun"] == "All" for r in writes)
    assert all(r[2]["fieldManager"] == "berth-converge" and r[2]["force"] == "true" for r in writes)


def test_plan_names_every_rejected_object():
    kube = FakeKube(invalid={"bad-1", "bad-2"})
    manifests = [obj("ConfigMap", f"ok-{n}") for n in range(8)] + [
        obj("Deployment", "bad-1", "apps/v1"), obj("Deployment", "bad-2", "apps/v1"),
        obj("Widget", "w", "example.com/v1"), obj("ConfigMap", "lost", namespace="nowhere")]
    with pytest.raises(ConvergeError) as caught:
        _planned(kube, manifests)
    message = str(caught.value)
    assert "rejected 4 of 12 resources of release rel; nothing was applied" in message
    assert 'Deployment shop/bad-1: Deployment "bad-1" is invalid: spec.replicas' in message
    assert "Deployment shop/bad-2" in message
    assert "Widget shop/w: the API server does not serve kind Widget in apiVersion example.com/v1" in message
    assert "ConfigMap nowhere/lost: namespace nowhere does not exist" in message
    assert {r["name"] for r in caught.value.details["rejected"]} == {"bad-1", "bad-2", "w", "lost"}
    assert all(r[2].get("dryRun") == "All" for r in kube.requests if r[0] != "GET")


def test_plan_defers_objects_waiting_for_their_crd_or_namespace():
    kube = FakeKube(namespaces=())
    planned = _planned(kube, [CRD, obj("Namespace", "fresh"), obj("ConfigMap", "in-fresh", namespace="fresh"),
                              {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}},
                              obj("ConfigMap", "in-release")], creatable=("shop",))
    actions = {p.rid.name: (p.action, p.validated) for p in planned}
    assert actions == {"gadgets.example.com": ("create", True), "fresh": ("create", True),
                       "in-fresh": ("create", False), "g": ("create", False), "in-release": ("create", False)}
    assert [n for p in planned for n in p.notes] == [
        "not validated by a dry run: namespace fresh does not exist yet",
        "not validated by a dry run: its CustomResourceDefinition does not exist yet",
        "not validated by a dry run: namespace shop does not exist yet"]


def test_plan_rejection_of_a_secret_does_not_quote_its_values():
    class TypeCheckingKube(FakeKube):
        def request(self, method, path, query=None, body=None, content_type=None):
            raise KubeApiError(500, "InternalError", "failed to create typed patch object: .stringData.pin: "
                                                     "expected string, got Value:918273")

    with pytest.raises(ConvergeError) as caught:
        _planned(TypeCheckingKube(), [obj("Secret", "db", stringData={"pin": 918273})])
    assert "918273" not in str(caught.value)
    assert "Secret shop/db: failed to create typed patch object: .stringData.pin" in str(caught.value)


def test_plan_refuses_to_adopt_another_releases_object():
    taken = apply.prepare([obj("ConfigMap", "cfg")], "other", "shop", FakeMapper())[0]
    kube = FakeKube({"/api/v1/namespaces/shop/configmaps/cfg": taken.obj})
    with pytest.raises(ConvergeError, match=r"ConfigMap shop/cfg: it belongs to release other in namespace shop; "
                                            r"release rel in namespace shop will not adopt it"):
        _planned(kube, [obj("ConfigMap", "cfg")])


def test_run_parallel_keeps_order_and_captures_errors():
    def work(n):
        if n == 3:
            raise ValueError("three")
        return n * 10

    results = apply.run_parallel(work, list(range(6)), 4)
    assert [item for item, _result in results] == list(range(6))
    assert [r for _item, r in results if not isinstance(r, Exception)] == [0, 10, 20, 40, 50]
    assert isinstance(results[3][1], ValueError)


def _entry(manager, fields, operation="Update", subresource=None):
    entry = {"manager": manager, "operation": operation, "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
             "fieldsV1": fields}
    if subresource:
        entry["subresource"] = subresource
    return entry


OURS = {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {
    "f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}}}}}}}


def test_field_sets_merge_and_subtract_as_trees():
    assert apply.merge_fields({"f:a": {"f:b": {}}}, {"f:a": {"f:c": {}}, "f:d": {}}) == {
        "f:a": {"f:b": {}, "f:c": {}}, "f:d": {}}
    assert apply.subtract_fields({"f:a": {"f:b": {}, "f:c": {}}, "f:d": {}}, {"f:a": {"f:b": {}}}) == {
        "f:a": {"f:c": {}}, "f:d": {}}
    assert apply.subtract_fields({"f:a": {"f:b": {}}}, {"f:a": {}}) == {}  # a leaf of ours owns all below it
    assert apply.subtract_fields({"f:a": {}}, {"f:a": {"f:b": {}}}) == {}


def test_take_over_joins_kubectl_edit_and_helm_and_strips_ours_from_the_rest():
    live = {"apiVersion": "apps/v1", "metadata": {"managedFields": [
        _entry("berth-converge", OURS, "Apply"),
        _entry("kubectl-edit", {"f:metadata": {"f:labels": {"f:edited": {}}}}),
        _entry("helm", {"f:metadata": {"f:annotations": {"f:from-helm": {}}}}),
        _entry("kubectl-patch", {"f:metadata": {"f:labels": {"f:patched": {}, "f:app": {}}}}),
        _entry("kubectl", {"f:spec": {"f:replicas": {}}}, subresource="scale"),
        _entry("kube-controller-manager", {"f:status": {"f:replicas": {}}}, subresource="status"),
        _entry("kubectl-client-side-apply", {"f:spec": {"f:replicas": {}}}),
    ]}}
    fields, taken = apply.take_over_fields(live, "2026-01-01T00:00:00Z")
    by_manager = {e["manager"]: e for e in fields}
    assert set(by_manager) == {"berth-converge", "kubectl-patch", "kubectl", "kube-controller-manager"}
    assert taken == {"f:metadata": {"f:labels": {"f:edited": {}}, "f:annotations": {"f:from-helm": {}}}}
    assert by_manager["berth-converge"]["fieldsV1"]["f:metadata"]["f:labels"] == {"f:app": {}, "f:edited": {}}
    assert by_manager["berth-converge"]["operation"] == "Apply"
    assert by_manager["kubectl-patch"]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:patched": {}}}}
    assert by_manager["kubectl"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}  # subresources stay as they are


def test_nothing_to_take_over_leaves_the_managed_fields_alone():
    live = {"apiVersion": "apps/v1", "metadata": {"managedFields": [
        _entry("berth-converge", OURS, "Apply"), _entry("hpa", {"f:spec": {"f:minReadySeconds": {}}})]}}
    assert apply.take_over_fields(live, "2026-01-01T00:00:00Z") == (None, {})


def test_an_object_helm_created_becomes_ours():
    live = {"apiVersion": "apps/v1", "metadata": {"managedFields": [_entry("helm", OURS)]}}
    fields, taken = apply.take_over_fields(live, "2026-01-01T00:00:00Z")
    assert taken == OURS
    assert fields == [{"manager": "berth-converge", "operation": "Apply", "fieldsType": "FieldsV1",
                       "apiVersion": "apps/v1", "time": "2026-01-01T00:00:00Z", "fieldsV1": OURS}]
