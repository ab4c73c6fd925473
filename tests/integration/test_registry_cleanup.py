# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""registry_cleanup against the local registry (deletes enabled), a throwaway registry without deletes, and the
local cluster: a Git repository of 30 commits over branches and tags, one synthetic image per commit, releases and
workloads in two namespaces standing in for two clusters. Each case asserts exactly which tags remain."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid

import pytest
import requests

from conftest import run_module
from gitrepo import commit as git_commit, git
from registry_push import ago, push_image, put_manifest, tags_of
from ansible_collections.berth.converge.plugins.module_utils.cleanup import Cleanup, Cluster, Options
from ansible_collections.berth.converge.plugins.module_utils.digest import compute_digests
from ansible_collections.berth.converge.plugins.module_utils.kube.client import api_client
from ansible_collections.berth.converge.plugins.module_utils.project import load_project
from ansible_collections.berth.converge.plugins.module_utils.registry import RegistryClient

HOUR, DAY = 3600, 86400
WERF_DEFAULT = "project: cleanup\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n"
WERF_CUSTOM = """project: cleanup
configVersion: 1
cleanup:
  disableKubernetesBasedPolicy: true
  keepPolicies:
  - references:
      tag: /^v2\\..*/
  - references:
      branch: /^feature\\/.*/
      limit: {last: 1, in: 336h, operator: Or}
  - references:
      branch: /^release\\/.*/
    imagesPerReference: {last: 1, in: 240h, operator: Or}
  - references:
      branch: main
    imagesPerReference: {last: 3, in: 96h, operator: And}
---
image: app
dockerfile: Dockerfile
"""

# (label, parent label or None, age in seconds). Branch heads and tags below. 30 commits.
MAIN = [("m0", 40 * DAY), ("m1", 30 * DAY), ("m2", 25 * DAY), ("m3", 20 * DAY), ("m4", 15 * DAY), ("m5", 12 * DAY),
        ("m6", 9 * DAY), ("m7", 5 * DAY), ("m8", 3 * DAY), ("m9", 1 * DAY)]
BRANCHES = {
    "feature/new": ("m7", [("f1", 2 * DAY), ("f2", 1 * DAY), ("f3", 12 * HOUR), ("f4", 6 * HOUR)]),
    "feature/stale": ("m3", [("s1", 14 * DAY), ("s2", 13 * DAY), ("s3", 12 * DAY)]),
    "release/1": ("m4", [("r1", 11 * DAY), ("r2", 9.5 * DAY), ("r3", 9 * DAY)]),
    "staging": ("m6", [("st1", 8 * DAY), ("st2", 7 * DAY), ("st3", 6 * DAY), ("st4", 5 * DAY), ("st5", 4 * DAY)]),
    "fix/x": ("m1", [("x1", 29 * DAY), ("x2", 28 * DAY), ("x3", 27 * DAY), ("x4", 26 * DAY), ("x5", 25.5 * DAY)]),
}
TAGS = {"v0.9": "m0", "v1.0": "m2", "v1.1": "m5", "v2.0": "m8"}  # v1.1 annotated


def _dated(seconds_ago):
    stamp = f"@{int(time.time() - seconds_ago)} +0000"
    return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The Git repository and the image tag of each commit label (computed by the collection's digest code)."""
    path = tmp_path_factory.mktemp("cleanup-project")
    files = {"werf.yaml": WERF_DEFAULT, "werf-custom.yaml": WERF_CUSTOM, "Dockerfile": "FROM scratch\nCOPY a.txt /a\n"}
    git(path, "init", "-q", "-b", "main")
    commits = {"m0": git_commit(path, {**files, "a.txt": "m0"}, "m0", env=_dated(MAIN[0][1]))}
    for label, age in MAIN[1:]:
        commits[label] = git_commit(path, {"a.txt": label}, label, env=_dated(age))
    for branch, (parent, chain) in BRANCHES.items():
        git(path, "checkout", "-q", "-b", branch, commits[parent])
        for label, age in chain:
            commits[label] = git_commit(path, {"a.txt": label}, label, env=_dated(age))
    git(path, "checkout", "-q", "main")
    for tag, label in TAGS.items():
        if tag == "v1.1":
            git(path, "tag", "-a", "-m", tag, tag, commits[label], env=_dated(DAY))
        else:
            git(path, "tag", tag, commits[label])
    assert len(commits) == 30
    tags = {}
    for label, sha in commits.items():
        loaded = load_project(str(path), revision=sha)
        (image,) = compute_digests(loaded.git, loaded.config)
        tags[label] = image.tag
    assert len(set(tags.values())) == 30
    return path, tags


@pytest.fixture
def two_namespaces(kube_api):
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    names = [f"t-cleanup-{side}-{os.urandom(3).hex()}" for side in ("east", "west")]
    for name in names:
        core.create_namespace({"metadata": {"name": name}})
    yield names
    for name in names:
        core.delete_namespace(name)


def _repo(registry):
    return f"{registry}/cleanup-{uuid.uuid4().hex[:10]}"


def _push_all(registry, repo, tags, created_overrides=None):
    session = requests.Session()
    repository = f"{repo.split('/', 1)[1]}/app"
    digests = {}
    for label, tag in tags.items():
        created = (created_overrides or {}).get(label, ago(days=3))
        digests[label] = push_image(registry, repository, tag, created=created, session=session)
    return repository, digests


def _deploy_live(kube, namespace, image):
    kube.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body={
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "live"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "live"}}, "template": {
            "metadata": {"labels": {"app": "live"}},
            "spec": {"containers": [{"name": "main", "image": image}]}}}})


