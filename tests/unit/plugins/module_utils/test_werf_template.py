# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""werf's additions to the Go template language for werf.yaml, on real Git repositories."""

from __future__ import annotations

import pytest

from gitrepo import commit, git, write

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.git import GitProject
from ansible_collections.berth.converge.plugins.module_utils.gotemplate import GoMap, TemplateError
from ansible_collections.berth.converge.plugins.module_utils.project import load_project
from ansible_collections.berth.converge.plugins.module_utils.render import deploy_settings
from ansible_collections.berth.converge.plugins.module_utils.werf_template import (
    ROOT_TEMPLATE, from_yaml, go_time_string, new_template_set, render_werf_yaml, to_yaml)

AUTHOR_DATE = {"GIT_AUTHOR_DATE": "2022-01-21T18:51:39+03:00", "GIT_COMMITTER_DATE": "2023-05-01T00:00:00+00:00"}

FILES = {
    "werf.yaml": "project: shop\nconfigVersion: 1\n",
    "configs/app.conf": "listen 80;\n",
    "configs/extra/b.conf": "b\n",
    "configs/a.yaml": "a: 1\n",
    ".werf/images.tmpl": '{{- define "image" }}\nimage: {{ .name }}\ndockerfile: {{ .name }}/Dockerfile\n{{- end }}\n',
    ".werf/nested/names.tmpl": '{{- define "names" }}api web{{ end }}',
}


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "shop"
    path.mkdir()
    git(path, "init", "-q")
    commit(path, FILES, env=AUTHOR_DATE)
    return path


def render(repo, text, env=None, environ=None, dev=False):
    return render_werf_yaml(text, "werf.yaml", GitProject(str(repo), dev=dev), env, environ or {})


# ---------------------------------------------------------------- env


def test_env_returns_the_variable(repo):
    assert render(repo, '{{ env "REGISTRY" }}', environ={"REGISTRY": "r.example"}) == "r.example"


def test_env_unset_without_default_fails_naming_the_variable_and_line(repo):
    with pytest.raises(ConvergeError) as failure:
        render(repo, 'project: x\nrepo: {{ env "REGISTRY" }}\n')
    message = str(failure.value)
    assert "werf.yaml:2:" in message
    assert 'the environment variable "REGISTRY" must be set or default must be provided' in message
    assert failure.value.details == {"file": "werf.yaml", "line": 2}


def test_env_default_applies_when_unset_or_empty(repo):
    assert render(repo, '{{ env "A" "dflt" }}') == "dflt"
    assert render(repo, '{{ env "A" "dflt" }}', environ={"A": ""}) == "dflt"
    assert render(repo, '[{{ env "A" }}]', environ={"A": ""}) == "[]"
    assert render(repo, '{{ env "A" "dflt" }}', environ={"A": "set"}) == "set"


def test_env_takes_at_most_one_default(repo):
    with pytest.raises(ConvergeError, match="more than 1 optional argument prohibited"):
        render(repo, '{{ env "A" "x" "y" }}')


def test_env_reads_the_process_environment_by_default(repo, monkeypatch):
    monkeypatch.setenv("BERTH_TEMPLATE_TEST", "from-process")
    assert render_werf_yaml('{{ env "BERTH_TEMPLATE_TEST" }}', "werf.yaml", GitProject(str(repo)), None) == \
        "from-process"


# ---------------------------------------------------------------- .Env and .Commit


def test_env_name_is_dot_env(repo):
    assert render(repo, "[{{ .Env }}]", env="production") == "[production]"
    assert render(repo, "[{{ .Env }}]") == "[]"


def test_commit_hash_and_author_date(repo):
    git_project = GitProject(str(repo))
    out = render(repo, "{{ .Commit.Hash }}|{{ .Commit.Date.Human }}|{{ .Commit.Date.Unix }}|"
                       "{{ printf \"%T\" .Commit.Date.Unix }}")
    assert out == f"{git_project.commit.hash}|2022-01-21 18:51:39 +0300 +0300|1642780299|string"


