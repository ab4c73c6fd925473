# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readiness and failure classification of object dicts, and werf annotation parsing."""

from __future__ import annotations

import pytest

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.track import (
    HOPE_UNTIL_END, IGNORE_AND_CONTINUE, NON_BLOCKING, Progress, TrackOptions, current_replicaset,
    is_current_pod, object_status, parse_duration, pod_failure, pod_hint, resource_status, targets_from,
    track_options, tracking_plan)


# ---------------------------------------------------------------- annotations

@pytest.mark.parametrize("text, seconds", [
    ("4m", 240), ("8m30s", 510), ("90s", 90), ("1.5h", 5400), ("500ms", 0.5), ("0", 0), ("1h2m3s", 3723),
    (" 2m ", 120), ("+10s", 10),
])
def test_durations_as_go_parses_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "4", "m", "4 minutes", "-1s", "4d", "1m 2s", "s4"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_options_default_to_werfs():
    assert track_options({}, "Deployment/ns/web") == TrackOptions(
        "FailWholeDeployProcessImmediately", "WaitUntilResourceReady", 1, 240.0)


def test_options_from_annotations():
    options = track_options({
        "werf.io/fail-mode": IGNORE_AND_CONTINUE, "werf.io/track-termination-mode": NON_BLOCKING,
        "werf.io/failures-allowed-per-replica": "3", "werf.io/no-activity-timeout": "90s",
        "werf.io/skip-logs": "true",
    }, "Job/ns/bg")
    assert options == TrackOptions(IGNORE_AND_CONTINUE, NON_BLOCKING, 3, 90.0)


@pytest.mark.parametrize("annotation, value, expected", [
    ("werf.io/fail-mode", "FailFast", "FailWholeDeployProcessImmediately"),
    ("werf.io/track-termination-mode", "Never", "NonBlocking"),
    ("werf.io/failures-allowed-per-replica", "-1", "whole number"),
    ("werf.io/failures-allowed-per-replica", "two", "whole number"),
    ("werf.io/no-activity-timeout", "4 minutes", "duration"),
])
def test_bad_annotations_name_resource_annotation_and_choices(annotation, value, expected):
    with pytest.raises(ConvergeError) as info:
        track_options({annotation: value}, "Deployment/shop/web")
    message = str(info.value)
    assert "Deployment/shop/web" in message and annotation in message and expected in message


# ---------------------------------------------------------------- helpers building objects

def deployment(replicas=2, generation=2, observed=2, updated=2, total=2, ready=2, available=2, conditions=(),
               revision="3"):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "uid": "dep-uid", "generation": generation,
                     "annotations": {"deployment.kubernetes.io/revision": revision}},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
                   "readyReplicas": ready, "availableReplicas": available, "conditions": list(conditions)},
    }


def container(name="main", restarts=0, waiting=None, terminated=None, last_terminated=None, running=False):
    state = {}
    if waiting:
        state["waiting"] = waiting
    if terminated:
        state["terminated"] = terminated
    if running:
        state["running"] = {"startedAt": "2025-01-01T00:00:00Z"}
    status = {"name": name, "restartCount": restarts, "state": state}
    if last_terminated:
        status["lastState"] = {"terminated": last_terminated}
    return status


