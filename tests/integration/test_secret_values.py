# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""werf secret values through chart_render, with secret values files encrypted by werf's own code
(hack/conformance/werfsecret) and the real helm binary."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_module

KEY = "8e1f5c0a7b3d92e4c6a1f0b2d3e4f5a6"
WRONG_KEY = "00112233445566778899aabbccddeeff"
PASSWORD = "correct-horse-battery-staple"
API_TOKEN = "tok-3f9a7c1e"
NO_KEY_ENV = {"WERF_SECRET_KEY": ""}

CHART = {
    "werf.yaml": "project: vault\nconfigVersion: 1\n",
    ".helm/Chart.yaml": "apiVersion: v2\nname: vault\nversion: 0.1.0\n",
    ".helm/values.yaml": "db:\n  user: app\napi:\n  token: none\n"
                         "probe: {a: values, b: values, c: values, d: values, e: values}\n",
    ".helm/templates/secret.yaml": """\
apiVersion: v1
kind: Secret
metadata:
  name: db
data:
  password: {{ .Values.db.password | b64enc }}
  token: {{ .Values.api.token | b64enc }}
""",
    ".helm/templates/probe.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: probe
data:
{{- range $name, $value := .Values.probe }}
  {{ $name }}: {{ $value | quote }}
{{- end }}
  portType: {{ kindOf .Values.db.port | quote }}
{{- if .Values.explode }}
  {{ fail (printf "cannot connect with %s" .Values.db.password) }}
{{- end }}
""",
    ".helm/templates/jinja.yaml.j2": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: from-jinja
data:
  user: "{{ Values.db.user }}"
  probe: "{{ Values.probe.d }}"
""",
    "deploy/values.yaml": "probe: {c: file, d: file, e: file}\n",
}
# Plaintext of the secret values files; werf's code encrypts them in the fixture.
SECRET_VALUES = f"db:\n  user: admin\n  password: {PASSWORD}\n  port: 5432\nprobe: {{b: chart-secrets, c: chart-secrets, d: chart-secrets, e: chart-secrets}}\n"
EXTRA_SECRET_VALUES = f"api:\n  token: {API_TOKEN}\nprobe: {{d: extra-secrets, e: extra-secrets}}\n"


def werf_encrypt_yaml(text, key):
    built = subprocess.run([str(ROOT / "hack" / "conformance" / "werfsecret" / "build")], capture_output=True,
                           text=True, check=False)
    if built.returncode != 0:
        pytest.fail(f"building werf's secret code failed:\n{built.stderr}")
    request = json.dumps([{"op": "encrypt_yaml", "key": key, "yaml": text}])
    done = subprocess.run([built.stdout.strip()], input=request, capture_output=True, text=True, check=True)
    response = json.loads(done.stdout)[0]
    assert "error" not in response, response
    return response["yaml"]


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


@pytest.fixture
def project(tmp_path, helm_bin):
    repo = tmp_path / "vault"
    files = dict(CHART)
    files[".helm/secret-values.yaml"] = werf_encrypt_yaml(SECRET_VALUES, KEY)
    files["deploy/secret-values-extra.yaml"] = werf_encrypt_yaml(EXTRA_SECRET_VALUES, KEY)
    assert PASSWORD not in files[".helm/secret-values.yaml"]
    for name, text in files.items():
        Path(repo, name).parent.mkdir(parents=True, exist_ok=True)
        Path(repo, name).write_text(text)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "chart with werf secrets")
    return repo


@pytest.fixture
def werf_home(tmp_path, monkeypatch):
    """An empty werf home, so no global_secret_key of this machine is used."""
    home = tmp_path / "werf-home"
    home.mkdir()
    monkeypatch.setenv("WERF_HOME", str(home))
    return home


def render(project, helm_bin, verbosity=0, **args):
    args = {"project_dir": str(project), "helm_binary": helm_bin, **args}
    env = args.pop("env", NO_KEY_ENV)
    return run_module("chart_render", args, env=env, verbosity=verbosity)


