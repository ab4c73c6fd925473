# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A release: its revisions (one Secret each, like Helm), its lock (a Lease), pruning, and the apply of a
whole manifest set as one revision."""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from urllib.parse import quote

from ansible.module_utils.common.yaml import yaml_dump

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import hooks as helm_hooks
from ansible_collections.berth.converge.plugins.module_utils.kube.apply import (
    DEFAULT_CONCURRENCY,
    DELETE,
    Applier,
    Planned,
    ResourceId,
    diff_view,
    foreign_owner,
    prepare,
    run_parallel,
)
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import (
    Kube,
    KubeApiError,
    ResourceMapper,
    split_api_version,
)
from ansible_collections.berth.converge.plugins.module_utils.kube.track import Waiter

BERTH_VERSION = "0.1.0"
OWNER = "berth-converge"
REVISION_TYPE = "berth.converge/release.v1"
DEPLOYED, FAILED, SUPERSEDED, PENDING = "deployed", "failed", "superseded", "pending"
STATUSES = (DEPLOYED, FAILED, SUPERSEDED, PENDING)
SUCCESSFUL = (DEPLOYED, SUPERSEDED)  # superseded revisions were deployed before a newer one
# A Secret holds at most 1 MiB; leave room for its metadata.
MAX_PAYLOAD = 1000 * 1024
KEEP_POLICY_ANNOTATION = "helm.sh/resource-policy"
LEASE_SECONDS = 30


def _now():
    return datetime.now(timezone.utc)


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------- revisions

def revision_name(release, version):
    return f"berth.release.v1.{release}.v{version}"


def encode_payload(payload):
    """base64(gzip(JSON)) as stored under the key `release` of a revision Secret's data."""
    return base64.b64encode(gzip.compress(json.dumps(payload, sort_keys=True).encode(), mtime=0)).decode()


def decode_payload(text):
    return json.loads(gzip.decompress(base64.b64decode(text)))


@dataclass
class Revision:
    """One recorded revision of a release; the payload is decoded on first use."""

    release: str
    namespace: str
    version: int
    status: str
    encoded: str

    @classmethod
    def from_secret(cls, secret):
        labels = secret["metadata"].get("labels") or {}
        return cls(labels["name"], secret["metadata"]["namespace"], int(labels["version"]), labels["status"],
                   (secret.get("data") or {}).get("release", ""))

    @cached_property
    def payload(self):
        try:
            return decode_payload(self.encoded)
        except (ValueError, OSError, EOFError) as exc:
            raise ConvergeError(f"revision Secret {revision_name(self.release, self.version)} in namespace "
                                f"{self.namespace} has an unreadable payload: {exc}")

    @property
    def manifests(self):
        return self.payload.get("manifests") or []

    @property
    def resources(self):
        return self.payload.get("resources") or []

    def summary(self):
        """What release_info shows: no manifests (they may hold Secrets)."""
        payload = self.payload
        return {"revision": self.version, "status": self.status, "description": payload.get("description"),
                "reason": payload.get("reason"), "commit": payload.get("commit"), "images": payload.get("images"),
                "time": payload.get("time"), "updated": payload.get("updated"),
                "resource_count": len(self.resources), "berth_version": payload.get("berth_version")}


def _secrets_path(namespace, name=None):
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets"
    return path + (f"/{quote(name, safe='')}" if name else "")


def history(api, release, namespace):
    """Every revision of the release, oldest first."""
    kube = Kube.of(api)
    try:
        listing = kube.request("GET", _secrets_path(namespace),
                               {"labelSelector": f"owner={OWNER},name={release}"})
    except KubeApiError as exc:
        raise ConvergeError(f"cannot read the revisions of release {release} in namespace {namespace}: {exc}")
    revisions = [Revision.from_secret(item) for item in listing.get("items", [])
                 if item.get("type") == REVISION_TYPE]
    return sorted(revisions, key=lambda revision: revision.version)


def latest(api, release, namespace):
    revisions = history(api, release, namespace)
    return revisions[-1] if revisions else None


def last_deployed(api, release, namespace, before=None):
    """The newest successfully deployed revision (status deployed or superseded), older than `before`."""
    return last_successful(history(api, release, namespace), before)


def last_successful(revisions, before=None):
    for revision in reversed(revisions):
        if revision.status in SUCCESSFUL and (before is None or revision.version < before):
            return revision
    return None


