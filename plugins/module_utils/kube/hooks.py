# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm hooks: which manifests are hooks, the order Helm runs them in, and running them.

A manifest annotated ``helm.sh/hook`` is a hook, never one of the release's resources: it is (re)created when
its event comes (pre-install, post-upgrade, ...), tracked until it completes (Jobs) or is ready (anything
else), deleted as its ``helm.sh/hook-delete-policy`` says, and never pruned.
"""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import quote

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import annotations as werf_annotations
from ansible_collections.berth.converge.plugins.module_utils.kube.apply import prepare, scrub_secret_values
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import KubeApiError

HOOK_ANNOTATION = "helm.sh/hook"
HOOK_WEIGHT_ANNOTATION = "helm.sh/hook-weight"
HOOK_DELETE_POLICY_ANNOTATION = "helm.sh/hook-delete-policy"
BEFORE_HOOK_CREATION, HOOK_SUCCEEDED, HOOK_FAILED = "before-hook-creation", "hook-succeeded", "hook-failed"
DELETE_POLICIES = (BEFORE_HOOK_CREATION, HOOK_SUCCEEDED, HOOK_FAILED)

INSTALL, UPGRADE, ROLLBACK, DELETE = "install", "upgrade", "rollback", "delete"
INSTALL_OR_UPGRADE = "install-or-upgrade"  # an apply: install for a release's first revision, else upgrade
PHASES = (INSTALL, UPGRADE, ROLLBACK, DELETE, INSTALL_OR_UPGRADE)
TEST = "test"
# Helm's events; test-success is the old name of test. A manifest with any other event is skipped, as Helm does.
EVENTS = frozenset(f"{when}-{phase}" for when in ("pre", "post") for phase in (INSTALL, UPGRADE, ROLLBACK, DELETE)) \
    | {TEST, "test-success"}

# Helm's install order of kinds, which orders hooks of equal weight and name; unknown kinds come last.
INSTALL_ORDER = (
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
    "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
    "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
    "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
)
LOG_LINES = 20
LOG_REQUEST_SECONDS = 10

SUCCEEDED, FAILED, WOULD_RUN = "succeeded", "failed", "would run"


# ---------------------------------------------------------------------------------------------- parsing

def _annotations(manifest):
    return ((manifest.get("metadata") or {}).get("annotations")) or {}


def _label(manifest):
    return f"{manifest.get('kind')}/{(manifest.get('metadata') or {}).get('name')}"


def _listed(value):
    return [part.strip().lower() for part in str(value).split(",") if part.strip()]


def is_hook(manifest):
    return isinstance(manifest, dict) and HOOK_ANNOTATION in _annotations(manifest)


@dataclasses.dataclass(frozen=True)
class Hook:
    """A hook manifest with its events, weight and delete policies (before-hook-creation when none is given,
    as Helm)."""

    manifest: dict
    events: tuple
    weight: int
    delete_policies: tuple

    @property
    def kind(self):
        return self.manifest["kind"]

    @property
    def name(self):
        return self.manifest["metadata"]["name"]

    def order(self):
        """Helm's order: weight, then name, then kind in install order (unknown kinds last, by kind)."""
        known = self.kind in INSTALL_ORDER
        rank = (INSTALL_ORDER.index(self.kind), "") if known else (len(INSTALL_ORDER), self.kind)
        return (self.weight, self.name, rank)


def parse_hook(manifest):
    """The Hook of a manifest annotated helm.sh/hook, or None when it names an event Helm does not know."""
    annotations = _annotations(manifest)
    events = _listed(annotations[HOOK_ANNOTATION])
    if not events or any(event not in EVENTS for event in events):
        return None
    raw_weight = str(annotations.get(HOOK_WEIGHT_ANNOTATION, "")).strip() or "0"
    try:
        weight = int(raw_weight)
    except ValueError:
        raise ConvergeError(f"{_label(manifest)}: annotation {HOOK_WEIGHT_ANNOTATION} must be an integer, "
                            f"got {raw_weight!r}", resource=_label(manifest))
    policies = (_werf_delete_policies(annotations)
                or _listed(annotations.get(HOOK_DELETE_POLICY_ANNOTATION, "")) or [BEFORE_HOOK_CREATION])
    unknown = [policy for policy in policies if policy not in DELETE_POLICIES]
    if unknown:
        raise ConvergeError(f"{_label(manifest)}: annotation {HOOK_DELETE_POLICY_ANNOTATION} has "
                            f"{', '.join(unknown)}; use {', '.join(DELETE_POLICIES)}", resource=_label(manifest))
    events = tuple(dict.fromkeys(TEST if event == "test-success" else event for event in events))
    return Hook(manifest, events, weight, tuple(dict.fromkeys(policies)))


