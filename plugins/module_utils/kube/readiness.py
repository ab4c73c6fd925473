# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readiness rules written as JMESPath expressions over the live object.

Three sources, most specific first: a resource's own annotations (``berth.converge/ready-when``,
``berth.converge/failed-when``), rules per API group and kind (the ``readiness_rules`` option), and the
built-in rules for the common status shapes of custom resources (conditions, ``status.phase``,
``observedGeneration``), which apply to kinds without a built-in tracker.  Every verdict names the rule that
decided it, so that tracking lines and errors can say why.
"""

from __future__ import annotations

import dataclasses
import json

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

try:
    import jmespath
    from jmespath.exceptions import JMESPathError
except ImportError:  # reported by name by module_utils.requirements
    jmespath = None
    JMESPathError = Exception

READY_WHEN = "berth.converge/ready-when"
FAILED_WHEN = "berth.converge/failed-when"

# status.phase values of custom resources (compared case-insensitively)
READY_PHASES = frozenset({"ready", "running", "succeeded", "active", "available", "bound", "complete",
                          "completed", "healthy", "deployed", "established"})
FAILED_PHASES = frozenset({"failed", "failure", "error", "errored", "degraded"})


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a rule says of an object: ``state`` is ready, failed or pending; ``rule`` names the rule."""

    state: str
    reason: str
    rule: str
    failure_reason: str = ""
    failure_message: str = ""


@dataclasses.dataclass(frozen=True)
class Expression:
    """A compiled JMESPath expression and where it came from (an annotation or an option entry)."""

    text: str
    source: str
    compiled: object

    def search(self, obj, where):
        try:
            return self.compiled.search(obj)
        except JMESPathError as exc:  # e.g. a function given the wrong type: the expression is wrong
            raise ConvergeError(f"{where}: {self.source} {self.text!r} cannot be evaluated: {exc}") from None


def compile_expression(text, source, where=None):
    """An Expression from ``text``; a bad one is an error naming ``where`` (the object) and ``source`` (the
    annotation or option entry)."""
    named = f"{where}: {source}" if where else source
    if jmespath is None:
        raise ConvergeError(f"{named}: readiness rules need the jmespath Python library; pip install jmespath")
    if not isinstance(text, str) or not text.strip():
        raise ConvergeError(f"{named} must be a non-empty JMESPath expression, not {text!r}")
    try:
        return Expression(text, source, jmespath.compile(text))
    except JMESPathError as exc:
        detail = " ".join(str(exc).split())
        raise ConvergeError(f"{named} {text!r} is not a valid JMESPath expression: {detail}") from None


def truthy(value):
    """JMESPath truth: false, null, and empty strings, lists and objects are false (0 is true)."""
    return value is not None and value is not False and not (isinstance(value, (str, list, dict)) and not value)


def _shown(value):
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


@dataclasses.dataclass(frozen=True)
class ObjectRule:
    """The ready and failed expressions in effect for one object (each may be None: built-in then)."""

    ready: Expression | None = None
    failed: Expression | None = None

    def judge(self, obj, builtin, where):
        """The Verdict for ``obj`` given the built-in one: a failed expression replaces the built-in failure
        detection, a ready expression the built-in readiness."""
        if self.failed:
            result = self.failed.search(obj, where)
            if truthy(result):
                message = self.failed.text if result is True else f"{_shown(result)} ({self.failed.text})"
                return Verdict("failed", "failed", self.failed.source, f"{self.failed.source} matched", message)
            if builtin.state == "failed":
                builtin = Verdict("pending", builtin.reason, builtin.rule)
        if builtin.state == "failed" or not self.ready:
            return builtin
        if truthy(self.ready.search(obj, where)):
            return Verdict("ready", self.ready.text, self.ready.source)
        return Verdict("pending", f"not yet {self.ready.text}", self.ready.source)

    def __bool__(self):
        return bool(self.ready or self.failed)