def record_revision(api, release, namespace, *, manifests, images=None, commit=None, resources=(),
                    status=PENDING, description=""):
    """Record the next revision of the release and return it."""
    _check_status(status)
    kube = Kube.of(api)
    previous = latest(kube, release, namespace)
    version = previous.version + 1 if previous else 1
    payload = {"release": release, "namespace": namespace, "revision": version, "status": status,
               "description": description, "reason": None, "manifests": manifests, "images": images or [],
               "commit": commit, "resources": list(resources), "time": _iso(_now()), "updated": None,
               "berth_version": BERTH_VERSION}
    encoded = encode_payload(payload)
    if len(encoded) > MAX_PAYLOAD:
        raise ConvergeError(f"release {release} revision {version} is {len(encoded)} bytes compressed, more than "
                            f"a Secret can hold ({MAX_PAYLOAD}); split the chart into several releases")
    secret = {"apiVersion": "v1", "kind": "Secret", "type": REVISION_TYPE,
              "metadata": {"name": revision_name(release, version), "namespace": namespace,
                           "labels": _labels(release, version, status)},
              "data": {"release": encoded}}
    try:
        created = kube.request("POST", _secrets_path(namespace), body=secret)
    except KubeApiError as exc:
        raise ConvergeError(f"cannot record revision {version} of release {release} in namespace {namespace}: "
                            f"{exc}")
    return Revision.from_secret(created)


def set_revision_status(api, release, namespace, revision, status, reason=None):
    """Set the status (and the reason, e.g. why it failed) of a recorded revision; returns it."""
    _check_status(status)
    kube = Kube.of(api)
    path = _secrets_path(namespace, revision_name(release, revision))
    for _attempt in range(5):
        secret = kube.get_or_none(path)
        if secret is None:
            raise ConvergeError(f"release {release} has no revision {revision} in namespace {namespace}")
        payload = decode_payload(secret["data"]["release"])
        payload.update(status=status, reason=reason, updated=_iso(_now()))
        secret["data"]["release"] = encode_payload(payload)
        secret["metadata"]["labels"]["status"] = status
        try:
            return Revision.from_secret(kube.request("PUT", path, body=secret))
        except KubeApiError as exc:
            if exc.status != 409:  # 409: changed meanwhile; read it again
                raise ConvergeError(f"cannot set the status of revision {revision} of release {release}: {exc}")
    raise ConvergeError(f"revision {revision} of release {release} kept changing while setting its status")


def _labels(release, version, status):
    return {"owner": OWNER, "name": release, "version": str(version), "status": status}


def _check_status(status):
    if status not in STATUSES:
        raise ConvergeError(f"unknown revision status {status!r}; one of {', '.join(STATUSES)}")


# ------------------------------------------------------------------------------------- status transitions
# The record's invariants, in terms of statuses (see docs/releases-and-rollback.md):
# - at most one revision is `deployed`, and its manifests are the live ones;
# - a revision stays `pending` only while the converge that recorded it holds the release lock;
# - `superseded` revisions were live (deployed) before a newer revision wrote over them.

INTERRUPTED = "interrupted"


def mark_deployed(api, release, namespace, version):
    """The revision is live: mark it deployed, and the one deployed before it superseded."""
    kube = Kube.of(api)
    set_revision_status(kube, release, namespace, version, DEPLOYED)
    supersede_others(kube, release, namespace, version)


def fail_interrupted(api, release, namespace, revisions):
    """Mark `failed` (reason: interrupted) every pending revision: the caller holds the release lock, so the
    converge that recorded it is gone. Returns the revisions, updated."""
    kube = Kube.of(api)
    return [set_revision_status(kube, release, namespace, revision.version, FAILED, reason=INTERRUPTED)
            if revision.status == PENDING else revision for revision in revisions]


def supersede_others(api, release, namespace, version):
    """Mark superseded every deployed revision but `version`: a newer one wrote over what they applied."""
    kube = Kube.of(api)
    for revision in history(kube, release, namespace):
        if revision.version != version and revision.status == DEPLOYED:
            set_revision_status(kube, release, namespace, revision.version, SUPERSEDED)


# ---------------------------------------------------------------------------------------------------- lock

