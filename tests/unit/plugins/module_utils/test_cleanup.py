# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cleanup logic that needs no registry or cluster: werf.yaml's cleanup section, werf's reference selection and
imagesPerReference, images named by Kubernetes objects, the shared-digest rule."""

from __future__ import annotations

import pytest

from ansible_collections.berth.converge.plugins.module_utils.cleanup import (
    DEFAULT_KEEP_POLICIES,
    Cleanup,
    GitReference,
    TagState,
    _parse_time,
    _pick,
    container_images,
    references_to_scan,
)
from ansible_collections.berth.converge.plugins.module_utils.config import Limit, load_config, parse_duration
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

META = "project: shop\nconfigVersion: 1\n"
NOW = 1_000_000_000
H, D = 3600, 86400


def cleanup_of(text):
    return load_config(META + text).cleanup


def test_absent_section_gives_werf_defaults():
    cleanup = cleanup_of("")
    assert cleanup.keep_policies == () and cleanup.keep_images_built_within_last_n_hours == 2
    assert not (cleanup.disable or cleanup.disable_kubernetes_based_policy or cleanup.disable_git_history_based_policy)


def test_policies_are_parsed():
    cleanup = cleanup_of("""cleanup:
  keepImagesBuiltWithinLastNHours: 5
  disableBuiltWithinLastNHoursPolicy: true
  keepPolicies:
  - references: {tag: v1.0}
  - references: {branch: /^feat\\/.*/, limit: {last: 3, in: 72h, operator: Or}}
    imagesPerReference: {last: -1, in: 1h30m}
