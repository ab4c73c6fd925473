# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build images with a BuildKit daemon (``buildctl``) and push them straight from it to the registry.

The context is the same tar the Docker Engine builder gets (build.build_context), unpacked into a
temporary directory for ``buildctl --local``: one selection of files for the digest and both builders.
Registry credentials reach buildctl only through a temporary Docker config (mode 0600, removed after
the build), never on its command line or in the output. BuildKit pushes as part of the build, so a
failed push reruns the build (cached by the daemon) with the same backoff as the Docker builder.
"""

from __future__ import annotations

import base64
import io
import json
import os
import posixpath
import subprocess
import tarfile
import tempfile
import time

from ansible_collections.berth.converge.plugins.module_utils.build import (
    LABEL_PREFIX, LOG_TAIL, PUSH_ATTEMPTS, PUSH_BACKOFF, _is_auth_error)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.reference import parse_reference, split_written

BUILD_TIMEOUT = 3600  # seconds for one buildctl build
PROBE_TIMEOUT = 30

_UNREACHABLE = ("connection refused", "no such file or directory", "error while dialing", "no route to host",
                "i/o timeout", "deadline exceeded")
_TLS_REFUSED = ("certificate", "tls:", "x509:")
# a TLS server that rejects the client certificate may just hang up in the handshake
_HUNG_UP = ("broken pipe", "connection reset", "error reading server preface: eof")


class BuildKitConnection:
    """Where the BuildKit daemon is and how to reach it: ``unix://`` or ``tcp://`` with optional mutual TLS."""

    def __init__(self, buildctl, address, ca_cert=None, client_cert=None, client_key=None):
        if not address or "://" not in address:
            raise ConvergeError(f"buildkit_address must be unix://PATH or tcp://HOST:PORT, got {address!r}")
        if bool(client_cert) != bool(client_key):
            raise ConvergeError("buildkit_client_cert and buildkit_client_key must be given together")
        for option, path in (("buildkit_ca_cert", ca_cert), ("buildkit_client_cert", client_cert),
                             ("buildkit_client_key", client_key)):
            if path and not os.path.isfile(path):
                raise ConvergeError(f"{option}: no such file {path}")
        self.buildctl = buildctl
        self.address = address
        self._tls = []
        if ca_cert:
            self._tls += ["--tlscacert", ca_cert]
        if client_cert:
            self._tls += ["--tlscert", client_cert, "--tlskey", client_key]

    def command(self, *args):
        return [self.buildctl, "--addr", self.address, *self._tls, *args]

    def explain(self, stderr):
        """A clear message for a buildctl failure that is about the connection, else None."""
        text = stderr.lower()
        if "failed to solve" in text:  # the connection worked; the build failed
            return None
        if any(word in text for word in _UNREACHABLE):
            return f"cannot reach BuildKit at {self.address}: {_last_error(stderr)}"
        if any(word in text for word in _TLS_REFUSED) or (self.address.startswith("tcp://")
                                                          and any(word in text for word in _HUNG_UP)):
            return (f"BuildKit at {self.address} refused the TLS connection (check buildkit_ca_cert, "
                    f"buildkit_client_cert and buildkit_client_key): {_last_error(stderr)}")
        return None

    def check(self):
        """Fail early, with a clear message, when the daemon cannot be reached or refuses us.

        Returns the platforms its workers build (normalized, in the workers' order)."""
        proc = _run(self.command("debug", "workers", "--format", "{{json .}}"), timeout=PROBE_TIMEOUT)
        if proc.returncode != 0:
            raise ConvergeError(self.explain(proc.stderr)
                                or f"BuildKit at {self.address}: {_last_error(proc.stderr)}")
        try:
            workers = json.loads(proc.stdout or "[]")
        except ValueError:
            raise ConvergeError(f"BuildKit at {self.address}: cannot read its list of workers: {proc.stdout[:200]!r}")
        platforms = []
        for worker in workers or []:
            for item in worker.get("platforms") or []:
                parts = (item.get("os"), item.get("architecture"), item.get("variant"))
                text = normalize_platform("/".join(filter(None, parts)))
                if text not in platforms:
                    platforms.append(text)
        return platforms

    def check_platforms(self, images, supported):
        """Every platform of ``images`` (dicts from image_digest) is one ``supported`` lists, before any build."""
        for image in images:
            for platform in image.get("platform") or []:
                if normalize_platform(platform) not in supported:
                    raise ConvergeError(
                        f"image '{image['name']}': platform {platform} (werf.yaml `platform`) cannot be built by "
                        f"BuildKit at {self.address}, whose workers build {', '.join(supported) or 'nothing'}; "
                        "other architectures need a builder of that architecture or QEMU binfmt handlers on the "
                        "builder's host", image=image["name"], field="platform")


_NO_IMAGE_CONFIG = type("NoImageConfig", (), {"secrets": (), "network": None, "ssh": None})()
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "i386": "386", "aarch64": "arm64", "armhf": "arm",
                 "armel": "arm"}


