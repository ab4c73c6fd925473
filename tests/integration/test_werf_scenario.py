# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A werf-style converge scenario through the role, from install to a failing hook, with `helm history` as the
judge: a root chart with a subchart and its own subchart (werf values exported down both levels), a chart used
twice under aliases (one disabled by its condition), a dependency pulled from the local OCI registry, CRDs in
the root and the subchart, hooks, and values from every source (values.yaml, a values file, werf secret values
encrypted by werf's own code, --set, --set-string, werf's own values). Then an upgrade after a by-hand
`kubectl edit`, a failing upgrade rolled back automatically, and a failing pre-upgrade hook."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from test_chart_dependencies import ChartSources, subchart
from test_drift import kubectl
from test_helm_records import WERF_VERSION, converge, crd, helm_history, live
from test_secret_values import KEY, werf_encrypt_yaml
from gitrepo import commit, new_repo
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import Kube

RELEASE = "voyage"
CHART_VERSION = "voyage-1.0.0"
SECRET = "s3cret-from-werf"


def root_chart(oci):
    return {
        "apiVersion": "v2", "name": "voyage", "version": "1.0.0",
        "dependencies": [
            {"name": "sub", "version": "0.1.0", "export-values": [{"parent": "werf", "child": "werf"}]},
            {"name": "leaf", "alias": "extra", "version": "0.1.0", "repository": "file://../shared/leaf"},
            {"name": "leaf", "alias": "spare", "version": "0.1.0", "repository": "file://../shared/leaf",
             "condition": "spare.enabled"},
            {"name": "queue", "version": "0.2.0", "repository": oci},
        ],
    }


