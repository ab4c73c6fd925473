# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readiness of custom resources by JMESPath rules, against a real CRD with a status subresource: the test plays
the operator, patching the status to ready, failed or stuck while tracking (or the role) waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from kubernetes import client

from conftest import ansible_module
from gitrepo import commit, new_repo

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.client import Kube
from ansible_collections.berth.converge.plugins.module_utils.kube.readiness import ReadinessRules
from ansible_collections.berth.converge.plugins.module_utils.kube.track import track

TIMEOUT = 60  # failures must come long before this


@pytest.fixture(scope="module")
def group(kube_api):
    """The API group of a fresh Widget CRD (status subresource), deleted after the module's tests."""
    name = f"r{os.urandom(4).hex()}.berth.test"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{name}"},
        "spec": {"group": name, "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]},
    }
    extensions = client.ApiextensionsV1Api(kube_api)
    extensions.create_custom_resource_definition(crd)
    for _attempt in range(100):
        conditions = extensions.read_custom_resource_definition(f"widgets.{name}").status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            break
        time.sleep(0.1)
    yield name
    Kube(kube_api).request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{name}")


def widget(group, name, annotations=None, size=1):
    return {"apiVersion": f"{group}/v1", "kind": "Widget",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": {"size": size}}


def create(kube_api, namespace, obj):
    group, version = obj["apiVersion"].split("/")
    return client.CustomObjectsApi(kube_api).create_namespaced_custom_object(group, version, namespace, "widgets", obj)


def set_status(kube_api, group, namespace, name, status, observed=True):
    """Patch the Widget's status subresource as its operator would; ``observed`` stamps the current generation."""
    objects = client.CustomObjectsApi(kube_api)
    if observed:
        generation = objects.get_namespaced_custom_object(group, "v1", namespace, "widgets", name)["metadata"]["generation"]
        status = {"observedGeneration": generation, **status}
    objects.patch_namespaced_custom_object_status(group, "v1", namespace, "widgets", name, {"status": status})


def ready_condition(status, reason="", message=""):
    return {"conditions": [{"type": "Ready", "status": status, "reason": reason or "Reconciled",
                            "message": message, "lastTransitionTime": "2026-12-01T00:00:00Z"}]}


def when_it_exists(kube_api, group, namespace, name, *statuses, pause=1.0, generation=1):
    """In the background: once the Widget exists at ``generation`` (or later), set each status in turn, ``pause``
    seconds apart."""
    def run():
        objects = client.CustomObjectsApi(kube_api)
        for _attempt in range(600):
            try:
                live = objects.get_namespaced_custom_object(group, "v1", namespace, "widgets", name)
                if live["metadata"]["generation"] >= generation:
                    break
            except client.ApiException:
                pass
            time.sleep(0.1)
        for status in statuses:
            time.sleep(pause)
            set_status(kube_api, group, namespace, name, status)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def resource(group, namespace, name, annotations=None):
    return dict(widget(group, name, annotations), metadata={"name": name, "namespace": namespace,
                                                            "annotations": annotations or {}})


def tracked(kube_api, resources, timeout=TIMEOUT, rules=None):
    return track(kube_api, resources, timeout=timeout, rules=rules)


def failure_of(kube_api, resources, timeout=TIMEOUT, rules=None):
    with pytest.raises(ConvergeError) as info:
        track(kube_api, resources, timeout=timeout, rules=rules)
    return info.value


# ---------------------------------------------------------------- built-in rules

def test_ready_condition_decides_once_true(kube_api, namespace, group):
    create(kube_api, namespace, widget(group, "w"))
    set_status(kube_api, group, namespace, "w", ready_condition("False", "Provisioning", "creating the bucket"))
    when_it_exists(kube_api, group, namespace, "w", ready_condition("True"))
    result = tracked(kube_api, [resource(group, namespace, "w")])
    entry = result["resources"][0]
    assert entry["ready"] and entry["reason"].startswith("Ready=True") and entry["rule"] == "built-in condition Ready"
    assert any(f"Widget/{namespace}/w ready after" in line and "rule: built-in condition Ready" in line
               for line in result["progress"]), result["progress"]
    assert any("Ready=False (Provisioning: creating the bucket); rule: built-in condition Ready" in line
               for line in result["progress"]), result["progress"]


def test_stalled_condition_fails_with_its_reason_and_message(kube_api, namespace, group):
    create(kube_api, namespace, widget(group, "w"))
    set_status(kube_api, group, namespace, "w", ready_condition("False", "Provisioning"))
    stalled = {"conditions": [{"type": "Stalled", "status": "True", "reason": "QuotaExceeded",
                               "message": "bucket quota of 10 reached", "lastTransitionTime": "2026-12-01T00:00:00Z"}]}
    when_it_exists(kube_api, group, namespace, "w", stalled)
    error = failure_of(kube_api, [resource(group, namespace, "w")])
    first = str(error).splitlines()[0]
    assert first == (f"Widget/{namespace}/w failed: QuotaExceeded: bucket quota of 10 reached "
                     f"(rule: built-in condition Stalled)"), first
    assert error.details["failed_resource"]["reason"] == "QuotaExceeded"
    assert error.details["failed_resource"]["rule"] == "built-in condition Stalled"


def test_a_stuck_resource_times_out_with_its_condition_message(kube_api, namespace, group):
    create(kube_api, namespace, widget(group, "w"))
    set_status(kube_api, group, namespace, "w", ready_condition("False", "WaitingForBackend", "no backend yet"))
    error = failure_of(kube_api, [resource(group, namespace, "w")], timeout=3)
    assert str(error).startswith(f"timed out after 3s waiting for 1 resource: Widget/{namespace}/w: "
                                 f"Ready=False (WaitingForBackend: no backend yet)"), str(error)
    assert error.details["failed_resource"]["reason"] == "Timeout"


def test_in_progress_until_the_controller_observes_the_generation(kube_api, namespace, group):
    create(kube_api, namespace, widget(group, "w"))
    set_status(kube_api, group, namespace, "w", ready_condition("True"))  # observed generation 1
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
        group, "v1", namespace, "widgets", "w", {"spec": {"size": 2}})  # generation 2, status still of 1
    # Ready=True of generation 1 does not count
    error = failure_of(kube_api, [resource(group, namespace, "w")], timeout=3)
    assert f"Widget/{namespace}/w: waiting for the controller to observe generation 2" in str(error), str(error)
    when_it_exists(kube_api, group, namespace, "w", ready_condition("True"), generation=2)  # the operator catches up
    result = tracked(kube_api, [resource(group, namespace, "w")])
    assert result["resources"][0]["ready"], result
    assert any("observe generation 2; rule: built-in observedGeneration" in line for line in result["progress"])


