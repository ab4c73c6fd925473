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
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from urllib.parse import quote

from ansible.module_utils.common.yaml import yaml_dump

from ansible_collections.berth.converge.plugins.module_utils import kube_yaml
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import hooks as helm_hooks
from ansible_collections.berth.converge.plugins.module_utils.kube.apply import (
    DEFAULT_CONCURRENCY,
    DELETE,
    UNCHANGED,
    Applier,
    ObjectMetadata,
    Planned,
    ResourceId,
    deploy_steps,
    deployed_on,
    foreign_owner,
    live_lifecycle,
    prepare,
    run_parallel,
)
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import (
    Kube,
    KubeApiError,
    ResourceMapper,
    split_api_version,
)
from ansible_collections.berth.converge.plugins.module_utils.kube.readiness import ReadinessRules
from ansible_collections.berth.converge.plugins.module_utils.kube.track import Waiter
from ansible_collections.berth.converge.plugins.module_utils.plan import (
    live_fingerprint, refuse_on, release_differences)

BERTH_VERSION = "0.1.0"
# The value of werf's werf.io/version annotation on the objects we apply.
WERF_VERSION = f"berth.converge/{BERTH_VERSION}"
DEPLOYED, FAILED, SUPERSEDED, PENDING = "deployed", "failed", "superseded", "pending"
STATUSES = (DEPLOYED, FAILED, SUPERSEDED, PENDING)
SUCCESSFUL = (DEPLOYED, SUPERSEDED)  # superseded revisions were deployed before a newer one
# A Secret holds at most 1 MiB; leave room for its metadata.
MAX_PAYLOAD = 1000 * 1024
LEASE_SECONDS = 30

# Revisions are stored as Helm 3's Secret driver stores releases (see docs/releases-and-rollback.md).
HELM_OWNER = "helm"
REVISION_TYPE = "helm.sh/release.v1"
# What berth.converge 0.1 wrote; read, and converted to Helm records on the next write.
LEGACY_OWNER = "berth-converge"
LEGACY_REVISION_TYPE = "berth.converge/release.v1"
OWNER = HELM_OWNER
# Helm's labels on a release Secret; any other label is a custom label Helm carries along.
HELM_SYSTEM_LABELS = ("name", "owner", "status", "version", "createdAt", "modifiedAt")
# The field of the release JSON that holds what only berth.converge records; Helm ignores it (and drops it
# when it rewrites the record, e.g. marking it superseded).
BERTH_FIELD = "berth"
INSTALL, UPGRADE, ROLLBACK = "install", "upgrade", "rollback"
# Our pending status is Helm's pending-<operation>; Helm's uninstalling is an operation underway as well.
_HELM_PENDING = {INSTALL: "pending-install", UPGRADE: "pending-upgrade", ROLLBACK: "pending-rollback"}
_FROM_HELM_STATUS = {**{helm: PENDING for helm in _HELM_PENDING.values()}, "uninstalling": PENDING}
_GZIP_MAGIC = b"\x1f\x8b\x08"


def _now():
    return datetime.now(timezone.utc)


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------- revisions

def revision_name(release, version):
    """The name Helm gives the Secret of a release revision."""
    return f"sh.helm.release.v1.{release}.v{version}"


def legacy_revision_name(release, version):
    return f"berth.release.v1.{release}.v{version}"


def encode_release(record):
    """The text Helm stores under the key `release` of the Secret's data: base64(gzip(JSON)). (The API then
    base64-encodes that text once more, as it does any Secret data.)"""
    body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(body, compresslevel=9, mtime=0)).decode()


def decode_release(text):
    """The release JSON of `encode_release` text; uncompressed JSON too, as Helm reads its oldest records."""
    raw = base64.b64decode(text, validate=True)
    return json.loads(gzip.decompress(raw) if raw[:3] == _GZIP_MAGIC else raw)


def _secret_data(text):
    return base64.b64encode(text.encode()).decode()


def decode_payload(data):
    """The payload of a berth.converge 0.1 revision: its Secret data is base64(gzip(JSON))."""
    return json.loads(gzip.decompress(base64.b64decode(data)))


def helm_status(status, operation):
    """Helm's status for ours: pending is pending-install, -upgrade or -rollback."""
    return _HELM_PENDING.get(operation, _HELM_PENDING[UPGRADE]) if status == PENDING else status


def from_helm_status(status):
    return _FROM_HELM_STATUS.get(status, status)