def _record_release(localenv, release, namespace, image_ref, value):
    """A revision of a real release whose record names ``image_ref`` (a ConfigMap is all that runs)."""
    result, output = run_module("release_apply", {
        "release": release, "namespace": namespace, "kubeconfig": localenv.kubeconfig,
        "manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                       "data": {"value": value}}],
        "images": [{"name": "app", "ref": image_ref}]})
    assert not result["failed"], output


def _labels(tags, remaining):
    by_tag = {tag: label for label, tag in tags.items()}
    return sorted(by_tag.get(tag, tag) for tag in remaining)


def test_default_policies_two_clusters_check_mode_and_exact_result(localenv, registry, project, two_namespaces):
    path, tags = project
    repo = _repo(registry)
    east, west = two_namespaces
    # f1 was built 30 minutes ago: only the grace period (werf's default 2 h) keeps it
    repository, digests = _push_all(registry, repo, tags, {"f1": ago(minutes=30)})
    session = requests.Session()
    manifest = session.get(f"http://{registry}/v2/{repository}/manifests/{tags['r1']}",
                           headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).content
    put_manifest(session, registry, repository, "manual", manifest)        # a foreign tag on r1's manifest
    shared = "a" * 64
    put_manifest(session, registry, repository, shared,                    # a content tag on m9's manifest
                 session.get(f"http://{registry}/v2/{repository}/manifests/{tags['m9']}",
                             headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).content)
    orphan = "b" * 64
    push_image(registry, repository, orphan, created=ago(days=20), session=session)
    _deploy_live(localenv_api(localenv), east, f"{repo}/app:{tags['x1']}")
    _record_release(localenv, "rel-west", west, f"{repo}/app:{tags['s1']}", "one")
    _record_release(localenv, "rel-west", west, f"{repo}/app:{tags['m9']}", "two")
    args = {"project_dir": str(path), "repo": repo, "clusters": [
        {"name": "east", "kubeconfig": localenv.kubeconfig, "releases": [{"name": "rel-east", "namespace": east}]},
        {"name": "west", "kubeconfig": localenv.kubeconfig, "releases": [{"name": "rel-west", "namespace": west}]},
    ]}
    before = tags_of(registry, repository)
    assert len(before) == 33
    with RegistryClient() as client:  # distribution 2.8 serves one page whatever n is; pages: the unit tests
        assert sorted(client.list_tags(f"{registry}/{repository}", page_size=7)) == before

    planned, output = run_module("registry_cleanup", args, check_mode=True)
    assert not planned["failed"], output
    assert tags_of(registry, repository) == before, "check mode deleted something"
    expected_deleted = ["f2", "r2", "r3", "s2", "s3", "x2", "x3", "x4", "x5", orphan]
    assert _labels(tags, [i["tag"] for i in planned["images"] if i["action"] == "delete"]) == sorted(expected_deleted)
    assert planned["changed"] is True

    reasons = {_labels(tags, [i["tag"]])[0]: i["reasons"] for i in planned["images"]}
    assert any("Deployment" in r and east in r and "cluster east" in r for r in reasons["x1"])
    assert any("release rel-west revision 1" in r and "cluster west" in r for r in reasons["s1"])
    assert any("grace period" in r for r in reasons["f1"])
    assert any("Git branch main" in r for r in reasons["m0"])          # main: the last 10 images
    assert any("Git branch staging" in r for r in reasons["st1"])
    assert any("Git tag v1.1" in r for r in reasons["m5"])            # annotated tag
    assert any("Git branch feature/new" in r for r in reasons["f3"])
    assert reasons["manual"] == ["not a content tag of berth.converge"]
    assert any("same manifest" in r and "manual" in r for r in reasons["r1"])
    assert any("same manifest" in r for r in reasons[shared])

    done, output = run_module("registry_cleanup", args)
    assert not done["failed"], output
    assert done["changed"] is True
    remaining = tags_of(registry, repository)
    assert _labels(tags, remaining) == sorted(set(_labels(tags, before)) - set(expected_deleted))
    assert sorted(done["deleted"]) == sorted(f"{repo}/app:{tags.get(label, label)}" for label in expected_deleted)

    again, output = run_module("registry_cleanup", args)
    assert not again["failed"], output
    assert again["changed"] is False and again["deleted"] == []


