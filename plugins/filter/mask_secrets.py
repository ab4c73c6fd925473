# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: mask_secrets
short_description: Mask the values of Secrets in a list of Kubernetes manifests
version_added: 0.1.0
description:
  - Returns the manifests with every value of C(data) and C(stringData) of each C(v1/Secret) replaced by a mask
    (a short keyed hash, so equal values look equal within one run), as M(berth.converge.release_apply) shows
    them in diffs. Other objects are returned unchanged.
  - Use it before printing the manifests of M(berth.converge.chart_render).
options:
  _input:
    description: Kubernetes manifests (dicts).
    type: list
    elements: dict
    required: true
author:
  - berth.converge contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Print what the commit renders to, without Secret values
  ansible.builtin.debug:
    msg: "{{ rendered.manifests | berth.converge.mask_secrets | to_nice_yaml }}"
"""

RETURN = r"""
_value:
  description: The manifests, Secret values masked.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.berth.converge.plugins.module_utils.kube.apply import mask_secrets as mask_secret


def mask_secrets(manifests):
    """The manifests with Secret values masked."""
    if not isinstance(manifests, list):
        raise AnsibleFilterError(f"mask_secrets expects a list of manifests, got {type(manifests).__name__}")
    return [mask_secret(manifest) if isinstance(manifest, dict) else manifest for manifest in manifests]


class FilterModule:
    def filters(self):
        return {"mask_secrets": mask_secrets}