def pod(*containers, name="web-abc-1", phase="Running", ready=False, init=(), labels=None, conditions=None):
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
        "status": {"phase": phase, "containerStatuses": list(containers), "initContainerStatuses": list(init),
                   "conditions": conditions if conditions is not None else
                   [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


CRASH = {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=main"}
EXIT_1 = {"exitCode": 1, "reason": "Error", "message": "exit status 1"}


# ---------------------------------------------------------------- Deployment

def test_deployment_rolled_out_is_ready():
    status = object_status(deployment())
    assert status.ready and status.failure is None


@pytest.mark.parametrize("changes, reason", [
    (dict(observed=1), "observe generation 2"),
    (dict(updated=1), "1 of 2 replicas updated"),
    (dict(total=3), "1 old replicas"),
    (dict(ready=1), "1 of 2 replicas ready"),
    (dict(available=1), "1 available"),
])
def test_deployment_not_rolled_out_is_pending(changes, reason):
    status = object_status(deployment(**changes))
    assert not status.ready and status.failure is None
    assert reason in status.reason


def test_deployment_without_status_waits_for_the_controller():
    obj = deployment()
    del obj["status"]
    assert not object_status(obj).ready


def test_deployment_scaled_to_zero_is_ready():
    assert object_status(deployment(replicas=0, updated=0, total=0, ready=0, available=0)).ready


def test_progress_deadline_exceeded_fails_with_its_message():
    status = object_status(deployment(ready=1, conditions=[{
        "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "web-abc" has timed out progressing.'}]))
    assert status.failure.reason == "ProgressDeadlineExceeded"
    assert "timed out progressing" in status.failure.message


# ---------------------------------------------------------------- StatefulSet, DaemonSet

def statefulset(ready=2, updated=2, current="r1", update="r1", strategy=None, replicas=2):
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "uid": "sts-uid", "generation": 1},
        "spec": {"replicas": replicas, "updateStrategy": strategy or {"type": "RollingUpdate"}},
        "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": updated,
                   "currentRevision": current, "updateRevision": update},
    }


def test_statefulset_states():
    assert object_status(statefulset()).ready
    assert "1 of 2 replicas ready" in object_status(statefulset(ready=1)).reason
    assert "1 of 2 replicas updated" in object_status(statefulset(updated=1, update="r2")).reason
    assert "revision r2" in object_status(statefulset(update="r2")).reason


def test_statefulset_partition_only_needs_the_replicas_above_it():
    partitioned = {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}
    assert object_status(statefulset(updated=1, update="r2", strategy=partitioned)).ready
    assert not object_status(statefulset(updated=0, update="r2", strategy=partitioned)).ready


def test_statefulset_on_delete_only_needs_ready_replicas():
    assert object_status(statefulset(updated=0, update="r2", strategy={"type": "OnDelete"})).ready


def daemonset(desired=2, updated=2, available=2):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "generation": 4},
            "spec": {}, "status": {"observedGeneration": 4, "desiredNumberScheduled": desired,
                                   "updatedNumberScheduled": updated, "numberAvailable": available}}


def test_daemonset_states():
    assert object_status(daemonset()).ready
    assert "1 of 2 pods updated" in object_status(daemonset(updated=1)).reason
    assert "0 of 2 pods available" in object_status(daemonset(available=0)).reason


# ---------------------------------------------------------------- Job, Pod, anything else

def job(conditions=(), succeeded=0, active=1):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "uid": "job-uid"},
            "spec": {"completions": 1},
            "status": {"conditions": list(conditions), "succeeded": succeeded, "active": active}}


def test_job_complete_is_ready_and_running_is_pending():
    assert object_status(job([{"type": "Complete", "status": "True"}], succeeded=1, active=0)).ready
    status = object_status(job())
    assert not status.ready and status.failure is None and "0 of 1 completions" in status.reason


@pytest.mark.parametrize("kind", ["Failed", "FailureTarget"])
def test_failed_job_fails_with_its_reason_and_message(kind):
    status = object_status(job([{"type": kind, "status": "True", "reason": "BackoffLimitExceeded",
                                 "message": "Job has reached the specified backoff limit"}]))
    assert status.failure.reason == "BackoffLimitExceeded"
    assert status.failure.message == "Job has reached the specified backoff limit"


def test_failed_job_names_the_pod_and_container_that_failed():
    failed = job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "limit"}])
    status = resource_status(failed, [pod(container(terminated=EXIT_1), name="migrate-x", phase="Failed")], 1)
    failure = status.failure
    assert (failure.reason, failure.pod, failure.container) == ("BackoffLimitExceeded", "migrate-x", "main")
    assert "exit code 1" in failure.message and "exit status 1" in failure.message


def test_pod_states():
    assert object_status(pod(container(running=True), ready=True)).ready
    assert object_status(pod(container(terminated={"exitCode": 0}), phase="Succeeded")).ready
    failed = object_status(pod(container(terminated=EXIT_1), name="once", phase="Failed"))
    assert (failed.failure.reason, failed.failure.pod, failed.failure.container) == ("Error", "once", "main")


