#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_build
short_description: Build images from the commit with the Docker Engine and push the missing ones
version_added: 0.1.0
description:
  - Builds one image (O(image)) or several (O(images)) as returned by M(berth.converge.image_digest) and pushes
    them to their registry references. Images already in the registry are not built (unless O(force=true)).
  - The build context is made from the commit's tree (plus C(contextAddFiles) from the working tree), never from
    stray work-tree files, unless O(dev=true). C(.dockerignore) applies as in Docker.
  - Dependencies are built first; independent images are built concurrently (O(concurrency)). Dependency
    imports (C(ImageName), C(ImageTag), C(ImageRepo), C(ImageDigest), C(ImageID)) become build arguments.
  - Images get OCI labels recording the project, the commit and the digest.
  - A failed build fails with the Dockerfile step and the last lines of its log. A failed push is retried with
    backoff; registries create a tag only once the whole image is uploaded, so a failed push leaves no tag.
requirements:
  - PyYAML >= 6.0
  - GitPython >= 3.1.30
  - requests >= 2.28
author:
  - berth.converge contributors (!UNKNOWN)
extends_documentation_fragment:
  - berth.converge.attributes
  - berth.converge.registry
  - berth.converge.docker
attributes:
  check_mode:
    support: full
    details:
      - Reports which images would be built; builds and pushes nothing.
  diff_mode:
    support: none
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
  revision:
    description:
      - Git revision to build; it must be the one the image digests were computed for.
    type: str
    default: HEAD
  dev:
    description:
      - Build from the working tree instead of the commit.
    type: bool
    default: false
  env:
    description:
      - werf environment name, as werf's C(--env); a templated C(werf.yaml) sees it as C(.Env). Use the same
        value as for M(berth.converge.image_digest).
    type: str
  image:
    description:
      - One image, an element of RV(berth.converge.image_digest#module:images). Its dependencies must be in
        O(images) when it imports from them.
    type: dict
  images:
    description:
      - Images from M(berth.converge.image_digest). Without O(image), every image of this list that is not in
        the registry is built; with O(image), this list only supplies its dependencies.
    type: list
    elements: dict
    default: []
  force:
    description:
      - Build and push even when the reference is already in the registry.
    type: bool
    default: false
  require_built:
    description:
      - "Build nothing: fail, listing every image missing from the registry, when one is (werf's
        C(--require-built-images)). For pipelines that build in one job and deploy in another."
    type: bool
    default: false
  may_build:
    description:
      - "Build only these images (names): fail, listing every other image missing from the registry, when one
        is, before anything is built. A saved plan's images to build (see M(berth.converge.converge_plan)):
        an image the plan found in the registry and deleted since is not built again. C([]) is O(require_built)."
    type: list
    elements: str
  concurrency:
    description:
      - How many independent images to build at once.
    type: int
    default: 5
  builder:
    description:
      - C(docker) builds with the Docker Engine (O(docker_host)) and pushes from it.
      - C(buildkit) builds with a BuildKit daemon (O(buildkit_address)) through O(buildctl_binary), which
        pushes straight to the registry; it supports C(RUN --mount), heredocs, C(COPY --link) and the other
        Dockerfile features the classic builder lacks. The registry's CA must be trusted by the daemon.
        See docs/builders.md.
    type: str
    choices: [docker, buildkit]
    default: docker
  buildkit_address:
    description:
      - Address of the BuildKit daemon, C(unix:///run/buildkit/buildkitd.sock) or C(tcp://HOST:PORT).
      - Used with O(builder=buildkit).
    type: str
    default: unix:///run/buildkit/buildkitd.sock
  buildkit_ca_cert:
    description:
      - CA certificate that signed a C(tcp://) BuildKit daemon's certificate.
    type: path
  buildkit_client_cert:
    description:
      - Client certificate for a BuildKit daemon that requires mutual TLS; with O(buildkit_client_key).
    type: path
  buildkit_client_key:
    description:
      - Key of O(buildkit_client_cert).
    type: path
  cache_from:
    description:
      - With O(builder=buildkit), BuildKit registry caches to reuse layers from, e.g. V({repo}:cache);
        C({repo}) stands for each image's repository. A cache that does not exist yet is skipped.
    type: list
    elements: str
    default: []
  cache_to:
    description:
      - With O(builder=buildkit), the registry cache to write every layer of each build to (C(mode=max)),
        e.g. V({repo}:cache), so a fresh builder (a new CI runner) reuses the unchanged layers.
    type: str
  buildctl_binary:
    description:
      - BuildKit's C(buildctl), a name looked up on E(PATH) or a path.
    type: str
    default: buildctl
"""

EXAMPLES = r"""
- name: Compute the images of the commit
  berth.converge.image_digest:
    project_dir: /src/shop
    repo: registry.example.com/shop
  register: digests

- name: Build and push whatever the registry lacks
  berth.converge.image_build:
    project_dir: /src/shop
    revision: "{{ digests.commit.hash }}"
    images: "{{ digests.images }}"
    registry_username: ci
    registry_password: "{{ registry_token }}"
  register: built

- name: One line per image
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ 'built' if item.changed else 'present' }}"
  loop: "{{ built.images }}"
  loop_control:
    label: "{{ item.name }}"
  changed_when: item.changed
