# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""release_apply against the local control plane: actions, no-op, prune, check and diff modes, validation
before the first write, the release lock, ownership. Some tests run the real module through `ansible`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ansible_module, run_module
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.release import (
    ApplyOptions,
    ReleaseLock,
    ReleaseRequest,
    apply_release,
    history,
)
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import Kube, KubeApiError, ResourceMapper

ANSIBLE = Path(sys.executable).with_name("ansible")
RELEASE = "shop"


@pytest.fixture
def crd_group(kube_api):
    """A unique API group for the test's CRD; the (cluster-scoped) CRD is deleted afterwards."""
    group = f"g{os.urandom(4).hex()}.berth.test"
    yield group
    Kube(kube_api).request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{group}")


def chart(group, value="one", extra=True, password="pw-one", pod_labels=None):
    """A dozen objects of a typical chart; `value` feeds the ConfigMap and the Deployment's pod template."""
    labels = {"app": "web"}
    objects = [
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
         "metadata": {"name": f"gadgets.{group}"},
         "spec": {"group": group, "scope": "Namespaced",
                  "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                  "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                      "type": "object", "properties": {"spec": {"type": "object", "properties": {
                          "size": {"type": "integer"}}}}}}}]}},
        {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "main"}, "spec": {"size": 3}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"greeting": value}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "credentials"},
         "stringData": {"password": password}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": {**labels, **(pod_labels or {})}, "annotations": {"settings/greeting": value}},
             "spec": {"serviceAccountName": "web", "containers": [{"name": "main", "image": "127.0.0.1:5000/shop/web:1",
                                                                  "envFrom": [{"configMapRef": {"name": "settings"}}]}]}}}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
         "spec": {"template": {"spec": {"restartPolicy": "Never",
                                        "containers": [{"name": "migrate", "image": "127.0.0.1:5000/shop/web:1"}]}}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "web"}]},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}},
    ]
    if extra:
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra"}, "data": {"a": "b"}})
    return objects


def module_args(manifests, namespace, localenv, **more):
    return {"manifests": manifests, "release": RELEASE, "namespace": namespace, "kubeconfig": localenv.kubeconfig,
            **more}


def actions(result):
    return {(r["kind"], r["name"]): r["action"] for r in result["resources"]}


# Controllers of these kinds update their status, which bumps the resourceVersion without us writing.
STATUS_WRITERS = {"CustomResourceDefinition", "Deployment", "Job", "PodDisruptionBudget"}


def write_marks(kube_api, result):
    """By (kind, name): what changes when we write an object (its resourceVersion, unless a controller writes
    its status, its generation, and our managedFields entry); None when the object does not exist."""
    kube, mapper = Kube(kube_api), ResourceMapper(Kube(kube_api))
    marks = {}
    for r in result["resources"]:
        live = kube.get_or_none(mapper.lookup(r["apiVersion"], r["kind"]).path(r["namespace"], r["name"]))
        if live is None:
            marks[(r["kind"], r["name"])] = None
            continue
        metadata = live["metadata"]
        ours = [entry for entry in metadata["managedFields"] if entry["manager"] == "berth-converge"]
        marks[(r["kind"], r["name"])] = (None if r["kind"] in STATUS_WRITERS else metadata["resourceVersion"],
                                         metadata.get("generation"), json.dumps(ours, sort_keys=True))
    return marks


def configmap_names(kube_api, namespace):
    items = Kube(kube_api).request("GET", f"/api/v1/namespaces/{namespace}/configmaps")["items"]
    return sorted(i["metadata"]["name"] for i in items if i["metadata"]["name"] != "kube-root-ca.crt")


