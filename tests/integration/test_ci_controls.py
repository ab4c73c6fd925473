# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CI controls werf users rely on, through the converge role on the example shop: require built images,
the deploy report, saved plans, one build for many targets."""

from __future__ import annotations

import json

import pytest
import requests

from gitrepo import commit
from test_role_converge import IMAGES, _namespace_exists, revisions, shop  # noqa: F401  (shop is a fixture)


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