def by_name(manifests):
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def test_secret_values_are_decrypted_and_merged_in_werfs_order(project, helm_bin, werf_home):
    result, output = render(project, helm_bin, values_files=["deploy/values.yaml"],
                            secret_values_files=["deploy/secret-values-extra.yaml"],
                            set={"probe.e": "set"}, secret_key=KEY, verbosity=3)

    assert not result["failed"], output
    objects = by_name(result["manifests"])
    secret = objects[("Secret", "db")]["data"]
    assert base64.b64decode(secret["password"]).decode() == PASSWORD
    assert base64.b64decode(secret["token"]).decode() == API_TOKEN
    probe = objects[("ConfigMap", "probe")]["data"]
    assert probe == {"a": "values", "b": "chart-secrets", "c": "file", "d": "extra-secrets", "e": "set",
                     "portType": "string"}
    assert objects[("ConfigMap", "from-jinja")]["data"] == {"user": "admin", "probe": "extra-secrets"}
    assert result["invocation"]["module_args"]["secret_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert KEY not in output


def test_the_key_is_found_in_the_project_and_in_werf_home(project, helm_bin, werf_home):
    (project / ".werf_secret_key").write_text(KEY + "\n")
    result, output = render(project, helm_bin)
    assert not result["failed"], output
    assert base64.b64decode(by_name(result["manifests"])[("Secret", "db")]["data"]["password"]).decode() == PASSWORD

    (project / ".werf_secret_key").unlink()
    (werf_home / "global_secret_key").write_text(KEY)
    result, output = render(project, helm_bin)
    assert not result["failed"], output

    result, output = render(project, helm_bin, env={"WERF_SECRET_KEY": KEY})
    assert not result["failed"], output


def test_a_wrong_key_fails_naming_the_file_and_shows_no_secret(project, helm_bin, werf_home):
    result, output = render(project, helm_bin, env={"WERF_SECRET_KEY": WRONG_KEY})

    assert result["failed"]
    assert ".helm/secret-values.yaml" in result["msg"]
    assert "$WERF_SECRET_KEY" in result["msg"]
    assert "manifests" not in result
    for secret in (PASSWORD, API_TOKEN, WRONG_KEY, KEY):
        assert secret not in output


def test_a_wrong_key_for_an_extra_file_names_that_file(project, helm_bin, werf_home, tmp_path):
    other = tmp_path / "other-secret-values.yaml"
    other.write_text(werf_encrypt_yaml("x: y\n", WRONG_KEY))
    result, _output = render(project, helm_bin, secret_values_files=[str(other)], secret_key=KEY)
    assert result["failed"]
    assert f"secret values file {other}: cannot decrypt the value of x" in result["msg"]


def test_a_missing_key_fails_listing_where_it_was_looked_for(project, helm_bin, werf_home):
    result, output = render(project, helm_bin)

    assert result["failed"]
    assert result["msg"].startswith("secret values file .helm/secret-values.yaml cannot be decrypted: "
                                    "no werf secret key found")
    assert str(project / ".werf_secret_key") in result["msg"]
    assert str(werf_home / "global_secret_key") in result["msg"]
    assert PASSWORD not in output


def test_a_helm_error_never_shows_a_decrypted_value(project, helm_bin, werf_home):
    result, output = render(project, helm_bin, secret_key=KEY, set={"explode": True})

    assert result["failed"]
    assert "cannot connect with ***" in result["msg"]
    assert PASSWORD not in output


def test_an_ansible_vault_values_file_is_refused_with_the_way_to_use_it(project, helm_bin, werf_home, tmp_path):
    vault_password = tmp_path / "vault-password"
    vault_password.write_text("vault-pass\n")
    vaulted = tmp_path / "vaulted.yaml"
    vaulted.write_text(f"db:\n  password: {PASSWORD}\n")
    ansible_vault = os.path.join(os.path.dirname(sys.executable), "ansible-vault")
    subprocess.run([ansible_vault, "encrypt", "--vault-password-file", str(vault_password), str(vaulted)],
                   check=True, capture_output=True)

    for option in ("values_files", "secret_values_files"):
        result, _output = render(project, helm_bin, secret_key=KEY, **{option: [str(vaulted)]})
        assert result["failed"]
        assert f"{vaulted} is encrypted with Ansible Vault" in result["msg"]
        assert "converge_vault_values_files" in result["msg"]


def werf_encrypt_file(text, key):
    """A secret file as `werf helm secret file encrypt` writes it: werf's ciphertext of the content."""
    built = subprocess.run([str(ROOT / "hack" / "conformance" / "werfsecret" / "build")], capture_output=True,
                           text=True, check=True)
    request = json.dumps([{"op": "encrypt", "key": key, "plaintext": text}])
    done = subprocess.run([built.stdout.strip()], input=request, capture_output=True, text=True, check=True)
    response = json.loads(done.stdout)[0]
    assert "error" not in response, response
    return response["ciphertext"] + "\n"


TLS_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQ-not-really\n-----END PRIVATE KEY-----\n"
APP_CONF = "user = admin\npassword = \"s3cr3t-file-pass\"\n"


def secret_files_project(project, templates):
    (project / ".helm" / "secret" / "tls").mkdir(parents=True)
    (project / ".helm" / "secret" / "app.conf").write_text(werf_encrypt_file(APP_CONF, KEY))
    (project / ".helm" / "secret" / "tls" / "key.pem").write_text(werf_encrypt_file(TLS_KEY, KEY))
    for name, text in templates.items():
        (project / ".helm" / "templates" / name).write_text(text)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "secret files")
    return project


