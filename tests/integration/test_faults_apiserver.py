# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API server goes away while modules run: they retry, reconnect their watches, and say clearly when it
stays away past their timeout.

These tests stop the kube-apiserver of the environment that BERTH_LOCALENV_DIR names (hack/localenv stop/start)
and always start it again: run them only on an environment nobody else uses at the same time.
"""

from __future__ import annotations

import re
import subprocess
import time

from conftest import ansible_command, ansible_module, module_run_of
from ansible_collections.berth.converge.plugins.module_utils.kube.release import history
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import Kube

RELEASE = "faults"


def start_module(module, args):
    command, env = ansible_command(module, args)
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, seconds):
    stdout, stderr = proc.communicate(timeout=seconds)
    return module_run_of(stdout, stderr, proc.returncode)


def wait_until(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.1)


def deployment(name, weight=None, node_selector=None):
    annotations = {"werf.io/weight": str(weight)} if weight is not None else {}
    pod_spec = {"containers": [{"name": "main", "image": "127.0.0.1:5000/faults/app:1"}]}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "annotations": annotations},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name}}, "spec": pod_spec}}}


def label_node(kube, label, value):
    """Set (value None: remove) a label of the first kwok node."""
    kube.request("PATCH", "/api/v1/nodes/kwok-node-0", body={"metadata": {"labels": {label: value}}},
                 content_type="application/merge-patch+json")


def configmap(name, weight):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "annotations": {"werf.io/weight": str(weight)}}, "data": {"name": name}}


def test_apply_survives_a_60s_apiserver_outage_in_the_middle(kube_api, namespace, localenv, apiserver):
    """The Deployment (weight 0) must be ready before the ConfigMaps (weight 10) are written; its pods need a
    node label that no node has yet. So once the Deployment exists the revision is recorded, part of the release
    written, and release_apply waits: the API server dies then, for 60 s. Once it is back the label is set; the
    apply (timeout 300 s) must then complete: its watches reconnected, its lock and its writes retried."""
    label = f"berth.test/faults-{namespace[-6:]}"
    manifests = [deployment("web", weight=0, node_selector={label: "yes"})] + [
        configmap(f"settings-{n}", weight=10) for n in range(20)]
    kube = Kube(kube_api)
    proc = start_module("release_apply", {"manifests": manifests, "release": RELEASE, "namespace": namespace,
                                          "kubeconfig": localenv.kubeconfig, "timeout": 300})
    try:
        wait_until(lambda: kube.get_or_none(f"/apis/apps/v1/namespaces/{namespace}/deployments/web"), 90,
                   "the Deployment of the first weight group being written")
        apiserver.kill()
        down_at = time.monotonic()
        time.sleep(60)
        assert proc.poll() is None, "release_apply ended while the API server was down"
        apiserver.start()
        label_node(kube, label, "yes")
        run = finish(proc, 200)
        outage = time.monotonic() - down_at
    finally:
        apiserver.start()
        label_node(kube, label, None)
        if proc.poll() is None:
            proc.kill()
    assert run.status == "CHANGED", run.output
    assert "Traceback" not in run.output
    assert run.result["revision"] == 1
    assert sorted(r["name"] for r in run.result["resources"]) == sorted(m["metadata"]["name"] for m in manifests)
    for name in (m["metadata"]["name"] for m in manifests[1:]):
        assert kube.get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/{name}")["data"] == {"name": name}
    # the weight-0 Deployment was seen ready (2 of 2) before weight 10 was written; read from the run, since
    # the node controller may mark the pods unready again later while it recovers from the outage
    assert any(f"Deployment/{namespace}/web ready after" in line and "2 of 2 replicas ready" in line
               for line in run.result["progress"]), run.result["progress"]
    revisions = history(kube_api, RELEASE, namespace)
    assert [(r.version, r.status) for r in revisions] == [(1, "deployed")]
    assert outage >= 60


def test_apiserver_down_past_the_timeout_is_a_clear_error(kube_api, namespace, localenv, apiserver):
    try:
        apiserver.kill()
        run = ansible_module("release_apply", {
            "manifests": [configmap("settings", 0)], "release": RELEASE, "namespace": namespace,
            "kubeconfig": localenv.kubeconfig, "timeout": 15})
    finally:
        apiserver.start()
    assert run.status == "FAILED!" and "Traceback" not in run.output, run.output
    message = run.result["msg"]
    found = re.fullmatch(rf"the Kubernetes API server at {re.escape(apiserver.url)} did not answer GET "
                         rf"/api/v1/namespaces/{namespace}: retried for (\d+) s \((\d+) attempts\); "
                         r"last error: Connection refused", message)
    assert found, message
    assert int(found.group(1)) >= 14 and int(found.group(2)) > 3
    assert run.result["api_server"] == apiserver.url
    assert Kube(kube_api).get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/settings") is None
    assert history(kube_api, RELEASE, namespace) == []


def test_track_reconnects_its_watches_after_a_20s_apiserver_stop(kube_api, namespace, localenv, apiserver, tmp_path):
    """The Deployment is created only after the outage, so only watches that reconnected can see it ready."""
    progress = tmp_path / "progress.log"
    web = dict(deployment("web"), metadata={"name": "web", "namespace": namespace})
    proc = start_module("release_track", {"resources": [web], "namespace": namespace, "timeout": 110,
                                          "kubeconfig": localenv.kubeconfig, "progress_file": str(progress)})
    try:
        wait_until(lambda: progress.exists() and "tracking 1 resource" in progress.read_text(), 90,
                   "release_track opening its watches")
        apiserver.kill()
        time.sleep(20)
        apiserver.start()
        Kube(kube_api).request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=web)
        run = finish(proc, 120)
    finally:
        apiserver.start()
        if proc.poll() is None:
            proc.kill()
    assert run.status == "SUCCESS", run.output
    [result] = run.result["resources"]
    assert (result["kind"], result["name"], result["ready"]) == ("Deployment", "web", True), result
    lines = progress.read_text()
    assert f"lost the API server at {apiserver.url}" in lines
    assert f"reconnected to the API server at {apiserver.url}; watching again" in lines
    assert lines.index("lost the API server") < lines.index("reconnected") < lines.index(
        f"Deployment/{namespace}/web ready after")
