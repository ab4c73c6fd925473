# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A templated werf.yaml (env with a default, .Env, a .werf partial, .Files.Get) through the modules, as a
user runs them (`ansible localhost -m`), against the real Docker Engine, registry and helm."""

from __future__ import annotations

import uuid

import pytest

from conftest import run_module
from gitrepo import commit, new_repo

WERF = """project: shop
configVersion: 1
deploy:
  namespace: shop-{{ .Env }}
{{- $tag := env "BERTH_TEMPLATE_TAG" "v1" }}
{{- range splitList "," (.Files.Get "images.txt" | trim) }}
---
{{ include "image" (dict "name" . "env" $.Env "tag" $tag) }}
{{- end }}
"""

PARTIAL = """{{- define "image" -}}
image: {{ .name }}
dockerfile: Dockerfile
context: {{ .name }}
args:
  DEPLOY_ENV: {{ .env | default "none" }}
  TAG: {{ .tag | quote }}
{{- end }}
"""


def files(base_image):
    dockerfile = f"FROM {base_image}\nARG DEPLOY_ENV\nARG TAG\nRUN echo \"$DEPLOY_ENV $TAG\" > /built-for.txt\n"
    return {
        "werf.yaml": WERF,
        ".werf/images.tmpl": PARTIAL,
        "images.txt": "api,worker\n",
        "api/Dockerfile": dockerfile,
        "worker/Dockerfile": dockerfile,
        ".helm/Chart.yaml": "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
        ".helm/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n"
                                   "  env: {{ .Values.werf.env | quote }}\n",
    }


@pytest.fixture
def project(tmp_path, localenv):
    return new_repo(tmp_path / "shop", files(localenv.base_image))


def test_image_digest_sees_the_rendered_werf_yaml(project, registry):
    repo = f"{registry}/t-tmpl-{uuid.uuid4().hex[:8]}"
    result, output = run_module("image_digest", {"project_dir": str(project), "repo": repo, "env": "staging"},
                                env={"BERTH_TEMPLATE_TAG": ""})
    assert not result["failed"], output
    images = {image["name"]: image for image in result["images"]}
    assert list(images) == ["api", "worker"]
    assert images["api"]["args"] == {"DEPLOY_ENV": "staging", "TAG": "v1"}
    assert images["worker"]["context"] == "worker"
    assert images["api"]["ref"] == f"{repo}/api:{images['api']['digest']}"


def test_env_and_dot_env_change_what_is_built(project, registry, docker_client):
    repo = f"{registry}/t-tmpl-{uuid.uuid4().hex[:8]}"
    args = {"project_dir": str(project), "repo": repo, "env": "production"}
    first, output = run_module("image_digest", args, env={"BERTH_TEMPLATE_TAG": "2.0"})
    assert not first["failed"], output
    assert first["images"][0]["args"] == {"DEPLOY_ENV": "production", "TAG": "2.0"}
    other, output = run_module("image_digest", {**args, "env": "staging"}, env={"BERTH_TEMPLATE_TAG": "2.0"})
    assert not other["failed"], output
    assert other["images"][0]["digest"] != first["images"][0]["digest"]

    built, output = run_module("image_build", {"project_dir": str(project), "env": "production",
                                               "images": first["images"]}, env={"BERTH_TEMPLATE_TAG": "2.0"})
    assert not built["failed"], output
    assert sorted(built["built"]) == ["api", "worker"]
    ref = first["images"][0]["ref"]
    out = docker_client.containers.run(ref, ["cat", "/built-for.txt"], remove=True, network_mode="none").decode()
    assert out == "production 2.0\n"


def test_chart_render_reads_the_rendered_deploy_settings(project, helm_bin):
    result, output = run_module("chart_render", {"project_dir": str(project), "env": "qa", "images": [],
                                                 "helm_binary": helm_bin})
    assert not result["failed"], output
    assert result["namespace"] == "shop-qa"


def test_template_error_names_file_and_line(project, registry):
    commit(project, {".werf/images.tmpl": PARTIAL.replace("{{ .name }}\ndockerfile", "{{ .name | nosuchfn }}\ndockerfile")})
    result, output = run_module("image_digest", {"project_dir": str(project), "repo": registry})
    assert result["failed"], output
    assert result["msg"] == 'template: .werf/images.tmpl:2: function "nosuchfn" not defined'

    commit(project, {".werf/images.tmpl": PARTIAL, "werf.yaml": WERF + "{{ .Files.Get \"missing.txt\" }}\n"})
    result, output = run_module("image_digest", {"project_dir": str(project), "repo": registry})
    assert result["failed"], output
    assert result["msg"].startswith("template: werf.yaml:10:")
    assert 'the file "missing.txt" not found in commit' in result["msg"]
    assert result["file"] == "werf.yaml" and result["line"] == 10
