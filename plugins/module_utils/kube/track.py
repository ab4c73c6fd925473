# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readiness tracking of a release's resources with watch streams, failing fast with the reason.

Pure functions (annotation parsing, readiness and failure of object dicts) come first; the watch
machinery (`_Stream`, `_Store`) and the `Tracker` that combines them follow.  The semantics of the werf
annotations are documented in the release_track module.
"""

from __future__ import annotations

import dataclasses
import queue
import re
import threading
import time

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.client import KubeApiError, backoff_delay
from ansible_collections.berth.converge.plugins.module_utils.kube.readiness import (
    ObjectRule, ReadinessRules, Verdict, builtin_verdict)
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import Kube, ResourceMapper

FAIL_MODE = "werf.io/fail-mode"
TERMINATION_MODE = "werf.io/track-termination-mode"
FAILURES_ALLOWED = "werf.io/failures-allowed-per-replica"
NO_ACTIVITY_TIMEOUT = "werf.io/no-activity-timeout"

FAIL_IMMEDIATELY = "FailWholeDeployProcessImmediately"
HOPE_UNTIL_END = "HopeUntilEndOfDeployProcess"
IGNORE_AND_CONTINUE = "IgnoreAndContinueDeployProcess"
FAIL_MODES = (FAIL_IMMEDIATELY, HOPE_UNTIL_END, IGNORE_AND_CONTINUE)
WAIT_UNTIL_READY = "WaitUntilResourceReady"
NON_BLOCKING = "NonBlocking"
TERMINATION_MODES = (WAIT_UNTIL_READY, NON_BLOCKING)

# Container states that retrying does not fix: a failure at once, whatever the restart count.
IMMEDIATE_FAILURES = frozenset({
    "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "CreateContainerError",
    "InvalidImageName",
})

WORKLOAD_KINDS = {("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("batch", "Job"),
                  ("", "Pod")}
POD_KEY = ("v1", "Pod")
REPLICASET_KEY = ("apps/v1", "ReplicaSet")
EVENT_KEY = ("v1", "Event")

PROGRESS_EVERY = 5.0
WATCH_SECONDS = 240  # the server ends each watch after this; it resumes from the last resourceVersion
WATCH_READ_SECONDS = WATCH_SECONDS + 30  # silence longer than this means a dead connection
EVENTS_SHOWN = 5
PENDING_SHOWN = 5


# ---------------------------------------------------------------- annotations

@dataclasses.dataclass(frozen=True)
class TrackOptions:
    """How one resource is tracked, from its werf.io annotations."""

    fail_mode: str = FAIL_IMMEDIATELY
    termination_mode: str = WAIT_UNTIL_READY
    failures_allowed_per_replica: int = 1
    no_activity_timeout: float = 240.0


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text):
    """Seconds in a Go duration string such as ``4m``, ``8m30s``, ``90s`` or ``1.5h``."""
    text = str(text).strip().lstrip("+")
    if text == "0":
        return 0.0
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{text!r} is not a duration like 4m, 90s or 8m30s")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def track_options(annotations, where):
    """TrackOptions from a resource's annotations; ``where`` names the resource in errors."""
    annotations = annotations or {}
    fail_mode = annotations.get(FAIL_MODE, FAIL_IMMEDIATELY)
    termination_mode = annotations.get(TERMINATION_MODE, WAIT_UNTIL_READY)
    if fail_mode not in FAIL_MODES:
        raise ConvergeError(f"{where}: annotation {FAIL_MODE} is {fail_mode!r}; use one of {', '.join(FAIL_MODES)}")
    if termination_mode not in TERMINATION_MODES:
        raise ConvergeError(f"{where}: annotation {TERMINATION_MODE} is {termination_mode!r}; "
                            f"use one of {', '.join(TERMINATION_MODES)}")
    failures = str(annotations.get(FAILURES_ALLOWED, "1")).strip()
    if not failures.isdigit():
        raise ConvergeError(f"{where}: annotation {FAILURES_ALLOWED} is {failures!r}; use a whole number >= 0")
    try:
        no_activity = parse_duration(annotations.get(NO_ACTIVITY_TIMEOUT, "4m"))
    except ValueError as exc:
        raise ConvergeError(f"{where}: annotation {NO_ACTIVITY_TIMEOUT}: {exc}")
    return TrackOptions(fail_mode, termination_mode, int(failures), no_activity)


# ---------------------------------------------------------------- readiness of object dicts

@dataclasses.dataclass(frozen=True)
class Failure:
    """Why a resource failed; ``pod`` and ``container`` when a pod showed it."""

    reason: str
    message: str = ""
    pod: str | None = None
    container: str | None = None

    def describe(self):
        where = " ".join(f"{label} {value}" for label, value in (("pod", self.pod), ("container", self.container))
                         if value)
        text = f"{self.reason}: {self.message}" if self.message else self.reason
        return f"{where}: {text}" if where else text