"""

RETURN = r"""
images:
  description: One entry per image considered, in the order given.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Image name.
      type: str
    ref:
      description: Registry reference.
      type: str
    changed:
      description: Whether the image was built and pushed (in check mode, whether it would be).
      type: bool
    image_id:
      description: Local image id of the build.
      type: str
    manifest_digest:
      description: Manifest digest in the registry.
      type: str
    log:
      description: Last lines of the build log.
      type: list
      elements: str
built:
  description: Names of the images built (or that would be built in check mode).
  returned: success
  type: list
  elements: str
missing:
  description: With O(require_built) or O(may_build), the images missing from the registry (C(name), C(ref)) that
    it may not build, when it fails.
  returned: failure
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.berth.converge.plugins.module_utils.build import Builder, build_context, build_missing
from ansible_collections.berth.converge.plugins.module_utils.buildkit import (
    BuildKitBuilder, BuildKitConnection, docker_config_for)
from ansible_collections.berth.converge.plugins.module_utils.common_args import (
    DOCKER_ARGS, DOCKER_ENV_FALLBACKS, REGISTRY_ARGS, REGISTRY_ENV_FALLBACKS, with_env_fallbacks)
from ansible_collections.berth.converge.plugins.module_utils.digest import compute_digests
from ansible_collections.berth.converge.plugins.module_utils.dockerfile import parse_dockerfile, uses_heredocs
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.project import load_project
from ansible_collections.berth.converge.plugins.module_utils.requirements import check_libraries
from ansible_collections.berth.converge.plugins.module_utils.registry import (
    client_from_params, credentials_from_params, docker_config_path)
from ansible_collections.berth.converge.plugins.module_utils.reference import parse_reference
from ansible_collections.berth.converge.plugins.module_utils.validation import validate_module_params


def _docker_factory(params):
    import docker

    # DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as the docker CLI reads them; docker_host wins
    settings = docker.utils.kwargs_from_env()
    if params["docker_host"]:
        settings["base_url"] = params["docker_host"]

    def factory():
        try:
            return docker.APIClient(timeout=params["docker_timeout"], **settings)
        except docker.errors.DockerException as exc:  # connection refused, missing socket, bad TLS settings
            address = settings.get("base_url") or "the default socket"
            raise ConvergeError(f"cannot reach the Docker daemon at {address} (option 'docker_host' or DOCKER_HOST; "
                                f"timeout docker_timeout={params['docker_timeout']}s): {exc}", option="docker_host")

    return factory


def _buildkit_builder(params, project, images, to_build):
    connection = BuildKitConnection(params["buildctl_binary"], params["buildkit_address"], params["buildkit_ca_cert"],
                                    params["buildkit_client_cert"], params["buildkit_client_key"])
    connection.check_platforms([image for image in images if image["name"] in to_build], connection.check())
    registries = {parse_reference(image["ref"]).registry for image in images}
    config = docker_config_for(registries, lambda host: credentials_from_params(params, host),
                               docker_config_path(params["docker_config"]))

    def config_digest_for(ref):
        with client_from_params(params) as registry:
            manifest = registry.manifest(ref)
        if manifest is None or manifest.is_index:
            raise ConvergeError(f"cannot find the image id of {ref} in the registry")
        return manifest.config_digest

    return BuildKitBuilder(connection, project.config.project, project.git.commit.hash, config,
                           params["insecure_registries"], config_digest_for, image_config_for=project.config.image,
                           project_dir=params["project_dir"], cache_from=params["cache_from"],
                           cache_to=params["cache_to"])


