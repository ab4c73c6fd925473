# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: werf_image
short_description: Full reference of a werf image by name
version_added: 0.1.0
description:
  - Picks the full reference (C(ref)) of the image named O(name) from an images list as returned by
    M(berth.converge.image_digest), like werf's C(werf_image) template in charts.
  - Fails when no image has that name, listing the names there are.
options:
  _input:
    description: Images list; each item is a dict with at least C(name) and C(ref).
    type: list
    elements: dict
    required: true
  name:
    description: Image name as in C(werf.yaml).
    type: str
    required: true
author:
  - berth.converge contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Use the backend image in a task
  ansible.builtin.debug:
    msg: "{{ digests.images | berth.converge.werf_image('backend') }}"
"""

RETURN = r"""
_value:
  description: Full image reference, C(REPO:TAG).
  type: str
  sample: 127.0.0.1:5000/shop/backend:4b0c1e2d...
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.render import image_ref


def werf_image(images, name):
    """The reference of image ``name`` in ``images``."""
    if not isinstance(images, list):
        raise AnsibleFilterError(f"werf_image expects a list of images, got {type(images).__name__}")
    try:
        return image_ref(images, name)
    except ConvergeError as exc:
        raise AnsibleFilterError(f"werf_image: {exc}")


class FilterModule:
    def filters(self):
        return {"werf_image": werf_image}
