# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a project's chart for one commit with werf's values.

Helm charts go through ``helm template``; Jinja2 templates (``*.j2``) are rendered here. Both see the
values werf injects (``.Values.werf.*``, ``.Values.global.werf.*``) and the ``werf_image`` helper.
The result is a list of Kubernetes objects in apply order.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import copy
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import traceback
import unicodedata
from pathlib import Path

try:
    import yaml
except ImportError:  # reported by the module (requirements.check_libraries)
    yaml = None

from ansible_collections.berth.converge.plugins.module_utils.config import DeployConfig, decode_config
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.git import GitProject
from ansible_collections.berth.converge.plugins.module_utils.reference import parse_repository, split_written
from ansible_collections.berth.converge.plugins.module_utils.kube_yaml import (
    KubeYAMLError, load_document, load_documents, split_documents)
from ansible_collections.berth.converge.plugins.module_utils.werf_secrets import (
    CHART_SECRET_VALUES_FILE,
    SecretValueError,
    decrypt_value,
    decrypt_values_text,
    find_secret_key,
    is_ansible_vault,
    masked_error,
    secret_strings,
)
from ansible_collections.berth.converge.plugins.module_utils.werf_template import go_time_string, load_werf_config

HELPERS_TEMPLATE_NAME = "_berth_converge_werf.tpl"
CHECKOUT_TREE = "tree"
EXPORT_VALUES_KEY = "export-values"
LOCAL_REPOSITORY_PREFIX = "file://"
WEIGHT_ANNOTATION = "werf.io/weight"
RELEASE_MAX_LENGTH = 53
NAMESPACE_MAX_LENGTH = 63

# The named template werf ships, so charts written for werf render unchanged. Subcharts only receive
# .Values.global, so it falls back to .Values.global.werf.images there.
WERF_HELPERS_TEMPLATE = """\
{{- define "werf_image" -}}
{{-   $name := index . 0 -}}
{{-   $values := (index . 1).Values.AsMap -}}
{{-   $ref := dig "werf" "image" $name "" $values -}}
{{-   if not $ref -}}
{{-     $ref = dig "global" "werf" "images" $name "ref" "" $values -}}
{{-   end -}}
{{-   required (printf "werf_image: image %q is not among the images given to chart_render" $name) $ref -}}
{{- end -}}
"""


class HelmInt64(int):
    """An integer Helm holds as int64 (werf's service values, a ``set`` integer), where a values file gives
    float64: charts print it as an integer, not as 1.796474609e+09."""


# ---------------------------------------------------------------------------------------------------
# Images and werf service values


def image_ref(images, name):
    """The full reference of image ``name`` in an ``image_digest``-style list of image dicts."""
    for image in images or []:
        if isinstance(image, dict) and image.get("name") == name:
            if not image.get("ref"):
                raise ConvergeError(f"image {name!r} has no 'ref'", image=name)
            return image["ref"]
    known = ", ".join(sorted(str(i.get("name")) for i in images or [] if isinstance(i, dict))) or "none"
    raise ConvergeError(f"image {name!r} is not among the images given (known: {known})", image=name)


def normalize_images(images):
    """Image dicts with ``name``, ``ref``, ``repo``, ``tag`` and ``digest``; the error names the bad entry."""
    out = []
    for index, image in enumerate(images or []):
        if not isinstance(image, dict) or not image.get("name") or not image.get("ref"):
            raise ConvergeError(f"images[{index}] needs at least 'name' and 'ref', got {image!r}")
        try:
            repo, tag = split_written(image["ref"])
        except ConvergeError as exc:
            raise ConvergeError(f"images[{index}] ({image['name']}): {exc}", image=image["name"])
        out.append({
            "name": image["name"],
            "ref": image["ref"],
            "repo": image.get("repo") or repo,
            "tag": image.get("tag") or tag,
            "digest": image.get("digest") or "",
        })
    return out


def split_registry(repo):
    """``(registry, repository)`` as Docker reads a repository name (reference.parse_repository)."""
    reference = parse_repository(repo)
    return reference.registry, reference.repository


def images_base_repo(images):
    """The repository all images were pushed under (each at ``<repo>/<name>``), or ``""`` when there is
    no single one."""
    bases = set()
    for image in images:
        suffix = "/" + image["name"]
        bases.add(image["repo"][: -len(suffix)] if image["repo"].endswith(suffix) else None)
    return (bases.pop() or "") if len(bases) == 1 else ""


def werf_values(*, project, images, commit, env, namespace, repo):
    """The service values werf passes to charts, plus ``global.werf.images`` for subcharts.

    ``images`` come from :func:`normalize_images`; ``commit`` is ``{"hash", "date", "unix"}``.
    """
    werf = {
        "name": project or "",
        "repo": repo,
        "env": env or "",
        "namespace": namespace,
        "image": {image["name"]: image["ref"] for image in images},
        "tag": {image["name"]: image["tag"] for image in images},
        "commit": {
            "hash": commit["hash"],
            "date": {"human": go_time_string(commit["date"]), "unix": HelmInt64(commit["unix"])},
        },
    }
    global_images = {}
    for image in images:
        registry, repository = split_registry(image["repo"])
        global_images[image["name"]] = {
            "registry": registry,
            "repository": repository,
            "tag": image["tag"],
            "digest": image["digest"],
            "ref": image["ref"],
        }
    global_werf = {"name": project or "", "images": global_images}
    return {"werf": werf, "global": {"env": env or "", "werf": global_werf}}


# ---------------------------------------------------------------------------------------------------
# Release and namespace names, slugified as werf does


