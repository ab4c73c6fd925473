#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_images
short_description: Tell which image references exist in their registries
version_added: 0.1.0
description:
  - Asks the registry of every reference, through the OCI distribution API, whether it has a manifest for it
    (one C(HEAD) request per reference, run concurrently) and returns the manifest digests of the present ones
    and the list of the missing ones. No Docker Engine is involved.
  - References follow Docker's rules; without a registry part they name Docker Hub (C(docker.io), with
    C(library/) for single-name repositories); without tag or digest the tag is C(latest).
  - Registries are reached over HTTPS. Plain HTTP is used only for loopback registries and
    O(insecure_registries), and only when HTTPS fails, as Docker does.
  - Anonymous access, HTTP Basic and Bearer token authentication are supported. Credentials come from
    O(registry_username) and O(registry_password), else from the Docker config (O(docker_config)).
author:
  - berth.converge contributors (!UNKNOWN)
extends_documentation_fragment:
  - berth.converge.attributes
  - berth.converge.attributes.INFO_MODULE
  - berth.converge.registry
options:
  refs:
    description:
      - The image references to look up. Each item is a reference string such as
        C(registry.example.com/shop/backend:0123abcd), or a dict with a C(ref) key, such as the items of the
        C(images) list returned by M(berth.converge.image_digest).
    type: list
    elements: raw
    required: true
  concurrency:
    description:
      - How many manifest requests to run at once.
    type: int
    default: 16
requirements:
  - requests >= 2.28
seealso:
  - module: berth.converge.image_digest
  - module: berth.converge.image_build
"""

EXAMPLES = r"""
- name: Which images of the commit are already in the registry?
  berth.converge.registry_images:
    refs: "{{ digests.images }}"
  register: lookup

- name: Report each image
  ansible.builtin.debug:
    msg: "{{ item.ref }} {{ 'present' if item.present else 'missing' }}"
  loop: "{{ lookup.images }}"
  loop_control:
    label: "{{ item.name }}"

- name: Plain references on a private registry with its own CA
  berth.converge.registry_images:
    refs:
      - registry.example.com/shop/backend:0123abcd
      - registry.example.com/shop/frontend:4567ef01
    registry_username: ci
    registry_password: "{{ registry_token }}"
    ca_cert: /etc/ssl/registry-ca.pem
  register: lookup

- name: Fail when an image is missing
  ansible.builtin.assert:
    that: lookup.missing | length == 0
    fail_msg: "not in the registry: {{ lookup.missing | join(', ') }}"
"""

RETURN = r"""
present:
  description: Manifest digest of every reference the registry has, keyed by the reference as given.
  returned: always
  type: dict
  sample:
    registry.example.com/shop/backend:0123abcd: sha256:4f8ad1c1fb3b1a0cfd2a4e7d7c0dd2a5b5c1d8d8e9f0a1b2c3d4e5f6a7b8c9d0
missing:
  description: The references the registry does not have, in the order given (each once).
  returned: always
  type: list
  elements: str
  sample: [registry.example.com/shop/frontend:4567ef01]
images:
  description:
    - One entry per item of O(refs), in order. A dict item is returned with all its keys plus the two below;
      a string item becomes a dict with just C(ref) and the two below.
  returned: always
  type: list
  elements: dict
  contains:
    ref:
      description: The reference looked up.
      type: str
      sample: registry.example.com/shop/backend:0123abcd
    present:
      description: Whether the registry has a manifest for RV(images[].ref).
      type: bool
      sample: true
    manifest_digest:
      description: Digest of that manifest, null when missing.
      type: str
      sample: sha256:4f8ad1c1fb3b1a0cfd2a4e7d7c0dd2a5b5c1d8d8e9f0a1b2c3d4e5f6a7b8c9d0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.berth.converge.plugins.module_utils.common_args import (
    REGISTRY_ARGS, REGISTRY_ENV_FALLBACKS, with_env_fallbacks)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.registry import client_from_params
from ansible_collections.berth.converge.plugins.module_utils.requirements import check_libraries
from ansible_collections.berth.converge.plugins.module_utils.validation import validate_module_params


def reference_of(item, index):
    """The reference string of one item of ``refs``."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        raise ConvergeError(f"refs[{index}] must be a reference string or a dict with a 'ref' key, "
                            f"not a {type(item).__name__}")
    ref = item.get("ref")
    if not isinstance(ref, str) or not ref:
        name = f" (image '{item['name']}')" if item.get("name") else ""
        raise ConvergeError(f"refs[{index}]{name} has no 'ref'; image_digest gives one when called with 'repo'")
    return ref


def annotate(items, refs, present):
    """The items as dicts, each with ``present`` and ``manifest_digest`` added."""
    images = []
    for item, ref in zip(items, refs):
        image = dict(item) if isinstance(item, dict) else {"ref": ref}
        image.update(present=ref in present, manifest_digest=present.get(ref))
        images.append(image)
    return images


def main():
    module = AnsibleModule(
        argument_spec=dict(
            refs=dict(type="list", elements="raw", required=True),
            concurrency=dict(type="int", default=16),
            **with_env_fallbacks(REGISTRY_ARGS, REGISTRY_ENV_FALLBACKS),
        ),
        supports_check_mode=True,
    )
    validate_module_params(module)
    check_libraries(module, "requests")
    p = module.params
    try:
        refs = [reference_of(item, index) for index, item in enumerate(p["refs"])]
        with client_from_params(p, concurrency=p["concurrency"]) as client:
            present, missing = client.lookup(refs)
    except ConvergeError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(changed=False, present=present, missing=missing, images=annotate(p["refs"], refs, present))


if __name__ == "__main__":
    main()
