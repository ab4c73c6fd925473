# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content digests of the images of a commit (DESIGN.md section 4; algorithm in docs/image-digests.md).

The digest of an image is SHA-256 over a canonical list of lines ("inputs"): the algorithm version, the
cache versions and platform, the target stage chain's instructions after ARG expansion, the build args that
a declared ARG consumes, the dependency imports (by the dependency's digest), the Git object ids of exactly
the context paths its COPY/ADD sources select after .dockerignore, and the contents of contextAddFiles.
Committed file contents are never read: Git already hashed them. A directory that a source selects whole
and that no .dockerignore pattern can touch is represented by its tree id, so the cost follows the number
of sources, not the size of the repository.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ansible_collections.berth.converge.plugins.module_utils.config import dependency_order, join_path
from ansible_collections.berth.converge.plugins.module_utils.context import (
    read_added_files, select_context, source_specs)
from ansible_collections.berth.converge.plugins.module_utils.dockerfile import parse_dockerfile, resolve
from ansible_collections.berth.converge.plugins.module_utils.dockerignore import DockerIgnore
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

# Bump when the list of inputs or their form changes: every digest changes with it.
DIGEST_VERSION = 2


@dataclass
class ImageDigest:
    name: str
    digest: str
    dockerfile: str          # project-relative path
    context: str             # project-relative path ("" is the project root)
    target: str | None
    args: dict               # build args from werf.yaml
    dependencies: list       # [{"image", "imports": [{"type", "targetBuildArg"}]}]
    final: bool
    platform: list
    inputs: list = field(repr=False)
    repo: str | None = None  # registry repository of this image, e.g. 127.0.0.1:5000/shop/backend
    # what a build receives (context.select_context) and the digest covers: context.context_tar writes it
    context_entries: list = field(default_factory=list, repr=False)
    added_files: list = field(default_factory=list, repr=False)
    dockerfile_data: bytes = field(default=b"", repr=False)   # symlinks followed (read_dockerfile)

    @property
    def tag(self):
        return self.digest

    @property
    def ref(self):
        return f"{self.repo}:{self.tag}" if self.repo else None

    def as_dict(self, explain=False):
        result = {
            "name": self.name, "digest": self.digest, "tag": self.tag, "repo": self.repo, "ref": self.ref,
            "dockerfile": self.dockerfile, "context": self.context or ".", "target": self.target,
            "args": dict(self.args), "dependencies": self.dependencies, "final": self.final,
            "platform": list(self.platform),
        }
        if explain:
            result["inputs"] = list(self.inputs)
        return result


def image_repo(repo, name):
    """Registry repository of image ``name`` under the project repo (werf's per-image namespacing)."""
    return f"{repo.rstrip('/')}/{name}" if repo else None


def compute_digests(project, config, repo=None, only=None):
    """ImageDigest for each image of ``config`` (a WerfConfig) in dependency order.

    ``project`` is a git.GitProject; ``only`` restricts the result to these names (their dependencies are
    still computed, since their digests flow into the dependents').
    """
    if only:
        unknown = [name for name in only if name not in config.names]
        if unknown:
            raise ConvergeError(f"{config.path}: no image named {', '.join(map(repr, unknown))} "
                                f"(images: {', '.join(config.names)})")
    done = {}
    for image in dependency_order(config.images, config.path):
        done[image.name] = _image_digest(project, config, image, done, repo)
    wanted = set(only) if only else set(done)
    return [done[image.name] for image in config.images if image.name in wanted]


def _image_digest(project, config, image, done, repo):
    label = f"{config.path}:{image.line}: image '{image.name}'"
    dockerfile_text = read_dockerfile(project, image, label)
    if dockerfile_text is None:
        where = "the working tree" if project.dev else f"commit {project.commit.hash[:12]}"
        raise ConvergeError(f"{label}: dockerfile '{image.dockerfile}' (context '{image.context or '.'}') "
                            f"not found in {where}", file=config.path, field="dockerfile")
    dockerfile = parse_dockerfile(dockerfile_text.decode("utf-8", errors="replace"), image.dockerfile_path)

    imports = []
    build_args = dict(image.args)
    for dep in image.dependencies:
        for imp in dep.imports:
            imports.append(f"import {imp.type} {imp.target_build_arg} <- {dep.image} {done[dep.image].digest}")
            # an import sets its build arg, over a werf.yaml `args` value of the same name (as image_build does)
            build_args[imp.target_build_arg] = f"<{imp.type} of {dep.image}>"
    try:
        build = resolve(dockerfile, image.target, build_args)
    except ConvergeError as exc:
        raise ConvergeError(f"{label}: {exc}", file=config.path, field="target") from None

    inputs = [f"berth-digest-version {DIGEST_VERSION}"]
    if config.cache_version is not None:
        inputs.append(f"build.cacheVersion {config.cache_version}")
    if image.cache_version is not None:
        inputs.append(f"cacheVersion {image.cache_version}")
    platform = image.platform or config.platform
    if platform:
        inputs.append(f"platform {','.join(platform)}")
    if image.network not in (None, "default"):   # what RUN can reach changes what it makes
        inputs.append(f"network {image.network}")
    for stage in build.stages:
        inputs.append(f"stage {stage.index} {stage.name or ''}".rstrip())
        inputs.append(f"FROM {stage.base}")
        inputs.extend(stage.instructions)
    # import values are represented by the dependency digest; their placeholders are not inputs
    imported = {imp.target_build_arg for dep in image.dependencies for imp in dep.imports}
    for name in sorted(build.used_args):
        if name not in imported:
            inputs.append(f"arg {name}={build.used_args[name]}")
    inputs.extend(sorted(line for line in imports if line.split()[2] in build.used_args))
    entries = select_context(project, image.context, source_specs(build.context_sources, image.dockerfile_path),
                             _dockerignore(project, image))
    inputs.extend(f"context {e.kind} {e.mode} {e.oid} {e.path}" for e in entries)
    added = read_added_files(project.path, image.context, image.context_add_files, label)
    inputs.extend(f"contextAddFile {a.mode} {a.sha256} {a.path}" for a in added)
    for remote in build.remote_sources:
        inputs.append(f"remote {remote}")

    digest = hashlib.sha256("\n".join(inputs).encode()).hexdigest()
    return ImageDigest(
        name=image.name, digest=digest, dockerfile=image.dockerfile_path, context=image.context,
        target=image.target, args=dict(image.args),
        dependencies=[{"image": d.image, "imports": [{"type": i.type, "targetBuildArg": i.target_build_arg}
                                                     for i in d.imports]} for d in image.dependencies],
        final=image.final, platform=list(platform), inputs=inputs, repo=image_repo(repo, image.name),
        context_entries=entries, added_files=added, dockerfile_data=dockerfile_text)


def _dockerignore(project, image):
    """The Dockerfile-specific ignore file (BuildKit's <Dockerfile>.dockerignore) wins over the context's."""
    for path in (image.dockerfile_path + ".dockerignore", join_path(image.context, ".dockerignore")):
        text = project.read_blob(path)
        if text is not None:
            return DockerIgnore(text.decode("utf-8", errors="replace"), path)
    return DockerIgnore("", ".dockerignore")


SYMLINK_MODE = "120000"
SYMLINK_HOPS = 40  # as Linux's limit of nested links


def read_dockerfile(project, image, label):
    """The Dockerfile's bytes (None when absent). A Dockerfile committed as a symlink is followed, as Docker's
    builder follows it inside the context; a link leaving the context (or a loop) is an error naming it."""
    path = image.dockerfile_path
    for _hop in range(SYMLINK_HOPS):
        found = project.entry(path)
        if found is None or found.mode != SYMLINK_MODE:
            return project.read_blob(path)
        target = project.read_blob(path).decode("utf-8", errors="surrogateescape")
        if target.startswith("/"):
            raise ConvergeError(f"{label}: dockerfile '{path}' is a symlink to the absolute path '{target}'; "
                                "it must point inside the build context", field="dockerfile")
        try:
            path = join_path(path.rpartition("/")[0], target)
        except ConvergeError:
            path = None
        inside = path is not None and (not image.context or path.startswith(image.context + "/"))
        if not inside:
            raise ConvergeError(f"{label}: dockerfile '{image.dockerfile_path}' is a symlink to '{target}', "
                                f"outside the build context '{image.context or '.'}'", field="dockerfile")
    raise ConvergeError(f"{label}: dockerfile '{image.dockerfile_path}': too many levels of symlinks",
                        field="dockerfile")
