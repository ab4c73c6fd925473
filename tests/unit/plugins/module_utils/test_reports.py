# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.berth.converge.plugins.module_utils.reports import deploy_report

DIGESTS = {"commit": {"hash": "abc"}, "images": [{"name": "web", "ref": "r/web:1"}, {"name": "db", "ref": "r/db:2"}]}
BUILT = {"images": [{"name": "web", "ref": "r/web:1", "changed": True}, {"name": "db", "changed": False}]}
RENDERED = {"release": "shop", "namespace": "shop-ns", "manifests": [{"kind": "Secret", "data": {"p": "c2VjcmV0"}}]}
APPLIED = {"revision": 3, "resources": [{"apiVersion": "v1", "kind": "Secret", "namespace": "shop-ns", "name": "db",
                                         "action": "update", "changed": True, "diff": {"after": {"data": "x"}}}],
           "hooks": [{"kind": "Job", "name": "migrate", "event": "pre-upgrade", "result": "succeeded", "log": "x"}]}


def test_a_successful_report_lists_images_resources_and_hooks_without_content():
    report = deploy_report("succeeded", digests=DIGESTS, built=BUILT, rendered=RENDERED, applied=APPLIED)
    assert report["format"] == "berth.converge/deploy-report.v1"
    assert (report["status"], report["release"], report["namespace"], report["revision"], report["commit"]) == (
        "succeeded", "shop", "shop-ns", 3, "abc")
    assert report["images"] == [{"name": "web", "ref": "r/web:1", "built": True},
                                {"name": "db", "ref": "r/db:2", "built": False}]
    assert report["resources"] == [{"apiVersion": "v1", "kind": "Secret", "namespace": "shop-ns", "name": "db",
                                    "action": "update", "changed": True}]
    assert report["hooks"] == [{"kind": "Job", "name": "migrate", "event": "pre-upgrade", "result": "succeeded"}]
    assert report["error"] is None and report["rolled_back_to"] is None
    assert "c2VjcmV0" not in repr(report) and "diff" not in repr(report)


def test_a_failed_report_gives_the_first_failure_and_what_was_not_reached_is_empty():
    render_failed = {"failed": True, "msg": "templates/a.yaml:3: boom"}
    report = deploy_report("failed", digests=DIGESTS, rendered=render_failed, built={"skipped": True})
    assert report["error"] == "templates/a.yaml:3: boom"
    assert report["images"][0]["built"] is False and report["resources"] == [] and report["revision"] is None

    tracked = {"failed": True, "msg": "Deployment web: CrashLoopBackOff"}
    report = deploy_report("failed", digests=DIGESTS, built=BUILT, rendered=RENDERED, applied=APPLIED,
                           tracked=tracked, rolled_back={"rolled_back_to": 2, "changed": True})
    assert (report["error"], report["rolled_back_to"], report["revision"]) == (tracked["msg"], 2, 3)


def test_the_status_is_checked():
    with pytest.raises(ValueError, match="status must be succeeded or failed"):
        deploy_report("done")