def _werf_delete_policies(annotations):
    """werf.io/delete-policy, which wins over helm.sh/hook-delete-policy as in werf, in Helm's names (its
    values are validated with the other werf annotations)."""
    names = {"before-creation": BEFORE_HOOK_CREATION, "succeeded": HOOK_SUCCEEDED, "failed": HOOK_FAILED}
    return [names[policy] for policy in _listed(annotations.get(werf_annotations.DELETE_POLICY, "")) if policy in names]


def split_hooks(manifests):
    """``(resources, hooks, warnings)``: the manifests that are not hooks, the Hooks, and one warning per
    manifest skipped because its helm.sh/hook names an event Helm does not know."""
    resources, hooks, warnings = [], [], []
    for manifest in manifests:
        if not is_hook(manifest):
            resources.append(manifest)
            continue
        hook = parse_hook(manifest)
        if hook is None:
            warnings.append(f"{_label(manifest)} is skipped, as Helm skips it: {HOOK_ANNOTATION} "
                            f"{_annotations(manifest)[HOOK_ANNOTATION]!r} names no Helm hook event")
        else:
            hooks.append(hook)
    return resources, hooks, warnings


def resolve_phase(phase, has_revisions):
    """The phase whose hooks run: install or upgrade for INSTALL_OR_UPGRADE, else ``phase`` (None: none)."""
    if phase not in PHASES + (None,):
        raise ConvergeError(f"unknown hook phase {phase!r}; one of {', '.join(PHASES)}")
    if phase == INSTALL_OR_UPGRADE:
        return UPGRADE if has_revisions else INSTALL
    return phase


@dataclasses.dataclass
class HookItem:
    """A hook ready to apply (its Desired object) and its report entry."""

    hook: Hook
    desired: object
    event: str = None
    entry: dict = None


def prepare_hooks(hooks, release, namespace, mapper, metadata=None, warnings=None):
    """HookItems for the hooks: namespace settled, `metadata` (apply.ObjectMetadata) added but, as in Helm, no
    ownership metadata; recreated when their policies include before-hook-creation."""
    desired = prepare([hook.manifest for hook in hooks], release, namespace, mapper, metadata, hooks=True,
                      warnings=warnings)
    for hook, item in zip(hooks, desired):
        item.recreate = BEFORE_HOOK_CREATION in hook.delete_policies
    return [HookItem(hook, item) for hook, item in zip(hooks, desired)]


def for_event(items, event):
    """The items of the hooks of ``event``, in the order Helm runs them, each with its report entry."""
    chosen = sorted((item for item in items if event in item.hook.events), key=lambda item: item.hook.order())
    return [dataclasses.replace(item, event=event, entry=report_entry(item, event)) for item in chosen]


def report_entry(item, event):
    """One item of the ``hooks`` list of a module result, as before the hook runs."""
    rid = item.desired.rid
    return {"apiVersion": item.desired.api_version, "kind": rid.kind, "namespace": rid.namespace or None,
            "name": rid.name, "event": event, "weight": item.hook.weight,
            "delete_policies": list(item.hook.delete_policies), "result": WOULD_RUN, "reason": None,
            "elapsed": None, "deleted": False}


# ---------------------------------------------------------------------------------------------- running