def manifest_text(manifests):
    """Helm's `manifest` field: each object as a YAML document after `---` and a `# Source:` line."""
    return "".join(f"---\n# Source: {_source(obj)}\n{_yaml(obj)}" for obj in manifests)


def _yaml(obj):
    """As the record is read back (kube_yaml), so the recorded manifests compare equal to those applied."""
    return kube_yaml.dump(obj)


def _source(obj):
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}.yaml"


def _helm_hook(manifest):
    """Helm's record of a hook manifest."""
    hook = helm_hooks.parse_hook(manifest)
    record = {"name": manifest["metadata"]["name"], "kind": manifest["kind"], "path": _source(manifest),
              "manifest": _yaml(manifest),
              "events": list(hook.events) if hook else [],
              "last_run": {"started_at": "", "completed_at": "", "phase": ""}}
    if hook and hook.weight:
        record["weight"] = hook.weight
    if hook:
        record["delete_policies"] = list(hook.delete_policies)
    return record


def _parse_documents(text, what):
    from ansible_collections.berth.converge.plugins.module_utils.render import parse_manifests

    try:
        return parse_manifests(text or "", source=what)
    except ConvergeError as exc:
        raise ConvergeError(f"{what}: {exc}")


def operation_of(description):
    """install, upgrade or rollback, from the description a caller records a revision with."""
    if description in (INSTALL, UPGRADE):
        return description
    return ROLLBACK if str(description).lower().startswith(("rollback", "rolled back")) else UPGRADE


def _legacy_description(description):
    """Helm's words for what berth.converge 0.1 recorded as "rolled back from N to M"."""
    found = re.fullmatch(r"rolled back from \d+ to (\d+)", str(description or ""))
    return f"Rollback to {found.group(1)}" if found else description


def _helm_description(operation, status, release, description, reason=None):
    """What `helm history` shows for a revision, in Helm's words."""
    if status == PENDING:
        return {INSTALL: "Initial install underway", UPGRADE: "Preparing upgrade"}.get(operation, description)
    if status == FAILED:
        verb = {INSTALL: "Release", UPGRADE: "Upgrade", ROLLBACK: "Rollback"}[operation]
        return f"{verb} \"{release}\" failed: {reason or 'unknown reason'}"
    if status == DEPLOYED:
        return {INSTALL: "Install complete", UPGRADE: "Upgrade complete"}.get(operation, description)
    return description


