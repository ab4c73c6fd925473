# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad inputs of every kind, one table: each must fail with a message naming the culprit, never with a
traceback, and leave the registry and the cluster exactly as before (no namespace, tag or revision).

The modules run in this process (tests/module_runner.py), so the table stays fast; they talk to the real
registry, Docker Engine, API server and helm of the local environment.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest
import requests
import yaml

from conftest import ROOT
from gitrepo import IDENTITY, git
from module_runner import run_in_process

OWNERS = ("helm", "berth-converge")  # owner labels of release records: Helm's, and berth.converge 0.1's
TLS_REGISTRY = os.environ["BERTH_REGISTRY_TLS"]  # set by conftest from `hack/localenv env`
SECRET_KEY = "8e1f5c0a7b3d92e4c6a1f0b2d3e4f5a6"
WRONG_KEY = "00112233445566778899aabbccddeeff"
SECRET_TEXT = "s3cr3t-horse-battery"
RUN = os.urandom(3).hex()


def base_files(base_image):
    return {
        "werf.yaml": "project: bad\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n",
        "Dockerfile": f"FROM {base_image}\nCOPY a.txt /a.txt\n",
        "a.txt": "a\n",
        ".helm/Chart.yaml": "apiVersion: v2\nname: bad\nversion: 0.1.0\n",
        ".helm/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n",
    }


def werf_yaml(image_doc):
    return "project: bad\nconfigVersion: 1\n---\n" + image_doc


class Ctx:
    """What the cases need: projects made on demand, the environment's addresses, unique names per case."""

    def __init__(self, tmp, localenv):
        self.tmp = Path(tmp)
        self.env = localenv
        self.count = 0

    def names(self, index):
        return SimpleNamespace(ns=f"bad-{RUN}-{index}", release=f"bad-{RUN}-{index}",
                               repo=f"{self.env.registry}/bad-{RUN}-{index}")

    def project(self, files=None, *, commit=True, base=True):
        """A Git repository with the base project, ``files`` written over it (bytes as is; None deletes)."""
        self.count += 1
        path = self.tmp / f"p{self.count}"
        path.mkdir()
        git(path, "init", "-q")
        content = {**(base_files(self.env.base_image) if base else {}), **(files or {})}
        symlinks = {}
        for name, data in content.items():
            target = path / name
            if data is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, Symlink):
                symlinks[target] = data.target
            elif isinstance(data, bytes):
                target.write_bytes(data)
            else:
                target.write_text(data)
        for target, link in symlinks.items():
            os.symlink(link, target)
        if commit:
            git(path, "add", "-A")
            git(path, "commit", "-q", "-m", "bad input")
        return path

    def images(self, path, repo):
        run = run_in_process("image_digest", {"project_dir": str(path), "repo": repo})
        assert run.traceback is None and not run.result.get("failed"), run
        return run.result["images"]

    def encrypt(self, text, key=SECRET_KEY):
        built = subprocess.run([str(ROOT / "hack" / "conformance" / "werfsecret" / "build")], capture_output=True,
                               text=True, check=True).stdout.strip()
        request = json.dumps([{"op": "encrypt_yaml", "key": key, "yaml": text}])
        return json.loads(subprocess.run([built], input=request, capture_output=True, text=True,
                                         check=True).stdout)[0]["yaml"]


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass
class Case:
    category: str
    id: str
    module: str
    args: Callable  # (ctx, names) -> module arguments
    expect: tuple   # substrings the message must contain: the culprit
    env: dict = field(default_factory=dict)
    setup: Callable = None  # (ctx, names, kube_api) before the run; e.g. a namespace that exists already
    forbidden: tuple = ()   # substrings the message must not contain (secret values)


def digest(files, **extra):
    return lambda ctx, n: {"project_dir": str(ctx.project(files)), **extra}


def render(files=None, **extra):
    return lambda ctx, n: {"project_dir": str(ctx.project(files)), "release": n.release, "namespace": n.ns,
                           **extra}


def build(files=None, **extra):
    def args(ctx, n):
        path = ctx.project(files)
        return {"project_dir": str(path), "images": ctx.images(path, n.repo), **extra}
    return args


def apply(manifests, **extra):
    return lambda ctx, n: {"release": n.release, "namespace": n.ns, "manifests": manifests, **extra}


def kube(module, **extra):
    def args(ctx, n):
        base = {"release": n.release, "namespace": n.ns}
        if module == "release_apply":
            base["manifests"] = [CM]
        if module == "release_track":
            base = {"resources": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "namespace": n.ns}]}
        return {**base, **{k: (v(ctx, n) if callable(v) else v) for k, v in extra.items()}}
    return args


CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}}


def cm(**metadata):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", **metadata}, "data": {"a": "b"}}


def existing_namespace(ctx, n, kube_api):
    """The namespace exists with a ConfigMap of the release (Helm's ownership metadata, so it may be adopted)
    whose data another field manager owns, as before a conflicting apply."""
    metadata = {"name": "cm", "namespace": n.ns, "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {"meta.helm.sh/release-name": n.release, "meta.helm.sh/release-namespace": n.ns}}
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"a": "theirs"}}
    subprocess.run(["kubectl", "create", "namespace", n.ns], check=True, capture_output=True)
    subprocess.run(["kubectl", "apply", "--server-side", "--field-manager=someone-else", "-f", "-"],
                   input=json.dumps(body), text=True, check=True, capture_output=True)


def bad_kubeconfig(text):
    def make(ctx, n):
        path = ctx.tmp / f"kubeconfig-{n.ns}"
        path.write_text(text)
        return str(path)
    return make


def localenv_ca(ctx, n):
    return yaml.safe_load(Path(ctx.env.kubeconfig).read_text())["clusters"][0]["cluster"].get(
        "certificate-authority") or ctx.env.ca_cert


def api_server(ctx, n):
    return yaml.safe_load(Path(ctx.env.kubeconfig).read_text())["clusters"][0]["cluster"]["server"]


def secret_project(values_text=None, key=SECRET_KEY, **extra):
    """A chart with a secret-values.yaml encrypted with ``key`` (or the given text as is)."""
    def args(ctx, n):
        text = values_text if values_text is not None else ctx.encrypt(f"password: {SECRET_TEXT}\n", key)
        files = {".helm/secret-values.yaml": text,
                 ".helm/templates/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n"
                                                "stringData:\n  password: {{ .Values.password }}\n"}
        return {"project_dir": str(ctx.project(files)), "release": n.release, "namespace": n.ns, **extra}
    return args


def shallow_clone(ctx):
    origin = ctx.project({"b.txt": "b"})
    git(origin, "commit", "-q", "--allow-empty", "-m", "second")
    clone = ctx.tmp / f"shallow{ctx.count}"
    subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{origin}", str(clone)], check=True,
                   env={**os.environ, **IDENTITY})
    return {"project_dir": str(clone), "revision": "HEAD~1"}


def untracked_subdir(ctx, n):
    path = ctx.project()
    (path / "sub").mkdir()
    (path / "sub" / "werf.yaml").write_text("project: sub\nconfigVersion: 1\n")
    return {"project_dir": str(path / "sub"), "release": n.release, "namespace": n.ns}


IMAGE_DOC = "image: app\ndockerfile: Dockerfile\n"
VAULT_TEXT = "$ANSIBLE_VAULT;1.1;AES256\n6162636465666768696a6b6c6d6e6f70\n"

