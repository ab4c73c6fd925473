# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""werf's deploy annotations through the release_apply module on the local cluster, judged with kubectl:
validation before any write, dependency order (by etcd resourceVersions, which grow with every write),
resource and delete policies, ownership, deploy-on, replicas on creation, sensitive paths in diffs."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

from conftest import run_module

RELEASE = "annotated"


def config_map(name, annotations=None, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "annotations": annotations or {}},
            "data": data or {"a": "1"}}


def deployment(name, annotations=None, replicas=1, env="1"):
    spec = {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": name, "image": "berth.local/web:1",
                                                  "env": [{"name": "A", "value": env}]}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "annotations": annotations or {}},
            "spec": spec}


def release_apply(localenv, namespace, manifests, expect_failure=False, **more):
    result, output = run_module("release_apply", {"manifests": manifests, "release": RELEASE, "namespace": namespace,
                                                  "kubeconfig": localenv.kubeconfig, **more})
    assert bool(result.get("failed")) == expect_failure, output
    return result, output


def kubectl(namespace, *args, check=True):
    done = subprocess.run(["kubectl", "-n", namespace, *args], capture_output=True, text=True, env=os.environ,
                          check=False)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def get(namespace, kind, name):
    done = kubectl(namespace, "get", kind, name, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def flat(output):
    """Ansible's output with its line wrapping (of warnings) undone."""
    return " ".join(output.replace("[WARNING]:", "").split())


def version(obj):
    return int(obj["metadata"]["resourceVersion"])


def test_bad_value_fails_before_any_write_and_unknown_annotation_warns(localenv, namespace):
    bad = deployment("web", {"werf.io/ownership": "nobody"})
    result, output = release_apply(localenv, namespace, [config_map("first"), bad], expect_failure=True)
    assert f"Deployment {namespace}/web: annotation werf.io/ownership: 'nobody' is not one of release, anyone" \
        in result["msg"]
    assert get(namespace, "configmap", "first") is None  # nothing half-applied
    assert kubectl(namespace, "get", "secrets", "-l", f"name={RELEASE}", "-o", "name").stdout == ""

    result, output = release_apply(localenv, namespace, [config_map("first", {"werf.io/deploy-policy": "x"})])
    assert f"ConfigMap {namespace}/first: unknown annotation werf.io/deploy-policy is ignored" in flat(output)


def test_deploy_dependency_waits_for_ready_and_external_dependency_for_presence(localenv, namespace):
    db = deployment("db")
    after_db = config_map("after-db", {"werf.io/deploy-dependency-db": "state=ready,kind=Deployment,name=db"})
    outside_user = config_map("outside-user", {"outside.external-dependency.werf.io/resource": "secret/outside",
                                               "outside.external-dependency.werf.io/namespace": namespace})
    werf2_form = config_map("werf2-form", {"outside.external-dependency.werf.io": f"v1:Secret:{namespace}:outside"})

    def create_outside_later():
        time.sleep(3)
        kubectl(namespace, "create", "secret", "generic", "outside", "--from-literal=k=v")

    creator = threading.Thread(target=create_outside_later)
    creator.start()
    try:
        release_apply(localenv, namespace, [after_db, outside_user, werf2_form, db])
    finally:
        creator.join()
    live_db = get(namespace, "deployment", "db")
    assert live_db["status"].get("readyReplicas") == 1
    # the ConfigMap was written after the Deployment's last write, the status update that made it ready;
    # without the dependency both are applied together, before any pod exists
    assert version(get(namespace, "configmap", "after-db")) > version(live_db)
    for waited in ("outside-user", "werf2-form"):
        assert version(get(namespace, "configmap", waited)) > version(get(namespace, "secret", "outside"))


def test_resource_policies_ownership_and_deploy_on(localenv, namespace):
    first = [config_map("helm-keep", {"helm.sh/resource-policy": "keep"}),
             config_map("werf-keep", {"werf.io/resource-policy": "skip-delete"}),
             config_map("anyones", {"werf.io/ownership": "anyone"}),
             config_map("frozen", {"werf.io/resource-policy": "skip-update"}, a="1"),
             config_map("never", {"werf.io/resource-policy": "skip-create"}),
             config_map("install-only", {"werf.io/deploy-on": "install"}),
             config_map("plain")]
    result, _output = release_apply(localenv, namespace, first)
    assert sorted(r["name"] for r in result["resources"]) == ["anyones", "frozen", "helm-keep", "install-only",
                                                              "plain", "werf-keep"]
    assert get(namespace, "configmap", "never") is None
    anyones = get(namespace, "configmap", "anyones")["metadata"]
    assert "meta.helm.sh/release-name" not in anyones["annotations"] and "managed-by" not in str(anyones.get("labels"))

    second = [config_map("frozen", {"werf.io/resource-policy": "skip-update"}, a="2"),
              config_map("install-only", {"werf.io/deploy-on": "install"})]
    result, output = release_apply(localenv, namespace, second)
    assert get(namespace, "configmap", "frozen")["data"] == {"a": "1"}
    actions = {r["name"]: r["action"] for r in result["resources"]}
    assert actions["frozen"] == "unchanged"
    assert actions["install-only"] == "delete"  # as werf warns: not rendered on upgrade, so it leaves the release
    assert f"ConfigMap {namespace}/install-only is not deployed on upgrade (werf.io/deploy-on: install)" \
        in flat(output)
    for kept in ("helm-keep", "werf-keep", "anyones"):
        assert get(namespace, "configmap", kept) is not None, kept
    assert get(namespace, "configmap", "plain") is None
    assert "werf-keep is not pruned: resource policy skip-delete" in flat(output)

    result, _output = release_apply(localenv, namespace, [], state="absent")
    for kept in ("helm-keep", "werf-keep", "anyones", "frozen"):
        assert (get(namespace, "configmap", kept) is not None) == (kept != "frozen"), kept


def test_delete_policies_and_recreation_of_immutable_jobs(localenv, namespace):
    recreated = config_map("recreated", {"werf.io/delete-policy": "before-creation"})
    transient = config_map("transient", {"werf.io/delete-policy": "succeeded"})
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
           "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "migrate", "image": "berth.local/migrate:1"}]}}}}
    result, _output = release_apply(localenv, namespace, [recreated, transient, job])
    assert {r["name"]: r["action"] for r in result["resources"]} == {
        "recreated": "create", "transient": "delete", "migrate": "create"}
    uid = get(namespace, "configmap", "recreated")["metadata"]["uid"]
    job_uid = get(namespace, "job", "migrate")["metadata"]["uid"]
    assert get(namespace, "configmap", "transient") is None  # deleted once ready

    job["spec"]["template"]["spec"]["containers"][0]["image"] = "berth.local/migrate:2"  # immutable field
    result, output = release_apply(localenv, namespace, [recreated, job])
    assert get(namespace, "configmap", "recreated")["metadata"]["uid"] != uid
    live_job = get(namespace, "job", "migrate")
    assert live_job["metadata"]["uid"] != job_uid
    assert live_job["spec"]["template"]["spec"]["containers"][0]["image"] == "berth.local/migrate:2"
    assert "recreated: a field it changes is immutable" in flat(output)


def test_delete_propagation_orphan_keeps_the_replica_sets(localenv, namespace):
    release_apply(localenv, namespace, [deployment("orphaner", {"werf.io/delete-propagation": "Orphan"}),
                                        deployment("cascaded")])
    release_apply(localenv, namespace, [config_map("other")])
    assert get(namespace, "deployment", "orphaner") is None
    deadline = time.monotonic() + 30
    while kubectl(namespace, "get", "replicasets", "-l", "app=cascaded", "-o", "name").stdout and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    assert kubectl(namespace, "get", "replicasets", "-l", "app=cascaded", "-o", "name").stdout == ""
    assert kubectl(namespace, "get", "replicasets", "-l", "app=orphaner", "-o", "name").stdout != ""


def test_replicas_on_creation_then_left_to_scaling(localenv, namespace):
    web = deployment("web", {"werf.io/replicas-on-creation": "3"}, replicas=None)
    release_apply(localenv, namespace, [web])
    assert get(namespace, "deployment", "web")["spec"]["replicas"] == 3
    kubectl(namespace, "scale", "deployment/web", "--replicas=5")
    changed = deployment("web", {"werf.io/replicas-on-creation": "3"}, replicas=None, env="2")
    result, _output = release_apply(localenv, namespace, [changed])
    assert result["resources"][0]["action"] == "update"
    live = get(namespace, "deployment", "web")
    assert live["spec"]["replicas"] == 5
    assert live["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "2"}]


def test_sensitive_paths_are_masked_in_diffs(localenv, namespace):
    secretive = {"werf.io/sensitive-paths": "$.data.token"}
    release_apply(localenv, namespace, [config_map("creds", secretive, token="first-t0ken", mode="fast")])
    result, output = run_module("release_apply", {
        "manifests": [config_map("creds", secretive, token="second-t0ken", mode="slow")], "release": RELEASE,
        "namespace": namespace, "kubeconfig": localenv.kubeconfig}, diff=True)
    assert not result.get("failed"), output
    assert "first-t0ken" not in output and "second-t0ken" not in output
    diff = result["resources"][0]["diff"]
    assert diff["before"]["data"]["token"].startswith("<hidden:")
    assert diff["before"]["data"]["token"] != diff["after"]["data"]["token"]  # the change stays visible
    assert (diff["before"]["data"]["mode"], diff["after"]["data"]["mode"]) == ("fast", "slow")
    assert get(namespace, "configmap", "creds")["data"]["token"] == "second-t0ken"


def test_delete_dependency_deletes_after_the_dependency_is_gone(localenv, namespace):
    held = config_map("held")
    waiting = config_map("waiting", {"werf.io/delete-dependency-held": "state=absent,kind=ConfigMap,name=held"})
    release_apply(localenv, namespace, [held, waiting])
    kubectl(namespace, "patch", "configmap/held", "--type=merge", "-p",
            json.dumps({"metadata": {"finalizers": ["berth.test/hold"]}}))
    outcome = {}
    dismiss = threading.Thread(target=lambda: outcome.update(result=release_apply(localenv, namespace, [],
                                                                                  state="absent")))
    dismiss.start()
    try:
        deadline = time.monotonic() + 30
        while not get(namespace, "configmap", "held").get("metadata", {}).get("deletionTimestamp"):
            assert time.monotonic() < deadline, "held was never deleted"
            time.sleep(0.3)
        time.sleep(2)
        assert get(namespace, "configmap", "waiting") is not None  # waits while held is still there
    finally:
        kubectl(namespace, "patch", "configmap/held", "--type=merge", "-p",
                json.dumps({"metadata": {"finalizers": None}}))
        dismiss.join()
    assert outcome["result"]
    assert get(namespace, "configmap", "waiting") is None


def test_deploy_on_delete_applies_the_object_when_the_release_is_dismissed(localenv, namespace):
    cleanup = config_map("cleanup", {"werf.io/deploy-on": "delete", "werf.io/ownership": "anyone"})
    result, output = release_apply(localenv, namespace, [config_map("plain"), cleanup])
    assert [r["name"] for r in result["resources"]] == ["plain"]
    assert get(namespace, "configmap", "cleanup") is None
    assert f"ConfigMap {namespace}/cleanup is not deployed on install (werf.io/deploy-on: delete)" in flat(output)

    result, output = release_apply(localenv, namespace, [], state="absent")
    assert {r["name"]: r["action"] for r in result["resources"]} == {"cleanup": "create", "plain": "delete"}
    assert get(namespace, "configmap", "plain") is None
    assert get(namespace, "configmap", "cleanup") is not None


def test_deploy_on_rollback_applies_the_object_only_in_a_rollback(localenv, namespace):
    marker = config_map("rolled-back", {"werf.io/deploy-on": "rollback"})
    release_apply(localenv, namespace, [config_map("settings", a="1"), marker])
    release_apply(localenv, namespace, [config_map("settings", a="2"), marker])
    assert get(namespace, "configmap", "rolled-back") is None
    result, output = run_module("release_rollback", {"release": RELEASE, "namespace": namespace, "revision": 1,
                                                     "kubeconfig": localenv.kubeconfig})
    assert not result.get("failed"), output
    assert get(namespace, "configmap", "settings")["data"] == {"a": "1"}
    assert get(namespace, "configmap", "rolled-back") is not None


def test_delete_policy_failed_deletes_a_failed_job(localenv, namespace):
    def job(name, fail):
        template = {"spec": {"restartPolicy": "Never", "containers": [{"name": name, "image": "berth.local/x:1"}]}}
        if fail:
            template["metadata"] = {"labels": {"berth.test/fail": "Error"}}  # kwok fails the pod
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "annotations": {"werf.io/delete-policy": "failed"}},
                "spec": {"backoffLimit": 0, "template": template}}

    result, output = release_apply(localenv, namespace, [job("passes", False), job("breaks", True)],
                                   expect_failure=True, timeout=60)
    assert "breaks" in result["msg"], output
    assert get(namespace, "job", "breaks") is None  # deleted because it failed
    assert get(namespace, "job", "passes") is not None  # succeeded: the failed policy leaves it
