# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import base64
import copy
import json

import pytest

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.plan import (
    PLAN_FORMAT, PlanMismatch, build_plan, input_differences, live_differences, live_fingerprint, load_plan,
    refuse_on, release_differences)
from ansible_collections.berth.converge.plugins.module_utils.reports import deploy_report

SECRET_VALUE = "s3cr3t-value"
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
          "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode()}}
CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
          "data": {"greeting": "hello"}}
COMMIT = {"hash": "a" * 40}
IMAGES = [{"name": "web", "ref": "r/web:1"}, {"name": "db", "ref": "r/db:2"}]
BUILT = {"images": [{"name": "web", "ref": "r/web:1", "changed": True}, {"name": "db", "changed": False}]}


def live(obj, uid="u-1", version="10"):
    out = copy.deepcopy(obj)
    out["metadata"].update(uid=uid, resourceVersion=version, managedFields=[{"manager": "x"}])
    return out


def applied(config_live=None, secret_live=None):
    return {"changed": True, "revision": 3, "resources": [
        {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "shop", "name": "settings", "action": "update",
         "changed": True, "diff": {"before": None, "after": CONFIG}, "live": live_fingerprint(config_live)},
        {"apiVersion": "v1", "kind": "Secret", "namespace": "shop", "name": "db", "action": "create",
         "changed": True, "diff": {"before": None, "after": {"data": {"password": "<hidden:abc>"}}},
         "live": live_fingerprint(secret_live)}],
        "hooks": [{"kind": "Job", "name": "migrate", "event": "pre-upgrade", "result": "would run"}]}


def plan(**more):
    arguments = dict(release="shop", namespace="shop", commit=COMMIT, images=IMAGES, built=BUILT,
                     manifests=[CONFIG, SECRET], applied=applied(live(CONFIG)))
    arguments.update(more)
    return json.loads(json.dumps(build_plan(**arguments)))  # as read back from the file


def inputs(**more):
    arguments = dict(release="shop", namespace="shop", commit=COMMIT, images=IMAGES, manifests=[CONFIG, SECRET])
    arguments.update(more)
    return arguments


def test_the_plan_has_format_images_to_build_actions_diffs_hooks_and_live_fingerprints():
    saved = plan()
    assert (saved["format"], saved["version"], saved["commit"]) == (PLAN_FORMAT, 1, "a" * 40)
    assert saved["images"] == [{"name": "web", "ref": "r/web:1", "build": True},
                               {"name": "db", "ref": "r/db:2", "build": False}]
    assert [(r["kind"], r["action"]) for r in saved["resources"]] == [("ConfigMap", "update"), ("Secret", "create")]
    assert saved["resources"][0]["live"]["uid"] == "u-1" and saved["resources"][1]["live"] is None
    assert saved["hooks"] == [{"apiVersion": None, "kind": "Job", "namespace": None, "name": "migrate",
                               "event": "pre-upgrade", "weight": None, "delete_policies": None}]
    assert (saved["revision"], saved["latest_revision"]) == (3, 2)
    assert load_plan(json.dumps(saved), "plan.json") == saved


def test_no_secret_value_reaches_the_plan_in_plain_base64_or_a_plain_hash():
    import hashlib
    text = json.dumps(plan(applied=applied(live(CONFIG), live(SECRET))))
    encoded = SECRET["data"]["password"]
    assert SECRET_VALUE not in text and encoded not in text
    assert hashlib.sha256(json.dumps(SECRET, sort_keys=True, separators=(",", ":")).encode()).hexdigest() not in text
    secret_entry = json.loads(text)["resources"][1]
    assert secret_entry["live"]["content"] is None and secret_entry["live"]["resourceVersion"] == "10"


def test_a_plan_without_live_fingerprints_is_refused():
    without = applied(live(CONFIG))
    del without["resources"][0]["live"]
    with pytest.raises(ConvergeError, match="no live fingerprints .* ConfigMap shop/settings"):
        build_plan(release="shop", namespace="shop", commit=COMMIT, images=IMAGES, built=BUILT,
                   manifests=[CONFIG], applied=without)


def test_the_same_inputs_match():
    assert input_differences(plan(), **inputs()) == []


