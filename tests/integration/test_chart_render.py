# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""chart_render against the real helm binary and real Git repositories."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from kubernetes import client

from conftest import run_module
from gitrepo import commit, git, new_repo, write
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.render import RenderOptions, render_chart

REGISTRY = "127.0.0.1:5000/shop"
IMAGES = [
    {"name": name, "digest": digit * 64, "tag": digit * 64, "repo": f"{REGISTRY}/{name}",
     "ref": f"{REGISTRY}/{name}:{digit * 64}"}
    for name, digit in (("backend", "1"), ("frontend", "2"))
]
BACKEND_REF = IMAGES[0]["ref"]
AUTHOR_DATE = "2022-01-21T18:51:39+03:00"

CHART = {
    "werf.yaml": "project: shop\nconfigVersion: 1\n",
    ".helm/Chart.yaml": "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
    ".helm/values.yaml": "replicas: 1\ngreeting: chart-default\nextra:\n  flag: false\n",
    ".helm/templates/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: backend
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: backend}
  template:
    metadata:
      labels: {app: backend}
    spec:
      containers:
        - name: backend
          image: {{ tuple "backend" . | include "werf_image" }}
""",
    ".helm/templates/settings.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  backend: {{ index .Values.werf.image "backend" | quote }}
  frontendTag: {{ .Values.werf.tag.frontend | quote }}
  env: {{ .Values.werf.env | quote }}
  namespace: {{ .Values.werf.namespace | quote }}
  repo: {{ .Values.werf.repo | quote }}
  commit: {{ .Values.werf.commit.hash | quote }}
  human: {{ .Values.werf.commit.date.human | quote }}
  unix: {{ .Values.werf.commit.date.unix | quote }}
  unixType: {{ kindOf .Values.werf.commit.date.unix | quote }}
  greeting: {{ .Values.greeting | quote }}
  flag: {{ .Values.extra.flag | quote }}
  flagType: {{ kindOf .Values.extra.flag | quote }}
  text: {{ .Values.extra.text | quote }}
  textType: {{ kindOf .Values.extra.text | quote }}
  list: {{ .Values.extra.list | toJson | quote }}
  csv: {{ .Values.extra.csv | quote }}
  release: {{ .Release.Name | quote }}
""",
    ".helm/templates/migrate.yaml": """\
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    werf.io/weight: "-5"
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: {{ index .Values.werf.image "backend" }}
""",
    ".helm/templates/extra.yaml.j2": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: from-jinja
  annotations:
    werf.io/weight: "3"
data:
  image: "{{ werf_image('frontend') }}"
  env: "{{ Values.werf.env }}"
  greeting: "{{ Values.greeting }}"
""",
    ".helm/crds/widgets.yaml": """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
""",
    ".helm/charts/worker/Chart.yaml": "apiVersion: v2\nname: worker\nversion: 0.1.0\n",
    ".helm/charts/worker/templates/worker.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: worker
data:
  ref: {{ .Values.global.werf.images.backend.ref | quote }}
  registry: {{ .Values.global.werf.images.backend.registry | quote }}
  repository: {{ .Values.global.werf.images.backend.repository | quote }}
  viaHelper: {{ tuple "frontend" . | include "werf_image" | quote }}
  env: {{ .Values.global.env | quote }}
""",
    "deploy/values-qa.yaml": "greeting: from-values-file\nreplicas: 2\nwerf:\n  env: not-werfs-env\n",
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_AUTHOR_DATE", AUTHOR_DATE)  # werf's commit date is the author date
    return new_repo(tmp_path / "shop", CHART, "initial chart")


def render(project, helm_bin, **kwargs):
    kwargs.setdefault("images", IMAGES)
    kwargs.setdefault("env", "qa")
    return render_chart(RenderOptions(project_dir=str(project), helm_binary=helm_bin, **kwargs))