def localenv_api(localenv):
    return api_client({"kubeconfig": localenv.kubeconfig})


def test_custom_keep_policies_limit_in_operator(localenv, registry, project):
    """werf-custom.yaml: tag regexp, branch limit {last, in, Or}, imagesPerReference {last, in, Or/And}."""
    path, tags = project
    repo = _repo(registry)
    repository, _digests = _push_all(registry, repo, tags)
    args = {"project_dir": str(path), "repo": repo, "config": "werf-custom.yaml", "grace_period": "0"}
    result, output = run_module("registry_cleanup", args)
    assert not result["failed"], output
    # v2.0 -> m8; feature/new and feature/stale (14 days, Or) -> f4, s3; release/1 last 1 Or within 10 days -> r3, r2;
    # main last 3 And within 4 days -> m9, m8
    assert _labels(tags, tags_of(registry, repository)) == sorted(["m8", "m9", "f4", "s3", "r2", "r3"])
    kept = {_labels(tags, [i["tag"]])[0]: i["reasons"] for i in result["images"] if i["action"] == "keep"}
    m8 = _commit(path, "v2.0")[:12]
    assert sorted(kept["m8"]) == [f"Git branch main (commit {m8})", f"Git tag v2.0 (commit {m8})"]
    assert kept["s3"] == [f"Git branch feature/stale (commit {_commit(path, 'feature/stale')[:12]})"]
    assert kept["r2"] == [f"Git branch release/1 (commit {_commit(path, 'release/1~1')[:12]})"]


def _commit(path, ref):
    return git(path, "rev-parse", f"{ref}^{{commit}}")


