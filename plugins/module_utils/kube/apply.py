# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server-side apply of a set of objects: validation by dry run, per-object actions, diffs, ordered writes.

The action of an object comes from comparing its dry-run apply result with the live object, so an object
whose apply would change nothing is never written (its resourceVersion stays).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import groupby

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import annotations as werf_annotations
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import (
    KubeApiError,
    crd_scopes,
    split_api_version,
)

FIELD_MANAGER = "berth-converge"
# Owns spec.replicas set from werf.io/replicas-on-creation, which our own applies never set afterwards.
REPLICAS_FIELD_MANAGER = "berth-converge-replicas-on-creation"
DELETE_POLL_SECONDS = 0.2
DEFAULT_CONCURRENCY = 8

# Helm's ownership metadata on every object of a release (hooks aside, as Helm does), which werf writes and
# checks the same way: tools of either family see which release owns an object and none adopts another's.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "Helm"
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"
HELM_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"
# werf's annotations on every object it deploys, hooks included.
WERF_VERSION_ANNOTATION = werf_annotations.VERSION
WERF_PROJECT_ANNOTATION = "project.werf.io/name"
WERF_ENV_ANNOTATION = "project.werf.io/env"
WEIGHT_ANNOTATION = werf_annotations.WEIGHT
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"

# Field managers whose fields a converge takes over before applying, as werf does: by-hand `kubectl edit`,
# earlier deploys of the chart by werf 2 or Helm ("helm"), older werf ("werf..."), and our own non-apply writes.
# Fields of theirs the chart no longer sets are then removed by the apply; others keep what the chart does not set.
TAKEN_OVER_MANAGERS = ("kubectl-edit", "helm")
TAKEN_OVER_PREFIXES = ("werf",)

CREATE, UPDATE, UNCHANGED, DELETE = "create", "update", "unchanged", "delete"
# Fields the server changes on its own; they never mean that our apply would change the object.
VOLATILE_METADATA = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp", "selfLink")

# Secret values are masked with a keyed hash: equal values get equal masks within one run (so a change
# stays visible in a diff) while the mask cannot be matched against guessed values.
_MASK_KEY = os.urandom(32)


@dataclass(frozen=True, order=True)
class ResourceId:
    """What identifies an object across revisions: API group (not version), kind, namespace, name."""

    group: str
    kind: str
    namespace: str  # "" for cluster-scoped objects
    name: str

    @classmethod
    def of(cls, obj):
        group, _version = split_api_version(obj["apiVersion"])
        return cls(group, obj["kind"], obj["metadata"].get("namespace") or "", obj["metadata"]["name"])

    @property
    def label(self):
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class ObjectMetadata:
    """Labels and annotations added to every object of a release, hooks included: werf's --add-label and
    --add-annotation, and werf's own annotations. They win over the chart's; Helm's ownership metadata wins
    over them."""

    labels: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)

    @classmethod
    def werf(cls, project=None, env=None, version=None, labels=None, annotations=None):
        """werf.io/version, project.werf.io/name and (with an env) project.werf.io/env, then the extra ones."""
        werf = {WERF_VERSION_ANNOTATION: version, WERF_PROJECT_ANNOTATION: project, WERF_ENV_ANNOTATION: env}
        return cls(_string_map(labels, "labels"),
                   {**{k: v for k, v in werf.items() if v}, **_string_map(annotations, "annotations")})

    def as_dict(self):
        return {"labels": dict(self.labels), "annotations": dict(self.annotations)}