def murmur3_32(data, seed=0):
    """MurmurHash3 x86 32-bit, the hash werf appends to slugs."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[whole:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


# Characters werf turns into a dash; every other character is transliterated to ASCII or dropped.
_DASH_CHARS = set("~><+=:;.,[]{}()_&-/ ") | {"\uff3f", "\uff5e"}


def _slug_char(char):
    if char in _DASH_CHARS:
        return "-"
    ascii_text = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode().lower()
    return "".join(c for c in ascii_text if c.isalnum())


def slugify(text):
    """Lower-case ASCII letters, digits and single dashes, no dash at either end."""
    out = []
    for char in text:
        piece = _slug_char(char)
        if not piece or (piece == "-" and (not out or out[-1] == "-")):
            continue
        out.append(piece)
    return "".join(out).rstrip("-")


def limited_slug(text, max_length):
    """werf's slug: the slugified text cut to fit, then ``-`` and the text's murmur3 hash (hex, unpadded)."""
    digest = format(murmur3_32(text.encode()), "x")
    slugged = slugify(text)[: max_length - len(digest) - 1]
    return f"{slugged}-{digest}" if slugged else digest


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _is_dns_subdomain(name):
    return len(name) <= 253 and all(_DNS_LABEL.match(part) for part in name.split("."))


def release_slug(name):
    """A Helm release name: kept when a valid DNS-1123 subdomain of at most 53 characters, else slugged."""
    if not name or (len(name) <= RELEASE_MAX_LENGTH and _is_dns_subdomain(name)):
        return name
    return limited_slug(name, RELEASE_MAX_LENGTH)


def namespace_slug(name):
    """A namespace: kept when a valid DNS-1123 label (at most 63 characters), else slugged."""
    if not name or (len(name) <= NAMESPACE_MAX_LENGTH and _DNS_LABEL.match(name)):
        return name
    return limited_slug(name, NAMESPACE_MAX_LENGTH)


_NAME_TEMPLATE_FIELD = re.compile(r"\[\[\s*(\w+)\s*\]\]")


def expand_name_template(template, project, env):
    """werf.yaml's ``[[ project ]]``/``[[ env ]]`` name templates; other expressions are an error."""
    def substitute(match):
        key = match.group(1)
        if key == "project":
            return project
        if key == "env":
            return env or ""
        raise ConvergeError(f"werf.yaml: unsupported expression [[ {key} ]] in {template!r}; "
                            "only [[ project ]] and [[ env ]] are supported")

    expanded = _NAME_TEMPLATE_FIELD.sub(substitute, template)
    if "[[" in expanded:
        raise ConvergeError(f"werf.yaml: unsupported name template {template!r}; "
                            "only [[ project ]] and [[ env ]] are supported")
    return expanded


def default_name_template(env):
    """werf's default release/namespace template: ``[[ project ]]-[[ env ]]``, or ``[[ project ]]`` without env."""
    return "[[ project ]]-[[ env ]]" if env else "[[ project ]]"


def release_and_namespace(options, project, deploy):
    """The release name and namespace: the options when given (validated), else werf's defaults, slugified.

    ``deploy`` is werf.yaml's DeployConfig; ``project`` the project name (option or werf.yaml).
    """
    release = options.release
    namespace = options.namespace
    if (not release or not namespace) and not project:
        raise ConvergeError("the project name is unknown: set 'project' or add 'project' to werf.yaml "
                            "(or give both 'release' and 'namespace')")
    if not release:
        release = expand_name_template(deploy.helm_release or default_name_template(options.env),
                                       project, options.env)
        release = release_slug(release) if deploy.helm_release_slug else release
    if not namespace:
        namespace = expand_name_template(deploy.namespace or default_name_template(options.env),
                                         project, options.env)
        namespace = namespace_slug(namespace) if deploy.namespace_slug else namespace
    if len(release) > RELEASE_MAX_LENGTH or not _is_dns_subdomain(release):
        raise ConvergeError(f"release name {release!r} is not a DNS-1123 subdomain of at most "
                            f"{RELEASE_MAX_LENGTH} characters")
    if len(namespace) > NAMESPACE_MAX_LENGTH or not _DNS_LABEL.match(namespace):
        raise ConvergeError(f"namespace {namespace!r} is not a DNS-1123 label of at most "
                            f"{NAMESPACE_MAX_LENGTH} characters")
    return release, namespace


# ---------------------------------------------------------------------------------------------------
# The project: werf.yaml (optional here) and the chart directory, from the commit or the working tree


def deploy_settings(git_project, config_path="werf.yaml", env=None):
    """``(project name or None, DeployConfig)`` from werf.yaml (rendered for the werf environment ``env``);
    werf's defaults when there is no werf.yaml."""
    data = git_project.read_blob(config_path)
    if data is None:
        return None, DeployConfig()
    config = load_werf_config(decode_config(data, config_path), config_path, git_project, env)
    return config.project, config.deploy


@contextlib.contextmanager
def chart_checkout(git_project, chart_dir):
    """A temporary copy of the chart directory: ``(workdir, chart_root)``; chart_root is None when absent."""
    with tempfile.TemporaryDirectory(prefix="berth-chart-") as workdir:
        tree = Path(workdir, CHECKOUT_TREE)
        found = git_project.extract(chart_dir, tree)
        yield Path(workdir), (tree / chart_dir if found else None)


# ---------------------------------------------------------------------------------------------------
# Values


