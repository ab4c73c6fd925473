# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Saved plans through the converge role on the example shop (werf's plan --save-plan / converge --use-plan):
a check run writes the plan and nothing else; a converge given it applies exactly it, or refuses before any
write, naming what changed."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
import requests

from ansible_collections.berth.converge.plugins.module_utils.kube.client import Kube
from ansible_collections.berth.converge.plugins.module_utils.kube.release import (
    ApplyOptions, ReleaseRequest, apply_release, history)
from ansible_collections.berth.converge.plugins.module_utils.plan import PlanMismatch, build_plan
from ansible_collections.berth.converge.plugins.module_utils.registry import MANIFEST_ACCEPT
from gitrepo import commit
from module_runner import run_in_process
from test_ci_controls import tags
from test_role_converge import IMAGES, _namespace_exists, revisions, shop  # noqa: F401 pylint: disable=unused-import

SECRET_VALUE = "s3cr3t-Demo-Passw0rd"


def actions(resources):
    return {f"{r['kind']}/{r['name']}": r["action"] for r in resources}


def kubectl(*args):
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


def test_a_check_run_saves_the_plan_and_writes_nothing_then_the_converge_applies_exactly_it(
        shop, kube_api, registry, tmp_path):
    plan_file, report_file = tmp_path / "plan.json", tmp_path / "report.json"
    rc, output, _items = shop.converge("--check", converge_save_plan=str(plan_file))
    assert rc == 0, output
    assert not _namespace_exists(kube_api, shop.namespace)
    assert all(tags(registry, shop, image) == [] for image in IMAGES)
    text = plan_file.read_text()
    assert SECRET_VALUE not in text and base64.b64encode(SECRET_VALUE.encode()).decode() not in text
    plan = json.loads(text)
    assert (plan["format"], plan["version"], plan["release"], plan["revision"]) == (
        "berth.converge/plan", 1, shop.release, 1)
    assert {i["name"] for i in plan["images"] if i["build"]} == IMAGES
    assert all(i["ref"].startswith(f"{shop.repo}/") for i in plan["images"])
    planned = actions(plan["resources"])
    assert planned["Deployment/backend"] == "create" and planned["Secret/shop-db"] == "create"
    secret = next(r for r in plan["resources"] if r["kind"] == "Secret")
    assert secret["diff"]["after"]["stringData"]["password"].startswith("<hidden:")
    assert all(r["live"] is None for r in plan["resources"])

    rc, output, _items = shop.converge(converge_save_plan=str(tmp_path / "other.json"))
    assert rc != 0 and "converge_save_plan needs check mode (--check)" in output, output
    assert not _namespace_exists(kube_api, shop.namespace)

    rc, output, _items = shop.converge(converge_use_plan=str(plan_file), converge_deploy_report=str(report_file))
    assert rc == 0, output
    assert revisions(kube_api, shop) == [(1, "deployed")]
    assert actions(json.loads(report_file.read_text())["resources"]) == planned
    assert all(len(tags(registry, shop, image)) == 1 for image in IMAGES)

    # Applied, the plan no longer matches (its creates now exist): a second use is refused.
    rc, output, _items = shop.converge(converge_use_plan=str(plan_file))
    assert rc != 0
    assert f"Deployment {shop.namespace}/backend appeared since the plan" in output, output
    assert revisions(kube_api, shop) == [(1, "deployed")]

    # A plan that builds nothing builds nothing: an image deleted from the registry since is not built again.
    rc, output, _items = shop.converge("--check", converge_save_plan=str(plan_file))
    assert rc == 0, output
    plan = json.loads(plan_file.read_text())
    assert not any(i["build"] for i in plan["images"]) and not any(r["changed"] for r in plan["resources"])
    delete_image(registry, shop, "frontend")
    rc, output, _items = shop.converge(converge_use_plan=str(plan_file))
    assert rc != 0
    assert "may_build (none): not in the registry, and not built: frontend (" in output, output
    assert tags(registry, shop, "frontend") == [] and revisions(kube_api, shop) == [(1, "deployed")]


def delete_image(registry, shop, image):
    """Delete the image's manifest from the registry (its only tag goes with it)."""
    url = f"http://{registry}/v2/t-{shop.env}/shop/{image}/manifests/{tags(registry, shop, image)[0]}"
    digest = requests.head(url, headers={"Accept": MANIFEST_ACCEPT}, timeout=10).headers["Docker-Content-Digest"]
    assert requests.delete(url.rsplit("/", 1)[0] + "/" + digest, timeout=10).status_code == 202


