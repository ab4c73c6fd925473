#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release_info
short_description: History and status of a release
version_added: 0.1.0
description:
  - Lists the revisions recorded by M(berth.converge.release_apply) and M(berth.converge.release_rollback) for a
    release, oldest first, with status, commit, images, time and number of objects. Manifests are not returned
    (they may hold Secrets).
  - A release without revisions (or whose namespace does not exist) gives an empty list.
author:
  - berth.converge contributors (!UNKNOWN)
extends_documentation_fragment:
  - berth.converge.attributes
  - berth.converge.attributes.INFO_MODULE
  - berth.converge.kubernetes
options:
  release:
    description:
      - Name of the release.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the release.
    type: str
    required: true
  timeout:
    description:
      - Seconds to keep retrying while the API server is unreachable or answers with a transient error
        (connection refused or reset, 429, 500, 502, 503, 504, etcd leader change).
    type: int
    default: 60
requirements:
  - kubernetes (Python client) >= 28.1
seealso:
  - module: berth.converge.release_apply
  - module: berth.converge.release_rollback
"""

EXAMPLES = r"""
- name: Release history
  berth.converge.release_info:
    release: shop-production
    namespace: shop-production
  register: info

- name: Show the deployed commit
  ansible.builtin.debug:
    msg: "revision {{ info.deployed }} runs commit {{ (info.revisions | selectattr('revision', 'equalto', info.deployed) | first).commit.hash }}"
  when: info.deployed is not none
"""

RETURN = r"""
revisions:
  description: The revisions of the release, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    revision:
      description: Revision number.
      type: int
      sample: 3
    status:
      description: C(deployed), C(failed), C(superseded) or C(pending).
      type: str
      sample: deployed
    description:
      description: C(install), C(upgrade) or C(rolled back from N to M).
      type: str
      sample: upgrade
    reason:
      description: Why the revision failed, when it did.
      type: str
      sample: null
    commit:
      description: The commit recorded with the revision (C(hash), C(date), C(unix)).
      type: dict
      sample: {"hash": "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "date": "2024-05-01T10:00:00+00:00",
               "unix": 1714557600}
    images:
      description: The images recorded with the revision.
      type: list
      elements: dict
    time:
      description: When the revision was recorded (UTC, ISO 8601).
      type: str
      sample: "2024-05-01T10:02:13Z"
    updated:
      description: When its status last changed (UTC, ISO 8601).
      type: str
      sample: "2024-05-01T10:02:20Z"
    resource_count:
      description: Number of objects in the revision.
      type: int
      sample: 12
    berth_version:
      description: Version of berth.converge that recorded it.
      type: str
      sample: 0.1.0
latest:
  description: The latest revision number, null without revisions.
  returned: always
  type: int
  sample: 3
status:
  description: Status of the latest revision, null without revisions.
  returned: always
  type: str
  sample: deployed
deployed:
  description: The newest successfully deployed revision (status C(deployed) or C(superseded)), else null.
  returned: always
  type: int
  sample: 3
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.berth.converge.plugins.module_utils.common_args import (
    KUBE_ARGS, KUBE_ENV_FALLBACKS, with_env_fallbacks)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.client import KUBERNETES_IMPORT_ERROR, api_client
from ansible_collections.berth.converge.plugins.module_utils.kube.release import history, last_successful
from ansible_collections.berth.converge.plugins.module_utils.validation import validate_module_params


def main():
    module = AnsibleModule(
        argument_spec=dict(
            release=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            timeout=dict(type="int", default=60),
            **with_env_fallbacks(KUBE_ARGS, KUBE_ENV_FALLBACKS),
        ),
        supports_check_mode=True,
    )
    validate_module_params(module)
    if KUBERNETES_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    p = module.params
    try:
        revisions = history(api_client(p, p["timeout"]), p["release"], p["namespace"])
        summaries = [revision.summary() for revision in revisions]
    except ConvergeError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    deployed = last_successful(revisions)
    module.exit_json(changed=False, revisions=summaries,
                     latest=revisions[-1].version if revisions else None,
                     status=revisions[-1].status if revisions else None,
                     deployed=deployed.version if deployed else None)


if __name__ == "__main__":
    main()