def merge_values(base, override):
    """Helm's merge: maps merge recursively, anything else replaces, ``None`` removes the key."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


_PATH_PART = re.compile(r"((?:[^.\\\[]|\\.)+)((?:\[\d+\])*)")


def parse_value_path(key):
    """``a.b[0].c\\.d`` -> ``["a", "b", 0, "c.d"]`` (Helm's --set key syntax)."""
    parts = []
    pos = 0
    while pos < len(key):
        match = _PATH_PART.match(key, pos)
        if not match:
            raise ConvergeError(f"set: cannot parse the key {key!r}")
        parts.append(re.sub(r"\\(.)", r"\1", match.group(1)))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
        pos = match.end()
        if pos < len(key):
            if key[pos] != ".":
                raise ConvergeError(f"set: cannot parse the key {key!r}")
            pos += 1
    if not parts or key.endswith("."):
        raise ConvergeError(f"set: cannot parse the key {key!r}")
    return parts


def _assign(tree, path, value):
    node = tree
    for part, following in zip(path, path[1:] + [None]):
        empty = [] if isinstance(following, int) else {}
        if isinstance(part, int):
            node.extend([None] * (part + 1 - len(node)))
            if following is None:
                node[part] = value
            elif not isinstance(node[part], type(empty)):
                node[part] = empty
        else:
            if following is None:
                node[part] = value
            elif not isinstance(node.get(part), type(empty)):
                node[part] = empty
        if following is not None:
            node = node[part]


def _as_string(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


_SERVICE_VALUE_KEYS = (["werf"], ["global", "werf"], ["global", "env"])


def _check_not_service_value(key):
    path = parse_value_path(key)
    if any(path[: len(reserved)] == reserved for reserved in _SERVICE_VALUE_KEYS):
        raise ConvergeError(f"set: {key!r} is one of werf's service values, which chart_render sets itself")
    return path


def _escape_set_value(value):
    return value.replace("\\", "\\\\").replace(",", "\\,")


def helm_set_arguments(set_values, set_string_values, commit_unix):
    """Helm flags for ``set`` and ``set_string`` that keep each value's type as Helm's CLI would: integers
    through ``--set`` (int64), other values through ``--set-json``, ``set_string`` through ``--set-string``.
    The commit time goes last through ``--set`` so that it is an integer, as werf passes it."""
    arguments = []
    for key, value in (set_values or {}).items():
        _check_not_service_value(key)
        if isinstance(value, int) and not isinstance(value, bool):
            arguments += ["--set", f"{key}={value}"]
        else:
            arguments += ["--set-json", f"{key}={json.dumps(value)}"]
    for key, value in (set_string_values or {}).items():
        _check_not_service_value(key)
        arguments += ["--set-string", f"{key}={_escape_set_value(_as_string(value))}"]
    return arguments + ["--set", f"werf.commit.date.unix={commit_unix}"]


def _escape_set_key(part):
    return re.sub(r"([\\.=\[\],])", r"\\\1", part)


def _defines(tree, path):
    """Whether a values layer sets ``path`` or replaces a map on the way to it."""
    node = tree
    for part in path:
        if not isinstance(node, dict):
            return True
        if part not in node:
            return False
        node = node[part]
    return True


def int64_set_arguments(exports, higher_layers):
    """``--set`` flags for the integers of werf's export-values layer that Helm holds as int64 in the parent
    (:class:`HelmInt64`): written in a values file they would reach the subchart as float64. A path that a
    higher values layer sets (or removes) is left to it."""
    arguments = []

    def walk(node, path):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, path + [key])
            elif isinstance(value, HelmInt64) and not any(_defines(layer, path + [key]) for layer in higher_layers):
                arguments.extend(["--set", ".".join(_escape_set_key(part) for part in path + [key]) + f"={value}"])

    walk(exports, [])
    return arguments


def set_values_tree(set_values, set_string_values):
    """Nested values from ``set`` (typed as given) and ``set_string`` (as strings), in that order."""
    tree = {}
    for key, value in (set_values or {}).items():
        is_int = isinstance(value, int) and not isinstance(value, bool)  # given to Helm with --set, so int64
        _assign(tree, _check_not_service_value(key), HelmInt64(value) if is_int else value)
    for key, value in (set_string_values or {}).items():
        _assign(tree, _check_not_service_value(key), _as_string(value))
    return tree


def load_values_text(text, source, what="values file"):
    """A YAML mapping (a values file, Chart.yaml) as a dict; the error names the file."""
    try:
        data = load_document(text)  # as Helm reads values files and Chart.yaml: sigs.k8s.io/yaml
    except KubeYAMLError as exc:
        raise ConvergeError(f"{what} {source} is not valid YAML: {exc}", file=source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConvergeError(f"{what} {source} must hold a mapping, not {type(data).__name__}", file=source)
    return data


# ---------------------------------------------------------------------------------------------------
# Helm


def _write_chart_metadata(chart_root, chart_label, chart_name):
    # werf renders charts without Chart.yaml, or with name/version unset: it fills them in the same way.
    path = chart_root / "Chart.yaml"
    metadata = load_values_text(path.read_text(), f"{chart_label}/Chart.yaml", what="chart metadata") \
        if path.exists() else {"apiVersion": "v2"}
    if metadata.get("name") and metadata.get("version"):
        return
    metadata["name"] = metadata.get("name") or chart_name
    metadata["version"] = metadata.get("version") or "1.0.0"
    path.write_text(yaml.safe_dump(metadata))


def prepare_helm_chart(chart_root, chart_label, chart_name):
    """Ready the copy for Helm: metadata, the werf helpers, no Jinja2 files (Helm would render them).
    ``chart_label`` names the chart directory in errors."""
    _write_chart_metadata(chart_root, chart_label, chart_name)
    templates = chart_root / "templates"
    templates.mkdir(exist_ok=True)
    (templates / HELPERS_TEMPLATE_NAME).write_text(WERF_HELPERS_TEMPLATE)
    prepare_notes(templates)
    for jinja_file in chart_root.rglob("*.j2"):
        jinja_file.unlink()


NOTES_FILE = "NOTES.txt"
NOTES_HELPER = "_berth_converge_notes.tpl"
NOTES_API_VERSION = "berth.converge/v1"
NOTES_KIND = "RenderedNotes"


def prepare_notes(templates):
    """``helm template`` does not output templates/NOTES.txt: make it a marker document that carries the
    rendered text (Helm renders the main chart's notes only, and so does this)."""
    notes = templates / NOTES_FILE
    if not notes.is_file():
        return
    # No whitespace trimming around the body, so the text is exactly what Helm renders.
    (templates / NOTES_HELPER).write_text('{{- define "berth-converge.notes" }}' + notes.read_text(errors="replace")
                                          + "{{ end }}")
    (templates / "berth-converge-notes.yaml").write_text(
        f"apiVersion: {NOTES_API_VERSION}\nkind: {NOTES_KIND}\nmetadata:\n  name: notes\n"
        'text: {{ include "berth-converge.notes" . | toJson }}\n')
    notes.unlink()


# `helm template --include-crds` names the crds/ files of the chart and its subcharts as their source.
_CHART_CRDS_SOURCE = re.compile(r"^[^/]+(?:/charts/[^/]+)*/crds/")
_CHART_CRD_MARK = "__berth_converge_chart_crd__"


def mark_chart_crds(text):
    """The objects of ``helm template`` output; those of a crds/ directory carry a mark until split_chart_crds
    takes them apart (Helm installs them apart: created when absent, never owned by a release)."""
    objects = []
    for _line, chunk in split_documents(text):
        found = _SOURCE_COMMENT.search(chunk)
        parsed = parse_manifests(chunk)
        if found and _CHART_CRDS_SOURCE.match(found.group(1).strip()):
            parsed = [dict(obj, **{_CHART_CRD_MARK: True}) for obj in parsed]
        objects += parsed
    return objects


def split_chart_crds(objects):
    """``(objects, crds)``: the objects without those of the charts' crds/ directories, and those."""
    crds = [{k: v for k, v in obj.items() if k != _CHART_CRD_MARK} for obj in objects if obj.get(_CHART_CRD_MARK)]
    return [obj for obj in objects if not obj.get(_CHART_CRD_MARK)], crds


def chart_summary(chart_root, chart_label, default_name):
    """``{name, version, appVersion}`` of the rendered chart, as Helm records it (werf's defaults without
    Chart.yaml)."""
    metadata = chart_metadata(chart_root, chart_label) if chart_root is not None else {}
    return {"name": metadata.get("name") or default_name, "version": str(metadata.get("version") or "1.0.0"),
            "appVersion": str(metadata["appVersion"]) if metadata.get("appVersion") is not None else None}


def split_notes(objects):
    """``(objects, notes)``: the rendered objects without the notes marker, and the notes text ("" if none)."""
    marker = [o for o in objects if o.get("kind") == NOTES_KIND and o.get("apiVersion") == NOTES_API_VERSION]
    return [o for o in objects if not any(o is m for m in marker)], (marker[0].get("text") or "").strip() \
        if marker else ""


def is_helm_chart(chart_root):
    return any((chart_root / name).exists() for name in ("Chart.yaml", "templates", "crds"))


def helm_path(helm_binary):
    """The path of the Helm binary; the error says how to get one."""
    binary = shutil.which(helm_binary)
    if not binary:
        raise ConvergeError(f"Helm binary {helm_binary!r} not found; install Helm 3 or set helm_binary")
    return binary


def helm_template(chart_root, *, release, namespace, values_paths, set_arguments, helm_binary, context_arguments=()):
    """``helm template`` output; Helm's own message (naming file and line) on failure."""
    command = [helm_path(helm_binary), "template", release, str(chart_root), "--namespace", namespace,
               "--include-crds", *context_arguments]
    for path in values_paths:
        command += ["--values", str(path)]
    command += set_arguments
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:  # e.g. helm_binary is not an executable program
        raise ConvergeError(f"helm_binary {helm_binary!r} cannot be run: {exc}", option="helm_binary")
    if result.returncode != 0:
        message = result.stderr.replace("\n\nUse --debug flag to render out invalid YAML", "").strip()
        message = message.replace(f"templates/{NOTES_HELPER}", f"templates/{NOTES_FILE}")
        if not message:
            message = f"{command[0]} exited with status {result.returncode} and printed no error (helm_binary)"
        raise ConvergeError(f"helm template failed: {message}", stderr=result.stderr)
    return result.stdout


# ---------------------------------------------------------------------------------------------------
# Chart dependencies: local (file:// and charts/), OCI and HTTP chart repositories, built by Helm itself


def chart_metadata(chart_root, chart_label):
    """Chart.yaml of a chart directory as a dict ({} without one); ``chart_label`` names it in errors."""
    path = chart_root / "Chart.yaml"
    if not path.is_file():
        return {}
    return load_values_text(path.read_text(), f"{chart_label}/Chart.yaml", what="chart metadata")


def chart_dependencies(metadata, chart_label):
    """The ``dependencies`` of a Chart.yaml; each must be a mapping with a name."""
    dependencies = metadata.get("dependencies") or []
    if not isinstance(dependencies, list) or not all(isinstance(d, dict) and d.get("name") for d in dependencies):
        raise ConvergeError(f"{chart_label}/Chart.yaml: dependencies must be a list of mappings, each with a name",
                            file=f"{chart_label}/Chart.yaml")
    return dependencies


def local_dependency_path(dependency, chart_label):
    """The project path of a ``file://`` dependency of the chart at project path ``chart_label``; None for
    the other repositories."""
    repository = str(dependency.get("repository") or "")
    if not repository.startswith(LOCAL_REPOSITORY_PREFIX):
        return None
    path = os.path.normpath(os.path.join(chart_label, repository[len(LOCAL_REPOSITORY_PREFIX):]))
    if os.path.isabs(path) or path == ".." or path.startswith("../"):
        raise ConvergeError(f"{chart_label}/Chart.yaml: dependency {dependency['name']}: {repository} is outside "
                            "the project directory", file=f"{chart_label}/Chart.yaml")
    return path


def extract_local_dependencies(git_project, tree, chart_label):
    """Write the ``file://`` dependencies of the chart, and theirs, from the commit (or the working tree in
    dev mode) into ``tree``, where their relative paths point."""
    pending, seen = [chart_label], {chart_label}
    while pending:
        current = pending.pop()
        for dependency in chart_dependencies(chart_metadata(tree / current, current), current):
            path = local_dependency_path(dependency, current)
            if path is None or path in seen:
                continue
            if not git_project.extract(path, tree):
                raise ConvergeError(f"{current}/Chart.yaml: dependency {dependency['name']}: "
                                    f"{dependency['repository']} is not a directory in {git_project.describe()}",
                                    file=f"{current}/Chart.yaml")
            seen.add(path)
            pending.append(path)


def _archive_chart_name(path):
    """The chart name in a chart archive, or None when it is unreadable (Helm then says why)."""
    try:
        with tarfile.open(path) as archive:
            member = next((m for m in archive.getmembers()
                           if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml")), None)
            text = archive.extractfile(member).read().decode("utf-8", errors="replace") if member else ""
            return (load_document(text) or {}).get("name")
    except (tarfile.TarError, OSError, KubeYAMLError, AttributeError):
        return None


def present_charts(chart_root):
    """Names of the charts in charts/, unpacked or archived."""
    names = set()
    charts = chart_root / "charts"
    for entry in sorted(charts.iterdir()) if charts.is_dir() else []:
        if (entry / "Chart.yaml").is_file():
            names.add(chart_metadata(entry, str(entry)).get("name"))
        elif entry.name.endswith((".tgz", ".tar.gz")):
            names.add(_archive_chart_name(entry))
    return names


def helm_state_env(helm_home):
    """Environment that gives Helm its own repositories, caches and registry logins under ``helm_home``: the
    user's Helm state is neither needed nor touched."""
    home = Path(helm_home)
    return {"HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"), "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"),
            "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
            "HELM_REGISTRY_CONFIG": str(home / "config" / "registry" / "config.json")}


# Helm reads both; werf writes requirements.lock for some charts whatever their apiVersion.
LOCK_FILES = ("Chart.lock", "requirements.lock")


def _pin_locked_versions(chart_root, metadata, dependencies):
    """Helm cannot check a lock file against a Chart.yaml with werf's export-values (werf's lock digest
    covers fields Helm does not know): pin the locked versions in Chart.yaml and let Helm resolve those."""
    lock_paths = [chart_root / name for name in LOCK_FILES if (chart_root / name).is_file()]
    if not lock_paths or not any(EXPORT_VALUES_KEY in d for d in dependencies):
        return
    lock = load_values_text(lock_paths[0].read_text(), lock_paths[0].name, what="chart lock file")
    locked = {d.get("name"): d.get("version") for d in lock.get("dependencies") or [] if isinstance(d, dict)}
    for dependency in dependencies:
        dependency["version"] = locked.get(dependency["name"]) or dependency.get("version")
    (chart_root / "Chart.yaml").write_text(yaml.safe_dump(metadata))
    for lock_path in lock_paths:
        lock_path.unlink()


def _dependency_error(chart_label, stderr, dependencies):
    message = "\n".join(line.removeprefix("Error: ") for line in stderr.strip().splitlines()[-3:])
    named = [d["name"] for d in dependencies if d["name"] in message]
    listed = "" if named else " (dependencies: " + ", ".join(
        f"{d['name']} from {d.get('repository') or 'charts/'}" for d in dependencies) + ")"
    return ConvergeError(f"{chart_label}/Chart.yaml: helm dependency build failed{listed}: {message}",
                         file=f"{chart_label}/Chart.yaml", stderr=stderr)


def build_dependencies(chart_root, chart_label, helm_binary, helm_home, seen=None):
    """Build the chart's dependencies with ``helm dependency build`` (file:// ones first, recursively) when
    one is missing from charts/; returns the chart's dependency list. Errors name the dependency and give
    Helm's message. ``seen`` holds the charts already built."""
    seen = seen if seen is not None else {chart_label}
    metadata = chart_metadata(chart_root, chart_label)
    dependencies = chart_dependencies(metadata, chart_label)
    for dependency in dependencies:
        path = local_dependency_path(dependency, chart_label)
        if path is not None and path not in seen:
            seen.add(path)
            local_root = Path(os.path.normpath(chart_root / os.path.relpath(path, chart_label)))
            build_dependencies(local_root, path, helm_binary, helm_home, seen)
    present = present_charts(chart_root)
    if all(dependency["name"] in present for dependency in dependencies):
        return dependencies
    _pin_locked_versions(chart_root, metadata, dependencies)
    result = subprocess.run([helm_path(helm_binary), "dependency", "build", str(chart_root)], capture_output=True,
                            text=True, check=False, env={**os.environ, **helm_state_env(helm_home)})
    if result.returncode != 0:
        raise _dependency_error(chart_label, result.stderr, dependencies)
    return dependencies


def _export_pairs(dependency, chart_label):
    """``(parent path, child path)`` of each entry of a dependency's werf export-values; a string entry
    exports ``exports.<entry>`` to the child's root, as werf does."""
    entries = dependency.get(EXPORT_VALUES_KEY) or []
    where = f"{chart_label}/Chart.yaml: dependency {dependency['name']}: {EXPORT_VALUES_KEY}"
    if not isinstance(entries, list):
        raise ConvergeError(f"{where} must be a list", file=f"{chart_label}/Chart.yaml")
    pairs = []
    for index, entry in enumerate(entries):
        if isinstance(entry, str):
            pairs.append(("exports" if entry.strip() in ("", ".") else f"exports.{entry.strip()}", ""))
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("parent"), str)
                and isinstance(entry.get("child"), str)) or entry["parent"].strip() in ("", "."):
            raise ConvergeError(f"{where}[{index}] must be a string or a mapping with a parent path and a child "
                                f"path (strings), got {entry!r}", file=f"{chart_label}/Chart.yaml")
        child = entry["child"].strip()
        pairs.append((entry["parent"].strip(), "" if child == "." else child))
    return pairs