def _string_map(values, what):
    """A label or annotation map with string values (as Kubernetes requires); numbers and booleans are
    written as YAML would show them."""
    out = {}
    for key, value in (values or {}).items():
        if isinstance(value, (dict, list)) or value is None:
            raise ConvergeError(f"{what}: the value of {key} must be a string, not {type(value).__name__}")
        out[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


@dataclass
class Desired:
    """One manifest, ready to apply: namespace settled and metadata added. A `recreate`d object (a hook with
    the before-hook-creation policy) is deleted and created afresh instead of being updated. A `hook` gets no
    ownership metadata and is never checked for it, as in Helm."""

    obj: dict
    rid: ResourceId
    order: tuple
    rtype: object = None  # ResourceType; None while the server does not serve the kind
    recreate: bool = False
    hook: bool = False
    lifecycle: werf_annotations.Lifecycle = field(default_factory=werf_annotations.Lifecycle)

    @property
    def api_version(self):
        return self.obj["apiVersion"]


@dataclass
class Planned:
    """The action for one object, with the live object and the result the apply gives (or gave)."""

    rid: ResourceId
    api_version: str
    action: str
    live: dict = None
    after: dict = None
    desired: Desired = None
    validated: bool = True
    notes: list = field(default_factory=list)
    # werf.io/resource-policy: skip-create left the absent object absent: no result line, nothing to wait for
    skipped: bool = False
    # managedFields written before the apply, so drift the chart owns is reset (see take_over_fields)
    managed_fields: list = None

    @property
    def changed(self):
        return self.action != UNCHANGED

    @property
    def sensitive_paths(self):
        """werf.io/sensitive-paths of the chart's object, or of the live one for a delete."""
        if self.desired is not None:
            return self.desired.lifecycle.sensitive_paths
        return live_lifecycle(self.live).sensitive_paths

    def view(self, obj):
        """obj as a diff shows it: volatile fields dropped, Secret values and sensitive paths masked."""
        return diff_view(obj, self.sensitive_paths)

    def result(self, with_diff=False):
        out = {"apiVersion": self.api_version, "kind": self.rid.kind, "namespace": self.rid.namespace or None,
               "name": self.rid.name, "action": self.action, "changed": self.changed}
        if with_diff:
            out["diff"] = {"before": self.view(self.live), "after": None if self.action == DELETE
                           else self.view(self.after)}
        return out


def live_lifecycle(live):
    """The Lifecycle the annotations of a live object ask for; a bad value there (the chart that set it is
    gone) counts as no annotation."""
    try:
        return werf_annotations.parse(live or {})
    except ConvergeError:
        return werf_annotations.Lifecycle()


def order_key(obj):
    """(phase, weight): CRDs first, then Namespaces, then ascending werf.io/weight (default 0)."""
    if obj["kind"] == "CustomResourceDefinition":
        return (0, 0)
    if obj["kind"] == "Namespace" and obj["apiVersion"] == "v1":
        return (1, 0)
    raw = ((obj["metadata"].get("annotations") or {}).get(WEIGHT_ANNOTATION)) or "0"
    try:
        return (2, int(raw))
    except ValueError:
        raise ConvergeError(f"{ResourceId.of(obj).label}: annotation {WEIGHT_ANNOTATION} must be an integer, "
                            f"got {raw!r}")


def apply_groups(items):
    """Items (having .order) split into the groups applied one after another, keeping order within a group."""
    ordered = sorted(items, key=lambda item: item.order)
    return [list(group) for _key, group in groupby(ordered, key=lambda item: item.order)]


@dataclass
class Step:
    """Objects written together (see deploy_steps): a werf.io/weight group, or the objects whose
    werf.io/deploy-dependency-<id> are written by then; `ready` are the dependencies to wait for first."""

    planned: list
    weight_group: bool = True
    ready: list = field(default_factory=list)


def _dependencies(planned, candidates, attribute):
    """{id(p): [(dependency, Planned matched)]} for the Planned whose live or desired object declares them."""
    out = {}
    for p in planned:
        lifecycle = p.desired.lifecycle if p.desired is not None else live_lifecycle(p.live)
        for dep in getattr(lifecycle, attribute):
            matched = [c for c in candidates if c is not p
                       and dep.matches(c.api_version, c.rid.kind, c.rid.namespace, c.rid.name)]
            out.setdefault(id(p), []).extend((dep, c) for c in matched)
            if not matched:
                out.setdefault(id(p), [])
                out.setdefault("unmatched", []).append((p, dep))
    return out


def _levels(planned, deps, base):
    """{id(p): position}: base(p) for objects without dependencies, else right after the last of its
    dependencies; a cycle is an error naming its objects."""
    position, visiting = {}, []

    def visit(p):
        if id(p) in position:
            return position[id(p)]
        if any(v is p for v in visiting):
            cycle = visiting[next(i for i, v in enumerate(visiting) if v is p):] + [p]
            raise ConvergeError("werf.io dependencies form a cycle: " + " -> ".join(c.rid.label for c in cycle))
        visiting.append(p)
        matched = deps.get(id(p)) or []
        if matched:
            group, level = max(visit(c) for _dep, c in matched)
            position[id(p)] = (group, level + 1)
        else:
            position[id(p)] = (base(p), 0)
        visiting.pop()
        return position[id(p)]

    for p in planned:
        visit(p)
    return position


def deploy_steps(planned, warnings=None):
    """The write order of the main objects: werf.io/weight groups ascending; an object with
    werf.io/deploy-dependency-<id> goes in a step right after the step that writes the last object it depends
    on, whatever its weight (as in werf, the dependency wins over the weight). A dependency that matches no
    object of the release is a warning (it is ignored); a cycle is an error."""
    deps = _dependencies(planned, planned, "deploy_dependencies")
    for p, dep in deps.pop("unmatched", []):
        if warnings is not None:
            warnings.append(f"{p.rid.label}: annotation werf.io/deploy-dependency-{dep.id} ({dep.describe()}) "
                            "matches no resource of the release and is ignored")
    independent = [p for p in planned if not deps.get(id(p))]
    groups = [list(g) for _k, g in groupby(sorted(independent, key=lambda p: p.desired.order),
                                           key=lambda p: p.desired.order)]
    group_of = {id(p): index for index, group in enumerate(groups) for p in group}
    position = _levels(planned, deps, lambda p: group_of[id(p)])
    steps = {}
    for p in planned:
        key = position[id(p)]
        step = steps.setdefault(key, Step([], weight_group=key[1] == 0))
        step.planned.append(p)
        for dep, target in deps.get(id(p)) or []:
            if dep.state == "ready" and all(target is not r for r in step.ready):
                step.ready.append(target)
    return [steps[key] for key in sorted(steps)]


def delete_steps(planned):
    """[(objects deleted together, objects that must be gone first)]: an object with
    werf.io/delete-dependency-<id> (on its live object) is deleted once the objects it names are gone."""
    deps = _dependencies(planned, planned, "delete_dependencies")
    deps.pop("unmatched", None)
    position = _levels(planned, deps, lambda p: 0)
    steps = {}
    for p in planned:
        members, awaited = steps.setdefault(position[id(p)], ([], []))
        members.append(p)
        awaited.extend(target for _dep, target in deps.get(id(p)) or [] if all(target is not a for a in awaited))
    return [steps[key] for key in sorted(steps)]


def deployed_on(manifests, stage, warnings, namespace=None, explicit=False):
    """The manifests whose werf.io/deploy-on includes `stage` (install, upgrade, rollback, delete), and, unless
    `explicit`, those without the annotation; each one left out is a warning (unless `explicit`). Bad values
    are kept, for prepare() to report with the object's namespace."""
    kept = []
    for manifest in manifests:
        try:
            stages = werf_annotations.parse(manifest).deploy_on if isinstance(manifest, dict) else None
        except ConvergeError:
            stages = None
        if stage in (stages or ()) or stages is None and not explicit:
            kept.append(manifest)
        elif not explicit:
            warnings.append(f"{werf_annotations.label(manifest, namespace)} is not deployed on {stage} "
                            f"({werf_annotations.DEPLOY_ON}: {', '.join(stages)})")
    return kept


def prepare(manifests, release, namespace, mapper, metadata=None, hooks=False, owned=True, crds=(), warnings=None):
    """Desired objects for the manifests: namespace defaulted (namespaced kinds) or dropped (cluster-scoped),
    `metadata` (ObjectMetadata) and, when `owned` and not `hooks` (nor werf.io/ownership: anyone), Helm's
    ownership metadata added; the input is not modified. `crds` (CRDs applied apart, such as a chart's crds/)
    tell the scope of their kinds. werf's deploy annotations are validated (a bad value raises ConvergeError
    naming the object) and their warnings appended to `warnings`."""
    objects = [_checked_copy(manifest, index) for index, manifest in enumerate(manifests)]
    scopes = crd_scopes(list(crds) + objects)
    desired, seen = [], {}
    for index, obj in enumerate(objects):
        rtype = mapper.find(obj["apiVersion"], obj["kind"])
        group, _version = split_api_version(obj["apiVersion"])
        namespaced = rtype.namespaced if rtype else scopes.get((group, obj["kind"]), True)
        if namespaced:
            obj["metadata"]["namespace"] = obj["metadata"].get("namespace") or namespace
        else:
            obj["metadata"].pop("namespace", None)
        lifecycle = werf_annotations.parse(obj)
        if warnings is not None:
            warnings.extend(lifecycle.warnings)
        _add_metadata(obj, release, namespace, metadata, owned and not hooks and not lifecycle.unowned)
        item = Desired(obj, ResourceId.of(obj), order_key(obj), rtype, hook=hooks, lifecycle=lifecycle)
        item.recreate = not hooks and _recreates(lifecycle)
        if item.rid in seen:
            raise ConvergeError(f"{item.rid.label} appears twice in the manifests (items {seen[item.rid]} "
                                f"and {index})")
        seen[item.rid] = index
        desired.append(item)
    return desired


def _recreates(lifecycle):
    return (werf_annotations.BEFORE_CREATION in lifecycle.delete_policies
            and werf_annotations.SKIP_RECREATE not in lifecycle.resource_policies)


def _checked_copy(manifest, index):
    if not isinstance(manifest, dict):
        raise ConvergeError(f"manifests item {index} is not a mapping")
    metadata = manifest.get("metadata")
    missing = [key for key in ("apiVersion", "kind") if not isinstance(manifest.get(key), str)]
    if not isinstance(metadata, dict) or not metadata.get("name"):
        missing.append("metadata.name")
    if missing:
        raise ConvergeError(f"manifests item {index} ({manifest.get('kind', 'unknown kind')}) lacks "
                            + ", ".join(missing))
    return copy.deepcopy(manifest)


def _add_metadata(obj, release, namespace, metadata, owned):
    metadata = metadata or ObjectMetadata()
    labels = {**(obj["metadata"].get("labels") or {}), **metadata.labels}
    annotations = {**(obj["metadata"].get("annotations") or {}), **metadata.annotations}
    if owned:
        labels[MANAGED_BY_LABEL] = MANAGED_BY
        annotations.update({HELM_RELEASE_ANNOTATION: release, HELM_NAMESPACE_ANNOTATION: namespace})
    for key, values in (("labels", labels), ("annotations", annotations)):
        if values:
            obj["metadata"][key] = values


def owner_of(obj):
    """(release, namespace) that Helm's annotations on a live object name, or None when unowned."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    release = annotations.get(HELM_RELEASE_ANNOTATION)
    if not release:
        return None
    return release, annotations.get(HELM_NAMESPACE_ANNOTATION)


def import_refusal(live, release, namespace):
    """Why an existing object that the release did not have before cannot become one of its objects, as Helm
    and werf refuse it (its ownership metadata must name this release), or None when it can."""
    metadata = live.get("metadata") or {}
    problems = [f"{what} validation error: " + _required_value(metadata.get(where) or {}, key, value)
                for what, where, key, value in (("label", "labels", MANAGED_BY_LABEL, MANAGED_BY),
                                                ("annotation", "annotations", HELM_RELEASE_ANNOTATION, release),
                                                ("annotation", "annotations", HELM_NAMESPACE_ANNOTATION, namespace))
                if (metadata.get(where) or {}).get(key) != value]
    if not problems:
        return None
    return ("exists and cannot be imported into the current release: invalid ownership metadata; "
            + "; ".join(problems))


def _required_value(values, key, value):
    if key not in values:
        return f"missing key {key!r}: must be set to {value!r}"
    return f"key {key!r} must equal {value!r}: current value is {values[key]!r}"


def foreign_owner(live, release, namespace):
    """The owner of a live object when it is another release, else None."""
    owner = owner_of(live) if live else None
    return owner if owner and owner != (release, namespace) else None


def comparable(obj):
    """The object without what the server maintains by itself (status, versions, managed fields)."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    metadata = out.get("metadata") or {}
    for key in VOLATILE_METADATA:
        metadata.pop(key, None)
    return out


def merge_fields(base, extra):
    """The union of two managedFields field sets (FieldsV1 trees)."""
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = merge_fields(merged[key], value) if isinstance(merged.get(key), dict) else value
    return merged


def subtract_fields(theirs, ours):
    """The fields of ``theirs`` that ``ours`` does not own; a leaf of ours owns everything below it."""
    remaining = {}
    for key, value in theirs.items():
        if key not in ours:
            remaining[key] = value
        elif ours[key] and value:
            rest = subtract_fields(value, ours[key])
            if rest:
                remaining[key] = rest
    return remaining


def _taken_over(entry):
    manager = entry.get("manager") or ""
    if entry.get("subresource"):
        return False
    if manager == FIELD_MANAGER:
        return entry.get("operation") != "Apply"
    return manager in TAKEN_OVER_MANAGERS or manager.startswith(TAKEN_OVER_PREFIXES)


def _our_apply_entry(entries):
    return next((e for e in entries if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply"
                 and not e.get("subresource")), None)


def take_over_fields(live, now):
    """``(managedFields, taken)``: the live object's managed fields rewritten as werf rewrites them before it
    applies, or ``(None, {})`` when they need no change. The fields of the TAKEN_OVER managers join ours
    (``taken``), and no other manager of the main resource keeps a field we own, so the forced apply resets
    every drifted field the chart sets. Managers of subresources (status, scale) are left as they are."""
    entries = (live.get("metadata") or {}).get("managedFields") or []
    ours = _our_apply_entry(entries)
    taken = {}
    for entry in entries:
        if entry is not ours and _taken_over(entry):
            taken = merge_fields(taken, entry.get("fieldsV1") or {})
    owned = merge_fields((ours or {}).get("fieldsV1") or {}, taken)
    changed = bool(taken)
    rewritten = []
    for entry in entries:
        if entry is ours or _taken_over(entry):
            continue
        fields = entry.get("fieldsV1") or {}
        remaining = fields if entry.get("subresource") else subtract_fields(fields, owned)
        changed = changed or remaining != fields
        if remaining:
            rewritten.append({**entry, "fieldsV1": remaining})
    if not changed:
        return None, {}
    rewritten.append({**(ours or {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsType": "FieldsV1",
                                  "apiVersion": live.get("apiVersion")}), "time": now, "fieldsV1": owned})
    return rewritten, taken


def decide_action(live, after):
    """create when nothing is live, unchanged when applying leaves the object as it is, else update."""
    if live is None:
        return CREATE
    return UNCHANGED if comparable(live) == comparable(after) else UPDATE


def mask_value(value):
    digest = hmac.new(_MASK_KEY, str(value).encode(), hashlib.sha256).hexdigest()[:12]
    return f"<hidden:{digest}>"


def mask_secrets(obj):
    """A copy of obj whose Secret values (data, stringData, kubectl's last-applied copy) are masked."""
    if not obj or obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
        return obj
    out = copy.deepcopy(obj)
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = {name: mask_value(value) for name, value in out[key].items()}
    metadata = out.get("metadata")
    annotations = (metadata.get("annotations") if isinstance(metadata, dict) else None) or {}
    if isinstance(annotations, dict) and LAST_APPLIED_ANNOTATION in annotations:
        annotations[LAST_APPLIED_ANNOTATION] = mask_value(annotations[LAST_APPLIED_ANNOTATION])
    return out


def scrub_secret_values(message, obj):
    """The message with the values of a Secret object masked (API errors may quote the offending value)."""
    if not obj or obj.get("kind") != "Secret":
        return message
    values = [str(v) for key in ("data", "stringData") for v in (obj.get(key) or {}).values()]
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 3:  # shorter strings are no secret but occur everywhere in a message
            message = message.replace(value, mask_value(value))
    return message


def diff_view(obj, sensitive_paths=()):
    """obj as diffs show it; the values werf.io/sensitive-paths select are masked like Secret values."""
    if obj is None:
        return None
    view = mask_secrets(comparable(obj))
    if sensitive_paths:
        view = werf_annotations.redact(copy.deepcopy(view), sensitive_paths, mask_value)
    return view


def run_parallel(function, items, concurrency):
    """[(item, result or the exception raised)] in the order of items."""
    def call(item):
        try:
            return item, function(item)
        except Exception as exc:  # reported per item by the caller
            return item, exc

    if len(items) <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items)))) as pool:
        return list(pool.map(call, items))


