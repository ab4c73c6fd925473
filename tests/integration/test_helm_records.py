# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release records and object metadata as Helm 3 and werf write them, proven with the real `helm` binary:
a release moves from Helm to the converge role and back, release_info/release_rollback/dismiss work on records
Helm wrote, records of berth.converge 0.1 are carried on, objects get Helm's ownership metadata and werf's
annotations, existing objects are refused or adopted as werf does, and a chart's crds/ stay nobody's."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys

import pytest

from conftest import ansible_module
from gitrepo import commit, new_repo
from ansible_collections.berth.converge.plugins.module_utils.kube.release import (
    ApplyOptions,
    ReleaseRequest,
    apply_release,
    history,
)
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import Kube
from ansible_collections.berth.converge.plugins.module_utils.render import RenderOptions, render_chart

TIMEOUT = 90
WERF_VERSION = "berth.converge/0.1.0"

CHART = {
    "werf.yaml": "project: harbour\nconfigVersion: 1\n",
    ".helm/Chart.yaml": "apiVersion: v2\nname: harbour\nversion: 0.3.0\nappVersion: \"2.1\"\n",
    ".helm/values.yaml": "greeting: hello\n",
    ".helm/templates/settings.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: {{ .Values.greeting | quote }}
""",
    ".helm/templates/web.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: 127.0.0.1:5000/harbour/web:1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80}]
""",
}
OBJECTS = (("configmaps", "settings", "/api/v1"), ("deployments", "web", "/apis/apps/v1"),
           ("services", "web", "/api/v1"))