def test_commit_date_unix_works_with_sprig_arithmetic(repo):
    assert render(repo, "{{ div .Commit.Date.Unix 86400 }}") == str(1642780299 // 86400)


def test_go_time_string_names_utc():
    assert go_time_string("2024-01-02T03:04:05+00:00") == "2024-01-02 03:04:05 +0000 UTC"
    assert go_time_string("2024-01-02T03:04:05-07:30") == "2024-01-02 03:04:05 -0730 -0730"


# ---------------------------------------------------------------- .Files (giterminism)


def test_files_get_reads_the_commit_not_the_working_tree(repo):
    write(repo, {"configs/app.conf": "listen 8080;\n", "configs/new.conf": "new\n"})
    assert render(repo, '{{ .Files.Get "configs/app.conf" }}') == "listen 80;\n"
    with pytest.raises(ConvergeError, match=r'\.Files\.Get "configs/new.conf" }}: the file "configs/new.conf" '
                                            r"not found in commit [0-9a-f]{12}"):
        render(repo, '{{ .Files.Get "configs/new.conf" }}')


def test_files_in_dev_mode_read_the_working_tree(repo):
    write(repo, {"configs/app.conf": "listen 8080;\n", "configs/new.conf": "new\n"})
    assert render(repo, '{{ .Files.Get "configs/app.conf" }}{{ .Files.Get "configs/new.conf" }}', dev=True) == \
        "listen 8080;\nnew\n"


def test_files_get_refuses_paths_outside_the_project(repo):
    with pytest.raises(ConvergeError, match="leaves the project directory"):
        render(repo, '{{ .Files.Get "../secret" }}')


def test_files_exists_and_is_dir(repo):
    out = render(repo, '{{ .Files.Exists "configs/app.conf" }} {{ .Files.Exists "configs" }} '
                       '{{ .Files.Exists "nope" }} {{ .Files.IsDir "configs" }} {{ .Files.IsDir "configs/app.conf" }} '
                       '{{ .Files.IsDir "nope" }}')
    assert out == "true false false true false false"


def test_files_glob_matches_files_and_directories(repo):
    out = render(repo, '{{ range $path, $text := .Files.Glob "configs/*.conf" }}{{ $path }}={{ $text }}{{ end }}')
    assert out == "configs/app.conf=listen 80;\n"
    out = render(repo, '{{ range $path, $_ := .Files.Glob "configs/**/*.conf" }}{{ $path }} {{ end }}')
    assert out == "configs/app.conf configs/extra/b.conf "
    out = render(repo, '{{ range $path, $_ := .Files.Glob "configs/extra" }}{{ $path }} {{ end }}')
    assert out == "configs/extra/b.conf "
    out = render(repo, '{{ keys (.Files.Glob "configs/*.{yaml,conf}") | sortAlpha | join "," }}')
    assert out == "configs/a.yaml,configs/app.conf"


def test_files_glob_without_matches_fails(repo):
    with pytest.raises(ConvergeError, match=r'\.Files\.Glob "nothing/\*" }}: no matches found'):
        render(repo, '{{ .Files.Glob "nothing/*" }}')


def test_files_get_content_through_sprig(repo):
    assert render(repo, 'conf: |\n{{ .Files.Get "configs/app.conf" | indent 2 }}') == "conf: |\n  listen 80;\n  "


# ---------------------------------------------------------------- partials, include, tpl


def test_partials_from_dot_werf_define_templates(repo):
    out = render(repo, '{{ range splitList " " (include "names" .) }}---{{ include "image" (dict "name" .) }}\n'
                       '{{ end }}')
    assert out == "---\nimage: api\ndockerfile: api/Dockerfile\n---\nimage: web\ndockerfile: web/Dockerfile\n"


def test_partials_are_templates_named_by_their_path(repo):
    assert render(repo, '[{{ template "nested/names.tmpl" . }}]') == "[]"


def test_uncommitted_partials_are_ignored_unless_dev(repo):
    write(repo, {".werf/late.tmpl": '{{ define "late" }}late{{ end }}'})
    with pytest.raises(ConvergeError, match='no template "late"'):
        render(repo, '{{ include "late" . }}')
    assert render(repo, '{{ include "late" . }}', dev=True) == "late"


def test_partial_errors_name_the_partial_and_line(repo):
    commit(repo, {".werf/broken.tmpl": '{{ define "b" }}\n\n{{ nosuchfunc }}{{ end }}'})
    with pytest.raises(ConvergeError) as failure:
        render(repo, "project: x\n")
    assert str(failure.value) == 'template: .werf/broken.tmpl:3: function "nosuchfunc" not defined'
    assert failure.value.details["file"] == ".werf/broken.tmpl"


def test_tpl_renders_a_string_with_the_data(repo):
    assert render(repo, '{{ tpl "{{ .Env }}-{{ include \\"names\\" . }}" . }}', env="dev") == "dev-api web"


def test_required(repo):
    assert render(repo, '{{ required "need env" .Env }}', env="x") == "x"
    with pytest.raises(ConvergeError, match="error calling required: set --env please"):
        render(repo, '{{ required "set --env please" .Env }}')


# ---------------------------------------------------------------- errors


def test_template_error_names_werf_yaml_and_line(repo):
    with pytest.raises(ConvergeError) as failure:
        render(repo, "project: x\nconfigVersion: 1\n---\nimage: {{ .Commit.Hash.x }}\n")
    assert str(failure.value).startswith('template: werf.yaml:4:17: executing "werfConfig" at <.Commit.Hash.x>: ')
    assert failure.value.details == {"file": "werf.yaml", "line": 4}


def test_unknown_function_is_named(repo):
    with pytest.raises(ConvergeError, match=r'^template: werf.yaml:3: function "frobnicate" not defined$'):
        render(repo, "a\nb\n{{ frobnicate 1 }}")


def test_non_deterministic_sprig_function_is_refused_by_name(repo):
    with pytest.raises(ConvergeError, match=r'werf.yaml:2: function "now" is not supported: its result changes'):
        render(repo, "a\n{{ now }}")


def test_syntax_error_names_line(repo):
    with pytest.raises(ConvergeError, match=r"^template: werf.yaml:2: unexpected EOF$"):
        render(repo, "{{ if .Env }}\nx")


# ---------------------------------------------------------------- fromYaml / toYaml


def test_from_yaml_decodes_as_yaml_v2():
    data = from_yaml("a: 1\nb: {c: yes}\nd: [1.5, null]\nts: 2001-12-14\n")
    assert data == {"a": 1, "b": {"c": True}, "d": [1.5, None], "ts": "2001-12-14"}
    assert isinstance(data["b"], GoMap) and data["b"].go_type == "map[interface {}]interface {}"
    assert from_yaml("") == {}


def test_to_yaml_is_helms():
    assert to_yaml({"b": [1, "x"], "a": {"k": None}}) == "a:\n  k: null\nb:\n- 1\n- x"
    template_set = new_template_set({}.get)
    template_set.parse(ROOT_TEMPLATE, "{{ toYaml . | nindent 2 }}")
    assert template_set.execute(ROOT_TEMPLATE, {"x": 1}) == "\n  x: 1"


def test_to_yaml_of_what_json_cannot_hold_is_empty():
    assert to_yaml(from_yaml("a: {b: 1}")) == ""


# ---------------------------------------------------------------- wiring: load_project and chart_render's settings


TEMPLATED = """project: shop
configVersion: 1
{{- range splitList " " (include "names" .) }}
---
{{- include "image" (dict "name" .) }}
args:
  ENV: {{ $.Env | default "none" }}
  TAG: {{ env "TAG" "latest" }}
{{- end }}
"""


def test_load_project_renders_templated_werf_yaml(repo, monkeypatch):
    commit(repo, {"werf.yaml": TEMPLATED})
    monkeypatch.delenv("TAG", raising=False)
    project = load_project(str(repo), env="staging")
    assert project.config.names == ["api", "web"]
    assert project.config.image("api").args == {"ENV": "staging", "TAG": "latest"}
    assert project.config.image("web").dockerfile == "web/Dockerfile"


def test_load_project_template_error_is_a_converge_error(repo):
    commit(repo, {"werf.yaml": "project: shop\nconfigVersion: 1\n{{ include \"missing\" . }}\n"})
    with pytest.raises(ConvergeError, match='werf.yaml:3:3: .*no template "missing"'):
        load_project(str(repo))


def test_deploy_settings_render_with_the_env(repo):
    commit(repo, {"werf.yaml": "project: shop\nconfigVersion: 1\ndeploy:\n  namespace: shop-{{ .Env }}\n"})
    project, deploy = deploy_settings(GitProject(str(repo)), env="qa")
    assert project == "shop"
    assert deploy.namespace == "shop-qa"


def test_template_errors_are_template_errors_underneath():
    template_set = new_template_set({}.get)
    with pytest.raises(TemplateError) as failure:
        template_set.parse(ROOT_TEMPLATE, "\n{{ end }}")
    assert (failure.value.parse_name, failure.value.line) == (ROOT_TEMPLATE, 2)
