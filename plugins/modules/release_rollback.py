#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release_rollback
short_description: Restore an earlier revision of a release
version_added: 0.1.0
description:
  - Applies the manifests recorded in an earlier revision of a release, exactly as M(berth.converge.release_apply)
    does (server-side dry run of the whole set first, server-side apply, the release lock), and deletes what
    the newer revisions added.
  - "By default the target is the newest successful revision (status C(deployed) or C(superseded)) before the
    latest one; O(revision) picks another."
  - The restore is recorded as a new revision, described as C(Rollback to <target>) as Helm describes it, with
    the images, commit and chart of the target; the labels and annotations its objects were applied with
    (werf's annotations, C(add_labels), C(add_annotations)) are applied again. Works on revisions C(helm) or
    werf recorded too. Nothing is recorded when the cluster already matches the target and the
    latest revision has the same manifests.
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
      - The target is dry-run applied and the actions are reported; nothing is written.
  diff_mode:
    support: full
    details:
      - As M(berth.converge.release_apply), with Secret values masked.
options:
  release:
    description:
      - Name of the release.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the release (where its revisions are).
    type: str
    required: true
  revision:
    description:
      - The revision to restore. Default is the newest successful revision before the latest one.
    type: int
  force_conflicts:
    description:
      - Take over fields that another field manager owns (server-side apply C(force)), as M(berth.converge.release_apply).
    type: bool
    default: true
  concurrency:
    description:
      - How many API requests to run at once.
    type: int
    default: 8
  lock_timeout:
    description:
      - Seconds to wait for another converge of the same release to finish.
    type: int
    default: 300
  timeout:
    description:
      - Seconds to wait for each rollback hook to complete and each C(werf.io/weight) group to be ready, as in
        M(berth.converge.release_apply). The restored revision runs the target's C(pre-rollback) and
        C(post-rollback) hooks, as Helm does.
      - Also how long each request to the API server is retried while the server is unreachable or answers with
        a transient error.
    type: int
    default: 300
  progress_file:
    description:
      - File to append the progress lines of those waits to. Falls back to E(BERTH_PROGRESS_FILE).
    type: path
requirements:
  - kubernetes (Python client) >= 28.1
  - urllib3
  - PyYAML >= 6.0
seealso:
  - module: berth.converge.release_apply
  - module: berth.converge.release_info
"""

EXAMPLES = r"""
- name: Roll back to the last good revision when tracking fails
  block:
    - name: Track readiness
      berth.converge.release_track:
        resources: "{{ applied.resources }}"
        release: shop-production
        namespace: shop-production
  rescue:
    - name: Restore the previous revision
      berth.converge.release_rollback:
        release: shop-production
        namespace: shop-production

- name: Restore revision 3
  berth.converge.release_rollback:
    release: shop-production
    namespace: shop-production
    revision: 3
"""

RETURN = r"""
hooks:
  description: The rollback hooks that ran (or would run in check mode), as RV(berth.converge.release_apply#module:hooks).
  returned: always
  type: list
  elements: dict
rolled_back_from:
  description: The latest revision before the rollback.
  returned: success
  type: int
  sample: 5
rolled_back_to:
  description: The revision whose manifests were restored.
  returned: success
  type: int
  sample: 4
revision:
  description: The revision recorded for the rollback (or, when nothing needed recording, the latest one).
  returned: success
  type: int
  sample: 6
resources:
  description: Per-object results as M(berth.converge.release_apply) returns them.
  returned: success
  type: list
  elements: dict
lock:
  description: The release lock and how long this run waited for it, as M(berth.converge.release_apply).
  returned: when not in check mode
  type: dict
diff:
  description: In diff mode, one entry per changed object, for Ansible's diff display.
  returned: in diff mode
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.berth.converge.plugins.module_utils.common_args import (
    KUBE_ARGS, KUBE_ENV_FALLBACKS, READINESS_ARGS, with_env_fallbacks)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.client import api_client
from ansible_collections.berth.converge.plugins.module_utils.kube.readiness import ReadinessRules
from ansible_collections.berth.converge.plugins.module_utils.kube.release import ApplyOptions
from ansible_collections.berth.converge.plugins.module_utils.kube.rollback import rollback
from ansible_collections.berth.converge.plugins.module_utils.requirements import KUBE_LIBRARIES, check_libraries
from ansible_collections.berth.converge.plugins.module_utils.validation import validate_module_params


def main():
    module = AnsibleModule(
        argument_spec=dict(
            release=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            revision=dict(type="int"),
            force_conflicts=dict(type="bool", default=True),
            concurrency=dict(type="int", default=8),
            lock_timeout=dict(type="int", default=300),
            timeout=dict(type="int", default=300),
            progress_file=dict(type="path", fallback=(env_fallback, ["BERTH_PROGRESS_FILE"])),
            **READINESS_ARGS,
            **with_env_fallbacks(KUBE_ARGS, KUBE_ENV_FALLBACKS),
        ),
        supports_check_mode=True,
    )
    validate_module_params(module)
    check_libraries(module, *KUBE_LIBRARIES)
    p = module.params
    options = ApplyOptions(force_conflicts=p["force_conflicts"], concurrency=p["concurrency"],
                           lock_timeout=p["lock_timeout"], check_mode=module.check_mode, diff=module._diff,
                           timeout=p["timeout"], progress_file=p["progress_file"])
    try:
        options.readiness_rules = ReadinessRules(p["readiness_rules"])
        result = rollback(api_client(p, p["timeout"]), p["release"], p["namespace"], p["revision"], options)
    except ConvergeError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