def files_of(group, oci):
    values = {"source": {name: "values.yaml" for name in ("chart", "file", "secret", "set", "setString")},
              "replicas": 2, "webLabels": {}, "migrateLabels": {}, "spare": {"enabled": False}}
    files = {
        "werf.yaml": "project: voyage\nconfigVersion: 1\n---\n",  # werf accepts the trailing empty document
        ".helm/Chart.yaml": yaml.safe_dump(root_chart(oci)),
        ".helm/values.yaml": yaml.safe_dump(values),
        ".helm/secret-values.yaml": werf_encrypt_yaml(f"source:\n  secret: {SECRET}\n", KEY),
        "deploy/values-qa.yaml": "source:\n  file: values-qa.yaml\n",
        ".helm/crds/voyages.yaml": crd(group, "Voyage"),
        ".helm/templates/NOTES.txt": "Voyage {{ .Release.Name }} is at revision {{ .Release.Revision }}.\n",
        ".helm/templates/settings.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  chart: {{ .Values.source.chart | quote }}
  file: {{ .Values.source.file | quote }}
  secret: {{ .Values.source.secret | quote }}
  set: {{ .Values.source.set | quote }}
  setString: {{ .Values.source.setString | kindOf | printf "%s:%s" .Values.source.setString | quote }}
  env: {{ .Values.werf.env | quote }}
  project: {{ .Values.werf.name | quote }}
  release: {{ printf "%d/%t/%t" .Release.Revision .Release.IsInstall .Release.IsUpgrade | quote }}
""",
        ".helm/templates/voyage.yaml": f"""\
apiVersion: {group}/v1
kind: Voyage
metadata:
  name: maiden
spec: {{size: {{{{ .Values.replicas }}}}}}
""",
        ".helm/templates/web.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels:
        app: web
        {{- with .Values.webLabels }}{{ toYaml . | nindent 8 }}{{ end }}
    spec:
      containers:
      - name: web
        image: 127.0.0.1:5000/voyage/web:1
        env: [{name: SOURCE, value: {{ .Values.source.set | quote }}}]
""",
        ".helm/templates/migrate.yaml": """\
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    helm.sh/hook: pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  backoffLimit: 0
  template:
    metadata:
      labels:
        {{- toYaml (merge (dict "job" "migrate") .Values.migrateLabels) | nindent 8 }}
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: 127.0.0.1:5000/voyage/migrate:1
""",
        ".helm/templates/welcome.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: welcome
  annotations:
    helm.sh/hook: post-install
data:
  revision: {{ .Release.Revision | quote }}
""",
        ".helm/charts/sub/Chart.yaml": yaml.safe_dump({
            "apiVersion": "v2", "name": "sub", "version": "0.1.0",
            "dependencies": [{"name": "subsub", "version": "0.1.0",
                              "export-values": [{"parent": "werf", "child": "werf"}]}]}),
        ".helm/charts/sub/crds/cargos.yaml": crd(group, "Cargo"),
        ".helm/charts/sub/templates/sub.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: sub
data:
  env: {{ .Values.werf.env | quote }}
  global: {{ .Values.global.env | quote }}
""",
        ".helm/charts/sub/charts/subsub/Chart.yaml": "apiVersion: v2\nname: subsub\nversion: 0.1.0\n",
        ".helm/charts/sub/charts/subsub/templates/subsub.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: subsub
data:
  env: {{ .Values.werf.env | quote }}
  unix: {{ .Values.werf.commit.date.unix | quote }}
""",
    }
    files.update({  # used twice under aliases: .Chart.Name is the alias
        "shared/leaf/Chart.yaml": "apiVersion: v2\nname: leaf\nversion: 0.1.0\n",
        "shared/leaf/values.yaml": "colour: teal\n",
        "shared/leaf/templates/leaf.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leaf-{{ .Chart.Name }}\n"
                                           "data:\n  colour: {{ .Values.colour | quote }}\n"})
    return files


@pytest.fixture
def oci_queue(tmp_path, helm_bin, registry):
    """The queue chart pushed with `helm push` to the local OCI registry."""
    published = ChartSources(tmp_path, helm_bin, registry)
    published.push_oci(subchart("queue", "0.2.0", "settings:\n  size: 3\n"), "queue")
    return published.oci


@pytest.fixture
def crd_group(kube_api):
    group = f"v{os.urandom(4).hex()}.berth.test"
    yield group
    for plural in ("voyages", "cargos"):
        Kube(kube_api).request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}")


def role(project, registry, namespace, set_values=None, set_strings=None, **more):
    """The converge role with values from every source; the test's own --set values go on top."""
    return converge(project, registry, namespace, RELEASE, converge_values_files=["deploy/values-qa.yaml"],
                    converge_secret_key=KEY, converge_set={"source.set": "set", **(set_values or {})},
                    converge_set_string={"source.setString": "0123", **(set_strings or {})},
                    converge_add_labels={"team": "ops"}, converge_add_annotations={"ci.example.com/pipeline": "7"},
                    **more)


def configmap(kube_api, namespace, name):
    return live(kube_api, namespace, "configmaps", name)


def data(kube_api, namespace):
    return {name: (configmap(kube_api, namespace, name) or {}).get("data")
            for name in ("settings", "sub", "subsub", "leaf-extra", "leaf-spare", "values-queue")}


def deployment(kube_api, namespace):
    return live(kube_api, namespace, "deployments", "web", "/apis/apps/v1")


def uids(kube_api, namespace):
    names = ("settings", "sub", "subsub", "leaf-extra", "values-queue")
    return ({name: configmap(kube_api, namespace, name)["metadata"]["uid"] for name in names},
            deployment(kube_api, namespace)["metadata"]["uid"])


def test_a_werf_style_release_from_install_to_a_failing_hook(tmp_path, registry, namespace, kube_api, crd_group,
                                                             oci_queue, helm_bin):
    project = new_repo(tmp_path / "voyage", files_of(crd_group, oci_queue))

    # install
    rc, output = role(project, registry, namespace)
    assert rc == 0, output
    assert "Voyage voyage is at revision 1." in output  # NOTES.txt
    live_data = data(kube_api, namespace)
    assert live_data["settings"] == {
        "chart": "values.yaml", "file": "values-qa.yaml", "secret": SECRET, "set": "set",
        "setString": "0123:string", "env": "qa", "project": "voyage", "release": "1/true/false"}
    assert live_data["sub"] == {"env": "qa", "global": "qa"}
    subsub = live_data["subsub"]
    assert subsub["env"] == "qa" and subsub["unix"].isdigit(), subsub  # an integer at the second level too
    assert live_data["leaf-extra"] == {"colour": "teal"}  # the aliased chart
    assert live_data["leaf-spare"] is None  # the alias disabled by its condition renders nothing
    assert json.loads(live_data["values-queue"]["values"])["settings"] == {"size": 3}  # from the OCI registry
    assert configmap(kube_api, namespace, "welcome")["data"] == {"revision": "1"}  # the post-install hook ran

    owned = {"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": namespace}
    werf = {"werf.io/version": WERF_VERSION, "project.werf.io/name": "voyage", "project.werf.io/env": "qa",
            "ci.example.com/pipeline": "7"}
    for name in ("settings", "sub", "subsub", "leaf-extra", "values-queue"):
        metadata = configmap(kube_api, namespace, name)["metadata"]
        assert metadata["labels"] == {"app.kubernetes.io/managed-by": "Helm", "team": "ops"}, name
        assert metadata["annotations"] == {**owned, **werf}, name
    hook = configmap(kube_api, namespace, "welcome")["metadata"]
    assert hook["labels"] == {"team": "ops"}  # a hook carries no ownership metadata, as in Helm
    assert hook["annotations"] == {"helm.sh/hook": "post-install", **werf}
    voyage = live(kube_api, namespace, "voyages", "maiden", f"/apis/{crd_group}/v1")
    assert voyage["spec"] == {"size": 2} and voyage["metadata"]["annotations"] == {**owned, **werf}
    for plural in ("voyages", "cargos"):  # CRDs of crds/ (root and subchart) belong to no release
        crd_metadata = Kube(kube_api).request(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{crd_group}")["metadata"]
        assert not crd_metadata.get("labels") and not crd_metadata.get("annotations"), crd_metadata
    assert helm_history(RELEASE, namespace) == [(1, "deployed", CHART_VERSION, "Install complete")]
    installed = uids(kube_api, namespace)

    # an upgrade after a by-hand `kubectl edit`: the edit is reset, nothing is recreated, the hook runs
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i -e 's/^  labels:$/  labels:\\n    edited: \"yes\"/' "
                      "-e 's/^  replicas: 2$/  replicas: 5/' \"$1\"\n")
    editor.chmod(0o755)
    kubectl(namespace, "edit", "deployment/web", env={"KUBE_EDITOR": str(editor)})
    edited = deployment(kube_api, namespace)
    assert edited["spec"]["replicas"] == 5 and edited["metadata"]["labels"]["edited"] == "yes"
    commit(project, {".helm/values.yaml": (project / ".helm/values.yaml").read_text().replace(
        "chart: values.yaml", "chart: values.yaml v2")}, "second")
    rc, output = role(project, registry, namespace)
    assert rc == 0, output
    assert "Voyage voyage is at revision 2." in output
    web = deployment(kube_api, namespace)
    assert web["spec"]["replicas"] == 2 and "edited" not in web["metadata"]["labels"], web["metadata"]
    assert web["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "Helm", "team": "ops"}
    assert {k: v for k, v in web["metadata"]["annotations"].items()
            if k != "deployment.kubernetes.io/revision"} == {**owned, **werf}  # the controller's key stays
    settings = data(kube_api, namespace)["settings"]
    assert (settings["chart"], settings["release"]) == ("values.yaml v2", "2/false/true")
    assert uids(kube_api, namespace) == installed
    assert Kube(kube_api).get_or_none(f"/apis/batch/v1/namespaces/{namespace}/jobs/migrate") is not None
    assert helm_history(RELEASE, namespace) == [(1, "superseded", CHART_VERSION, "Install complete"),
                                                (2, "deployed", CHART_VERSION, "Upgrade complete")]

    # a failing upgrade (its pods crash) is rolled back to revision 2
    rc, output = role(project, registry, namespace, {"source.set": "crashing"},
                      {"webLabels.berth\\.test/fail": "CrashLoopBackOff"}, converge_auto_rollback=True,
                      converge_timeout=60)
    assert rc != 0 and "CrashLoopBackOff" in output, output
    assert "\nRolled back to revision 2." in output, output
    assert data(kube_api, namespace)["settings"]["set"] == "set"
    assert deployment(kube_api, namespace)["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "SOURCE", "value": "set"}]
    assert [row[:2] for row in helm_history(RELEASE, namespace)] == [
        (1, "superseded"), (2, "superseded"), (3, "failed"), (4, "deployed")]
    assert helm_history(RELEASE, namespace)[3][3] == "Rollback to 2"
    assert uids(kube_api, namespace) == installed

    # a failing pre-upgrade hook: nothing of the new revision is applied; revision 4 stays deployed
    rc, output = role(project, registry, namespace, {"source.set": "unreached"},
                      {"migrateLabels.berth\\.test/fail": "Error"})
    assert rc != 0, output
    assert f"pre-upgrade hook Job/{namespace}/migrate failed" in output, output
    assert data(kube_api, namespace)["settings"]["set"] == "set"
    assert [row[:2] for row in helm_history(RELEASE, namespace)] == [
        (1, "superseded"), (2, "superseded"), (3, "failed"), (4, "deployed"), (5, "failed")]
    assert uids(kube_api, namespace) == installed

    # and the next good converge continues after it
    rc, output = role(project, registry, namespace)
    assert rc == 0, output
    assert [row[:2] for row in helm_history(RELEASE, namespace)][-2:] == [(5, "failed"), (6, "deployed")]
    assert uids(kube_api, namespace) == installed
