# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""werf's deploy annotations on a manifest: parsed and validated once, before anything is written.

`parse(manifest)` gives the Lifecycle of one object (dependencies, delete and resource policies, ownership,
deploy-on, replicas on creation, sensitive paths) and the warnings for werf.io annotations it does not know;
a bad value is a ConvergeError naming the object and the annotation. The tracking annotations
(werf.io/fail-mode, ...) are read by track.py; they are only listed here as known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import readiness, track

WERF_PREFIX = "werf.io/"
WEIGHT = "werf.io/weight"
DELETE_POLICY = "werf.io/delete-policy"
DELETE_PROPAGATION = "werf.io/delete-propagation"
OWNERSHIP = "werf.io/ownership"
DEPLOY_ON = "werf.io/deploy-on"
WERF_RESOURCE_POLICY = "werf.io/resource-policy"
HELM_RESOURCE_POLICY = "helm.sh/resource-policy"
REPLICAS_ON_CREATION = "werf.io/replicas-on-creation"
SENSITIVE = "werf.io/sensitive"
SENSITIVE_PATHS = "werf.io/sensitive-paths"
DEPLOY_DEPENDENCY = re.compile(r"^werf\.io/deploy-dependency-(?P<id>.+)$")
DELETE_DEPENDENCY = re.compile(r"^werf\.io/delete-dependency-(?P<id>.+)$")
EXTERNAL_RESOURCE = re.compile(r"^(?P<id>.+)\.external-dependency\.werf\.io/resource$")
EXTERNAL_NAMESPACE = re.compile(r"^(?P<id>.+)\.external-dependency\.werf\.io/namespace$")
EXTERNAL = re.compile(r"^(?P<id>.+)\.external-dependency\.werf\.io$")  # werf 2's apiVersion:kind[:namespace]:name

VERSION = "werf.io/version"
# Read elsewhere (track.py, apply.order_key) or written by us; known, so never warned about.
KNOWN = frozenset({
    WEIGHT, DELETE_POLICY, DELETE_PROPAGATION, OWNERSHIP, DEPLOY_ON, WERF_RESOURCE_POLICY, REPLICAS_ON_CREATION,
    SENSITIVE, SENSITIVE_PATHS, VERSION, track.FAIL_MODE, track.TERMINATION_MODE, track.FAILURES_ALLOWED,
    track.NO_ACTIVITY_TIMEOUT,
})
# werf's log display annotations: meaningful to werf, with no effect here (berth.converge prints no pod logs
# while tracking), so they get a warning of their own.
LOG_DISPLAY = re.compile(r"^werf\.io/(log-regex(-skip)?(-for-.+)?|skip-logs(-for-containers)?|show-logs-only-for-"
                         r"(containers|number-of-replicas)|show-service-messages|show-logs-until|"
                         r"ignore-readiness-probe-fails-for-.+)$")

BEFORE_CREATION, SUCCEEDED, FAILED = "before-creation", "succeeded", "failed"
BEFORE_CREATION_IF_IMMUTABLE = "before-creation-if-immutable"
DELETE_POLICIES = (BEFORE_CREATION, BEFORE_CREATION_IF_IMMUTABLE, SUCCEEDED, FAILED)
PROPAGATIONS = ("Foreground", "Background", "Orphan")
OWNERSHIPS = ("release", "anyone")
SKIP_CREATE, SKIP_UPDATE, SKIP_RECREATE, SKIP_DELETE, KEEP = (
    "skip-create", "skip-update", "skip-recreate", "skip-delete", "keep")
RESOURCE_POLICIES = (SKIP_CREATE, SKIP_UPDATE, SKIP_RECREATE, SKIP_DELETE, KEEP)
# werf.io/deploy-on values: the main stage of each operation (delete: applied when the release is dismissed).
# The pre-/post- stages (and test) are werf's hook-like stages, which berth.converge does not run for
# ordinary resources.
DEPLOY_ON_STAGES = ("install", "upgrade", "rollback", "delete")
DEPLOY_ON_UNSUPPORTED = tuple(f"{when}-{stage}" for stage in DEPLOY_ON_STAGES for when in ("pre", "post")) + (
    "pre-uninstall", "uninstall", "post-uninstall", "test", "test-success")
DEPENDENCY_PROPERTIES = ("group", "version", "kind", "name", "namespace")