class ReleaseLock:
    """A coordination.k8s.io Lease `berth-converge.<release>` held while a converge writes the release.

    Renewed in the background while held; taken over only once expired. `waited` (seconds) and
    `waited_for` (the holder we waited for) tell whether another converge held it first.
    """

    def __init__(self, api, release, namespace, timeout=300, duration=LEASE_SECONDS, poll=0.5):
        self.kube = Kube.of(api)
        self.release_name = release
        self.namespace = namespace
        self.timeout = timeout
        self.duration = duration
        self.poll = poll
        self.name = f"berth-converge.{release}"
        self.identity = f"{socket.gethostname()}/{os.getpid()}/{os.urandom(4).hex()}"
        self.path = (f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace, safe='')}/leases/"
                     f"{quote(self.name, safe='')}")
        self.waited = 0.0
        self.waited_for = None
        self.lost = False
        self._lease = None
        self._stop = threading.Event()
        self._renewer = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, _exc_type, exc, _traceback):
        try:
            self.release()
        except Exception as cleanup:  # pylint: disable=broad-except  # any failure: the lease expires by itself
            doing = (f"releasing the lock Lease {self.name} (it expires by itself {self.duration} s after its "
                     "last renewal)")
            if exc is None:
                raise ConvergeError(f"{doing} failed: {_reason(cleanup)}")
            if isinstance(exc, ConvergeError):
                raise also_failed(exc, doing, cleanup) from exc
            # anything else is a bug whose traceback matters more; the original propagates

    def acquire(self):
        started = time.monotonic()
        while True:
            blocking = self._try_take()
            if blocking is None:
                break
            self.waited_for = blocking["spec"].get("holderIdentity")
            if time.monotonic() - started >= self.timeout:
                raise ConvergeError(_locked_message(self, blocking), holder=self.waited_for)
            time.sleep(self.poll)
        self.waited = round(time.monotonic() - started, 3) if self.waited_for else 0.0
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease {self.name}", daemon=True)
        self._renewer.start()

    def release(self):
        self._stop.set()
        if self._renewer:
            self._renewer.join()
        if self._lease is None or self.lost:
            return
        try:
            self.kube.request("DELETE", self.path, body={
                "kind": "DeleteOptions", "apiVersion": "v1",
                "preconditions": {"resourceVersion": self._lease["metadata"]["resourceVersion"]}})
        except KubeApiError as exc:
            if exc.status not in (404, 409):  # 404/409: already gone, or taken over after expiry
                raise
        self._lease = None

    def _try_take(self):
        """None when we hold the lease now, else the lease that blocks us."""
        current = self.kube.get_or_none(self.path)
        now = _now()
        if current is not None and not _expired(current, now):
            return current
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": self.duration,
                "acquireTime": _micro(now), "renewTime": _micro(now),
                "leaseTransitions": ((current or {}).get("spec", {}).get("leaseTransitions") or 0)
                + (1 if current else 0)}
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
        try:
            if current is None:
                self._lease = self.kube.request("POST", self.path.rsplit("/", 1)[0], body=body)
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self._lease = self.kube.request("PUT", self.path, body=body)
        except KubeApiError as exc:
            if exc.status == 409:  # another converge was faster
                return self.kube.get_or_none(self.path) or {"spec": {}}
            raise ConvergeError(f"cannot take the lock Lease {self.name} in namespace {self.namespace}: {exc}")
        return None

    def _renew_loop(self):
        while not self._stop.wait(self.duration / 3):
            patch = {"metadata": {"resourceVersion": self._lease["metadata"]["resourceVersion"]},
                     "spec": {"renewTime": _micro(_now())}}
            try:
                self._lease = self.kube.request("PATCH", self.path, body=patch,
                                                content_type="application/merge-patch+json")
            except KubeApiError as exc:
                if exc.status in (404, 409):  # expired and taken over: keep going, but say so at the end
                    self.lost = True
                    return
            except Exception:  # a network blip; the next renewal retries
                continue


def also_failed(exc, doing, cleanup):
    """The error `exc` that ended a run, with a later cleanup failure appended: the first failure stays first."""
    return ConvergeError(f"{exc}\nAlso failed afterwards, {doing}: {_reason(cleanup)}", **exc.details)


def _reason(exc):
    return str(exc) if isinstance(exc, ConvergeError) else f"{type(exc).__name__}: {exc}"