def test_unschedulable_pod_is_pending_with_the_scheduler_message():
    unscheduled = pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False",
                                                   "reason": "Unschedulable", "message": "0/2 nodes available"}])
    status = object_status(unscheduled)
    assert not status.ready and status.failure is None
    assert status.reason == pod_hint(unscheduled)
    assert "Unschedulable: 0/2 nodes available" in status.reason


@pytest.mark.parametrize("conditions, ready, reason", [
    ([{"type": "Ready", "status": "True"}], True, "Ready=True"),
    ([{"type": "Ready", "status": "False", "reason": "Waiting", "message": "cert pending"}], False,
     "Ready=False (Waiting: cert pending)"),
    ([{"type": "Available", "status": "True"}], True, "Available=True"),
    ([{"type": "Synced", "status": "False"}], True, "exists"),
    ([], True, "exists"),
])
def test_any_object_by_ready_or_available_condition(conditions, ready, reason):
    obj = {"apiVersion": "example.com/v1", "kind": "Certificate", "metadata": {"name": "tls"},
           "status": {"conditions": conditions}}
    status = object_status(obj)
    assert (status.ready, status.reason) == (ready, reason)


def test_condition_of_an_unobserved_generation_does_not_count():
    obj = {"apiVersion": "example.com/v1", "kind": "Certificate", "metadata": {"name": "tls", "generation": 3},
           "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}}
    assert not object_status(obj).ready


def test_objects_without_status_are_ready_on_existence():
    assert object_status({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}).ready
    assert object_status({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                          "status": {"loadBalancer": {}}}).ready


# ---------------------------------------------------------------- pod failures

@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
                                    "InvalidImageName"])
def test_image_and_config_errors_fail_at_once(reason):
    failure = pod_failure(pod(container(waiting={"reason": reason, "message": "details"})), 5)
    assert (failure.reason, failure.message, failure.pod, failure.container) == (reason, "details", "web-abc-1",
                                                                                 "main")


@pytest.mark.parametrize("restarts, allowed, fails", [(3, 1, True), (0, 1, False), (1, 1, True), (3, 5, False),
                                                      (0, 0, True)])
def test_crash_loop_fails_beyond_the_allowed_failures(restarts, allowed, fails):
    crashing = pod(container(restarts=restarts, waiting=CRASH, last_terminated=EXIT_1))
    failure = pod_failure(crashing, allowed)
    assert bool(failure) is fails
    if fails:
        assert failure.reason == "CrashLoopBackOff" and failure.container == "main"
        assert "back-off 40s" in failure.message and "exit code 1" in failure.message
        assert f"{restarts + 1} failed runs, {allowed} allowed" in failure.message


def test_terminated_with_error_counts_as_a_failed_run():
    assert pod_failure(pod(container(terminated=EXIT_1)), 1) is None
    failure = pod_failure(pod(container(terminated=EXIT_1)), 0)
    assert (failure.reason, failure.container) == ("Error", "main")


def test_running_container_fails_when_its_past_crashes_exceed_the_allowance():
    restarted = pod(container(restarts=2, running=True, last_terminated=EXIT_1))
    assert pod_failure(restarted, 1).reason == "Error"
    assert pod_failure(restarted, 2) is None


def test_restarts_after_clean_exits_are_no_failures():
    assert pod_failure(pod(container(restarts=5, running=True, last_terminated={"exitCode": 0})), 0) is None
    assert pod_failure(pod(container(waiting={"reason": "ContainerCreating"})), 0) is None


def test_failing_init_container_is_named():
    failing = pod(container(waiting={"reason": "PodInitializing"}),
                  init=[container("migrate", waiting={"reason": "ImagePullBackOff", "message": "no such image"})])
    failure = pod_failure(failing, 1)
    assert (failure.container, failure.reason) == ("migrate", "ImagePullBackOff")


# ---------------------------------------------------------------- which pods count

def replicaset(name, revision, owner="dep-uid"):
    return {"metadata": {"name": name, "uid": name + "-uid", "ownerReferences": [{"uid": owner}],
                         "annotations": {"deployment.kubernetes.io/revision": revision}}}


def test_current_replicaset_is_the_owned_one_of_the_deployments_revision():
    old, current, foreign = replicaset("web-old", "2"), replicaset("web-new", "3"), replicaset("x", "3", "other")
    assert current_replicaset(deployment(), [foreign, old, current]) is current
    assert current_replicaset(deployment(revision="4"), [old, current]) is None