def test_werf_secret_file_gives_the_decrypted_content(project, helm_bin, werf_home):
    secret_files_project(project, {"files.yaml": """\
apiVersion: v1
kind: Secret
metadata:
  name: files
data:
  app.conf: {{ werf_secret_file "app.conf" | b64enc }}
  tls.key: {{ b64enc (werf_secret_file `tls/key.pem`) }}
"""})
    result, output = render(project, helm_bin, secret_key=KEY, verbosity=3)
    assert not result["failed"], output
    data = by_name(result["manifests"])[("Secret", "files")]["data"]
    assert base64.b64decode(data["app.conf"]).decode() == APP_CONF
    assert base64.b64decode(data["tls.key"]).decode() == TLS_KEY


def test_werf_secret_file_errors_name_the_template_line_and_show_no_secret(project, helm_bin, werf_home):
    secret_files_project(project, {"files.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: f\ndata:\n"
                                                 "  a: {{ werf_secret_file \"nosuch.conf\" | quote }}\n"})
    result, output = render(project, helm_bin, secret_key=KEY)
    assert result["failed"]
    assert result["msg"] == (".helm/templates/files.yaml:6: werf_secret_file: no secret file 'nosuch.conf' in "
                             ".helm/secret/ (found: app.conf, tls/key.pem)")

    (project / ".helm" / "templates" / "files.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: f\ndata:\n"
        "  a: {{ fail (printf \"bad %s\" (werf_secret_file \"app.conf\")) }}\n")
    git(project, "commit", "-q", "-am", "a template that fails with the content")
    result, output = render(project, helm_bin, secret_key=KEY)
    assert result["failed"]
    assert "s3cr3t-file-pass" not in output
    assert "***" in result["msg"]

    result, output = render(project, helm_bin, env={"WERF_SECRET_KEY": WRONG_KEY})
    assert result["failed"]
    assert result["msg"].startswith("secret values file .helm/secret-values.yaml: ") or \
        result["msg"].startswith("secret file .helm/secret/app.conf: cannot decrypt it"), result["msg"]
    assert "s3cr3t-file-pass" not in output and "MIIEvQ" not in output
