# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The invariants of the release record (docs/releases-and-rollback.md), each proven by driving the converge
role through converges, readiness failures, faults and rollbacks against the real environment.

The invariants are written in terms of statuses (deployed, superseded, failed, pending), so they hold however
revisions are stored. The pods run on a kwok node of the test's own (tainted, so nothing else lands there):
cordoning it makes this test's pods unschedulable without touching anybody else's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import ansible_module
from gitrepo import new_repo
from kubernetes import client

from ansible_collections.berth.converge.plugins.module_utils.kube.release import history
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import Kube

BIN = Path(sys.executable).parent
CRASH = {"berth.test/fail": "CrashLoopBackOff"}
TAINT = "berth.test/private-node"

CHART = {
    "werf.yaml": "project: rec\nconfigVersion: 1\n",
    ".helm/Chart.yaml": "apiVersion: v2\nname: rec\nversion: 0.1.0\n",
    ".helm/values.yaml": "a: '1'\nnode: none\npodLabels: {}\ngate: false\n",
    ".helm/templates/app.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels:
        app: app
        {{- range $k, $v := .Values.podLabels }}
        {{ $k }}: {{ $v | quote }}
        {{- end }}
    spec:
      nodeSelector: {kubernetes.io/hostname: {{ .Values.node | quote }}}
      tolerations: [{key: %(taint)s, operator: Exists, effect: NoSchedule}]
      containers:
      - name: app
        image: busybox
        env: [{name: A, value: {{ .Values.a | quote }}}]
{{- if .Values.gate }}
---
# Applied before the app (weight -1) and waited for: its pod can never be scheduled, so the apply of the
# revision hangs here, in the middle, until the timeout.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: gate
  annotations: {werf.io/weight: "-1"}
spec:
  replicas: 1
  selector:
    matchLabels: {app: gate}
  template:
    metadata:
      labels: {app: gate}
    spec:
      nodeSelector: {kubernetes.io/hostname: no-such-node}
      containers: [{name: gate, image: busybox}]
{{- end }}
""" % {"taint": TAINT},
}


class Project:
    """A Git repository of a one-Deployment chart converged with the role into its own namespace."""

    def __init__(self, tmp_path, registry, node):
        self.dir = new_repo(tmp_path / "rec", CHART)
        self.env = "t" + uuid.uuid4().hex[:6]
        self.release = self.namespace = f"rec-{self.env}"
        self.repo = f"{registry}/t-{self.env}/rec"
        self.node = node

    def start(self, a, timeout=60, pod_labels=None, gate=False, **more):
        """Start a converge with A=a in its own process group; returns the Popen."""
        extra = {"converge_project_dir": str(self.dir), "converge_repo": self.repo, "converge_env": self.env,
                 "converge_timeout": timeout,
                 "converge_set": {"a": str(a), "node": self.node, "podLabels": pod_labels or {}, "gate": gate},
                 **more}
        command = [str(BIN / "ansible-playbook"), "berth.converge.converge", "-e", json.dumps(extra)]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "ANSIBLE_NOCOLOR": "1"}, start_new_session=True)

    def converge(self, a, **options):
        """Run a converge to its end; returns (rc, output)."""
        proc = self.start(a, **options)
        output, _errors = proc.communicate(timeout=300)
        return proc.returncode, output


@pytest.fixture
def private_node(kube_api):
    """A kwok node only this test's pods tolerate; deleted afterwards."""
    core = client.CoreV1Api(kube_api)
    name = "rec-node-" + uuid.uuid4().hex[:6]
    core.create_node({"metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                                   "labels": {"kubernetes.io/hostname": name, "type": "kwok"}},
                      "spec": {"taints": [{"key": TAINT, "value": name, "effect": "NoSchedule"}]}})
    try:
        wait_for_node(core, name)
        yield name
    finally:
        core.delete_node(name)


@pytest.fixture
def project(tmp_path, registry, kube_api, private_node):
    project = Project(tmp_path, registry, private_node)
    yield project
    try:
        client.CoreV1Api(kube_api).delete_namespace(project.namespace)
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def wait_for_node(core, name, timeout=60):
    """Until the node is Ready and carries no taint but the test's own: after an API server outage the node
    controller taints a kwok node unreachable until kwok's heartbeats get through again."""
    def ready():
        node = core.read_node(name)
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or []) and all(
            taint.key == TAINT for taint in node.spec.taints or [])
    wait_for(f"node {name} Ready and untainted", ready, timeout)


def wait_for(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.3)


def cordon(kube_api, node, namespace, unschedulable=True):
    """Cordon (or uncordon) the node; when cordoning, delete the namespace's pods so they cannot come back."""
    core = client.CoreV1Api(kube_api)
    core.patch_node(node, {"spec": {"unschedulable": unschedulable}})
    if unschedulable:
        core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)