""")
    first, second = cleanup.keep_policies
    assert (first.kind, first.regex.match("v1.0") is not None, first.regex.match("v1x0")) == ("tag", True, None)
    assert first.limit is None and first.images_per_reference == Limit()
    assert second.regex.match("feat/x") and not second.regex.match("xfeat/x")
    assert second.limit == Limit(last=3, within=72 * H, operator="Or")
    assert second.images_per_reference == Limit(last=-1, within=1.5 * H, operator="And")
    assert cleanup.keep_images_built_within_last_n_hours == 5 and cleanup.disable_built_within_last_n_hours_policy


@pytest.mark.parametrize("text, message", [
    ("cleanup: {keepPolicy: []}", "werf.yaml:3: cleanup: unknown key 'keepPolicy'"),
    ("cleanup: {keepPolicies: [{references: {tag: a, branch: b}}]}", "exactly one of 'tag' or 'branch'"),
    ("cleanup: {keepPolicies: [{imagesPerReference: {last: 1}}]}", "cleanup.keepPolicies[0].references is required"),
    ("cleanup: {keepPolicies: [{references: {tag: /(/}}]}", "references.tag: invalid regular expression"),
    ("cleanup: {keepPolicies: [{references: {branch: x, limit: {in: 7d}}}]}",
     "cleanup.keepPolicies[0].references.limit.in: '7d' is not a duration"),
    ("cleanup: {keepPolicies: [{references: {branch: x}, imagesPerReference: {operator: and}}]}",
     "imagesPerReference.operator must be And or Or"),
    ("cleanup: {keepPolicies: [{references: {branch: x}, imagesPerReference: {last: two}}]}",
     "imagesPerReference.last must be a whole number"),
    ("cleanup: {keepImagesBuiltWithinLastNHours: -1}", "keepImagesBuiltWithinLastNHours must be a whole number"),
    ("cleanup: {disable: yes please}", "cleanup.disable must be true or false"),
])
def test_bad_cleanup_sections_name_the_field(text, message):
    with pytest.raises(ConvergeError) as caught:
        cleanup_of(text)
    assert message in str(caught.value)


def test_go_durations():
    assert parse_duration("168h") == 168 * H and parse_duration("1h30m") == 5400 and parse_duration("0") == 0
    assert parse_duration("1.5h") == 5400 and parse_duration("250ms") == 0.25
    for bad in ("", "7d", "h", "1 h", True, "-1h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def refs(*items):
    return [GitReference(kind, name, name + "-sha", NOW - age) for kind, name, age in items]


def test_default_policies_select_as_werf():
    found = refs(*[("tag", f"v{i}", i * D) for i in range(12)],
                 ("branch", "main", 30 * D), ("branch", "feature/a", 1 * D), ("branch", "feature/old", 8 * D),
                 *[("branch", f"wip/{i}", H * (i + 1)) for i in range(10)])
    chosen = {(ref.kind, ref.name): limit for ref, limit, _policy in references_to_scan(found, DEFAULT_KEEP_POLICIES, NOW)}
    assert sorted(name for kind, name in chosen if kind == "tag") == sorted(f"v{i}" for i in range(10))
    branches = {name: limit for (kind, name), limit in chosen.items() if kind == "branch"}
    # the 10 most recent branches active within a week (wip/* and feature/a: 11 candidates), plus main by name
    assert "feature/old" not in branches and "feature/a" not in branches
    assert branches["main"] == Limit(last=10)                      # the main-branch policy comes last and wins
    assert branches["wip/0"] == Limit(last=2, within=7 * D)


def test_reference_limit_or_takes_either():
    from ansible_collections.berth.converge.plugins.module_utils.cleanup import _policy

    policy = _policy("branch", "/.*/", Limit(last=1, within=10 * D, operator="Or"))
    found = refs(("branch", "a", 1 * D), ("branch", "b", 5 * D), ("branch", "c", 20 * D))
    assert [ref.name for ref, _l, _p in references_to_scan(found, [policy], NOW)] == ["a", "b"]
    policy = _policy("branch", "/.*/", Limit(last=1, within=10 * D))
    assert [ref.name for ref, _l, _p in references_to_scan(found, [policy], NOW)] == ["a"]


def test_images_per_reference():
    reached = [("t1", "c1", NOW - H), ("t2", "c2", NOW - 2 * D), ("t3", "c3", NOW - 5 * D), ("t4", "c4", NOW - 9 * D)]
    assert [t for t, _c, _w in _pick(reached, Limit(), NOW)] == ["t1"]                     # werf's default: last 1
    assert [t for t, _c, _w in _pick(reached, Limit(last=0), NOW)] == []
    assert [t for t, _c, _w in _pick(reached, Limit(last=-1), NOW)] == ["t1", "t2", "t3", "t4"]
    assert [t for t, _c, _w in _pick(reached, Limit(last=3, within=3 * D), NOW)] == ["t1", "t2"]
    assert [t for t, _c, _w in _pick(reached, Limit(last=1, within=6 * D, operator="Or"), NOW)] == ["t1", "t2", "t3"]


def test_container_images_anywhere_in_an_object():
    cronjob = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "initContainers": [{"name": "i", "image": "r/a:1"}], "containers": [{"name": "c", "image": "r/b:2"}]}}}}}}
    pod = {"kind": "Pod", "spec": {"containers": [{"image": "r/c:3"}], "ephemeralContainers": [{"image": "r/d:4"}]},
           "status": {"containerStatuses": [{"imageID": "docker-pullable://r/c@sha256:" + "1" * 64},
                                            {"imageID": ""}]}}
    assert container_images(cronjob) == ["r/a:1", "r/b:2"]
    assert container_images(pod) == ["r/c:3", "r/d:4", "r/c@sha256:" + "1" * 64]
    assert container_images({"kind": "ConfigMap", "data": {"image": "not/a:container"}}) == []


def test_a_digest_a_kept_tag_points_to_is_never_deleted():
    states = [TagState("app", "r/app", "a", digest="sha256:1", reasons=["Git branch main"]),
              TagState("app", "r/app", "b", digest="sha256:1"),
              TagState("app", "r/app", "c", digest="sha256:2"),
              TagState("app", "r/other", "d", digest="sha256:1")]
    Cleanup._keep_shared_digests(states)
    assert states[1].reasons == ["same manifest sha256:1 as kept tag a"]
    assert states[2].reasons == [] and states[3].reasons == []     # another repository: its own manifest


def test_image_config_times():
    assert _parse_time("2001-09-09T01:46:40Z") == NOW
    assert _parse_time("2001-09-09T01:46:40.5+00:00") == NOW + 0.5
    assert _parse_time("2001-09-09T03:46:40+02:00") == NOW
    assert _parse_time(None) is None and _parse_time("yesterday") is None