def _value_at(values, path):
    node = values
    for part in path.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return None
        node = node[part]
    return node


def _nested(path, value):
    for part in reversed(path.split(".")):
        value = {part: value}
    return value


def _archive_files(data, label):
    """{path inside the chart: bytes} of the chart files exports need (Chart.yaml, values.yaml, charts/)
    in a chart archive, whose members all sit under one top directory."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            files = {}
            for member in archive.getmembers():
                _top, _slash, inner = member.name.partition("/")
                if member.isfile() and _wanted_chart_file(inner):
                    files[inner] = archive.extractfile(member).read()
            return files
    except (tarfile.TarError, OSError) as exc:
        raise ConvergeError(f"{label}: unreadable chart archive: {exc}", file=label)


def _directory_files(root):
    charts = root / "charts"
    paths = [root / name for name in ("Chart.yaml", "values.yaml")] + (
        sorted(charts.rglob("*")) if charts.is_dir() else [])
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in paths if path.is_file()}


def _wanted_chart_file(path):
    return path in ("Chart.yaml", "values.yaml") or path.startswith("charts/")


@dataclasses.dataclass
class ChartTree:
    """What export-values needs of a chart and of every chart below it: metadata, values.yaml, subcharts.

    Helm rewrites Chart.yaml when it packages a chart and drops werf's export-values, so a ``file://``
    dependency is read from its source directory in ``checkout``, not from the archive Helm made of it."""

    label: str
    metadata: dict
    values: dict
    subcharts: list
    checkout: Path | None = None

    @classmethod
    def of_directory(cls, root, label, checkout=None):
        return cls.of_files(_directory_files(root), label, checkout)

    @classmethod
    def of_files(cls, files, label, checkout=None):
        def loaded(name, what):
            text = files[name].decode("utf-8", errors="replace") if name in files else ""
            return load_values_text(text, f"{label}/{name}", what=what) if text else {}

        subcharts = []
        for name in sorted({path.split("/")[1] for path in files if path.count("/") >= 2}):
            prefix = f"charts/{name}/"
            inner = {path[len(prefix):]: data for path, data in files.items() if path.startswith(prefix)}
            if "Chart.yaml" in inner:
                subcharts.append(cls.of_files(inner, f"{label}/charts/{name}", checkout))
        for path in sorted(files):
            if path.count("/") == 1 and path.endswith((".tgz", ".tar.gz")):
                archived = _archive_files(files[path], f"{label}/{path}")
                if "Chart.yaml" in archived:
                    subcharts.append(cls.of_files(archived, f"{label}/{path}"))
        return cls(label, loaded("Chart.yaml", "chart metadata"), loaded("values.yaml", "values file"), subcharts,
                   checkout)

    def dependency_chart(self, dependency):
        """The chart a dependency of this chart names: its source for ``file://``, else the one in charts/."""
        path = local_dependency_path(dependency, self.label) if self.checkout else None
        if path is not None and (self.checkout / path / "Chart.yaml").is_file():
            return ChartTree.of_directory(self.checkout / path, path, self.checkout)
        return next((chart for chart in self.subcharts if chart.metadata.get("name") == dependency["name"]), None)


