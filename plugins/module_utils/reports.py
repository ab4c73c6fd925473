# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy report of a converge (werf's --save-deploy-report), from the results the role registered."""

from __future__ import annotations

DEPLOY_REPORT_FORMAT = "berth.converge/deploy-report.v1"
SUCCEEDED, FAILED = "succeeded", "failed"


def _result(registered):
    """A registered module result, or {} when the task was skipped or never ran."""
    return registered if isinstance(registered, dict) and not registered.get("skipped") else {}


def image_entries(digests, built):
    """One entry per image of the commit: name, reference, and whether this converge built it."""
    built_by_name = {i.get("name"): i for i in _result(built).get("images") or []}
    return [{"name": image.get("name"), "ref": image.get("ref"),
             "built": bool((built_by_name.get(image.get("name")) or {}).get("changed"))}
            for image in _result(digests).get("images") or []]


def resource_entries(applied):
    """One entry per object of the release: what the converge did to it (no content, no diff)."""
    keys = ("apiVersion", "kind", "namespace", "name", "action", "changed")
    return [{key: resource.get(key) for key in keys} for resource in _result(applied).get("resources") or []]


def first_error(*registered):
    """The message of the first failed result among the tasks' results, in converge order."""
    return next((r.get("msg") for r in map(_result, registered) if r.get("failed")), None)


def deploy_report(status, *, digests=None, built=None, rendered=None, applied=None, tracked=None, rolled_back=None,
                  check_mode=False, plan_checked=None):
    """The report as a dict; every part a failed converge did not reach is empty or null. The error is the
    message of the first task that failed."""
    if status not in (SUCCEEDED, FAILED):
        raise ValueError(f"status must be {SUCCEEDED} or {FAILED}, got {status!r}")
    error = first_error(digests, rendered, plan_checked, built, applied, tracked) if status == FAILED else None
    rendered, applied, rolled_back = _result(rendered), _result(applied), _result(rolled_back)
    commit = _result(digests).get("commit") or {}
    return {
        "format": DEPLOY_REPORT_FORMAT,
        "status": status,
        "check_mode": bool(check_mode),
        "release": rendered.get("release"),
        "namespace": rendered.get("namespace"),
        "revision": applied.get("revision"),
        "commit": commit.get("hash"),
        "images": image_entries(digests, built),
        "resources": resource_entries(applied),
        "hooks": [{key: hook.get(key) for key in ("kind", "name", "event", "result")}
                  for hook in applied.get("hooks") or []],
        "error": error,
        "rolled_back_to": rolled_back.get("rolled_back_to"),
    }
