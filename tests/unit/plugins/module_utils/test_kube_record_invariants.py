# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the release record's status transitions and error composition (kube/release.py), against an
in-memory stand-in for the Secrets and Leases endpoints. tests/integration/test_record_invariants.py proves
the same against the real environment."""

from __future__ import annotations

import copy
import re
from types import SimpleNamespace
from urllib.parse import unquote

import pytest

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import release
from ansible_collections.berth.converge.plugins.module_utils.kube.apply import ResourceId
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import Kube, KubeApiError
from ansible_collections.berth.converge.plugins.modules import release_track

NS = "prod"


class FakeKube(Kube):
    """Secrets and Leases of one namespace in memory; `down` makes every request fail as an unreachable
    server does, `fail_on` (method, path part) only those."""

    def __init__(self):  # pylint: disable=super-init-not-called  # no ApiClient behind it
        self.host = "https://fake:6443"
        self.objects = {}
        self.down = False
        self.fail_on = set()
        self.version = 0

    def request(self, method, path, query=None, body=None, content_type="application/json", timeout=60, **_retries):
        if self.down or any(method == m and part in path for m, part in self.fail_on):
            raise ConvergeError(f"cannot reach the Kubernetes API server at {self.host}: Connection refused")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        at = parts.index("namespaces")
        end = at + 3 if len(parts) > at + 2 else at + 1  # .../namespaces/NS/KIND[/NAME] or .../namespaces[/NAME]
        collection, name = "/".join(parts[:end]), (parts[end] if len(parts) > end else None)
        if method == "GET" and name is None:
            wanted = _selector((query or {}).get("labelSelector", ""))
            items = [o for (c, _n), o in self.objects.items() if c == collection
                     and all((o["metadata"].get("labels") or {}).get(k) in v for k, v in wanted.items())]
            return {"items": copy.deepcopy(items)}
        key = (collection, name or body["metadata"]["name"])
        if method == "GET":
            if key not in self.objects:
                raise KubeApiError(404, "NotFound", f"{name} not found")
            return copy.deepcopy(self.objects[key])
        if method == "DELETE":
            return self.objects.pop(key, {})
        if method == "POST" and key in self.objects:
            raise KubeApiError(409, "AlreadyExists", f"{key[1]} already exists")
        if method == "PATCH":
            stored = self.objects[key]
            stored.setdefault("spec", {}).update(body.get("spec") or {})
            body = stored
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        stored["metadata"].setdefault("namespace", NS)
        self.objects[key] = stored
        return copy.deepcopy(stored)


def cm(name):
    """A ConfigMap manifest as a record holds it (Helm's format stores manifests as YAML text)."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{name}"}}


def _selector(text):
    """{label: accepted values} of a label selector of `key=value` and `key in (a,b)` terms."""
    wanted = {}
    for key, values, value in re.findall(r"([\w./-]+)\s+in\s+\(([^)]*)\)|([\w./-]+=[^,]*)", text):
        if key:
            wanted[key] = {v.strip() for v in values.split(",")}
        else:
            name, _eq, single = value.partition("=")
            wanted[name] = {single}
    return wanted


def record(kube, *statuses):
    for index, status in enumerate(statuses, 1):
        revision = release.record_revision(kube, "shop", NS, manifests=[cm(index)])
        if status != "pending":
            release.set_revision_status(kube, "shop", NS, revision.version, status)


def statuses(kube):
    return [(r.version, r.status) for r in release.history(kube, "shop", NS)]


def test_pending_revisions_become_failed_interrupted_and_nothing_else_changes():
    kube = FakeKube()
    record(kube, "superseded", "deployed", "pending")
    updated = release.fail_interrupted(kube, "shop", NS, release.history(kube, "shop", NS))
    assert [(r.version, r.status) for r in updated] == [(1, "superseded"), (2, "deployed"), (3, "failed")]
    assert statuses(kube) == [(1, "superseded"), (2, "deployed"), (3, "failed")]
    assert release.history(kube, "shop", NS)[2].summary()["reason"] == "interrupted"


def test_mark_deployed_leaves_one_deployed_revision():
    kube = FakeKube()
    record(kube, "superseded", "deployed", "failed")
    release.mark_deployed(kube, "shop", NS, 3)
    assert statuses(kube) == [(1, "superseded"), (2, "superseded"), (3, "deployed")]


class FailingApplier:
    """Writes `writes` objects, then fails as a rejected write does."""

    def __init__(self, writes, failure="applying release shop failed for 1 resources"):
        self.release, self.namespace, self.kube = "shop", NS, None
        self.written, self.writes, self.failure = [], writes, failure
        self.waiter = SimpleNamespace(progress=[])

    def apply(self, planned, before_main=None):
        self.written.extend(planned[:self.writes])
        raise ConvergeError(self.failure, rejected=[{"name": "c"}])

    def delete(self, deletes):
        pass


def plan_of(changes):
    planned = [SimpleNamespace(changed=True, action="update", api_version="v1", rid=ResourceId("", "ConfigMap", NS, f"c{i}"))
               for i in range(changes)]
    return SimpleNamespace(desired=[], planned=planned, crds=[], deletes=[], hooks=SimpleNamespace(pre=[], post=[]))


def write(kube, applier, changes=3):
    request = release.ReleaseRequest([cm("new")])
    with pytest.raises(ConvergeError) as caught:
        release._write(kube, applier, request, plan_of(changes), release.history(kube, "shop", NS))
    return caught.value


def test_a_failed_write_names_the_failure_first_then_the_revision_and_the_writes():
    kube = FakeKube()
    record(kube, "superseded", "deployed")
    error = write(kube, FailingApplier(writes=2))
    assert str(error) == ("applying release shop failed for 1 resources\nRevision 3 of release shop is marked failed; "
                          "what was applied before the failure stays applied. Written: 2 of 3 object changes.")
    assert (error.details["revision"], error.details["written"], error.details["to_write"]) == (3, 2, 3)
    assert error.details["rejected"] == [{"name": "c"}]
    # revision 2's objects are no longer all live: it is superseded, and stays the rollback target
    assert statuses(kube) == [(1, "superseded"), (2, "superseded"), (3, "failed")]


def test_a_write_that_failed_before_writing_leaves_the_deployed_revision_deployed():
    kube = FakeKube()
    record(kube, "deployed")
    write(kube, FailingApplier(writes=0))
    assert statuses(kube) == [(1, "deployed"), (2, "failed")]


def test_a_failure_to_mark_the_revision_is_appended_and_it_stays_pending():
    kube = FakeKube()
    record(kube, "deployed")
    kube.fail_on.add(("PUT", "/secrets/"))  # status updates fail, as when the API server went away
    error = write(kube, FailingApplier(writes=1), changes=2)
    lines = str(error).splitlines()
    assert lines[0] == "applying release shop failed for 1 resources"
    assert lines[1].startswith("Revision 2 of release shop was recorded; what was applied") and \
        lines[1].endswith("Written: 1 of 2 object changes.")
    assert lines[2].startswith("Also failed afterwards, marking revision 2 failed: cannot reach")
    assert lines[3] == "It stays pending until the next converge of the release marks it failed (interrupted)."
    assert statuses(kube) == [(1, "deployed"), (2, "pending")]


def test_lock_release_failure_is_appended_to_the_error_that_ended_the_run():
    kube = FakeKube()
    with pytest.raises(ConvergeError) as caught:
        with release.ReleaseLock(kube, "shop", NS, timeout=1):
            kube.down = True
            raise ConvergeError("the real failure", revision=4)
    message = str(caught.value)
    assert message.startswith("the real failure\nAlso failed afterwards, releasing the lock Lease berth-converge.shop")
    assert message.endswith("Connection refused")
    assert caught.value.details == {"revision": 4}


def test_lock_release_failure_alone_is_the_error_and_a_bug_keeps_its_own_exception():
    kube = FakeKube()
    with pytest.raises(ConvergeError, match="releasing the lock Lease berth-converge.shop .* failed: cannot reach"):
        with release.ReleaseLock(kube, "shop", NS, timeout=1):
            kube.down = True
    kube = FakeKube()  # the first lease was left behind, as it is when its release fails
    with pytest.raises(KeyError):
        with release.ReleaseLock(kube, "shop", NS, timeout=1):
            kube.down = True
            raise KeyError("a bug")


def test_converge_records_when_the_latest_revision_has_other_manifests(monkeypatch):
    """Nothing to change in the cluster, but the latest revision (failed before writing) recorded other
    manifests: the converge records one, so the latest revision always holds the live manifests."""
    kube = FakeKube()
    live = [cm(1)]
    release.record_revision(kube, "shop", NS, manifests=live, status="deployed")
    release.record_revision(kube, "shop", NS, manifests=[cm(2)], status="failed")
    nothing = SimpleNamespace(planned=[], crds=[], deletes=[], warnings=[], changed=False, hooks=release.HookPlan([], []))
    monkeypatch.setattr(release, "plan_release", lambda *args: nothing)
    monkeypatch.setattr(release, "_applier", lambda *args: None)
    kube.objects[("api/v1/namespaces", NS)] = {"metadata": {"name": NS}}
    options = release.ApplyOptions(check_mode=True)
    assert release.converge(kube, "shop", NS, release.ReleaseRequest(live), options)["revision"] == 3
    revisions = release.history(kube, "shop", NS)
    assert release.converge(kube, "shop", NS, release.ReleaseRequest(revisions[-1].manifests), options,
                            revisions=revisions)["revision"] == 2  # same manifests: nothing recorded


@pytest.mark.parametrize("status, marked", [("failed", 2), ("deployed", None), ("pending", None)])
def test_release_track_marks_a_failed_revision_deployed_once_ready(status, marked):
    kube = FakeKube()
    record(kube, "deployed", status)
    params = {"release": "shop", "namespace": NS, "revision": None}
    assert release_track.mark_ready(kube, params) == marked
    assert statuses(kube) == ([(1, "superseded"), (2, "deployed")] if marked else [(1, "deployed"), (2, status)])