def exported_values(chart, parent_values):
    """The values werf's ``export-values`` gives the dependencies of ``chart`` and, through theirs, every chart
    below it, as one values layer for the root chart: keyed by alias (else name) at each level. Each chart
    exports from its own computed values (its values.yaml under what its parent gives it, globals included).
    A parent path that holds nothing exports nothing, as in werf."""
    exports = {}
    for dependency in chart_dependencies(chart.metadata, chart.label):
        key = dependency.get("alias") or dependency["name"]
        layer = {}
        for parent, child in _export_pairs(dependency, chart.label):
            value = copy.deepcopy(_value_at(parent_values, parent))
            if value is None:
                continue
            if not child and not isinstance(value, dict):
                raise ConvergeError(f"{chart.label}/Chart.yaml: dependency {dependency['name']}: {EXPORT_VALUES_KEY} "
                                    f"parent {parent} is not a mapping, so it needs a child path",
                                    file=f"{chart.label}/Chart.yaml")
            layer = merge_values(layer, _nested(child, value) if child else value)
        subchart = chart.dependency_chart(dependency)
        if subchart is not None:
            given = parent_values.get(key) if isinstance(parent_values.get(key), dict) else {}
            child_values = merge_values(subchart.values, merge_values(layer, given))
            globals_ = parent_values.get("global") if isinstance(parent_values.get("global"), dict) else {}
            child_values["global"] = merge_values(child_values.get("global") or {}, globals_)
            layer = merge_values(exported_values(subchart, child_values), layer)
        if layer:
            exports = merge_values(exports, {key: layer})
    return exports