def by_name(manifests):
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def test_renders_helm_and_jinja_with_werf_values_in_apply_order(project, helm_bin):
    result = render(project, helm_bin, values_files=["deploy/values-qa.yaml"],
                    set_values={"replicas": 3, "extra.flag": True, "extra.list": [1.5, "a,b"]},
                    set_string_values={"extra.text": 42, "extra.csv": "a,b\\c"})

    assert (result["release"], result["namespace"]) == ("shop-qa", "shop-qa")
    assert result["commit"]["hash"] == git(project, "rev-parse", "HEAD")
    kinds = [(m["kind"], m["metadata"]["name"]) for m in result["manifests"]]
    # crds/ apart, as Helm keeps them
    assert [(m["kind"], m["metadata"]["name"]) for m in result["crds"]] == [
        ("CustomResourceDefinition", "widgets.example.com")]
    assert result["chart"] == {"name": "shop", "version": "0.1.0", "appVersion": None}
    assert kinds[0] == ("Job", "migrate")
    assert kinds[-1] == ("ConfigMap", "from-jinja")
    assert sorted(kinds[1:-1]) == [("ConfigMap", "settings"), ("ConfigMap", "worker"), ("Deployment", "backend")]

    objects = by_name(result["manifests"])
    deployment = objects[("Deployment", "backend")]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == BACKEND_REF
    assert objects[("Job", "migrate")]["spec"]["template"]["spec"]["containers"][0]["image"] == BACKEND_REF
    assert objects[("ConfigMap", "settings")]["data"] == {
        "backend": BACKEND_REF,
        "frontendTag": "2" * 64,
        "env": "qa",
        "namespace": "shop-qa",
        "repo": REGISTRY,
        "commit": result["commit"]["hash"],
        "human": "2022-01-21 18:51:39 +0300 +0300",
        "unix": "1642780299",
        "unixType": "int64",
        "greeting": "from-values-file",
        "flag": "true",
        "flagType": "bool",
        "text": "42",
        "textType": "string",
        "list": '[1.5,"a,b"]',
        "csv": "a,b\\c",
        "release": "shop-qa",
    }
    assert objects[("ConfigMap", "worker")]["data"] == {
        "ref": BACKEND_REF, "registry": "127.0.0.1:5000", "repository": "shop/backend",
        "viaHelper": IMAGES[1]["ref"], "env": "qa"}
    assert objects[("ConfigMap", "from-jinja")]["data"] == {
        "image": IMAGES[1]["ref"], "env": "qa", "greeting": "from-values-file"}
    assert all(set(m) <= {"apiVersion", "kind", "metadata", "spec", "data"} for m in result["manifests"])


def test_chart_is_read_from_the_commit_unless_dev(project, helm_bin):
    first = git(project, "rev-parse", "HEAD")
    commit(project, {".helm/values.yaml": "replicas: 5\ngreeting: second-commit\nextra:\n  flag: false\n"})
    write(project, {
        ".helm/values.yaml": "replicas: 7\ngreeting: uncommitted\nextra:\n  flag: false\n",
        ".helm/templates/untracked.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: untracked\n",
        ".gitignore": ".helm/templates/ignored.yaml\n",
        ".helm/templates/ignored.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ignored\n",
    })

    def greeting_and_names(**kwargs):
        objects = by_name(render(project, helm_bin, **kwargs)["manifests"])
        return objects[("ConfigMap", "settings")]["data"]["greeting"], {name for _kind, name in objects}

    greeting, names = greeting_and_names()
    assert greeting == "second-commit" and "untracked" not in names
    greeting, names = greeting_and_names(commit=first)
    assert greeting == "chart-default"
    greeting, names = greeting_and_names(dev=True)
    assert greeting == "uncommitted" and "untracked" in names and "ignored" not in names


def test_template_error_names_file_and_line(project, helm_bin):
    commit(project, {".helm/templates/broken.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata: {{ .Values.missing.key }}\n")})
    with pytest.raises(ConvergeError, match=r"helm template failed: .*templates/broken\.yaml:5"):
        render(project, helm_bin)


def test_missing_image_in_werf_image_names_it(project, helm_bin):
    with pytest.raises(ConvergeError, match=r"Jinja2 template \.helm/templates/extra\.yaml\.j2:8: image 'frontend'"):
        render(project, helm_bin, images=[IMAGES[0]])
    git(project, "rm", "-q", ".helm/templates/extra.yaml.j2")
    git(project, "commit", "-q", "-m", "helm only")
    with pytest.raises(ConvergeError, match=r"templates/worker\.yaml:9.*image \\?\"frontend\\?\" is not among"):
        render(project, helm_bin, images=[IMAGES[0]])


