# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: deploy_report
short_description: The deploy report of a converge, from the results of its tasks
version_added: 0.1.0
description:
  - "Builds the deploy report the converge role writes to C(converge_deploy_report) (as werf's
    C(--save-deploy-report)): format C(berth.converge/deploy-report.v1), C(status) (C(succeeded) or
    C(failed)), C(check_mode), C(release), C(namespace), C(revision), C(commit), one entry per image (C(name),
    C(ref), C(built)), per resource (C(apiVersion), C(kind), C(namespace), C(name), C(action), C(changed)) and
    per hook (C(kind), C(name), C(event), C(result)), C(error) (the message of the first task that
    failed) and C(rolled_back_to)."
  - It holds no manifest, diff or value, so no Secret data. In check mode, C(built) and C(action) say what would
    be done.
options:
  _input:
    description: C(succeeded) or C(failed).
    type: str
    required: true
  digests:
    description: The result of M(berth.converge.image_digest).
    type: dict
  built:
    description: The result of M(berth.converge.image_build).
    type: dict
  rendered:
    description: The result of M(berth.converge.chart_render).
    type: dict
  applied:
    description: The result (or the failure) of M(berth.converge.release_apply).
    type: dict
  tracked:
    description: The result (or the failure) of M(berth.converge.release_track).
    type: dict
  rolled_back:
    description: The result of M(berth.converge.release_rollback).
    type: dict
  plan_checked:
    description: The result (or the failure) of M(berth.converge.converge_plan) checking a saved plan.
    type: dict
  check_mode:
    description: Whether the converge was a dry run.
    type: bool
    default: false
author:
  - berth.converge contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Write the deploy report
  ansible.builtin.copy:
    dest: deploy-report.json
    content: "{{ 'succeeded' | berth.converge.deploy_report(digests=digests, built=built, rendered=rendered,
                  applied=applied) | to_nice_json }}"
    mode: "0600"
"""

RETURN = r"""
_value:
  description: The report.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.berth.converge.plugins.module_utils.reports import deploy_report as build_report


def deploy_report(status, **results):
    try:
        return build_report(status, **results)
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"deploy_report: {exc}") from None


class FilterModule:
    def filters(self):
        return {"deploy_report": deploy_report}