# ---------------------------------------------------------------------------------------------------
# Jinja2


def jinja_template_names(chart_root):
    """``*.j2`` files under the chart, except partials (``_*``), sorted."""
    return sorted(
        path.relative_to(chart_root).as_posix()
        for path in chart_root.rglob("*.j2")
        if path.is_file() and not path.name.startswith("_")
    )


def _jinja_error_location(exc, chart_root, name):
    if getattr(exc, "lineno", None):
        return f"{getattr(exc, 'name', None) or name}:{exc.lineno}"
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename and Path(frame.filename).is_relative_to(chart_root):
            return f"{Path(frame.filename).relative_to(chart_root).as_posix()}:{frame.lineno}"
    return name


def render_jinja_templates(chart_root, names, *, values, release, namespace, images, label=""):
    """Rendered text of each Jinja2 template: ``[(label + name, text)]``. Errors name the template (with
    the ``label`` prefix, such as the chart directory) and the line."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(chart_root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters.update(to_json=json.dumps, to_yaml=lambda data: yaml.safe_dump(data, sort_keys=False))
    environment.globals.update(
        Values=values,
        werf=values.get("werf", {}),
        Release={"Name": release, "Namespace": namespace},
        werf_image=lambda name: image_ref(images, name),
    )
    rendered = []
    for name in names:
        try:
            rendered.append((label + name, environment.get_template(name).render()))
        except (jinja2.TemplateError, ConvergeError) as exc:
            location = label + _jinja_error_location(exc, chart_root, name)
            raise ConvergeError(f"Jinja2 template {location}: {exc}", template=label + name)
    return rendered


# ---------------------------------------------------------------------------------------------------
# Parsing and ordering


_SOURCE_COMMENT = re.compile(r"^# Source: (.+)$", re.MULTILINE)


def _expand_lists(doc):
    if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        return [item for item in doc["items"] if item is not None]
    return [doc]


def _check_object(doc, source):
    if not isinstance(doc, dict):
        raise ConvergeError(f"{source}: a rendered document is a {type(doc).__name__}, not a Kubernetes object",
                            template=source)
    if not doc.get("apiVersion") or not doc.get("kind"):
        raise ConvergeError(f"{source}: a rendered object has no apiVersion or kind: {str(doc)[:200]}",
                            template=source)


def _source_comments(text):
    """``[(line, template)]`` of Helm's ``# Source:`` comments."""
    return [(text.count("\n", 0, match.start()) + 1, match.group(1).strip())
            for match in _SOURCE_COMMENT.finditer(text)]


def _source_at(comments, line, default):
    """``(line of the comment, template)`` of the last ``# Source:`` comment up to ``line``, else (0, default)."""
    index = bisect.bisect_right(comments, (line, "\uffff"))
    return comments[index - 1] if index else (0, default)


def parse_manifests(text, source=None):
    """Kubernetes objects in multi-document YAML, read exactly as ``kubectl apply -f`` reads them (kube_yaml);
    empty documents are dropped. Errors name the source template, taken from Helm's ``# Source:`` comments
    (or ``source``), and the line in its rendered output."""
    comments = _source_comments(text)
    try:
        documents = load_documents(text)
    except KubeYAMLError as exc:
        comment_line, template = _source_at(comments, exc.line or 0, source)
        where = f"line {exc.line - comment_line}: " if exc.line else ""
        raise ConvergeError(f"rendered YAML of {template or 'the chart'} is invalid: {where}{exc.problem}",
                            template=template)
    objects = []
    for document in documents:
        _comment_line, template = _source_at(comments, document.line, source)
        _check_object(document.value, template)
        for item in _expand_lists(document.value):
            _check_object(item, template)
            objects.append(item)
    return objects


def _weight(manifest):
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(WEIGHT_ANNOTATION, 0)
    try:
        return int(raw)
    except (TypeError, ValueError):
        name = (manifest.get("metadata") or {}).get("name")
        raise ConvergeError(f"{manifest['kind']}/{name}: annotation {WEIGHT_ANNOTATION} must be an integer, "
                            f"got {raw!r}", resource=f"{manifest['kind']}/{name}")


def _apply_group(manifest):
    if manifest["kind"] == "CustomResourceDefinition":
        return (0, 0)
    if manifest["kind"] == "Namespace" and manifest["apiVersion"] == "v1":
        return (1, 0)
    return (2, _weight(manifest))


def order_manifests(manifests):
    """Apply order: CRDs, Namespaces, then ``werf.io/weight`` ascending; stable within a group."""
    return sorted(manifests, key=_apply_group)


# ---------------------------------------------------------------------------------------------------
# The whole render