def plan(project, images):
    """Check the given image dicts against the commit; return the commit's ImageDigests by name."""
    digests = {d.name: d for d in compute_digests(project.git, project.config)}
    for image in images:
        ours = digests.get(image.get("name"))
        if ours is None:
            raise ConvergeError(f"image '{image.get('name')}' is not in {project.config.path} at commit "
                                f"{project.git.commit.hash[:12]}")
        if ours.digest != image.get("digest"):
            raise ConvergeError(f"image '{image['name']}': its digest at commit {project.git.commit.hash[:12]} is "
                                f"{ours.digest[:12]}, not {str(image.get('digest'))[:12]}; the images come from "
                                "another commit or dev mode setting")
        if not image.get("ref"):
            raise ConvergeError(f"image '{image['name']}' has no registry reference; run image_digest with `repo`")
    return digests


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_dir=dict(type="path", required=True),
            config=dict(type="str", default="werf.yaml"),
            revision=dict(type="str", default="HEAD"),
            dev=dict(type="bool", default=False),
            env=dict(type="str"),
            image=dict(type="dict"),
            images=dict(type="list", elements="dict", default=[]),
            force=dict(type="bool", default=False),
            require_built=dict(type="bool", default=False),
            may_build=dict(type="list", elements="str"),
            concurrency=dict(type="int", default=5),
            builder=dict(type="str", choices=["docker", "buildkit"], default="docker"),
            buildkit_address=dict(type="str", default="unix:///run/buildkit/buildkitd.sock"),
            buildkit_ca_cert=dict(type="path"),
            buildkit_client_cert=dict(type="path"),
            buildkit_client_key=dict(type="path", no_log=False),
            buildctl_binary=dict(type="str", default="buildctl"),
            cache_from=dict(type="list", elements="str", default=[]),
            cache_to=dict(type="str"),
            **with_env_fallbacks(REGISTRY_ARGS, REGISTRY_ENV_FALLBACKS),
            **with_env_fallbacks(DOCKER_ARGS, DOCKER_ENV_FALLBACKS),
        ),
        required_one_of=[("image", "images")],
        mutually_exclusive=[("force", "require_built"), ("force", "may_build")],
        supports_check_mode=True,
    )
    validate_module_params(module)
    check_libraries(module, "yaml", "git", "requests", *(["docker"] if module.params["builder"] == "docker" else []))
    p = module.params
    images = [dict(i) for i in p["images"]]
    if p["image"] and not any(i.get("name") == p["image"].get("name") for i in images):
        images.append(dict(p["image"]))
    wanted = {p["image"]["name"]} if p["image"] else {i.get("name") for i in images}
    try:
        project = load_project(p["project_dir"], p["config"], p["revision"], p["dev"], p["env"])
        digests = plan(project, images)
        with client_from_params(p) as registry:
            present, _missing = registry.lookup([image["ref"] for image in images])
        for image in images:
            image["manifest_digest"] = present.get(image["ref"])
        to_build = [i["name"] for i in images if i["name"] in wanted and (p["force"] or not i["manifest_digest"])]
        may_build = [] if p["require_built"] else p["may_build"]
        if may_build is not None and set(to_build) - set(may_build):
            missing = [{"name": i["name"], "ref": i["ref"]} for i in images
                       if i["name"] in to_build and i["name"] not in may_build]
            option = "require_built" if p["require_built"] else f"may_build ({', '.join(may_build) or 'none'})"
            module.fail_json(msg=f"{option}: not in the registry, and not built: "
                                 + ", ".join(f"{i['name']} ({i['ref']})" for i in missing), missing=missing)
        if module.check_mode:
            results = [{"name": i["name"], "ref": i["ref"], "changed": i["name"] in to_build, "image_id": None,
                        "manifest_digest": i["manifest_digest"], "log": []} for i in images if i["name"] in wanted]
            module.exit_json(changed=bool(to_build), images=results, built=to_build)

        def make_context(image):
            return build_context(project.git, digests[image["name"]])

        def auth_config_for(ref):
            creds = credentials_from_params(p, parse_reference(ref).registry)
            return creds.docker_auth_config() if creds else None

        config_by_name = {image.name: image for image in project.config.images}
        with_secrets = [name for name in to_build if config_by_name[name].secrets]
        if (p["cache_from"] or p["cache_to"]) and p["builder"] != "buildkit":
            raise ConvergeError("cache_from and cache_to need builder: buildkit")
        if with_secrets and p["builder"] != "buildkit":
            raise ConvergeError(f"image '{with_secrets[0]}': werf.yaml 'secrets' need builder: buildkit "
                                "(the Docker Engine's classic builder has no build secrets)")
        with_ssh_or_network = [name for name in to_build
                               if config_by_name[name].ssh or config_by_name[name].network not in (None, "default")]
        with_heredocs = [name for name in to_build if uses_heredocs(parse_dockerfile(
            digests[name].dockerfile_data.decode("utf-8", errors="replace"), digests[name].dockerfile))]
        if with_heredocs and p["builder"] != "buildkit":
            raise ConvergeError(f"image '{with_heredocs[0]}': {digests[with_heredocs[0]].dockerfile} uses heredocs "
                                "(<<EOF), which need builder: buildkit")
        if with_ssh_or_network and p["builder"] != "buildkit":
            raise ConvergeError(f"image '{with_ssh_or_network[0]}': werf.yaml 'ssh' and 'network' need builder: "
                                "buildkit")
        if p["builder"] == "buildkit":
            builder = _buildkit_builder(p, project, images, to_build)
        else:
            builder = Builder(_docker_factory(p), project.config.project, project.git.commit.hash, auth_config_for)
        results = build_missing(images, to_build, make_context, builder, concurrency=p["concurrency"])
    except ConvergeError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(changed=bool(to_build), built=to_build,
                     images=[r.as_dict() for r in results if r.name in wanted])


if __name__ == "__main__":
    main()