def helm(*args):
    """`helm` output; the test fails with Helm's message when it fails."""
    proc = subprocess.run(["helm", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def helm_history(release, namespace):
    """[(revision, status, chart, description)] as `helm history` shows them."""
    rows = json.loads(helm("history", release, "-n", namespace, "-o", "json"))
    return [(row["revision"], row["status"], row["chart"], row["description"]) for row in rows]


def live(kube_api, namespace, plural, name, prefix="/api/v1"):
    return Kube(kube_api).get_or_none(f"{prefix}/namespaces/{namespace}/{plural}/{name}")


def uids(kube_api, namespace):
    return {name: (live(kube_api, namespace, plural, name, prefix) or {}).get("metadata", {}).get("uid")
            for plural, name, prefix in OBJECTS}


def greeting(kube_api, namespace):
    return live(kube_api, namespace, "configmaps", "settings")["data"]["greeting"]


def release_secrets(kube_api, namespace):
    """{name: (type, labels without the times)} of the Secrets of releases in the namespace."""
    items = Kube(kube_api).request("GET", f"/api/v1/namespaces/{namespace}/secrets")["items"]

    def labels(secret):
        return {k: v for k, v in secret["metadata"].get("labels", {}).items() if k not in ("createdAt", "modifiedAt")}

    return {s["metadata"]["name"]: (s["type"], labels(s))
            for s in items if s["type"] in ("helm.sh/release.v1", "berth.converge/release.v1")}


def record(kube_api, namespace, release, version):
    """The release JSON of a revision, decoded by hand as Helm stores it: base64 (the API's) of base64 of
    gzip."""
    secret = live(kube_api, namespace, "secrets", f"sh.helm.release.v1.{release}.v{version}")
    return json.loads(gzip.decompress(base64.b64decode(base64.b64decode(secret["data"]["release"]))))


def converge(project, registry, namespace, release, **more):
    """Run the converge playbook; returns (rc, output)."""
    extra = {"converge_project_dir": str(project), "converge_repo": f"{registry}/{namespace}",
             "converge_release": release, "converge_namespace": namespace, "converge_timeout": TIMEOUT,
             "converge_env": "qa", **more}
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    proc = subprocess.run([playbook, "berth.converge.converge", "-e", json.dumps(extra)], capture_output=True,
                          text=True, check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    return proc.returncode, proc.stdout + proc.stderr


def test_release_moves_from_helm_to_the_role_and_back(tmp_path, registry, namespace, kube_api):
    project = new_repo(tmp_path / "harbour", CHART)
    release = "harbour"
    helm("upgrade", "--install", release, str(project / ".helm"), "-n", namespace, "--wait", "--timeout", "90s")
    installed = uids(kube_api, namespace)
    assert all(installed.values()), installed

    rc, output = converge(project, registry, namespace, release, converge_set={"greeting": "from-role"},
                          converge_add_labels={"team": "harbour"}, converge_add_annotations={"owner": "ops"})
    assert rc == 0, output
    assert uids(kube_api, namespace) == installed  # adopted in place: nothing recreated
    web = live(kube_api, namespace, "deployments", "web", "/apis/apps/v1")["metadata"]
    assert (web["labels"]["team"], web["annotations"]["owner"]) == ("harbour", "ops")
    assert greeting(kube_api, namespace) == "from-role"
    commit(project, {".helm/values.yaml": "greeting: second\n"}, "second")
    rc, output = converge(project, registry, namespace, release)
    assert rc == 0, output
    assert helm_history(release, namespace) == [
        (1, "superseded", "harbour-0.3.0", "Install complete"),
        (2, "superseded", "harbour-0.3.0", "Upgrade complete"),
        (3, "deployed", "harbour-0.3.0", "Upgrade complete")]
    helms, ours = (record(kube_api, namespace, release, version) for version in (1, 3))
    assert set(helms) <= set(ours) and set(helms["info"]) == set(ours["info"]), (helms.keys(), ours.keys())
    assert ours["berth"]["commit"]["hash"] and ours["chart"]["metadata"]["appVersion"] == "2.1"
    settings = live(kube_api, namespace, "configmaps", "settings")
    assert settings["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "Helm"}
    assert settings["metadata"]["annotations"] == {
        "meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace,
        "werf.io/version": WERF_VERSION, "project.werf.io/name": "harbour", "project.werf.io/env": "qa"}
    secrets = release_secrets(kube_api, namespace)
    assert secrets[f"sh.helm.release.v1.{release}.v3"] == (
        "helm.sh/release.v1", {"owner": "helm", "name": release, "status": "deployed", "version": "3"})

    # helm rollback to one of our revisions, then the role continues after it
    helm("rollback", release, "2", "-n", namespace, "--wait", "--timeout", "90s")
    assert greeting(kube_api, namespace) == "from-role"
    assert helm_history(release, namespace)[-1] == (4, "deployed", "harbour-0.3.0", "Rollback to 2")
    rc, output = converge(project, registry, namespace, release, converge_set={"greeting": "after-rollback"})
    assert rc == 0, output
    assert greeting(kube_api, namespace) == "after-rollback"
    assert [row[:2] for row in helm_history(release, namespace)] == [
        (1, "superseded"), (2, "superseded"), (3, "superseded"), (4, "superseded"), (5, "deployed")]
    assert uids(kube_api, namespace) == installed

    # back to Helm: an upgrade with the same chart, then uninstall removes what we deployed
    helm("upgrade", release, str(project / ".helm"), "-n", namespace, "--wait", "--timeout", "90s")
    assert helm_history(release, namespace)[-2:] == [
        (5, "superseded", "harbour-0.3.0", "Upgrade complete"), (6, "deployed", "harbour-0.3.0", "Upgrade complete")]
    assert greeting(kube_api, namespace) == "second" and uids(kube_api, namespace) == installed
    helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "90s")
    assert set(uids(kube_api, namespace).values()) == {None}
    assert release_secrets(kube_api, namespace) == {}


def module(name, args, localenv, **options):
    run = ansible_module(name, {"kubeconfig": localenv.kubeconfig, **args}, **options)
    return run.status, run.result


def test_release_info_rollback_and_dismiss_on_records_helm_wrote(tmp_path, namespace, kube_api, localenv):
    project = new_repo(tmp_path / "harbour", CHART)
    release = "byhelm"
    helm("install", release, str(project / ".helm"), "-n", namespace)
    helm("upgrade", release, str(project / ".helm"), "-n", namespace, "--set", "greeting=two")
    args = {"release": release, "namespace": namespace}

    status, info = module("release_info", args, localenv)
    assert status == "SUCCESS", info
    assert [(r["revision"], r["status"], r["description"], r["chart"], r["recorded_by"])
            for r in info["revisions"]] == [(1, "superseded", "Install complete", "harbour-0.3.0", "helm"),
                                            (2, "deployed", "Upgrade complete", "harbour-0.3.0", "helm")]
    assert (info["latest"], info["deployed"], info["revisions"][0]["resource_count"]) == (2, 2, 3)

    status, result = module("release_rollback", {**args, "timeout": TIMEOUT}, localenv)
    assert status == "CHANGED", result
    assert (result["rolled_back_from"], result["rolled_back_to"], result["revision"]) == (2, 1, 3)
    assert greeting(kube_api, namespace) == "hello"
    assert helm_history(release, namespace)[-1] == (3, "deployed", "harbour-0.3.0", "Rollback to 1")
    assert helm("get", "values", release, "-n", namespace, "--revision", "2", "-o", "json").strip() == \
        '{"greeting":"two"}'  # Helm's own fields of its records are kept as they were

    status, result = module("release_apply", {**args, "state": "absent"}, localenv)
    assert status == "CHANGED", result
    assert {(r["kind"], r["action"]) for r in result["resources"]} == {
        ("ConfigMap", "delete"), ("Deployment", "delete"), ("Service", "delete")}
    assert release_secrets(kube_api, namespace) == {}
    proc = subprocess.run(["helm", "status", release, "-n", namespace], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "not found" in proc.stderr


def legacy_secret(namespace, release, version, status, payload):
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "berth.converge/release.v1",
            "metadata": {"name": f"berth.release.v1.{release}.v{version}", "namespace": namespace,
                         "labels": {"owner": "berth-converge", "name": release, "version": str(version),
                                    "status": status}},
            "data": {"release": data}}


def configmap(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_records_of_berth_converge_0_1_are_carried_on(namespace, kube_api):
    """0.1 wrote berth.release.v1.* Secrets and annotated objects with berth.converge/release and Helm's
    annotations, without the managed-by label."""
    kube, release = Kube(kube_api), "old"
    old_annotations = {"berth.converge/release": release, "berth.converge/release-namespace": namespace,
                       "meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace}
    for name in ("kept", "dropped"):  # server-side applied as 0.1 applied them
        kube.request("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/{name}", {"fieldManager": "berth-converge"},
                     {**configmap(name, v="1"), "metadata": {"name": name, "annotations": old_annotations}},
                     "application/apply-patch+yaml")
    record = {"apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace}
    for version, status, names in ((1, "superseded", ["kept"]), (2, "deployed", ["kept", "dropped"])):
        payload = {"release": release, "namespace": namespace, "revision": version, "status": status,
                   "description": "install" if version == 1 else "upgrade", "reason": None,
                   "manifests": [configmap(n, v="1") for n in names], "images": [], "resources":
                   [dict(record, name=n) for n in names], "commit": {"hash": f"{version}" * 40},
                   "time": f"2024-05-0{version}T10:00:00Z", "updated": None, "berth_version": "0.1.0"}
        kube.request("POST", f"/api/v1/namespaces/{namespace}/secrets",
                     body=legacy_secret(namespace, release, version, status, payload))
    assert [(r.version, r.status, r.legacy) for r in history(kube_api, release, namespace)] == [
        (1, "superseded", True), (2, "deployed", True)]

    result = apply_release(kube_api, release, namespace, ReleaseRequest([configmap("kept", v="2")]),
                           ApplyOptions(timeout=TIMEOUT))
    assert result["revision"] == 3
    assert {(r["name"], r["action"]) for r in result["resources"]} == {("kept", "update"), ("dropped", "delete")}
    assert release_secrets(kube_api, namespace) == {  # converted to Helm's records, the old Secrets gone
        f"sh.helm.release.v1.{release}.v{v}": (
            "helm.sh/release.v1", {"owner": "helm", "name": release, "version": str(v), "status": s})
        for v, s in ((1, "superseded"), (2, "superseded"), (3, "deployed"))}
    assert helm_history(release, namespace) == [
        (1, "superseded", f"{release}-0.0.0", "Install complete"),
        (2, "superseded", f"{release}-0.0.0", "Upgrade complete"),
        (3, "deployed", f"{release}-0.0.0", "Upgrade complete")]
    assert history(kube_api, release, namespace)[1].payload["commit"] == {"hash": "2" * 40}
    kept = live(kube_api, namespace, "configmaps", "kept")
    assert kept["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "Helm"}
    assert "berth.converge/release" not in kept["metadata"]["annotations"]


HOOK = {"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "hook", "annotations": {"helm.sh/hook": "pre-install,pre-upgrade",
                                                     "helm.sh/hook-delete-policy": "before-hook-creation"}},
        "data": {"a": "b"}}


def test_metadata_of_werf_and_helm_and_adoption(namespace, kube_api, localenv):
    kube = Kube(kube_api)
    unowned = {**configmap("unowned", v="hand"), "metadata": {"name": "unowned", "labels": {"by": "hand"}}}
    kube.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", {"fieldManager": "kubectl-create"}, unowned)
    ours = {"name": "ours", "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "meta", "meta.helm.sh/release-namespace": namespace}}
    kube.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body={**configmap("ours"), "metadata": ours})
    manifests = [configmap("fresh", v="1"), HOOK, configmap("ours", v="1"), configmap("unowned", v="chart")]
    args = {"release": "meta", "namespace": namespace, "manifests": manifests, "project": "harbour", "env": "qa",
            "add_labels": {"team": "payments"}, "add_annotations": {"ci.example.com/pipeline": 42}}

    status, result = module("release_apply", args, localenv)
    assert status == "FAILED!"
    assert ('ConfigMap "unowned" in namespace "' + namespace + '" exists and cannot be imported into the current '
            "release: invalid ownership metadata; label validation error: missing key "
            "'app.kubernetes.io/managed-by': must be set to 'Helm'") in result["msg"], result["msg"]
    assert "fresh" not in result["msg"] and "ConfigMap \"ours\"" not in result["msg"]
    assert live(kube_api, namespace, "configmaps", "fresh") is None  # nothing applied
    assert live(kube_api, namespace, "configmaps", "unowned")["data"] == {"v": "hand"}

    status, result = module("release_apply", {**args, "force_adoption": True}, localenv)
    assert status == "CHANGED", result
    werf = {"werf.io/version": WERF_VERSION, "project.werf.io/name": "harbour", "project.werf.io/env": "qa",
            "ci.example.com/pipeline": "42"}
    helm_owned = {"meta.helm.sh/release-name": "meta", "meta.helm.sh/release-namespace": namespace}
    for name, labels in (("fresh", {}), ("ours", {}), ("unowned", {"by": "hand"})):
        metadata = live(kube_api, namespace, "configmaps", name)["metadata"]
        assert metadata["labels"] == {**labels, "team": "payments", "app.kubernetes.io/managed-by": "Helm"}, name
        assert metadata["annotations"] == {**werf, **helm_owned}, name
    hook = live(kube_api, namespace, "configmaps", "hook")["metadata"]
    assert hook["labels"] == {"team": "payments"}  # no ownership metadata on hooks, as Helm
    assert hook["annotations"] == {**HOOK["metadata"]["annotations"], **werf}

    assert history(kube_api, "meta", namespace)[-1].manifests == manifests  # as given, the hook in its place
    status, result = module("release_apply", args, localenv)  # adopted: the next run needs no option
    assert status == "SUCCESS" and not result["changed"], result

    other = {**args, "release": "other", "manifests": [configmap("fresh", v="2")]}
    status, result = module("release_apply", other, localenv)
    assert status == "FAILED!" and "it belongs to release meta in namespace" in result["msg"], result


CRD_CHART = {
    "werf.yaml": "project: crds\nconfigVersion: 1\n",
    ".helm/Chart.yaml": "apiVersion: v2\nname: crds\nversion: 0.1.0\n",
    ".helm/crds/widgets.yaml": "",  # filled in with the test's unique group
    ".helm/charts/sub/Chart.yaml": "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
    ".helm/charts/sub/crds/gadgets.yaml": "",
    ".helm/templates/widget.yaml": """\
apiVersion: {{ .Values.group }}/v1
kind: Widget
metadata:
  name: {{ .Release.Name }}
spec: {size: 1}
""",
}


def crd(group, kind):
    plural = kind.lower() + "s"
    return f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  names: {{kind: {kind}, plural: {plural}, singular: {kind.lower()}}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


@pytest.fixture
def crd_group(kube_api):
    group = f"c{os.urandom(4).hex()}.berth.test"
    yield group
    for plural in ("widgets", "gadgets"):
        Kube(kube_api).request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}")


def test_crds_of_the_chart_belong_to_no_release(tmp_path, namespace, kube_api, crd_group, helm_bin):
    files = {**CRD_CHART, ".helm/crds/widgets.yaml": crd(crd_group, "Widget"),
             ".helm/charts/sub/crds/gadgets.yaml": crd(crd_group, "Gadget"),
             ".helm/values.yaml": f"group: {crd_group}\n"}
    project = new_repo(tmp_path / "crds", files)
    kube, path = Kube(kube_api), "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    results = {}
    for release in ("first", "second"):
        rendered = render_chart(RenderOptions(project_dir=str(project), helm_binary=helm_bin, release=release,
                                              namespace=namespace))
        assert {c["metadata"]["name"] for c in rendered["crds"]} == {f"widgets.{crd_group}", f"gadgets.{crd_group}"}
        request = ReleaseRequest(rendered["manifests"], crds=rendered["crds"], chart=rendered["chart"])
        results[release] = apply_release(kube_api, release, namespace, request, ApplyOptions(timeout=TIMEOUT))
    assert {(r["kind"], r["action"]) for r in results["first"]["resources"]} == {
        ("CustomResourceDefinition", "create"), ("Widget", "create")}
    assert {(r["kind"], r["action"]) for r in results["second"]["resources"]} == {
        ("CustomResourceDefinition", "unchanged"), ("Widget", "create")}
    for plural in ("widgets", "gadgets"):
        metadata = kube.request("GET", f"{path}/{plural}.{crd_group}")["metadata"]
        assert not metadata.get("labels") and not metadata.get("annotations"), metadata
    assert all("CustomResourceDefinition" not in helm("get", "manifest", release, "-n", namespace)
               for release in ("first", "second"))

    apply_release(kube_api, "first", namespace, ReleaseRequest([]), ApplyOptions(timeout=TIMEOUT))  # prunes all
    # a release installed by berth.converge: helm upgrades it with the same chart, then uninstalls it
    helm("upgrade", "second", str(project / ".helm"), "-n", namespace)
    assert [row[:3] for row in helm_history("second", namespace)] == [
        (1, "superseded", "crds-0.1.0"), (2, "deployed", "crds-0.1.0")]
    helm("uninstall", "second", "-n", namespace)
    for plural in ("widgets", "gadgets"):
        assert kube.get_or_none(f"{path}/{plural}.{crd_group}") is not None  # never deleted