def test_concurrent_converge_is_safe(localenv, registry, project, namespace, kube_api):
    """Plan, then a converge deploys a planned-to-delete image and pushes a new one, then execute: both stay."""
    path, tags = project
    repo = _repo(registry)
    subset = {label: tags[label] for label in ("x2", "x3", "x4", "m9")}
    repository, _digests = _push_all(registry, repo, subset)
    options = Options(project_dir=str(path), repo=repo, grace_seconds=2 * HOUR,
                      clusters=[Cluster("local", api_client({"kubeconfig": localenv.kubeconfig}),
                                        [("shop", namespace)])])
    with RegistryClient() as client:
        cleanup = Cleanup(options, client)
        cleanup.plan()
        planned = sorted(state.tag for state in cleanup.tags if state.action == "delete")
        assert planned == sorted([tags["x2"], tags["x3"], tags["x4"]])
        # the converge: deploys x3 (an old image, e.g. a rollback to that commit) and pushes a fresh image
        _record_release(localenv, "shop", namespace, f"{repo}/app:{tags['x3']}", "rollback")
        fresh = "c" * 64
        push_image(registry, repository, fresh, created=ago(minutes=1))
        deleted = cleanup.execute()
    assert sorted(state.tag for state in deleted) == sorted([tags["x2"], tags["x4"]])
    x3 = next(state for state in cleanup.tags if state.tag == tags["x3"])
    assert x3.action == "keep" and "re-check" in x3.reasons[0] and "release shop revision 1" in x3.reasons[0]
    assert _labels(tags, tags_of(registry, repository)) == sorted(["m9", "x3", fresh])


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def registry_without_deletes(tmp_path):
    """A throwaway distribution registry with deletes disabled, stopped afterwards."""
    port = _free_port()
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {tmp_path}/data}}\n"
                      f"  delete: {{enabled: false}}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        for _attempt in range(100):
            try:
                requests.get(f"http://{address}/v2/", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            pytest.fail(f"the throwaway registry on {address} did not start")
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_registry_refusing_deletes_is_an_error_before_any_delete(project, registry_without_deletes):
    path, tags = project
    repo = f"{registry_without_deletes}/cleanup"
    subset = {label: tags[label] for label in ("x2", "x3", "m9")}
    repository, _digests = _push_all(registry_without_deletes, repo, subset)
    args = {"project_dir": str(path), "repo": repo, "config": "werf-custom.yaml", "grace_period": "0"}
    for check_mode in (True, False):
        result, output = run_module("registry_cleanup", args, check_mode=check_mode)
        assert result["failed"], output
        assert "refuses to delete manifests (HTTP 405" in result["msg"], result["msg"]
        assert "storage.delete.enabled" in result["msg"]
    assert tags_of(registry_without_deletes, repository) == sorted(subset.values())


def test_no_clusters_is_an_error(localenv, registry, project):
    path, _tags = project
    result, _output = run_module("registry_cleanup", {"project_dir": str(path), "repo": _repo(registry)})
    assert result["failed"] and "no clusters given" in result["msg"]


def test_cleanup_playbook_plans_then_deletes(localenv, registry, project):
    import json
    import sys
    from pathlib import Path

    path, tags = project
    repo = _repo(registry)
    repository, _digests = _push_all(registry, repo, {"m9": tags["m9"], "x2": tags["x2"]})
    extra = {"converge_project_dir": str(path), "converge_repo": repo, "converge_config": "werf-custom.yaml",
             "cleanup_grace_period": "0"}
    command = [str(Path(sys.executable).with_name("ansible-playbook")), "berth.converge.cleanup", "-e", json.dumps(extra)]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    planned = subprocess.run(command + ["--check"], capture_output=True, text=True, env=env, check=False)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"(item=app:{tags['x2']}) => {{" in planned.stdout and "\"msg\": \"delete: no policy keeps it\"" in planned.stdout
    assert f"ok: [localhost] => (item=app:{tags['m9']})" in planned.stdout and "keep: Git branch main" in planned.stdout
    assert "would delete 1 of 2 tags, kept 1" in planned.stdout
    assert tags_of(registry, repository) == sorted([tags["m9"], tags["x2"]])
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"changed: [localhost] => (item=app:{tags['x2']})" in done.stdout and "deleted 1 of 2 tags" in done.stdout
    assert tags_of(registry, repository) == [tags["m9"]]


def test_tls_registry_with_credentials_from_a_docker_config(localenv, registry_tls, project, tmp_path):
    """The TLS registry with htpasswd: credentials from a Docker config file and its CA, as registry_images."""
    import base64
    import json

    path, tags = project
    session = requests.Session()
    session.auth = (localenv.registry_tls_username, localenv.registry_tls_password)
    session.verify = localenv.ca_cert
    session.trust_env = False  # else requests prefers REQUESTS_CA_BUNDLE over session.verify
    repo = f"{registry_tls}/cleanup-{uuid.uuid4().hex[:10]}"
    repository = f"{repo.split('/', 1)[1]}/app"
    for label in ("m9", "x2"):
        push_image(registry_tls, repository, tags[label], created=ago(days=3), session=session)
    pair = f"{localenv.registry_tls_username}:{localenv.registry_tls_password}".encode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {registry_tls: {"auth": base64.b64encode(pair).decode()}}}))
    args = {"project_dir": str(path), "repo": repo, "config": "werf-custom.yaml", "grace_period": "0",
            "docker_config": str(config), "ca_cert": localenv.ca_cert}
    result, output = run_module("registry_cleanup", args)
    assert not result["failed"], output
    assert result["deleted"] == [f"{repo}/app:{tags['x2']}"]
    assert tags_of(registry_tls, repository, session) == [tags["m9"]]
    anonymous, _output = run_module("registry_cleanup", {k: v for k, v in args.items() if k != "docker_config"})
    assert anonymous["failed"] and "requires credentials" in anonymous["msg"]


def test_release_revisions_kept_are_the_deployed_pending_and_last_n(localenv, registry, project, namespace):
    path, tags = project
    repo = _repo(registry)
    repository, _digests = _push_all(registry, repo, {label: tags[label] for label in ("x2", "x3", "x4")})
    for label in ("x2", "x3", "x4"):  # three revisions; x4 is the deployed one
        _record_release(localenv, "shop", namespace, f"{repo}/app:{tags[label]}", label)
    decisions = {}
    for keep in (0, 2, 3):
        options = Options(project_dir=str(path), repo=repo, grace_seconds=0, keep_revisions=keep,
                          clusters=[Cluster("local", api_client({"kubeconfig": localenv.kubeconfig}),
                                            [("shop", namespace)])])
        with RegistryClient() as client:
            cleanup = Cleanup(options, client)
            cleanup.plan()
        decisions[keep] = _labels(tags, [state.tag for state in cleanup.tags if state.action == "keep"])
    assert decisions == {0: ["x4"], 2: ["x3", "x4"], 3: ["x2", "x3", "x4"]}
    assert len(tags_of(registry, repository)) == 3  # plans only
