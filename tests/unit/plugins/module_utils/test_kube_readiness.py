# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readiness rules on object dicts: built-in rules, annotations, rules per kind, and their errors."""

from __future__ import annotations

import pytest

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.readiness import (
    ReadinessRules, builtin_verdict, check_annotations, truthy)
from ansible_collections.berth.converge.plugins.module_utils.kube.track import object_status, resource_status


def widget(status=None, generation=1, annotations=None, api_version="example.com/v1"):
    return {"apiVersion": api_version, "kind": "Widget",
            "metadata": {"name": "w", "namespace": "ns", "generation": generation, "annotations": annotations or {}},
            "status": status or {}}


@pytest.mark.parametrize("value, expected", [
    (None, False), (False, False), ("", False), ([], False), ({}, False),
    (0, True), (True, True), ("x", True), ([0], True), ({"a": None}, True),
])
def test_jmespath_truth(value, expected):
    assert truthy(value) is expected


@pytest.mark.parametrize("status, generation, state, rule", [
    ({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}, 2, "pending",
     "built-in observedGeneration"),
    ({"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}, 2, "ready",
     "built-in condition Ready"),
    ({"conditions": [{"type": "Stalled", "status": "True", "reason": "Quota"}]}, 1, "failed",
     "built-in condition Stalled"),
    ({"conditions": [{"type": "Failed", "status": "True"}, {"type": "Ready", "status": "True"}]}, 1, "failed",
     "built-in condition Failed"),
    ({"conditions": [{"type": "Stalled", "status": "False"}, {"type": "Ready", "status": "False"}]}, 1, "pending",
     "built-in condition Ready"),
    ({"conditions": [{"type": "Available", "status": "True"}]}, 1, "ready", "built-in condition Available"),
    ({"phase": "Healthy"}, 1, "ready", "built-in status.phase"),
    ({"phase": "error"}, 1, "failed", "built-in status.phase"),
    ({"phase": "Progressing"}, 1, "pending", "built-in status.phase"),
    ({"phase": {"odd": "shape"}}, 1, "ready", "built-in exists"),
    ({}, 1, "ready", "built-in exists"),
])
def test_builtin_rules_for_custom_resources(status, generation, state, rule):
    verdict = builtin_verdict(widget(status, generation), "example.com")
    assert (verdict.state, verdict.rule) == (state, rule)


def test_phase_of_core_objects_does_not_count():
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "status": {"phase": "Pending"}}  # waits for its first consumer: ready when it exists, as before
    assert object_status(claim).ready and object_status(claim).rule == "built-in exists"


def test_failed_condition_carries_reason_and_message():
    obj = widget({"conditions": [{"type": "Stalled", "status": "True", "reason": "Quota", "message": "10 reached"}]})
    status = object_status(obj)
    assert (status.failure.reason, status.failure.message) == ("Quota", "10 reached")


def rules_for(obj, *entries):
    rules = ReadinessRules(list(entries))
    meta = obj["metadata"]
    return rules.for_object(obj["apiVersion"].split("/")[0], obj["kind"], meta.get("annotations"), "Widget/ns/w")


def test_annotations_override_the_rule_of_the_kind_expression_by_expression():
    obj = widget({"state": "up"}, annotations={"berth.converge/ready-when": "status.state == 'up'"})
    rule = rules_for(obj, {"group": "example.com", "kind": "Widget", "ready": "status.never",
                           "failed": "status.state == 'down'"})
    assert rule.ready.source == "annotation berth.converge/ready-when"
    assert rule.failed.source == "readiness_rules[0] (example.com/Widget) failed"
    assert object_status(obj, rule).ready


def test_failed_expression_result_is_the_message():
    obj = widget({"errors": ["disk full"]}, annotations={"berth.converge/failed-when": "status.errors[0]"})
    status = object_status(obj, rules_for(obj))
    assert status.failure.reason == "annotation berth.converge/failed-when matched"
    assert status.failure.message == "disk full (status.errors[0])"
    obj["metadata"]["annotations"]["berth.converge/failed-when"] = "length(status.errors) > `0`"
    assert object_status(obj, rules_for(obj)).failure.message == "length(status.errors) > `0`"


