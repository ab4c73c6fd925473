# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Chart dependencies through chart_render: an umbrella chart with an unpacked subchart in charts/, a
file:// subchart, a chart pushed with `helm push` to the local OCI registry and one served by the local HTTP
chart repository (hack/localenv); values flow through global, werf's export-values and Helm's import-values."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from conftest import run_module
from gitrepo import commit, new_repo
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.render import RenderOptions, render_chart

IMAGES = [{"name": "backend", "ref": "127.0.0.1:5000/shop/backend:" + "1" * 64}]


def subchart(name, version, values="", extra=None):
    """A chart whose one ConfigMap shows its .Values as JSON."""
    files = {
        f"{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n",
        f"{name}/values.yaml": values,
        f"{name}/templates/values.yaml": f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: values-{name}
data:
  values: {{{{ toJson .Values | quote }}}}
""",
    }
    files.update(extra or {})
    return files


def write_files(root, files):
    for name, text in files.items():
        path = Path(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


class ChartSources:
    """Charts published for one test run: to the local OCI registry (helm push) and to a directory of the
    local HTTP chart repository (helm package + helm repo index)."""

    def __init__(self, tmp_path, helm_bin, registry):
        self.id = "t" + uuid.uuid4().hex[:8]
        self.helm = helm_bin
        self.work = tmp_path / "published"
        self.env = {**os.environ, "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
                    "HELM_CACHE_HOME": str(tmp_path / "helm-cache"), "HELM_DATA_HOME": str(tmp_path / "helm-data")}
        self.oci = f"oci://{registry}/{self.id}/charts"
        self.http_dir = Path(os.environ["BERTH_CHART_REPO_DIR"]) / self.id
        self.http = f"{os.environ['BERTH_CHART_REPO']}/{self.id}"

    def package(self, files, name):
        write_files(self.work / "src", files)
        output = self._helm("package", str(self.work / "src" / name), "--destination", str(self.work / "packages"))
        return output.rsplit(": ", 1)[1].strip()  # "Successfully packaged chart and saved it to: <path>"

    def push_oci(self, files, name):
        self._helm("push", str(self.package(files, name)), self.oci)

    def publish_http(self, files, name):
        self.http_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.package(files, name), self.http_dir)
        self._helm("repo", "index", str(self.http_dir), "--url", self.http)

    def remove(self):
        shutil.rmtree(self.http_dir, ignore_errors=True)

    def _helm(self, *args):
        return subprocess.run([self.helm, *args], check=True, capture_output=True, text=True, env=self.env).stdout


@pytest.fixture
def sources(tmp_path, helm_bin, registry):
    try:
        requests.get(os.environ["BERTH_CHART_REPO"] + "/", timeout=5).raise_for_status()
    except (KeyError, requests.RequestException) as exc:
        pytest.fail(f"the local HTTP chart repository is not reachable; start it with `hack/localenv up`: {exc}")
    published = ChartSources(tmp_path, helm_bin, registry)
    published.push_oci(subchart("queue", "0.2.0", "settings:\n  size: 1\n  mode: from-queue-defaults\n"), "queue")
    published.publish_http(subchart("metrics", "0.3.0", "defaults:\n  port: 9090\n"), "metrics")
    yield published
    published.remove()


def umbrella(sources, queue_repository=None):
    """The project: an umbrella chart and a file:// subchart beside it."""
    chart_yaml = {
        "apiVersion": "v2", "name": "shop", "version": "1.0.0",
        "dependencies": [
            {"name": "cache", "version": "0.1.0"},
            {"name": "worker", "version": "0.1.0", "repository": "file://../shared/worker",
             "export-values": [{"parent": "werf", "child": "werf"}, {"parent": "workerImage", "child": "image.ref"}]},
            {"name": "queue", "version": "~0.2.0", "repository": queue_repository or sources.oci,
             "export-values": [{"parent": "queueSettings", "child": "settings"}, "shared"]},
            {"name": "metrics", "version": "0.3.0", "repository": sources.http,
             "import-values": [{"child": "defaults", "parent": "metricsDefaults"}]},
        ],
    }
    files = {
        "werf.yaml": "project: shop\nconfigVersion: 1\n",
        ".helm/Chart.yaml": yaml.safe_dump(chart_yaml),
        ".helm/values.yaml": """\
global:
  team: checkout
workerImage: registry.example.com/worker:7
queueSettings:
  mode: exported
exports:
  shared:
    tier: gold
""",
        ".helm/templates/main.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: values-shop
data:
  metricsPort: {{ .Values.metricsDefaults.port | quote }}
""",
    }
    files.update({f".helm/charts/{k}": v for k, v in subchart("cache", "0.1.0", "ttl: 60\n").items()})
    files.update({f"shared/{k}": v for k, v in subchart("worker", "0.1.0", "image:\n  ref: worker-default\n").items()})
    return files


def values_of(manifests, chart):
    found = [m for m in manifests if m["metadata"]["name"] == f"values-{chart}"]
    assert found, f"no ConfigMap of chart {chart} among {[m['metadata']['name'] for m in manifests]}"
    return json.loads(found[0]["data"]["values"])


def test_umbrella_chart_with_local_oci_and_http_dependencies(tmp_path, sources, helm_bin):
    project = new_repo(tmp_path / "project", umbrella(sources))
    user_helm = tmp_path / "user-helm"  # the user's Helm state: must stay untouched
    result, output = run_module("chart_render", {"project_dir": str(project), "images": IMAGES, "env": "qa",
                                                 "helm_binary": helm_bin},
                                env={"HELM_CONFIG_HOME": str(user_helm / "config"),
                                     "HELM_CACHE_HOME": str(user_helm / "cache"),
                                     "HELM_DATA_HOME": str(user_helm / "data")})
    assert not result["failed"], output
    manifests = result["manifests"]
    assert {m["metadata"]["name"] for m in manifests} == {
        "values-shop", "values-cache", "values-worker", "values-queue", "values-metrics"}

    worker = values_of(manifests, "worker")
    assert worker["werf"]["image"]["backend"] == IMAGES[0]["ref"]  # export-values parent werf -> child werf
    assert worker["werf"]["env"] == "qa"
    assert worker["image"]["ref"] == "registry.example.com/worker:7"  # a scalar exported over the chart default
    assert worker["global"]["team"] == "checkout"

    queue = values_of(manifests, "queue")  # from the OCI registry
    assert queue["settings"] == {"size": 1, "mode": "exported"}  # exported over its own values.yaml
    assert queue["tier"] == "gold"  # the string form exports exports.<name> to the root
    assert queue["global"]["werf"]["images"]["backend"]["ref"] == IMAGES[0]["ref"]
    assert "werf" not in queue  # werf's service values reach a subchart only when exported

    assert values_of(manifests, "cache")["ttl"] == 60  # the unpacked subchart in charts/
    assert values_of(manifests, "metrics")["defaults"]["port"] == 9090  # from the HTTP chart repository
    main = next(m for m in manifests if m["metadata"]["name"] == "values-shop")
    assert main["data"]["metricsPort"] == "9090"  # Helm's import-values
    assert not user_helm.exists(), list(user_helm.rglob("*"))


def test_user_values_override_exported_values(tmp_path, sources, helm_bin):
    project = new_repo(tmp_path / "project", umbrella(sources))
    manifests = render_chart(RenderOptions(project_dir=str(project), images=IMAGES, helm_binary=helm_bin,
                                           set_values={"queue.settings.mode": "from-set",
                                                       "queueSettings.size": 5}))["manifests"]
    assert values_of(manifests, "queue")["settings"] == {"size": 5, "mode": "from-set"}


def test_a_missing_oci_dependency_is_named(tmp_path, sources, helm_bin):
    files = umbrella(sources)
    files[".helm/Chart.yaml"] = files[".helm/Chart.yaml"].replace("name: queue", "name: nosuch-queue")
    project = new_repo(tmp_path / "project", files)
    with pytest.raises(ConvergeError) as caught:
        render_chart(RenderOptions(project_dir=str(project), images=IMAGES, helm_binary=helm_bin))
    message = str(caught.value)
    assert message.startswith(".helm/Chart.yaml: helm dependency build failed"), message
    assert "nosuch-queue" in message and sources.id in message


def test_a_missing_http_repository_chart_is_named(tmp_path, sources, helm_bin):
    files = umbrella(sources)
    files[".helm/Chart.yaml"] = files[".helm/Chart.yaml"].replace("name: metrics", "name: nosuch-metrics")
    project = new_repo(tmp_path / "project", files)
    with pytest.raises(ConvergeError, match=r"nosuch-metrics chart not found in repo .*" + sources.id):
        render_chart(RenderOptions(project_dir=str(project), images=IMAGES, helm_binary=helm_bin))


def test_a_local_dependency_missing_from_the_commit_is_named(tmp_path, sources, helm_bin):
    project = new_repo(tmp_path / "project", umbrella(sources))
    shutil.rmtree(project / "shared")
    commit(project, message="drop the worker chart")
    with pytest.raises(ConvergeError, match=r"^\.helm/Chart\.yaml: dependency worker: file://\.\./shared/worker is "
                                            r"not a directory in commit [0-9a-f]{12}"):
        render_chart(RenderOptions(project_dir=str(project), images=IMAGES, helm_binary=helm_bin))


def test_a_stale_chart_lock_fails_with_helms_message(tmp_path, sources, helm_bin):
    files = umbrella(sources)
    files[".helm/Chart.lock"] = yaml.safe_dump({"dependencies": [], "digest": "sha256:" + "0" * 64,
                                                "generated": "2024-01-01T00:00:00Z"})
    chart_yaml = yaml.safe_load(files[".helm/Chart.yaml"])
    for dependency in chart_yaml["dependencies"]:
        dependency.pop("export-values", None)
    files[".helm/Chart.yaml"] = yaml.safe_dump(chart_yaml)
    project = new_repo(tmp_path / "project", files)
    with pytest.raises(ConvergeError, match=r"Chart\.lock\) is out of sync"):
        render_chart(RenderOptions(project_dir=str(project), images=IMAGES, helm_binary=helm_bin))


@pytest.mark.parametrize("lock_file", ["Chart.lock", "requirements.lock"])
def test_chart_lock_of_a_chart_with_export_values_pins_the_versions(tmp_path, sources, helm_bin, lock_file):
    """werf's lock digest covers export-values, which Helm cannot check: the locked versions still hold,
    whether werf wrote the lock as Chart.lock or requirements.lock."""
    sources.push_oci(subchart("queue", "0.2.1", "settings:\n  size: 2\n"), "queue")
    files = umbrella(sources)
    locked = [{"name": d["name"], "repository": d.get("repository", ""), "version": d["version"].lstrip("~")}
              for d in yaml.safe_load(files[".helm/Chart.yaml"])["dependencies"]]
    files[f".helm/{lock_file}"] = yaml.safe_dump({"dependencies": locked, "digest": "sha256:" + "0" * 64,
                                                  "generated": "2024-01-01T00:00:00Z"})
    project = new_repo(tmp_path / "project", files)
    manifests = render_chart(RenderOptions(project_dir=str(project), images=IMAGES, helm_binary=helm_bin))["manifests"]
    assert values_of(manifests, "queue")["settings"]["size"] == 1  # 0.2.0 as locked, not the newer 0.2.1


def test_export_values_declared_at_every_depth_reach_a_sub_subchart(tmp_path, sources, helm_bin):
    """The worker subchart declares export-values (and Helm's import-values) for its own dependency leaf,
    once plainly and once aliased; a third, disabled by its condition, renders nothing."""
    files = umbrella(sources)
    worker_chart = {
        "apiVersion": "v2", "name": "worker", "version": "0.1.0",
        "dependencies": [
            {"name": "leaf", "version": "0.1.0", "repository": "file://../leaf",
             "export-values": [{"parent": "werf", "child": "werf"}, {"parent": "image", "child": "parentImage"}],
             "import-values": [{"child": "exports.color", "parent": "leafColor"}]},
            {"name": "leaf", "alias": "nightly", "version": "0.1.0", "repository": "file://../leaf",
             "export-values": [{"parent": "werf.env", "child": "env"}]},
            {"name": "leaf", "alias": "disabled", "version": "0.1.0", "repository": "file://../leaf",
             "condition": "disabled.enabled", "export-values": [{"parent": "werf", "child": "werf"}]},
        ],
    }
    files["shared/worker/Chart.yaml"] = yaml.safe_dump(worker_chart)
    files["shared/worker/values.yaml"] = "image:\n  ref: worker-default\ndisabled:\n  enabled: false\n"
    files["shared/worker/templates/imported.yaml"] = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: imported-{{ .Chart.Name }}\n"
        "data:\n  color: {{ .Values.leafColor.value | quote }}\n")
    files.update({f"shared/{k}": v for k, v in subchart(
        "leaf", "0.1.0", "exports:\n  color:\n    value: teal\n",
        extra={"leaf/templates/unix.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                           "  name: unix-{{ .Chart.Name }}-{{ dig \"werf\" \"env\" \"none\" .Values.AsMap }}"
                                           "-{{ default \"plain\" .Values.env }}\n"}
    ).items()})
    manifests = render_chart(RenderOptions(project_dir=str(project_of(tmp_path, files)), images=IMAGES, env="qa",
                                           helm_binary=helm_bin))["manifests"]
    leaves = [json.loads(m["data"]["values"]) for m in manifests if m["metadata"]["name"] == "values-leaf"]
    assert len(leaves) == 2, [m["metadata"]["name"] for m in manifests]  # the disabled alias renders nothing
    plain = next(v for v in leaves if "werf" in v)
    nightly = next(v for v in leaves if "werf" not in v)
    assert plain["werf"]["image"]["backend"] == IMAGES[0]["ref"]  # root -> worker -> leaf
    assert plain["werf"]["env"] == "qa"
    assert plain["parentImage"] == {"ref": "registry.example.com/worker:7"}  # what the root exported to worker
    assert nightly["env"] == "qa"
    assert nightly["global"]["team"] == "checkout"
    imported = next(m for m in manifests if m["metadata"]["name"] == "imported-worker")
    assert imported["data"]["color"] == "teal"  # Helm's import-values one level below the root
    names = sorted(m["metadata"]["name"] for m in manifests if m["metadata"]["name"].startswith("unix-"))
    assert names == ["unix-leaf-qa-plain", "unix-nightly-none-qa"]  # .Chart.Name of an aliased chart is its alias


def project_of(tmp_path, files):
    return new_repo(tmp_path / "project", files)
