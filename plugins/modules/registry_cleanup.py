#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_cleanup
short_description: Delete the images of a project that no cluster, Git reference or recent build needs
version_added: 0.1.0
description:
  - Cleans the registry repositories of the images of a project's C(werf.yaml) (C(<repo>/<image>)) as
    C(werf cleanup) does. Every tag is listed (all pages) and its manifest read; a tag is B(kept) when
    a release in one of O(clusters) uses it (the deployed and pending revisions and the last
    O(keep_release_revisions) revisions of each release, and the live Pods, Deployments, ReplicaSets, StatefulSets,
    DaemonSets, Jobs, CronJobs and ReplicationControllers of the release namespaces), when a Git tag or branch
    keeps it under werf's C(cleanup.keepPolicies) (werf's default policies when there are none), when it was built
    within the grace period, when it is not a content tag of this collection, or when it points to the same
    manifest as a kept tag. Every other tag is B(deleted) by manifest digest (the OCI distribution C(DELETE)).
  - The image of a commit is found by computing its content digest at that commit, as M(berth.converge.image_digest)
    does, so no metadata needs to be stored in the registry.
  - Before the first C(DELETE) the registry is asked whether it deletes manifests at all (a C(DELETE) of a digest no
    content can have); a registry that refuses (HTTP 405, distribution without C(storage.delete.enabled)) is an
    error and nothing is deleted. Right before deleting, the clusters and the tag lists are read again, so an image
    that a converge started to deploy, or a tag pushed meanwhile, is kept.
  - In check mode nothing is deleted; RV(images) is the plan.
  - Deleting manifests does not free storage; the garbage collection of the registry frees the blobs (see docs/cleanup.md).
author:
  - berth.converge contributors (!UNKNOWN)