CASES = [
    # ---- werf.yaml
    Case("werf.yaml", "yaml-syntax", "image_digest", digest({"werf.yaml": "project: bad\nconfigVersion: [1\n"}),
         ("werf.yaml:", "YAML")),
    Case("werf.yaml", "invalid-utf8", "image_digest", digest({"werf.yaml": b"project: bad\nconfigVersion: 1\n# caf\xe9\n"}),
         ("werf.yaml:3", "UTF-8")),
    Case("werf.yaml", "absolute-context", "image_digest",
         digest({"werf.yaml": werf_yaml("image: app\ncontext: /app\ndockerfile: Dockerfile\n")}), ("werf.yaml:5", "context", "/app")),
    Case("werf.yaml", "absolute-dockerfile", "image_digest",
         digest({"werf.yaml": werf_yaml("image: app\ndockerfile: /Dockerfile\n")}), ("werf.yaml:5", "dockerfile")),
    Case("werf.yaml", "no-project", "image_digest", digest({"werf.yaml": "configVersion: 1\n"}), ("werf.yaml", "project")),
    Case("werf.yaml", "config-version-2", "image_digest", digest({"werf.yaml": "project: bad\nconfigVersion: 2\n"}),
         ("werf.yaml:2", "configVersion")),
    Case("werf.yaml", "unknown-meta-key", "image_digest", digest({"werf.yaml": "project: bad\nconfigVersion: 1\nbogus: 1\n"}),
         ("werf.yaml:3", "bogus")),
    Case("werf.yaml", "bad-image-name", "image_digest", digest({"werf.yaml": werf_yaml("image: App!\ndockerfile: Dockerfile\n")}),
         ("werf.yaml:4", "App!")),
    Case("werf.yaml", "no-dockerfile-key", "image_digest", digest({"werf.yaml": werf_yaml("image: app\n")}),
         ("werf.yaml", "dockerfile")),
    Case("werf.yaml", "dockerfile-not-committed", "image_digest",
         digest({"werf.yaml": werf_yaml("image: app\ndockerfile: Nope.Dockerfile\n")}), ("Nope.Dockerfile", "not found")),
    Case("werf.yaml", "duplicate-image", "image_digest",
         digest({"werf.yaml": werf_yaml(IMAGE_DOC + "---\n" + IMAGE_DOC)}), ("werf.yaml", "app")),
    Case("werf.yaml", "dependency-cycle", "image_digest", digest({"werf.yaml": werf_yaml(
        "image: a\ndockerfile: Dockerfile\ndependencies:\n- image: b\n---\nimage: b\ndockerfile: Dockerfile\n"
        "dependencies:\n- image: a\n")}), ("werf.yaml", "cycle")),
    Case("werf.yaml", "context-escapes", "image_digest",
         digest({"werf.yaml": werf_yaml("image: app\ncontext: ../x\ndockerfile: Dockerfile\n")}), ("werf.yaml", "../x")),
    Case("werf.yaml", "stapel-image", "image_digest", digest({"werf.yaml": werf_yaml("image: app\nfrom: alpine\n")}),
         ("werf.yaml:5", "Stapel")),
    Case("werf.yaml", "template-error", "image_digest",
         digest({"werf.yaml": "project: bad\nconfigVersion: 1\n{{ .Bogus.x }\n"}), ("werf.yaml",)),
    Case("werf.yaml", "not-committed", "image_digest",
         lambda ctx, n: {"project_dir": str(ctx.project({"werf.yaml": None, "x": "1"}))}, ("werf.yaml", "committed")),
    Case("werf.yaml", "context-add-files-not-list", "image_digest",
         digest({"werf.yaml": werf_yaml("image: app\ndockerfile: Dockerfile\ncontextAddFiles: x\n")}), ("contextAddFiles",)),
    Case("werf.yaml", "args-not-mapping", "image_digest",
         digest({"werf.yaml": werf_yaml("image: app\ndockerfile: Dockerfile\nargs: [1]\n")}), ("werf.yaml:6", "args")),
    Case("werf.yaml", "document-not-mapping", "image_digest", digest({"werf.yaml": "project: bad\nconfigVersion: 1\n---\n- x\n"}),
         ("werf.yaml:4", "mapping")),
    # ---- Dockerfile
    Case("Dockerfile", "unknown-instruction", "image_digest", digest({"Dockerfile": "FROM scratch\nBOGUS x\n"}),
         ("Dockerfile:2", "BOGUS")),
    Case("Dockerfile", "no-from", "image_digest", digest({"Dockerfile": "COPY a.txt /\n"}), ("Dockerfile",)),
    Case("Dockerfile", "symlink-outside-context", "image_digest", digest({
        "werf.yaml": werf_yaml("image: app\ncontext: app\ndockerfile: Dockerfile\n"), "app/x": "x",
        "app/Dockerfile": Symlink("../Dockerfile")}), ("app/Dockerfile", "symlink", "outside the build context")),
    Case("Dockerfile", "symlink-loop", "image_digest", digest({"werf.yaml": werf_yaml("image: app\ndockerfile: D\n"),
                                                               "D": Symlink("D")}), ("D", "symlinks")),
    Case("Dockerfile", "symlink-absolute", "image_digest", digest({"werf.yaml": werf_yaml("image: app\ndockerfile: D\n"),
                                                                   "D": Symlink("/etc/hostname")}), ("'D'", "/etc/hostname")),
    Case("Dockerfile", "unterminated-heredoc", "image_digest", digest({"Dockerfile": "FROM scratch\nRUN <<EOF\necho\n"}),
         ("Dockerfile",)),
    Case("Dockerfile", "from-unknown-stage-arg", "image_digest", digest({"Dockerfile": "FROM ${NOPE}\n"}), ("Dockerfile",)),
    # the build context is the digested file set, so a missing COPY source fails already when digesting
    Case("Dockerfile", "copy-source-missing", "image_digest", digest({"Dockerfile": "FROM scratch\nCOPY missing.txt /\n"}),
         ("Dockerfile:2", "missing.txt")),
    Case("Dockerfile", "from-missing-image", "image_build",
         lambda ctx, n: build({"Dockerfile": f"FROM {ctx.env.registry}/bad-{RUN}-none/none:x\n"})(ctx, n),
         ("image 'app'", f"bad-{RUN}-none/none")),
    Case("Dockerfile", "run-fails", "image_build",
         lambda ctx, n: build({"Dockerfile": f"FROM {ctx.env.base_image}\nRUN exit 3\n"})(ctx, n),
         ("image 'app'", "RUN exit 3")),
    # ---- Git
    Case("Git", "project-dir-missing", "image_digest", lambda ctx, n: {"project_dir": str(ctx.tmp / "nope")},
         ("project_dir", "no such directory")),
    Case("Git", "not-a-repository", "image_digest", lambda ctx, n: {"project_dir": str(ctx.tmp)}, ("not a Git repository",)),
    Case("Git", "no-commit", "image_digest", lambda ctx, n: {"project_dir": str(ctx.project(commit=False))},
         ("no commit",)),
    Case("Git", "revision-missing", "image_digest", digest(None, revision="deadbeef"), ("revision 'deadbeef'",)),
    Case("Git", "revision-empty", "image_digest", digest(None, revision=""), ("revision",)),
    Case("Git", "shallow-clone-parent", "image_digest", lambda ctx, n: shallow_clone(ctx), ("HEAD~1", "shallow")),
    Case("Git", "config-missing", "image_digest", digest(None, config="other.yaml"), ("other.yaml", "not found")),
    Case("Git", "config-absolute", "image_digest", digest(None, config="/etc/werf.yaml"), ("config",)),
    Case("Git", "subdirectory-not-committed", "chart_render", untracked_subdir, ("sub", "not in")),
    Case("Git", "render-revision-missing", "chart_render", render(None, revision="nope"), ("revision 'nope'",)),
    # ---- options
    Case("options", "apply-timeout-negative", "release_apply", kube("release_apply", timeout=-1), ("'timeout'", "-1")),
    Case("options", "apply-lock-timeout-negative", "release_apply", kube("release_apply", lock_timeout=-5), ("lock_timeout",)),
    Case("options", "apply-concurrency-zero", "release_apply", kube("release_apply", concurrency=0), ("concurrency",)),
    Case("options", "apply-concurrency-not-int", "release_apply", kube("release_apply", concurrency="x"), ("concurrency",)),
    Case("options", "apply-release-not-dns", "release_apply", kube("release_apply", release="Bad_Name"), ("release", "Bad_Name")),
    Case("options", "apply-release-too-long", "release_apply", kube("release_apply", release="a" * 54), ("release", "53")),
    Case("options", "apply-namespace-upper", "release_apply", kube("release_apply", namespace="Prod"), ("namespace", "Prod")),
    Case("options", "apply-namespace-too-long", "release_apply", kube("release_apply", namespace="n" * 64), ("namespace", "63")),
    Case("options", "apply-state-bogus", "release_apply", kube("release_apply", state="bogus"), ("state",)),
    Case("options", "apply-unknown-option", "release_apply", kube("release_apply", bogus_option=1), ("bogus_option",)),
    Case("options", "apply-manifests-missing", "release_apply",
         lambda ctx, n: {"release": n.release, "namespace": n.ns}, ("manifests",)),
    Case("options", "rollback-revision-zero", "release_rollback", kube("release_rollback", revision=0), ("revision",)),
    Case("options", "rollback-lock-timeout-negative", "release_rollback", kube("release_rollback", lock_timeout=-1),
         ("lock_timeout",)),
    Case("options", "track-timeout-negative", "release_track", kube("release_track", timeout=-1), ("timeout",)),
    Case("options", "track-revision-without-release", "release_track", kube("release_track", revision=2), ("release",)),
    Case("options", "info-release-empty", "release_info", kube("release_info", release=""), ("release",)),
    Case("options", "build-docker-timeout-negative", "image_build", build(None, docker_timeout=-1), ("docker_timeout",)),
    Case("options", "build-concurrency-zero", "image_build", build(None, concurrency=0), ("concurrency",)),
    Case("options", "build-image-without-name", "image_build",
         lambda ctx, n: {"project_dir": str(ctx.project()), "image": {"ref": "x"}}, ("image",)),
    Case("options", "digest-repo-empty", "image_digest", digest(None, repo=""), ("repo",)),
    Case("options", "digest-repo-upper", "image_digest", lambda ctx, n: digest(None, repo=n.repo + "/Shop")(ctx, n),
         ("repo", "Shop")),
    Case("options", "digest-repo-tag", "image_digest", lambda ctx, n: digest(None, repo=n.repo + ":v1")(ctx, n),
         ("repo", "tag")),
    Case("options", "digest-repo-digest", "image_digest",
         lambda ctx, n: digest(None, repo=n.repo + "@sha256:" + "a" * 64)(ctx, n), ("repo", "digest")),
    Case("options", "render-chart-dir-absolute", "chart_render", render(None, chart_dir="/etc"), ("chart_dir",)),
    Case("options", "render-config-empty", "chart_render", render(None, config=""), ("config",)),
    Case("options", "render-env-empty", "chart_render", render(None, env=""), ("env",)),
    Case("options", "render-release-upper", "chart_render", render(None, release="Shop"), ("release", "Shop")),
    Case("options", "registry-concurrency-negative", "registry_images",
         lambda ctx, n: {"refs": [n.repo + "/app:x"], "concurrency": -1}, ("concurrency",)),
    Case("options", "registry-ref-not-string", "registry_images", lambda ctx, n: {"refs": [5.5]}, ("refs[0]",)),
    # ---- registry
    Case("registry", "unreachable-registry", "registry_images", lambda ctx, n: {"refs": ["127.0.0.1:1/bad/app:x"]},
         ("127.0.0.1:1",)),
    Case("registry", "reference-uppercase", "registry_images", lambda ctx, n: {"refs": [n.repo + "/App:x"]}, ("App",)),
    Case("registry", "tls-without-credentials", "registry_images",
         lambda ctx, n: {"refs": [f"{ctx.env.registry_tls}/bad/app:x"], "ca_cert": ctx.env.ca_cert},
         (TLS_REGISTRY,)),
    Case("registry", "tls-wrong-password", "registry_images",
         lambda ctx, n: {"refs": [f"{ctx.env.registry_tls}/bad/app:x"], "ca_cert": ctx.env.ca_cert,
                         "registry_username": ctx.env.registry_tls_username, "registry_password": "wrong-pass"},
         (TLS_REGISTRY,), forbidden=("wrong-pass",)),
    Case("registry", "tls-untrusted-certificate", "registry_images",
         lambda ctx, n: {"refs": [f"{ctx.env.registry_tls}/bad/app:x"]}, (TLS_REGISTRY,)),
    Case("registry", "ca-cert-missing", "registry_images",
         lambda ctx, n: {"refs": [f"{ctx.env.registry_tls}/bad/app:x"], "ca_cert": str(ctx.tmp / "no-ca.crt")},
         ("ca_cert",)),
    Case("registry", "build-registry-unreachable", "image_build",
         lambda ctx, n: build(None)(ctx, SimpleNamespace(repo="127.0.0.1:1/bad")), ("127.0.0.1:1",)),
    Case("registry", "build-tls-wrong-password", "image_build",
         lambda ctx, n: {**build(None)(ctx, SimpleNamespace(repo=f"{ctx.env.registry_tls}/bad-{RUN}")),
                         "ca_cert": ctx.env.ca_cert, "registry_username": "berth", "registry_password": "wrong-pass"},
         (TLS_REGISTRY,), forbidden=("wrong-pass",)),
    Case("registry", "insecure-registries-empty-item", "registry_images",
         lambda ctx, n: {"refs": [n.repo + "/app:x"], "insecure_registries": [""]}, ("insecure_registries[0]",)),
    # ---- Docker
    Case("Docker", "socket-missing", "image_build", build(None, docker_host="unix:///nonexistent.sock"),
         ("docker_host", "/nonexistent.sock")),
    Case("Docker", "tcp-refused", "image_build", build(None, docker_host="tcp://127.0.0.1:1"),
         ("docker_host", "tcp://127.0.0.1:1")),
    Case("Docker", "host-bad-scheme", "image_build", build(None, docker_host="docker.example:2375"), ("docker_host",)),
    Case("Docker", "timeout-zero", "image_build", build(None, docker_timeout=0), ("docker_timeout",)),
    # ---- kubeconfig and cluster
    Case("cluster", "kubeconfig-missing", "release_info", kube("release_info", kubeconfig=lambda ctx, n: str(ctx.tmp / "none")),
         ("kubeconfig",)),
    Case("cluster", "kubeconfig-directory", "release_info", kube("release_info", kubeconfig=lambda ctx, n: str(ctx.tmp)),
         ("kubeconfig", "not a file")),
    Case("cluster", "kubeconfig-no-clusters", "release_info",
         kube("release_info", kubeconfig=bad_kubeconfig("apiVersion: v1\nkind: Config\n")), ("kubeconfig",)),
    Case("cluster", "context-missing", "release_apply", kube("release_apply", context="no-such-context"), ("no-such-context",)),
    Case("cluster", "host-without-scheme", "release_info",
         kube("release_info", host="127.0.0.1:16443", api_key="not-a-real-token"), ("host",)),
    Case("cluster", "host-refused", "release_apply",
         kube("release_apply", host="https://127.0.0.1:1", api_key="not-a-real-token", timeout=3, validate_certs=False),
         ("127.0.0.1:1",)),
    Case("cluster", "wrong-token", "release_apply",
         kube("release_apply", host=api_server, api_key="wrong-token", ca_cert=localenv_ca), ("Unauthorized",),
         forbidden=("wrong-token",)),
    Case("cluster", "ca-cert-missing", "release_info", kube("release_info", ca_cert=lambda ctx, n: str(ctx.tmp / "no-ca")),
         ("ca_cert",)),
    Case("cluster", "client-cert-missing", "release_info",
         kube("release_info", client_cert=lambda ctx, n: str(ctx.tmp / "no.crt")), ("client_cert",)),
    Case("cluster", "create-namespace-false", "release_apply", kube("release_apply", create_namespace=False),
         ("create_namespace",)),
    Case("cluster", "rollback-without-revisions", "release_rollback", kube("release_rollback"), ("release",)),
    Case("cluster", "track-missing-resource", "release_track", kube("release_track", timeout=1), ("ConfigMap", "cm")),
    # ---- chart
    Case("chart", "template-syntax", "chart_render", render({".helm/templates/cm.yaml": "a: {{ .Values.x\n"}),
         ("templates/cm.yaml",)),
    Case("chart", "template-fail", "chart_render", render({".helm/templates/cm.yaml": '{{ fail "no db configured" }}\n'}),
         ("no db configured",)),
    Case("chart", "renders-invalid-yaml", "chart_render", render({".helm/templates/cm.yaml": "a: [1\n"}), ("cm.yaml",)),
    Case("chart", "helm-binary-silent-failure", "chart_render", render(None, helm_binary="/bin/false"),
         ("helm template failed", "status 1")),
    Case("chart", "helm-binary-missing", "chart_render", render(None, helm_binary="no-such-helm"), ("no-such-helm",)),
    Case("chart", "values-file-missing", "chart_render", render(None, values_files=["nope.yaml"]), ("nope.yaml",)),
    Case("chart", "values-file-invalid-yaml", "chart_render", render({"v.yaml": "a: [1\n"}, values_files=["v.yaml"]),
         ("v.yaml",)),
    Case("chart", "set-werf-key", "chart_render", render(None, set={"werf.repo": "x"}), ("werf",)),
    Case("chart", "chart-dir-missing", "chart_render", render(None, chart_dir="nothere"), ("nothere",)),
    Case("chart", "chart-yaml-invalid", "chart_render", render({".helm/Chart.yaml": "name: [\n"}), ("Chart.yaml",)),
    Case("chart", "dependency-missing", "chart_render", render({".helm/Chart.yaml": (
        "apiVersion: v2\nname: bad\nversion: 0.1.0\ndependencies:\n"
        "- {name: sub, version: 0.1.0, repository: 'file://../nope'}\n")}), ("sub",)),
    Case("chart", "vault-values-file", "chart_render", render({"v.yaml": VAULT_TEXT}, values_files=["v.yaml"]),
         ("v.yaml", "Vault")),
    # ---- manifests
    Case("manifests", "metadata-string", "release_apply", apply([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": "oops"}]),
         ("manifests[0]", "metadata")),
    Case("manifests", "annotations-list", "release_apply", apply([cm(annotations=["a", "b"])]),
         ("manifests[0]", "metadata.annotations")),
    Case("manifests", "label-value-int", "release_apply", apply([cm(labels={"tier": 1})]), ("manifests[0]", "labels", "tier")),
    Case("manifests", "name-int", "release_apply", apply([cm(name=123)]), ("manifests[0]", "metadata.name", "123")),
    Case("manifests", "name-missing", "release_apply",
         apply([CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}]), ("manifests[1]", "metadata.name")),
    Case("manifests", "kind-missing", "release_apply", apply([{"apiVersion": "v1", "metadata": {"name": "x"}}]),
         ("manifests[0]", "kind")),
    Case("manifests", "api-version-missing", "release_apply", apply([{"kind": "ConfigMap", "metadata": {"name": "x"}}]),
         ("manifests[0]", "apiVersion")),
    Case("manifests", "namespace-int", "release_apply", apply([cm(namespace=5)]), ("manifests[0]", "metadata.namespace")),
    Case("manifests", "not-a-mapping", "release_apply", apply(["oops"]), ("manifests",)),
    Case("manifests", "unknown-kind", "release_apply",
         apply([CM, {"apiVersion": "example.com/v1", "kind": "Bogus", "metadata": {"name": "x"}}]), ("Bogus",)),
    Case("manifests", "unknown-field", "release_apply", apply([{**CM, "spec": {"x": 1}}]), ("ConfigMap", "spec")),
    Case("manifests", "invalid-name", "release_apply", apply([cm(name="Bad_Name")]), ("ConfigMap", "Bad_Name")),
    Case("manifests", "werf-annotation-bad-value", "release_apply",
         apply([CM, cm(name="waits", annotations={"werf.io/deploy-dependency-db": "kind=Secret"})]),
         ("waits", "werf.io/deploy-dependency-db")),
    Case("manifests", "fail-mode-bad-value", "release_apply",
         apply([CM, cm(name="tracked", annotations={"werf.io/fail-mode": "Sometimes"})]),
         ("tracked", "werf.io/fail-mode", "Sometimes")),
    Case("manifests", "ready-when-bad-expression", "release_apply",
         apply([CM, cm(name="ruled", annotations={"berth.converge/ready-when": "status.[ready"})]),
         ("ruled", "berth.converge/ready-when")),
    Case("manifests", "other-namespace-missing", "release_apply", apply([cm(namespace=f"bad-{RUN}-absent")]),
         (f"bad-{RUN}-absent",)),
    Case("manifests", "conflict-without-force", "release_apply", apply([CM], force_conflicts=False), ("force_conflicts",),
         setup=existing_namespace),
    Case("manifests", "bad-object-into-existing-namespace", "release_apply",
         apply([CM, cm(name="Nope_Name")]), ("Nope_Name",), setup=existing_namespace),
    # ---- secrets
    Case("secrets", "secret-values-file-missing", "chart_render", render(None, secret_values_files=["nope-secret.yaml"]),
         ("nope-secret.yaml",)),
    Case("secrets", "wrong-key", "chart_render", secret_project(secret_key=WRONG_KEY), ("secret-values.yaml",),
         forbidden=(SECRET_TEXT,)),
    Case("secrets", "no-key", "chart_render", secret_project(), ("secret-values.yaml",),
         env={"WERF_SECRET_KEY": "", "WERF_HOME": "/nonexistent-werf-home"}, forbidden=(SECRET_TEXT,)),
    Case("secrets", "key-not-hex", "chart_render", secret_project(secret_key="zz" * 16), ("secret",), forbidden=(SECRET_TEXT,)),
    Case("secrets", "key-wrong-length", "chart_render", secret_project(secret_key="abcd"), ("secret",),
         forbidden=(SECRET_TEXT,)),
    Case("secrets", "corrupted-value", "chart_render", secret_project("password: 1000zzzz\n", secret_key=SECRET_KEY),
         ("secret-values.yaml", "password")),
    Case("secrets", "secret-data-not-base64", "release_apply",
         apply([{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"p": SECRET_TEXT + "!"}}]),
         ("Secret",), forbidden=(SECRET_TEXT,)),
    Case("secrets", "secret-metadata-string", "release_apply",
         apply([{"apiVersion": "v1", "kind": "Secret", "metadata": "s", "stringData": {"p": SECRET_TEXT}}]),
         ("manifests[0]", "metadata"), forbidden=(SECRET_TEXT,)),
]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, localenv, registry, registry_tls, kube_api, helm_bin):
    return Ctx(tmp_path_factory.mktemp("bad-inputs"), localenv)


