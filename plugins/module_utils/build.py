# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build images from the commit's tree with the Docker Engine and push them.

The build context holds exactly the files the image's digest covers (context.py: what its COPY/ADD sources
select in the converged Git tree, symlinks followed as BuildKit does, minus .dockerignore; contextAddFiles),
plus the Dockerfile; never stray work-tree files, unless dev mode. Pushes are retried with
backoff; a registry only creates a tag when the manifest upload completes, so a failed push leaves no tag.
"""

from __future__ import annotations

import io
import posixpath
import re
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ansible_collections.berth.converge.plugins.module_utils.context import context_tar
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.reference import split_written

LOG_TAIL = 20
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
PUSH_ATTEMPTS = 4
PUSH_BACKOFF = 1.0  # seconds, doubled after each failed attempt
LABEL_PREFIX = "io.berth.converge"


@dataclass
class BuildResult:
    name: str
    ref: str
    changed: bool
    image_id: str | None = None
    manifest_digest: str | None = None
    log: list = field(default_factory=list)

    def as_dict(self):
        return {"name": self.name, "ref": self.ref, "changed": self.changed, "image_id": self.image_id,
                "manifest_digest": self.manifest_digest, "log": self.log}


def build_context(project, image_digest):
    """Tar bytes of the build context of ``image_digest`` (a digest.ImageDigest of the same project):
    exactly the files its digest covers (context.select_context), plus the Dockerfile."""
    return context_tar(project, image_digest.context, image_digest.context_entries, image_digest.added_files,
                       dockerfile=posixpath.relpath(image_digest.dockerfile, image_digest.context or "."),
                       dockerfile_data=image_digest.dockerfile_data or None)


def import_values(image, images_by_name, local_image_id):
    """Build args for the werf dependency imports of ``image`` (a dict from image_digest).

    ImageDigest needs the dependency's manifest digest (known once it is in the registry);
    ImageID the local image id, which ``local_image_id(ref)`` returns.
    """
    values = {}
    for dep in image.get("dependencies") or []:
        source = images_by_name.get(dep["image"])
        if source is None:
            raise ConvergeError(f"image '{image['name']}' depends on '{dep['image']}', which is not in `images`")
        for imp in dep.get("imports") or []:
            kind = imp["type"]
            if kind == "ImageName":
                value = source["ref"]
            elif kind == "ImageTag":
                value = source["tag"]
            elif kind == "ImageRepo":
                value = source["repo"]
            elif kind == "ImageDigest":
                value = source.get("manifest_digest")
            else:  # ImageID
                value = local_image_id(source["ref"])
            if not value:
                raise ConvergeError(f"image '{image['name']}': import {kind} of '{dep['image']}' has no value yet; "
                                    f"'{dep['image']}' must be built and pushed first")
            values[imp["targetBuildArg"]] = value
    return values


class Builder:
    """Builds and pushes images through one Docker Engine; safe to use from several threads."""

    def __init__(self, docker_factory, project_name, commit, auth_config_for):
        self._docker_factory = docker_factory       # () -> docker.APIClient (one per thread)
        self.project_name = project_name
        self.commit = commit
        self._auth_config_for = auth_config_for     # (ref) -> dict | None

    def local_image_id(self, ref):
        """Id of the image ``ref`` in the Engine, pulled with our credentials first when it is not there.

        Dependencies are pulled before a build: the Engine's own FROM pull would only know the Docker
        config's credentials, not the module's.
        """
        api = self._docker_factory()
        try:
            return api.inspect_image(ref)["Id"]
        except Exception:  # not local (the SDK raises ImageNotFound or APIError): pull it
            try:
                api.pull(ref, auth_config=self._auth_config_for(ref))
                return api.inspect_image(ref)["Id"]
            except Exception as exc:  # the SDK's error types vary by version
                raise ConvergeError(f"cannot pull {ref}: {exc}")

    def build(self, image, context_tar, build_args):
        """Build ``image`` (dict from image_digest) and return (image_id, log lines)."""
        api = self._docker_factory()
        labels = {
            f"{LABEL_PREFIX}.project": self.project_name,
            f"{LABEL_PREFIX}.image": image["name"],
            f"{LABEL_PREFIX}.digest": image["digest"],
            "org.opencontainers.image.revision": self.commit,
        }
        log, step, image_id = [], None, None
        stream = api.build(fileobj=io.BytesIO(context_tar), custom_context=True, tag=image["ref"],
                           dockerfile=posixpath.relpath(image["dockerfile"], image["context"] or "."),
                           target=image.get("target") or None, buildargs=build_args, labels=labels,
                           rm=True, forcerm=True, decode=True, platform=(image.get("platform") or [None])[0])
        for chunk in stream:
            if "stream" in chunk:
                for line in ANSI_ESCAPE.sub("", chunk["stream"]).splitlines():
                    if line.strip():
                        log.append(line)
                        if line.startswith("Step "):
                            step = line
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                tail = "\n".join(log[-LOG_TAIL:])
                raise ConvergeError(f"image '{image['name']}': build failed at {step or 'the start'}: {detail}\n"
                                    f"last lines of the build log:\n{tail}", step=step, log=log[-LOG_TAIL:])
        if image_id is None:
            image_id = api.inspect_image(image["ref"])["Id"]
        return image_id, log

    def push(self, image, sleep=time.sleep):
        """Push the built tag; retried with backoff. Returns the manifest digest."""
        api = self._docker_factory()
        repo, tag = split_written(image["ref"])
        delay, last_error = PUSH_BACKOFF, None
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            digest, last_error = None, None
            for chunk in api.push(repo, tag=tag, stream=True, decode=True, auth_config=self._auth_config_for(image["ref"])):
                if "error" in chunk:
                    last_error = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                if "aux" in chunk and chunk["aux"].get("Digest"):
                    digest = chunk["aux"]["Digest"]
            if last_error is None and digest:
                return digest
            if _is_auth_error(last_error):
                break
            if attempt < PUSH_ATTEMPTS:
                sleep(delay)
                delay *= 2
        raise ConvergeError(f"image '{image['name']}': push of {image['ref']} failed after {attempt} attempt(s): "
                            f"{last_error or 'no digest reported'}")


def _is_auth_error(message):
    text = (message or "").lower()
    return any(word in text for word in ("unauthorized", "authentication required", "denied", "forbidden"))


def build_missing(images, missing_names, make_context, builder, concurrency=5):
    """Build and push the images named in ``missing_names``, dependencies first, independent ones concurrently.

    ``images`` are dicts from image_digest (each with ``ref``; present ones with ``manifest_digest``);
    ``make_context(image) -> tar bytes``. Returns BuildResult per image of ``images``, in order.
    A failure stops scheduling further builds and is raised after running builds finish.
    """
    by_name = {image["name"]: dict(image) for image in images}
    results = {name: BuildResult(name=name, ref=by_name[name]["ref"], changed=False,
                                 manifest_digest=by_name[name].get("manifest_digest"))
               for name in by_name}
    pending = [name for name in by_name if name in set(missing_names)]
    failures = []

    def deps_of(name):
        return [dep["image"] for dep in by_name[name].get("dependencies") or []]

    def run(name):
        image = by_name[name]
        build_args = dict(image.get("args") or {})
        for dep in deps_of(name):
            builder.local_image_id(by_name[dep]["ref"])
        build_args.update(import_values(image, by_name, builder.local_image_id))
        image_id, log = builder.build(image, make_context(image), build_args)
        digest = builder.push(image)
        image["manifest_digest"] = digest
        results[name] = BuildResult(name=name, ref=image["ref"], changed=True, image_id=image_id,
                                    manifest_digest=digest, log=log[-LOG_TAIL:])

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        running = {}
        while (pending or running) and not failures:
            ready = [n for n in pending if all(d not in pending and d not in running for d in deps_of(n))]
            if not ready and not running:
                raise ConvergeError(f"images {', '.join(pending)} wait on each other: dependency cycle")
            for name in ready:
                pending.remove(name)
                running[name] = pool.submit(run, name)
            done = wait(running.values(), return_when=FIRST_COMPLETED).done
            for name in [n for n, f in running.items() if f in done]:
                error = running.pop(name).exception()
                if error:
                    failures.append(error)
        for future in running.values():
            error = future.exception()
            if error:
                failures.append(error)
    if failures:
        raise failures[0]
    return [results[image["name"]] for image in images]