def lease(kube_api, namespace):
    return Kube(kube_api).get_or_none(
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/berth-converge.{RELEASE}")


def apply(kube_api, namespace, manifests, **options):
    return apply_release(kube_api, RELEASE, namespace, ReleaseRequest(manifests), ApplyOptions(**options))


def test_first_apply_creates_all_and_second_changes_nothing(kube_api, namespace, crd_group, localenv):
    manifests = chart(crd_group)
    status, first = ansible_module("release_apply", module_args(manifests, namespace, localenv))[:2]
    assert status == "CHANGED", first
    assert len(first["resources"]) == 12
    assert set(actions(first).values()) == {"create"}
    assert first["revision"] == 1 and first["lock"]["waited"] == 0
    assert [r["namespace"] for r in first["resources"]][:2] == [None, namespace]  # CRD cluster-scoped
    before = write_marks(kube_api, first)
    assert None not in before.values()

    status, second = ansible_module("release_apply", module_args(manifests, namespace, localenv))[:2]
    assert status == "SUCCESS", second
    assert second["changed"] is False
    assert set(actions(second).values()) == {"unchanged"}
    assert not any(r["changed"] for r in second["resources"])
    assert second["revision"] == 1
    assert [r.version for r in history(kube_api, RELEASE, namespace)] == [1]
    assert write_marks(kube_api, second) == before
    assert lease(kube_api, namespace) is None  # released at the end


def test_changed_value_updates_only_affected_and_removed_resource_is_deleted(kube_api, namespace, crd_group):
    apply(kube_api, namespace, chart(crd_group))
    changed = apply(kube_api, namespace, chart(crd_group, value="two"))
    assert changed["revision"] == 2
    assert {key for key, action in actions(changed).items() if action != "unchanged"} == {
        ("ConfigMap", "settings"), ("Deployment", "web")}
    assert actions(changed)[("ConfigMap", "settings")] == "update"
    assert Kube(kube_api).request("GET", f"/api/v1/namespaces/{namespace}/configmaps/settings")["data"] == {
        "greeting": "two"}

    pruned = apply(kube_api, namespace, chart(crd_group, value="two", extra=False))
    assert pruned["revision"] == 3
    assert [(r["kind"], r["name"], r["action"]) for r in pruned["resources"] if r["changed"]] == [
        ("ConfigMap", "extra", "delete")]
    assert "extra" not in configmap_names(kube_api, namespace)
    revisions = history(kube_api, RELEASE, namespace)
    assert [(r.version, r.status) for r in revisions] == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert revisions[2].summary()["resource_count"] == 11


def test_check_mode_writes_nothing_and_reports_the_actions(kube_api, namespace, crd_group, localenv):
    args = module_args(chart(crd_group), namespace, localenv)
    status, planned = ansible_module("release_apply", args, check_mode=True)[:2]
    assert status == "CHANGED", planned
    assert set(actions(planned).values()) == {"create"} and planned["revision"] == 1
    assert configmap_names(kube_api, namespace) == []
    assert Kube(kube_api).get_or_none(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{crd_group}") \
        is None
    assert history(kube_api, RELEASE, namespace) == [] and lease(kube_api, namespace) is None

    applied = ansible_module("release_apply", args).result
    before = write_marks(kube_api, applied)
    changed_args = module_args(chart(crd_group, value="two", extra=False), namespace, localenv)
    status, planned = ansible_module("release_apply", changed_args, check_mode=True)[:2]
    assert status == "CHANGED", planned
    assert {key: a for key, a in actions(planned).items() if a != "unchanged"} == {
        ("ConfigMap", "settings"): "update", ("Deployment", "web"): "update", ("ConfigMap", "extra"): "delete"}
    assert planned["revision"] == 2
    assert write_marks(kube_api, applied) == before
    assert "extra" in configmap_names(kube_api, namespace)
    assert [r.version for r in history(kube_api, RELEASE, namespace)] == [1]


def test_diff_mode_masks_secret_values(kube_api, namespace, crd_group, localenv):
    first, second = f"first-{os.urandom(6).hex()}", f"second-{os.urandom(6).hex()}"
    apply(kube_api, namespace, chart(crd_group, password=first))
    args = module_args(chart(crd_group, password=second), namespace, localenv)
    status, result, output = ansible_module("release_apply", args, diff=True, verbosity=3)[:3]
    assert status == "CHANGED", result
    secret = next(r for r in result["resources"] if r["kind"] == "Secret")
    assert secret["action"] == "update"
    before, after = secret["diff"]["before"]["data"]["password"], secret["diff"]["after"]["data"]["password"]
    assert before.startswith("<hidden:") and after.startswith("<hidden:") and before != after
    assert "invocation" in result  # the module arguments are shown, with the Secret masked
    for plain in (first, second):
        for form in (plain, base64.b64encode(plain.encode()).decode()):
            assert form not in output
    unchanged = next(r for r in result["resources"] if r["kind"] == "Service")
    assert unchanged["diff"]["before"] == unchanged["diff"]["after"]
    assert [entry["before_header"] for entry in result["diff"]] == [f"Secret {namespace}/credentials (update)"]


def test_rejected_resource_in_a_set_of_ten_applies_nothing(kube_api, namespace, localenv):
    manifests = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cfg-{n}"}, "data": {"n": str(n)}}
                 for n in range(9)]
    broken = chart("unused.berth.test")[6]
    broken["metadata"]["name"] = "broken"
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolize"] = "Always"
    manifests.insert(4, broken)
    status, result = ansible_module("release_apply", module_args(manifests, namespace, localenv))[:2]
    assert status == "FAILED!", result
    assert result["msg"].startswith(f"the API server rejected 1 of 10 resources of release {RELEASE}; nothing was "
                                    f"applied:\n  - Deployment {namespace}/broken: ")
    assert "imagePullPolize" in result["msg"]
    assert result["rejected"] == [{"kind": "Deployment", "namespace": namespace, "name": "broken",
                                   "message": result["msg"].partition(f"{namespace}/broken: ")[2]}]
    assert configmap_names(kube_api, namespace) == []
    assert history(kube_api, RELEASE, namespace) == [] and lease(kube_api, namespace) is None


def test_namespace_created_for_a_rejected_set_is_removed_again(kube_api):
    fresh = f"t-rejected-{os.urandom(3).hex()}"
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}, "data": {"n": 1}}
    with pytest.raises(ConvergeError, match=f"ConfigMap {fresh}/bad: "):
        apply(kube_api, fresh, [bad])
    assert Kube(kube_api).get_or_none(f"/api/v1/namespaces/{fresh}") is None  # gone, not left terminating