@dataclass
class Revision:
    """One recorded revision of a release; its record (Helm's release JSON, or the payload berth.converge 0.1
    wrote when `legacy`) is decoded on first use. `status` is ours (see STATUSES; records Helm wrote may also
    be uninstalled or unknown); `helm_status` is the status label as stored."""

    release: str
    namespace: str
    version: int
    status: str
    encoded: str
    legacy: bool = False
    helm_status: str = None
    labels: dict = None

    @classmethod
    def from_secret(cls, secret):
        labels = secret["metadata"].get("labels") or {}
        legacy = secret.get("type") == LEGACY_REVISION_TYPE
        data = (secret.get("data") or {}).get("release", "")
        if not legacy:
            try:
                data = base64.b64decode(data).decode()
            except (ValueError, UnicodeDecodeError):
                data = ""  # reported as unreadable when the record is read
        return cls(labels["name"], secret["metadata"]["namespace"], int(labels["version"]),
                   from_helm_status(labels["status"]), data, legacy, labels["status"], labels)

    @property
    def secret_name(self):
        return (legacy_revision_name if self.legacy else revision_name)(self.release, self.version)

    @cached_property
    def record(self):
        try:
            return (decode_payload if self.legacy else decode_release)(self.encoded)
        except (ValueError, OSError, EOFError) as exc:
            raise ConvergeError(f"revision Secret {self.secret_name} in namespace {self.namespace} has an "
                                f"unreadable record: {exc}")

    @cached_property
    def payload(self):
        """What berth.converge knows of the revision, the same for every kind of record: manifests (hooks
        included), resources, images, commit, description, reason, time, updated, berth_version, werf."""
        if self.legacy:
            return dict(self.record, operation=operation_of(self.record.get("description")))
        record, info = self.record, self.record.get("info") or {}
        berth = record.get(BERTH_FIELD) or {}
        where = f"revision Secret {self.secret_name} in namespace {self.namespace}"
        resources = _parse_documents(record.get("manifest"), f"{where}, manifest")
        hooks = [obj for hook in record.get("hooks") or []
                 for obj in _parse_documents(hook.get("manifest"), f"{where}, hook {hook.get('name')}")]
        manifests = _in_recorded_order(resources, hooks, berth.get("hook_positions"))
        description = info.get("description")
        return {"release": record.get("name"), "namespace": record.get("namespace"), "revision": self.version,
                "status": self.status, "description": description, "operation": berth.get("operation"),
                "reason": berth.get("reason") if berth else (description if self.status == FAILED else None),
                "manifests": manifests, "images": berth.get("images"), "commit": berth.get("commit"),
                "resources": berth.get("resources"), "time": berth.get("time") or info.get("last_deployed"),
                "updated": berth.get("updated"), "berth_version": berth.get("berth_version"),
                "werf": berth.get("werf"), "object_metadata": berth.get("object_metadata")}

    @property
    def manifests(self):
        return self.payload.get("manifests") or []

    @property
    def resources(self):
        """{apiVersion, kind, namespace, name} of the release's objects (hooks aside). A record Helm wrote
        names no namespace for objects that take the release's: None, settled by the caller."""
        recorded = self.payload.get("resources")
        if recorded is not None:
            return recorded
        resources, _hooks, _warnings = helm_hooks.split_hooks(self.manifests)
        return [{"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                 "namespace": (obj.get("metadata") or {}).get("namespace"), "name": obj["metadata"]["name"]}
                for obj in resources]

    def summary(self):
        """What release_info shows: no manifests (they may hold Secrets)."""
        payload = self.payload
        chart = ((self.record.get("chart") or {}).get("metadata") or {}) if not self.legacy else {}
        return {"revision": self.version, "status": self.status, "helm_status": self.helm_status,
                "description": payload.get("description"), "reason": payload.get("reason"),
                "commit": payload.get("commit"), "images": payload.get("images"), "time": payload.get("time"),
                "updated": payload.get("updated"), "resource_count": len(self.resources),
                "berth_version": payload.get("berth_version"),
                "chart": f"{chart['name']}-{chart.get('version')}" if chart.get("name") else None,
                "app_version": chart.get("appVersion"), "werf": payload.get("werf"),
                "recorded_by": "berth.converge" if payload.get("berth_version") else "helm"}


def _secrets_path(namespace, name=None):
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets"
    return path + (f"/{quote(name, safe='')}" if name else "")


def _revision_secrets(kube, release, namespace):
    try:
        listing = kube.request("GET", _secrets_path(namespace),
                               {"labelSelector": f"owner in ({HELM_OWNER},{LEGACY_OWNER}),name={release}"})
    except KubeApiError as exc:
        raise ConvergeError(f"cannot read the revisions of release {release} in namespace {namespace}: {exc}")
    return [item for item in listing.get("items", [])
            if (item.get("type"), (item["metadata"].get("labels") or {}).get("owner"))
            in ((REVISION_TYPE, HELM_OWNER), (LEGACY_REVISION_TYPE, LEGACY_OWNER))]


def history(api, release, namespace):
    """Every revision of the release, oldest first: Helm's records, and those berth.converge 0.1 wrote (a
    Helm record of the same number wins)."""
    by_version = {}
    for item in _revision_secrets(Kube.of(api), release, namespace):
        revision = Revision.from_secret(item)
        if revision.version not in by_version or by_version[revision.version].legacy:
            by_version[revision.version] = revision
    return [by_version[version] for version in sorted(by_version)]


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


def default_chart(release):
    """The chart recorded when the caller names none (Helm shows it as <name>-<version>)."""
    return {"name": release, "version": "0.0.0"}


def _chart_record(chart, release):
    metadata = {"apiVersion": "v2", **default_chart(release), **{k: v for k, v in (chart or {}).items() if v}}
    return {"metadata": metadata, "lock": None, "templates": [], "values": {}, "schema": None, "files": []}


def helm_record(release, namespace, version, *, manifests, status, description, berth, chart=None,
                first_deployed=None, reason=None, now=None):
    """The release JSON Helm would store for this revision, with our data under BERTH_FIELD."""
    now = now or _now()
    resources, hooks = [], []
    for manifest in manifests:
        (hooks if helm_hooks.is_hook(manifest) else resources).append(manifest)
    # Helm keeps hooks apart from the manifest; where they were lets the manifests come back as given.
    berth = dict(berth, hook_positions=[i for i, m in enumerate(manifests) if helm_hooks.is_hook(m)])
    operation = berth["operation"]
    record = {"name": release, "namespace": namespace, "version": version,
              "info": {"first_deployed": first_deployed or _micro(now), "last_deployed": _micro(now),
                       "deleted": "", "description": _helm_description(operation, status, release, description,
                                                                       reason),
                       "status": helm_status(status, operation)},
              "chart": _chart_record(chart, release), "manifest": manifest_text(resources),
              BERTH_FIELD: berth}
    if hooks:
        record["hooks"] = [_helm_hook(hook) for hook in hooks]
    return record


def _labels(release, version, status, operation, custom=None):
    """Helm's labels of a release Secret, after the custom ones it carries."""
    return {**(custom or {}), "owner": HELM_OWNER, "name": release, "version": str(version),
            "status": helm_status(status, operation)}


def _secret(release, namespace, version, record, labels):
    encoded = encode_release(record)
    if len(encoded) > MAX_PAYLOAD:
        raise ConvergeError(f"release {release} revision {version} is {len(encoded)} bytes compressed, more than "
                            f"a Secret can hold ({MAX_PAYLOAD}); split the chart into several releases")
    return {"apiVersion": "v1", "kind": "Secret", "type": REVISION_TYPE,
            "metadata": {"name": revision_name(release, version), "namespace": namespace, "labels": labels},
            "data": {"release": _secret_data(encoded)}}


def record_revision(api, release, namespace, *, manifests, images=None, commit=None, resources=(),
                    status=PENDING, description="", chart=None, werf=None, object_metadata=None):
    """Record the next revision of the release, as Helm stores it, and return it. `description` is install,
    upgrade or, for a rollback, Helm's "Rollback to N"; `chart` ({name, version, appVersion}) is what
    `helm history` shows; `werf` ({project, env, version}) and `object_metadata` ({labels, annotations} added
    to every object) are kept for release_info and rollbacks."""
    _check_status(status)
    kube = Kube.of(api)
    revisions = history(kube, release, namespace)
    if any(revision.legacy for revision in revisions):
        revisions = convert_legacy_records(kube, release, namespace, revisions)
    previous = revisions[-1] if revisions else None
    version = previous.version + 1 if previous else 1
    now = _now()
    operation = operation_of(description)
    berth = {"operation": operation, "commit": commit, "images": images or [], "resources": list(resources),
             "time": _iso(now), "updated": None, "reason": None, "berth_version": BERTH_VERSION,
             "werf": werf, "object_metadata": object_metadata}
    # Helm carries the first deployment time from revision to revision.
    first = (previous.record.get("info") or {}).get("first_deployed") if previous and not previous.legacy else None
    record = helm_record(release, namespace, version, manifests=manifests, status=status, description=description,
                         berth=berth, chart=chart, first_deployed=first, now=now)
    labels = _labels(release, version, status, operation, _custom_labels(previous))
    labels["createdAt"] = str(int(now.timestamp()))
    try:
        secret = _secret(release, namespace, version, record, labels)
        created = kube.request("POST", _secrets_path(namespace), body=secret)
    except KubeApiError as exc:
        raise ConvergeError(f"cannot record revision {version} of release {release} in namespace {namespace}: "
                            f"{exc}")
    return Revision.from_secret(created)


def _custom_labels(revision):
    """Labels a user gave a release (`helm upgrade --labels`): Helm carries them to the next revision."""
    if revision is None or revision.legacy:
        return {}
    return {k: v for k, v in (revision.labels or {}).items() if k not in HELM_SYSTEM_LABELS}


def set_revision_status(api, release, namespace, revision, status, reason=None):
    """Set the status (and the reason, e.g. why it failed) of a recorded revision; returns it. Works on
    records Helm wrote too: everything else in the record stays as it is."""
    _check_status(status)
    kube = Kube.of(api)
    path = _secrets_path(namespace, revision_name(release, revision))
    for _attempt in range(5):
        secret = kube.get_or_none(path)
        if secret is None:
            revisions = history(kube, release, namespace)
            if not any(r.legacy and r.version == revision for r in revisions):
                raise ConvergeError(f"release {release} has no revision {revision} in namespace {namespace}")
            convert_legacy_records(kube, release, namespace, revisions)
            continue
        current = Revision.from_secret(secret)
        record = current.record
        berth = record.get(BERTH_FIELD)
        operation = (berth or {}).get("operation") or _helm_operation(current.helm_status, record)
        info = record.setdefault("info", {})
        info["description"] = _helm_description(operation, status, release, info.get("description"), reason)
        info["status"] = helm_status(status, operation)
        if berth is not None:
            berth.update(reason=reason, updated=_iso(_now()))
        secret["data"]["release"] = _secret_data(encode_release(record))
        labels = secret["metadata"].setdefault("labels", {})
        labels.update(status=info["status"], modifiedAt=str(int(_now().timestamp())))
        try:
            return Revision.from_secret(kube.request("PUT", path, body=secret))
        except KubeApiError as exc:
            if exc.status != 409:  # 409: changed meanwhile; read it again
                raise ConvergeError(f"cannot set the status of revision {revision} of release {release}: {exc}")
    raise ConvergeError(f"revision {revision} of release {release} kept changing while setting its status")


def _helm_operation(helm_status_label, record):
    """The operation of a record Helm wrote, from its pending status or its description."""
    for operation, pending in _HELM_PENDING.items():
        if helm_status_label == pending:
            return operation
    description = str((record.get("info") or {}).get("description") or "")
    if description.startswith("Rollback"):
        return ROLLBACK
    return INSTALL if description.startswith(("Install", "Initial install", "Release")) else UPGRADE


def convert_legacy_records(kube, release, namespace, revisions):
    """Write each revision berth.converge 0.1 recorded as a Helm record of the same number, then delete the old
    Secret (the caller holds the release lock); returns the history as Helm records."""
    converted = []
    for revision in revisions:
        if not revision.legacy:
            converted.append(revision)
            continue
        payload = revision.payload
        berth = {"operation": payload["operation"], "commit": payload.get("commit"),
                 "images": payload.get("images") or [], "resources": payload.get("resources") or [],
                 "time": payload.get("time"), "updated": payload.get("updated"), "reason": payload.get("reason"),
                 "berth_version": payload.get("berth_version"), "werf": None, "object_metadata": None,
                 "converted_from": revision.secret_name}
        moment = _parse_time(payload["time"]) if payload.get("time") else _now()
        description = _legacy_description(payload.get("description"))
        if revision.status == SUPERSEDED:  # described as when it was deployed, as Helm keeps it
            description = _helm_description(berth["operation"], DEPLOYED, release, description)
        record = helm_record(release, namespace, revision.version, manifests=payload.get("manifests") or [],
                             status=revision.status, description=description,
                             berth=berth, reason=payload.get("reason"), now=moment)
        labels = _labels(release, revision.version, revision.status, berth["operation"])
        try:
            created = kube.request("POST", _secrets_path(namespace),
                                   body=_secret(release, namespace, revision.version, record, labels))
        except KubeApiError as exc:
            if exc.status != 409:  # 409: converted already by an interrupted run
                raise ConvergeError(f"cannot convert revision Secret {revision.secret_name} of release {release} "
                                    f"to Helm's format: {exc}")
            created = kube.get_or_none(_secrets_path(namespace, revision_name(release, revision.version)))
        try:
            kube.request("DELETE", _secrets_path(namespace, revision.secret_name))
        except KubeApiError as exc:
            if not exc.not_found:
                raise ConvergeError(f"cannot delete revision Secret {revision.secret_name} after converting it: "
                                    f"{exc}")
        converted.append(Revision.from_secret(created))
    return converted


def delete_revision_records(kube, release, namespace, revisions):
    """Delete the Secrets of the revisions (dismiss)."""
    for revision in revisions:
        try:
            kube.request("DELETE", _secrets_path(namespace, revision.secret_name))
        except KubeApiError as exc:
            if not exc.not_found:
                raise ConvergeError(f"cannot delete revision Secret {revision.secret_name}: {exc}")


def _in_recorded_order(resources, hooks, hook_positions):
    """The manifests in the order they were recorded in (hooks after the resources when it is unknown)."""
    total = len(resources) + len(hooks)
    if hook_positions is None or len(hook_positions) != len(hooks) or any(p >= total for p in hook_positions):
        return resources + hooks
    positions, remaining_hooks, remaining_resources = set(hook_positions), iter(hooks), iter(resources)
    return [next(remaining_hooks) if i in positions else next(remaining_resources) for i in range(total)]


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
    """RFC 3339 with microseconds in UTC: a Kubernetes MicroTime, and a time as Helm's JSON has them."""
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


def recorded_id(record, release_namespace, namespaced=None):
    """The ResourceId of a recorded object. An object without a namespace is cluster-scoped, unless
    `namespaced(apiVersion, kind)` says it takes the release's (records Helm wrote name none)."""
    group, _version = split_api_version(record["apiVersion"])
    namespace = record.get("namespace") or ""
    if not namespace and namespaced and namespaced(record["apiVersion"], record["kind"]):
        namespace = release_namespace
    return ResourceId(group, record["kind"], namespace, record["name"])


def prune_candidates(revisions, desired_ids, release_namespace, namespaced=None):
    """(apiVersion, ResourceId) of objects recorded since the last successful revision and no longer
    desired, plus warnings for those never pruned (CustomResourceDefinitions, the release namespace)."""
    last_good = last_successful(revisions)
    since = [r for r in revisions if last_good is None or r.version >= last_good.version]
    candidates, warnings, seen = [], [], set(desired_ids)
    for revision in since:
        for record in revision.resources:
            rid = recorded_id(record, release_namespace, namespaced)
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
    candidates, kept = prune_candidates(revisions, desired_ids, applier.namespace, applier.namespaced)
    warnings.extend(kept)
    deletes = []
    for (api_version, rid), live in run_parallel(lambda c: applier.live(*c), candidates, applier.concurrency):
        if isinstance(live, Exception):
            raise ConvergeError(f"cannot read {rid.label} to prune it: {live}")
        if live is None:
            continue
        owner = foreign_owner(live, applier.release, applier.namespace)
        lifecycle = live_lifecycle(live)
        if owner:
            warnings.append(f"{rid.label} is not pruned: it now belongs to release {owner[0]} in namespace "
                            f"{owner[1]}")
        elif lifecycle.skip_delete:
            warnings.append(f"{rid.label} is not pruned: resource policy "
                            f"{', '.join(lifecycle.resource_policies)} (helm.sh/resource-policy or "
                            "werf.io/resource-policy)")
        elif lifecycle.unowned:
            warnings.append(f"{rid.label} is not pruned: werf.io/ownership: anyone")
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
    force_adoption: bool = False
    record_live: bool = False  # each resource result gets `live`, the fingerprint of the object as read
    plan: dict = None  # a saved plan (plan.py): refuse before the first write when the release differs from it
    readiness_rules: ReadinessRules = None  # rules per group and kind for the waits (weight groups, hooks)


@dataclass
class ReleaseRequest:
    """What to apply. A revision is recorded when an object or hook changes, or when the latest revision
    recorded other manifests.

    Hooks (manifests annotated helm.sh/hook) are never applied as resources; those of `hook_phase` (see
    hooks.PHASES; INSTALL_OR_UPGRADE for an apply) run around the resources, none when it is None.
    """

    def object_metadata(self):
        return self.metadata or ObjectMetadata.werf(version=WERF_VERSION)

    manifests: list
    images: list = None
    commit: dict = None
    description: str = None
    hook_phase: str = None
    crds: list = field(default_factory=list)  # a chart's crds/: created when absent, never owned nor deleted
    chart: dict = None  # {name, version, appVersion} of the chart, recorded for `helm history`
    metadata: ObjectMetadata = None  # labels and annotations added to every object
    werf: dict = None  # {project, env, version}, recorded


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
            _remove_unused_namespace(kube, namespace, options.timeout)
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
    """Run the pre-delete hooks of the latest revision, apply its resources annotated werf.io/deploy-on: delete
    and wait until they are ready, delete the objects, run its post-delete hooks, then delete the revision
    records."""
    revisions = history(kube, release, namespace)
    applier = _applier(kube, release, namespace, options)
    resources, hooks, warnings = helm_hooks.split_hooks(revisions[-1].manifests if revisions else [])
    metadata = recorded_metadata(revisions[-1]) if revisions else None
    hook_plan = HookPlan.of(helm_hooks.prepare_hooks(hooks, release, namespace, applier.mapper, metadata),
                            helm_hooks.DELETE)
    # werf.io/deploy-on: delete: resources applied (and waited for) when the release is dismissed
    on_delete = prepare(deployed_on(resources, helm_hooks.DELETE, warnings, namespace, explicit=True), release,
                        namespace, applier.mapper, metadata, warnings=warnings)
    planned = [p for p in applier.plan(hook_plan.desired + on_delete, written="nothing was deleted")
               [len(hook_plan.desired):] if not p.skipped]
    deletes = plan_prune(applier, revisions, [d.rid for d in on_delete], warnings)
    if options.check_mode:
        return _result(planned + deletes, bool(deletes or revisions), None, warnings, options.diff,
                       [item.entry for item in hook_plan.items])
    runner = helm_hooks.HookRunner(applier, applier.waiter)
    try:
        runner.run(hook_plan.pre)
        planned = applier.apply(planned)
        awaited = [p.desired.obj for p in planned if p.action != DELETE]
        if awaited:
            applier.waiter.wait(awaited)
        applier.delete(deletes)
        runner.run(hook_plan.post)
    except ConvergeError as exc:
        raise ConvergeError(f"{exc}\nDismissing release {release} stopped there; its revision records are kept.",
                            **{"hooks": runner.entries, "progress": applier.waiter.progress, **exc.details})
    delete_revision_records(kube, release, namespace, revisions)
    return _result(planned + deletes, bool(deletes or revisions), None, warnings, options.diff, runner.entries,
                   applier.waiter.progress)


def _applier(kube, release, namespace, options):
    """An Applier for the options; outside check mode it waits for werf.io/weight groups and hooks."""
    waiter = None if options.check_mode else Waiter(kube, options.timeout, options.progress_file,
                                                    options.readiness_rules)
    return Applier(kube, ResourceMapper(kube), release, namespace, options.force_conflicts, options.concurrency,
                   waiter, options.force_adoption)


def recorded_chart(revision):
    """{name, version, appVersion} of the chart a revision records, or None."""
    if revision.legacy:
        return None
    metadata = (revision.record.get("chart") or {}).get("metadata") or {}
    return {key: metadata.get(key) for key in ("name", "version", "appVersion")} if metadata else None


def recorded_metadata(revision):
    """The ObjectMetadata a revision's objects were applied with (none for records Helm wrote)."""
    recorded = revision.payload.get("object_metadata") or {}
    return ObjectMetadata(recorded.get("labels") or {}, recorded.get("annotations") or {})


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
    planned, hook_entries, progress = plan.crds + plan.planned, ([item.entry for item in plan.hooks.items]
                                                                 if record else []), []
    live = [live_fingerprint(p.live) for p in planned + plan.deletes]
    if options.plan is not None and not options.check_mode:  # under the lock, after the fresh dry run
        fresh = [dict(p.result(), live=fingerprint) for p, fingerprint in zip(planned + plan.deletes, live)]
        refuse_on(release_differences(options.plan, fresh, hook_entries, revision), options.plan.get("path"))
    if record and not options.check_mode:
        planned, hook_entries, progress = _write(kube, applier, request, plan, revisions)
    result = _result(planned + plan.deletes, plan.changed or record, revision, plan.warnings, options.diff,
                     hook_entries, progress)
    if options.record_live:
        for entry, fingerprint in zip(result["resources"], live):
            entry["live"] = fingerprint
    return result


@dataclass
class ReleasePlan:
    """What a converge would do: the planned resources, prune deletes and hooks, and whether anything changes."""

    desired: list
    planned: list
    deletes: list
    hooks: HookPlan
    warnings: list
    changed: bool
    crds: list = field(default_factory=list)  # Planned creates of the absent CRDs of the chart's crds/


def plan_release(applier, request, revisions, namespace_exists, options):
    """Split off the hooks, validate the resources and the hooks to run with one server-side dry run, and
    plan the prune. Hooks are never pruned."""
    manifests, hooks, warnings = helm_hooks.split_hooks(request.manifests)
    phase = helm_hooks.resolve_phase(request.hook_phase, bool(revisions))
    manifests = deployed_on(manifests, phase or (UPGRADE if revisions else INSTALL), warnings, applier.namespace)
    metadata = request.object_metadata()
    release, namespace, mapper = applier.release, applier.namespace, applier.mapper
    crds = prepare(request.crds, release, namespace, mapper, owned=False)
    desired = prepare(manifests, release, namespace, mapper, metadata, crds=request.crds, warnings=warnings)
    hook_items = helm_hooks.prepare_hooks(hooks, release, namespace, mapper, metadata, warnings)
    hook_plan = HookPlan.of(hook_items, phase)
    applier.known = frozenset(recorded_ids(revisions, applier))
    absent_crds, present_crds = _absent_crds(applier, crds)
    validated = applier.plan(absent_crds + desired + hook_plan.desired,
                             creatable_namespaces=() if namespace_exists else (applier.namespace,))
    if options.check_mode:  # outside check mode the unvalidated objects are validated before they are written
        warnings += [f"{p.rid.label}: {note}" for p in validated for note in p.notes]
    crd_plan = validated[:len(absent_crds)] + present_crds
    planned = validated[len(absent_crds):len(absent_crds) + len(desired)]
    deploy_steps([p for p in planned if p.desired.order[0] == 2], warnings)  # a dependency cycle fails here
    if not options.check_mode:  # what werf's annotations changed in the plan
        warnings += [f"{p.rid.label}: {note}" for p in planned for note in p.notes if "werf.io/" in note]
    planned = [p for p in planned if not p.skipped]
    kept = [d.rid for d in desired] + [item.desired.rid for item in hook_items]
    deletes = plan_prune(applier, revisions, kept, warnings) if options.prune else []
    changed = (any(p.changed for p in planned + crd_plan) or bool(deletes)
               or _hooks_changed(hooks, revisions, phase))
    return ReleasePlan(desired, planned, deletes, hook_plan, warnings, changed, crd_plan)


def recorded_ids(revisions, applier):
    """The ResourceIds of the objects the release had: in its latest and its last successful revision."""
    chosen = {id(r): r for r in (revisions[-1:] + [last_successful(revisions)]) if r}.values()
    return {recorded_id(record, applier.namespace, applier.namespaced)
            for revision in chosen for record in revision.resources}


def _absent_crds(applier, crds):
    """(absent, present): the CRDs of a chart's crds/ that do not exist yet (to create, as Helm and werf do),
    and Planned unchanged entries for those that exist, whoever made them: they are never updated."""
    absent, present = [], []
    for item, live in run_parallel(lambda d: applier.live(d.api_version, d.rid), crds, applier.concurrency):
        if isinstance(live, Exception):
            raise ConvergeError(f"cannot read {item.rid.label}: {live}")
        if live is None:
            absent.append(item)
        else:
            present.append(Planned(item.rid, item.api_version, UNCHANGED, live, live, item))
    return absent, present


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
    resources = [dict(record_of(p.api_version, p.rid), action=p.action) for p in plan.planned]
    description = request.description or ("upgrade" if revisions else "install")
    revision = record_revision(kube, release, namespace, manifests=request.manifests, images=request.images,
                               commit=request.commit, resources=resources, description=description,
                               chart=request.chart, werf=request.werf,
                               object_metadata=request.object_metadata().as_dict())
    runner = helm_hooks.HookRunner(applier, applier.waiter)
    planned = plan.crds + plan.planned
    to_write = sum(p.changed for p in planned) + len(plan.deletes)
    try:
        applier.delete(plan.deletes)  # first, as werf does: before the pre hooks and the apply
        planned = applier.apply(planned, before_main=lambda: runner.run(plan.hooks.pre))
        main_objects = {id(d) for d in plan.desired}
        awaited = [p.desired.obj for p in planned if id(p.desired) in main_objects and p.action != DELETE]
        if plan.hooks.post and awaited:  # not those a delete policy removed, nor skip-create ones
            applier.waiter.wait(awaited)
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


def _remove_unused_namespace(kube, namespace, timeout, poll=0.5):
    """Undo our namespace creation when the run failed before any revision was recorded in it, and wait until
    it is gone: the API server validates namespaced objects only in a namespace that exists, and a rerun right
    after a fix must not meet the namespace still terminating."""
    listing = kube.request("GET", _secrets_path(namespace), {"labelSelector": f"owner={OWNER}", "limit": "1"})
    if listing.get("items"):
        return
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}"
    kube.request("DELETE", path)
    deadline = time.monotonic() + timeout
    while kube.get_or_none(path, deadline=deadline) is not None:
        if time.monotonic() >= deadline:
            raise ConvergeError(f"namespace {namespace} is still terminating after {timeout}s")
        time.sleep(poll)


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

    after = None if planned.action == DELETE else planned.view(planned.after)
    header = f"{planned.rid.label} ({planned.action})"
    return {"before_header": header, "after_header": header, "before": text(planned.view(planned.live)),
            "after": text(after)}
