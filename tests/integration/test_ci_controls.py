# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CI controls werf users rely on, through the converge role on the example shop: require built images,
the deploy report, saved plans, one build for many targets."""

from __future__ import annotations

import json
import os
import re
import subprocess

import requests
import yaml
from kubernetes import client

from gitrepo import commit
from test_role_converge import BIN, IMAGES, _namespace_exists, revisions, shop  # noqa: F401 pylint: disable=unused-import


def tags(registry, shop, image):
    response = requests.get(f"http://{registry}/v2/t-{shop.env}/shop/{image}/tags/list", timeout=10)
    return [] if response.status_code == 404 else response.json().get("tags") or []


def test_require_built_images_fails_before_any_write_listing_the_missing(shop, kube_api, registry):
    rc, output, items = shop.converge(converge_require_built_images=True)
    assert rc != 0
    for image in IMAGES:
        assert f"{image} ({shop.repo}/{image}:" in output, output
    assert not _namespace_exists(kube_api, shop.namespace)
    assert all(tags(registry, shop, image) == [] for image in IMAGES)

    rc, output, _items = shop.converge()  # the build job
    assert rc == 0, output
    rc, output, items = shop.converge(converge_require_built_images=True)  # the deploy job: all built
    assert rc == 0, output
    assert revisions(kube_api, shop) == [(1, "deployed")]

    (shop.dir / "frontend" / "site" / "index.html").write_text("<h1>not built yet</h1>\n")
    commit(shop.dir, message="frontend: v2")
    rc, output, items = shop.converge(converge_require_built_images=True)
    assert rc != 0
    assert "require_built: not in the registry, and not built: frontend (" in output, output
    assert "backend (" not in output.split("require_built:", 1)[1].splitlines()[0]
    assert revisions(kube_api, shop) == [(1, "deployed")]
    assert len(tags(registry, shop, "frontend")) == 1


def test_the_deploy_report_is_written_on_success_on_failure_and_in_check_mode(shop, kube_api, tmp_path):
    report_file = tmp_path / "deploy-report.json"
    rc, output, _items = shop.converge("--check", converge_deploy_report=str(report_file))
    assert rc == 0, output
    report = json.loads(report_file.read_text())
    assert (report["status"], report["check_mode"], report["revision"]) == ("succeeded", True, 1)
    assert {i["name"] for i in report["images"]} == IMAGES and all(i["built"] for i in report["images"])  # would be

    rc, output, _items = shop.converge(converge_deploy_report=str(report_file))
    assert rc == 0, output
    report = json.loads(report_file.read_text())
    assert (report["status"], report["check_mode"], report["revision"]) == ("succeeded", False, 1)
    assert (report["release"], report["namespace"]) == (shop.release, shop.namespace)
    assert all(i["built"] for i in report["images"]) and {i["name"] for i in report["images"]} == IMAGES
    actions = {f"{r['kind']}/{r['name']}": r["action"] for r in report["resources"]}
    assert actions["Deployment/backend"] == "create" and actions["Secret/shop-db"] == "create"
    assert report["hooks"] == []  # the shop has no Helm hooks; the unit tests cover them
    assert "s3cr3t-Demo-Passw0rd" not in report_file.read_text()

    crash = {"backendPodLabels": {"berth.test/fail": "CrashLoopBackOff"}}
    rc, output, _items = shop.converge(converge_set=crash, converge_auto_rollback=True,
                                       converge_deploy_report=str(report_file))
    assert rc != 0
    report = json.loads(report_file.read_text())
    assert (report["status"], report["revision"], report["rolled_back_to"]) == ("failed", 2, 1)
    assert "CrashLoopBackOff" in report["error"]
    assert {f"{r['kind']}/{r['name']}": r["action"] for r in report["resources"]}["Deployment/backend"] == "update"

    (shop.dir / ".helm" / "templates" / "broken.yaml").write_text("kind: ConfigMap\nname: {{ .Values.nope.x }}\n")
    commit(shop.dir, message="broken template")
    rc, output, _items = shop.converge(converge_deploy_report=str(report_file))
    assert rc != 0
    report = json.loads(report_file.read_text())
    assert report["status"] == "failed" and "templates/broken.yaml:2" in report["error"]
    assert report["resources"] == [] and report["revision"] is None
    assert output.count("templates/broken.yaml:2") >= 1


def test_converge_many_builds_once_and_converges_each_target_in_parallel(
        shop, kube_api, localenv, registry, tmp_path):

    kubeconfig = tmp_path / "kubeconfig"  # a second context to the same cluster stands in for a second cluster
    config = yaml.safe_load(open(localenv.kubeconfig))
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    config["contexts"].append({"name": "target-b", "context": dict(current["context"])})
    kubeconfig.write_text(yaml.safe_dump(config))
    envs = {name: f"{shop.env}{name[-1]}" for name in ("target-a", "target-b", "target-c")}
    hosts = {
        "target-a": {"converge_env": envs["target-a"]},
        "target-b": {"converge_env": envs["target-b"], "converge_kube_context": "target-b",
                     "converge_set": {"greeting": "from b"}},
        "target-c": {"converge_env": envs["target-c"], "converge_timeout": 20,
                     "converge_set": {"backendPodLabels": {"berth.test/fail": "CrashLoopBackOff"}}},
    }
    for host in hosts.values():
        host["converge_kubeconfig"] = str(kubeconfig)
    inventory = tmp_path / "targets.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    extra = {key: value for key, value in shop.extra_vars().items() if key not in ("converge_env", "converge_timeout")}
    namespaces = [f"shop-{env}" for env in envs.values()]
    try:
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "berth.converge.converge_many",
                               "-e", json.dumps(extra), "--vault-password-file", str(shop.dir / "vault-password.txt")],
                              capture_output=True, text=True, check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, output  # target-c fails ...
        recap = dict(re.findall(r"^(target-[abc])\s+:\s+(.*)$", proc.stdout, re.MULTILINE))
        assert "failed=0" in recap["target-a"] and "failed=0" in recap["target-b"], recap  # ... the others converge
        assert "failed=1" in recap["target-c"], recap
        built = re.findall(r"^changed: \[target-a\] => \(item=", output.split("TASK [Build and push", 1)[1]
                           .split("TASK [", 1)[0], re.MULTILINE)
        assert len(built) == 1, output  # one environment built the images; the other two found them
        for image in IMAGES:
            assert len(tags(registry, shop, image)) == 1
        core = client.CoreV1Api(kube_api)
        for env in (envs["target-a"], envs["target-b"]):
            config_map = core.read_namespaced_config_map("shop-config", f"shop-{env}")
            assert config_map.data["environment"] == env
        assert core.read_namespaced_config_map("shop-config", f"shop-{envs['target-b']}").data["greeting"] == "from b"
        converge_play = output.split("PLAY [Converge each target]", 1)[1]
        image_lines = re.findall(r"^(changed|ok): \[(target-[abc])\] => \(item=(base|backend|frontend)\)",
                                 converge_play, re.MULTILINE)
        assert len(image_lines) == 9 and {state for state, _host, _image in image_lines} == {"ok"}, image_lines
    finally:
        core = client.CoreV1Api(kube_api)
        for name in namespaces:
            if _namespace_exists(kube_api, name):
                core.delete_namespace(name)