def namespace_state(kube_api, name):
    """None when absent, "terminating" when being deleted; else the names of its ConfigMaps with their
    resourceVersions."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(kube_api)
    try:
        found = core.read_namespace(name)
    except ApiException as exc:
        assert exc.status == 404, exc
        return None
    if found.metadata.deletion_timestamp:
        return "terminating"
    return sorted((c.metadata.name, c.metadata.resource_version) for c in core.list_namespaced_config_map(name).items)


def release_records(kube_api, release):
    from kubernetes import client

    found = client.CoreV1Api(kube_api).list_secret_for_all_namespaces(
        label_selector=f"owner in ({','.join(OWNERS)}),name={release}")
    return [s.metadata.name for s in found.items]


def registry_tags(localenv, repository):
    resp = requests.get(f"http://{localenv.registry}/v2/{repository}/tags/list", timeout=10)
    return [] if resp.status_code == 404 else resp.json().get("tags") or []


@pytest.mark.parametrize("case", CASES, ids=[f"{c.category}:{c.id}" for c in CASES])
def test_bad_input_fails_naming_the_culprit_and_changes_nothing(case, ctx, kube_api, monkeypatch):
    index = CASES.index(case)
    names = ctx.names(index)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    if case.setup:
        case.setup(ctx, names, kube_api)
    before = namespace_state(kube_api, names.ns)
    args = case.args(ctx, names)

    run = run_in_process(case.module, args)

    assert run.traceback is None, f"{case.module} ended in a traceback:\n{run.traceback}"
    assert run.result and run.result.get("failed"), f"{case.module} accepted the bad input: {run.result}"
    message = run.result["msg"]
    print(f"[{case.category}:{case.id}] {message}")  # shown with -s, to read what users get
    assert "Traceback" not in message
    for culprit in case.expect:
        assert culprit.lower() in message.lower(), f"the message does not name {culprit!r}: {message}"
    for secret in case.forbidden:
        assert secret not in json.dumps(run.result), f"{secret!r} leaked into the result"
    # the cluster and the registry are as before
    assert namespace_state(kube_api, names.ns) == before, f"namespace {names.ns} was changed or left behind"
    assert release_records(kube_api, names.release) == [], "a release revision was recorded"
    assert registry_tags(ctx.env, f"bad-{RUN}-{index}/app") == [], "a tag was pushed"
    if case.setup:
        subprocess.run(["kubectl", "delete", "namespace", names.ns, "--wait=false"], check=True, capture_output=True)


def test_the_table_covers_every_kind_of_input():
    counts = {}
    for case in CASES:
        counts[case.category] = counts.get(case.category, 0) + 1
    assert sum(counts.values()) >= 80, counts
    assert set(counts) == {"werf.yaml", "Dockerfile", "Git", "options", "registry", "Docker", "cluster", "chart",
                           "manifests", "secrets"}, counts
    assert len({(c.category, c.id) for c in CASES}) == len(CASES), "case ids must be unique"


def test_no_namespace_tag_or_repository_of_this_run_is_left(ctx, kube_api):
    """After the table: nothing named after this run exists in the cluster or the registry's catalog."""
    from kubernetes import client

    left = [ns.metadata.name for ns in client.CoreV1Api(kube_api).list_namespace().items
            if ns.metadata.name.startswith(f"bad-{RUN}")
            and not any(c.setup and ns.metadata.name == ctx.names(i).ns for i, c in enumerate(CASES))]
    assert left == []
    assert [repo for repo in registry_catalog(ctx.env) if repo.startswith(f"bad-{RUN}")] == []


