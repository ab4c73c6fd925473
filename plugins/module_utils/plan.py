# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Saved plans (werf's plan --save-plan / converge --use-plan): what a converge would do, written by a check
run, and the checks that a later converge still does exactly that. See docs/plans.md for the format."""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.apply import comparable

PLAN_FORMAT = "berth.converge/plan"
PLAN_VERSION = 1
# A Secret's rendered manifest is digested with a salted, slow hash: the plan file is shared with reviewers,
# and a fast hash of a short secret value could be matched against guessed values.
SECRET_DIGEST_ITERATIONS = 200_000


class PlanMismatch(ConvergeError):
    """The converge no longer matches its saved plan; nothing was written."""


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def _is_secret(obj):
    return obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"


def resource_label(entry):
    """Kind namespace/name (Kind name when cluster-scoped), as the errors of the collection name objects."""
    namespace = entry.get("namespace")
    return f"{entry.get('kind')} {namespace}/{entry.get('name')}" if namespace else f"{entry.get('kind')} {entry.get('name')}"


def _key(entry):
    return (entry.get("kind"), entry.get("namespace") or None, entry.get("name"))


def live_fingerprint(obj):
    """What a plan keeps of a live object to tell later whether it changed: uid and resourceVersion as read,
    and, for objects other than Secrets, a digest of its content without status and server-maintained
    metadata (controllers update status, and so resourceVersion, all the time). None when it does not exist."""
    if obj is None:
        return None
    metadata = obj.get("metadata") or {}
    return {"uid": metadata.get("uid"), "resourceVersion": metadata.get("resourceVersion"),
            "content": None if _is_secret(obj) else hashlib.sha256(_canonical(comparable(obj))).hexdigest()}


def fingerprint_change(planned, current):
    """Why the live object no longer matches the plan's fingerprint, or None."""
    if planned is None and current is None:
        return None
    if planned is None:
        return "appeared since the plan"
    if current is None:
        return "vanished since the plan"
    if planned.get("uid") != current.get("uid"):
        return "was deleted and created again since the plan (uid changed)"
    if planned.get("content") is None or current.get("content") is None:  # Secrets: any write
        if planned.get("resourceVersion") != current.get("resourceVersion"):
            return (f"changed since the plan (resourceVersion {planned.get('resourceVersion')} -> "
                    f"{current.get('resourceVersion')})")
        return None
    if planned.get("content") != current.get("content"):
        return (f"changed since the plan (resourceVersion {planned.get('resourceVersion')} -> "
                f"{current.get('resourceVersion')})")
    return None


def manifest_digests(manifests, salt):
    """One entry per rendered manifest: apiVersion, kind, namespace, name and the digest of its content."""
    entries = []
    for obj in manifests:
        metadata = obj.get("metadata") or {}
        data = _canonical(obj)
        if _is_secret(obj):
            digest = "pbkdf2-sha256:" + hashlib.pbkdf2_hmac("sha256", data, bytes.fromhex(salt),
                                                            SECRET_DIGEST_ITERATIONS).hex()
        else:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
        entries.append({"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                        "namespace": metadata.get("namespace") or None, "name": metadata.get("name"),
                        "digest": digest})
    return entries


def manifests_section(manifests, salt=None):
    """The `manifests` section of a plan: the salt, the per-manifest digests, and one digest of them all."""
    salt = salt or os.urandom(16).hex()
    entries = manifest_digests(manifests, salt)
    return {"salt": salt, "digest": "sha256:" + hashlib.sha256(_canonical(entries)).hexdigest(),
            "objects": entries}


def _result(registered):
    return registered if isinstance(registered, dict) and not registered.get("skipped") else {}


def build_plan(*, release, namespace, commit, images, built, manifests, applied, created=None, salt=None):
    """The plan of a check-mode converge, from the role's registered results: `images` (image_digest's
    images), `built` (image_build's result), `manifests` (chart_render's manifests and crds), `applied`
    (release_apply's check-mode result in diff mode, with each resource's `live` fingerprint)."""
    applied = _result(applied)
    missing = [resource_label(r) for r in applied.get("resources") or [] if "live" not in r]
    if missing:
        raise ConvergeError("the release_apply result has no live fingerprints (record_live) for "
                            + ", ".join(missing))
    would_build = {i.get("name") for i in _result(built).get("images") or [] if i.get("changed")}
    revision, changed = applied.get("revision"), bool(applied.get("changed"))
    resource_keys = ("apiVersion", "kind", "namespace", "name", "action", "changed", "diff", "live")
    hook_keys = ("apiVersion", "kind", "namespace", "name", "event", "weight", "delete_policies")
    return {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "created": created,
        "release": release,
        "namespace": namespace,
        "commit": (commit or {}).get("hash"),
        "images": [{"name": i.get("name"), "ref": i.get("ref"), "build": i.get("name") in would_build}
                   for i in images or []],
        "manifests": manifests_section(manifests, salt),
        "revision": revision,
        "latest_revision": (revision - 1 if changed and revision else revision) or None,
        "changed": changed,
        "resources": [{key: r.get(key) for key in resource_keys} for r in applied.get("resources") or []],
        "hooks": [{key: h.get(key) for key in hook_keys} for h in applied.get("hooks") or []],
    }


