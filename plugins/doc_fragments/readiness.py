# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of berth.converge.plugins.module_utils.common_args.READINESS_ARGS
    DOCUMENTATION = r"""
options:
  readiness_rules:
    description:
      - Readiness rules per API group and kind, JMESPath expressions over the live object. They override the
        built-in rules for that kind; a resource's C(berth.converge/ready-when) and C(berth.converge/failed-when)
        annotations override them in turn.
      - They decide every wait of the module (the release in M(berth.converge.release_track); each
        C(werf.io/weight) group, each hook and the release before its post hooks in
        M(berth.converge.release_apply) and M(berth.converge.release_rollback)).
    type: list
    elements: dict
    default: []
    suboptions:
      group:
        description: API group of the kind (C(cert-manager.io)); an empty string for the core group.
        type: str
        required: true
      kind:
        description: The kind (C(Certificate)).
        type: str
        required: true
      ready:
        description: Expression whose truthy result means ready, e.g.
          C(status.conditions[?type=='Ready'].status | [0] == 'True').
        type: str
      failed:
        description: Expression whose truthy result means failed; a string result is shown as the failure
          message, e.g. C(status.conditions[?type=='Ready' && reason=='Failed'].message | [0]).
        type: str
"""
