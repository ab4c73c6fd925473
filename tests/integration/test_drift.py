# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""By-hand drift made with the real kubectl (scale, patch, edit, annotate, client-side apply) and what a
converge resets, as werf resets it: what the chart sets comes back; keys added with `kubectl edit` go; keys
other managers added, and fields controllers set, stay."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import run_module

RELEASE = "drift"


def deployment(env_value="1", labels=None):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", **(labels or {})}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "berth.local/web:1",
                                                           "env": [{"name": "A", "value": env_value}]}]}}}}


def converge(localenv, namespace, manifests, **more):
    result, output = run_module("release_apply", {"manifests": manifests, "release": RELEASE, "namespace": namespace,
                                                  "kubeconfig": localenv.kubeconfig, **more})
    assert not result.get("failed"), output
    return result


def kubectl(namespace, *args, env=None, stdin=None):
    done = subprocess.run(["kubectl", "-n", namespace, *args], capture_output=True, text=True, input=stdin,
                          env={**os.environ, **(env or {})}, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def live(namespace):
    return json.loads(kubectl(namespace, "get", "deployment", "web", "-o", "json"))


def test_a_converge_resets_drift_as_werf_does(localenv, namespace, tmp_path):
    converge(localenv, namespace, [deployment()])
    uid = live(namespace)["metadata"]["uid"]

    kubectl(namespace, "scale", "deployment/web", "--replicas=5")
    kubectl(namespace, "patch", "deployment/web", "--type=merge", "-p",
            json.dumps({"metadata": {"labels": {"patched": "yes"}}}))
    kubectl(namespace, "patch", "deployment/web", "--type=json", "-p",
            json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value", "value": "9"}]))
    kubectl(namespace, "annotate", "deployment/web", "byhand=1")
    editor = tmp_path / "editor.sh"  # what a person does in `kubectl edit`: add a label, change the image
    editor.write_text("#!/bin/sh\nsed -i -e 's/^  labels:$/  labels:\\n    edited: \"yes\"/' "
                      "-e 's#image: berth.local/web:1#image: berth.local/web:edited#' \"$1\"\n")
    editor.chmod(0o755)
    kubectl(namespace, "edit", "deployment/web", env={"KUBE_EDITOR": str(editor)})
    client_side = deployment(labels={"client-side": "yes"})
    client_side["metadata"]["namespace"] = namespace
    client_side["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "7"
    del client_side["spec"]["replicas"]  # keep the scale's 5
    kubectl(namespace, "apply", "-f", "-", stdin=json.dumps(client_side))
    drifted = live(namespace)
    assert drifted["spec"]["replicas"] == 5 and drifted["metadata"]["labels"]["edited"] == "yes"
    assert drifted["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "7"

    result = converge(localenv, namespace, [deployment()])
    assert [(r["name"], r["action"]) for r in result["resources"]] == [("web", "update")]
    after = live(namespace)
    assert after["metadata"]["uid"] == uid  # updated in place, never recreated
    assert after["spec"]["replicas"] == 2  # kubectl scale reset
    container = after["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "A", "value": "1"}]  # kubectl patch and client-side apply reset
    assert container["image"] == "berth.local/web:1"  # kubectl edit reset
    labels = after["metadata"]["labels"]
    assert "edited" not in labels  # a key added with kubectl edit is removed, as werf removes it
    assert labels["patched"] == "yes" and labels["client-side"] == "yes"  # other managers' own keys stay, as in werf
    assert after["metadata"]["annotations"]["byhand"] == "1"
    assert "deployment.kubernetes.io/revision" in after["metadata"]["annotations"]  # the controller's field stays

    again = converge(localenv, namespace, [deployment()])
    assert [(r["name"], r["action"]) for r in again["resources"]] == [("web", "unchanged")]
    assert again["changed"] is False


def test_without_force_a_by_hand_scale_is_a_conflict_naming_the_option(localenv, namespace):
    converge(localenv, namespace, [deployment()])
    kubectl(namespace, "scale", "deployment/web", "--replicas=3")
    result, output = run_module("release_apply", {"manifests": [deployment()], "release": RELEASE,
                                                  "namespace": namespace, "kubeconfig": localenv.kubeconfig,
                                                  "force_conflicts": False})
    assert result["failed"], output
    assert "conflict" in result["msg"].lower() and ".spec.replicas" in result["msg"], result["msg"]
    assert live(namespace)["spec"]["replicas"] == 3