def converge_cordoned(kube_api, project, value, **more):
    """A converge while the test's node is cordoned and the pods are gone: it cannot become ready."""
    cordon(kube_api, project.node, project.namespace)
    try:
        return project.converge(value, **more)
    finally:
        cordon(kube_api, project.node, project.namespace, unschedulable=False)


def statuses(kube_api, project):
    return [(r.version, r.status) for r in history(kube_api, project.release, project.namespace)]


def live_a(kube_api, project):
    deployment = client.AppsV1Api(kube_api).read_namespaced_deployment("app", project.namespace)
    return {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}["A"]


def covers(recorded, live):
    """Whether every field of the recorded manifest has its value in the live object."""
    if isinstance(recorded, dict):
        return isinstance(live, dict) and all(covers(v, live.get(k)) for k, v in recorded.items())
    if isinstance(recorded, list):
        return isinstance(live, list) and len(recorded) == len(live) and all(map(covers, recorded, live))
    return recorded == live or str(recorded) == str(live)


def assert_record_tells_the_truth(kube_api, project, converge_running=False):
    """The invariants that hold between converges: at most one revision is deployed, its manifests are the
    live objects, and no revision is pending unless a converge is running."""
    revisions = history(kube_api, project.release, project.namespace)
    deployed = [r for r in revisions if r.status == "deployed"]
    assert len(deployed) <= 1, statuses(kube_api, project)
    if not converge_running:
        assert not [r for r in revisions if r.status == "pending"], statuses(kube_api, project)
    kube = Kube(kube_api)
    for revision in deployed:
        for manifest in revision.manifests:
            path = f"/apis/apps/v1/namespaces/{project.namespace}/deployments/{manifest['metadata']['name']}"
            assert covers(manifest, kube.request("GET", path)), (
                f"revision {revision.version} is deployed but {manifest['metadata']['name']} is not live as recorded")
    return deployed[0].version if deployed else None


def test_deployed_is_live_and_a_noop_converge_never_fails_the_revision_that_was_serving(project, kube_api):
    """The sequence of issue 10: a no-op converge that fails readiness leaves the serving revision deployed,
    and a later failing converge rolls back to it (not to an older one)."""
    assert project.converge(1)[0] == 0
    rc, output = project.converge(2)
    assert rc == 0, output
    assert statuses(kube_api, project) == [(1, "superseded"), (2, "deployed")]
    assert assert_record_tells_the_truth(kube_api, project) == 2

    rc, output = converge_cordoned(kube_api, project, 2, timeout=5, converge_auto_rollback=True)
    assert rc != 0 and ("Timeout" in output or "timed out" in output), output
    assert "Not rolled back: this run changed nothing (revision 2 was live before it)." in output, output
    assert "no revision was recorded" not in output
    assert statuses(kube_api, project) == [(1, "superseded"), (2, "deployed")]

    rc, output = project.converge(2)
    assert rc == 0, output
    assert statuses(kube_api, project) == [(1, "superseded"), (2, "deployed")]
    assert assert_record_tells_the_truth(kube_api, project) == 2

    rc, output = project.converge(4, pod_labels=CRASH, converge_auto_rollback=True)
    assert rc != 0 and "CrashLoopBackOff" in output, output
    assert "\nRolled back to revision 2." in output, output
    assert live_a(kube_api, project) == "2"
    assert statuses(kube_api, project) == [(1, "superseded"), (2, "superseded"), (3, "failed"), (4, "deployed")]
    assert assert_record_tells_the_truth(kube_api, project) == 4


def test_auto_rollback_restores_the_newest_revision_that_was_live_and_ready(project, kube_api):
    """Revision 2 fails only on a short timeout and then converges fine: it is deployed again, and a later
    rollback goes to it. Revision 3 is live but never ready (it timed out): the rollback of 4 skips it."""
    assert project.converge(1)[0] == 0
    rc, output = converge_cordoned(kube_api, project, 2, timeout=5)
    assert rc != 0, output
    assert "Not rolled back (converge_auto_rollback is off)." in output
    assert statuses(kube_api, project) == [(1, "superseded"), (2, "failed")]
    assert assert_record_tells_the_truth(kube_api, project) is None

    rc, output = project.converge(2)  # nothing to change: revision 2 is live, and now it becomes ready
    assert rc == 0, output
    assert statuses(kube_api, project) == [(1, "superseded"), (2, "deployed")]
    assert assert_record_tells_the_truth(kube_api, project) == 2

    rc, output = converge_cordoned(kube_api, project, 3, timeout=5)
    assert rc != 0, output
    assert statuses(kube_api, project) == [(1, "superseded"), (2, "superseded"), (3, "failed")]

    rc, output = project.converge(4, pod_labels=CRASH, converge_auto_rollback=True)
    assert rc != 0 and "CrashLoopBackOff" in output, output
    assert "\nRolled back to revision 2." in output, output
    assert live_a(kube_api, project) == "2"
    assert statuses(kube_api, project)[-2:] == [(4, "failed"), (5, "deployed")]
    assert assert_record_tells_the_truth(kube_api, project) == 5


