# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Up-front checks of module options and manifests, so bad input fails with a message naming the option
(or the manifest and field) before anything is read from or written to a registry or cluster.

AnsibleModule checks types, choices and required options; these check the values. Options are checked by
name: the same name means the same thing in every module of the collection.
"""

from __future__ import annotations

import os
import re

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

# Helm's release name rule (pkg/chartutil ValidateReleaseName): a DNS subdomain of at most 53 characters.
RELEASE_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
RELEASE_NAME_MAX = 53
# A namespace is a DNS-1123 label.
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_LABEL_MAX = 63
DOCKER_HOST_SCHEMES = ("unix://", "tcp://", "http://", "https://", "ssh://", "npipe://")
KUBE_HOST_SCHEMES = ("http://", "https://")


def _fail(option, value, problem):
    raise ConvergeError(f"option '{option}': {value!r} {problem}", option=option)


def _at_least(minimum):
    def check(option, value):
        if isinstance(value, int) and value < minimum:
            _fail(option, value, f"must be {minimum} or more" if minimum else "must not be negative")
    return check


def _not_empty(option, value):
    if isinstance(value, str) and not value.strip():
        _fail(option, value, "must not be empty")


def _relative_path(option, value):
    _not_empty(option, value)
    if isinstance(value, str) and value.startswith("/"):
        _fail(option, value, "must be a path relative to project_dir, not an absolute path")


def _release_name(option, value):
    if len(value) > RELEASE_NAME_MAX or not RELEASE_NAME_RE.match(value):
        _fail(option, value, f"is not a valid release name: lower-case letters, digits, '-' and '.', starting and "
                             f"ending with a letter or digit, at most {RELEASE_NAME_MAX} characters (as Helm)")


def _namespace(option, value):
    if len(value) > DNS_LABEL_MAX or not DNS_LABEL_RE.match(value):
        _fail(option, value, f"is not a valid namespace name (a DNS label): lower-case letters, digits and '-', "
                             f"starting and ending with a letter or digit, at most {DNS_LABEL_MAX} characters")


def _repo(option, value):
    """A registry repository without tag or digest, e.g. 127.0.0.1:5000/shop."""
    from ansible_collections.berth.converge.plugins.module_utils.reference import parse_reference

    _not_empty(option, value)
    # A registry root (host:port, images go to host:port/<image>) is no name:tag.
    host, _colon, port = value.partition(":")
    registry_root = "/" not in value and port.isdigit() and ("." in host or host == "localhost")
    if "@" in value or (":" in value.rpartition("/")[2] and not registry_root):
        _fail(option, value, "must be a repository without a tag or digest (e.g. registry.example.com/shop): "
                             "tags are the images' content digests")
    try:
        parse_reference(value)
    except ConvergeError as exc:
        _fail(option, value, f"is not a registry repository: {exc}")


def _revision(option, value):
    if isinstance(value, int):
        _at_least(1)(option, value)
    else:
        _not_empty(option, value)


def _existing_file(option, value):
    # Empty means not given, as kubernetes.core takes an empty K8S_AUTH_* variable (CI systems export them so).
    if value == "":
        return
    if not os.path.isfile(value):
        _fail(option, value, "is not a file" if os.path.exists(value) else "does not exist")


def _url(schemes, what):
    def check(option, value):
        if not value.startswith(schemes):
            _fail(option, value, f"is not {what} ({', '.join(s[:-3] for s in schemes)})")
    return check


def _docker_host(option, value):
    _url(DOCKER_HOST_SCHEMES, "a Docker daemon address")(option, value)
    if value.startswith("unix://") and not os.path.exists(value[len("unix://"):]):
        _fail(option, value, "names a socket that does not exist")


def _image(option, value):
    if not isinstance(value.get("name"), str) or not value["name"]:
        _fail(option, value, "needs a 'name' (an image of werf.yaml)")


def _images(option, value):
    """chart_render/image_build/release_apply images: dicts as image_digest returns them."""
    for index, image in enumerate(value):
        if isinstance(image, dict):
            _image(f"{option}[{index}]", image)
            for key in ("ref", "repo", "tag", "digest"):
                if image.get(key) is not None and not isinstance(image[key], str):
                    _fail(f"{option}[{index}].{key}", image[key], "must be a string")


def _refs(option, value):
    """registry_images refs: image references, or dicts with one under 'ref'."""
    from ansible_collections.berth.converge.plugins.module_utils.reference import parse_reference

    for index, item in enumerate(value):
        ref = item.get("ref") if isinstance(item, dict) else item
        if isinstance(ref, str):
            try:
                parse_reference(ref)
            except ConvergeError as exc:
                raise ConvergeError(f"option '{option}[{index}]': {exc}", option=option)


def _strings(option, value):
    for index, item in enumerate(value):
        _not_empty(f"{option}[{index}]", item)


def _manifests(option, value):
    check_manifests(value, option)


def _resources(option, value):
    for index, item in enumerate(value):
        where = f"{option}[{index}]"
        if "metadata" in item:
            _check_metadata(item.get("metadata"), where)
        for key in ("apiVersion", "kind", "name", "namespace"):
            if item.get(key) is not None and not isinstance(item[key], str):
                _fail(f"{where}.{key}", item[key], "must be a string")


CHECKS = {
    "timeout": _at_least(0),
    "lock_timeout": _at_least(0),
    "concurrency": _at_least(1),
    "docker_timeout": _at_least(1),
    "revision": _revision,
    "release": _release_name,
    "namespace": _namespace,
    "repo": _repo,
    "project_dir": _not_empty,
    "config": _relative_path,
    "chart_dir": _relative_path,
    "helm_binary": _not_empty,
    "env": _not_empty,
    "project": _not_empty,
    "kubeconfig": _existing_file,
    "ca_cert": _existing_file,
    "client_cert": _existing_file,
    "client_key": _existing_file,
    "docker_host": _docker_host,
    "host": _url(KUBE_HOST_SCHEMES, "a Kubernetes API server URL"),
    "image": _image,
    "images": _images,
    "values_files": _strings,
    "secret_values_files": _strings,
    "insecure_registries": _strings,
    "refs": _refs,
    "manifests": _manifests,
    "resources": _resources,
}


def check_params(params, names=None):
    """Raise ConvergeError naming the first option (of ``names``, default all) whose value is not accepted."""
    for name in names or params:
        value = params.get(name)
        if value is not None and name in CHECKS:
            CHECKS[name](name, value)


def validate_module_params(module, **result):
    """Fail ``module`` with a message naming the option when one of its values is not accepted; ``result``
    goes into the failure (e.g. a masked ``invocation``)."""
    try:
        check_params(module.params, list(module.argument_spec))
    except ConvergeError as exc:
        module.fail_json(msg=str(exc), **exc.details, **result)


# ---- manifests: what the API server would reject or our code could not read, found before any write


def _check_string_map(value, where):
    if value is None:
        return
    if not isinstance(value, dict):
        raise ConvergeError(f"{where} must be a mapping of strings to strings, not a {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ConvergeError(f"{where}: {key!r}: {item!r} is not a string to string entry (quote the value)")


def _check_metadata(meta, where):
    if not isinstance(meta, dict):
        raise ConvergeError(f"{where}: metadata must be a mapping, not a {type(meta).__name__} ({meta!r})")
    for key in ("name", "namespace", "generateName"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise ConvergeError(f"{where}: metadata.{key} must be a string, not {meta[key]!r} (quote it)")
    _check_string_map(meta.get("labels"), f"{where}: metadata.labels")
    _check_string_map(meta.get("annotations"), f"{where}: metadata.annotations")


def check_manifests(manifests, what="manifests"):
    """Raise ConvergeError naming the manifest and field when a manifest's identity or metadata is malformed:
    apiVersion/kind/metadata.name strings, metadata.namespace a string, labels and annotations maps of
    strings. Run before anything is written, so a bad manifest leaves nothing behind."""
    for index, obj in enumerate(manifests or []):
        where = f"{what}[{index}]"
        if not isinstance(obj, dict):
            raise ConvergeError(f"{where} must be a mapping (a Kubernetes object), not a {type(obj).__name__}")
        for key in ("apiVersion", "kind"):
            if not isinstance(obj.get(key), str) or not obj[key]:
                raise ConvergeError(f"{where}: '{key}' must be a non-empty string, got {obj.get(key)!r}")
        where = f"{where} ({obj['kind']})"
        if "metadata" not in obj:
            raise ConvergeError(f"{where}: metadata is missing")
        _check_metadata(obj["metadata"], where)
        name = obj["metadata"].get("name")
        if not name:
            raise ConvergeError(f"{where}: metadata.name is missing or empty")