@dataclasses.dataclass(frozen=True)
class Status:
    """Readiness of one resource: ready, or pending with a reason, or failed; ``rule`` says which rule decided."""

    ready: bool
    reason: str
    failure: Failure | None = None
    rule: str = ""

    def verdict(self):
        state = "ready" if self.ready else "failed" if self.failure else "pending"
        return Verdict(state, self.reason, self.rule)

    @classmethod
    def of(cls, verdict):
        failure = Failure(verdict.failure_reason, verdict.failure_message) if verdict.state == "failed" else None
        return cls(verdict.state == "ready", verdict.reason, failure, verdict.rule)


def api_group(api_version):
    return api_version.split("/")[0] if "/" in api_version else ""


def _meta(obj):
    return obj.get("metadata") or {}


def _status(obj):
    return obj.get("status") or {}


def _condition(obj, kind):
    return next((c for c in _status(obj).get("conditions") or [] if c.get("type") == kind), None)


def _true_condition(obj, *kinds):
    """The first of the named conditions that is True, or None."""
    for kind in kinds:
        condition = _condition(obj, kind)
        if condition and condition.get("status") == "True":
            return condition
    return None


def _generation_pending(obj):
    generation, observed = _meta(obj).get("generation"), _status(obj).get("observedGeneration")
    return generation is not None and observed is not None and observed < generation


def _unobserved(obj):
    """A pending Status while the controller has not seen the latest spec, else None."""
    if "observedGeneration" not in _status(obj) or _generation_pending(obj):
        return Status(False, f"waiting for the controller to observe generation {_meta(obj).get('generation')}")
    return None


