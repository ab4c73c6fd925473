# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""release_rollback and release_info against the local control plane, partly through `ansible`."""

from __future__ import annotations

import time

import pytest
from conftest import ansible_module
from test_release_apply import RELEASE, actions, apply, chart, configmap_names
from test_release_apply import crd_group  # noqa: F401  pylint: disable=unused-import  # a fixture

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.release import (
    ApplyOptions,
    ReleaseRequest,
    apply_release,
    history,
    set_revision_status,
)
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import Kube
from ansible_collections.berth.converge.plugins.module_utils.kube.rollback import rollback

COMMITS = [{"hash": f"{n}" * 40, "date": f"2024-05-0{n}T10:00:00+00:00", "unix": 1714557600 + n} for n in (1, 2)]
IMAGES = [[{"name": "web", "ref": f"127.0.0.1:5000/shop/web:{n}"}] for n in (1, 2)]


def deployment_ready(kube_api, namespace, name, replicas):
    """True once the Deployment's latest pods are all ready."""
    dep = Kube(kube_api).request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    status = dep.get("status") or {}
    return (status.get("observedGeneration") == dep["metadata"]["generation"]
            and status.get("updatedReplicas") == replicas and status.get("readyReplicas") == replicas
            and not status.get("unavailableReplicas"))


def wait_for(what, predicate, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def crashing_pod(kube_api, namespace):
    pods = Kube(kube_api).request("GET", f"/api/v1/namespaces/{namespace}/pods",
                                  {"labelSelector": "berth.test/fail=CrashLoopBackOff"})["items"]
    return any((s.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
               for pod in pods for s in (pod.get("status") or {}).get("containerStatuses") or [])


def test_rollback_after_failed_revision_restores_and_prunes(kube_api, namespace, crd_group, localenv):
    good = chart(crd_group, extra=False)
    apply_release(kube_api, RELEASE, namespace, ReleaseRequest(good, IMAGES[0], COMMITS[0]))
    wait_for("revision 1 ready", lambda: deployment_ready(kube_api, namespace, "web", 2))
    bad = chart(crd_group, value="two", extra=True, pod_labels={"berth.test/fail": "CrashLoopBackOff"})
    apply_release(kube_api, RELEASE, namespace, ReleaseRequest(bad, IMAGES[1], COMMITS[1]))
    wait_for("a pod in CrashLoopBackOff", lambda: crashing_pod(kube_api, namespace))
    set_revision_status(kube_api, RELEASE, namespace, 2, "failed", reason="Deployment web: CrashLoopBackOff")

    args = {"release": RELEASE, "namespace": namespace, "kubeconfig": localenv.kubeconfig}
    status, result = ansible_module("release_rollback", args)[:2]
    assert status == "CHANGED", result
    assert (result["rolled_back_from"], result["rolled_back_to"], result["revision"]) == (2, 1, 3)
    assert {key: a for key, a in actions(result).items() if a != "unchanged"} == {
        ("ConfigMap", "settings"): "update", ("Deployment", "web"): "update", ("ConfigMap", "extra"): "delete"}
    assert "extra" not in configmap_names(kube_api, namespace)
    settings = Kube(kube_api).request("GET", f"/api/v1/namespaces/{namespace}/configmaps/settings")
    assert settings["data"] == {"greeting": "one"}
    wait_for("the restored pods ready", lambda: deployment_ready(kube_api, namespace, "web", 2))

    status, info = ansible_module("release_info", args)[:2]
    assert status == "SUCCESS" and info["changed"] is False, info
    assert [(r["revision"], r["status"], r["description"]) for r in info["revisions"]] == [
        (1, "superseded", "Install complete"), (2, "failed", 'Upgrade "shop" failed: Deployment web: CrashLoopBackOff'),
        (3, "deployed", "Rollback to 1")]
    assert [r["commit"] for r in info["revisions"]] == [COMMITS[0], COMMITS[1], COMMITS[0]]
    assert [r["images"] for r in info["revisions"]] == [IMAGES[0], IMAGES[1], IMAGES[0]]
    assert info["revisions"][1]["reason"] == "Deployment web: CrashLoopBackOff"
    assert [r["resource_count"] for r in info["revisions"]] == [11, 12, 11]
    assert all(r["time"].endswith("Z") for r in info["revisions"])
    assert (info["latest"], info["status"], info["deployed"]) == (3, "deployed", 3)
    assert "manifests" not in info["revisions"][0]


def test_rollback_to_a_chosen_revision_and_check_mode(kube_api, namespace, crd_group):
    for value in ("one", "two", "three"):
        apply(kube_api, namespace, chart(crd_group, value=value))

    planned = rollback(kube_api, RELEASE, namespace, revision=1, options=ApplyOptions(check_mode=True, diff=True))
    assert planned["revision"] == 4 and planned["rolled_back_to"] == 1
    assert actions(planned)[("ConfigMap", "settings")] == "update"
    settings = next(r for r in planned["resources"] if r["name"] == "settings" and r["kind"] == "ConfigMap")
    assert settings["diff"]["after"]["data"] == {"greeting": "one"}
    assert len(history(kube_api, RELEASE, namespace)) == 3
    path = f"/api/v1/namespaces/{namespace}/configmaps/settings"
    assert Kube(kube_api).request("GET", path)["data"] == {"greeting": "three"}

    restored = rollback(kube_api, RELEASE, namespace, revision=1)
    assert restored["changed"] and restored["revision"] == 4
    assert Kube(kube_api).request("GET", path)["data"] == {"greeting": "one"}
    revisions = history(kube_api, RELEASE, namespace)
    assert revisions[-1].summary()["description"] == "Rollback to 1"
    assert revisions[-1].manifests == revisions[0].manifests

    again = rollback(kube_api, RELEASE, namespace, revision=4)  # the cluster already matches: nothing to do
    assert again["changed"] is False and again["revision"] == 4
    assert len(history(kube_api, RELEASE, namespace)) == 4


def test_rollback_without_revisions_fails_clearly(kube_api, namespace, localenv):
    args = {"release": RELEASE, "namespace": namespace, "kubeconfig": localenv.kubeconfig}
    status, result = ansible_module("release_rollback", args)[:2]
    assert status == "FAILED!"
    assert result["msg"] == f"release {RELEASE} has no revisions in namespace {namespace}"
    with pytest.raises(ConvergeError, match="namespace t-nowhere-0 does not exist"):
        rollback(kube_api, RELEASE, "t-nowhere-0")
