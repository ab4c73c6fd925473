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
    payload = {"resources": [dict(zip(("apiVersion", "kind", "namespace", "name"), r)) for r in resources],
               "manifests": list(manifests), "commit": {"hash": "a" * 40}, "images": [{"name": "web"}],
               "time": "2024-05-01T10:00:00Z", "description": "upgrade"}
    return release.Revision("shop", "prod", version, status, release.encode_payload(payload))


def test_payload_is_gzip_base64_json_and_round_trips():
    payload = {"manifests": [{"kind": "ConfigMap"}], "images": [], "n": 1}
    encoded = release.encode_payload(payload)
    assert json.loads(gzip.decompress(base64.b64decode(encoded))) == payload
    assert release.decode_payload(encoded) == payload
    assert release.encode_payload(payload) == encoded  # deterministic: no gzip timestamp


def test_revision_from_secret_and_summary_without_manifests():
    secret = {"metadata": {"name": "berth.release.v1.shop.v3", "namespace": "prod", "resourceVersion": "9",
                           "labels": {"owner": "berth-converge", "name": "shop", "version": "3",
                                      "status": "deployed"}},
              "type": release.REVISION_TYPE,
              "data": {"release": revision(3, "deployed", [("v1", "Secret", "prod", "db")],
                                           [{"kind": "Secret", "stringData": {"p": "plain"}}]).encoded}}
    parsed = release.Revision.from_secret(secret)
    assert (parsed.release, parsed.namespace, parsed.version, parsed.status) == ("shop", "prod", 3, "deployed")
    summary = parsed.summary()
    assert summary["revision"] == 3 and summary["resource_count"] == 1 and summary["commit"] == {"hash": "a" * 40}
    assert "plain" not in json.dumps(summary)
    assert release.revision_name("shop", 3) == "berth.release.v1.shop.v3"


def test_unreadable_payload_names_the_secret():
    broken = release.Revision("shop", "prod", 2, "failed", "not-base64-gzip")
    with pytest.raises(ConvergeError, match="revision Secret berth.release.v1.shop.v2 in namespace prod"):
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
