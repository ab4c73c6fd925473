# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of kube/release.py and kube/rollback.py without a cluster: revision payloads, history
queries, prune candidates, rollback targets, lease expiry."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import release
from ansible_collections.berth.converge.plugins.module_utils.kube.apply import ResourceId
from ansible_collections.berth.converge.plugins.module_utils.kube.rollback import rollback_target


def revision(version, status, resources=(), manifests=()):
    berth = {"operation": "upgrade", "commit": {"hash": "a" * 40}, "images": [{"name": "web"}],
             "resources": [dict(zip(("apiVersion", "kind", "namespace", "name"), r)) for r in resources],
             "time": "2024-05-01T10:00:00Z"}
    record = release.helm_record("shop", "prod", version, manifests=list(manifests), status=status,
                                 description="upgrade", berth=berth)
    return release.Revision("shop", "prod", version, status, release.encode_release(record))


def test_release_is_base64_of_gzip_json_as_helm_stores_it():
    record = {"name": "shop", "version": 1, "manifest": "---\n"}
    encoded = release.encode_release(record)
    raw = base64.b64decode(encoded)
    assert raw[:3] == b"\x1f\x8b\x08"
    assert json.loads(gzip.decompress(raw)) == record
    assert release.decode_release(encoded) == record
    # Helm's oldest records are uncompressed JSON
    assert release.decode_release(base64.b64encode(json.dumps(record).encode()).decode()) == record


def test_helm_record_fields_statuses_and_descriptions():
    manifests = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}, "data": {"on": "yes"}},
                 {"apiVersion": "batch/v1", "kind": "Job",
                  "metadata": {"name": "migrate",
                               "annotations": {"helm.sh/hook": "pre-upgrade,pre-install", "helm.sh/hook-weight": "-5"}}}]
    record = release.helm_record("shop", "prod", 2, manifests=manifests, status="pending", description="install",
                                 berth={"operation": "install"})
    assert record["info"]["status"] == "pending-install"
    assert record["info"]["description"] == "Initial install underway"
    assert record["manifest"].startswith("---\n# Source: ConfigMap/web.yaml\n")
    assert "migrate" not in record["manifest"]
    assert [(h["name"], h["kind"], h["events"], h["weight"]) for h in record["hooks"]] == [
        ("migrate", "Job", ["pre-upgrade", "pre-install"], -5)]
    assert record["chart"]["metadata"] == {"apiVersion": "v2", "name": "shop", "version": "0.0.0"}
    stored = release.Revision("shop", "prod", 2, "pending", release.encode_release(record))
    assert stored.manifests == manifests  # the manifests come back exactly, in their order
    reordered = [manifests[1], manifests[0], dict(manifests[1], metadata={**manifests[1]["metadata"], "name": "m2"})]
    record = release.helm_record("shop", "prod", 3, manifests=reordered, status="deployed", description="upgrade",
                                 berth={"operation": "upgrade"})
    assert release.Revision("shop", "prod", 3, "deployed", release.encode_release(record)).manifests == reordered
    del record["berth"]  # as Helm rewrites it: hooks after the resources
    assert release.Revision("shop", "prod", 3, "deployed", release.encode_release(record)).manifests == [
        reordered[1], reordered[0], reordered[2]]
    assert release._helm_description("upgrade", "failed", "shop", "x", "boom") == 'Upgrade "shop" failed: boom'
    assert release._helm_description("rollback", "deployed", "shop", "Rollback to 3") == "Rollback to 3"
    assert release.helm_status("pending", "rollback") == "pending-rollback"
    assert release.from_helm_status("pending-upgrade") == "pending"
    assert release.from_helm_status("uninstalled") == "uninstalled"


def test_revision_from_secret_and_summary_without_manifests():
    stored = revision(3, "deployed", [("v1", "Secret", "prod", "db")],
                      [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                        "stringData": {"p": "plain"}}])
    secret = {"metadata": {"name": "sh.helm.release.v1.shop.v3", "namespace": "prod", "resourceVersion": "9",
                           "labels": {"owner": "helm", "name": "shop", "version": "3", "status": "deployed"}},
              "type": release.REVISION_TYPE,
              "data": {"release": base64.b64encode(stored.encoded.encode()).decode()}}
    parsed = release.Revision.from_secret(secret)
    assert (parsed.release, parsed.namespace, parsed.version, parsed.status) == ("shop", "prod", 3, "deployed")
    summary = parsed.summary()
    assert summary["revision"] == 3 and summary["resource_count"] == 1 and summary["commit"] == {"hash": "a" * 40}
    assert summary["chart"] == "shop-0.0.0" and summary["description"] == "Upgrade complete"
    assert "plain" not in json.dumps(summary)
    assert release.revision_name("shop", 3) == "sh.helm.release.v1.shop.v3"


def test_legacy_revision_is_read():
    payload = {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}],
               "resources": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "prod", "name": "a"}],
               "description": "rolled back from 3 to 1", "commit": {"hash": "b" * 40}}
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    secret = {"metadata": {"name": "berth.release.v1.shop.v4", "namespace": "prod",
                           "labels": {"owner": "berth-converge", "name": "shop", "version": "4",
                                      "status": "deployed"}},
              "type": release.LEGACY_REVISION_TYPE, "data": {"release": data}}
    parsed = release.Revision.from_secret(secret)
    assert parsed.legacy and parsed.secret_name == "berth.release.v1.shop.v4"
    assert parsed.manifests == payload["manifests"] and parsed.payload["operation"] == "rollback"
    assert release._legacy_description(payload["description"]) == "Rollback to 1"


