# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm hooks and werf.io/weight groups against the local cluster: a chart rendered by chart_render and
applied by the release_apply module. The order of what happened is read from watch events: resourceVersions
of one etcd grow with every write."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest
from kubernetes import client, watch
from urllib3.exceptions import ProtocolError

from conftest import run_module
from gitrepo import commit, new_repo
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import hooks
from ansible_collections.berth.converge.plugins.module_utils.kube.release import (
    ApplyOptions,
    ReleaseRequest,
    apply_release,
    dismiss_release,
    history,
)
from ansible_collections.berth.converge.plugins.module_utils.render import RenderOptions, render_chart

RELEASE = "hooks"
TIMEOUT = 120


def job(name, annotations, labels="{}"):
    return f"""\
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  annotations: {annotations}
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {labels}
    spec:
      restartPolicy: Never
      containers:
      - name: {name}
        image: 127.0.0.1:5000/hooks/web:{{{{ .Values.version }}}}
"""


CHART = {
    "werf.yaml": "project: hooks\nconfigVersion: 1\n",
    ".helm/Chart.yaml": "apiVersion: v2\nname: hooks\nversion: 0.1.0\n",
    ".helm/values.yaml": "version: v1\nfailMigration: false\n",
    ".helm/templates/web.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: 127.0.0.1:5000/hooks/web:{{ .Values.version }}
""",
    ".helm/templates/migrate.yaml": job(
        "migrate", '{helm.sh/hook: pre-upgrade, helm.sh/hook-weight: "-5"}',
        '{ {{- if .Values.failMigration }}berth.test/fail: Error{{ end -}} }'),
    ".helm/templates/warm-cache.yaml": job(
        "warm-cache", '{helm.sh/hook: pre-upgrade, helm.sh/hook-weight: "5", helm.sh/hook-delete-policy: hook-succeeded}'),
    ".helm/templates/smoke.yaml": job("smoke", "{helm.sh/hook: post-install}"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return new_repo(tmp_path_factory.mktemp("hooks") / "project", CHART)


def render(project, helm_bin, namespace, **values):
    result = render_chart(RenderOptions(project_dir=str(project), helm_binary=helm_bin, release=RELEASE,
                                        namespace=namespace, set_values=values))
    return result["manifests"]


def apply_module(manifests, namespace, check_mode=False):
    return run_module("release_apply", {"manifests": manifests, "release": RELEASE, "namespace": namespace,
                                        "timeout": TIMEOUT}, check_mode=check_mode)


class Recorder:
    """Every watch event of Jobs, ReplicaSets and Deployments in a namespace, with its resourceVersion."""

    LISTS = {"Job": (client.BatchV1Api, "list_namespaced_job"),
             "ReplicaSet": (client.AppsV1Api, "list_namespaced_replica_set"),
             "Deployment": (client.AppsV1Api, "list_namespaced_deployment")}

    def __init__(self, kube_api, namespace):
        self.events = []
        self._lock = threading.Lock()
        self._watches = []
        self._stopped = threading.Event()
        for kind, (api, method) in self.LISTS.items():
            lister = getattr(api(kube_api), method)
            version = lister(namespace).metadata.resource_version
            stream = watch.Watch()
            self._watches.append(stream)
            threading.Thread(target=self._follow, args=(stream, lister, namespace, version, kind), daemon=True).start()

    def _follow(self, stream, lister, namespace, version, kind):
        try:
            for event in stream.stream(lister, namespace, resource_version=version, timeout_seconds=TIMEOUT * 2):
                obj = event["raw_object"]
                with self._lock:
                    self.events.append((int(obj["metadata"]["resourceVersion"]), kind, event["type"], obj))
        except ProtocolError:
            if not self._stopped.is_set():  # after stop() the namespace goes away and ends the stream
                raise

    def first(self, kind, matches, wait=10.0):
        """The resourceVersion of the first event of `kind` whose (type, object) matches; fails after `wait`."""
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                found = [rv for rv, k, change, obj in self.events if k == kind and matches(change, obj)]
            if found:
                return min(found)
            assert time.monotonic() < deadline, f"no matching {kind} event among {len(self.events)} events"
            time.sleep(0.1)

    def stop(self):
        self._stopped.set()
        for stream in self._watches:
            stream.stop()


def named(name):
    return lambda _change, obj: obj["metadata"]["name"] == name


def added(name):
    return lambda change, obj: change == "ADDED" and obj["metadata"]["name"] == name


def complete(name):
    def matches(_change, obj):
        conditions = (obj.get("status") or {}).get("conditions") or []
        return obj["metadata"]["name"] == name and any(
            c["type"] == "Complete" and c["status"] == "True" for c in conditions)
    return matches


def deployment_ready(_change, obj):
    status = obj.get("status") or {}
    return obj["metadata"]["name"] == "web" and status.get("readyReplicas") == 2 and status.get("updatedReplicas") == 2


def replicasets(kube_api, namespace):
    return client.AppsV1Api(kube_api).list_namespaced_replica_set(namespace).items


def job_names(kube_api, namespace):
    return {j.metadata.name for j in client.BatchV1Api(kube_api).list_namespaced_job(namespace).items}


def web_image(kube_api, namespace):
    deployment = client.AppsV1Api(kube_api).read_namespaced_deployment("web", namespace)
    return deployment.spec.template.spec.containers[0].image


def hook_lines(result):
    return [(h["name"], h["event"], h["weight"], h["result"], h["deleted"]) for h in result["hooks"]]


@pytest.fixture
def installed(project, helm_bin, namespace, kube_api):
    """The chart installed at version v1 (its post-install hook ran)."""
    result, output = apply_module(render(project, helm_bin, namespace), namespace)
    assert not result["failed"], output
    return result


def test_post_install_hook_runs_once_the_release_is_ready(project, helm_bin, namespace, kube_api):
    manifests = render(project, helm_bin, namespace)
    assert {m["metadata"]["name"] for m in manifests if hooks.is_hook(m)} == {"migrate", "warm-cache", "smoke"}
    recorder = Recorder(kube_api, namespace)
    try:
        result, output = apply_module(manifests, namespace)
        assert not result["failed"], output
        ready, smoke_created = recorder.first("Deployment", deployment_ready), recorder.first("Job", added("smoke"))
    finally:
        recorder.stop()
    assert hook_lines(result) == [("smoke", "post-install", 0, "succeeded", False)]
    assert ready < smoke_created, "the post-install hook was created before the Deployment was ready"
    assert [(r["kind"], r["name"]) for r in result["resources"]] == [("Deployment", "web")]  # hooks are no resources
    assert job_names(kube_api, namespace) == {"smoke"}  # pre-upgrade hooks do not run on install
    assert any("Deployment" in line and "ready" in line for line in result["progress"])


def test_pre_upgrade_hooks_complete_before_the_deployment_changes(project, helm_bin, namespace, kube_api, installed):
    old_replicasets = {rs.metadata.name for rs in replicasets(kube_api, namespace)}
    recorder = Recorder(kube_api, namespace)
    try:
        result, output = apply_module(render(project, helm_bin, namespace, version="v2"), namespace)
        assert not result["failed"], output
        migrate_done = recorder.first("Job", complete("migrate"))
        warm_cache_created = recorder.first("Job", added("warm-cache"))
        warm_cache_done = recorder.first("Job", complete("warm-cache"))
        new_replicaset = recorder.first("ReplicaSet", lambda change, obj: change == "ADDED"
                                        and obj["metadata"]["name"] not in old_replicasets)
    finally:
        recorder.stop()
    assert hook_lines(result) == [("migrate", "pre-upgrade", -5, "succeeded", False),
                                  ("warm-cache", "pre-upgrade", 5, "succeeded", True)]
    assert migrate_done < warm_cache_created < warm_cache_done < new_replicaset, \
        "the hooks did not complete in weight order before the Deployment's new ReplicaSet appeared"
    assert job_names(kube_api, namespace) == {"smoke", "migrate"}  # hook-succeeded deleted warm-cache
    assert web_image(kube_api, namespace).endswith(":v2")
    assert [r.status for r in history(kube_api, RELEASE, namespace)] == ["superseded", "deployed"]

    again, output = apply_module(render(project, helm_bin, namespace, version="v2"), namespace)
    assert not again["failed"] and not again["changed"], output
    assert again["hooks"] == [] and again["revision"] == 2  # nothing changed: no revision, no hook runs


def test_failing_hook_stops_the_converge_with_the_jobs_reason(project, helm_bin, namespace, kube_api, installed):
    old_replicasets = {rs.metadata.name for rs in replicasets(kube_api, namespace)}
    result, output = apply_module(render(project, helm_bin, namespace, version="v2", failMigration=True), namespace)
    assert result["failed"], output
    message = result["msg"]
    assert message.startswith(f"pre-upgrade hook Job/{namespace}/migrate failed"), message
    assert "BackoffLimitExceeded" in message and "exit code 1 (Error)" in message
    assert f"Logs of pod {result['failed_hook']['pod']} container migrate: no logs available (" in message
    assert "Revision 2 of release hooks is marked failed; none of its resources was applied." in message
    assert result["failed_hook"]["reason"] == "BackoffLimitExceeded"
    assert result["failed_hook"]["pod"].startswith("migrate-")
    assert [(h["name"], h["result"]) for h in result["hooks"]] == [("migrate", "failed")]
    assert web_image(kube_api, namespace).endswith(":v1"), "the Deployment changed although its hook failed"
    assert {rs.metadata.name for rs in replicasets(kube_api, namespace)} == old_replicasets
    assert "warm-cache" not in job_names(kube_api, namespace)
    assert [r.status for r in history(kube_api, RELEASE, namespace)] == ["deployed", "failed"]


def test_objects_the_chart_dropped_are_gone_before_a_failing_pre_upgrade_hook(
        project, helm_bin, namespace, kube_api):
    legacy = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "legacy"}, "data": {"a": "1"}}
    result, output = apply_module(render(project, helm_bin, namespace) + [legacy], namespace)
    assert not result["failed"], output
    result, output = apply_module(render(project, helm_bin, namespace, version="v2", failMigration=True), namespace)
    assert result["failed"], output
    assert result["msg"].endswith("none of its resources was applied; the 1 resources it no longer has were "
                                  "deleted before its hooks, as werf does. Written: 1 of 2 object changes."), result["msg"]
    names = {c.metadata.name for c in client.CoreV1Api(kube_api).list_namespaced_config_map(namespace).items}
    assert "legacy" not in names  # werf's order: deletions first, then the pre-upgrade hooks
    assert web_image(kube_api, namespace).endswith(":v1")


def test_check_mode_dry_runs_the_hooks_and_runs_none(project, helm_bin, namespace, kube_api, installed):
    result, output = apply_module(render(project, helm_bin, namespace, version="v2"), namespace, check_mode=True)
    assert not result["failed"] and result["changed"], output
    assert hook_lines(result) == [("migrate", "pre-upgrade", -5, "would run", False),
                                  ("warm-cache", "pre-upgrade", 5, "would run", False)]
    assert job_names(kube_api, namespace) == {"smoke"}
    assert web_image(kube_api, namespace).endswith(":v1")
    assert len(history(kube_api, RELEASE, namespace)) == 1


def test_check_mode_names_an_invalid_hook(project, helm_bin, namespace, kube_api, installed):
    manifests = render(project, helm_bin, namespace, version="v2")
    migrate = next(m for m in manifests if m["metadata"]["name"] == "migrate")
    migrate["spec"]["backoffLimit"] = "many"
    result, output = apply_module(manifests, namespace, check_mode=True)
    assert result["failed"], output
    assert f"Job {namespace}/migrate" in result["msg"] and "backoffLimit" in result["msg"]


def configmap(name, annotations=None):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "annotations": annotations or {}},
            "data": {"key": "value"}}


def plain_job(name, annotations=None):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": name, "image": "127.0.0.1:5000/hooks/web:v1"}]}}}}


def test_dismiss_runs_pre_delete_and_post_delete_hooks(kube_api, namespace):
    manifests = [configmap("settings"), plain_job("drain", {"helm.sh/hook": "pre-delete"}),
                 configmap("goodbye", {"helm.sh/hook": "post-delete"})]
    options = ApplyOptions(timeout=TIMEOUT)
    installed = apply_release(kube_api, RELEASE, namespace, ReleaseRequest(manifests, hook_phase=hooks.INSTALL_OR_UPGRADE),
                              options)
    assert installed["hooks"] == [] and job_names(kube_api, namespace) == set()
    result = dismiss_release(kube_api, RELEASE, namespace, options)
    assert [(h["name"], h["event"], h["result"]) for h in result["hooks"]] == [
        ("drain", "pre-delete", "succeeded"), ("goodbye", "post-delete", "succeeded")]
    core = client.CoreV1Api(kube_api)
    assert {c.metadata.name for c in core.list_namespaced_config_map(namespace).items} >= {"goodbye"}
    assert "settings" not in {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
    assert job_names(kube_api, namespace) == {"drain"}
    assert history(kube_api, RELEASE, namespace) == []


def test_rollback_runs_the_targets_rollback_hooks(kube_api, namespace):
    from ansible_collections.berth.converge.plugins.module_utils.kube.rollback import rollback

    def revision(value):
        return [configmap("settings-" + value),
                plain_job("before-rollback-" + value, {"helm.sh/hook": "pre-rollback"}),
                configmap("after-rollback-" + value, {"helm.sh/hook": "post-rollback"})]

    options = ApplyOptions(timeout=TIMEOUT)
    for value in ("v1", "v2"):
        apply_release(kube_api, RELEASE, namespace, ReleaseRequest(revision(value), hook_phase=hooks.INSTALL_OR_UPGRADE),
                      options)
    assert job_names(kube_api, namespace) == set()  # rollback hooks do not run on install or upgrade
    result = rollback(kube_api, RELEASE, namespace, options=options)
    assert [(h["name"], h["event"], h["result"]) for h in result["hooks"]] == [
        ("before-rollback-v1", "pre-rollback", "succeeded"), ("after-rollback-v1", "post-rollback", "succeeded")]
    names = {c.metadata.name for c in client.CoreV1Api(kube_api).list_namespaced_config_map(namespace).items}
    assert {"settings-v1", "after-rollback-v1"} <= names and "settings-v2" not in names


def test_weight_groups_are_ready_one_after_another(kube_api, namespace):
    manifests = [plain_job("prepare", {"werf.io/weight": "-1"}), configmap("settings")]
    recorder = Recorder(kube_api, namespace)
    try:
        result = apply_release(kube_api, RELEASE, namespace, ReleaseRequest(manifests), ApplyOptions(timeout=TIMEOUT))
        prepared = recorder.first("Job", complete("prepare"))
    finally:
        recorder.stop()
    settings = client.CoreV1Api(kube_api).read_namespaced_config_map("settings", namespace)
    assert prepared < int(settings.metadata.resource_version), "the weight 0 group was applied before weight -1 was ready"
    assert any("Job/" in line and "prepare ready" in line for line in result["progress"])


def test_failing_weight_group_stops_before_the_next_group(kube_api, namespace):
    failing = plain_job("prepare", {"werf.io/weight": "-1"})
    failing["spec"]["template"]["metadata"] = {"labels": {"berth.test/fail": "Error"}}
    with pytest.raises(ConvergeError) as caught:
        apply_release(kube_api, RELEASE, namespace, ReleaseRequest([failing, configmap("settings")]),
                      ApplyOptions(timeout=TIMEOUT))
    assert "BackoffLimitExceeded" in str(caught.value) and caught.value.details["revision"] == 1
    names = {c.metadata.name for c in client.CoreV1Api(kube_api).list_namespaced_config_map(namespace).items}
    assert "settings" not in names
    assert [r.status for r in history(kube_api, RELEASE, namespace)] == ["failed"]


ITEM_LINE = re.compile(r"^(changed|ok): \[localhost\] => \(item=([^)]*)\)", re.MULTILINE)


def converge(project, registry, namespace):
    """Run the converge playbook; returns (rc, output, {item label: changed|ok})."""
    extra = {"converge_project_dir": str(project), "converge_repo": f"{registry}/{namespace}",
             "converge_release": RELEASE, "converge_namespace": namespace, "converge_timeout": TIMEOUT}
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    proc = subprocess.run([playbook, "berth.converge.converge", "-e", json.dumps(extra)], capture_output=True,
                          text=True, check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    return proc.returncode, proc.stdout + proc.stderr, dict((item, state) for state, item in ITEM_LINE.findall(proc.stdout))


def test_role_runs_the_migration_hook_before_the_deployment_changes(tmp_path, registry, namespace, kube_api):
    project = new_repo(tmp_path / "role", CHART)
    rc, output, items = converge(project, registry, namespace)
    assert rc == 0, output
    assert items["Deployment/web"] == "changed" and items["Job/smoke post-install"] == "changed", items
    assert not any(item.startswith("Job/migrate") for item in items)

    commit(project, {".helm/values.yaml": "version: v2\nfailMigration: false\n"}, "v2")
    old_replicasets = {rs.metadata.name for rs in replicasets(kube_api, namespace)}
    recorder = Recorder(kube_api, namespace)
    try:
        rc, output, items = converge(project, registry, namespace)
        assert rc == 0, output
        migrate_done = recorder.first("Job", complete("migrate"))
        new_replicaset = recorder.first("ReplicaSet", lambda change, obj: change == "ADDED"
                                        and obj["metadata"]["name"] not in old_replicasets)
    finally:
        recorder.stop()
    assert migrate_done < new_replicaset
    assert {item: state for item, state in items.items() if item.startswith("Job/")} == {
        "Job/migrate pre-upgrade": "changed", "Job/warm-cache pre-upgrade": "changed"}, items
    assert "succeeded, deleted" in output  # the hook-succeeded line of warm-cache
    assert web_image(kube_api, namespace).endswith(":v2")

    rc, output, items = converge(project, registry, namespace)
    assert rc == 0, output
    assert set(items.values()) == {"ok"} and not any(item.startswith("Job/") for item in items), items