def test_status_phase_ready_or_failed(kube_api, namespace, group):
    for name in ("up", "down"):
        create(kube_api, namespace, widget(group, name))
        set_status(kube_api, group, namespace, name, {"phase": "Provisioning"})
    when_it_exists(kube_api, group, namespace, "up", {"phase": "Running"})
    result = tracked(kube_api, [resource(group, namespace, "up")])
    assert result["resources"][0]["rule"] == "built-in status.phase", result
    assert result["resources"][0]["reason"] == "phase Running"
    assert any("(phase Provisioning; rule: built-in status.phase)" in line for line in result["progress"])

    when_it_exists(kube_api, group, namespace, "down", {"phase": "Degraded", "message": "2 of 3 replicas down"})
    error = failure_of(kube_api, [resource(group, namespace, "down")])
    assert str(error).startswith(f"Widget/{namespace}/down failed: Degraded: 2 of 3 replicas down "
                                 "(rule: built-in status.phase)"), str(error)


# ---------------------------------------------------------------- annotations and rules per kind

def test_annotation_expressions_decide(kube_api, namespace, group):
    annotations = {"berth.converge/ready-when": "status.replicas >= spec.size",
                   "berth.converge/failed-when": "status.errors[0]"}
    create(kube_api, namespace, widget(group, "good", annotations, size=2))
    create(kube_api, namespace, widget(group, "bad", annotations, size=2))
    # Ready=True alone does not make them ready: the annotation's expression replaces the built-in rule
    when_it_exists(kube_api, group, namespace, "good", {"replicas": 1, **ready_condition("True")}, {"replicas": 2})
    result = tracked(kube_api, [resource(group, namespace, "good")])
    assert result["resources"][0]["rule"] == "annotation berth.converge/ready-when", result
    assert any("not yet status.replicas >= spec.size; rule: annotation berth.converge/ready-when" in line
               for line in result["progress"]), result["progress"]

    when_it_exists(kube_api, group, namespace, "bad", {"errors": ["disk /dev/sdb failed"]})
    error = failure_of(kube_api, [resource(group, namespace, "bad")])
    assert str(error).startswith(
        f"Widget/{namespace}/bad failed: annotation berth.converge/failed-when matched: disk /dev/sdb failed "
        "(status.errors[0]) (rule: annotation berth.converge/failed-when)"), str(error)