def registry_catalog(localenv):
    """Every repository of the registry, page after page."""
    repositories, last = [], ""
    while True:
        resp = requests.get(f"http://{localenv.registry}/v2/_catalog", params={"n": 1000, "last": last}, timeout=30)
        resp.raise_for_status()
        page = resp.json().get("repositories") or []
        repositories += page
        if "next" not in resp.headers.get("Link", "") or not page:
            return repositories
        last = page[-1]


def test_a_dockerfile_committed_as_a_symlink_is_built_as_docker_follows_it(ctx, docker_client):
    """Docker's builder follows a Dockerfile symlink inside the context: the digest covers the target's text,
    and the built image is the one the target describes."""
    files = {"werf.yaml": werf_yaml("image: app\ncontext: app\ndockerfile: Dockerfile\n"), "app/a.txt": "a\n",
             "app/real/Dockerfile": f"FROM {ctx.env.base_image}\nCOPY a.txt /from-target.txt\n",
             "app/Dockerfile": Symlink("real/Dockerfile")}
    path = ctx.project(files)
    repo = f"{ctx.env.registry}/symlink-{RUN}"  # not bad-RUN: this one is pushed
    images = ctx.images(path, repo)
    run = run_in_process("image_build", {"project_dir": str(path), "images": images})
    assert run.traceback is None and not run.result.get("failed"), run.result
    ref = run.result["images"][0]["ref"]
    output = docker_client.containers.run(ref, ["cat", "/from-target.txt"], remove=True)
    assert output == b"a\n"
    (path / "app/real/Dockerfile").write_text(f"FROM {ctx.env.base_image}\nCOPY a.txt /other.txt\n")
    git(path, "commit", "-qam", "change the target only")
    assert ctx.images(path, repo)[0]["digest"] != images[0]["digest"], "the digest must cover the link's target"