def test_object_of_another_release_is_not_adopted(kube_api, namespace):
    config = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"a": "b"}}]
    apply_release(kube_api, "other", namespace, ReleaseRequest(config))
    with pytest.raises(ConvergeError) as caught:
        apply(kube_api, namespace, config)
    assert (f"ConfigMap {namespace}/shared: it belongs to release other in namespace {namespace}; release {RELEASE} "
            f"in namespace {namespace} will not adopt it") in str(caught.value)


def test_concurrent_applies_are_serialized_by_the_lease(kube_api, namespace, crd_group):
    versions = {"a": chart(crd_group, value="a"), "b": chart(crd_group, value="b", extra=False)}
    results, errors = {}, []

    def converge(name):
        try:
            results[name] = apply(kube_api, namespace, versions[name])
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    holder = ReleaseLock(kube_api, RELEASE, namespace)
    holder.acquire()  # both converges start while the lock is held, so both must wait
    threads = [threading.Thread(target=converge, args=(name,)) for name in versions]
    for thread in threads:
        thread.start()
    time.sleep(2)
    holder.release()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert all(r["lock"]["waited"] >= 1.5 for r in results.values())
    assert holder.identity in {r["lock"]["waited_for"] for r in results.values()}
    assert sorted(r["revision"] for r in results.values()) == [1, 2]
    revisions = history(kube_api, RELEASE, namespace)
    assert [(r.version, r.status) for r in revisions] == [(1, "superseded"), (2, "deployed")]
    last = next(name for name, r in results.items() if r["revision"] == 2)
    greeting = Kube(kube_api).request("GET", f"/api/v1/namespaces/{namespace}/configmaps/settings")["data"]
    assert greeting == {"greeting": last}
    assert ("extra" in configmap_names(kube_api, namespace)) == (last == "a")
    assert results[last]["changed"] and lease(kube_api, namespace) is None


def test_waiting_converge_gives_up_naming_the_holder(kube_api, namespace):
    with ReleaseLock(kube_api, RELEASE, namespace) as holder:
        started = time.monotonic()
        with pytest.raises(ConvergeError) as caught:
            apply(kube_api, namespace, chart("unused.berth.test")[3:4], lock_timeout=2)
        assert 2 <= time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith(f"release {RELEASE} in namespace {namespace} is locked by {holder.identity} since ")
    assert message.endswith("gave up after waiting 2 s")
    assert caught.value.details["holder"] == holder.identity
    assert configmap_names(kube_api, namespace) == []


