#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release_track
short_description: Wait until a release's resources are ready, failing fast with the reason
version_added: 0.1.0
description:
  - Watches (never polls) the given resources until every one is ready, as werf's tracking does.
    One watch per kind and namespace serves all resources of that kind; pods, ReplicaSets and Events of
    each namespace are watched once too.
  - Ready means, by kind, C(Deployment) rolled out (observed generation, all replicas updated, ready and
    available, no old replicas); C(StatefulSet) rolling update done and replicas ready; C(DaemonSet) pods
    updated and available; C(Job) complete; C(Pod) ready or succeeded.
  - Any other kind (custom resources) is judged by built-in rules over its status, the first that applies
    deciding; it is pending while C(status.observedGeneration) is behind C(metadata.generation); failed when a
    C(Stalled) or C(Failed) condition is C(True) (with the condition's reason and message); ready or pending as
    its C(Ready) condition, else its C(Available) condition, is C(True) or not; by C(status.phase) for custom
    resources (C(Failed), C(Error), C(Degraded) fail; C(Ready), C(Running), C(Succeeded), C(Active),
    C(Available), C(Bound), C(Complete), C(Healthy), C(Deployed) are ready; others pending); else ready as soon
    as it exists.
  - Readiness rules written as JMESPath expressions over the live object override the built-in ones, for any
    kind; a truthy result (not null, false or empty) matches. A resource's own annotations
    C(berth.converge/ready-when) and C(berth.converge/failed-when) come first, then O(readiness_rules) for its
    group and kind. A failed expression replaces the built-in failure detection of the object's own status
    (pod failures of workloads still count); its result, when a string, is the failure message. A ready
    expression replaces the built-in readiness. An invalid expression is an error naming the resource and the
    annotation (or the rule) before tracking starts.
  - Each progress line and each entry of RV(resources) says which rule decided (RV(resources[].rule)).
  - Fails as soon as a pod of the current revision of a tracked workload shows C(ImagePullBackOff),
    C(ErrImagePull), C(CreateContainerConfigError), C(CreateContainerError) or C(InvalidImageName), or
    crashes (C(CrashLoopBackOff), a non-zero exit code) more often than C(werf.io/failures-allowed-per-replica)
    allows; when a Job fails; when a Deployment exceeds its progress deadline; when a resource shows no
    change or event for C(werf.io/no-activity-timeout); and when O(timeout) passes.
  - The failure message names the resource (C(Kind/namespace/name)), the pod, the container, the reason and
    the message, followed by the last Events of the pod and of the resource.
  - Honours these werf annotations of each resource (from the input manifest, else from the live object).
  - C(werf.io/fail-mode) C(FailWholeDeployProcessImmediately) (default) fails at the resource's first
    failure; C(HopeUntilEndOfDeployProcess) keeps waiting for the other resources, and once nothing but
    hoping resources is left, looks again and fails if the resource is still failing;
    C(IgnoreAndContinueDeployProcess) reports the failure in RV(resources) (RV(resources[].failed)) and
    stops waiting for the resource.
  - C(werf.io/track-termination-mode) C(WaitUntilResourceReady) (default) waits for the resource;
    C(NonBlocking) does not wait for it, but its failures count (per its fail mode) while other resources
    are still awaited.
  - C(werf.io/failures-allowed-per-replica) (default C(1)) is how many failed runs each container of each
    pod may have (restarts, plus the current run when it failed) before the resource fails. Image and
    configuration errors fail at once.
  - C(werf.io/no-activity-timeout) (Go duration, default C(4m)) fails a resource that shows no change of
    itself, its pods or its Events for that long.
  - Progress lines (which resources are still pending, which became ready) are returned in RV(progress)
    and, with O(progress_file), appended to a file as they happen so that a playbook or a terminal can
    follow them while the module runs.
  - Never reports C(changed).
requirements:
  - kubernetes (Python client) >= 28.1
  - urllib3
  - PyYAML >= 6.0
  - jmespath >= 1.0
author:
  - berth.converge contributors (!UNKNOWN)
extends_documentation_fragment:
  - berth.converge.kubernetes
  - berth.converge.readiness
  - berth.converge.attributes
  - berth.converge.attributes.INFO_MODULE
options:
  resources:
    description:
      - The resources to track, in any mix of the two forms B(release_apply) and B(chart_render) return.
      - Per-resource results of B(release_apply) (C(apiVersion), C(kind), C(namespace), C(name));
        those with C(action=delete) were pruned and are skipped.
      - Full manifests (C(apiVersion), C(kind), C(metadata.name), C(metadata.namespace)); their annotations
        override those of the live object. Helm hooks (manifests annotated C(helm.sh/hook)) are skipped, as
        M(berth.converge.release_apply) runs and tracks them.
    type: list
    elements: dict
    required: true
  namespace:
    description:
      - Namespace of the namespaced resources that name none; without it they are looked up in C(default).
    type: str
  timeout:
    description:
      - Seconds to wait for all resources together before failing with the ones still pending.
      - Watches survive API server restarts and outages within this time; they reconnect and resume (or list
        again when the server no longer has their history).
    type: int
    default: 300
  progress_file:
    description:
      - File to append progress lines to while waiting (created if missing), so that they can be followed
        with C(tail -f) while the module runs. Falls back to E(BERTH_PROGRESS_FILE).
    type: path
  release:
    description:
      - Release whose revision this tracks (with O(namespace)). When tracking fails, the revision is marked
        C(failed) with the reason (see O(mark_failed)), so M(berth.converge.release_rollback) goes back to the
        last good one. When the resources become ready and the revision is C(failed) (for example it failed
        only on a short timeout before), it is marked C(deployed) again, and any other C(deployed) revision
        C(superseded).
    type: str
  revision:
    description:
      - Revision of O(release) whose resources are tracked; default the latest (the one
        M(berth.converge.release_apply) just recorded or found live, RV(berth.converge.release_apply#module:revision)).
    type: int
  mark_failed:
    description:
      - Whether a tracking failure marks O(revision) C(failed).
      - "Set it to C(false) when the revision was already live before this run (a converge that changed nothing,
        RV(berth.converge.release_apply#module:changed) false): a readiness failure of the cluster then leaves
        the record alone, so a later rollback still goes to the revision that was serving."
    type: bool
    default: true
notes:
  - In check mode nothing is contacted; the module reports which resources it would wait for, from the
    inputs and their annotations alone.
"""

EXAMPLES = r"""
- name: Apply the release
  berth.converge.release_apply:
    manifests: "{{ rendered.manifests }}"
    release: "{{ rendered.release }}"
    namespace: "{{ rendered.namespace }}"
  register: applied

- name: Wait until it is ready
  berth.converge.release_track:
    resources: "{{ applied.resources }}"
    namespace: "{{ rendered.namespace }}"
    timeout: 600
    progress_file: /tmp/shop-rollout.log
    readiness_rules:
      - group: cert-manager.io
        kind: Certificate
        ready: "status.conditions[?type=='Ready'].status | [0] == 'True'"
        failed: "status.conditions[?type=='Issuing' && reason=='Failed'].message | [0]"
  register: tracked

- name: Report readiness per resource
  ansible.builtin.debug:
    msg: "{{ item.kind }}/{{ item.name }}: {{ item.reason }} ({{ item.elapsed }}s)"
  loop: "{{ tracked.resources }}"
  loop_control:
    label: "{{ item.kind }}/{{ item.name }}"
"""

RETURN = r"""
resources:
  description: One entry per tracked resource, in input order (pruned inputs left out).
  returned: always
  type: list
  elements: dict
  contains:
    apiVersion:
      description: API version of the resource.
      type: str
    kind:
      description: Kind of the resource.
      type: str
    namespace:
      description: Namespace, or null for cluster-scoped resources.
      type: str
    name:
      description: Name of the resource.
      type: str
    ready:
      description: Whether the resource became ready.
      type: bool
      returned: unless check mode
    failed:
      description: Whether the resource failed (also when its fail mode let tracking go on).
      type: bool
      returned: unless check mode
    reason:
      description: Last known status in a few words, or why it failed or was not waited for.
      type: str
      sample: 2 of 2 replicas ready
    rule:
      description: The readiness rule that decided the last status, for example C(built-in Deployment),
        C(built-in condition Ready), C(annotation berth.converge/ready-when),
        C(readiness_rules[0] (cert-manager.io/Certificate) ready); in check mode, the expressions in effect
        (C(built-in) when none).
      type: str
      sample: built-in condition Ready
    elapsed:
      description: Seconds from the start of tracking until the resource became ready or failed.
      type: float
      returned: unless check mode
    fail_mode:
      description: The C(werf.io/fail-mode) in effect.
      type: str
      sample: FailWholeDeployProcessImmediately
    track_termination_mode:
      description: The C(werf.io/track-termination-mode) in effect.
      type: str
      sample: WaitUntilResourceReady
progress:
  description: Timestamped (C(HH:MM:SS), local time) progress lines, as also written to O(progress_file).
  returned: unless check mode
  type: list
  elements: str
  sample:
    - "12:00:01 tracking 4 resources (4 to wait for) in shop, timeout 300s"
    - "12:00:01 ready at once: ConfigMap/shop/settings (built-in exists), Service/shop/backend (built-in exists)"
    - "12:00:01 waiting for 2 of 4: Deployment/shop/backend (0 of 2 replicas updated), Job/shop/migrate (0 of 1
      completions, 1 active)"
    - "12:00:03 Deployment/shop/backend ready after 2.1s (2 of 2 replicas ready; rule: built-in Deployment)"
    - "12:00:04 Job/shop/migrate ready after 2.9s (complete; rule: built-in Job)"
    - "12:00:04 4 of 4 resources ready after 2.9s"
failed_resource:
  description: The resource that failed tracking, with the pod, container, reason, message and recent Events.
  returned: on failure
  type: dict
  contains:
    kind:
      description: Kind of the resource.
      type: str
    namespace:
      description: Namespace of the resource.
      type: str
    name:
      description: Name of the resource.
      type: str
    pod:
      description: The pod that showed the failure, if one did.
      type: str
    container:
      description: The container that showed the failure, if one did.
      type: str
    reason:
      description: Short reason, for example C(CrashLoopBackOff), C(BackoffLimitExceeded), C(NoActivity), C(Timeout),
        the reason of a C(Stalled) condition, or C(annotation berth.converge/failed-when matched).
      type: str
    rule:
      description: The readiness rule that decided the failure.
      type: str
    message:
      description: Message that came with the reason.
      type: str
    events:
      description: Last Events per object (C(Kind/namespace/name) to lines).
      type: dict
revision_marked:
  description: On failure with O(release) and O(mark_failed), the revision that was marked C(failed).
  returned: failure, when O(release) is given
  type: int
revision_deployed:
  description: With O(release), the revision marked C(deployed) again because its resources became ready
    after it had failed; null when no status changed.
  returned: success, when O(release) is given
  type: int
"""

from ansible.module_utils.basic import env_fallback

from ansible_collections.berth.converge.plugins.module_utils.common_args import (
    KUBE_ARGS, KUBE_ENV_FALLBACKS, READINESS_ARGS, with_env_fallbacks)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.client import api_client
from ansible_collections.berth.converge.plugins.module_utils.kube.hooks import is_hook
from ansible_collections.berth.converge.plugins.module_utils.kube.readiness import ReadinessRules, check_annotations
from ansible_collections.berth.converge.plugins.module_utils.kube.release import (
    FAILED, history, mark_deployed, set_revision_status)
from ansible_collections.berth.converge.plugins.module_utils.kube.track import track, tracking_plan
from ansible_collections.berth.converge.plugins.module_utils.requirements import KUBE_LIBRARIES, check_libraries
from ansible_collections.berth.converge.plugins.module_utils.secret_data import Manifests, SecretDataModule
from ansible_collections.berth.converge.plugins.module_utils.validation import validate_module_params


def tracked_revision(api, params):
    """The tracked revision of the release, or None when it has none (or not that one)."""
    revisions = history(api, params["release"], params["namespace"])
    if params["revision"] is None:
        return revisions[-1] if revisions else None
    return next((r for r in revisions if r.version == params["revision"]), None)


def mark_failed(api, params, reason):
    """Mark the tracked revision failed; returns its number (None when the release has no revision)."""
    revision = tracked_revision(api, params)
    if revision is None:
        return None
    set_revision_status(api, params["release"], params["namespace"], revision.version, FAILED,
                        reason=reason.splitlines()[0])
    return revision.version


def mark_ready(api, params):
    """Mark the tracked revision deployed again when it had failed; returns its number, else None."""
    revision = tracked_revision(api, params)
    if revision is None or revision.status != FAILED:
        return None
    mark_deployed(api, params["release"], params["namespace"], revision.version)
    return revision.version


def main():
    module = SecretDataModule(
        argument_spec=dict(
            resources=dict(type="list", elements="dict", required=True, no_log=True),  # manifests; shown masked
            namespace=dict(type="str"),
            timeout=dict(type="int", default=300),
            release=dict(type="str"),
            revision=dict(type="int"),
            mark_failed=dict(type="bool", default=True),
            **READINESS_ARGS,
            progress_file=dict(type="path", fallback=(env_fallback, ["BERTH_PROGRESS_FILE"])),
            **with_env_fallbacks(KUBE_ARGS, KUBE_ENV_FALLBACKS),
        ),
        required_by={"release": "namespace", "revision": "release"},
        secret_data={"resources": Manifests},
        supports_check_mode=True,
    )
    validate_module_params(module)
    check_libraries(module, *KUBE_LIBRARIES, "jmespath")
    p = module.params
    resources = [item for item in p["resources"] if not is_hook(item)]
    api = None
    try:
        rules = ReadinessRules(p["readiness_rules"])
        check_annotations(p["resources"], p["namespace"])  # hooks too: release_apply tracks them with the same rules
        if module.check_mode:
            module.exit_json(changed=False, resources=tracking_plan(resources, p["namespace"], rules))
        api = api_client(p, p["timeout"])
        result = track(api, resources, timeout=p["timeout"], namespace=p["namespace"],
                       progress_file=p["progress_file"], rules=rules)
    except ConvergeError as exc:
        message = str(exc)
        if p["release"] and api is not None and p["mark_failed"]:
            try:
                exc.details["revision_marked"] = mark_failed(api, p, message)
            except ConvergeError as marking:  # the tracking failure stays the error; this one is appended
                message += f"\nAlso failed afterwards, marking the revision failed: {marking}"
        module.fail_json(msg=message, **exc.details)
    if p["release"]:
        try:
            result["revision_deployed"] = mark_ready(api, p)
        except ConvergeError as exc:
            module.fail_json(msg=f"the resources are ready, but marking the revision deployed failed: {exc}",
                             **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