def load_plan(text, path):
    """The plan in `text` (the contents of `path`), checked for its format and version."""
    try:
        plan = json.loads(text)
    except ValueError as exc:
        raise ConvergeError(f"{path}: not a plan: not JSON ({exc})")
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise ConvergeError(f"{path}: not a plan: field format is not {PLAN_FORMAT!r}")
    if plan.get("version") != PLAN_VERSION:
        raise ConvergeError(f"{path}: plan version {plan.get('version')!r} is not supported (only {PLAN_VERSION})")
    for field in ("release", "namespace", "commit", "images", "manifests", "resources", "hooks"):
        if field not in plan:
            raise ConvergeError(f"{path}: field {field} is missing")
    return plan


def input_differences(plan, *, release, namespace, commit, images, manifests):
    """What differs between the plan and this converge's commit, images and rendered manifests."""
    differences = []
    if (plan["release"], plan["namespace"]) != (release, namespace):
        differences.append(f"release: the plan is for release {plan['release']} in namespace {plan['namespace']}, "
                           f"this converge is {release} in {namespace}")
    hash_now = (commit or {}).get("hash")
    if plan["commit"] != hash_now:
        differences.append(f"commit: the plan is for {plan['commit']}, this converge is {hash_now}")
    planned_refs = {i["name"]: i["ref"] for i in plan["images"]}
    refs_now = {i.get("name"): i.get("ref") for i in images or []}
    for name in sorted(set(planned_refs) | set(refs_now)):
        if planned_refs.get(name) != refs_now.get(name):
            differences.append(f"image {name}: the plan has {planned_refs.get(name)}, this converge "
                               f"{refs_now.get(name)}")
    section = plan["manifests"]
    now = manifests_section(manifests, section["salt"])
    if now["digest"] != section["digest"]:
        planned_objects = {_key(e): e["digest"] for e in section["objects"]}
        objects_now = {_key(e): e["digest"] for e in now["objects"]}
        for key in sorted(set(planned_objects) | set(objects_now), key=lambda k: tuple(map(str, k))):
            label = resource_label(dict(zip(("kind", "namespace", "name"), key)))
            if key not in objects_now:
                differences.append(f"rendered manifests: {label} is no longer rendered")
            elif key not in planned_objects:
                differences.append(f"rendered manifests: {label} is rendered now, not in the plan")
            elif planned_objects[key] != objects_now[key]:
                differences.append(f"rendered manifests: {label} renders differently")
        if not any(d.startswith("rendered manifests") for d in differences):
            differences.append("rendered manifests: their order differs from the plan's")
    return differences


def live_differences(plan, read_live):
    """What changed in the cluster since the plan: `read_live(resource entry)` returns the live object's
    fingerprint now (live_fingerprint), for every object the plan acts on or left unchanged."""
    differences = []
    for entry in plan["resources"]:
        change = fingerprint_change(entry.get("live"), read_live(entry))
        if change:
            differences.append(f"{resource_label(entry)} {change}")
    return differences


def release_differences(plan, resources, hooks, revision):
    """What differs between the plan and a fresh plan of the release (release_apply's resources with `live`
    fingerprints, the hooks that would run, the revision it would record): checked under the release lock,
    right before the first write."""
    differences = []
    if plan.get("revision") != revision:
        differences.append(f"release: the plan records revision {plan.get('revision')}, the release would now "
                           f"record {revision} (another converge or rollback ran since the plan)")
    planned = {_key(r): r for r in plan["resources"]}
    now = {_key(r): r for r in resources}
    for key in sorted(set(planned) | set(now), key=lambda k: tuple(map(str, k))):
        before, after = planned.get(key), now.get(key)
        label = resource_label(before or after)
        if before is None:
            differences.append(f"{label}: would now be {after['action']}d, not in the plan")
        elif after is None:
            differences.append(f"{label}: planned {before['action']}, no longer part of the converge")
        else:
            change = fingerprint_change(before.get("live"), after.get("live"))
            if change:
                differences.append(f"{label} {change}")
            elif before["action"] != after["action"]:
                differences.append(f"{label}: planned {before['action']}, would now be {after['action']}")
    hook_ids = [(h.get("kind"), h.get("name"), h.get("event")) for h in plan["hooks"]]
    hooks_now = [(h.get("kind"), h.get("name"), h.get("event")) for h in hooks]
    if hook_ids != hooks_now:
        def listed(ids):
            return ", ".join(f"{kind}/{name} {event}" for kind, name, event in ids) or "none"
        differences.append(f"hooks: the plan runs {listed(hook_ids)}; this converge would run {listed(hooks_now)}")
    return differences


def refuse_on(differences, path, where="nothing was written"):
    """Raise PlanMismatch naming every difference, when there are any."""
    if differences:
        raise PlanMismatch(f"the converge no longer matches the plan{' ' + path if path else ''}; {where}:\n  - "
                           + "\n  - ".join(differences), differences=differences)