def _micro(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text):
    """An API server time: RFC 3339 in UTC, with microseconds (MicroTime) or without (Time)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _expired(lease, now):
    spec = lease.get("spec") or {}
    if not spec.get("holderIdentity") or not spec.get("renewTime"):
        return True
    return _parse_time(spec["renewTime"]) + timedelta(seconds=spec.get("leaseDurationSeconds") or 0) < now


def _locked_message(lock, lease):
    spec = lease.get("spec") or {}
    return (f"release {lock.release_name} in namespace {lock.namespace} is locked by {spec.get('holderIdentity')} "
            f"since {spec.get('acquireTime')} (Lease {lock.name}, last renewed {spec.get('renewTime')}); "
            f"gave up after waiting {lock.timeout} s")


# --------------------------------------------------------------------------------------------------- prune

def record_of(api_version, rid):
    return {"apiVersion": api_version, "kind": rid.kind, "namespace": rid.namespace or None, "name": rid.name}


def prune_candidates(revisions, desired_ids, release_namespace):
    """(apiVersion, ResourceId) of objects recorded since the last successful revision and no longer
    desired, plus warnings for those never pruned (CustomResourceDefinitions, the release namespace)."""
    last_good = last_successful(revisions)
    since = [r for r in revisions if last_good is None or r.version >= last_good.version]
    candidates, warnings, seen = [], [], set(desired_ids)
    for revision in since:
        for record in revision.resources:
            group, _version = split_api_version(record["apiVersion"])
            rid = ResourceId(group, record["kind"], record.get("namespace") or "", record["name"])
            if rid in seen:
                continue
            seen.add(rid)
            release_namespace_object = ("Namespace", "", release_namespace)
            if rid.kind == "CustomResourceDefinition" or (rid.kind, rid.group, rid.name) == release_namespace_object:
                warnings.append(f"{rid.label} is no longer in the release but is kept: deleting it would "
                                "delete everything in it")
                continue
            candidates.append((record["apiVersion"], rid))
    return candidates, warnings


def plan_prune(applier, revisions, desired_ids, warnings):
    """Planned deletes of the prune candidates that still exist and belong to this release."""
    candidates, kept = prune_candidates(revisions, desired_ids, applier.namespace)
    warnings.extend(kept)
    deletes = []
    for (api_version, rid), live in run_parallel(lambda c: applier.live(*c), candidates, applier.concurrency):
        if isinstance(live, Exception):
            raise ConvergeError(f"cannot read {rid.label} to prune it: {live}")
        if live is None:
            continue
        owner = foreign_owner(live, applier.release, applier.namespace)
        policy = ((live.get("metadata") or {}).get("annotations") or {}).get(KEEP_POLICY_ANNOTATION)
        if owner:
            warnings.append(f"{rid.label} is not pruned: it now belongs to release {owner[0]} in namespace "
                            f"{owner[1]}")
        elif policy == "keep":
            warnings.append(f"{rid.label} is not pruned: annotation {KEEP_POLICY_ANNOTATION}=keep")
        else:
            deletes.append(Planned(rid, api_version, DELETE, live=live))
    return deletes


# -------------------------------------------------------------------------------------------------- apply

@dataclass
class ApplyOptions:
    """How to apply; `timeout` (seconds) bounds each wait: a hook, a werf.io/weight group, the release before
    its post hooks. Progress lines of the waits go to `progress_file` too."""

    force_conflicts: bool = True
    prune: bool = True
    concurrency: int = DEFAULT_CONCURRENCY
    lock_timeout: int = 300
    create_namespace: bool = True
    check_mode: bool = False
    diff: bool = False
    timeout: int = 300
    progress_file: str = None


@dataclass
class ReleaseRequest:
    """What to apply. A revision is recorded when an object or hook changes, or when the latest revision
    recorded other manifests.

    Hooks (manifests annotated helm.sh/hook) are never applied as resources; those of `hook_phase` (see
    hooks.PHASES; INSTALL_OR_UPGRADE for an apply) run around the resources, none when it is None.
    """

    manifests: list
    images: list = None
    commit: dict = None
    description: str = None
    hook_phase: str = None


@dataclass
class HookPlan:
    """The hooks a run executes: those of its pre event, and those of its post event."""

    pre: list
    post: list

    @property
    def items(self):
        return self.pre + self.post

    @property
    def desired(self):
        """The distinct Desired objects of the hooks (one hook may serve both events)."""
        return list({id(item.desired): item.desired for item in self.items}.values())

    @classmethod
    def of(cls, hook_items, phase):
        if phase is None:
            return cls([], [])
        return cls(helm_hooks.for_event(hook_items, f"pre-{phase}"), helm_hooks.for_event(hook_items, f"post-{phase}"))


def apply_release(api, release, namespace, request, options=None):
    """Apply the manifests as the next revision of the release; returns the module result (see
    release_apply RETURN)."""
    options = options or ApplyOptions()
    kube = Kube.of(api)
    if options.check_mode:
        return converge(kube, release, namespace, request, options)
    created_namespace = ensure_namespace(kube, namespace, options.create_namespace)
    try:
        with ReleaseLock(kube, release, namespace, timeout=options.lock_timeout) as lock:
            result = converge(kube, release, namespace, request, options)
    except ConvergeError as exc:
        if not created_namespace:
            raise
        try:
            _remove_unused_namespace(kube, namespace)
        except ConvergeError as cleanup:
            raise also_failed(exc, f"removing namespace {namespace}, which this run created", cleanup) from exc
        raise
    result["lock"] = lock_result(lock, result["warnings"])
    return result


def dismiss_release(api, release, namespace, options=None):
    """Delete every object of the release and its revision records (werf dismiss); returns the module result.

    Objects that are never pruned (CRDs, the namespace, `helm.sh/resource-policy: keep`) stay, with a warning.
    """
    options = options or ApplyOptions()
    kube = Kube.of(api)
    if kube.get_or_none(f"/api/v1/namespaces/{quote(namespace, safe='')}") is None:
        return {"changed": False, "revision": None, "resources": [], "hooks": [], "warnings": []}
    if options.check_mode:
        return _dismiss(kube, release, namespace, options)
    with ReleaseLock(kube, release, namespace, timeout=options.lock_timeout) as lock:
        result = _dismiss(kube, release, namespace, options)
    result["lock"] = lock_result(lock, result["warnings"])
    return result


def _dismiss(kube, release, namespace, options):
    """Run the pre-delete hooks of the latest revision, delete the objects, run its post-delete hooks, then
    delete the revision records."""
    revisions = history(kube, release, namespace)
    applier = _applier(kube, release, namespace, options)
    _resources, hooks, warnings = helm_hooks.split_hooks(revisions[-1].manifests if revisions else [])
    hook_plan = HookPlan.of(helm_hooks.prepare_hooks(hooks, release, namespace, applier.mapper), helm_hooks.DELETE)
    applier.plan(hook_plan.desired, written="nothing was deleted")
    deletes = plan_prune(applier, revisions, [], warnings)
    if options.check_mode:
        return _result(deletes, bool(deletes or revisions), None, warnings, options.diff,
                       [item.entry for item in hook_plan.items])
    runner = helm_hooks.HookRunner(applier, applier.waiter)
    try:
        runner.run(hook_plan.pre)
        applier.delete(deletes)
        runner.run(hook_plan.post)
    except ConvergeError as exc:
        raise ConvergeError(f"{exc}\nDismissing release {release} stopped there; its revision records are kept.",
                            **{"hooks": runner.entries, "progress": applier.waiter.progress, **exc.details})
    for revision in revisions:
        kube.request("DELETE", _secrets_path(namespace, revision_name(release, revision.version)))
    return _result(deletes, bool(deletes or revisions), None, warnings, options.diff, runner.entries,
                   applier.waiter.progress)


def _applier(kube, release, namespace, options):
    """An Applier for the options; outside check mode it waits for werf.io/weight groups and hooks."""
    waiter = None if options.check_mode else Waiter(kube, options.timeout, options.progress_file)
    return Applier(kube, ResourceMapper(kube), release, namespace, options.force_conflicts, options.concurrency,
                   waiter)


def lock_result(lock, warnings):
    """The `lock` entry of a module result; warns when the lease expired while we held it."""
    if lock.lost:
        warnings.append(f"the lock Lease {lock.name} expired and was taken over while this run held it")
    return {"name": lock.name, "waited": lock.waited, "waited_for": lock.waited_for}


def converge(kube, release, namespace, request, options, revisions=None):
    """Plan (validating everything), then, unless in check mode, record and apply the revision.

    The caller holds the release lock when not in check mode.
    """
    namespace_exists = kube.get_or_none(f"/api/v1/namespaces/{quote(namespace, safe='')}") is not None
    if not namespace_exists and not options.create_namespace:
        raise ConvergeError(f"namespace {namespace} of release {release} does not exist and create_namespace "
                            "is false")
    if revisions is None:
        revisions = history(kube, release, namespace) if namespace_exists else []
    if not options.check_mode:
        revisions = fail_interrupted(kube, release, namespace, revisions)
    applier = _applier(kube, release, namespace, options)
    plan = plan_release(applier, request, revisions, namespace_exists, options)
    previous = revisions[-1].version if revisions else None
    # Also when no object changes but the latest revision recorded other manifests (a rollback, or a revision
    # that failed before writing): the latest revision always holds the manifests that are live.
    record = plan.changed or bool(revisions) and revisions[-1].manifests != request.manifests
    revision = (previous or 0) + 1 if record else previous
    planned, hook_entries, progress = plan.planned, ([item.entry for item in plan.hooks.items] if record else []), []
    if record and not options.check_mode:
        planned, hook_entries, progress = _write(kube, applier, request, plan, revisions)
    return _result(planned + plan.deletes, plan.changed or record, revision, plan.warnings, options.diff,
                   hook_entries, progress)


@dataclass
class ReleasePlan:
    """What a converge would do: the planned resources, prune deletes and hooks, and whether anything changes."""

    desired: list
    planned: list
    deletes: list
    hooks: HookPlan
    warnings: list
    changed: bool


def plan_release(applier, request, revisions, namespace_exists, options):
    """Split off the hooks, validate the resources and the hooks to run with one server-side dry run, and
    plan the prune. Hooks are never pruned."""
    manifests, hooks, warnings = helm_hooks.split_hooks(request.manifests)
    phase = helm_hooks.resolve_phase(request.hook_phase, bool(revisions))
    desired = prepare(manifests, applier.release, applier.namespace, applier.mapper)
    hook_items = helm_hooks.prepare_hooks(hooks, applier.release, applier.namespace, applier.mapper)
    hook_plan = HookPlan.of(hook_items, phase)
    validated = applier.plan(desired + hook_plan.desired,
                             creatable_namespaces=() if namespace_exists else (applier.namespace,))
    if options.check_mode:  # outside check mode the unvalidated objects are validated before they are written
        warnings += [f"{p.rid.label}: {note}" for p in validated for note in p.notes]
    planned = validated[:len(desired)]
    kept = [d.rid for d in desired] + [item.desired.rid for item in hook_items]
    deletes = plan_prune(applier, revisions, kept, warnings) if options.prune else []
    changed = any(p.changed for p in planned) or bool(deletes) or _hooks_changed(hooks, revisions, phase)
    return ReleasePlan(desired, planned, deletes, hook_plan, warnings, changed)


def _hooks_changed(hooks, revisions, phase):
    """Whether the hooks differ from those the latest revision recorded; only when hooks run at all."""
    if phase is None:
        return False
    recorded = helm_hooks.split_hooks(revisions[-1].manifests)[1] if revisions else []
    return [hook.manifest for hook in hooks] != [hook.manifest for hook in recorded]


def _write(kube, applier, request, plan, revisions):
    """Record the revision as pending; run the pre hooks, apply and prune; once every resource is ready, run
    the post hooks; then mark the revision deployed (or failed). Returns the final planned list, the report
    entries of the hooks run and the progress lines of the waits.

    A failure ends in one error: the failure itself first, then which revision was recorded and how many
    of the object writes were done, then any failure of marking the revision (it stays pending then, until
    the next converge holding the lock marks it failed: interrupted)."""
    release, namespace = applier.release, applier.namespace
    resources = [record_of(d.api_version, d.rid) for d in plan.desired]
    description = request.description or ("upgrade" if revisions else "install")
    revision = record_revision(kube, release, namespace, manifests=request.manifests, images=request.images,
                               commit=request.commit, resources=resources, description=description)
    runner = helm_hooks.HookRunner(applier, applier.waiter)
    planned = plan.planned
    to_write = sum(p.changed for p in planned) + len(plan.deletes)
    try:
        applier.delete(plan.deletes)  # first, as werf does: before the pre hooks and the apply
        planned = applier.apply(planned, before_main=lambda: runner.run(plan.hooks.pre))
        if plan.hooks.post and plan.desired:
            applier.waiter.wait([d.obj for d in plan.desired])
        runner.run(plan.hooks.post)
    except ConvergeError as exc:
        written = len(applier.written)
        details = {"hooks": runner.entries, "progress": applier.waiter.progress, **exc.details,
                   "revision": revision.version, "written": written, "to_write": to_write}
        details.pop("resources", None)  # those of a wait; the failure is in failed_resource or failed_hook
        progress = f"{_applied_note(exc, planned, plan.deletes)} Written: {written} of {to_write} object changes."
        status, afterwards = "is marked failed", []
        try:
            set_revision_status(kube, release, namespace, revision.version, FAILED, reason=str(exc))
        except ConvergeError as marking:
            status = "was recorded"
            afterwards.append(f"marking revision {revision.version} failed: {marking}\nIt stays pending until "
                              "the next converge of the release marks it failed (interrupted).")
        else:
            try:
                if written:  # the revision deployed before this one is no longer what is live
                    supersede_others(kube, release, namespace, revision.version)
            except ConvergeError as marking:
                afterwards.append(f"marking the revision deployed before it superseded: {marking}")
        message = f"{exc}\nRevision {revision.version} of release {release} {status}; {progress}"
        raise ConvergeError(message + "".join(f"\nAlso failed afterwards, {note}" for note in afterwards),
                            **details) from exc
    try:
        mark_deployed(kube, release, namespace, revision.version)
    except ConvergeError as exc:
        raise ConvergeError(f"{exc}\nRevision {revision.version} of release {release} was recorded and all "
                            f"{to_write} object changes were written, but marking it deployed failed; the next "
                            "converge of the release corrects the record (a pending revision becomes failed: "
                            "interrupted).",
                            revision=revision.version, written=len(applier.written), to_write=to_write) from exc
    return planned, runner.entries, applier.waiter.progress


def _applied_note(exc, planned, deletes=()):
    """What a failure left applied (and deleted: objects the chart no longer has go first)."""
    failed_hook = exc.details.get("failed_hook") or {}
    if not str(failed_hook.get("event", "")).startswith("pre-"):
        return "what was applied before the failure stays applied."
    crds = any(p.changed and p.rid.kind == "CustomResourceDefinition" for p in planned)
    deleted = (f"; the {len(deletes)} resources it no longer has were deleted before its hooks, as werf does"
               if deletes else "")
    return ("none of its resources was applied" + (" but its CustomResourceDefinitions, which go before the "
                                                   "hooks" if crds else "") + deleted + ".")


def ensure_namespace(kube, namespace, create):
    """True when the namespace had to be created."""
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}"
    if kube.get_or_none(path) is not None:
        return False
    if not create:
        raise ConvergeError(f"namespace {namespace} does not exist and create_namespace is false")
    try:
        kube.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": namespace}})
    except KubeApiError as exc:
        if exc.status == 409:  # created meanwhile by someone else
            return False
        raise ConvergeError(f"cannot create namespace {namespace}: {exc}")
    return True


def _remove_unused_namespace(kube, namespace):
    """Undo our namespace creation when the run failed before any revision was recorded in it."""
    listing = kube.request("GET", _secrets_path(namespace), {"labelSelector": f"owner={OWNER}", "limit": "1"})
    if not listing.get("items"):
        kube.request("DELETE", f"/api/v1/namespaces/{quote(namespace, safe='')}")


def _result(planned, changed, revision, warnings, with_diff, hooks=(), progress=()):
    result = {"changed": changed, "revision": revision, "resources": [p.result(with_diff) for p in planned],
              "hooks": list(hooks), "warnings": warnings}
    if progress:
        result["progress"] = list(progress)
    if with_diff:
        result["diff"] = [_ansible_diff(p) for p in planned if p.changed]
    return result


def _ansible_diff(planned):
    """One entry of the module's `diff` list, as Ansible's --diff display expects."""
    def text(obj):
        return yaml_dump(obj, sort_keys=False, default_flow_style=False) if obj else ""

    after = None if planned.action == DELETE else diff_view(planned.after)
    header = f"{planned.rid.label} ({planned.action})"
    return {"before_header": header, "after_header": header, "before": text(diff_view(planned.live)),
            "after": text(after)}
