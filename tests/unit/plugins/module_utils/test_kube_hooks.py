# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of kube/hooks.py and the werf.io/weight waits of kube/apply.py without a cluster: which
manifests are hooks, Helm's order, delete policies, failures, group-wise waiting."""

from __future__ import annotations

import pytest

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import apply, hooks
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import KubeApiError, ResourceType

TYPES = {
    ("v1", "ConfigMap"): ResourceType("", "v1", "ConfigMap", "configmaps", True),
    ("v1", "Pod"): ResourceType("", "v1", "Pod", "pods", True),
    ("batch/v1", "Job"): ResourceType("batch", "v1", "Job", "jobs", True),
    ("example.com/v1", "Gadget"): ResourceType("example.com", "v1", "Gadget", "gadgets", True),
}


class FakeMapper:
    def find(self, api_version, kind):
        return TYPES.get((api_version, kind))

    def lookup(self, api_version, kind):
        return TYPES[(api_version, kind)]


def manifest(kind, name, api_version="v1", **annotations):
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "annotations": annotations}}


def hook(kind, name, events, api_version="v1", **annotations):
    return manifest(kind, name, api_version, **{"helm.sh/hook": events, **annotations})


# --- parsing -------------------------------------------------------------------------------------

def test_parse_hook_events_weight_and_default_delete_policy():
    parsed = hooks.parse_hook(hook("Job", "migrate", " Pre-Install, pre-upgrade ", "batch/v1",
                                   **{"helm.sh/hook-weight": "-5"}))
    assert parsed.events == ("pre-install", "pre-upgrade")
    assert parsed.weight == -5
    assert parsed.delete_policies == ("before-hook-creation",)  # Helm's default when none is given


def test_parse_hook_policies_and_the_old_test_event_name():
    parsed = hooks.parse_hook(hook("Pod", "check", "test-success", **{
        "helm.sh/hook-delete-policy": "hook-succeeded, hook-failed"}))
    assert parsed.events == ("test",)
    assert parsed.delete_policies == ("hook-succeeded", "hook-failed")


def test_invalid_weight_and_policy_name_the_hook():
    with pytest.raises(ConvergeError, match=r"Job/migrate: annotation helm.sh/hook-weight must be an integer, "
                                            r"got 'first'"):
        hooks.parse_hook(hook("Job", "migrate", "pre-upgrade", "batch/v1", **{"helm.sh/hook-weight": "first"}))
    with pytest.raises(ConvergeError, match=r"Job/migrate: annotation helm.sh/hook-delete-policy has "
                                            r"hook-finished; use before-hook-creation, hook-succeeded, hook-failed"):
        hooks.parse_hook(hook("Job", "migrate", "pre-upgrade", "batch/v1",
                              **{"helm.sh/hook-delete-policy": "hook-finished"}))


def test_split_hooks_keeps_resources_and_skips_unknown_events_as_helm():
    resources, found, warnings = hooks.split_hooks([
        manifest("ConfigMap", "settings"), hook("Job", "migrate", "pre-upgrade", "batch/v1"),
        hook("CustomResourceDefinition", "old", "crd-install")])
    assert resources == [manifest("ConfigMap", "settings")]
    assert [h.name for h in found] == ["migrate"]
    assert warnings == ["CustomResourceDefinition/old is skipped, as Helm skips it: helm.sh/hook 'crd-install' "
                        "names no Helm hook event"]


def test_hooks_of_an_event_run_in_helms_order():
    manifests = [hook("Job", "b", "pre-upgrade", "batch/v1", **{"helm.sh/hook-weight": "1"}),
                 hook("Job", "z", "pre-upgrade", "batch/v1", **{"helm.sh/hook-weight": "-1"}),
                 hook("Job", "a", "pre-upgrade", "batch/v1", **{"helm.sh/hook-weight": "1"}),
                 hook("Gadget", "a", "pre-upgrade", "example.com/v1", **{"helm.sh/hook-weight": "1"}),
                 hook("ConfigMap", "a", "pre-upgrade", **{"helm.sh/hook-weight": "1"}),
                 hook("Job", "post", "post-upgrade", "batch/v1")]
    items = hooks.prepare_hooks(hooks.split_hooks(manifests)[1], "rel", "shop", FakeMapper())
    order = [(i.hook.kind, i.hook.name) for i in hooks.for_event(items, "pre-upgrade")]
    # weight, then name, then kind in Helm's install order (unknown kinds last)
    assert order == [("Job", "z"), ("ConfigMap", "a"), ("Job", "a"), ("Gadget", "a"), ("Job", "b")]
    assert [i.entry["event"] for i in hooks.for_event(items, "post-upgrade")] == ["post-upgrade"]


