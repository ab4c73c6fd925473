# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore an earlier revision of a release, recorded as a new revision."""

from __future__ import annotations

from urllib.parse import quote

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import hooks
from ansible_collections.berth.converge.plugins.module_utils.kube.release import (
    ApplyOptions,
    ReleaseLock,
    ReleaseRequest,
    converge,
    history,
    last_successful,
    lock_result,
    recorded_chart,
    recorded_metadata,
)
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import Kube


def rollback_target(revisions, revision=None):
    """The revision to restore: `revision` when given, else the newest successful one before the latest."""
    if not revisions:
        raise ConvergeError("the release has no revisions to roll back")
    latest = revisions[-1]
    if revision is not None:
        for candidate in revisions:
            if candidate.version == revision:
                return candidate
        raise ConvergeError(f"release {latest.release} has no revision {revision} "
                            f"(revisions: {', '.join(str(r.version) for r in revisions)})")
    target = last_successful(revisions, before=latest.version)
    if target:
        return target
    raise ConvergeError(f"release {latest.release} has no successful revision before revision {latest.version} "
                        "to roll back to")


def rollback(api, release, namespace, revision=None, options=None):
    """Apply the manifests of the target revision, pruning what later revisions added; returns the module
    result of release_rollback (that of release_apply plus `rolled_back_from` and `rolled_back_to`)."""
    options = options or ApplyOptions()
    options.create_namespace = False
    kube = Kube.of(api)
    if kube.get_or_none(f"/api/v1/namespaces/{quote(namespace, safe='')}") is None:
        raise ConvergeError(f"release {release} has no revisions: namespace {namespace} does not exist")
    if options.check_mode:
        return _rollback(kube, release, namespace, revision, options)
    with ReleaseLock(kube, release, namespace, timeout=options.lock_timeout) as lock:
        result = _rollback(kube, release, namespace, revision, options)
    result["lock"] = lock_result(lock, result["warnings"])
    return result


def _rollback(kube, release, namespace, revision, options):
    revisions = history(kube, release, namespace)
    if not revisions:
        raise ConvergeError(f"release {release} has no revisions in namespace {namespace}")
    target, current = rollback_target(revisions, revision), revisions[-1]
    # Helm's description of a rollback; the chart and the object metadata of the target come back with it.
    request = ReleaseRequest(target.manifests, target.payload.get("images"), target.payload.get("commit"),
                             description=f"Rollback to {target.version}",
                             hook_phase=hooks.ROLLBACK, chart=recorded_chart(target),
                             metadata=recorded_metadata(target), werf=target.payload.get("werf"))
    result = converge(kube, release, namespace, request, options, revisions=revisions)
    result.update(rolled_back_from=current.version, rolled_back_to=target.version)
    return result
