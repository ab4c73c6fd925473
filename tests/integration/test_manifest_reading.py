# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifests are read as Kubernetes reads them, and werf's integers stay integers in every chart.

A chart whose ConfigMap and custom resource hold the scalars YAML 1.1 readers disagree on (`23:30`, `y`, `1e3`,
`0o17`, a bare `=`, merge keys...) is rendered by chart_render and applied by release_apply to the real cluster;
the same chart goes through `helm template | kubectl apply -f -` into a second namespace: the live objects must
hold the same data. A chart with a subchart and a sub-subchart that get `werf` through werf's export-values is
rendered by chart_render with the real helm: `.Values.werf.commit.date.unix` is an int64 at every depth."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import run_module
from gitrepo import git, new_repo

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: scalars
data:
  time: 23:30
  clock: 1:20:30
  negative_clock: -1:30
  equals: =
  merge_word: <<
  date: 2020-01-01
  stamp: 2001-12-14t21:59:43.10-05:00
  version: 1.2.3
  quantity: 10Gi
  quoted_number: "0o17"
  quoted_bool: 'y'
  tilde_word: ~x
  {{- range $key, $value := .Values.strings }}
  {{ $key }}: {{ $value }}
  {{- end }}
"""

CUSTOM_RESOURCE = """\
apiVersion: {group}/v1
kind: Sample
metadata:
  name: scalars
spec:
  words: [y, Y, yes, n, NO, on, Off, true, False, ~, null, NULL, Null]
  numbers: [1e3, 1E3, 1.5e3, 0o17, 0x1F, 017, 08, +1, -0, 1_000, 1.0, .5, 1., 12345678901234567890,
            4611686018427387904, -9223372036854775809, 0b101, 99999999999999999999999]
  strings: [23:30, =, 1e, 0x, .inf.x, 2001-12-14, 1_, 0b2]
  base: &base {{a: 1, b: old}}
  derived:
    <<: *base
    b: new
  first_wins:
    <<: [{{x: first}}, {{x: second, y: 2}}]
  y: yes-key
  1.5: float-key
  123456789.0: float32-key
  0x10: int-key
  duplicated: 1
  duplicated: 2
"""


def crd(group):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"samples.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": "samples", "singular": "sample", "kind": "Sample"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "properties": {"spec": {
                             "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}


def kubectl(localenv, *args, stdin=None):
    proc = subprocess.run(["kubectl", "--kubeconfig", localenv.kubeconfig, *args], input=stdin, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def sample_group(localenv):
    """A CRD of a unique group whose spec takes any JSON; deleted afterwards."""
    group = f"g{os.urandom(4).hex()}.berth.test"
    kubectl(localenv, "apply", "-f", "-", stdin=json.dumps(crd(group)))
    kubectl(localenv, "wait", "--for", "condition=established", "--timeout", "60s", f"crd/samples.{group}")
    yield group
    kubectl(localenv, "delete", f"crd/samples.{group}", "--wait=false")


@pytest.fixture
def second_namespace(localenv):
    name = "t-kubectl-" + os.urandom(3).hex()
    kubectl(localenv, "create", "namespace", name)
    yield name
    kubectl(localenv, "delete", "namespace", name, "--wait=false")


def live(localenv, namespace, resource):
    return json.loads(kubectl(localenv, "-n", namespace, "get", resource, "scalars", "-o", "json"))


def test_rendered_manifests_are_applied_with_the_data_kubectl_gives(
        tmp_path, localenv, helm_bin, namespace, second_namespace, sample_group):
    files = {
        "werf.yaml": "project: scalars\nconfigVersion: 1\n",
        ".helm/Chart.yaml": "apiVersion: v2\nname: scalars\nversion: 0.1.0\n",
        # Values files are read by Helm's rules too: each of these reaches the template as the same string.
        ".helm/values.yaml": "strings:\n  from_values_time: 23:30\n  from_values_octal: 0o17x\n",
        ".helm/templates/configmap.yaml": CONFIGMAP,
        ".helm/templates/sample.yaml": CUSTOM_RESOURCE.format(group=sample_group),
    }
    project = new_repo(tmp_path / "project", files)

    rendered, output = run_module("chart_render", {"project_dir": str(project), "release": "scalars",
                                                   "namespace": namespace, "helm_binary": helm_bin})
    assert not rendered["failed"], output
    applied, output = run_module("release_apply", {"manifests": rendered["manifests"], "release": "scalars",
                                                   "namespace": namespace, "kubeconfig": localenv.kubeconfig})
    assert not applied["failed"], output

    helm_output = subprocess.run([helm_bin, "template", "scalars", str(project / ".helm"), "--namespace",
                                  second_namespace], capture_output=True, text=True, check=True).stdout
    kubectl(localenv, "-n", second_namespace, "apply", "-f", "-", stdin=helm_output)

    ours, theirs = live(localenv, namespace, "configmaps"), live(localenv, second_namespace, "configmaps")
    assert ours["data"] == theirs["data"]
    assert ours["data"]["time"] == "23:30" and ours["data"]["equals"] == "="  # PyYAML: 1410, and a crash
    assert ours["data"]["from_values_time"] == "23:30"
    ours, theirs = live(localenv, namespace, f"samples.{sample_group}"), live(localenv, second_namespace,
                                                                              f"samples.{sample_group}")
    assert ours["spec"] == theirs["spec"]
    assert ours["spec"]["words"][:4] == [True, True, True, False]  # y, Y, yes, n: booleans for kubectl
    assert ours["spec"]["numbers"][:5] == [1000, 1000, 1500, 15, 31]  # 1e3, 1E3, 1.5e3, 0o17, 0x1F
    assert ours["spec"]["derived"] == {"a": 1, "b": "new"} and ours["spec"]["true"] == "yes-key"

    again, output = run_module("release_apply", {"manifests": rendered["manifests"], "release": "scalars",
                                                 "namespace": namespace, "kubeconfig": localenv.kubeconfig})
    assert not again["failed"] and not again["changed"], output  # the numbers read back as they were sent


SUBCHART_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: numbers-{{ .Chart.Name }}
data:
  unix: {{ .Values.werf.commit.date.unix | quote }}
  unixKind: {{ kindOf .Values.werf.commit.date.unix | quote }}
  setNumber: {{ .Values.fromSet | quote }}
  setKind: {{ kindOf .Values.fromSet | quote }}
  fileNumber: {{ .Values.fromFile | quote }}
  fileKind: {{ kindOf .Values.fromFile | quote }}
"""