def test_failed_expression_replaces_the_builtin_failure_and_ready_the_builtin_readiness():
    stalled = {"conditions": [{"type": "Stalled", "status": "True"}, {"type": "Ready", "status": "True"}]}
    obj = widget(stalled, annotations={"berth.converge/failed-when": "status.broken"})
    status = object_status(obj, rules_for(obj))
    assert status.ready and status.rule == "built-in condition Ready"  # Stalled no longer counts
    obj["status"]["phase"] = "Failed"
    del obj["status"]["conditions"]
    status = object_status(obj, rules_for(obj))
    assert not status.ready and status.failure is None and status.reason == "phase Failed"
    obj = widget({"conditions": [{"type": "Ready", "status": "True"}]},
                 annotations={"berth.converge/ready-when": "status.count >= `2`"})
    status = object_status(obj, rules_for(obj))
    assert not status.ready and status.reason == "not yet status.count >= `2`"
    assert status.rule == "annotation berth.converge/ready-when"


def test_rules_apply_to_builtin_kinds_and_pod_failures_still_count():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": "ns", "generation": 1,
                               "annotations": {"berth.converge/ready-when": "status.readyReplicas >= `1`"}},
                  "spec": {"replicas": 3},
                  "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 1}}
    rule = ReadinessRules().for_object("apps", "Deployment", deployment["metadata"]["annotations"], "Deployment/ns/web")
    assert object_status(deployment, rule).ready
    assert not object_status(deployment).ready  # the built-in rule wants 3 of 3
    deployment["status"]["readyReplicas"] = 0
    crashing = {"metadata": {"name": "web-1"}, "status": {"containerStatuses": [
        {"name": "main", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    status = resource_status(deployment, [crashing], 1, rule)
    assert status.failure.reason == "CrashLoopBackOff" and status.rule == "built-in pod failures"


def test_an_expression_that_cannot_be_evaluated_names_the_object_and_annotation():
    obj = widget({"count": 3}, annotations={"berth.converge/ready-when": "length(status.count)"})
    with pytest.raises(ConvergeError, match=r"^Widget/ns/w: annotation berth.converge/ready-when "
                                            r"'length\(status.count\)' cannot be evaluated"):
        object_status(obj, rules_for(obj))


@pytest.mark.parametrize("entries, message", [
    (["x"], r"readiness_rules\[0\] is a str"),
    ([{"kind": "W", "ready": "a", "when": "b"}], r"readiness_rules\[0\]: unknown keys when"),
    ([{"group": "x.io", "ready": "a"}], r"readiness_rules\[0\] needs kind"),
    ([{"group": "x.io", "kind": "W"}], r"readiness_rules\[0\] \(x.io/W\) needs a ready or a failed"),
    ([{"group": "x.io", "kind": "W", "ready": "a"}, {"group": "x.io", "kind": "W", "failed": "b"}],
     r"readiness_rules\[1\]: a rule for x.io/W is already given"),
    ([{"group": "x.io", "kind": "W", "failed": "a ||"}],
     r"readiness_rules\[0\] \(x.io/W\) failed 'a \|\|' is not a valid JMESPath expression"),
])
def test_bad_rules_are_named(entries, message):
    with pytest.raises(ConvergeError, match=message):
        ReadinessRules(entries)


def test_check_annotations_names_the_object_and_annotation():
    manifests = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}},
                 {"apiVersion": "example.com/v1", "kind": "Widget",
                  "metadata": {"name": "w", "annotations": {"berth.converge/failed-when": ""}}}]
    with pytest.raises(ConvergeError, match=r"^Widget/shop/w: annotation berth.converge/failed-when must be a "
                                            r"non-empty JMESPath expression"):
        check_annotations(manifests, "shop")