def test_helm_written_record_without_our_data_derives_resources():
    record = {"name": "shop", "namespace": "prod", "version": 1,
              "info": {"status": "deployed", "description": "Install complete"},
              "manifest": ("---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                           "  name: a\n---\n# Source: c/templates/r.yaml\napiVersion: rbac.authorization.k8s.io/v1\n"
                           "kind: ClusterRole\nmetadata:\n  name: r\n")}
    stored = release.Revision("shop", "prod", 1, "deployed", release.encode_release(record))
    assert stored.payload["commit"] is None and stored.summary()["recorded_by"] == "helm"
    ids = [release.recorded_id(r, "prod", lambda api_version, kind: kind != "ClusterRole") for r in stored.resources]
    assert ids == [ResourceId("", "ConfigMap", "prod", "a"),
                   ResourceId("rbac.authorization.k8s.io", "ClusterRole", "", "r")]


def test_unreadable_record_names_the_secret():
    broken = release.Revision("shop", "prod", 2, "failed", "not-base64-gzip")
    with pytest.raises(ConvergeError, match="revision Secret sh.helm.release.v1.shop.v2 in namespace prod"):
        broken.payload


def test_last_successful_counts_superseded_and_respects_before():
    revisions = [revision(1, "superseded"), revision(2, "deployed"), revision(3, "failed")]
    assert release.last_successful(revisions).version == 2
    assert release.last_successful(revisions, before=2).version == 1
    assert release.last_successful([revision(1, "failed")]) is None


def test_unknown_status_is_refused_before_any_request():
    with pytest.raises(ConvergeError, match="unknown revision status 'done'"):
        release.set_revision_status(object(), "shop", "prod", 1, "done")


def test_prune_candidates_since_last_success_minus_desired():
    revisions = [
        revision(1, "superseded", [("v1", "ConfigMap", "prod", "ancient")]),
        revision(2, "superseded", [("v1", "ConfigMap", "prod", "kept"), ("v1", "ConfigMap", "prod", "dropped"),
                                   ("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "w.example.com"),
                                   ("v1", "Namespace", None, "prod"), ("v1", "Namespace", None, "extra")]),
        revision(3, "failed", [("v1", "ConfigMap", "prod", "kept"), ("apps/v1", "Deployment", "prod", "half-done"),
                               ("autoscaling/v1", "HorizontalPodAutoscaler", "prod", "web")]),
    ]
    desired = [ResourceId("", "ConfigMap", "prod", "kept"),
               ResourceId("autoscaling", "HorizontalPodAutoscaler", "prod", "web")]  # now autoscaling/v2
    candidates, warnings = release.prune_candidates(revisions, desired, "prod")
    assert candidates == [("v1", ResourceId("", "ConfigMap", "prod", "dropped")),
                          ("v1", ResourceId("", "Namespace", "", "extra")),
                          ("apps/v1", ResourceId("apps", "Deployment", "prod", "half-done"))]
    assert len(warnings) == 2
    assert "CustomResourceDefinition w.example.com" in warnings[0] and "Namespace prod" in warnings[1]


def test_rollback_target_default_is_last_success_before_latest():
    revisions = [revision(1, "superseded"), revision(2, "superseded"), revision(3, "failed")]
    assert rollback_target(revisions).version == 2
    assert rollback_target(revisions, 1).version == 1
    assert rollback_target([revision(1, "superseded"), revision(2, "deployed")]).version == 1
    with pytest.raises(ConvergeError, match=r"release shop has no revision 7 \(revisions: 1, 2, 3\)"):
        rollback_target(revisions, 7)
    with pytest.raises(ConvergeError, match="no successful revision before revision 2"):
        rollback_target([revision(1, "failed"), revision(2, "deployed")])
    with pytest.raises(ConvergeError, match="no revisions"):
        rollback_target([])


def test_lease_expiry():
    now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=timezone.utc)

    def lease(holder, renewed_seconds_ago, duration=30):
        renew = now - timedelta(seconds=renewed_seconds_ago)
        return {"spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                         "renewTime": renew.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}

    assert not release._expired(lease("h/1/a", 10), now)
    assert release._expired(lease("h/1/a", 31), now)
    assert release._expired(lease("", 1), now)
    assert release._expired({"spec": {}}, now)
    assert release._parse_time("2024-05-01T10:00:00Z") == now


def test_locked_message_names_holder_and_since():
    lock = release.ReleaseLock(object.__new__(release.Kube), "shop", "prod", timeout=5)
    message = release._locked_message(lock, {"spec": {"holderIdentity": "ci/42/beef", "acquireTime": "T1",
                                                      "renewTime": "T2"}})
    assert message == ("release shop in namespace prod is locked by ci/42/beef since T1 (Lease berth-converge.shop, "
                       "last renewed T2); gave up after waiting 5 s")
    host, pid, token = lock.identity.split("/")
    assert host and pid.isdigit() and len(token) == 8