def test_a_pending_revision_of_a_killed_converge_becomes_failed_interrupted_under_the_next_lock(project, kube_api):
    assert project.converge(1)[0] == 0
    killed = project.start(2, gate=True, timeout=120)
    try:
        wait_for("revision 2 pending, its gate written", lambda: statuses(kube_api, project)[-1:] == [(2, "pending")]
                 and _exists(kube_api, project.namespace, "gate"), timeout=90)
        kill_process_groups(killed.pid)
    finally:
        killed.kill()
        killed.communicate()
    time.sleep(1)
    assert statuses(kube_api, project) == [(1, "deployed"), (2, "pending")]  # the truth while nobody cleans up

    rc, output = project.converge(3)  # waits for the killed converge's Lease to expire, then takes it
    assert rc == 0, output
    revisions = history(kube_api, project.release, project.namespace)
    assert [(r.version, r.status) for r in revisions] == [(1, "superseded"), (2, "failed"), (3, "deployed")]
    assert revisions[1].summary()["reason"] == "interrupted"
    assert not _exists(kube_api, project.namespace, "gate")  # pruned: revision 2 wrote it
    assert assert_record_tells_the_truth(kube_api, project) == 3

    info = ansible_module("release_info", {"release": project.release, "namespace": project.namespace}).result
    shown = {entry["revision"]: entry for entry in info["revisions"]}
    assert (shown[2]["status"], shown[2]["reason"]) == ("failed", "interrupted"), info


def kill_process_groups(pid):
    """SIGKILL the process groups of the process and of all its descendants: Ansible starts each task's
    worker (and so the module) in a session of its own, so the playbook's group alone is not the converge."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    groups = []
    for member in tree:
        try:
            groups.append(os.getpgid(member))
        except ProcessLookupError:
            pass
    for group in reversed(list(dict.fromkeys(groups))):  # the module's first, the playbook's last
        os.killpg(group, signal.SIGKILL)
    return tree


def _exists(kube_api, namespace, name):
    return Kube(kube_api).get_or_none(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}") is not None


def test_an_apiserver_outage_longer_than_the_timeout_mid_apply_leaves_a_true_record_and_the_next_converge_recovers(
        project, kube_api, apiserver):
    """The API server is SIGKILLed while revision 2 is being applied (its gate written, the app not yet) and stays
    away longer than the converge's timeout. The error starts with the failure itself, says which revision was
    recorded and how many objects were written, and appends the cleanups that failed after it; the record says
    no more than what is live; the next converge marks a revision left pending failed (interrupted) and
    converges."""
    assert project.converge(1)[0] == 0
    proc = project.start(2, gate=True, timeout=10, converge_auto_rollback=True)
    try:
        wait_for("revision 2 pending, its gate written", lambda: statuses(kube_api, project)[-1:] == [(2, "pending")]
                 and _exists(kube_api, project.namespace, "gate"), timeout=90)
        apiserver.kill()
        output, _errors = proc.communicate(timeout=120)
        time.sleep(15)  # away longer than the timeout of 10 s, also after the converge ended
    finally:
        apiserver.start()
        if proc.poll() is None:
            kill_process_groups(proc.pid)
            proc.communicate()
    assert proc.returncode != 0 and "Traceback" not in output, output
    message = _failure_message(output)
    first = message.splitlines()[0]
    assert "Lease" not in first and "marking" not in first, message  # a cleanup never replaces the failure
    assert "Revision 2 of release " + project.release in message, message
    assert "Written: 1 of 2 object changes." in message, message  # the gate, not yet the app
    for cleanup in ("marking revision 2 failed", "releasing the lock Lease"):
        if cleanup in message:
            assert message.index(first) < message.index("Also failed afterwards, " + cleanup), message
    assert "no revision was recorded" not in output, output
    assert "Rolled back to revision" in output or "Not rolled back: " in output, output

    after_outage = dict(statuses(kube_api, project))
    assert after_outage[2] in ("pending", "failed"), after_outage
    assert_record_tells_the_truth(kube_api, project, converge_running=True)

    wait_for_node(client.CoreV1Api(kube_api), project.node, timeout=180)  # the cluster recovers from the outage
    rc, output = project.converge(3)
    assert rc == 0, output
    revisions = history(kube_api, project.release, project.namespace)
    by_version = {r.version: r for r in revisions}
    assert by_version[2].status == "failed"
    if after_outage[2] == "pending":
        assert by_version[2].summary()["reason"] == "interrupted"
    assert revisions[-1].status == "deployed" and live_a(kube_api, project) == "3"
    assert not _exists(kube_api, project.namespace, "gate")
    assert assert_record_tells_the_truth(kube_api, project) == revisions[-1].version


def _failure_message(output):
    """The msg of the role's final `Fail with the reason` task."""
    marker = output.rindex("fatal: [localhost]: FAILED! => ")
    return json.loads(output[marker + len("fatal: [localhost]: FAILED! => "):].split("\n", 1)[0])["msg"]
