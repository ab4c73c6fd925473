# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""release_track against the local control plane: kwok makes pods Ready or fail as their labels say."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client, utils, watch

from conftest import ansible_module

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.track import track

# Failures must come long before this; the tests only assert with wide margins.
TIMEOUT = 120


def deployment(name, replicas=2, pod_labels=None, annotations=None, pod_spec=None):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, **(pod_labels or {})}},
                "spec": {"containers": [{"name": "main", "image": "127.0.0.1:5000/track/app:1"}], **(pod_spec or {})},
            },
        },
    }


def job(name, pod_labels=None):
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"labels": pod_labels or {}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "x"}]},
        }},
    }


def configmap(name):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"key": "value"}}


def service(name):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}


def stranded_pod(name, annotations=None):
    """A pod bound to a node that does not exist: it never changes, never becomes ready, has no events."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"nodeName": "no-such-node", "containers": [{"name": "main", "image": "x"}]}}


def create(kube_api, namespace, *objs):
    for obj in objs:
        utils.create_from_dict(kube_api, obj, namespace=namespace)
    return [dict(obj, metadata=dict(obj["metadata"], namespace=namespace)) for obj in objs]


def failure_of(kube_api, resources, timeout=TIMEOUT):
    with pytest.raises(ConvergeError) as info:
        track(kube_api, resources, timeout=timeout)
    return info.value


class PodStatusWatch:
    """A separate watch noting when a pod of the namespace first shows a container waiting reason."""

    def __init__(self, kube_api, namespace, reason):
        self.seen_at = None
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(kube_api, namespace, reason), daemon=True)
        core = client.CoreV1Api(kube_api)
        self._version = core.list_namespaced_pod(namespace).metadata.resource_version
        self._core = core
        self._thread.start()

    def _run(self, kube_api, namespace, reason):
        for event in self._watch.stream(self._core.list_namespaced_pod, namespace, resource_version=self._version,
                                        timeout_seconds=TIMEOUT):
            statuses = event["raw_object"].get("status", {}).get("containerStatuses") or []
            if any((s.get("state", {}).get("waiting") or {}).get("reason") == reason for s in statuses):
                self.seen_at = time.monotonic()
                self._watch.stop()

    def stop(self):
        self._watch.stop()


def test_deployment_service_configmap_and_job_become_ready(kube_api, namespace):
    resources = create(kube_api, namespace, configmap("settings"), service("web"), deployment("web"),
                       job("migrate"))
    started = time.monotonic()
    result = track(kube_api, resources, timeout=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT / 2
    by_kind = {r["kind"]: r for r in result["resources"]}
    assert set(by_kind) == {"ConfigMap", "Service", "Deployment", "Job"}
    assert all(r["ready"] and not r["failed"] for r in result["resources"]), result
    assert by_kind["Deployment"]["reason"] == "2 of 2 replicas ready"
    assert by_kind["Job"]["reason"] == "complete"
    assert by_kind["Deployment"]["namespace"] == namespace
    apps = client.AppsV1Api(kube_api).read_namespaced_deployment_status("web", namespace)
    assert apps.status.ready_replicas == 2, "tracking returned before the Deployment was ready"
    assert result["progress"][0].split(" ", 1)[1].startswith("tracking 4 resources (4 to wait for)")
    assert any(f"Job/{namespace}/migrate ready after" in line for line in result["progress"])


def test_apply_results_are_tracked_and_pruned_ones_skipped(kube_api, namespace):
    create(kube_api, namespace, configmap("kept"))
    result = track(kube_api, [
        {"apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "name": "kept", "action": "create"},
        {"apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "name": "gone", "action": "delete"},
    ], timeout=TIMEOUT)
    assert [(r["name"], r["ready"]) for r in result["resources"]] == [("kept", True)]


@pytest.mark.parametrize("reason, message", [
    ("CrashLoopBackOff", "back-off 40s restarting failed container=main"),
    ("ImagePullBackOff", 'Back-off pulling image "127.0.0.1:5000/track/app:1"'),
])
def test_failing_pods_fail_tracking_at_once_naming_pod_container_and_reason(kube_api, namespace, reason, message):
    observer = PodStatusWatch(kube_api, namespace, reason)
    resources = create(kube_api, namespace, configmap("settings"),
                       deployment("broken", pod_labels={"berth.test/fail": reason}))
    started = time.monotonic()
    error = failure_of(kube_api, resources)
    failed_at = time.monotonic()
    observer.stop()
    text = str(error)
    failed = error.details["failed_resource"]
    assert text.startswith(f"Deployment/{namespace}/broken failed: pod broken-")
    assert f"container main: {reason}: {message}" in text.splitlines()[0]
    assert (failed["kind"], failed["name"], failed["reason"], failed["container"]) == (
        "Deployment", "broken", reason, "main")
    assert failed["pod"].startswith("broken-") and failed["pod"] in text
    assert f"Recent events of Pod/{namespace}/{failed['pod']}:" in text
    assert f"Recent events of Deployment/{namespace}/broken:" in text and "ScalingReplicaSet" in text
    assert observer.seen_at is not None, f"the separate watch never saw {reason}"
    # Event driven: the failure follows the pod status within moments, far from any timeout.
    assert failed_at - observer.seen_at < 5
    assert failed_at - started < TIMEOUT / 4
    assert [r["failed"] for r in error.details["resources"]] == [False, True]


def test_failed_job_fails_with_the_jobs_reason(kube_api, namespace):
    resources = create(kube_api, namespace, job("migrate", pod_labels={"berth.test/fail": "Error"}))
    error = failure_of(kube_api, resources)
    failed = error.details["failed_resource"]
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["container"] == "migrate" and failed["pod"].startswith("migrate-")
    first = str(error).splitlines()[0]
    assert first.startswith(f"Job/{namespace}/migrate failed: pod migrate-")
    assert "BackoffLimitExceeded" in first and "exit code 1 (Error): exit status 1" in first


def test_ignore_and_continue_does_not_fail_the_track(kube_api, namespace):
    resources = create(kube_api, namespace, configmap("settings"), deployment(
        "optional", pod_labels={"berth.test/fail": "CrashLoopBackOff"},
        annotations={"werf.io/fail-mode": "IgnoreAndContinueDeployProcess"}))
    result = track(kube_api, resources, timeout=TIMEOUT)
    optional = result["resources"][1]
    assert (optional["ready"], optional["failed"]) == (False, True)
    assert "CrashLoopBackOff" in optional["reason"]
    assert result["resources"][0]["ready"]
    assert any("failed, ignored (werf.io/fail-mode: IgnoreAndContinueDeployProcess)" in line
               for line in result["progress"])


def test_fail_mode_read_from_the_live_object_when_the_input_has_no_annotations(kube_api, namespace):
    create(kube_api, namespace, deployment("optional", pod_labels={"berth.test/fail": "ImagePullBackOff"},
                                           annotations={"werf.io/fail-mode": "IgnoreAndContinueDeployProcess"}))
    result = track(kube_api, [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace,
                               "name": "optional", "action": "create"}], timeout=TIMEOUT)
    assert result["resources"][0]["failed"] and not result["resources"][0]["ready"]


def test_hope_until_end_fails_only_after_the_others_are_ready(kube_api, namespace):
    resources = create(kube_api, namespace, deployment(
        "hopeful", pod_labels={"berth.test/fail": "CrashLoopBackOff"},
        annotations={"werf.io/fail-mode": "HopeUntilEndOfDeployProcess"}), job("migrate"))
    error = failure_of(kube_api, resources)
    assert str(error).startswith(f"Deployment/{namespace}/hopeful failed: pod hopeful-")
    progress = error.details["progress"]
    hoping = next(i for i, line in enumerate(progress) if "failed, waiting for the others" in line)
    job_ready = next(i for i, line in enumerate(progress) if f"Job/{namespace}/migrate ready" in line)
    assert hoping < job_ready < len(progress) - 1
    assert error.details["resources"][1]["ready"]


def test_non_blocking_resource_is_not_waited_for(kube_api, namespace):
    resources = create(kube_api, namespace, configmap("settings"), stranded_pod(
        "background", annotations={"werf.io/track-termination-mode": "NonBlocking"}))
    started = time.monotonic()
    result = track(kube_api, resources, timeout=TIMEOUT)
    assert time.monotonic() - started < 10
    background = result["resources"][1]
    assert not background["ready"] and not background["failed"]
    assert background["reason"].startswith("not waited for (werf.io/track-termination-mode: NonBlocking)")


def test_global_timeout_names_what_is_still_pending(kube_api, namespace):
    resources = create(kube_api, namespace, configmap("settings"), stranded_pod("stuck"))
    started = time.monotonic()
    error = failure_of(kube_api, resources, timeout=3)
    assert 3 <= time.monotonic() - started < 30
    assert str(error).startswith(f"timed out after 3s waiting for 1 resource: Pod/{namespace}/stuck: pod stuck")
    assert error.details["failed_resource"]["reason"] == "Timeout"


def test_no_activity_timeout_fails_a_resource_that_never_changes(kube_api, namespace):
    resources = create(kube_api, namespace, stranded_pod("idle", annotations={"werf.io/no-activity-timeout": "2s"}))
    started = time.monotonic()
    error = failure_of(kube_api, resources)
    assert 2 <= time.monotonic() - started < TIMEOUT / 4
    assert error.details["failed_resource"]["reason"] == "NoActivity"
    assert f"Pod/{namespace}/idle failed: NoActivity: no status change or event for 2s" in str(error)


def test_unknown_kind_is_named(kube_api, namespace):
    error = failure_of(kube_api, [{"apiVersion": "example.com/v1", "kind": "Widget", "namespace": namespace,
                                   "name": "w"}])
    assert str(error) == f"Widget/{namespace}/w: the cluster serves no kind Widget in example.com/v1"


def test_module_through_ansible(kube_api, namespace, tmp_path, localenv):
    create(kube_api, namespace, configmap("settings"), deployment("web"),
           deployment("broken", pod_labels={"berth.test/fail": "CrashLoopBackOff"}))
    progress_file = tmp_path / "progress.log"
    ok = {"resources": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "settings"}],
          "namespace": namespace, "kubeconfig": localenv.kubeconfig, "timeout": TIMEOUT}
    run = ansible_module("release_track", ok, env={"BERTH_PROGRESS_FILE": str(progress_file)})
    result = run.result
    assert (run.rc, run.status, result["changed"]) == (0, "SUCCESS", False)
    assert [(r["kind"], r["namespace"], r["ready"]) for r in result["resources"]] == [
        ("Deployment", namespace, True), ("ConfigMap", namespace, True)]
    assert progress_file.read_text().splitlines() == result["progress"]

    broken = dict(ok, resources=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "broken"}])
    run = ansible_module("release_track", broken)
    result = run.result
    assert run.rc != 0 and run.status == "FAILED!"
    assert result["msg"].startswith(f"Deployment/{namespace}/broken failed: pod broken-")
    assert "container main: CrashLoopBackOff" in result["msg"]
    assert result["failed_resource"]["container"] == "main" and not result["changed"]

    run = ansible_module("release_track", broken, check_mode=True)
    result = run.result
    assert run.rc == 0 and result["resources"][0]["reason"] == "would wait until ready"
    assert "progress" not in result