def normalize_platform(text):
    """``os/arch[/variant]`` as containerd's platforms.Normalize writes it (arch aliases, default variants)."""
    os_name, arch, variant = (text.strip().lower().split("/") + ["", ""])[:3]
    variant = variant or {"armhf": "v7", "armel": "v6"}.get(arch, "")
    arch = _ARCH_ALIASES.get(arch, arch)
    if variant and variant[0].isdigit():
        variant = "v" + variant
    if (arch, variant) in (("arm64", "v8"), ("amd64", "v1")):
        variant = ""
    if arch == "arm" and not variant:
        variant = "v7"
    return "/".join(filter(None, (os_name, arch, variant)))


def _run(argv, timeout, env=None):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except FileNotFoundError:
        raise ConvergeError(f"buildctl_binary: {argv[0]} not found (install BuildKit's buildctl or set buildctl_binary)")
    except subprocess.TimeoutExpired:
        raise ConvergeError(f"buildctl did not finish in {timeout}s: {' '.join(argv[:4])} ...")


def _last_error(stderr):
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error:")]
    return (errors or lines or ["no output"])[-1]


def docker_config_for(registries, credentials_for, base_config_path=None):
    """The Docker config (dict) for buildctl: the user's config (if any) with explicit ``auths`` for ``registries``.

    ``credentials_for(host)`` returns registry.Credentials or None (resolved the same way as for the
    Docker builder, including credential helpers).
    """
    config = {}
    if base_config_path and os.path.isfile(base_config_path):
        try:
            with open(base_config_path, encoding="utf-8") as handle:
                config = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ConvergeError(f"cannot read the Docker config {base_config_path}: {exc}")
    auths = dict(config.get("auths") or {})
    for host in sorted(set(registries)):
        creds = credentials_for(host)
        if creds is None:
            continue
        if creds.identity_token:
            auths[host] = {"identitytoken": creds.identity_token}
        else:
            auths[host] = {"auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
        if host == "docker.io":  # Docker Hub's key in Docker configs
            auths["https://index.docker.io/v1/"] = auths[host]
        # these hosts are answered by the explicit auths above, not by a helper
        (config.get("credHelpers") or {}).pop(host, None)
    config["auths"] = auths
    return config


class BuildKitBuilder:
    """Builds and pushes images through a BuildKit daemon; the same interface as build.Builder."""

    def __init__(self, connection, project_name, commit, docker_config, insecure_registries=(),
                 config_digest_for=None, image_config_for=None, project_dir=".", cache_from=(), cache_to=None):
        self.connection = connection
        self.project_name = project_name
        self.commit = commit
        self._docker_config = docker_config          # dict written to a temporary DOCKER_CONFIG per build
        self._insecure = frozenset(host.lower() for host in insecure_registries)
        self._config_digest_for = config_digest_for  # (ref) -> image config digest from the registry
        self._image_config_for = image_config_for  # (image name) -> config.ImageConfig (secrets, network, ssh)
        self._project_dir = project_dir                        # where werf.yaml `src` paths start
        self._cache_from = tuple(cache_from)  # registry cache references; "{repo}" is the image's repository
        self._cache_to = cache_to
        self._config_digests = {}
        self._manifest_digests = {}

    def local_image_id(self, ref):
        """The image id (config digest) of ``ref``: nothing is pulled, BuildKit pulls what FROM names."""
        if ref in self._config_digests:
            return self._config_digests[ref]
        if self._config_digest_for is None:
            raise ConvergeError(f"the image id of {ref} is unknown")
        return self._config_digest_for(ref)

    def build(self, image, context_tar, build_args, sleep=time.sleep):
        """Build and push ``image``; returns (image id, log lines). Push failures rerun the build with backoff."""
        delay, attempt = PUSH_BACKOFF, 0
        with tempfile.TemporaryDirectory(prefix="berth-buildkit-") as tmp:
            context_dir = os.path.join(tmp, "context")
            _unpack(context_tar, context_dir)
            config_dir = os.path.join(tmp, "docker-config")
            os.mkdir(config_dir, 0o700)
            config_file = os.path.join(config_dir, "config.json")
            with os.fdopen(os.open(config_file, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as handle:
                json.dump(self._docker_config, handle)
            metadata_file = os.path.join(tmp, "metadata.json")
            argv = self._build_command(image, context_dir, build_args, metadata_file)
            argv += self._secret_options(image, tmp)
            env = dict(os.environ, DOCKER_CONFIG=config_dir)
            while True:
                attempt += 1
                proc = _run(argv, timeout=BUILD_TIMEOUT, env=env)
                log = [line for line in proc.stderr.splitlines() if line.strip()]
                if proc.returncode == 0:
                    break
                problem = self.connection.explain(proc.stderr)
                if problem:
                    raise ConvergeError(f"image '{image['name']}': {problem}")
                error = _last_error(proc.stderr)
                if not _is_push_error(proc.stderr):
                    tail = "\n".join(log[-LOG_TAIL:])
                    step = _failed_step(log)
                    raise ConvergeError(f"image '{image['name']}': build failed at {step or 'the start'}: {error}\n"
                                        f"last lines of the build log:\n{tail}", step=step, log=log[-LOG_TAIL:])
                if _is_auth_error(error) or attempt >= PUSH_ATTEMPTS:
                    raise ConvergeError(f"image '{image['name']}': push of {image['ref']} failed after {attempt} "
                                        f"attempt(s): {error}")
                sleep(delay)
                delay *= 2
            with open(metadata_file, encoding="utf-8") as handle:
                metadata = json.load(handle)
        self._manifest_digests[image["ref"]] = metadata.get("containerimage.digest")
        image_id = metadata.get("containerimage.config.digest")
        self._config_digests[image["ref"]] = image_id
        return image_id, log

    def push(self, image, sleep=time.sleep):
        """BuildKit pushed during build(); the manifest digest it reported."""
        digest = self._manifest_digests.get(image["ref"])
        if not digest:
            raise ConvergeError(f"image '{image['name']}': BuildKit reported no manifest digest for {image['ref']}")
        return digest

    def _secret_options(self, image, tmp):
        """``--secret`` options for the image's werf.yaml secrets; values go through 0600 files, never argv."""
        options = []
        for secret in self._image_config(image).secrets:
            where = f"image '{image['name']}': secret '{secret.id}'"
            if secret.env is not None:
                if secret.env not in os.environ:
                    raise ConvergeError(f"{where}: environment variable {secret.env} is not set")
                options += ["--secret", f"id={secret.id},env={secret.env}"]
                continue
            if secret.src is not None:
                path = os.path.join(self._project_dir, os.path.expanduser(secret.src))
                if not os.path.isfile(path):
                    raise ConvergeError(f"{where}: no such file {secret.src}")
            else:
                path = os.path.join(tmp, f"secret-{len(options)}")
                with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                               encoding="utf-8") as handle:
                    handle.write(secret.value)
            options += ["--secret", f"id={secret.id},src={path}"]
        return options

    def _image_config(self, image):
        return self._image_config_for(image["name"]) if self._image_config_for else _NO_IMAGE_CONFIG

    def _run_options(self, image):
        """werf.yaml ``network`` and ``ssh`` as buildctl options (the agent socket or keys stay on this host)."""
        config = self._image_config(image)
        options = []
        if config.network and config.network != "default":
            options += ["--opt", f"force-network-mode={config.network}"]
            if config.network == "host":
                options += ["--allow", "network.host"]
        if config.ssh:
            options += ["--ssh", config.ssh]
        return options

    def _build_command(self, image, context_dir, build_args, metadata_file):
        context = image.get("context") or "."
        dockerfile = posixpath.relpath(image["dockerfile"], context)
        labels = {
            f"{LABEL_PREFIX}.project": self.project_name,
            f"{LABEL_PREFIX}.image": image["name"],
            f"{LABEL_PREFIX}.digest": image["digest"],
            "org.opencontainers.image.revision": self.commit,
        }
        host = parse_reference(image["ref"]).registry.lower()
        output = f"type=image,name={image['ref']},push=true"
        if host in self._insecure:
            output += ",registry.insecure=true"
        argv = ["build", "--frontend", "dockerfile.v0", "--progress", "plain",
                "--local", f"context={context_dir}",
                "--local", f"dockerfile={os.path.join(context_dir, posixpath.dirname(dockerfile))}",
                "--opt", f"filename={posixpath.basename(dockerfile)}",
                "--output", output, "--metadata-file", metadata_file]
        if image.get("target"):
            argv += ["--opt", f"target={image['target']}"]
        if image.get("platform"):
            argv += ["--opt", f"platform={','.join(image['platform'])}"]
        repo = split_written(image["ref"])[0]
        for ref in self._cache_from:
            argv += ["--import-cache", f"type=registry,ref={ref.replace('{repo}', repo)}"]
        if self._cache_to:
            argv += ["--export-cache", f"type=registry,ref={self._cache_to.replace('{repo}', repo)},mode=max"]
        argv += self._run_options(image)
        for key, value in sorted(build_args.items()):
            argv += ["--opt", f"build-arg:{key}={value}"]
        for key, value in sorted(labels.items()):
            argv += ["--opt", f"label:{key}={value}"]
        return self.connection.command(*argv)


def _unpack(context_tar, directory):
    """Unpack the build-context tar (made by build_context, so no absolute or parent paths)."""
    os.mkdir(directory)
    with tarfile.open(fileobj=io.BytesIO(context_tar), mode="r:") as tar:
        for member in tar.getmembers():
            if member.name.startswith("/") or ".." in member.name.split("/"):
                raise ConvergeError(f"build context entry {member.name!r} leaves the context")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(directory, filter="tar")
        else:  # Python < 3.12 without the extraction filters; names were checked above
            tar.extractall(directory)  # noqa: S202


def _is_push_error(stderr):
    text = stderr.lower()
    return "failed to push" in text or "exporting to image" in text and "push" in text and "failed to solve" not in text


def _failed_step(log):
    """The Dockerfile step BuildKit reports as failed (``[stage 2/5] RUN ...``), if any."""
    for line in reversed(log):
        if line.startswith("#") and "[" in line and "]" in line and "ERROR" not in line:
            text = line.split(" ", 1)[1] if " " in line else line
            if text.startswith("["):
                return text
    return None