def test_annotation_of_the_live_object_counts_for_apply_results(kube_api, namespace, group):
    create(kube_api, namespace, widget(group, "w", {"berth.converge/ready-when": "status.ok"}))
    set_status(kube_api, group, namespace, "w", {"ok": True})
    applied = {"apiVersion": f"{group}/v1", "kind": "Widget", "namespace": namespace, "name": "w"}
    result = tracked(kube_api, [applied])
    assert result["resources"][0]["rule"] == "annotation berth.converge/ready-when", result


def test_rule_per_kind_and_an_annotation_overriding_it(kube_api, namespace, group):
    rules = ReadinessRules([{"group": group, "kind": "Widget", "ready": "status.state == 'up'",
                             "failed": "status.state == 'broken' && status.why"}])
    create(kube_api, namespace, widget(group, "a"))
    create(kube_api, namespace, widget(group, "b", {"berth.converge/ready-when": "status.state == 'warming'"}))
    when_it_exists(kube_api, group, namespace, "a", {"state": "up"})
    set_status(kube_api, group, namespace, "b", {"state": "warming"})
    result = tracked(kube_api, [resource(group, namespace, "a"), resource(group, namespace, "b")], rules=rules)
    by_name = {entry["name"]: entry for entry in result["resources"]}
    assert by_name["a"]["rule"] == f"readiness_rules[0] ({group}/Widget) ready", result
    assert by_name["b"]["rule"] == "annotation berth.converge/ready-when", result

    set_status(kube_api, group, namespace, "a", {"state": "warming"})
    when_it_exists(kube_api, group, namespace, "a", {"state": "broken", "why": "certificate expired"})
    error = failure_of(kube_api, [resource(group, namespace, "a")], rules=rules)
    assert str(error).startswith(f"Widget/{namespace}/a failed: readiness_rules[0] ({group}/Widget) failed matched: "
                                 "certificate expired"), str(error)


def test_bad_expressions_name_the_object_and_annotation(kube_api, namespace, group):
    bad = resource(group, namespace, "w", {"berth.converge/failed-when": "status.[oops"})
    error = failure_of(kube_api, [bad])
    assert str(error).startswith(f"Widget/{namespace}/w: annotation berth.converge/failed-when 'status.[oops' is not "
                                 "a valid JMESPath expression"), str(error)
    with pytest.raises(ConvergeError, match=r"readiness_rules\[1\] \(x.io/Y\) ready 'a\]' is not a valid JMESPath"):
        ReadinessRules([{"group": "x.io", "kind": "Z", "ready": "a"}, {"group": "x.io", "kind": "Y", "ready": "a]"}])


def test_module_checks_rules_and_annotations_in_check_mode(localenv, namespace, group):
    args = {"resources": [resource(group, namespace, "w", {"berth.converge/ready-when": "status.ok"})],
            "readiness_rules": [{"group": group, "kind": "Widget", "failed": "status.broken"}],
            "kubeconfig": localenv.kubeconfig}
    run = ansible_module("release_track", args, check_mode=True)
    assert run.rc == 0, run.output
    assert run.result["resources"][0]["rule"] == (f"annotation berth.converge/ready-when, "
                                                  f"readiness_rules[0] ({group}/Widget) failed"), run.result
    args["readiness_rules"][0]["failed"] = "status.broken ||"
    run = ansible_module("release_track", args, check_mode=True)
    assert run.result["failed"] and run.result["msg"].startswith(
        f"readiness_rules[0] ({group}/Widget) failed 'status.broken ||' is not a valid"), run.result