@dataclasses.dataclass
class RenderOptions:
    """Inputs of :func:`render_chart`; names as the chart_render module options."""

    project_dir: str
    config: str = "werf.yaml"
    chart_dir: str | None = None
    commit: str = "HEAD"
    dev: bool = False
    images: list = dataclasses.field(default_factory=list)
    repo: str | None = None
    env: str | None = None
    release: str | None = None
    namespace: str | None = None
    values_files: list = dataclasses.field(default_factory=list)
    secret_values_files: list = dataclasses.field(default_factory=list)
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    set_values: dict = dataclasses.field(default_factory=dict)
    set_string_values: dict = dataclasses.field(default_factory=dict)
    allow_empty: bool = False
    helm_binary: str = "helm"
    project: str | None = None
    # (release, namespace) -> ReleaseContext; None renders as a first install on a default cluster.
    release_context: object = None


@dataclasses.dataclass(frozen=True)
class ReleaseContext:
    """What a chart sees of the release and the cluster: ``.Release.Revision``, ``.Release.IsUpgrade``
    (else ``.Release.IsInstall``) and ``.Capabilities`` (kube version, API versions)."""

    revision: int = 1
    is_upgrade: bool = False
    kube_version: str | None = None
    api_versions: tuple = ()

    def helm_arguments(self):
        arguments = ["--is-upgrade"] if self.is_upgrade else []
        if self.kube_version:
            arguments += ["--kube-version", self.kube_version]
        if self.api_versions:
            arguments += ["--api-versions", ",".join(self.api_versions)]
        return arguments


# `.Release.Revision` however the root context is reached: `.`, `$`, `$root`, `.root`, ...
_RELEASE_REVISION = re.compile(r"(?<![\w)\]])(?:\$\w*)?(?:\.\w+)*?\.Release\.Revision\b")


def pin_release_revision(tree, revision):
    """Helm's template command always renders revision 1: write the revision into every template of the
    checkout (the chart, its file:// dependencies and unpacked subcharts) as a constant. Charts from a
    repository archive keep Helm's 1."""
    if revision == 1:
        return
    for path in sorted(tree.rglob("*")):
        if path.is_file() and "templates" in path.relative_to(tree).parts[:-1]:
            text = path.read_text(errors="replace")
            if ".Release.Revision" in text:
                path.write_text(_RELEASE_REVISION.sub(f"(int {int(revision)})", text))


def normalize_chart_dir(chart_dir):
    """The chart directory as a clean path relative to the project directory."""
    normalized = os.path.normpath(chart_dir)
    if os.path.isabs(normalized) or normalized == ".." or normalized.startswith("../"):
        raise ConvergeError(f"chart_dir {chart_dir!r} must be a path inside the project directory")
    return normalized


def _read_values_file(path, git_project, what):
    """A values file from the commit (or the working tree in dev mode); an absolute path from the file
    system (e.g. a file the playbook wrote). Ansible Vault files are refused: only the controller has the
    vault secrets."""
    if os.path.isabs(path):
        text = Path(path).read_text() if os.path.isfile(path) else None
    else:
        text = git_project.read_text(path)
    if text is None:
        raise ConvergeError(f"{what} {path} not found in {git_project.describe()}", file=path)
    if is_ansible_vault(text):
        raise ConvergeError(f"{what} {path} is encrypted with Ansible Vault, which a module cannot decrypt: "
                            "decrypt it on the controller (the converge role's converge_vault_values_files, "
                            "or lookup('ansible.builtin.unvault', path) | from_yaml passed in set)", file=path)
    return text


def _user_values(options, git_project):
    """``[(text, data)]`` of the values files."""
    loaded = []
    for path in options.values_files:
        text = _read_values_file(path, git_project, "values file")
        loaded.append((text, load_values_text(text, path)))
    return loaded


def _secret_values(options, git_project, chart_root):
    """``(chart, extra)``: ``[(json text, data)]`` of the chart's secret-values.yaml and of the
    secret_values_files, decrypted. The key is looked up only when there is something to decrypt, and a
    missing or wrong key fails here, before anything is rendered."""
    chart_file = chart_root / CHART_SECRET_VALUES_FILE
    chart_sources = [(f"{options.chart_dir}/{CHART_SECRET_VALUES_FILE}", chart_file.read_text())] \
        if chart_file.is_file() else []
    extra_sources = [(path, _read_values_file(path, git_project, "secret values file"))
                     for path in options.secret_values_files]
    if not chart_sources and not extra_sources:
        return [], []
    try:
        key = find_secret_key(options.project_dir, explicit=options.secret_key)
    except ConvergeError as exc:
        label = (chart_sources + extra_sources)[0][0]
        raise ConvergeError(f"secret values file {label} cannot be decrypted: {exc}", file=label) from None

    def decrypted(sources):
        # JSON keeps every decrypted value a string for Helm, as werf passes them.
        return [(json.dumps(data), data) for data in
                (decrypt_values_text(key, text, label) for label, text in sources)]

    return decrypted(chart_sources), decrypted(extra_sources)


SECRET_FILES_DIR = "secret"
SECRET_FILE_FUNCTION = "werf_secret_file"
_SECRET_FILE_CALL = re.compile(r'\b' + SECRET_FILE_FUNCTION + r'\b(\s+("(?:[^"\\]|\\.)*"|`[^`]*`))?')


def _secret_files(options, chart_root):
    """{name: decrypted text} of the files in the chart's secret/ directory (werf's secret files), or {}."""
    directory = chart_root / SECRET_FILES_DIR
    paths = sorted(path for path in directory.rglob("*") if path.is_file()) if directory.is_dir() else []
    if not paths:
        return {}
    label = f"{options.chart_dir}/{SECRET_FILES_DIR}/{paths[0].relative_to(directory).as_posix()}"
    try:
        key = find_secret_key(options.project_dir, explicit=options.secret_key)
    except ConvergeError as exc:
        raise ConvergeError(f"secret file {label} cannot be decrypted: {exc}", file=label) from None
    files = {}
    for path in paths:
        name = path.relative_to(directory).as_posix()
        label = f"{options.chart_dir}/{SECRET_FILES_DIR}/{name}"
        try:
            files[name] = decrypt_value(key, path.read_text().strip())
        except (SecretValueError, UnicodeDecodeError) as exc:
            raise ConvergeError(f"secret file {label}: cannot decrypt it with the werf secret key from "
                                f"{key.source}: {exc}", file=label) from None
    return files