def test_prepared_hooks_are_recreated_only_with_before_hook_creation():
    items = hooks.prepare_hooks(hooks.split_hooks([
        hook("Job", "a", "pre-upgrade", "batch/v1"),
        hook("Job", "b", "pre-upgrade", "batch/v1", **{"helm.sh/hook-delete-policy": "hook-succeeded"})])[1],
        "rel", "shop", FakeMapper())
    assert [(i.desired.rid.name, i.desired.recreate) for i in items] == [("a", True), ("b", False)]
    assert items[0].desired.obj["metadata"]["namespace"] == "shop"
    assert items[0].desired.obj["metadata"]["annotations"] == {"helm.sh/hook": "pre-upgrade"}  # no ownership, as Helm


def test_resolve_phase():
    assert hooks.resolve_phase(hooks.INSTALL_OR_UPGRADE, False) == "install"
    assert hooks.resolve_phase(hooks.INSTALL_OR_UPGRADE, True) == "upgrade"
    assert hooks.resolve_phase(None, True) is None
    with pytest.raises(ConvergeError, match="unknown hook phase 'later'"):
        hooks.resolve_phase("later", True)


# --- running ---------------------------------------------------------------------------------------

class FakeKube:
    """Records writes; objects disappear as soon as they are deleted."""

    def __init__(self, existing=()):
        self.existing = set(existing)
        self.log = []

    def request(self, method, path, query=None, body=None, content_type=None):
        self.log.append((method, path.rsplit("/", 1)[1]))
        if method == "DELETE":
            if path not in self.existing:
                raise KubeApiError(404, "NotFound", "not found")
            self.existing.discard(path)
        return {"items": []}

    def get_or_none(self, path):
        return {} if path in self.existing else None


class FakeApplier:
    waiter = None
    # the real deletion (DELETE, then polling until gone) against the fake API
    delete_object = apply.Applier.delete_object
    wait_gone = apply.Applier.wait_gone

    def __init__(self, kube):
        self.kube = kube
        self.mapper = FakeMapper()

    def apply_object(self, item):
        self.kube.log.append(("APPLY", item.rid.name))
        self.kube.existing.add(item.rtype.path(item.rid.namespace, item.rid.name))


class FakeWaiter:
    """Each wait succeeds, unless the object is named in `failing`."""

    timeout = 5
    progress = []

    def __init__(self, kube, failing=()):
        self.kube = kube
        self.failing = set(failing)

    def wait(self, resources):
        name = resources[0]["metadata"]["name"]
        self.kube.log.append(("WAIT", name))
        if name in self.failing:
            raise ConvergeError(f"Job/shop/{name} failed: pod {name}-x container main: BackoffLimitExceeded",
                                failed_resource={"reason": "BackoffLimitExceeded", "message": "backoff limit",
                                                 "pod": f"{name}-x", "container": "main", "events": {}})
        return [{"failed": False, "reason": "complete"}]


def runner_for(manifests, existing=(), failing=()):
    kube = FakeKube(existing)
    items = hooks.prepare_hooks(hooks.split_hooks(manifests)[1], "rel", "shop", FakeMapper())
    return hooks.HookRunner(FakeApplier(kube), FakeWaiter(kube, failing)), kube, hooks.for_event(items, "pre-upgrade")


def test_hooks_run_one_by_one_and_hook_succeeded_deletes_after_all_succeeded():
    first = {"helm.sh/hook-weight": "-1", "helm.sh/hook-delete-policy": "hook-succeeded"}
    runner, kube, items = runner_for([
        hook("Job", "first", "pre-upgrade", "batch/v1", **first), hook("Job", "second", "pre-upgrade", "batch/v1")],
        existing={"/apis/batch/v1/namespaces/shop/jobs/second"})
    runner.run(items)
    assert kube.log == [("APPLY", "first"), ("WAIT", "first"),
                        ("DELETE", "second"), ("APPLY", "second"), ("WAIT", "second"),  # before-hook-creation
                        ("DELETE", "first")]  # hook-succeeded, once every hook of the event succeeded
    assert [(e["name"], e["result"], e["reason"], e["deleted"]) for e in runner.entries] == [
        ("first", "succeeded", "complete", True), ("second", "succeeded", "complete", False)]


