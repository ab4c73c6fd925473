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
  - Lists the revisions of a release, oldest first, with status, commit, images, time and number of objects.
    Manifests are not returned (they may hold Secrets).
  - "The revisions are Helm 3's release records (Secrets C(sh.helm.release.v1.<release>.v<N>)): those
    M(berth.converge.release_apply) and M(berth.converge.release_rollback) recorded, and those C(helm) or werf
    recorded (for which commit and images are null). Records of berth.converge 0.1 (C(berth.release.v1.*))
    are listed too."
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
  - urllib3
  - PyYAML >= 6.0
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
      description:
        - C(deployed), C(failed), C(superseded) or C(pending) (Helm's C(pending-install), C(pending-upgrade),
          C(pending-rollback) and C(uninstalling)); records Helm wrote may also be C(uninstalled) or C(unknown).
      type: str
      sample: deployed
    helm_status:
      description: The status as Helm stores and shows it.
      type: str
      sample: pending-upgrade
    description:
      description:
        - What C(helm history) shows, such as C(Install complete), C(Upgrade complete), C(Rollback to 3) or
          C(Upgrade "shop" failed) followed by the reason.
      type: str
      sample: Upgrade complete
    chart:
      description: The chart as C(helm history) shows it, C(<name>-<version>); null for records of 0.1.
      type: str
      sample: shop-1.0.0
    app_version:
      description: The chart's appVersion, if any.
      type: str
      sample: "2.3"
    werf:
      description: The werf project and env the objects were annotated with, and the C(werf.io/version) value.
      type: dict
      sample: {"project": "shop", "env": "production", "version": "berth.converge/0.1.0"}
    recorded_by:
      description: C(berth.converge) for revisions berth.converge recorded, C(helm) for records without its data
        (written by Helm or werf, or rewritten by Helm).
      type: str
      sample: berth.converge
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.berth.converge.plugins.module_utils.common_args import (
    KUBE_ARGS, KUBE_ENV_FALLBACKS, with_env_fallbacks)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.client import api_client
from ansible_collections.berth.converge.plugins.module_utils.kube.release import history, last_successful
from ansible_collections.berth.converge.plugins.module_utils.requirements import KUBE_LIBRARIES, check_libraries
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
    check_libraries(module, *KUBE_LIBRARIES)
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
