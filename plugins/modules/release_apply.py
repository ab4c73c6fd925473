#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release_apply
short_description: Apply manifests as one release with server-side apply, prune, and record a revision
version_added: 0.1.0
description:
  - Applies a whole set of Kubernetes objects (such as the C(manifests) of M(berth.converge.chart_render)) as
    one release in a namespace, with server-side apply (field manager C(berth-converge)), in one module call.
  - "Before the first write the whole set is validated by a server-side dry run: when the API server rejects
    any object, nothing is applied and the error names every rejected object with the server's message.
    Objects whose kind comes from a CustomResourceDefinition of the same set, or whose namespace is created by
    a Namespace of the set, can only be dry-run once that CRD or Namespace exists: they are validated right
    after those are applied and before anything else is written."
  - "Each object gets an action: C(create) (not live), C(update) (applying it changes the live object),
    C(unchanged) (the dry-run result equals the live object, apart from status and the metadata the server
    maintains; such objects are not written at all) or C(delete) (prune: recorded in the release since its
    last successful revision, no longer in the set)."
  - Objects are applied in order, each group concurrently; CustomResourceDefinitions first (waiting until
    they are Established), then the pre hooks, then Namespaces, then the other objects in groups of equal
    C(werf.io/weight) annotation (default 0), lowest first. As werf deploys, a group is tracked until it is
    ready (as M(berth.converge.release_track) tracks) before a later group with changes is applied, so a
    migration Job of weight -1 completes before the Deployments of weight 0 change. The last group is not
    waited for here; M(berth.converge.release_track) does that.
  - Pruned objects are deleted after the new set is applied, with background propagation. CustomResourceDefinitions
    and the release namespace itself are never pruned (a warning says so), nor objects annotated
    C(helm.sh/resource-policy=keep).
  - "werf's deploy annotations are honoured: C(werf.io/deploy-dependency-<id>), C(werf.io/delete-dependency-<id>),
    C(<id>.external-dependency.werf.io/resource) (and C(/namespace)), C(werf.io/resource-policy),
    C(werf.io/delete-policy), C(werf.io/delete-propagation), C(werf.io/ownership), C(werf.io/deploy-on),
    C(werf.io/replicas-on-creation), C(werf.io/sensitive-paths) and C(werf.io/sensitive); see docs/annotations.md.
    A bad value fails the run naming the object, before anything is written; an unknown C(werf.io/) annotation is
    a warning naming it and the object."
  - "Helm hooks: manifests annotated C(helm.sh/hook) are not resources of the release; they are reported in
    RV(hooks), not in RV(resources), and never pruned. The first revision runs the C(pre-install) and
    C(post-install) hooks, later revisions C(pre-upgrade) and C(post-upgrade); pre hooks run before the
    release's resources (CustomResourceDefinitions aside) are applied, post hooks once every resource of the
    release is ready. Hooks run one at a time in Helm's order: C(helm.sh/hook-weight) ascending, then name,
    then kind. Each is tracked until it completes (Jobs, Pods) or is ready (anything else), honouring the werf
    annotations as M(berth.converge.release_track) does."
  - "C(helm.sh/hook-delete-policy): C(before-hook-creation) (the default when none is given, as in Helm)
    deletes the hook left by an earlier run before creating it again; C(hook-succeeded) deletes the hooks of an
    event once all of them succeeded; C(hook-failed) deletes a hook that failed. CustomResourceDefinitions are
    never deleted."
  - "A hook that fails stops the run at once: nothing more is applied, the revision is marked C(failed), and
    the error names the hook, the reason of its failure (for a Job, such as C(BackoffLimitExceeded)), the last
    lines of its pod's log (or why there are none) and its last Events; RV(failed_hook) has the details."
  - Hooks run only when a revision is recorded, that is when a resource or a hook changed; a converge that
    changes nothing runs none. With O(state=absent) the C(pre-delete) hooks of the latest revision run before
    the deletion and its C(post-delete) hooks after it. Manifests whose C(helm.sh/hook) names no Helm event
    are skipped with a warning, as Helm skips them.
  - "Every object of the release gets Helm's ownership metadata, as Helm and werf write it: the label
    C(app.kubernetes.io/managed-by=Helm) and the annotations C(meta.helm.sh/release-name) and
    C(meta.helm.sh/release-namespace); hooks do not, as in Helm. Every object, hooks included, gets werf's
    annotations C(werf.io/version) (C(berth.converge/<version>)), C(project.werf.io/name) (O(project)) and
    C(project.werf.io/env) (O(env), when given), and O(add_labels) and O(add_annotations)."
  - "An object that exists but was not in the release before is refused, as Helm and werf refuse it
    (C(... exists and cannot be imported into the current release: invalid ownership metadata; ...)), unless
    its ownership metadata names this release; an object annotated as belonging to another release is never
    taken over. O(force_adoption) adopts both, as werf's C(--force-adoption). Nothing is applied when any
    object is refused."
  - "Fields that Helm or werf wrote (field managers C(helm) and C(werf...)) are taken over, so a release
    installed or upgraded with C(helm) converges without conflicts; conflicts with any other field manager
    fail unless O(force_conflicts)."
  - Namespaced objects without a namespace get O(namespace); cluster-scoped objects never get one.
  - "Each change is recorded as a revision of the release, stored as Helm 3 stores it: a Secret
    C(sh.helm.release.v1.<release>.v<N>) of type C(helm.sh/release.v1) in O(namespace), labels C(owner=helm),
    C(name), C(status), C(version), so C(helm history), C(helm rollback), C(helm upgrade) and C(helm
    uninstall) work on it, and revisions Helm or werf recorded continue. The status is C(pending-install),
    C(pending-upgrade) or C(pending-rollback) while applying, then C(deployed) or C(failed); the revision it
    replaces becomes C(superseded). O(images), O(commit), the per-object actions and werf's project and env
    are kept in a field Helm ignores. No revision is recorded when nothing changes. Revisions recorded by
    berth.converge 0.1 (C(berth.release.v1.*)) are read, and converted to Helm's format by the next
    revision recorded."
  - "O(crds) (the C(crds/) of the chart, as M(berth.converge.chart_render) returns them) are created, first,
    when they do not exist, as Helm and werf create them; existing ones are left as they are, whoever made
    them. They are not objects of the release: no ownership metadata, never pruned, never deleted."
  - A C(coordination.k8s.io/v1) Lease C(berth-converge.<release>) in O(namespace) keeps two converges of the
    same release from interleaving; the second waits for it up to O(lock_timeout) seconds.
  - Secret values never reach the output; in diffs they are replaced by C(<hidden:...>), a keyed hash that is
    equal for equal values within one run, so a changed value is still visible as a changed mask.