def _deployment_status(obj):
    waiting = _unobserved(obj)
    if waiting:
        return waiting
    progressing = _condition(obj, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Status(False, "progress deadline exceeded",
                      Failure("ProgressDeadlineExceeded", progressing.get("message", "")))
    status = _status(obj)
    desired = (obj.get("spec") or {}).get("replicas", 1)
    updated, total = status.get("updatedReplicas") or 0, status.get("replicas") or 0
    ready, available = status.get("readyReplicas") or 0, status.get("availableReplicas") or 0
    if updated < desired:
        return Status(False, f"{updated} of {desired} replicas updated")
    if total > updated:
        return Status(False, f"{total - updated} old replicas pending termination")
    if min(ready, available) < desired:
        return Status(False, f"{ready} of {desired} replicas ready, {available} available")
    return Status(True, f"{desired} of {desired} replicas ready")


def _statefulset_status(obj):
    waiting = _unobserved(obj)
    if waiting:
        return waiting
    spec, status = obj.get("spec") or {}, _status(obj)
    desired = spec.get("replicas", 1)
    ready, updated = status.get("readyReplicas") or 0, status.get("updatedReplicas") or 0
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
        if updated < desired - partition:
            return Status(False, f"{updated} of {desired - partition} replicas updated")
        if not partition and status.get("updateRevision") != status.get("currentRevision"):
            return Status(False, f"rolling update to revision {status.get('updateRevision')} in progress")
    if ready < desired:
        return Status(False, f"{ready} of {desired} replicas ready")
    return Status(True, f"{desired} of {desired} replicas ready")


def _daemonset_status(obj):
    waiting = _unobserved(obj)
    if waiting:
        return waiting
    status = _status(obj)
    desired = status.get("desiredNumberScheduled") or 0
    updated, available = status.get("updatedNumberScheduled") or 0, status.get("numberAvailable") or 0
    rolling = ((obj.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and updated < desired:
        return Status(False, f"{updated} of {desired} pods updated")
    if available < desired:
        return Status(False, f"{available} of {desired} pods available")
    return Status(True, f"{desired} of {desired} pods available")


def _job_status(obj):
    failed = _true_condition(obj, "Failed", "FailureTarget")
    if failed:
        return Status(False, "failed", Failure(failed.get("reason") or "Failed", failed.get("message", "")))
    if _true_condition(obj, "Complete"):
        return Status(True, "complete")
    completions = (obj.get("spec") or {}).get("completions") or 1
    status = _status(obj)
    return Status(False, f"{status.get('succeeded') or 0} of {completions} completions, "
                         f"{status.get('active') or 0} active")


def _container_statuses(pod):
    status = _status(pod)
    return (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])


def _pod_phase_failure(pod):
    status = _status(pod)
    return pod_problem(pod) or Failure(status.get("reason") or "Failed", status.get("message", ""),
                                       _meta(pod).get("name"))


def _pod_status(obj):
    phase = _status(obj).get("phase")
    if phase == "Succeeded":
        return Status(True, "succeeded")
    if phase == "Failed":
        return Status(False, "failed", _pod_phase_failure(obj))
    if _true_condition(obj, "Ready"):
        return Status(True, "ready")
    return Status(False, pod_hint(obj))


_STATUS_BY_KIND = {
    ("apps", "Deployment"): _deployment_status,
    ("apps", "StatefulSet"): _statefulset_status,
    ("apps", "DaemonSet"): _daemonset_status,
    ("batch", "Job"): _job_status,
    ("", "Pod"): _pod_status,
}


def object_status(obj, rule=None, where=""):
    """Readiness of an object from its own status alone (no pods): its kind's built-in tracker, else the
    built-in rules for common status shapes, with the expressions of ``rule`` (an ObjectRule) over them."""
    group, kind = api_group(obj.get("apiVersion", "")), obj.get("kind")
    check = _STATUS_BY_KIND.get((group, kind))
    if check:
        status = dataclasses.replace(check(obj), rule=f"built-in {kind}")
    else:
        status = Status.of(builtin_verdict(obj, group, failures=not (rule and rule.failed)))
    if not rule:
        return status
    builtin = status.verdict()
    verdict = rule.judge(obj, builtin, where or _ref(kind, _meta(obj).get("namespace"), _meta(obj).get("name")))
    return status if verdict is builtin else Status.of(verdict)


def _termination_text(terminated):
    text = f"exit code {terminated.get('exitCode')} ({terminated.get('reason') or 'Error'})"
    return f"{text}: {terminated['message'].strip()}" if terminated.get("message") else text


def _container_problem(pod, container):
    """The error a container shows now or showed at the end of its last run, thresholds aside; or None."""
    state, last = container.get("state") or {}, container.get("lastState") or {}
    waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
    last_terminated = last.get("terminated") or {}
    pod_name, name = _meta(pod).get("name"), container.get("name")
    if waiting.get("reason") in IMMEDIATE_FAILURES:
        return Failure(waiting["reason"], waiting.get("message", ""), pod_name, name)
    if terminated.get("exitCode"):
        return Failure(terminated.get("reason") or "Error", _termination_text(terminated), pod_name, name)
    if waiting.get("reason") != "CrashLoopBackOff" and not last_terminated.get("exitCode"):
        return None
    parts = [waiting.get("message", ""), last_terminated and f"last run {_termination_text(last_terminated)}"]
    return Failure(waiting.get("reason") or last_terminated.get("reason") or "Error",
                   "; ".join(part for part in parts if part), pod_name, name)


def _failure_count(container):
    """Failed runs of a container: its restarts, plus the current run when that failed too."""
    state = container.get("state") or {}
    failing_now = ((state.get("waiting") or {}).get("reason") == "CrashLoopBackOff"
                   or bool((state.get("terminated") or {}).get("exitCode")))
    return (container.get("restartCount") or 0) + int(failing_now)


def pod_problem(pod):
    """The first container error of a pod, thresholds aside, or None."""
    return next(filter(None, (_container_problem(pod, c) for c in _container_statuses(pod))), None)


def pod_failure(pod, failures_allowed):
    """The first container failure of a pod, or None.

    Image and configuration errors fail at once; crashes (CrashLoopBackOff, a non-zero exit code now or
    in the last run) fail when the container's failed runs exceed ``failures_allowed``.
    """
    for container in _container_statuses(pod):
        problem = _container_problem(pod, container)
        if problem and problem.reason in IMMEDIATE_FAILURES:
            return problem
        failures = _failure_count(container)
        if problem and failures > failures_allowed:
            return dataclasses.replace(problem, message=f"{problem.message}; {failures} failed runs, "
                                                        f"{failures_allowed} allowed ({FAILURES_ALLOWED})")
    return None


def pod_hint(pod):
    """Why a pod is not ready yet, in a few words."""
    name = _meta(pod).get("name")
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        return f"pod {name}: {scheduled.get('reason', 'unscheduled')}: {scheduled.get('message', '')}".rstrip(": ")
    for container in _container_statuses(pod):
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return f"pod {name} container {container.get('name')}: {waiting.get('reason', 'waiting')}"
    return f"pod {name}: {_status(pod).get('phase', 'Pending')}"


def current_replicaset(deployment, replicasets):
    """The ReplicaSet of a Deployment's current revision among ``replicasets``, or None."""
    revision = _meta(deployment).get("annotations", {}).get("deployment.kubernetes.io/revision")
    uid = _meta(deployment).get("uid")
    for replicaset in replicasets:
        meta = _meta(replicaset)
        owned = any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or [])
        if owned and revision and (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision") == revision:
            return replicaset
    return None


def is_current_pod(owner, pod):
    """Whether a pod of a StatefulSet or DaemonSet belongs to its current revision (Jobs: all pods do)."""
    labels = _meta(pod).get("labels") or {}
    if owner.get("kind") == "StatefulSet":
        revision = _status(owner).get("updateRevision")
        return not revision or labels.get("controller-revision-hash") == revision
    if owner.get("kind") == "DaemonSet" and "pod-template-generation" in labels:
        return labels["pod-template-generation"] == str(_meta(owner).get("generation"))
    return True


def resource_status(obj, pods, failures_allowed, rule=None, where=""):
    """Readiness of an object given its current pods: its own status, then the first failing pod."""
    status = object_status(obj, rule, where)
    if status.ready:
        return status
    if status.failure:
        return status if obj.get("kind") == "Pod" else _with_pod_detail(status, pods)
    if obj.get("kind") != "Pod" and _generation_pending(obj):
        return status  # pods may still be the previous revision's
    for pod in pods:
        failure = pod_failure(pod, failures_allowed)
        if failure:
            return Status(False, "failed", failure, "built-in pod failures")
    hints = [pod_hint(pod) for pod in pods if not _true_condition(pod, "Ready") and obj.get("kind") != "Pod"]
    return Status(False, "; ".join([status.reason] + hints[:1]), rule=status.rule)


def _with_pod_detail(status, pods):
    """A workload failure with the pod and container that show an error, when one does."""
    detail = next(filter(None, map(pod_problem, pods)), None)
    if not detail:
        return status
    failure = status.failure
    message = "; ".join(part for part in (failure.message, f"{detail.reason}: {detail.message}") if part)
    return Status(False, status.reason, Failure(failure.reason, message, detail.pod, detail.container), status.rule)


# ---------------------------------------------------------------- inputs and results

def _count(number, noun):
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _ref(kind, namespace, name):
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


@dataclasses.dataclass
class Target:
    """One resource to track and what has been seen of it."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    annotations: dict
    options: TrackOptions
    rule: ObjectRule = ObjectRule()
    state: str = "pending"  # pending | hoping | ready | failed | ignored
    decided_by: str = ""  # the readiness rule behind the last verdict
    reason: str = "not seen yet"
    failure: Failure | None = None
    hope_used: bool = False
    seen: bool = False
    elapsed: float = 0.0
    last_activity: float = 0.0
    fingerprint: tuple = ()

    @property
    def ref(self):
        return _ref(self.kind, self.namespace, self.name)

    @property
    def explained(self):
        """The reason with the readiness rule behind it, for tracking lines."""
        return f"{self.reason} (rule: {self.decided_by})" if self.decided_by else self.reason

    @property
    def blocking(self):
        return self.options.termination_mode == WAIT_UNTIL_READY

    @property
    def finished(self):
        return self.state in ("ready", "failed", "ignored")

    def result(self):
        return {
            "apiVersion": self.api_version, "kind": self.kind, "namespace": self.namespace, "name": self.name,
            "ready": self.state == "ready", "failed": self.state in ("failed", "ignored", "hoping"),
            "reason": self.reason, "rule": self.decided_by, "elapsed": round(self.elapsed, 2),
            "fail_mode": self.options.fail_mode, "track_termination_mode": self.options.termination_mode,
        }


def targets_from(resources, namespace=None, rules=None):
    """Targets from release_apply results or full manifests; pruned (``action: delete``) ones are skipped.
    ``rules`` (ReadinessRules) are the readiness rules per group and kind."""
    rules = rules or ReadinessRules()
    targets = []
    for index, item in enumerate(resources):
        if not isinstance(item, dict):
            raise ConvergeError(f"resources[{index}] is a {type(item).__name__}, not a dict")
        if item.get("action") == "delete":
            continue
        meta = item.get("metadata") or {}
        api_version, kind = item.get("apiVersion"), item.get("kind")
        name = item.get("name") or meta.get("name")
        if not (api_version and kind and name):
            raise ConvergeError(f"resources[{index}] needs apiVersion, kind and name (metadata.name); "
                                f"it has {', '.join(sorted(item)) or 'nothing'}")
        ns = item.get("namespace") or meta.get("namespace") or namespace
        annotations = dict(meta.get("annotations") or {})
        ref = _ref(kind, ns, name)
        targets.append(Target(api_version, kind, name, ns, annotations, track_options(annotations, ref),
                              rules.for_object(api_group(api_version), kind, annotations, ref)))
    return targets


def tracking_plan(resources, namespace=None, rules=None):
    """What tracking would do, from the inputs alone (check mode): one dict per resource."""
    plan = []
    for target in targets_from(resources, namespace, rules):
        entry = target.result()
        del entry["ready"], entry["failed"], entry["elapsed"]
        entry["rule"] = ", ".join(e.source for e in (target.rule.ready, target.rule.failed) if e) or "built-in"
        entry["reason"] = ("would wait until ready" if target.blocking
                           else f"would not wait ({TERMINATION_MODE}: {NON_BLOCKING})")
        plan.append(entry)
    return plan


class Progress:
    """Timestamped progress lines, kept for the result and appended to a file as they happen."""

    def __init__(self, path=None):
        self.lines = []
        try:
            self._file = open(path, "a", encoding="utf-8", buffering=1) if path else None
        except OSError as exc:
            raise ConvergeError(f"cannot append to progress_file {path}: {exc.strerror}")

    def line(self, text):
        stamped = f"{time.strftime('%H:%M:%S')} {text}"
        self.lines.append(stamped)
        if self._file:
            self._file.write(stamped + "\n")

    def close(self):
        if self._file:
            self._file.close()


# ---------------------------------------------------------------- watch streams

class _Store:
    """Objects of one (kind, namespace) by name, indexed by owner uid (Events: by involved object uid)."""

    def __init__(self, index_events=False):
        self.objects = {}
        self._index = {}
        self._index_events = index_events

    def _keys(self, obj):
        if self._index_events:
            return [(obj.get("involvedObject") or {}).get("uid")]
        return [ref.get("uid") for ref in _meta(obj).get("ownerReferences") or []]

    def apply(self, change, obj):
        name = _meta(obj).get("name")
        old = self.objects.pop(name, None)
        for key in self._keys(old or {}):
            self._index.get(key, {}).pop(name, None)
        if change == "DELETED":
            return
        self.objects[name] = obj
        for key in self._keys(obj):
            self._index.setdefault(key, {})[name] = obj

    def clear(self):
        self.objects.clear()
        self._index.clear()

    def by_key(self, key):
        return list(self._index.get(key, {}).values())


class _Stream(threading.Thread):
    """List, then watch, one kind in one namespace; changes go to the tracker's queue.

    The watch resumes from the last resourceVersion it saw (bookmarks included) whenever the connection drops or
    the server ends it; when the server no longer has that history (410 Gone) it lists again (RESET). While the
    API server cannot be reached it retries with backoff until stopped, saying DISCONNECTED once and CONNECTED
    when back. Messages: (change, key, payload).
    """

    def __init__(self, kube, rtype, namespace, key, sink, deadline):
        super().__init__(name=f"watch {key}", daemon=True)
        self._kube, self._rtype, self._namespace = kube, rtype, namespace
        self._path = rtype.path(namespace)
        self.key, self._sink, self._deadline = key, sink, deadline
        self._stopped = threading.Event()
        self._watch = None
        self._version = None

    def stop(self):
        self._stopped.set()
        watch = self._watch
        if watch is not None:
            watch.close()

    def run(self):
        try:
            version = self._list()
            self._sink.put(("SYNCED", self.key, None))
            self._follow(version)
        except Exception as exc:  # any other failure of the stream ends tracking with its text
            if not self._stopped.is_set():
                self._sink.put(("ERROR", self.key, exc))

    def _follow(self, version):
        self._version = version
        failures = 0
        while not self._stopped.is_set():
            try:
                self._watch = self._kube.open_watch(self._path, {
                    "resourceVersion": self._version, "allowWatchBookmarks": "true",
                    "timeoutSeconds": str(WATCH_SECONDS)}, WATCH_READ_SECONDS)
                if failures:
                    self._sink.put(("CONNECTED", self.key, None))
                    failures = 0
                if self._stopped.is_set():
                    self._watch.close()
                self._consume(self._watch)
            except KubeApiError as exc:
                if self._stopped.is_set():
                    return
                if exc.status == 410:  # the history since that version is gone: list again
                    self._sink.put(("RESET", self.key, None))
                    self._version = self._list()
                    continue
                if not exc.transient:
                    raise
                failures += 1
                if failures == 1:
                    self._sink.put(("DISCONNECTED", self.key, exc))
                self._stopped.wait(backoff_delay(failures))

    def _consume(self, watch):
        """Forward the events of one watch, keeping the last resourceVersion seen (bookmarks too) to resume
        from, also when the watch is cut."""
        for event in watch:
            obj = event.get("object") or {}
            self._version = _meta(obj).get("resourceVersion") or self._version
            if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                self._sink.put((event["type"], self.key, obj))

    def _list(self):
        data = self._kube.request("GET", self._path, deadline=self._deadline, stop=self._stopped)
        for item in data.get("items") or []:
            item.setdefault("apiVersion", self._rtype.api_version)
            item.setdefault("kind", self._rtype.kind)
            self._sink.put(("ADDED", self.key, item))
        return (data.get("metadata") or {}).get("resourceVersion")


def _stop_streams(streams, seconds=5.0):
    """Stop the watch threads without waiting for them.

    A stream stopped while still sending its watch request only notices once the response is open, so
    the ones left running are stopped again from a background thread until they end.
    """
    for stream in streams:
        stream.stop()
    if any(stream.is_alive() for stream in streams):
        threading.Thread(target=_stop_again, args=(streams, time.monotonic() + seconds), name="stop watches",
                         daemon=True).start()


def _stop_again(streams, deadline):
    streams = [stream for stream in streams if stream.is_alive()]
    while streams and time.monotonic() < deadline:
        time.sleep(0.1)
        for stream in streams:
            stream.stop()
        streams = [stream for stream in streams if stream.is_alive()]


# ---------------------------------------------------------------- the tracker

def _version(obj):
    return _meta(obj).get("resourceVersion")


def _event_time(event):
    return (event.get("lastTimestamp") or (event.get("series") or {}).get("lastObservedTime")
            or event.get("eventTime") or _meta(event).get("creationTimestamp") or "")


def _event_line(event):
    count = event.get("count") or (event.get("series") or {}).get("count") or 1
    return (f"  {_event_time(event)} {event.get('type', '')} {event.get('reason', '')}: "
            f"{(event.get('message') or '').strip()}" + (f" (x{count})" if count > 1 else ""))


class Tracker:
    """Waits until every blocking target is ready, reacting to watch events as they arrive.

    Raises ConvergeError (with ``failed_resource``, ``resources`` and ``progress`` details) on a failure
    that its fail mode does not absorb, on the no-activity timeout, or on the global timeout.
    """

    def __init__(self, api, targets, timeout=300, progress=None, rules=None):
        self._kube = Kube.of(api)
        self._rules = rules or ReadinessRules()
        self._mapper = ResourceMapper(self._kube)
        self._targets = targets
        self._timeout = timeout
        self._progress = progress or Progress()
        self._queue = queue.Queue()
        self._stores = {}
        self._streams = []
        self._start = time.monotonic()
        self._disconnected = {}  # stream key -> (since, the error that cut it)

    def run(self):
        """Track until done; returns ``{"resources": [...], "progress": [...]}``."""
        try:
            self._open_streams()
            self._loop()
        except ConvergeError as exc:
            exc.details.setdefault("resources", self._results())
            exc.details.setdefault("progress", self._progress.lines)
            raise
        finally:
            _stop_streams(self._streams)
        self._finish()
        return {"resources": self._results(), "progress": self._progress.lines}

    # -- streams

    def _resource(self, api_version, kind, where):
        rtype = self._mapper.find(api_version, kind)
        if rtype is None:
            raise ConvergeError(f"{where}: the cluster serves no kind {kind} in {api_version}")
        return rtype

    def _stream_keys(self):
        keys = {}
        for target in self._targets:
            rtype = self._resource(target.api_version, target.kind, target.ref)
            target.namespace = (target.namespace or "default") if rtype.namespaced else None
            keys[(target.api_version, target.kind, target.namespace)] = rtype
            if not target.namespace:
                continue
            keys.setdefault(EVENT_KEY + (target.namespace,), None)
            if (api_group(target.api_version), target.kind) in WORKLOAD_KINDS:
                keys.setdefault(POD_KEY + (target.namespace,), None)
            if target.kind == "Deployment":
                keys.setdefault(REPLICASET_KEY + (target.namespace,), None)
        return {key: rtype or self._resource(key[0], key[1], f"{key[1]} in {key[2]}")
                for key, rtype in keys.items()}

    def _discover(self):
        """The resource type of every stream, by stream key."""
        try:
            return self._stream_keys()
        except KubeApiError as exc:
            raise ConvergeError(f"API discovery at {self._kube.host} failed: {exc}") from None

    def _open_streams(self):
        for key, rtype in self._discover().items():
            self._stores[key] = _Store(index_events=key[:2] == EVENT_KEY)
            stream = _Stream(self._kube, rtype, key[2], key, self._queue, self._start + self._timeout)
            self._streams.append(stream)
            stream.start()
        synced = 0
        while synced < len(self._streams):
            remaining = self._start + self._timeout - time.monotonic()
            try:
                synced += self._handle(self._queue.get(timeout=max(remaining, 0)))
            except queue.Empty:
                raise self._timeout_error()
        for target in self._targets:
            self._live(target)
        self._progress.line(self._opening_line())

    def _opening_line(self):
        blocking = sum(target.blocking for target in self._targets)
        namespaces = sorted({target.namespace for target in self._targets if target.namespace})
        return (f"tracking {_count(len(self._targets), 'resource')} ({blocking} to wait for) in "
                f"{', '.join(namespaces) or 'the cluster'}, timeout {self._timeout}s")

    def _handle(self, message):
        """Apply one stream message to the stores; returns 1 for a finished initial list."""
        change, key, payload = message
        if change == "ERROR":
            raise ConvergeError(f"watching {key[1]} in {key[2] or 'the cluster'} failed: {payload}")
        if change == "SYNCED":
            return 1
        if change in ("DISCONNECTED", "CONNECTED"):
            self._connection_changed(change, key, payload)
            return 0
        if change == "RESET":
            self._stores[key].clear()
        else:
            self._stores[key].apply(change, payload)
        return 0

    def _connection_changed(self, change, key, error):
        """Say once when the watches lose the API server, and once when all are back."""
        if change == "DISCONNECTED":
            if not self._disconnected:
                self._progress.line(f"lost the API server at {self._kube.host} ({error}); reconnecting")
            self._disconnected[key] = (time.monotonic(), error)
        elif self._disconnected.pop(key, None) and not self._disconnected:
            self._progress.line(f"reconnected to the API server at {self._kube.host}; watching again")

    def _drain(self, seconds):
        try:
            self._handle(self._queue.get(timeout=max(seconds, 0.0)))
            while True:
                self._handle(self._queue.get_nowait())
        except queue.Empty:
            return

    # -- the loop

    def _waiting(self):
        return [target for target in self._targets if target.blocking and not target.finished]

    def _loop(self):
        next_summary = time.monotonic()
        self._evaluate(announce=False)
        ready = [f"{target.ref} ({target.decided_by})" for target in self._targets if target.state == "ready"]
        if ready:
            more = f" and {len(ready) - PENDING_SHOWN} more" if len(ready) > PENDING_SHOWN else ""
            self._progress.line(f"ready at once: {', '.join(ready[:PENDING_SHOWN])}{more}")
        while self._waiting():
            now = time.monotonic()
            if now >= next_summary:
                self._summary()
                next_summary = now + PROGRESS_EVERY
            deadline = self._start + self._timeout
            if now >= deadline:
                raise self._timeout_error()
            self._drain(min(deadline, next_summary, self._next_no_activity()) - now)
            self._evaluate()

    def _next_no_activity(self):
        return min((target.last_activity + target.options.no_activity_timeout
                    for target in self._targets if target.state == "pending"), default=float("inf"))

    def _evaluate(self, announce=True):
        for target in self._targets:
            if not target.finished:
                self._evaluate_target(target, time.monotonic(), announce)
        waiting = self._waiting()
        if waiting and all(target.state == "hoping" for target in waiting):
            for target in waiting:
                target.state, target.hope_used = "pending", True
                self._progress.line(f"{target.ref}: nothing else to wait for; its failure now fails the release")
            self._evaluate(announce)

    def _evaluate_target(self, target, now, announce):
        status, fingerprint = self._observe(target)
        if fingerprint != target.fingerprint or not target.last_activity:
            target.fingerprint, target.last_activity = fingerprint, now
        target.elapsed = now - self._start
        target.decided_by = status.rule
        if status.ready:
            target.state, target.reason = "ready", status.reason
            if announce:
                self._progress.line(f"{target.ref} ready after {target.elapsed:.1f}s ({status.reason}; "
                                    f"rule: {status.rule})")
        elif status.failure:
            self._failed(target, status.failure)
        elif now - target.last_activity >= target.options.no_activity_timeout:
            self._failed(target, Failure("NoActivity", f"no status change or event for "
                                                       f"{target.options.no_activity_timeout:g}s "
                                                       f"({NO_ACTIVITY_TIMEOUT}); last status: {status.reason}"))
        elif target.state == "pending":
            target.reason = status.reason

    def _observe(self, target):
        obj = self._live(target)
        if obj is None:
            return Status(False, "not found"), ()
        pods = self._pods(obj, target.namespace)
        status = resource_status(obj, pods, target.options.failures_allowed_per_replica, target.rule, target.ref)
        events = self._events(target.namespace, [obj] + pods)
        return status, (_version(obj), tuple(map(_version, pods)), len(events), tuple(map(_version, events[-1:])))

    def _live(self, target):
        """The live object of a target, or None; at first sight its annotations join the input's."""
        store = self._stores.get((target.api_version, target.kind, target.namespace))
        obj = store.objects.get(target.name) if store else None
        if obj is not None and not target.seen:
            target.seen = True
            annotations = {**(_meta(obj).get("annotations") or {}), **target.annotations}
            target.options = track_options(annotations, target.ref)
            target.rule = self._rules.for_object(api_group(target.api_version), target.kind, annotations, target.ref)
        return obj

    def _pods(self, obj, namespace):
        if obj.get("kind") == "Pod":
            return [obj]
        pods = self._stores.get(POD_KEY + (namespace,))
        if pods is None:
            return []
        uid = _meta(obj).get("uid")
        if obj.get("kind") == "Deployment":
            replicaset = current_replicaset(obj, self._stores[REPLICASET_KEY + (namespace,)].by_key(uid))
            owned = pods.by_key(_meta(replicaset).get("uid")) if replicaset else []
        else:
            owned = [pod for pod in pods.by_key(uid) if is_current_pod(obj, pod)]
        return sorted(owned, key=lambda pod: _meta(pod).get("name"))

    def _events(self, namespace, objs):
        store = self._stores.get(EVENT_KEY + (namespace,))
        if store is None:
            return []
        events = [event for obj in objs for event in store.by_key(_meta(obj).get("uid"))]
        return sorted(events, key=_event_time)

    def _failed(self, target, failure):
        if target.state == "hoping":
            return
        target.failure, target.reason = failure, failure.describe()
        mode = target.options.fail_mode
        if mode == IGNORE_AND_CONTINUE:
            target.state = "ignored"
            self._progress.line(f"{target.ref} failed, ignored ({FAIL_MODE}: {mode}): {target.explained}")
        elif mode == HOPE_UNTIL_END and not target.hope_used:
            target.state = "hoping"
            self._progress.line(f"{target.ref} failed, waiting for the others ({FAIL_MODE}: {mode}): "
                                f"{target.explained}")
        else:
            target.state = "failed"
            raise self._failure_error(target)

    # -- reporting

    def _summary(self):
        waiting = self._waiting()
        shown = ", ".join(f"{target.ref} ({target.reason}; rule: {target.decided_by})" if target.decided_by
                          else f"{target.ref} ({target.reason})" for target in waiting[:PENDING_SHOWN])
        more = f" and {len(waiting) - PENDING_SHOWN} more" if len(waiting) > PENDING_SHOWN else ""
        self._progress.line(f"waiting for {len(waiting)} of {sum(t.blocking for t in self._targets)}: "
                            f"{shown}{more}")

    def _event_section(self, ref, events):
        lines = [_event_line(event) for event in events[-EVENTS_SHOWN:]] or ["  (none)"]
        return [f"Recent events of {ref}:"] + lines

    def _failure_error(self, target):
        failure = target.failure
        first = f"{target.ref} failed: {target.explained}"
        self._progress.line(first)
        objs = [obj for obj in [self._live(target)] if obj]
        lines, events = [first], {}
        if failure.pod and target.kind != "Pod":
            pod = self._stores[POD_KEY + (target.namespace,)].objects.get(failure.pod)
            events[f"Pod/{target.namespace}/{failure.pod}"] = self._events(target.namespace, [pod] if pod else [])
        events[target.ref] = self._events(target.namespace, objs)
        for ref, found in events.items():
            lines += self._event_section(ref, found)
        details = {**target.result(), "reason": failure.reason, "message": failure.message, "pod": failure.pod,
                   "container": failure.container,
                   "events": {ref: [_event_line(e).strip() for e in found[-EVENTS_SHOWN:]]
                              for ref, found in events.items()}}
        return ConvergeError("\n".join(lines), failed_resource=details)

    def _timeout_error(self):
        waiting = self._waiting() or [target for target in self._targets if not target.finished]
        shown = "; ".join(f"{target.ref}: {target.explained}" for target in waiting[:PENDING_SHOWN])
        more = f"; and {len(waiting) - PENDING_SHOWN} more" if len(waiting) > PENDING_SHOWN else ""
        first = f"timed out after {self._timeout}s waiting for {_count(len(waiting), 'resource')}: {shown}{more}"
        self._progress.line(first)
        lines = [first]
        if self._disconnected:
            since, error = min(self._disconnected.values(), key=lambda entry: entry[0])
            lines.append(f"The API server at {self._kube.host} could not be watched for the last "
                         f"{time.monotonic() - since:.0f}s: {error}")
        for target in waiting[:3]:
            obj = self._live(target)
            if obj:
                lines += self._event_section(target.ref, self._events(target.namespace,
                                                                      [obj] + self._pods(obj, target.namespace)))
        details = dict(waiting[0].result(), reason="Timeout", message=first) if waiting else None
        return ConvergeError("\n".join(lines), failed_resource=details)

    def _finish(self):
        for target in self._targets:
            if not target.finished:
                target.elapsed = time.monotonic() - self._start
                target.reason = f"not waited for ({TERMINATION_MODE}: {NON_BLOCKING}): {target.reason}"
        ready = sum(target.state == "ready" for target in self._targets)
        self._progress.line(f"{ready} of {_count(len(self._targets), 'resource')} ready after "
                            f"{time.monotonic() - self._start:.1f}s")

    def _results(self):
        return [target.result() for target in self._targets]


def track(api, resources, timeout=300, namespace=None, progress_file=None, rules=None):
    """Wait until the resources are ready; see Tracker. ``namespace`` is for inputs that name none;
    ``rules`` (ReadinessRules) the readiness rules per group and kind."""
    progress = Progress(progress_file)
    try:
        return Tracker(api, targets_from(resources, namespace, rules), timeout, progress, rules).run()
    finally:
        progress.close()


class Waiter:
    """Tracks one set of resources after another (werf.io/weight groups, hooks), each with the same timeout
    and progress file; keeps every progress line in ``progress``."""

    def __init__(self, api, timeout=300, progress_file=None, rules=None):
        self.kube = Kube.of(api)
        self.timeout = timeout
        self.progress_file = progress_file
        self.rules = rules
        self.progress = []

    def wait(self, resources):
        """Track the resources until ready (see Tracker); returns their results."""
        try:
            result = track(self.kube, resources, self.timeout, progress_file=self.progress_file, rules=self.rules)
        except ConvergeError as exc:
            self.progress += exc.details.get("progress") or []
            raise
        self.progress += result["progress"]
        return result["resources"]