def test_a_converge_refuses_a_plan_that_no_longer_matches_before_any_write(shop, kube_api, registry, tmp_path):
    rc, output, _items = shop.converge()
    assert rc == 0, output
    (shop.dir / "frontend" / "site" / "index.html").write_text("<h1>v2</h1>\n")
    commit(shop.dir, message="frontend: v2")
    plan_file = tmp_path / "plan.json"
    rc, output, _items = shop.converge("--check", converge_save_plan=str(plan_file))
    assert rc == 0, output
    plan = json.loads(plan_file.read_text())
    assert [i["name"] for i in plan["images"] if i["build"]] == ["frontend"]
    assert actions(plan["resources"])["Deployment/frontend"] == "update"
    assert actions(plan["resources"])["ConfigMap/shop-config"] == "unchanged"
    assert plan["latest_revision"] == 1 and plan["revision"] == 2
    before = {image: tags(registry, shop, image) for image in IMAGES}

    def refused(*expected, **more):
        rc, output, _items = shop.converge(converge_use_plan=str(plan_file), **more)
        assert rc != 0, output
        assert f"the converge no longer matches the plan {plan_file}; nothing was written" in output, output
        for message in expected:
            assert message in output, output
        assert revisions(kube_api, shop) == [(1, "deployed")]
        assert {image: tags(registry, shop, image) for image in IMAGES} == before
        return output

    report_file = tmp_path / "report.json"
    output = refused("rendered manifests: ConfigMap shop-config renders differently",
                     converge_set={"greeting": "changed values"}, converge_deploy_report=str(report_file))
    assert "commit:" not in output and "since the plan" not in output
    report = json.loads(report_file.read_text())
    assert report["status"] == "failed" and "renders differently" in report["error"] and report["revision"] is None

    # The plan builds frontend only: backend, in the registry when planned and deleted since, is not built.
    delete_image(registry, shop, "backend")
    rc, output, _items = shop.converge(converge_use_plan=str(plan_file))
    assert rc != 0
    assert "may_build (frontend): not in the registry, and not built: backend (" in output, output
    assert tags(registry, shop, "frontend") == before["frontend"] and revisions(kube_api, shop) == [(1, "deployed")]
    before["backend"] = []

    kubectl("-n", shop.namespace, "patch", "configmap", "shop-config", "--type=merge",
            "-p", '{"data": {"greeting": "by hand"}}')
    refused(f"ConfigMap {shop.namespace}/shop-config changed since the plan (resourceVersion ")

    kubectl("-n", shop.namespace, "delete", "service", "backend")
    refused(f"Service {shop.namespace}/backend vanished since the plan")

    commit(shop.dir, message="a later commit", files={"README.md": "later\n"})
    refused("commit: the plan is for ")


def configmap(name, value):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"value": value}}


def test_the_release_is_checked_again_under_the_lock_right_before_the_first_write(kube_api, namespace):
    """A change between the role's check and the apply (the race) is caught by release_apply itself."""
    def apply(manifests, **options):
        return apply_release(kube_api, "planned", namespace, ReleaseRequest(manifests), ApplyOptions(**options))

    apply([configmap("settings", "one"), configmap("other", "one")])
    wanted = [configmap("settings", "two"), configmap("other", "one")]

    def saved_plan():
        checked = apply(wanted, check_mode=True, diff=True, record_live=True)
        return json.loads(json.dumps(build_plan(release="planned", namespace=namespace, commit={"hash": "c"},
                                                images=[], built={}, manifests=wanted, applied=checked)))

    plan = saved_plan()
    assert {r["name"]: r["action"] for r in plan["resources"]} == {"settings": "update", "other": "unchanged"}
    Kube(kube_api).request("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/other",
                           body={"data": {"value": "by hand"}}, content_type="application/merge-patch+json")
    with pytest.raises(PlanMismatch) as refused:
        apply(wanted, plan=plan)
    assert f"ConfigMap {namespace}/other changed since the plan (resourceVersion " in str(refused.value)
    assert [r.version for r in history(kube_api, "planned", namespace)] == [1]
    live = Kube(kube_api).request("GET", f"/api/v1/namespaces/{namespace}/configmaps/settings")
    assert live["data"] == {"value": "one"}  # nothing written

    plan = saved_plan()  # the by-hand change is now part of the plan: "other" is an update back to "one"
    applied = apply(wanted, plan=plan)
    planned = {r["name"]: r["action"] for r in plan["resources"]}
    assert {r["name"]: r["action"] for r in applied["resources"]} == planned == {"settings": "update",
                                                                                 "other": "update"}
    assert [r.version for r in history(kube_api, "planned", namespace)] == [1, 2]


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the plan {path}: No such file or directory"),
    ("{", "{path}: not a plan: not JSON"),
    ('{"format": "berth.converge/plan", "version": 7}', "{path}: plan version 7 is not supported (only 1)"),
    ('{"format": "berth.converge/deploy-report.v1"}', "{path}: not a plan: field format is not"),
])
def test_a_bad_plan_file_is_named(tmp_path, localenv, content, message):
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_text(content)
    run = run_in_process("converge_plan", {"state": "check", "path": str(path), "release": "r", "namespace": "n",
                                           "commit": {"hash": "c"}, "kubeconfig": localenv.kubeconfig})
    assert run.traceback is None, run.traceback
    assert run.result["failed"] and message.format(path=path) in run.result["msg"], run.result