def test_bad_inputs_are_named(project, helm_bin):
    with pytest.raises(ConvergeError, match=r"values file deploy/missing\.yaml not found in commit"):
        render(project, helm_bin, values_files=["deploy/missing.yaml"])
    with pytest.raises(ConvergeError, match=r"revision 'no-such-branch' not found"):
        render(project, helm_bin, commit="no-such-branch")
    commit(project, {".helm/templates/bad.yaml.j2": "kind: ConfigMap\nmetadata: {name: [\n"})
    with pytest.raises(ConvergeError, match=r"rendered YAML of \.helm/templates/bad\.yaml\.j2 is invalid"):
        render(project, helm_bin)


def test_chart_dir_from_werf_yaml_and_chart_yaml_optional(project, helm_bin):
    commit(project, {
        "werf.yaml": "project: shop\nconfigVersion: 1\ndeploy:\n  helmChartDir: kube\n",
        "kube/templates/cm.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bare\ndata:\n"
                                   "  chart: {{ .Chart.Name }}-{{ .Chart.Version }}\n"
                                   "  image: {{ tuple \"backend\" . | include \"werf_image\" }}\n"),
    })
    result = render(project, helm_bin, env=None, namespace="custom-ns")
    assert (result["release"], result["namespace"]) == ("shop", "custom-ns")
    assert [m["data"] for m in result["manifests"]] == [{"chart": "shop-1.0.0", "image": BACKEND_REF}]


def test_empty_render_fails_unless_allowed(project, helm_bin):
    commit(project, {"werf.yaml": "project: shop\nconfigVersion: 1\ndeploy:\n  helmChartDir: nothing\n"})
    with pytest.raises(ConvergeError, match=r"chart directory nothing does not exist in commit"):
        render(project, helm_bin)
    assert render(project, helm_bin, allow_empty=True)["manifests"] == []

    commit(project, {"nothing/templates/off.yaml": "{{- if .Values.enabled }}\nkind: ConfigMap\n{{- end }}\n"})
    with pytest.raises(ConvergeError, match=r"chart directory nothing rendered no resources"):
        render(project, helm_bin)


def test_module_through_ansible(project, helm_bin):
    result, output = run_module("chart_render", {"project_dir": str(project), "env": "qa", "images": IMAGES,
                                                 "helm_binary": helm_bin, "set": {"replicas": 4}})
    assert not result["failed"], output
    assert result["changed"] is False
    assert (result["release"], result["namespace"]) == ("shop-qa", "shop-qa")
    deployment = by_name(result["manifests"])[("Deployment", "backend")]
    assert deployment["spec"]["replicas"] == 4
    assert result["crds"][0]["kind"] == "CustomResourceDefinition"

    commit(project, {".helm/templates/broken.yaml": "a: {{ .Values.missing.key }}\n"})
    result, output = run_module("chart_render", {"project_dir": str(project), "images": IMAGES,
                                                 "helm_binary": helm_bin})
    assert result["failed"], output
    assert "templates/broken.yaml:1" in result["msg"]


NOTES = """\
Thank you for installing {{ .Chart.Name }}.

  Release {{ .Release.Name }} in {{ .Release.Namespace }}, {{ .Values.replicas }} replica(s).
{{- if .Values.extra.flag }}
  The flag is set.
{{- end }}
{{ include "shop.hint" . }}
"""


