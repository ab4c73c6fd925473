#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_digest
short_description: Content digests and references of the images a werf.yaml configures at a commit
version_added: 0.1.0
description:
  - Reads C(werf.yaml) from the commit (or the working tree with O(dev=true)) and returns every image with a
    deterministic content digest, its tag and its full registry reference.
  - The digest covers the Dockerfile instructions of the target stage chain after ARG expansion, the build
    arguments a declared ARG uses, dependency imports, the Git object ids of exactly the context paths the
    COPY/ADD instructions select after C(.dockerignore), C(contextAddFiles), cache versions and platform.
    See C(docs/image-digests.md) for the algorithm and its version.
  - The same commit gives the same digests on any machine and clone.
requirements:
  - PyYAML >= 6.0
  - GitPython >= 3.1.30
author:
  - berth.converge contributors (!UNKNOWN)
extends_documentation_fragment:
  - berth.converge.attributes
  - berth.converge.attributes.INFO_MODULE
options:
  project_dir:
    description:
      - Git work tree of the project.
    type: path
    required: true
  config:
    description:
      - Path of the werf configuration, relative to O(project_dir).
    type: str
    default: werf.yaml
  repo:
    description:
      - Registry repository of the project, for example C(registry.example.com/shop). Each image is stored
        as C(<repo>/<image>:<digest>). Without it, RV(images[].ref) and RV(images[].repo) are null.
    type: str
  env:
    description:
      - werf environment name (for example C(production)), as werf's C(--env). A templated C(werf.yaml) sees it
        as C(.Env); it is recorded in the result. It changes digests only through what the template makes of it.
    type: str
  revision:
    description:
      - Git revision to converge.
    type: str
    default: HEAD
  dev:
    description:
      - Use the working tree (tracked and untracked files that Git does not ignore) instead of the commit.
    type: bool
    default: false
  images:
    description:
      - Only these images (their dependencies are computed too, since their digests flow into the dependents).
    type: list
    elements: str
  explain:
    description:
      - Add to each image the ordered list of inputs that made its digest (RV(images[].inputs)).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Digests of every image of the commit
  berth.converge.image_digest:
    project_dir: /src/shop
    repo: registry.example.com/shop
  register: digests

- name: Why does backend rebuild?
  berth.converge.image_digest:
    project_dir: /src/shop
    images: [backend]
    explain: true
  register: why

- ansible.builtin.debug:
    var: why.images[0].inputs
"""

RETURN = r"""
project:
  description: The werf project name.
  returned: success
  type: str
  sample: shop
env:
  description: The environment given in O(env).
  returned: success
  type: str
commit:
  description: The converged commit.
  returned: success
  type: dict
  contains:
    hash:
      description: Commit id.
      type: str
      sample: 4f1c2ab0d6e1c6f3f0b0b2b8e7f6d5c4b3a29180
    date:
      description: Author date (as werf uses), ISO 8601.
      type: str
    unix:
      description: Author date, seconds since the epoch.
      type: int
uncommitted:
  description: Paths with uncommitted changes; they are not part of the digests unless O(dev=true).
  returned: success
  type: list
  elements: str
images:
  description: One entry per image, in werf.yaml order.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Image name from werf.yaml.
      type: str
    digest:
      description: SHA-256 content digest (hex).
      type: str
    tag:
      description: Registry tag, equal to the digest.
      type: str
    repo:
      description: Registry repository of the image, C(<repo>/<name>).
      type: str
    ref:
      description: Full reference, C(<repo>/<name>:<tag>).
      type: str
    dockerfile:
      description: Dockerfile path relative to the project.
      type: str
    context:
      description: Build context directory relative to the project.
      type: str
    target:
      description: Dockerfile target stage, if any.
      type: str
    args:
      description: Build arguments from werf.yaml.
      type: dict
    dependencies:
      description: Dependencies with their imports.
      type: list
      elements: dict
    final:
      description: Whether the image is final (werf's C(final)).
      type: bool
    platform:
      description: Target platforms.
      type: list
      elements: str
    inputs:
      description: With O(explain=true), the ordered lines hashed into the digest.
      type: list
      elements: str
      returned: when O(explain=true)
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.berth.converge.plugins.module_utils.digest import compute_digests
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.project import load_project
from ansible_collections.berth.converge.plugins.module_utils.requirements import check_libraries
from ansible_collections.berth.converge.plugins.module_utils.validation import validate_module_params


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_dir=dict(type="path", required=True),
            config=dict(type="str", default="werf.yaml"),
            repo=dict(type="str"),
            env=dict(type="str"),
            revision=dict(type="str", default="HEAD"),
            dev=dict(type="bool", default=False),
            images=dict(type="list", elements="str"),
            explain=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    validate_module_params(module)
    check_libraries(module, "yaml", "git")
    p = module.params
    try:
        project = load_project(p["project_dir"], p["config"], p["revision"], p["dev"], p["env"])
        digests = compute_digests(project.git, project.config, repo=p["repo"], only=p["images"])
    except ConvergeError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(
        changed=False, project=project.config.project, env=p["env"], commit=project.git.commit.as_dict(),
        uncommitted=[] if p["dev"] else project.git.uncommitted_changes(),
        images=[d.as_dict(explain=p["explain"]) for d in digests],
    )


if __name__ == "__main__":
    main()