def test_current_pods_of_statefulsets_and_daemonsets():
    sts = statefulset(update="db-r2")
    assert is_current_pod(sts, pod(labels={"controller-revision-hash": "db-r2"}))
    assert not is_current_pod(sts, pod(labels={"controller-revision-hash": "db-r1"}))
    ds = daemonset()
    assert is_current_pod(ds, pod(labels={"pod-template-generation": "4"}))
    assert not is_current_pod(ds, pod(labels={"pod-template-generation": "3"}))
    assert is_current_pod(job(), pod())


def test_workload_fails_with_its_crashing_pod():
    crashing = pod(container(restarts=3, waiting=CRASH, last_terminated=EXIT_1), name="web-new-1")
    status = resource_status(deployment(ready=0, available=0), [crashing], 1)
    assert (status.failure.reason, status.failure.pod) == ("CrashLoopBackOff", "web-new-1")


def test_pods_do_not_count_until_the_controller_saw_the_new_spec():
    crashing = pod(container(restarts=3, waiting=CRASH, last_terminated=EXIT_1))
    status = resource_status(deployment(generation=3, observed=2), [crashing], 1)
    assert status.failure is None and "observe generation 3" in status.reason


def test_pending_workload_reason_mentions_a_waiting_pod():
    creating = pod(container(waiting={"reason": "ContainerCreating"}), name="web-new-1")
    status = resource_status(deployment(ready=1, available=1), [creating], 1)
    assert status.reason == "1 of 2 replicas ready, 1 available; pod web-new-1 container main: ContainerCreating"


# ---------------------------------------------------------------- inputs

def test_targets_from_apply_results_and_manifests():
    targets = targets_from([
        {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "shop", "name": "cfg", "action": "unchanged"},
        {"apiVersion": "v1", "kind": "Secret", "namespace": "shop", "name": "old", "action": "delete"},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
            "name": "bg", "annotations": {"werf.io/track-termination-mode": "NonBlocking"}}},
    ], namespace="fallback")
    assert [(t.kind, t.namespace, t.name) for t in targets] == [
        ("ConfigMap", "shop", "cfg"), ("Job", "fallback", "bg")]
    assert targets[1].options.termination_mode == NON_BLOCKING and not targets[1].blocking


@pytest.mark.parametrize("item, expected", [
    ({"kind": "ConfigMap", "name": "cfg"}, "resources[0] needs apiVersion, kind and name"),
    ("ConfigMap/cfg", "resources[0] is a str"),
])
def test_bad_inputs_are_named(item, expected):
    with pytest.raises(ConvergeError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        targets_from([item])


def test_bad_annotation_in_a_manifest_names_the_resource():
    with pytest.raises(ConvergeError, match="Deployment/shop/web: annotation werf.io/fail-mode"):
        targets_from([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
            "name": "web", "namespace": "shop", "annotations": {"werf.io/fail-mode": "Sometimes"}}}])


def test_check_mode_plan_says_what_would_be_waited_for():
    plan = tracking_plan([
        {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web"},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bg", "namespace": "shop", "annotations": {
            "werf.io/track-termination-mode": "NonBlocking", "werf.io/fail-mode": HOPE_UNTIL_END}}},
    ])
    assert [entry["reason"] for entry in plan] == [
        "would wait until ready", "would not wait (werf.io/track-termination-mode: NonBlocking)"]
    assert plan[1]["fail_mode"] == HOPE_UNTIL_END and "ready" not in plan[1]


def test_progress_lines_are_stamped_and_appended_to_the_file(tmp_path):
    path = tmp_path / "progress.log"
    path.write_text("earlier run\n")
    progress = Progress(str(path))
    progress.line("tracking 2 resources")
    progress.line("Deployment/shop/web ready after 1.0s")
    progress.close()
    lines = path.read_text().splitlines()
    assert lines[0] == "earlier run" and lines[1:] == progress.lines
    assert all(len(line.split(" ", 1)[0]) == 8 and line[2] == ":" for line in progress.lines)
    assert progress.lines[1].endswith("Deployment/shop/web ready after 1.0s")