def test_apply_waits_for_a_weight_group_by_the_rule_per_kind(localenv, namespace, group, kube_api):
    """release_apply starts the next werf.io/weight group only when the rule per kind says the Widget is ready."""
    manifests = [widget(group, "store", {"werf.io/weight": "-1"}),
                 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-store"}, "data": {"a": "b"}}]
    args = {"manifests": manifests, "release": namespace, "namespace": namespace, "timeout": 4,
            "readiness_rules": [{"group": group, "kind": "Widget", "ready": "status.state == 'up'"}],
            "kubeconfig": localenv.kubeconfig}
    run = ansible_module("release_apply", args)
    assert run.result.get("failed"), run.result
    assert f"Widget/{namespace}/store: not yet status.state == 'up'" in run.result["msg"], run.result["msg"]
    assert not client.CoreV1Api(kube_api).list_namespaced_config_map(
        namespace, field_selector="metadata.name=after-store").items  # the next group never started

    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(group, "v1", namespace, "widgets", "store")
    for _attempt in range(100):  # gone, so that the operator below patches the one release_apply creates
        if not client.CustomObjectsApi(kube_api).list_namespaced_custom_object(group, "v1", namespace, "widgets")["items"]:
            break
        time.sleep(0.1)
    when_it_exists(kube_api, group, namespace, "store", {"state": "warming"}, {"state": "up"})
    run = ansible_module("release_apply", dict(args, timeout=TIMEOUT))
    assert run.rc == 0, run.output
    progress = run.result["progress"]
    assert any(f"Widget/{namespace}/store ready after" in line
               and f"rule: readiness_rules[0] ({group}/Widget) ready" in line for line in progress), progress
    client.CoreV1Api(kube_api).read_namespaced_config_map("after-store", namespace)


# ---------------------------------------------------------------- through the role

def chart(group, annotations=None):
    widget_yaml = json.dumps(widget(group, "store", annotations))
    return {
        "werf.yaml": "project: widgets\nconfigVersion: 1\n",
        ".helm/Chart.yaml": "apiVersion: v2\nname: widgets\nversion: 0.1.0\n",
        ".helm/templates/settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
                                         "data: {a: b}\n",
        ".helm/templates/widget.yaml": widget_yaml + "\n",
    }


def converge(project, registry, namespace, **extra):
    """Run the converge playbook; returns (rc, output)."""
    variables = {"converge_project_dir": str(project), "converge_repo": f"{registry}/{namespace}",
                 "converge_release": namespace, "converge_namespace": namespace, "converge_timeout": TIMEOUT, **extra}
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    proc = subprocess.run([playbook, "berth.converge.converge", "-e", json.dumps(variables)], capture_output=True,
                          text=True, check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    return proc.returncode, proc.stdout + proc.stderr


def test_role_waits_for_the_custom_resource_and_fails_with_the_rules_reason(tmp_path, registry, namespace, group,
                                                                            kube_api):
    project = new_repo(tmp_path / "p", chart(group))
    progress = tmp_path / "progress.log"
    # an operator may take a moment to write any status: the rule's ready expression waits for it
    rules = [{"group": group, "kind": "Widget", "ready": "status.conditions[?type=='Ready'].status | [0] == 'True'",
              "failed": "status.conditions[?type=='Ready' && reason=='Failed'].message | [0]"}]
    thread = when_it_exists(kube_api, group, namespace, "store", ready_condition("False", "Provisioning"),
                            ready_condition("True"))
    rc, output = converge(project, registry, namespace, converge_readiness_rules=rules,
                          converge_progress_file=str(progress))
    thread.join(5)
    assert rc == 0, output
    lines = progress.read_text()
    assert f"Widget/{namespace}/store ready after" in lines, lines
    assert f"rule: readiness_rules[0] ({group}/Widget) ready)" in lines, lines

    # the operator reports a failure of the next revision: the role's rule turns it into the converge's error
    set_status(kube_api, group, namespace, "store", ready_condition("False", "Provisioning"))
    commit(project, {".helm/templates/widget.yaml": json.dumps(widget(group, "store", size=2)) + "\n"}, "size 2")
    when_it_exists(kube_api, group, namespace, "store", ready_condition("False", "Failed", "volume not attachable"),
                   generation=2)
    rc, output = converge(project, registry, namespace, converge_readiness_rules=rules)
    assert rc != 0
    assert (f"Widget/{namespace}/store failed: readiness_rules[0] ({group}/Widget) failed matched: "
            "volume not attachable") in output, output


def test_role_refuses_a_bad_annotation_before_writing(tmp_path, registry, namespace, group, kube_api):
    project = new_repo(tmp_path / "p", chart(group, {"berth.converge/ready-when": "status.[ready"}))
    rc, output = converge(project, registry, namespace)
    assert rc != 0
    assert (f"Widget/{namespace}/store: annotation berth.converge/ready-when 'status.[ready' is not a valid "
            "JMESPath expression") in output, output
    assert not client.CoreV1Api(kube_api).list_namespaced_config_map(namespace, field_selector="metadata.name=settings").items
    assert not client.CoreV1Api(kube_api).list_namespaced_secret(namespace, label_selector="owner=helm").items