@dataclass(frozen=True)
class Dependency:
    """A werf.io/deploy-dependency-<id> (state present or ready) or delete-dependency-<id> (state absent):
    matches the release's objects whose set properties all equal."""

    id: str
    state: str
    group: str = None
    version: str = None
    kind: str = None
    name: str = None
    namespace: str = None

    def matches(self, api_version, kind, namespace, name):
        group, _slash, version = api_version.rpartition("/")
        wanted = (("group", group), ("version", version), ("kind", kind), ("namespace", namespace or ""),
                  ("name", name))
        return all(getattr(self, key) is None or getattr(self, key) == value for key, value in wanted)

    def describe(self):
        return ",".join(f"{key}={getattr(self, key)}" for key in DEPENDENCY_PROPERTIES if getattr(self, key))


@dataclass(frozen=True)
class ExternalDependency:
    """<id>.external-dependency.werf.io/resource (<type>[.<version>.<group>]/<name>) and its namespace."""

    id: str
    resource_type: str  # plural, singular or kind, lower case as kubectl accepts it
    version: str
    group: str
    name: str
    namespace: str = None  # None: the release namespace


@dataclass(frozen=True)
class Lifecycle:
    """What werf's deploy annotations ask for one object."""

    deploy_dependencies: tuple = ()
    delete_dependencies: tuple = ()
    external_dependencies: tuple = ()
    delete_policies: tuple = ()
    delete_propagation: str = None
    ownership: str = None  # None: the default (release for resources, anyone for hooks)
    deploy_on: tuple = None  # None: every operation
    resource_policies: tuple = ()
    replicas_on_creation: int = None
    sensitive_paths: tuple = ()
    warnings: tuple = field(default=(), compare=False)

    @property
    def skip_delete(self):
        return bool({SKIP_DELETE, KEEP} & set(self.resource_policies))

    @property
    def unowned(self):
        return self.ownership == "anyone"


def label(manifest, namespace=None):
    """`Kind namespace/name`; `namespace` for a manifest that names none (it takes the release's)."""
    metadata = manifest.get("metadata") or {}
    namespace = metadata.get("namespace") or namespace
    where = f"{namespace}/" if namespace else ""
    return f"{manifest.get('kind')} {where}{metadata.get('name')}"


def annotations_of(manifest):
    return ((manifest.get("metadata") or {}).get("annotations")) or {}


def _listed(value):
    return [part.strip() for part in str(value).split(",")]


def _bad(manifest, key, value, why):
    return ConvergeError(f"{label(manifest)}: annotation {key}: {value!r} {why}", resource=label(manifest))