extends_documentation_fragment:
  - berth.converge.attributes
  - berth.converge.registry
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  project_dir:
    description: The project's Git work tree (any directory inside it that holds C(werf.yaml)).
    type: path
    required: true
  config:
    description: Path of C(werf.yaml) in the project.
    type: str
    default: werf.yaml
  revision:
    description: The commit whose C(werf.yaml) names the images and holds the C(cleanup) section.
    type: str
    default: HEAD
  env:
    description: The werf environment, for a Go-templated C(werf.yaml).
    type: str
  repo:
    description: The project's repository, as given to the converge (images live in C(<repo>/<image>)).
    type: str
    required: true
  images:
    description: Clean only these images of C(werf.yaml) (default all).
    type: list
    elements: str
  clusters:
    description:
      - The clusters whose releases use the images. Required unless C(werf.yaml) sets
        C(cleanup.disableKubernetesBasedPolicy).
      - Each item takes the Kubernetes connection options of the modules (C(kubeconfig), C(context), C(host),
        C(api_key), C(ca_cert), C(client_cert), C(client_key), C(validate_certs)); an option not set falls back
        to its C(K8S_AUTH_*) environment variable, as for the other modules.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: A label for the reasons in the result (default the context, else the index).
        type: str
      releases:
        description:
          - The project's releases in this cluster; a release name (its namespace has the same name, as werf's
            defaults give) or a dict with C(name) and C(namespace).
        type: list
        elements: raw
        default: []
      namespaces:
        description: More namespaces whose live workloads keep images.
        type: list
        elements: str
        default: []
      kubeconfig:
        description: Path of the kubeconfig file.
        type: path
      context:
        description: The kubeconfig context.
        type: str
      host:
        description: The API server URL.
        type: str
      api_key:
        description: A bearer token for O(clusters[].host).
        type: str
      ca_cert:
        description: CA bundle of the API server.
        type: path
      client_cert:
        description: Client certificate.
        type: path
      client_key:
        description: Client key.
        type: path
      validate_certs:
        description: Verify the API server's certificate.
        type: bool
  keep_release_revisions:
    description:
      - How many of the newest revisions of each release keep their images (rollback targets), besides the deployed
        and pending ones.
    type: int
    default: 3
  grace_period:
    description:
      - Keep images built less than this long ago (a Go duration such as C(2h) or C(30m); C(0) turns it off).
      - Default C(cleanup.keepImagesBuiltWithinLastNHours) of C(werf.yaml) (werf's default, 2 hours).
    type: str
  concurrency:
    description: How many registry requests to run at once.
    type: int
    default: 16
requirements:
  - requests >= 2.28
  - kubernetes >= 24.2.0
  - GitPython
seealso:
  - module: berth.converge.registry_images
  - module: berth.converge.image_digest
"""

EXAMPLES = r"""
- name: Plan the cleanup (nothing is deleted)
  berth.converge.registry_cleanup:
    project_dir: /src/shop
    repo: registry.example.com/shop
    clusters:
      - name: production
        kubeconfig: ~/.kube/production
        releases: [shop-production]
      - name: staging
        kubeconfig: ~/.kube/staging
        releases:
          - {name: shop-staging, namespace: shop-staging}
  check_mode: true
  register: plan

- name: Clean up
  berth.converge.registry_cleanup:
    project_dir: /src/shop
    repo: registry.example.com/shop
    clusters: "{{ shop_clusters }}"
    registry_username: ci
    registry_password: "{{ registry_token }}"
  register: cleanup

- name: One line per image
  ansible.builtin.debug:
    msg: "{{ item.action }}: {{ item.reasons | join('; ') or 'no policy keeps it' }}"
  loop: "{{ cleanup.images }}"
  loop_control:
    label: "{{ item.image }}:{{ item.tag[:12] }}"
  changed_when: item.action == 'deleted'
"""

RETURN = r"""
images:
  description: Every tag of the cleaned repositories, with the decision and its reasons.
  returned: always
  type: list
  elements: dict
  contains:
    image:
      description: The image name in C(werf.yaml).
      type: str
    repository:
      description: The registry repository.
      type: str
    tag:
      description: The tag.
      type: str
    ref:
      description: C(repository:tag).
      type: str
    manifest_digest:
      description: The manifest digest the tag points to.
      type: str
    created:
      description: Build time from the image config (read only for tags no other rule keeps).
      type: str
    action:
      description: C(keep), C(delete) (check mode, or planned), or C(deleted).
      type: str
    reasons:
      description: Why it is kept (which release, workload, Git reference, grace period); empty when deleted.
      type: list
      elements: str
  sample:
    - image: backend
      repository: registry.example.com/shop/backend
      tag: 4f8ad1c1fb3b1a0cfd2a4e7d7c0dd2a5b5c1d8d8e9f0a1b2c3d4e5f6a7b8c9d0
      ref: registry.example.com/shop/backend:4f8ad1c1fb3b1a0cfd2a4e7d7c0dd2a5b5c1d8d8e9f0a1b2c3d4e5f6a7b8c9d0
      manifest_digest: sha256:0f3c8e1a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e
      created: "2026-11-30T10:00:00Z"
      action: keep
      reasons: ["used by release shop-production revision 7 (deployed) in namespace shop-production (cluster production)"]
deleted:
  description: The references deleted (in check mode, those that would be).
  returned: always
  type: list
  elements: str
kept:
  description: How many tags are kept.
  returned: always
  type: int
warnings_detail:
  description: Commits whose images could not be computed (their images count as unknown and are not kept by Git).
  returned: always
  type: list
  elements: str
skipped:
  description: Why nothing was done (C(cleanup.disable) in werf.yaml), else null.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.berth.converge.plugins.module_utils.common_args import (
    KUBE_ARGS, KUBE_ENV_FALLBACKS, REGISTRY_ARGS, REGISTRY_ENV_FALLBACKS, with_env_fallbacks)
from ansible_collections.berth.converge.plugins.module_utils.cleanup import Cleanup, Cluster, Options
from ansible_collections.berth.converge.plugins.module_utils.config import parse_duration
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.client import api_client
from ansible_collections.berth.converge.plugins.module_utils.registry import client_from_params
from ansible_collections.berth.converge.plugins.module_utils.requirements import KUBE_LIBRARIES, check_libraries
from ansible_collections.berth.converge.plugins.module_utils.validation import validate_module_params

CLUSTER_OPTIONS = dict(
    name=dict(type="str"),
    releases=dict(type="list", elements="raw", default=[]),
    namespaces=dict(type="list", elements="str", default=[]),
    **{key: {k: v for k, v in spec.items() if k != "aliases"} for key, spec in KUBE_ARGS.items()},
)


def release_pairs(items, where):
    """[(release, namespace)] of a cluster's ``releases``."""
    pairs = []
    for index, item in enumerate(items):
        if isinstance(item, str) and item:
            pairs.append((item, item))
        elif isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
            namespace = item.get("namespace") or item["name"]
            pairs.append((item["name"], namespace))
        else:
            raise ConvergeError(f"{where}.releases[{index}] must be a release name or a dict with 'name' "
                                f"(and 'namespace'), got {item!r}")
    return pairs


def with_kube_env(item):
    """A cluster item whose unset connection options fall back to the K8S_AUTH_* variables, as the modules' do."""
    item = dict(item)
    for key, variable in KUBE_ENV_FALLBACKS.items():
        if item.get(key) is None and os.environ.get(variable):
            value = os.environ[variable]
            item[key] = boolean(value) if key == "validate_certs" else value
    return item


def clusters_from_params(items):
    clusters = []
    for index, item in enumerate(items):
        item = with_kube_env(item)
        where = f"clusters[{index}]"
        label = item.get("name") or item.get("context") or str(index)
        releases = release_pairs(item.get("releases") or [], where)
        if not releases and not item.get("namespaces"):
            raise ConvergeError(f"{where} ({label}) names no releases and no namespaces: nothing to read there")
        try:
            api = api_client(item)
        except ConvergeError as exc:
            raise ConvergeError(f"{where} ({label}): {exc}") from None
        clusters.append(Cluster(label=label, api=api, releases=releases, namespaces=list(item.get("namespaces") or [])))
    return clusters


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_dir=dict(type="path", required=True),
            config=dict(type="str", default="werf.yaml"),
            revision=dict(type="str", default="HEAD"),
            env=dict(type="str"),
            repo=dict(type="str", required=True),
            images=dict(type="list", elements="str"),
            clusters=dict(type="list", elements="dict", default=[], options=CLUSTER_OPTIONS),
            keep_release_revisions=dict(type="int", default=3),
            grace_period=dict(type="str"),
            concurrency=dict(type="int", default=16),
            **with_env_fallbacks(REGISTRY_ARGS, REGISTRY_ENV_FALLBACKS),
        ),
        supports_check_mode=True,
    )
    validate_module_params(module)
    check_libraries(module, "requests", "yaml", "git", *(KUBE_LIBRARIES if module.params["clusters"] else ()))
    p = module.params
    try:
        grace = None
        if p["grace_period"] is not None:
            try:
                grace = parse_duration(p["grace_period"])
            except ValueError as exc:
                raise ConvergeError(f"grace_period: {exc}") from None
        options = Options(project_dir=p["project_dir"], repo=p["repo"], config_path=p["config"],
                          revision=p["revision"], env=p["env"], images=p["images"],
                          clusters=clusters_from_params(p["clusters"]), keep_revisions=p["keep_release_revisions"],
                          grace_seconds=grace, concurrency=p["concurrency"])
        with client_from_params(p, concurrency=p["concurrency"]) as registry:
            cleanup = Cleanup(options, registry)
            cleanup.plan()
            if module.check_mode:
                cleanup.check_deletes()
            else:
                cleanup.execute()
    except ConvergeError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    images = [state.as_dict() for state in cleanup.tags]
    removed = [image["ref"] for image in images if image["action"] != "keep"]
    for warning in cleanup.warnings:
        module.warn(warning)
    module.exit_json(changed=bool(removed), images=images, deleted=removed,
                     kept=sum(1 for image in images if image["action"] == "keep"),
                     warnings_detail=cleanup.warnings, skipped=cleanup.skipped,
                     msg=_summary(images, removed, module.check_mode, cleanup.skipped))


def _summary(images, removed, check_mode, skipped):
    if skipped:
        return f"nothing done: {skipped}"
    verb = "would delete" if check_mode else "deleted"
    return f"{verb} {len(removed)} of {len(images)} tags, kept {len(images) - len(removed)}"


if __name__ == "__main__":
    main()