def test_werf_integers_reach_subcharts_as_integers(tmp_path, helm_bin):
    """Root -> sub -> leaf (file:// charts), werf's export-values at each level. werf's service values and
    `set` integers are int64 for Helm, so they print as integers in every chart; a number from a values file
    is float64 for Helm, as in werf and Helm, and prints in Go's float form."""
    exports = ("  export-values:\n  - {parent: werf, child: werf}\n  - {parent: fromSet, child: fromSet}\n"
               "  - {parent: fromFile, child: fromFile}\n")
    files = {
        "werf.yaml": "project: numbers\nconfigVersion: 1\n",
        ".helm/Chart.yaml": ("apiVersion: v2\nname: numbers\nversion: 0.1.0\ndependencies:\n"
                             "- name: sub\n  version: 0.1.0\n  repository: file://../sub\n" + exports),
        ".helm/values.yaml": "fromFile: 1800000000\n",
        ".helm/templates/numbers.yaml": SUBCHART_TEMPLATE,
        "sub/Chart.yaml": ("apiVersion: v2\nname: sub\nversion: 0.1.0\ndependencies:\n"
                           "- name: leaf\n  version: 0.1.0\n  repository: file://../leaf\n" + exports),
        "sub/templates/numbers.yaml": SUBCHART_TEMPLATE,
        "leaf/Chart.yaml": "apiVersion: v2\nname: leaf\nversion: 0.1.0\n",
        "leaf/templates/numbers.yaml": SUBCHART_TEMPLATE,
    }
    project = new_repo(tmp_path / "project", files)
    # A commit time above 1e9 that float64 prints in exponent form (1.796474609e+09).
    git(project, "commit", "-q", "--amend", "--no-edit", "--date", "@1796474609",
        env={"GIT_COMMITTER_DATE": "@1796474609"})

    result, output = run_module("chart_render", {"project_dir": str(project), "helm_binary": helm_bin,
                                                 "set": {"fromSet": 1900000000}})
    assert not result["failed"], output
    unix = str(result["commit"]["unix"])
    assert unix == "1796474609"
    by_chart = {m["metadata"]["name"]: m["data"] for m in result["manifests"]}
    assert sorted(by_chart) == ["numbers-leaf", "numbers-numbers", "numbers-sub"]
    for chart, data in by_chart.items():
        assert (data["unix"], data["unixKind"]) == (unix, "int64"), chart
        assert (data["setNumber"], data["setKind"]) == ("1900000000", "int64"), chart
        assert (data["fileNumber"], data["fileKind"]) == ("1.8e+09", "float64"), chart