class ReadinessRules:
    """Rules per API group and kind: entries ``{group, kind, ready, failed}`` (``group`` "" is the core group)."""

    def __init__(self, entries=None, option="readiness_rules"):
        self._by_kind = {}
        for index, entry in enumerate(entries or []):
            where = f"{option}[{index}]"
            if not isinstance(entry, dict):
                raise ConvergeError(f"{where} is a {type(entry).__name__}, not a dict with group, kind, ready, failed")
            entry = {key: value for key, value in entry.items() if value is not None}  # module options left unset
            unknown = sorted(set(entry) - {"group", "kind", "ready", "failed"})
            if unknown:
                raise ConvergeError(f"{where}: unknown keys {', '.join(unknown)}; use group, kind, ready, failed")
            group, kind = entry.get("group") or "", entry.get("kind")
            if not kind or not isinstance(kind, str) or not isinstance(group, str):
                raise ConvergeError(f"{where} needs kind (and group, the API group; empty for the core group)")
            if not (entry.get("ready") or entry.get("failed")):
                raise ConvergeError(f"{where} ({group}/{kind}) needs a ready or a failed expression, or both")
            if (group, kind) in self._by_kind:
                raise ConvergeError(f"{where}: a rule for {group}/{kind} is already given")
            label = f"{where} ({group}/{kind})"
            self._by_kind[(group, kind)] = ObjectRule(*(
                compile_expression(entry[key], f"{label} {key}") if entry.get(key) else None
                for key in ("ready", "failed")))

    def for_object(self, group, kind, annotations, where):
        """The ObjectRule of one object: its annotations first, then the rule of its group and kind."""
        annotations = annotations or {}
        by_kind = self._by_kind.get((group, kind), ObjectRule())
        ready, failed = (compile_expression(annotations[key], f"annotation {key}", where)
                         if key in annotations else None for key in (READY_WHEN, FAILED_WHEN))
        return ObjectRule(ready or by_kind.ready, failed or by_kind.failed)


# ---------------------------------------------------------------- built-in rules for kinds without a tracker

def _condition_text(condition):
    detail = ": ".join(v for v in (condition.get("reason"), condition.get("message")) if v)
    return f"{condition.get('type')}={condition.get('status')}" + (f" ({detail})" if detail else "")


def _unobserved(obj, generation):
    return Verdict("pending", f"waiting for the controller to observe generation {generation}",
                   "built-in observedGeneration")


def _failed_condition(obj, condition):
    return Verdict("failed", _condition_text(condition), f"built-in condition {condition.get('type')}",
                   condition.get("reason") or condition.get("type"), condition.get("message") or "")


def _ready_condition(obj, condition):
    state = "ready" if condition.get("status") == "True" else "pending"
    return Verdict(state, _condition_text(condition), f"built-in condition {condition.get('type')}")


def _phase(obj, phase):
    state = ("ready" if phase.lower() in READY_PHASES else "failed" if phase.lower() in FAILED_PHASES
             else "pending")
    message = ((obj.get("status") or {}).get("message") or (obj.get("status") or {}).get("reason") or "")
    return Verdict(state, f"phase {phase}", "built-in status.phase", phase if state == "failed" else "",
                   message if state == "failed" else "")


# (expression, judge): the first expression with a truthy result decides, judged from the object and that result
_BUILTIN_SOURCES = (
    ("metadata.generation > `0` && status.observedGeneration < metadata.generation && metadata.generation",
     _unobserved),
    ("status.conditions[?(type=='Stalled' || type=='Failed') && status=='True'] | [0]", _failed_condition),
    ("status.conditions[?type=='Ready'] | [0]", _ready_condition),
    ("status.conditions[?type=='Available'] | [0]", _ready_condition),
    ("status.phase", _phase),
)
_BUILTIN = None


def _builtin_rules():
    global _BUILTIN
    if _BUILTIN is None:
        _BUILTIN = [(compile_expression(text, "built-in rule"), judge)
                    for text, judge in _BUILTIN_SOURCES]
    return _BUILTIN


def builtin_verdict(obj, group, failures=True):
    """The built-in Verdict for an object whose kind has no built-in tracker; without ``failures`` (a failed
    expression replaces them) the failure rules are left out.

    ``status.phase`` counts for custom resources only: core objects (a PersistentVolumeClaim waiting for its
    first consumer) are ready when they exist, as before.
    """
    for expression, judge in _builtin_rules():
        if (judge is _phase and not group) or (judge is _failed_condition and not failures):
            continue
        found = expression.search(obj, "berth.converge")
        if truthy(found) and (judge is not _phase or isinstance(found, str)):
            verdict = judge(obj, found)
            return verdict if failures or verdict.state != "failed" else Verdict("pending", verdict.reason,
                                                                                 verdict.rule)
    return Verdict("ready", "exists", "built-in exists")


def check_annotations(manifests, namespace=None):
    """Compile the readiness annotations of rendered manifests, so that a bad one is an error naming the
    object and the annotation before anything is written; ``namespace`` is for manifests that name none."""
    rules = ReadinessRules()
    for manifest in manifests or []:
        if not isinstance(manifest, dict):
            continue
        meta = manifest.get("metadata") or {}
        api_version, kind = manifest.get("apiVersion") or "", manifest.get("kind") or ""
        where = "/".join(part for part in (kind, meta.get("namespace") or namespace, meta.get("name")) if part)
        rules.for_object(api_version.split("/")[0] if "/" in api_version else "", kind,
                         meta.get("annotations"), where)