author:
  - berth.converge contributors (!UNKNOWN)
extends_documentation_fragment:
  - berth.converge.attributes
  - berth.converge.kubernetes
  - berth.converge.readiness
attributes:
  check_mode:
    support: full
    details:
      - The whole set, with the hooks that would run, is validated with a server-side dry run and the actions
        are reported; nothing is written, no hook runs, no lock is taken and no revision is recorded.
  diff_mode:
    support: full
    details:
      - Each item of RV(resources) gets C(diff) with C(before) and C(after), and RV(diff) lists the changes for
        Ansible's diff display. Secret values are masked.
options:
  state:
    description:
      - V(present) applies O(manifests) as the next revision of the release.
      - V(absent) dismisses the release, as C(werf dismiss) does. It runs the C(pre-delete) hooks of the latest
        revision, deletes every object its revisions record, runs the C(post-delete) hooks, then deletes the
        revision records. CustomResourceDefinitions, the namespace, objects annotated
        C(helm.sh/resource-policy=keep) and the hooks themselves (as in Helm) stay.
    type: str
    choices: [present, absent]
    default: present
  manifests:
    description:
      - The objects of the release, full Kubernetes objects (C(apiVersion), C(kind), C(metadata), ...), in apply
        order, as M(berth.converge.chart_render) returns them. Required with O(state=present).
    type: list
    elements: dict
  release:
    description:
      - Name of the release.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the release; its revisions and lock live there, and namespaced objects without a namespace
        are applied there.
    type: str
    required: true
  create_namespace:
    description:
      - Create O(namespace) when it does not exist (the API server's dry run validates namespaced objects
        only in an existing namespace). When the run then fails before recording a revision, the namespace
        is deleted again, and the run waits (at most O(timeout)) until it is gone.
    type: bool
    default: true
  force_conflicts:
    description:
      - Take over fields that another field manager owns (server-side apply C(force)), as werf always does, so
        by-hand drift of what the chart sets (C(kubectl scale), C(kubectl patch), C(kubectl edit), client-side
        C(kubectl apply)) is reset. With C(false), such conflicts fail the validation, naming the fields and
        their managers.
      - Before applying an object, the fields of the C(kubectl-edit) and C(helm) field managers (by-hand edits;
        earlier deploys by werf 2 or Helm) and of older werf (C(werf*)) become ours, as werf does, so the apply
        removes those the chart does not set; other managers keep the fields the chart does not set (a
        controller's, or keys added with C(kubectl patch), C(kubectl annotate) or client-side C(kubectl apply)).
    type: bool
    default: true
  prune:
    description:
      - Delete the objects recorded in the release that are no longer in O(manifests).
    type: bool
    default: true
  concurrency:
    description:
      - How many API requests to run at once.
    type: int
    default: 8
  lock_timeout:
    description:
      - Seconds to wait for another converge of the same release to finish before failing with who holds the
        lock and since when.
    type: int
    default: 300
  images:
    description:
      - The images of the release, recorded in the revision (see M(berth.converge.release_info)); for example the
        C(images) of M(berth.converge.image_digest).
    type: list
    elements: dict
    default: []
  commit:
    description:
      - The commit of the release (C(hash), C(date), C(unix)), recorded in the revision.
    type: dict
  crds:
    description:
      - CustomResourceDefinitions of the chart's C(crds/) directories (M(berth.converge.chart_render)'s
        C(crds)); created when absent, never updated, owned or deleted.
    type: list
    elements: dict
    default: []
  chart:
    description:
      - C(name), C(version) and C(appVersion) of the chart (M(berth.converge.chart_render)'s C(chart)),
        recorded for C(helm history) and C(helm list). Default name is O(release), version C(0.0.0).
    type: dict
  project:
    description:
      - The werf project, written as annotation C(project.werf.io/name) on every object, as werf does.
    type: str
  env:
    description:
      - The werf environment, written as annotation C(project.werf.io/env) on every object, as werf does;
        not written when empty.
    type: str
  add_labels:
    description:
      - Labels added to every object, hooks included, as werf's C(--add-label). They win over the chart's
        labels; C(app.kubernetes.io/managed-by) stays C(Helm) on the objects of the release.
    type: dict
    default: {}
  add_annotations:
    description:
      - Annotations added to every object, hooks included, as werf's C(--add-annotation). They win over the
        chart's annotations, but not over Helm's ownership annotations.
    type: dict
    default: {}
  force_adoption:
    description:
      - Adopt existing objects whose ownership metadata does not name this release, even those of another
        release, as werf's C(--force-adoption).
    type: bool
    default: false
  record_live:
    description:
      - Give each item of RV(resources) C(live), the fingerprint of the live object as read for the plan (see
        M(berth.converge.converge_plan)).
    type: bool
    default: false
  plan:
    description:
      - A saved plan (the C(plan) of M(berth.converge.converge_plan) with O(berth.converge.converge_plan#module:state=check)).
        Under the release lock, right after the server-side dry run and before anything is written, the
        per-resource actions, the live objects, the hooks and the revision are compared with the plan; any
        difference fails the run, naming it, and nothing is written (see docs/plans.md).
    type: dict
  timeout:
    description:
      - Seconds to wait for each hook to complete, for each C(werf.io/weight) group to be ready before the next
        one is applied, and for the whole release to be ready before its post hooks run.
      - Also how long each request to the API server is retried while the server is unreachable or answers with
        a transient error (connection refused or reset, 429, 500, 502, 503, 504, etcd leader change).
    type: int
    default: 300
  progress_file:
    description:
      - File to append the progress lines of those waits to (created if missing), as
        M(berth.converge.release_track) does. Falls back to E(BERTH_PROGRESS_FILE).
    type: path
requirements:
  - kubernetes (Python client) >= 28.1
  - urllib3
  - PyYAML >= 6.0
seealso:
  - module: berth.converge.chart_render
  - module: berth.converge.release_track
  - module: berth.converge.release_rollback
  - module: berth.converge.release_info
"""

EXAMPLES = r"""
- name: Apply the rendered chart as release shop-production
  berth.converge.release_apply:
    manifests: "{{ rendered.manifests }}"
    release: "{{ rendered.release }}"
    namespace: "{{ rendered.namespace }}"
    images: "{{ digests.images }}"
    commit: "{{ digests.commit }}"
  register: applied

- name: One line per resource, changed or ok
  ansible.builtin.debug:
    msg: "{{ item.kind }} {{ item.name }}: {{ item.action }}"
  loop: "{{ applied.resources }}"
  loop_control:
    label: "{{ item.kind }}/{{ item.name }}"
  changed_when: item.changed

- name: What would change (server-side dry run, with masked Secret values)
  berth.converge.release_apply:
    manifests: "{{ rendered.manifests }}"
    release: shop-production
    namespace: shop-production
  check_mode: true
  diff: true
"""

RETURN = r"""
resources:
  description: One result per object of O(manifests) (hooks aside), in order, then one per pruned object.
  returned: always
  type: list
  elements: dict
  contains:
    apiVersion:
      description: API version of the object.
      type: str
      sample: apps/v1
    kind:
      description: Kind of the object.
      type: str
      sample: Deployment
    namespace:
      description: Namespace of the object; null for cluster-scoped objects.
      type: str
      sample: shop-production
    name:
      description: Name of the object.
      type: str
      sample: backend
    action:
      description: C(create), C(update), C(unchanged) or C(delete). An object that C(werf.io/delete-policy=succeeded)
        deleted once it was ready is C(delete); one that C(werf.io/resource-policy=skip-create) kept from being
        created is not listed.
      type: str
      sample: update
    changed:
      description: Whether the action changes the cluster (any action but C(unchanged)).
      type: bool
      sample: true
    live:
      description:
        - With O(record_live), C(uid), C(resourceVersion) and C(content) (a digest; null for Secrets) of the
          object as read before the dry run; null where it does not exist.
      type: dict
      returned: with O(record_live)
    diff:
      description:
        - In diff mode, the object before and after, without status and server-maintained metadata, Secret
          values masked; null where the object does not exist.
      type: dict
      returned: in diff mode
      sample: {"before": {"data": {"greeting": "hello"}}, "after": {"data": {"greeting": "hi"}}}
hooks:
  description:
    - The hooks of the events this run executes, in the order they run (pre hooks, then post hooks); empty when
      no revision is recorded. In check mode, the hooks that would run.
  returned: always
  type: list
  elements: dict
  contains:
    apiVersion:
      description: API version of the hook.
      type: str
      sample: batch/v1
    kind:
      description: Kind of the hook.
      type: str
      sample: Job
    namespace:
      description: Namespace of the hook; null for cluster-scoped hooks.
      type: str
      sample: shop-production
    name:
      description: Name of the hook.
      type: str
      sample: migrate
    event:
      description: The event it runs for, such as C(pre-upgrade).
      type: str
      sample: pre-upgrade
    weight:
      description: Its C(helm.sh/hook-weight).
      type: int
      sample: -5
    delete_policies:
      description: Its delete policies in effect.
      type: list
      elements: str
      sample: [before-hook-creation, hook-succeeded]
    result:
      description: C(succeeded), C(failed) or, in check mode, C(would run).
      type: str
      sample: succeeded
    reason:
      description: Its last status (C(complete) for a Job), or why it failed.
      type: str
      sample: complete
    elapsed:
      description: Seconds it took from its creation to its completion or failure; null in check mode.
      type: float
      sample: 3.2
    deleted:
      description: Whether its delete policy deleted it.
      type: bool
      sample: true
failed_hook:
  description: The hook that failed, with the reason, message, pod, container, log lines and Events.
  returned: when a hook failed
  type: dict
progress:
  description: Timestamped progress lines of the waits for hooks and C(werf.io/weight) groups.
  returned: when something was waited for
  type: list
  elements: str
revision:
  description: The revision recorded by this run, else the latest existing one; null for a release without
    revisions. In check mode, the revision a run would record.
  returned: always
  type: int
  sample: 4
lock:
  description: The release lock, and whether this run had to wait for another converge to release it.
  returned: when not in check mode
  type: dict
  contains:
    name:
      description: Name of the Lease.
      type: str
      sample: berth-converge.shop-production
    waited:
      description: Seconds spent waiting for the lock (0 when it was free).
      type: float
      sample: 2.5
    waited_for:
      description: Holder identity (C(host/pid/random)) of the converge this run waited for, else null.
      type: str
      sample: ci-runner-3/4242/9f1c2e7a
diff:
  description: In diff mode, one entry per changed object, for Ansible's diff display (YAML text).
  returned: in diff mode
  type: list
  elements: dict
"""

from ansible.module_utils.basic import env_fallback

from ansible_collections.berth.converge.plugins.module_utils.common_args import (
    KUBE_ARGS, KUBE_ENV_FALLBACKS, READINESS_ARGS, with_env_fallbacks)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.apply import ObjectMetadata
from ansible_collections.berth.converge.plugins.module_utils.kube.client import api_client
from ansible_collections.berth.converge.plugins.module_utils.kube.readiness import ReadinessRules
from ansible_collections.berth.converge.plugins.module_utils.kube.hooks import INSTALL_OR_UPGRADE
from ansible_collections.berth.converge.plugins.module_utils.kube.release import (
    WERF_VERSION, ApplyOptions, ReleaseRequest, apply_release, dismiss_release)
from ansible_collections.berth.converge.plugins.module_utils.requirements import KUBE_LIBRARIES, check_libraries
from ansible_collections.berth.converge.plugins.module_utils.secret_data import Manifests, SecretDataModule
from ansible_collections.berth.converge.plugins.module_utils.validation import validate_module_params


def main():
    module = SecretDataModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            manifests=dict(type="list", elements="dict", no_log=True),  # Secrets; shown masked
            release=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            create_namespace=dict(type="bool", default=True),
            force_conflicts=dict(type="bool", default=True),
            prune=dict(type="bool", default=True),
            concurrency=dict(type="int", default=8),
            lock_timeout=dict(type="int", default=300),
            images=dict(type="list", elements="dict", default=[]),
            commit=dict(type="dict"),
            timeout=dict(type="int", default=300),
            progress_file=dict(type="path", fallback=(env_fallback, ["BERTH_PROGRESS_FILE"])),
            crds=dict(type="list", elements="dict", default=[]),
            chart=dict(type="dict"),
            project=dict(type="str"),
            env=dict(type="str"),
            add_labels=dict(type="dict", default={}),
            add_annotations=dict(type="dict", default={}),
            force_adoption=dict(type="bool", default=False),
            record_live=dict(type="bool", default=False),
            plan=dict(type="dict"),
            **READINESS_ARGS,
            **with_env_fallbacks(KUBE_ARGS, KUBE_ENV_FALLBACKS),
        ),
        required_if=[("state", "present", ["manifests"])],
        secret_data={"manifests": Manifests},
        supports_check_mode=True,
    )
    validate_module_params(module)
    check_libraries(module, *KUBE_LIBRARIES)
    p = module.params
    options = ApplyOptions(force_conflicts=p["force_conflicts"], prune=p["prune"], concurrency=p["concurrency"],
                           lock_timeout=p["lock_timeout"], create_namespace=p["create_namespace"],
                           check_mode=module.check_mode, diff=module._diff, timeout=p["timeout"],
                           progress_file=p["progress_file"], force_adoption=p["force_adoption"],
                           record_live=p["record_live"], plan=p["plan"])
    try:
        options.readiness_rules = ReadinessRules(p["readiness_rules"])
        metadata = ObjectMetadata.werf(p["project"], p["env"], WERF_VERSION, p["add_labels"], p["add_annotations"])
        request = ReleaseRequest(p["manifests"] or [], images=p["images"], commit=p["commit"],
                                 hook_phase=INSTALL_OR_UPGRADE, crds=p["crds"], chart=p["chart"], metadata=metadata,
                                 werf={"project": p["project"], "env": p["env"], "version": WERF_VERSION})
        if p["state"] == "absent":
            result = dismiss_release(api_client(p, p["timeout"]), p["release"], p["namespace"], options)
        else:
            result = apply_release(api_client(p, p["timeout"]), p["release"], p["namespace"], request, options)
    except ConvergeError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