def rejection_error(headline, failures):
    """One error naming every failed object with the API server's message."""
    lines = [f"  - {rid.label}: {message}" for rid, message in failures]
    return ConvergeError(headline + ":\n" + "\n".join(lines),
                         rejected=[{"kind": rid.kind, "namespace": rid.namespace or None, "name": rid.name,
                                    "message": message} for rid, message in failures])


class Applier:
    """Plans and applies the Desired objects of one release with server-side apply.

    With a `waiter` (track.Waiter), each werf.io/weight group is waited for until ready before the next one is
    written, as werf deploys.
    """

    def __init__(self, kube, mapper, release, namespace, force_conflicts=True, concurrency=DEFAULT_CONCURRENCY,
                 waiter=None, force_adoption=False):
        self.kube = kube
        self.mapper = mapper
        self.release = release
        self.namespace = namespace
        self.force_conflicts = force_conflicts
        self.concurrency = concurrency
        self.waiter = waiter
        self.force_adoption = force_adoption
        # Objects the release already had: they are updated whatever their metadata, as Helm does.
        self.known = frozenset()
        self.written = []  # ResourceIds written (applied or deleted) so far, to say how far a failed run got

    def namespaced(self, api_version, kind):
        """Whether the kind takes a namespace; True when the server does not serve it (any more)."""
        rtype = self.mapper.find(api_version, kind)
        return rtype.namespaced if rtype else True

    def plan(self, desired, creatable_namespaces=(), written="nothing was applied"):
        """Planned actions for every object, validated by a server-side dry run.

        Objects whose kind (a CRD of the set) or namespace (created by the set, or one of creatable_namespaces)
        does not exist yet cannot be validated yet: they are planned as unvalidated creates.
        Raises ConvergeError naming every rejected object; `written` says what was written so far.
        """
        waiting_kinds = set(crd_scopes([item.obj for item in desired]))
        creatable = set(creatable_namespaces) | {item.rid.name for item in desired if item.order[0] == 1}
        missing = self._missing_namespaces(desired)
        planned, to_check, failures = {}, [], []
        for item in desired:
            if item.rtype is None and (item.rid.group, item.rid.kind) not in waiting_kinds:
                failures.append((item.rid, f"the API server does not serve kind {item.rid.kind} "
                                           f"in apiVersion {item.api_version}"))
            elif item.rid.namespace in missing and item.rid.namespace not in creatable:
                failures.append((item.rid, f"namespace {item.rid.namespace} does not exist"))
            elif item.rtype is None:
                planned[id(item)] = _unvalidated(item, "its CustomResourceDefinition")
            elif item.rid.namespace in missing:
                planned[id(item)] = _unvalidated(item, f"namespace {item.rid.namespace}")
            else:
                to_check.append(item)
        for item, outcome in run_parallel(self._plan_one, to_check, self.concurrency):
            if isinstance(outcome, Exception):
                failures.append((item.rid, scrub_secret_values(_message(outcome), item.obj)))
            else:
                planned[id(item)] = outcome
        if failures:
            raise rejection_error(f"the API server rejected {len(failures)} of {len(desired)} resources of "
                                  f"release {self.release}; {written}", sorted(failures))
        return [planned[id(item)] for item in desired]

    def apply(self, planned, before_main=None):
        """Write every create and update: CRDs first, then `before_main()` (the pre hooks), Namespaces, and the
        other objects group after group of werf.io/weight, each object after its werf.io/deploy-dependency and
        external dependencies. The objects that needed a CRD or Namespace of the set are validated once those
        exist. Objects with werf.io/delete-policy succeeded or failed are waited for and deleted as it says.
        Returns the planned list with final results."""
        self._write([p for p in planned if p.desired.order[0] == 0])
        if before_main:
            before_main()
        self._write([p for p in planned if p.desired.order[0] == 1])
        deferred = [p.desired for p in planned if not p.validated]
        if deferred:
            for item in deferred:
                item.rtype = self.mapper.find(item.api_version, item.rid.kind)
            written = "only its CustomResourceDefinitions and Namespaces were applied"
            revalidated = {id(p.desired): p for p in self.plan(deferred, written=written)}
            planned = [revalidated.get(id(p.desired), p) for p in planned]
        self._write_steps(deploy_steps([p for p in planned if p.desired.order[0] == 2]))
        self._delete_finished([p for p in planned if not p.skipped])
        return planned

    def apply_object(self, item):
        """Server-side apply one Desired object now; returns the object as applied."""
        return self._apply_request(item, dry_run=False)

    def delete(self, planned_deletes):
        """Delete the objects (werf.io/delete-propagation, default Background), Namespaces last; an object
        with werf.io/delete-dependency-<id> once the objects it names are gone."""
        ordered = sorted(planned_deletes, key=lambda p: p.rid.kind == "Namespace")
        for _is_namespace, group in groupby(ordered, key=lambda p: p.rid.kind == "Namespace"):
            for step, awaited in delete_steps(list(group)):
                for target in awaited:
                    self.wait_gone(target.desired.rtype if target.desired else self.mapper.lookup(
                        target.api_version, target.rid.kind), target.rid)
                self._run_group(step, self._delete_one, "deleting")

    def delete_object(self, rtype, rid, propagation=None, wait=False):
        """Delete one object (werf.io/delete-propagation; Background by default); with `wait`, until it is
        gone. True when it existed."""
        try:
            self.kube.request("DELETE", rtype.path(rid.namespace, rid.name),
                              body={"kind": "DeleteOptions", "apiVersion": "v1",
                                    "propagationPolicy": propagation or "Background"})
        except KubeApiError as exc:
            if exc.not_found:
                return False
            raise
        if wait:
            self.wait_gone(rtype, rid)
        return True

    def wait_gone(self, rtype, rid):
        timeout = self.waiter.timeout if self.waiter else 300
        deadline = time.monotonic() + timeout
        while self.kube.get_or_none(rtype.path(rid.namespace, rid.name)) is not None:
            if time.monotonic() > deadline:
                raise ConvergeError(f"{rid.label} was not deleted within {timeout} s")
            time.sleep(DELETE_POLL_SECONDS)

    def live(self, api_version, rid):
        """The live object, or None."""
        rtype = self.mapper.find(api_version, rid.kind)
        return self.kube.get_or_none(rtype.path(rid.namespace, rid.name)) if rtype else None

    def _write(self, planned):
        changes = [p for p in planned if p.action in (CREATE, UPDATE)]
        for group in apply_groups([p.desired for p in changes]):
            members = {id(item) for item in group}
            self._run_group([p for p in changes if id(p.desired) in members], self._write_one, "applying")

    def _write_steps(self, steps):
        """Write the steps in order (see deploy_steps). With a waiter, before a step with changes: the weight
        groups written before a weight group are waited for (all of them, changed or not), and a dependency
        step waits for its dependencies of state ready and its external dependencies."""
        pending = []
        for step in steps:
            changes = [p for p in step.planned if p.action in (CREATE, UPDATE)]
            if self.waiter and changes:
                awaited = pending if step.weight_group else step.ready
                awaited = [p.desired.obj for p in awaited if not p.skipped] + self._external_targets(step)
                if awaited:
                    self.waiter.wait(awaited)
                if step.weight_group:
                    pending = []
            self._run_group(changes, self._write_one, "applying")
            pending += step.planned

    def _external_targets(self, step):
        """Objects to wait for (until present and ready) for the external dependencies of a step's changes."""
        targets = {}
        for planned in step.planned:
            if planned.action not in (CREATE, UPDATE):
                continue
            for dep in planned.desired.lifecycle.external_dependencies:
                rtype = self.mapper.find_resource(dep.resource_type, dep.version, dep.group)
                if rtype is None:
                    raise ConvergeError(f"{planned.rid.label}: external dependency {dep.id}: the API server "
                                        f"serves no resource type {dep.resource_type}")
                namespace = (dep.namespace or self.namespace) if rtype.namespaced else None
                target = {"apiVersion": rtype.api_version, "kind": rtype.kind,
                          "metadata": {"name": dep.name, **({"namespace": namespace} if namespace else {})}}
                targets[(rtype.api_version, rtype.kind, namespace, dep.name)] = target
        return list(targets.values())

    def _delete_finished(self, planned):
        """werf.io/delete-policy succeeded/failed of resources: wait for them, then delete them as the outcome
        says (a failure is raised after the failed-policy deletion)."""
        policies = (werf_annotations.SUCCEEDED, werf_annotations.FAILED)
        chosen = [p for p in planned if set(policies) & set(p.desired.lifecycle.delete_policies)
                  and not p.desired.lifecycle.skip_delete and not p.desired.hook]
        if not chosen or not self.waiter:
            return
        try:
            self.waiter.wait([p.desired.obj for p in chosen])
        except ConvergeError as exc:
            failed = exc.details.get("failed_resource") or {}
            for p in chosen:
                if (werf_annotations.FAILED in p.desired.lifecycle.delete_policies
                        and (failed.get("kind"), failed.get("namespace") or "", failed.get("name"))
                        == (p.rid.kind, p.rid.namespace, p.rid.name)):
                    self.delete_object(p.desired.rtype, p.rid, p.desired.lifecycle.delete_propagation, wait=True)
            raise
        for p in chosen:
            if werf_annotations.SUCCEEDED in p.desired.lifecycle.delete_policies:
                self.delete_object(p.desired.rtype, p.rid, p.desired.lifecycle.delete_propagation, wait=True)
                # reported as deleted: it is gone at the end of the run, and release_track must not wait for it
                p.action = DELETE
                p.notes.append("deleted once ready (werf.io/delete-policy: succeeded)")

    def _run_group(self, planned, function, doing):
        failures = [(p.rid, scrub_secret_values(_message(outcome), p.desired.obj if p.desired else p.live))
                    for p, outcome in run_parallel(function, planned, self.concurrency)
                    if isinstance(outcome, Exception)]
        if failures:
            raise rejection_error(f"{doing} release {self.release} failed for {len(failures)} resources",
                                  sorted(failures))

    def _write_one(self, planned):
        item = planned.desired
        if planned.managed_fields is not None:
            self._write_managed_fields(planned)
        if item.recreate and planned.live is not None and not item.hook:
            self.delete_object(item.rtype, planned.rid, item.lifecycle.delete_propagation, wait=True)
        if planned.action == CREATE and item.lifecycle.replicas_on_creation is not None:
            planned.after = self._create_with_replicas(item)
        else:
            planned.after = self._apply_request(item, dry_run=False)
        self.written.append(planned.rid)
        if planned.rid.kind == "CustomResourceDefinition":
            self.mapper.wait_for_crd(planned.rid.name)

    def _create_with_replicas(self, item):
        """Create with werf.io/replicas-on-creation as spec.replicas, owned by a field manager of its own, so
        our later applies (which do not set it) leave the replicas to whoever scales the object."""
        replicas = item.lifecycle.replicas_on_creation
        self._apply_request(item, dry_run=False, replicas=replicas)
        only_replicas = {"apiVersion": item.obj["apiVersion"], "kind": item.obj["kind"],
                         "metadata": {"name": item.rid.name}, "spec": {"replicas": replicas}}
        if item.rid.namespace:
            only_replicas["metadata"]["namespace"] = item.rid.namespace
        self.kube.request("PATCH", item.rtype.path(item.rid.namespace, item.rid.name),
                          {"fieldManager": REPLICAS_FIELD_MANAGER, "force": "true"}, only_replicas,
                          "application/apply-patch+yaml")
        return self._apply_request(item, dry_run=False)

    def _delete_one(self, planned):
        rtype = self.mapper.lookup(planned.api_version, planned.rid.kind)
        self.delete_object(rtype, planned.rid, live_lifecycle(planned.live).delete_propagation)
        self.written.append(planned.rid)

    def _plan_one(self, item):
        live = self.kube.get_or_none(item.rtype.path(item.rid.namespace, item.rid.name))
        policies = item.lifecycle.resource_policies
        if live is not None and not item.hook and not self.force_adoption and not item.lifecycle.unowned:
            self._check_ownership(item, live)
        if live is None and werf_annotations.SKIP_CREATE in policies:
            return Planned(item.rid, item.api_version, UNCHANGED, None, None, item, skipped=True,
                           notes=["not created: werf.io/resource-policy skip-create"])
        if live is not None and item.recreate:
            # It is deleted before it is created again, so its creation is what must be valid.
            return Planned(item.rid, item.api_version, CREATE, live, self._dry_run_create(item), item)
        try:
            after = self._apply_request(item, dry_run=True,
                                        replicas=item.lifecycle.replicas_on_creation if live is None else None)
        except KubeApiError as exc:
            if live is None or not _recreates_if_immutable(item, exc):
                raise
            item.recreate = True
            planned = Planned(item.rid, item.api_version, CREATE, live, self._dry_run_create(item), item)
            planned.notes.append("recreated: a field it changes is immutable (werf.io/delete-policy "
                                 "before-creation-if-immutable)")
            return planned
        planned = Planned(item.rid, item.api_version, decide_action(live, after), live, after, item)
        if planned.action == UPDATE and werf_annotations.SKIP_UPDATE in policies:
            return Planned(item.rid, item.api_version, UNCHANGED, live, live, item,
                           notes=["not updated: werf.io/resource-policy skip-update"])
        if live is not None:
            self._plan_take_over(planned, after)
        return planned

    def _plan_take_over(self, planned, after):
        """Plan the rewrite of the live managed fields (take_over_fields). When fields taken over are not among
        the ones our dry-run apply owns, the real apply will remove them, so the object is an update."""
        planned.managed_fields, taken = take_over_fields(planned.live, _now())
        if planned.managed_fields is None:
            return
        ours_after = (_our_apply_entry((after.get("metadata") or {}).get("managedFields") or []) or {})
        reset = subtract_fields(taken, ours_after.get("fieldsV1") or {})
        managers = sorted({e.get("manager") for e in (planned.live.get("metadata") or {}).get("managedFields") or []
                           if e.get("manager") != FIELD_MANAGER and _taken_over(e)})
        if reset:
            planned.action = UPDATE
            planned.notes.append(f"resets fields set by {', '.join(managers)} that the chart does not set")

    def _write_managed_fields(self, planned, attempts=3):
        """Rewrite the managed fields from a fresh read, guarded by its resourceVersion: controllers update
        objects (status) all the time, so a conflict is read again."""
        path = planned.desired.rtype.path(planned.rid.namespace, planned.rid.name)
        for attempt in range(attempts):
            live = self.kube.get_or_none(path)
            fields, _taken = take_over_fields(live, _now()) if live else (None, {})
            if fields is None:
                return
            body = {"metadata": {"managedFields": fields, "resourceVersion": live["metadata"]["resourceVersion"]}}
            try:
                self.kube.request("PATCH", path, {"fieldManager": FIELD_MANAGER}, body, "application/merge-patch+json")
                return
            except KubeApiError as exc:
                if exc.status != 409 or attempt == attempts - 1:
                    raise

    def _check_ownership(self, item, live):
        owner = foreign_owner(live, self.release, self.namespace)
        if owner:
            raise ConvergeError(f"it belongs to release {owner[0]} in namespace {owner[1]}; release "
                                f"{self.release} in namespace {self.namespace} will not adopt it (force_adoption "
                                "would)")
        refusal = None if item.rid in self.known else import_refusal(live, self.release, self.namespace)
        if refusal:
            where = f' in namespace "{item.rid.namespace}"' if item.rid.namespace else ""
            raise ConvergeError(f'{item.rid.kind} "{item.rid.name}"{where} {refusal}; set force_adoption to '
                                f"adopt it into release {self.release}")

    def _dry_run_create(self, item):
        body = copy.deepcopy(item.obj)
        body["metadata"]["generateName"] = body["metadata"].pop("name")  # a free name: the live one is taken
        query = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict", "dryRun": "All"}
        return self.kube.request("POST", item.rtype.path(item.rid.namespace), query, body)

    def _apply_request(self, item, dry_run, replicas=None):
        # Strict, as kubectl: unknown or duplicate fields are errors, not silently dropped.
        query = {"fieldManager": FIELD_MANAGER, "force": "true" if self.force_conflicts else "false",
                 "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        body = item.obj
        if replicas is not None:
            body = copy.deepcopy(item.obj)
            body["spec"]["replicas"] = replicas
        return self.kube.request("PATCH", item.rtype.path(item.rid.namespace, item.rid.name), query, body,
                                 "application/apply-patch+yaml")

    def _missing_namespaces(self, desired):
        names = sorted({item.rid.namespace for item in desired if item.rid.namespace})
        found = run_parallel(lambda name: self.kube.get_or_none(f"/api/v1/namespaces/{name}"), names,
                             self.concurrency)
        missing = set()
        for name, outcome in found:
            if isinstance(outcome, Exception):
                raise ConvergeError(f"cannot read namespace {name}: {_message(outcome)}")
            if outcome is None:
                missing.add(name)
        return missing


def _recreates_if_immutable(item, exc):
    """Whether a rejected update is a recreation: the change hits an immutable field and the object's
    werf.io/delete-policy has before-creation-if-immutable (the default for Jobs without a delete policy, as
    in werf), and no skip-recreate."""
    lifecycle = item.lifecycle
    policies = lifecycle.delete_policies or ((werf_annotations.BEFORE_CREATION_IF_IMMUTABLE,)
                                             if (item.rid.group, item.rid.kind) == ("batch", "Job") else ())
    return (exc.status == 422 and "immutable" in str(exc) and not item.hook
            and werf_annotations.BEFORE_CREATION_IF_IMMUTABLE in policies
            and werf_annotations.SKIP_RECREATE not in lifecycle.resource_policies)


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unvalidated(item, prerequisite):
    return Planned(item.rid, item.api_version, CREATE, None, item.obj, item, validated=False,
                   notes=[f"not validated by a dry run: {prerequisite} does not exist yet"])


def _message(exc):
    if isinstance(exc, ConvergeError) and getattr(exc, "status", None) == 409 and "Apply failed with" in str(exc):
        return f"{exc} (another field manager owns these fields; force_conflicts=true takes them over)"
    if isinstance(exc, ConvergeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