def test_a_new_commit_an_image_and_a_rendered_change_are_each_named():
    changed_config = copy.deepcopy(CONFIG)
    changed_config["data"]["greeting"] = "hi"
    changed_secret = copy.deepcopy(SECRET)
    changed_secret["data"]["password"] = "b3RoZXI="
    extra = dict(CONFIG, metadata={"name": "extra", "namespace": "shop"})
    differences = input_differences(plan(), **inputs(
        commit={"hash": "b" * 40}, images=[{"name": "web", "ref": "r/web:9"}, IMAGES[1]],
        manifests=[changed_config, changed_secret, extra]))
    assert differences == [
        f"commit: the plan is for {'a' * 40}, this converge is {'b' * 40}",
        "image web: the plan has r/web:1, this converge r/web:9",
        "rendered manifests: ConfigMap shop/extra is rendered now, not in the plan",
        "rendered manifests: ConfigMap shop/settings renders differently",
        "rendered manifests: Secret shop/db renders differently"]
    assert input_differences(plan(), **inputs(manifests=[CONFIG])) == [
        "rendered manifests: Secret shop/db is no longer rendered"]
    assert input_differences(plan(), **inputs(manifests=[SECRET, CONFIG])) == [
        "rendered manifests: their order differs from the plan's"]


def test_live_objects_changed_appeared_vanished_or_recreated_are_named():
    saved = plan()
    now = {"settings": live(CONFIG), "db": None}
    assert live_differences(saved, lambda e: live_fingerprint(now[e["name"]])) == []

    status_only = live(CONFIG, version="11")
    status_only["status"] = {"observed": 1}  # a controller's write: not a change of the object
    assert live_differences(saved, lambda e: live_fingerprint({"settings": status_only, "db": None}[e["name"]])) == []

    edited = live(CONFIG, version="12")
    edited["data"]["greeting"] = "by hand"
    assert live_differences(saved, lambda e: live_fingerprint({"settings": edited, "db": live(SECRET)}[e["name"]])) \
        == ["ConfigMap shop/settings changed since the plan (resourceVersion 10 -> 12)",
            "Secret shop/db appeared since the plan"]
    assert live_differences(saved, lambda e: None) == ["ConfigMap shop/settings vanished since the plan"]
    recreated = live(CONFIG, uid="u-2")
    assert live_differences(saved, lambda e: live_fingerprint(recreated if e["kind"] == "ConfigMap" else None)) == [
        "ConfigMap shop/settings was deleted and created again since the plan (uid changed)"]


def test_a_secret_is_changed_when_its_resource_version_is():
    saved = plan(applied=applied(live(CONFIG), live(SECRET)))
    assert live_differences(saved, lambda e: live_fingerprint(live({"ConfigMap": CONFIG, "Secret": SECRET}[e["kind"]]))) == []
    assert live_differences(saved, lambda e: live_fingerprint(
        live(CONFIG) if e["kind"] == "ConfigMap" else live(SECRET, version="11"))) == [
        "Secret shop/db changed since the plan (resourceVersion 10 -> 11)"]


def test_the_release_under_the_lock_must_be_the_plan():
    saved = plan()
    fresh = applied(live(CONFIG))
    assert release_differences(saved, fresh["resources"], fresh["hooks"], 3) == []
    fresh["resources"][0]["action"] = "unchanged"
    fresh["resources"].append({"kind": "Service", "namespace": "shop", "name": "web", "action": "delete",
                               "live": {"uid": "s"}})
    assert release_differences(saved, fresh["resources"], [], 4) == [
        "release: the plan records revision 3, the release would now record 4 (another converge or rollback ran "
        "since the plan)",
        "ConfigMap shop/settings: planned update, would now be unchanged",
        "Service shop/web: would now be deleted, not in the plan",
        "hooks: the plan runs Job/migrate pre-upgrade; this converge would run none"]


def test_refusal_names_every_difference_and_bad_files_are_named():
    with pytest.raises(PlanMismatch) as raised:
        refuse_on(["a", "b"], "plan.json")
    assert str(raised.value) == "the converge no longer matches the plan plan.json; nothing was written:\n  - a\n  - b"
    assert raised.value.details == {"differences": ["a", "b"]}
    refuse_on([], "plan.json")
    with pytest.raises(ConvergeError, match="plan.json: not a plan: not JSON"):
        load_plan("{", "plan.json")
    with pytest.raises(ConvergeError, match="plan.json: plan version 2 is not supported"):
        load_plan(json.dumps({"format": PLAN_FORMAT, "version": 2}), "plan.json")
    with pytest.raises(ConvergeError, match="plan.json: field images is missing"):
        load_plan(json.dumps({"format": PLAN_FORMAT, "version": 1, "release": "r", "namespace": "n",
                              "commit": "c"}), "plan.json")


def test_the_deploy_report_names_a_plan_refusal_as_the_error():
    refused = {"failed": True, "msg": "the converge no longer matches the plan p.json; nothing was written"}
    report = deploy_report("failed", digests={"commit": {"hash": "c"}}, rendered={"release": "r"},
                           plan_checked=refused, built={"skipped": True})
    assert report["error"] == refused["msg"] and report["resources"] == []