class HookRunner:
    """Runs the hooks of an event one at a time, in order: deletes a recreated hook first, applies it, tracks
    it with the Waiter until complete or ready, then deletes it as its policies say. ``entries`` collects the
    report entries of the hooks run."""

    def __init__(self, applier, waiter):
        self.applier = applier
        self.kube = applier.kube
        self.waiter = waiter
        self.entries = []

    def run(self, items):
        """Run the items of one event (see for_event); raises ConvergeError naming the failed hook."""
        for item in items:
            self.entries.append(item.entry)
            self._run_one(item)
        for item in reversed(items):  # as Helm: hook-succeeded deletions once every hook of the event succeeded
            if HOOK_SUCCEEDED in item.hook.delete_policies:
                item.entry["deleted"] = self._delete(item)

    def _run_one(self, item):
        started = time.monotonic()
        desired = item.desired
        # A kind from a CustomResourceDefinition of the release is served only once that is applied.
        desired.rtype = desired.rtype or self.applier.mapper.lookup(desired.api_version, desired.rid.kind)
        if desired.recreate:
            self._delete(item)
        try:
            self.applier.apply_object(desired)
        except ConvergeError as exc:
            item.entry.update(result=FAILED, reason="NotApplied", elapsed=round(time.monotonic() - started, 2))
            message = scrub_secret_values(str(exc), desired.obj)
            raise ConvergeError(f"{item.event} hook {desired.rid.label} could not be applied: {message}",
                                failed_hook=dict(item.entry, message=message), hooks=self.entries,
                                progress=self.waiter.progress) from None
        try:
            result = self.waiter.wait([desired.obj])[0]
        except ConvergeError as exc:
            item.entry.update(result=FAILED, elapsed=round(time.monotonic() - started, 2))
            raise self._failure(item, exc) from None
        item.entry.update(result=FAILED if result["failed"] else SUCCEEDED, reason=result["reason"],
                          elapsed=round(time.monotonic() - started, 2))
        if result["failed"] and HOOK_FAILED in item.hook.delete_policies:  # failed, but its fail mode let it go
            item.entry["deleted"] = self._delete(item)

    def _failure(self, item, exc):
        """The error of a failed hook: the tracker's reason, the last lines of its pod's log, its events."""
        failed = exc.details.get("failed_resource") or {}
        item.entry["reason"] = failed.get("reason") or "Failed"
        pod, container = failed.get("pod"), failed.get("container")
        if not pod:
            pod, container = self._pod_of(item), None
        logs, log_lines = self._log_section(item.desired.rid.namespace, pod, container)
        if HOOK_FAILED in item.hook.delete_policies:  # after reading the logs: its pods go with it
            item.entry["deleted"] = self._delete(item)
        details = {**item.entry, "message": failed.get("message") or str(exc).splitlines()[0], "pod": pod,
                   "container": container, "logs": logs, "events": failed.get("events") or {}}
        return ConvergeError(f"{item.event} hook {exc}\n" + "\n".join(log_lines), failed_hook=details,
                             hooks=self.entries, progress=self.waiter.progress)

    def _log_section(self, namespace, pod, container):
        if not pod:
            return [], ["No pod of the hook to show logs of."]
        where = f"pod {pod}" + (f" container {container}" if container else "")
        try:
            text = self._read_log(namespace, pod, container)
        except ConvergeError as exc:
            return [], [f"Logs of {where}: no logs available ({str(exc).splitlines()[0]})"]
        logs = text.splitlines()[-LOG_LINES:]
        if not logs:
            return [], [f"Logs of {where}: no logs available (the log is empty)"]
        return logs, [f"Last {len(logs)} log lines of {where}:"] + [f"  {line}" for line in logs]

    def _read_log(self, namespace, pod, container):
        """The tail of a pod's log; KubeApiError (a ConvergeError) when the API server (or the node behind it)
        cannot give it. One attempt: the log only adds to an error already found, and a node without a kubelet
        answers 500, which would otherwise be retried."""
        query = {"tailLines": str(LOG_LINES)}
        if container:
            query["container"] = container
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/log"
        return self.kube.read_text(path, query, timeout=LOG_REQUEST_SECONDS, deadline=time.monotonic())

    def _pod_of(self, item):
        """The newest pod of a hook Job (or the hook Pod itself), or None."""
        rid = item.desired.rid
        if rid.kind == "Pod":
            return rid.name
        if rid.kind != "Job":
            return None
        listing = self.kube.request("GET", f"/api/v1/namespaces/{rid.namespace}/pods",
                                    {"labelSelector": f"job-name={rid.name}"})
        pods = sorted(listing.get("items") or [], key=lambda pod: pod["metadata"].get("creationTimestamp") or "")
        return pods[-1]["metadata"]["name"] if pods else None

    def _delete(self, item):
        """Delete the hook (werf.io/delete-propagation, Background by default) and wait until it is gone;
        CRDs are never deleted, as in Helm. True when it existed."""
        desired = item.desired
        if desired.rid.kind == "CustomResourceDefinition":
            return False
        try:
            return self.applier.delete_object(desired.rtype, desired.rid, desired.lifecycle.delete_propagation,
                                              wait=True)
        except KubeApiError as exc:
            raise ConvergeError(f"cannot delete {item.event} hook {desired.rid.label}: {exc}")