def inline_secret_files(chart_root, chart_label, files):
    """Replace each ``werf_secret_file "name"`` call in the chart's templates by the decrypted text as a
    constant (Helm has no such function); the name must be a quoted string, as werf's charts write it."""
    for template in sorted((chart_root / "templates").rglob("*")) if (chart_root / "templates").is_dir() else []:
        if not template.is_file():
            continue
        text = template.read_text(errors="replace")
        if SECRET_FILE_FUNCTION not in text:
            continue
        label = f"{chart_label}/{template.relative_to(chart_root).as_posix()}"

        def constant(match, text=text, label=label):
            line = text.count("\n", 0, match.start()) + 1
            if not match.group(2):
                raise ConvergeError(f"{label}:{line}: {SECRET_FILE_FUNCTION} needs the file name as a quoted "
                                    "string", file=label)
            name = match.group(2)[1:-1].encode().decode("unicode_escape") if match.group(2)[0] == '"' \
                else match.group(2)[1:-1]
            if name not in files:
                raise ConvergeError(f"{label}:{line}: {SECRET_FILE_FUNCTION}: no secret file {name!r} in "
                                    f"{chart_label}/{SECRET_FILES_DIR}/ (found: {', '.join(sorted(files)) or 'none'})",
                                    file=label)
            return '(b64dec "' + base64.b64encode(files[name].encode()).decode() + '")'

        template.write_text(_SECRET_FILE_CALL.sub(constant, text))


def _write_file(workdir, name, text):
    path = Path(workdir, name)
    path.write_text(text)
    return path


def _merged_values(options, chart_root, user_values, service_values):
    """What Helm computes as .Values, for Jinja2: values.yaml, the values layers, set/set_string, werf's
    values last (werf gives its service values the final word)."""
    chart_values_file = chart_root / "values.yaml"
    merged = load_values_text(chart_values_file.read_text(), f"{options.chart_dir}/values.yaml") \
        if chart_values_file.is_file() else {}
    layers = [data for _text, data in user_values]
    layers += [set_values_tree(options.set_values, options.set_string_values), service_values]
    for layer in layers:
        merged = merge_values(merged, layer)
    return merged


def _render_helm(options, workdir, chart_root, *, release, namespace, chart_name, user_values, service_values,
                 merged):
    context = options.release_context(release, namespace) if options.release_context else ReleaseContext()
    prepare_helm_chart(chart_root, options.chart_dir, chart_name)
    pin_release_revision(Path(workdir, CHECKOUT_TREE), context.revision)
    build_dependencies(chart_root, options.chart_dir, options.helm_binary, Path(workdir, "helm"))
    # werf's export-values sit above the charts' values.yaml and below every values layer the user gives.
    chart = ChartTree.of_directory(chart_root, options.chart_dir, checkout=Path(workdir, CHECKOUT_TREE))
    exports = exported_values(chart, merged)
    # Helm reads the files as they are, so it types their values exactly as with plain Helm.
    texts = [json.dumps(exports)] + [text for text, _data in user_values] + [json.dumps(service_values)]
    paths = [_write_file(workdir, f"values-{i}.yaml", text) for i, text in enumerate(texts)]
    higher = [data for _text, data in user_values] + [set_values_tree(options.set_values, options.set_string_values)]
    set_arguments = int64_set_arguments(exports, higher) + helm_set_arguments(
        options.set_values, options.set_string_values, service_values["werf"]["commit"]["date"]["unix"])
    text = helm_template(chart_root, release=release, namespace=namespace, values_paths=paths,
                         set_arguments=set_arguments, helm_binary=options.helm_binary,
                         context_arguments=context.helm_arguments())
    return mark_chart_crds(text)


def _render_sources(options, workdir, chart_root, *, git_project, **kwargs):
    """Rendered objects of the chart. Values layers over values.yaml, lowest first, in werf's order: the
    chart's secret-values.yaml, values files, secret values files (then set and set_string). An error
    never shows a decrypted secret value."""
    chart_secrets, extra_secrets = _secret_values(options, git_project, chart_root)
    secret_files = _secret_files(options, chart_root)
    layers = chart_secrets + _user_values(options, git_project) + extra_secrets
    extract_local_dependencies(git_project, Path(workdir, CHECKOUT_TREE), options.chart_dir)
    try:
        inline_secret_files(chart_root, options.chart_dir, secret_files)
        return _render_layers(options, workdir, chart_root, user_values=layers, **kwargs)
    except ConvergeError as exc:
        secrets = secret_strings([data for _text, data in chart_secrets + extra_secrets] + [secret_files])
        raise masked_error(exc, secrets) from None


def _render_layers(options, workdir, chart_root, *, user_values, release, namespace, project, images,
                   service_values):
    merged = _merged_values(options, chart_root, user_values, service_values)
    objects = []
    names = jinja_template_names(chart_root)
    for source, text in render_jinja_templates(chart_root, names, values=merged, release=release,
                                               namespace=namespace, images=images, label=f"{options.chart_dir}/"):
        objects += parse_manifests(text, source=source)
    if is_helm_chart(chart_root):
        objects = _render_helm(options, workdir, chart_root, release=release, namespace=namespace,
                               chart_name=project or release, user_values=user_values,
                               service_values=service_values, merged=merged) + objects
    return objects


def render_chart(options):
    """Render the chart for the commit: ``{"manifests", "release", "namespace", "commit"}``."""
    git_project = GitProject(options.project_dir, revision=options.commit, dev=options.dev)
    commit = git_project.commit.as_dict()
    config_project, deploy = deploy_settings(git_project, options.config, env=options.env)
    options = dataclasses.replace(options, chart_dir=normalize_chart_dir(options.chart_dir or deploy.helm_chart_dir))
    project = options.project or config_project
    release, namespace = release_and_namespace(options, project, deploy)
    images = normalize_images(options.images)
    repo = images_base_repo(images) if options.repo is None else options.repo
    service_values = werf_values(project=project, images=images, commit=commit, env=options.env,
                                 namespace=namespace, repo=repo)
    with chart_checkout(git_project, options.chart_dir) as (workdir, root):
        objects = [] if root is None else _render_sources(
            options, workdir, root, release=release, namespace=namespace, project=project, images=images,
            service_values=service_values, git_project=git_project)
        chart = chart_summary(root, options.chart_dir, project or release)
    if not any(o.get("kind") != NOTES_KIND for o in objects) and not options.allow_empty:
        state = "rendered no resources" if root is not None else "does not exist"
        raise ConvergeError(f"chart directory {options.chart_dir} {state} in {git_project.describe()}; "
                            "set allow_empty to accept an empty release", chart_dir=options.chart_dir)
    objects, notes = split_notes(objects)
    objects, crds = split_chart_crds(objects)
    return {"manifests": order_manifests(objects), "release": release, "namespace": namespace, "commit": commit,
            "notes": notes, "crds": crds, "chart": chart}