def test_two_ansible_processes_wait_for_each_other(kube_api, namespace, crd_group, localenv):
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    holder = ReleaseLock(kube_api, RELEASE, namespace)
    holder.acquire()
    procs = []
    for value in ("a", "b"):
        args = json.dumps(module_args(chart(crd_group, value=value), namespace, localenv))
        procs.append(subprocess.Popen([str(ANSIBLE), "localhost", "-m", "berth.converge.release_apply", "-a", args],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    time.sleep(15)  # both modules are waiting by now, even on a loaded 2-core machine (ansible starts in 1-8 s)
    holder.release()
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    results = [json.loads(out.partition(" => ")[2]) for out in outputs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    assert all(r["lock"]["waited"] > 0 and r["lock"]["waited_for"] for r in results)
    assert sorted(r["revision"] for r in results) == [1, 2]
    last = chart(crd_group, value="ab"[[r["revision"] for r in results].index(2)])
    final = Kube(kube_api).request("GET", f"/api/v1/namespaces/{namespace}/configmaps/settings")["data"]
    assert final == last[3]["data"]
    assert history(kube_api, RELEASE, namespace)[-1].manifests == last


def test_write_failure_after_validation_marks_the_revision_failed(kube_api, namespace):
    """A quota (kube-root-ca.crt + 2) admits each object alone (the dry run) but not all three (the writes)."""
    kube = Kube(kube_api)
    deadline = time.monotonic() + 30
    while not kube.get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt"):
        assert time.monotonic() < deadline, "kube-root-ca.crt was not published"
        time.sleep(0.2)
    quotas = f"/api/v1/namespaces/{namespace}/resourcequotas"
    kube.request("POST", quotas, body={"metadata": {"name": "two"}, "spec": {"hard": {"count/configmaps": "3"}}})
    while (kube.request("GET", f"{quotas}/two").get("status") or {}).get("used", {}).get("count/configmaps") != "1":
        assert time.monotonic() < deadline, "the quota controller did not count kube-root-ca.crt"
        time.sleep(0.2)
    configs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cfg-{n}"}, "data": {"n": str(n)}}
               for n in range(3)]
    with pytest.raises(ConvergeError) as caught:
        apply(kube_api, namespace, configs, concurrency=1)
    message = str(caught.value)
    assert message.startswith(f"applying release {RELEASE} failed for 1 resources:\n  - ConfigMap {namespace}/cfg-2: ")
    assert "exceeded quota" in message
    assert message.endswith(f"Revision 1 of release {RELEASE} is marked failed; what was applied before the failure "
                            "stays applied. Written: 2 of 3 object changes.")
    assert caught.value.details["revision"] == 1
    [failed] = history(kube_api, RELEASE, namespace)
    assert failed.status == "failed" and "exceeded quota" in failed.summary()["reason"]

    kube.request("DELETE", f"{quotas}/two")
    retried = apply(kube_api, namespace, configs[1:])
    assert retried["revision"] == 2
    assert configmap_names(kube_api, namespace) == ["cfg-1", "cfg-2"]  # cfg-0, recorded by revision 1, pruned
    assert [(r.version, r.status) for r in history(kube_api, RELEASE, namespace)] == [(1, "failed"), (2, "deployed")]


def test_namespace_of_the_set_is_created_first_and_pruned_last(kube_api, namespace):
    other = f"{namespace}-x"[:63]
    manifests = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inside", "namespace": other}},
                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}]
    try:
        planned = apply(kube_api, namespace, manifests, check_mode=True)
        assert [(r["kind"], r["action"]) for r in planned["resources"]] == [("ConfigMap", "create"),
                                                                            ("Namespace", "create")]
        assert planned["warnings"] == [f"ConfigMap {other}/inside: not validated by a dry run: namespace {other} "
                                       "does not exist yet"]
        assert Kube(kube_api).get_or_none(f"/api/v1/namespaces/{other}") is None

        created = apply(kube_api, namespace, manifests)
        assert [r["action"] for r in created["resources"]] == ["create", "create"] and not created["warnings"]
        assert apply(kube_api, namespace, manifests)["changed"] is False

        pruned = apply(kube_api, namespace, [])
        assert [(r["kind"], r["action"]) for r in pruned["resources"]] == [("ConfigMap", "delete"),
                                                                           ("Namespace", "delete")]
        assert Kube(kube_api).get_or_none(f"/api/v1/namespaces/{other}/configmaps/inside") is None
        gone = Kube(kube_api).get_or_none(f"/api/v1/namespaces/{other}")
        assert gone is None or gone["status"]["phase"] == "Terminating"
    finally:
        try:
            Kube(kube_api).request("DELETE", f"/api/v1/namespaces/{other}")
        except KubeApiError:
            pass  # already deleted (or never created)


def test_state_absent_dismisses_the_release(kube_api, namespace, localenv):
    from kubernetes import client

    manifests = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gone-cm"}, "data": {"a": "1"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gone-secret"}, "stringData": {"p": "x"}},
    ]
    applied, output = run_module("release_apply", {"manifests": manifests, "release": "gone", "namespace": namespace})
    assert not applied["failed"], output
    dismiss = {"state": "absent", "release": "gone", "namespace": namespace}
    planned, output = run_module("release_apply", dismiss, check_mode=True)
    assert planned["changed"] and {r["action"] for r in planned["resources"]} == {"delete"}, output
    core = client.CoreV1Api(kube_api)
    assert core.read_namespaced_config_map("gone-cm", namespace)
    dismissed, output = run_module("release_apply", {"state": "absent", "release": "gone", "namespace": namespace})
    assert dismissed["changed"], output
    assert sorted(r["name"] for r in dismissed["resources"]) == ["gone-cm", "gone-secret"]
    names = [s.metadata.name for s in core.list_namespaced_secret(namespace).items]
    assert "gone-secret" not in names and not any(n.startswith("sh.helm.release.v1.gone.") for n in names)
    again, _output = run_module("release_apply", {"state": "absent", "release": "gone", "namespace": namespace})
    assert again["changed"] is False