def helm_dry_run_notes(helm_bin, chart_dir, release, namespace, *more):
    """The notes the real helm binary renders for an install of the chart directory."""
    done = subprocess.run([helm_bin, "install", release, str(chart_dir), "--namespace", namespace,
                           "--dry-run=client", "--output", "json", *more], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["info"]["notes"]


def test_notes_are_rendered_as_helm_renders_them(project, helm_bin, tmp_path):
    write(project, {".helm/templates/NOTES.txt": NOTES,
                    ".helm/templates/_hint.tpl": '{{- define "shop.hint" -}}See {{ .Values.greeting }}.{{- end -}}\n'})
    commit(project, message="notes")
    result = render(project, helm_bin, set_values={"extra.flag": True})
    assert not any(m["kind"] == "RenderedNotes" for m in result["manifests"])
    plain_chart = tmp_path / "plain"  # the same chart with only the notes' templates, for plain Helm
    for name in ("Chart.yaml", "values.yaml", "templates/NOTES.txt", "templates/_hint.tpl"):
        write(plain_chart, {name: (project / ".helm" / name).read_text()})
    expected = helm_dry_run_notes(helm_bin, plain_chart, result["release"], result["namespace"],
                                  "--set", "extra.flag=true")
    assert result["notes"] == expected.strip()
    assert "Release shop-qa in shop-qa, 1 replica(s).\n  The flag is set.\nSee chart-default." in result["notes"]


def test_a_notes_template_error_names_notes_txt(project, helm_bin):
    write(project, {".helm/templates/NOTES.txt": "line one\n{{ .Values.nosuch.field }}\n"})
    commit(project, message="broken notes")
    with pytest.raises(ConvergeError, match=r"templates/NOTES\.txt:2:\d+: executing"):
        render(project, helm_bin)


def test_a_chart_without_notes_has_empty_notes(project, helm_bin):
    assert render(project, helm_bin)["notes"] == ""


CONTEXT_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: context
  annotations:
    rollme: {{ $.Release.Revision | quote }}
data:
  revision: {{ .Release.Revision | quote }}
  install: {{ .Release.IsInstall | quote }}
  upgrade: {{ .Release.IsUpgrade | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  deployments: {{ .Capabilities.APIVersions.Has "apps/v1/Deployment" | quote }}
  apis: {{ .Capabilities.APIVersions | toJson | quote }}
"""


def helm_validate_capabilities(helm_bin, tmp_path, kubeconfig):
    """.Capabilities as the real helm binary reads them from the cluster (`helm template --validate`)."""
    chart = tmp_path / "capabilities"
    write(chart, {"Chart.yaml": "apiVersion: v2\nname: capabilities\nversion: 0.1.0\n",
                  "templates/cm.yaml": CONTEXT_TEMPLATE})
    done = subprocess.run([helm_bin, "template", "x", str(chart), "--validate", "--kubeconfig", kubeconfig],
                          capture_output=True, text=True, check=True)
    return next(d for d in render_module_docs(done.stdout) if d["metadata"]["name"] == "context")["data"]


def render_module_docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def test_use_cluster_gives_the_next_revision_upgrade_and_the_clusters_capabilities(
        project, helm_bin, tmp_path, localenv, kube_api):
    write(project, {".helm/templates/context.yaml": CONTEXT_TEMPLATE})
    commit(project, message="context")
    env = "c" + os.urandom(3).hex()
    args = {"project_dir": str(project), "images": IMAGES, "env": env, "helm_binary": helm_bin,
            "use_cluster": True, "kubeconfig": localenv.kubeconfig}
    try:
        first, output = run_module("chart_render", args)
        assert not first["failed"], output
        context = next(m for m in first["manifests"] if m["metadata"]["name"] == "context")
        reference = helm_validate_capabilities(helm_bin, tmp_path, localenv.kubeconfig)
        assert context["data"]["revision"] == "1" and context["metadata"]["annotations"]["rollme"] == "1"
        assert (context["data"]["install"], context["data"]["upgrade"]) == ("true", "false")
        assert context["data"]["kube"] == reference["kube"] == localenv.kube_version
        # helm template adds given API versions to its built-in defaults: every one the cluster serves is there
        assert set(json.loads(reference["apis"])) <= set(json.loads(context["data"]["apis"]))
        assert "berth.test/v1/Nothing" not in json.loads(context["data"]["apis"])
        assert context["data"]["deployments"] == "true"

        # the ConfigMap alone makes revision 1 (the chart's cluster-wide CRD stays out of the way of other tests)
        applied, output = run_module("release_apply", {"manifests": [context], "release": first["release"],
                                                       "namespace": first["namespace"],
                                                       "kubeconfig": localenv.kubeconfig})
        assert not applied["failed"], output

        second, output = run_module("chart_render", args)
        assert not second["failed"], output
        context = next(m for m in second["manifests"] if m["metadata"]["name"] == "context")
        assert context["data"]["revision"] == "2" and context["metadata"]["annotations"]["rollme"] == "2"
        assert (context["data"]["install"], context["data"]["upgrade"]) == ("false", "true")

        offline = render(project, helm_bin, env=env)
        context = next(m for m in offline["manifests"] if m["metadata"]["name"] == "context")
        assert (context["data"]["revision"], context["data"]["install"]) == ("1", "true")  # as helm template
        missing_offline = set(json.loads(reference["apis"])) - set(json.loads(context["data"]["apis"]))
        assert missing_offline, "the cluster serves nothing beyond Helm's defaults: this test would prove nothing"
    finally:
        core = client.CoreV1Api(kube_api)
        if any(ns.metadata.name == f"shop-{env}" for ns in core.list_namespace().items):
            core.delete_namespace(f"shop-{env}")