def test_failed_hook_stops_names_reason_and_logs_and_honours_hook_failed(monkeypatch):
    runner, kube, items = runner_for([
        hook("Job", "migrate", "pre-upgrade", "batch/v1", **{"helm.sh/hook-delete-policy": "hook-failed"}),
        hook("Job", "later", "pre-upgrade", "batch/v1", **{"helm.sh/hook-weight": "5"})], failing={"migrate"})

    def no_logs(namespace, pod, container):
        kube.log.append(("LOGS", pod))
        raise ConvergeError("dial tcp :10250: connect: connection refused")

    monkeypatch.setattr(runner, "_read_log", no_logs)
    with pytest.raises(ConvergeError) as caught:
        runner.run(items)
    lines = str(caught.value).splitlines()
    assert lines[0] == "pre-upgrade hook Job/shop/migrate failed: pod migrate-x container main: BackoffLimitExceeded"
    assert lines[-1] == ("Logs of pod migrate-x container main: no logs available (dial tcp :10250: connect: "
                         "connection refused)")
    assert kube.log == [("APPLY", "migrate"), ("WAIT", "migrate"), ("LOGS", "migrate-x"), ("DELETE", "migrate")]
    failed = caught.value.details["failed_hook"]
    assert (failed["name"], failed["event"], failed["reason"], failed["deleted"]) == (
        "migrate", "pre-upgrade", "BackoffLimitExceeded", True)
    assert [e["name"] for e in caught.value.details["hooks"]] == ["migrate"]  # "later" never ran


def test_log_tail_is_shown(monkeypatch):
    runner, _kube, items = runner_for([hook("Job", "migrate", "pre-upgrade", "batch/v1")], failing={"migrate"})
    monkeypatch.setattr(runner, "_read_log", lambda namespace, pod, container: "\n".join(
        f"line {n}" for n in range(30)))
    with pytest.raises(ConvergeError) as caught:
        runner.run(items)
    message = str(caught.value)
    assert "Last 20 log lines of pod migrate-x container main:\n  line 10\n" in message and "line 9\n" not in message
    assert caught.value.details["failed_hook"]["logs"][-1] == "line 29"


# --- werf.io/weight groups --------------------------------------------------------------------------

class RecordingWaiter:
    def __init__(self):
        self.waited = []

    def wait(self, resources):
        self.waited.append(sorted(r["metadata"]["name"] for r in resources))


class WritingApplier(apply.Applier):
    def _write_one(self, planned):
        self.waiter.waited.append(f"write {planned.rid.name}")


def planned(name, weight, action):
    desired = apply.prepare([manifest("ConfigMap", name, **{"werf.io/weight": str(weight)})], "rel", "shop",
                            FakeMapper())[0]
    return apply.Planned(desired.rid, "v1", action, desired=desired)


def test_each_weight_group_is_waited_for_before_a_later_group_with_changes():
    waiter = RecordingWaiter()
    applier = WritingApplier(None, FakeMapper(), "rel", "shop", waiter=waiter)
    applier.apply([planned("db", -2, apply.UNCHANGED), planned("migrate", -1, apply.CREATE),
                   planned("app", 0, apply.UPDATE), planned("web", 0, apply.UNCHANGED),
                   planned("late", 5, apply.UNCHANGED)])
    assert waiter.waited == [["db"], "write migrate", ["migrate"], "write app"]


def test_before_main_runs_after_crds_and_before_the_other_objects():
    waiter = RecordingWaiter()
    applier = WritingApplier(None, FakeMapper(), "rel", "shop", waiter=waiter)
    applier.apply([planned("app", 0, apply.CREATE)], before_main=lambda: waiter.waited.append("pre hooks"))
    assert waiter.waited == ["pre hooks", "write app"]