def _policy_list(manifest, key, value, allowed):
    parts = _listed(value)
    if not value or any(not part for part in parts):
        raise _bad(manifest, key, value, "has an empty item; a comma-separated list of " + ", ".join(allowed))
    unknown = [part for part in parts if part not in allowed]
    if unknown:
        raise _bad(manifest, key, value, f"has {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return tuple(dict.fromkeys(parts))


def _one_of(manifest, key, value, allowed):
    if value not in allowed:
        raise _bad(manifest, key, value, f"is not one of {', '.join(allowed)}")
    return value


def parse_properties(manifest, key, value):
    """werf's `state=ready,kind=Deployment,name=app` property list."""
    properties = {}
    for part in _listed(value):
        name, sep, prop = part.partition("=")
        name, prop = name.strip(), prop.strip()
        if not sep or not name or not prop:
            raise _bad(manifest, key, value, f"has {part!r}; expected comma-separated key=value properties")
        if name in properties:
            raise _bad(manifest, key, value, f"sets {name} twice")
        properties[name] = prop
    return properties


def _dependency(manifest, key, dep_id, value, states):
    properties = parse_properties(manifest, key, value)
    unknown = sorted(set(properties) - set(DEPENDENCY_PROPERTIES) - {"state"})
    if unknown:
        raise _bad(manifest, key, value, f"has unknown properties {', '.join(unknown)}; allowed: state, "
                   + ", ".join(DEPENDENCY_PROPERTIES))
    if "state" not in properties:
        raise _bad(manifest, key, value, f"lacks the state property ({'|'.join(states)})")
    if properties["state"] not in states:
        raise _bad(manifest, key, value, f"has state={properties['state']}; allowed: {', '.join(states)}")
    if not set(properties) & set(DEPENDENCY_PROPERTIES):
        raise _bad(manifest, key, value, "names no target: set at least one of " + ", ".join(DEPENDENCY_PROPERTIES))
    return Dependency(dep_id, **properties)


def _external(manifest, key, dep_id, value, namespace):
    resource_type, sep, name = str(value).partition("/")
    parts = resource_type.split(".")
    if not sep or not name or "/" in name or not resource_type or any(not p for p in parts) or len(parts) == 2:
        raise _bad(manifest, key, value, "is not <type>[.<version>.<group>]/<name> (such as secret/config or "
                   "deployments.v1.apps/app)")
    if resource_type == "all":
        raise _bad(manifest, key, value, "names type all; name one type")
    version, group = (parts[1], ".".join(parts[2:])) if len(parts) > 2 else (None, None)
    return ExternalDependency(dep_id, parts[0].lower(), version, group, name, namespace)


def _external_reference(manifest, key, dep_id, value):
    """werf 2's `<id>.external-dependency.werf.io: <apiVersion>:<kind>[:<namespace>]:<name>`."""
    parts = str(value).split(":")
    if len(parts) not in (3, 4) or not all(parts):
        raise _bad(manifest, key, value, "is not <apiVersion>:<kind>[:<namespace>]:<name> (such as "
                   "apps/v1:Deployment:app)")
    group, _slash, version = parts[0].rpartition("/")
    return ExternalDependency(dep_id, parts[1].lower(), version, group or None, parts[-1],
                              parts[2] if len(parts) == 4 else None)


def parse_sensitive_paths(value):
    """The JSONPath expressions of werf.io/sensitive-paths: comma separated, a backslash escapes a comma."""
    paths, current, escaped = [], [], False
    for char in str(value):
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            paths.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    paths.append("".join(current).strip())
    return tuple(path for path in paths if path)


_SEGMENT = re.compile(r"\.(?P<name>[^.\[\]]+)|\[(?P<index>\*|-?\d+)\]|\[['\"](?P<quoted>[^'\"]+)['\"]\]")


def path_segments(path):
    """A JSONPath (`$.data.*`, `spec.containers[*].env[0].value`, `data['a.b']`) as a list of keys, indices
    and '*'; None when the expression is beyond this subset (filters, recursive descent, slices)."""
    text = path.strip()
    text = text[1:] if text.startswith("$") else text
    text = text if text.startswith((".", "[")) else "." + text
    segments, position = [], 0
    while position < len(text):
        match = _SEGMENT.match(text, position)
        if not match or text.startswith("..", position):
            return None
        if match.group("name") is not None:
            segments.append(match.group("name"))
        elif match.group("index") is not None:
            index = match.group("index")
            segments.append(index if index == "*" else int(index))
        else:
            segments.append(match.group("quoted"))
        position = match.end()
    return segments or None


def parse(manifest):
    """The Lifecycle of a manifest; ConvergeError naming the object and annotation for a bad value."""
    annotations = annotations_of(manifest)
    # the tracking and readiness annotations are read only when waiting: a bad one must fail before any write
    track.track_options(annotations, label(manifest))
    readiness.check_annotations([manifest])
    values = {}
    deploy_deps, delete_deps, externals, external_namespaces, warnings, direct = [], [], {}, {}, [], []
    for key, raw in annotations.items():
        value = "" if raw is None else str(raw).strip()
        match = (DEPLOY_DEPENDENCY.match(key) or DELETE_DEPENDENCY.match(key) or EXTERNAL_RESOURCE.match(key)
                 or EXTERNAL_NAMESPACE.match(key) or EXTERNAL.match(key))
        if match and match.re is DEPLOY_DEPENDENCY:
            deploy_deps.append(_dependency(manifest, key, match.group("id"), value, ("present", "ready")))
        elif match and match.re is DELETE_DEPENDENCY:
            delete_deps.append(_dependency(manifest, key, match.group("id"), value, ("absent",)))
        elif match and match.re is EXTERNAL_RESOURCE:
            externals[match.group("id")] = (key, value)
        elif match and match.re is EXTERNAL:
            direct.append(_external_reference(manifest, key, match.group("id"), value))
        elif match:
            if not value:
                raise _bad(manifest, key, value, "is empty; name the namespace of the external dependency")
            external_namespaces[match.group("id")] = value
        elif key in KNOWN or key == HELM_RESOURCE_POLICY:
            values[key] = value
        elif LOG_DISPLAY.match(key):
            warnings.append(f"{label(manifest)}: annotation {key} has no effect in berth.converge (it controls "
                            "werf's log output while tracking)")
        elif key.startswith(WERF_PREFIX):
            warnings.append(f"{label(manifest)}: unknown annotation {key} is ignored (not a werf deploy "
                            "annotation berth.converge knows)")
    for dep_id in sorted(set(external_namespaces) - set(externals)):
        warnings.append(f"{label(manifest)}: annotation {dep_id}.external-dependency.werf.io/namespace has no "
                        f"{dep_id}.external-dependency.werf.io/resource and is ignored")
    external_deps = tuple(_external(manifest, key, dep_id, value, external_namespaces.get(dep_id))
                          for dep_id, (key, value) in sorted(externals.items())) + tuple(direct)
    return Lifecycle(
        deploy_dependencies=tuple(sorted(deploy_deps, key=lambda d: d.id)),
        delete_dependencies=tuple(sorted(delete_deps, key=lambda d: d.id)),
        external_dependencies=external_deps,
        delete_policies=(_policy_list(manifest, DELETE_POLICY, values[DELETE_POLICY], DELETE_POLICIES)
                         if values.get(DELETE_POLICY) else ()),
        delete_propagation=(_one_of(manifest, DELETE_PROPAGATION, values[DELETE_PROPAGATION], PROPAGATIONS)
                            if DELETE_PROPAGATION in values else None),
        ownership=_one_of(manifest, OWNERSHIP, values[OWNERSHIP], OWNERSHIPS) if OWNERSHIP in values else None,
        deploy_on=_deploy_on(manifest, values[DEPLOY_ON]) if DEPLOY_ON in values else None,
        resource_policies=_resource_policies(manifest, values),
        replicas_on_creation=_replicas(manifest, values[REPLICAS_ON_CREATION]) if REPLICAS_ON_CREATION in values
        else None,
        sensitive_paths=_sensitive(manifest, values),
        warnings=tuple(warnings),
    )


def _deploy_on(manifest, value):
    parts = _listed(value)
    if not value or any(not part for part in parts):
        raise _bad(manifest, DEPLOY_ON, value, "has an empty item; a comma-separated list of "
                   + ", ".join(DEPLOY_ON_STAGES))
    unsupported = [part for part in parts if part in DEPLOY_ON_UNSUPPORTED]
    if unsupported:
        raise _bad(manifest, DEPLOY_ON, value, f"has {', '.join(unsupported)}: berth.converge supports only the "
                   f"main stages {', '.join(DEPLOY_ON_STAGES)}; use a Helm hook for a pre or post stage")
    return _policy_list(manifest, DEPLOY_ON, value, DEPLOY_ON_STAGES)


def _resource_policies(manifest, values):
    if WERF_RESOURCE_POLICY in values:
        return _policy_list(manifest, WERF_RESOURCE_POLICY, values[WERF_RESOURCE_POLICY], RESOURCE_POLICIES)
    if HELM_RESOURCE_POLICY in values:
        return (_one_of(manifest, HELM_RESOURCE_POLICY, values[HELM_RESOURCE_POLICY], (KEEP,)),)
    return ()


def _replicas(manifest, value):
    if not re.fullmatch(r"\d+", value):
        raise _bad(manifest, REPLICAS_ON_CREATION, value, "is not a whole number of replicas (0 or more)")
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        raise _bad(manifest, REPLICAS_ON_CREATION, value, "is set on an object without spec.replicas")
    return int(value)


def _sensitive(manifest, values):
    if SENSITIVE_PATHS in values:
        paths = parse_sensitive_paths(values[SENSITIVE_PATHS])
        if not paths:
            raise _bad(manifest, SENSITIVE_PATHS, values[SENSITIVE_PATHS], "names no JSONPath")
        unsupported = [path for path in paths if path_segments(path) is None]
        if unsupported:
            raise _bad(manifest, SENSITIVE_PATHS, values[SENSITIVE_PATHS],
                       f"has {', '.join(unsupported)}: only dotted paths with [n], [*], ['key'] and * are supported")
        return paths
    if SENSITIVE in values:
        flag = values[SENSITIVE].lower()
        if flag not in ("true", "false", "1", "0"):
            raise _bad(manifest, SENSITIVE, values[SENSITIVE], "is not true or false")
        return ("$.data.*", "$.stringData.*") if flag in ("true", "1") else ()
    return ()


# ------------------------------------------------------------------------------------------- sensitive paths

def redact(obj, paths, mask):
    """Replace, in place, the values the paths select with mask(value)."""
    for path in paths:
        segments = path_segments(path)
        if segments:
            _redact(obj, segments, mask)
    return obj


def _redact(node, segments, mask):
    head, rest = segments[0], segments[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
    elif isinstance(node, list):
        if head == "*":
            keys = list(range(len(node)))
        elif isinstance(head, int) and -len(node) <= head < len(node):
            keys = [head]
        else:
            keys = []
    else:
        return
    for key in keys:
        if rest:
            _redact(node[key], rest, mask)
        elif node[key] is not None:
            node[key] = mask(node[key])
