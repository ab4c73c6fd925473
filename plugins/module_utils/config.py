# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""werf.yaml -> validated dataclasses (the werf subset of DESIGN.md section 3).

Every error names the file, the line and the field. Stapel images are recognised and refused with a
clear message rather than misread. The text is werf.yaml after rendering (werf_template renders the Go
template first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

try:
    import yaml
except ImportError:  # reported by the module (requirements.check_libraries)
    yaml = None

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

PROJECT_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PROJECT_MAX = 50
IMAGE_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
IMPORT_TYPES = ("ImageName", "ImageTag", "ImageRepo", "ImageDigest", "ImageID")

META_KEYS = {"project", "configVersion", "build", "deploy", "cleanup", "gitWorktree"}
BUILD_KEYS = {"cacheVersion", "platform"}
DEPLOY_KEYS = {"helmChartDir", "helmRelease", "helmReleaseSlug", "namespace", "namespaceSlug"}
IMAGE_KEYS = {"image", "dockerfile", "context", "contextAddFiles", "target", "args", "dependencies", "final",
              "cacheVersion", "platform", "secrets", "network", "ssh"}
# werf keys we know but do not support yet: refused by name, never silently ignored.
IMAGE_KEYS_NOT_YET = {"addHost", "staged", "imageSpec", "labels"}
# RUN networking modes BuildKit offers (werf's `network`, docker build --network)
NETWORK_MODES = ("default", "host", "none")
SECRET_KEYS = {"id", "env", "src", "value"}
SECRET_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
STAPEL_KEYS = {"from", "fromImage", "fromArtifact", "fromLatest", "fromCacheVersion", "git", "shell", "ansible",
               "mount", "import", "docker", "artifact", "disableGitAfterPatch"}
CLEANUP_KEYS = {"disable", "disableKubernetesBasedPolicy", "disableGitHistoryBasedPolicy",
                "disableBuiltWithinLastNHoursPolicy", "keepImagesBuiltWithinLastNHours", "keepPolicies"}
KEEP_POLICY_KEYS = {"references", "imagesPerReference"}
REFERENCES_KEYS = {"tag", "branch", "limit"}
LIMIT_KEYS = {"last", "in", "operator"}
OPERATORS = ("And", "Or")
DEFAULT_KEEP_BUILT_WITHIN_HOURS = 2
DEPENDENCY_KEYS = {"image", "imports"}
IMPORT_KEYS = {"type", "targetBuildArg"}


@dataclass(frozen=True)
class Import:
    type: str
    target_build_arg: str


@dataclass(frozen=True)
class Dependency:
    image: str
    imports: tuple[Import, ...]


@dataclass(frozen=True)
class BuildSecret:
    """A werf.yaml build secret for ``RUN --mount=type=secret,id=...``: exactly one of env, src, value."""

    id: str
    env: str | None = None
    src: str | None = None
    value: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ImageConfig:
    name: str
    dockerfile: str
    context: str
    context_add_files: tuple[str, ...]
    target: str | None
    args: dict = field(hash=False)
    dependencies: tuple[Dependency, ...]
    final: bool
    cache_version: str | None
    platform: tuple[str, ...]
    line: int
    secrets: tuple[BuildSecret, ...] = ()
    network: str | None = None     # RUN networking: default, host or none
    ssh: str | None = None         # docker build --ssh value: "default", "default=/path/to/agent.sock", keys

    @property
    def dockerfile_path(self):
        """Path of the Dockerfile from the project root (werf: relative to the context)."""
        return join_path(self.context, self.dockerfile)


@dataclass(frozen=True)
class DeployConfig:
    helm_chart_dir: str = ".helm"
    helm_release: str | None = None
    helm_release_slug: bool = True
    namespace: str | None = None
    namespace_slug: bool = True


@dataclass(frozen=True)
class Limit:
    """werf's ``limit`` / ``imagesPerReference``: the last N, those within a period, And/Or."""

    last: int | None = None          # None: not set; negative: unlimited
    within: float | None = None      # seconds (werf's ``in``)
    operator: str = "And"


@dataclass(frozen=True)
class KeepPolicy:
    """One of werf's ``cleanup.keepPolicies``: which Git tags or branches, and how many images of each."""

    kind: str                        # "tag" or "branch"
    pattern: str                     # as written: a name, or /REGEXP/
    regex: re.Pattern = field(compare=False)
    limit: Limit | None = None
    images_per_reference: Limit = Limit()


@dataclass(frozen=True)
class CleanupConfig:
    """werf.yaml's ``cleanup`` section; no ``keepPolicies`` means werf's default policies."""

    disable: bool = False
    disable_kubernetes_based_policy: bool = False
    disable_git_history_based_policy: bool = False
    disable_built_within_last_n_hours_policy: bool = False
    keep_images_built_within_last_n_hours: int = DEFAULT_KEEP_BUILT_WITHIN_HOURS
    keep_policies: tuple = ()


@dataclass(frozen=True)
class WerfConfig:
    path: str
    project: str
    cache_version: str | None
    platform: tuple[str, ...]
    deploy: DeployConfig
    images: tuple[ImageConfig, ...]
    cleanup: CleanupConfig = field(default_factory=CleanupConfig)

    def image(self, name):
        for image in self.images:
            if image.name == name:
                return image
        raise ConvergeError(f"{self.path}: no image named '{name}' (images: {', '.join(self.names)})")

    @property
    def names(self):
        return [image.name for image in self.images]


def join_path(base, rel):
    """Join and normalise project-relative paths; refuse paths escaping the project."""
    parts = []
    for part in f"{base}/{rel}".split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ConvergeError(f"path '{rel}' under '{base}' leaves the project directory")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


class _Doc:
    """One YAML document: its mapping, and the line of each key for messages."""

    def __init__(self, path, node):
        self.path = path
        self.line = node.start_mark.line + 1
        self.lines = {}
        if not isinstance(node, yaml.MappingNode):
            raise ConvergeError(f"{path}:{self.line}: a werf.yaml document must be a mapping")
        for key_node, _value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                self.lines[key_node.value] = key_node.start_mark.line + 1
        try:
            self.data = yaml.safe_load(yaml.serialize(node)) or {}
        except yaml.YAMLError as exc:  # e.g. a mapping used as a key
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else self.line
            raise ConvergeError(f"{path}:{line}: {getattr(exc, 'problem', None) or exc}", file=path)

    def where(self, key=None):
        return f"{self.path}:{self.lines.get(key, self.line)}"

    def fail(self, key, message):
        raise ConvergeError(f"{self.where(key)}: {message}", file=self.path, field=key)


def _empty_document(node):
    """A document of only blanks and comments (e.g. after a trailing ``---``), which werf skips."""
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
                            and node.value == "" and node.style is None)


def decode_config(data, path="werf.yaml"):
    """werf.yaml bytes as text; invalid UTF-8 is an error naming the line, never replaced silently."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConvergeError(f"{path}:{line}: not valid UTF-8 (byte {data[exc.start]:#04x} at offset {exc.start}); "
                            "werf.yaml must be UTF-8", file=path)


def load_config(text, path="werf.yaml"):
    """Parse and validate rendered werf.yaml text; ``path`` is used in messages."""
    try:
        nodes = [node for node in yaml.compose_all(text) if not _empty_document(node)]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConvergeError(f"{path}{line}: YAML syntax error: {getattr(exc, 'problem', exc)}")
    if not nodes:
        raise ConvergeError(f"{path}: empty; it needs a meta document with 'project' and 'configVersion'")
    docs = [_Doc(path, node) for node in nodes]
    meta_docs = [doc for doc in docs if "project" in doc.data or "configVersion" in doc.data]
    if len(meta_docs) != 1:
        where = ", ".join(doc.where() for doc in meta_docs) or path
        raise ConvergeError(f"{where}: werf.yaml needs exactly one meta document with 'project' "
                            f"and 'configVersion' (found {len(meta_docs)})")
    meta = meta_docs[0]
    project, cache_version, platform, deploy = _meta(meta)
    cleanup = _cleanup(meta)
    images = []
    for doc in docs:
        if doc is not meta:
            images.extend(_images(doc))
    _check_unique(images, path)
    _check_dependencies(images, path)
    return WerfConfig(path=path, project=project, cache_version=cache_version, platform=platform,
                      deploy=deploy, images=tuple(images), cleanup=cleanup)


def _unknown_keys(doc, data, allowed, what, at=None):
    for key in data:
        if key not in allowed:
            doc.fail(at or key, f"{what}: unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")


def _meta(doc):
    data = doc.data
    _unknown_keys(doc, data, META_KEYS, "meta document")
    project = data.get("project")
    if not isinstance(project, str) or not project:
        doc.fail("project", "'project' is required and must be a string")
    if len(project) > PROJECT_MAX or not PROJECT_RE.match(project):
        doc.fail("project", f"'project: {project}' is not a valid slug: lower-case letters, digits and '-', "
                            f"starting and ending with a letter or digit, at most {PROJECT_MAX} characters")
    if data.get("configVersion") != 1:
        doc.fail("configVersion", f"'configVersion' must be 1, got {data.get('configVersion')!r}")
    build = _mapping(doc, "build")
    _unknown_keys(doc, build, BUILD_KEYS, "build")
    deploy = _mapping(doc, "deploy")
    _unknown_keys(doc, deploy, DEPLOY_KEYS, "deploy")
    deploy_config = DeployConfig(
        helm_chart_dir=_string(doc, deploy, "helmChartDir", "deploy.helmChartDir") or ".helm",
        helm_release=_string(doc, deploy, "helmRelease", "deploy.helmRelease"),
        helm_release_slug=_bool(doc, deploy, "helmReleaseSlug", "deploy.helmReleaseSlug", True),
        namespace=_string(doc, deploy, "namespace", "deploy.namespace"),
        namespace_slug=_bool(doc, deploy, "namespaceSlug", "deploy.namespaceSlug", True),
    )
    return (project, _scalar_string(doc, build, "cacheVersion", "build.cacheVersion"),
            _platforms(doc, build, "build.platform"), deploy_config)


def _cleanup(doc):
    data = _mapping(doc, "cleanup")
    _unknown_keys(doc, data, CLEANUP_KEYS, "cleanup", at="cleanup")
    flags = {name: _bool(doc, data, name, f"cleanup.{name}", False)
             for name in ("disable", "disableKubernetesBasedPolicy", "disableGitHistoryBasedPolicy",
                          "disableBuiltWithinLastNHoursPolicy")}
    hours = data.get("keepImagesBuiltWithinLastNHours", DEFAULT_KEEP_BUILT_WITHIN_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, int) or hours < 0:
        doc.fail("cleanup", f"cleanup.keepImagesBuiltWithinLastNHours must be a whole number of hours (0 or more), "
                            f"got {hours!r}")
    policies = data.get("keepPolicies") or []
    if not isinstance(policies, list):
        doc.fail("cleanup", "cleanup.keepPolicies must be a list of policies")
    return CleanupConfig(
        disable=flags["disable"], disable_kubernetes_based_policy=flags["disableKubernetesBasedPolicy"],
        disable_git_history_based_policy=flags["disableGitHistoryBasedPolicy"],
        disable_built_within_last_n_hours_policy=flags["disableBuiltWithinLastNHoursPolicy"],
        keep_images_built_within_last_n_hours=hours,
        keep_policies=tuple(_keep_policy(doc, policy, f"cleanup.keepPolicies[{index}]")
                            for index, policy in enumerate(policies)))


def _keep_policy(doc, policy, where):
    if not isinstance(policy, dict):
        doc.fail("cleanup", f"{where} must be a mapping with 'references' (and 'imagesPerReference')")
    _unknown_keys(doc, policy, KEEP_POLICY_KEYS, where, at="cleanup")
    references = policy.get("references")
    if not isinstance(references, dict):
        doc.fail("cleanup", f"{where}.references is required: a mapping with 'tag' or 'branch'")
    _unknown_keys(doc, references, REFERENCES_KEYS, f"{where}.references", at="cleanup")
    kinds = [kind for kind in ("tag", "branch") if references.get(kind) not in (None, "")]
    if len(kinds) != 1:
        doc.fail("cleanup", f"{where}.references needs exactly one of 'tag' or 'branch' (a name or /REGEXP/)")
    kind = kinds[0]
    pattern = references[kind]
    if not isinstance(pattern, str):
        doc.fail("cleanup", f"{where}.references.{kind} must be a string: a name or /REGEXP/")
    limit = references.get("limit")
    return KeepPolicy(
        kind=kind, pattern=pattern, regex=_reference_regex(doc, pattern, f"{where}.references.{kind}"),
        limit=None if limit is None else _limit(doc, limit, f"{where}.references.limit"),
        images_per_reference=_limit(doc, policy.get("imagesPerReference") or {}, f"{where}.imagesPerReference"))


def _reference_regex(doc, pattern, where):
    """werf's rule: /REGEXP/ is a regular expression, anything else the literal name; both match whole names."""
    body = pattern[1:-1] if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/") else re.escape(pattern)
    try:
        return re.compile(f"^(?:{body})$")
    except re.error as exc:
        doc.fail("cleanup", f"{where}: invalid regular expression {pattern!r}: {exc}")


def _limit(doc, data, where):
    if not isinstance(data, dict):
        doc.fail("cleanup", f"{where} must be a mapping with 'last', 'in' and 'operator'")
    _unknown_keys(doc, data, LIMIT_KEYS, where, at="cleanup")
    last = data.get("last")
    if last is not None and (isinstance(last, bool) or not isinstance(last, int)):
        doc.fail("cleanup", f"{where}.last must be a whole number (-1 for no limit), got {last!r}")
    within = data.get("in")
    if within is not None:
        try:
            within = parse_duration(within)
        except ValueError as exc:
            doc.fail("cleanup", f"{where}.in: {exc}")
    operator = data.get("operator") or "And"
    if operator not in OPERATORS:
        doc.fail("cleanup", f"{where}.operator must be And or Or, got {operator!r}")
    return Limit(last=last, within=within, operator=operator)


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(value):
    """Seconds of a Go duration string (``168h``, ``1h30m``, ``90s``), as werf's ``in`` fields are read."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text == "0":
        return 0.0
    if not text or _DURATION_PART.sub("", text) != "":
        raise ValueError(f"{value!r} is not a duration such as 168h, 1h30m or 45m")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))


def _images(doc):
    data = doc.data
    stapel = sorted(STAPEL_KEYS & set(data))
    if stapel or "artifact" in data:
        doc.fail(stapel[0], f"image {data.get('image') or data.get('artifact')!r} is a Stapel image "
                            f"({', '.join(stapel)}); berth.converge supports Dockerfile images only for now")
    not_yet = sorted(IMAGE_KEYS_NOT_YET & set(data))
    if not_yet:
        doc.fail(not_yet[0], f"image {data.get('image')!r}: werf key '{not_yet[0]}' is not supported yet")
    if "image" not in data:
        keys = ", ".join(sorted(data)) or "nothing"
        raise ConvergeError(f"{doc.where()}: document has no 'image' key (has {keys})", file=doc.path)
    names = data["image"]
    names = names if isinstance(names, list) else [names]
    for name in names:
        if not isinstance(name, str) or not IMAGE_NAME_RE.match(name):
            doc.fail("image", f"image name {name!r} is not valid: lower-case letters, digits and '.', '_', '-', '/'"
                              " separators")
    label = f"image '{names[0]}'"
    _unknown_keys(doc, data, IMAGE_KEYS, label)
    dockerfile = _string(doc, data, "dockerfile", f"{label}: dockerfile")
    if not dockerfile:
        doc.fail("dockerfile", f"{label}: 'dockerfile' is required (a path relative to 'context')")
    context = _string(doc, data, "context", f"{label}: context") or "."
    add_files = data.get("contextAddFiles") or []
    if not isinstance(add_files, list) or not all(isinstance(f, str) and f for f in add_files):
        doc.fail("contextAddFiles", f"{label}: 'contextAddFiles' must be a list of paths")
    args = data.get("args") or {}
    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        doc.fail("args", f"{label}: 'args' must be a mapping of build argument names to values")
    args = {key: "" if value is None else str(value) for key, value in args.items()}
    final = data.get("final", True)
    if not isinstance(final, bool):
        doc.fail("final", f"{label}: 'final' must be true or false")
    for key, value in (("context", context), ("dockerfile", dockerfile), *(("contextAddFiles", f) for f in add_files)):
        if value.startswith("/"):
            doc.fail(key, f"{label}: {key} '{value}' must be a relative path (inside the project), not an absolute "
                          "path")
    try:
        context = join_path("", context)
        join_path(context, dockerfile)
        add_files = tuple(join_path("", f) for f in add_files)
    except ConvergeError as exc:
        doc.fail("context", f"{label}: {exc}")
    common = dict(
        dockerfile=dockerfile, context=context, context_add_files=add_files,
        target=_string(doc, data, "target", f"{label}: target"), args=args,
        dependencies=_dependencies(doc, data.get("dependencies"), label), final=final,
        cache_version=_scalar_string(doc, data, "cacheVersion", f"{label}: cacheVersion"),
        platform=_platforms(doc, data, f"{label}: platform"), line=doc.lines.get("image", doc.line),
        secrets=_secrets(doc, data.get("secrets"), label),
        network=_string(doc, data, "network", f"{label}: network"), ssh=_string(doc, data, "ssh", f"{label}: ssh"),
    )
    if common["network"] is not None and common["network"] not in NETWORK_MODES:
        doc.fail("network", f"{label}: network must be one of {', '.join(NETWORK_MODES)}, got {common['network']!r}")
    if common["ssh"] is not None and not common["ssh"].strip():
        doc.fail("ssh", f"{label}: ssh must be an SSH agent socket or keys, e.g. 'default'")
    return [ImageConfig(name=name, **common) for name in names]


def _dependencies(doc, value, label):
    if value is None:
        return ()
    if not isinstance(value, list):
        doc.fail("dependencies", f"{label}: 'dependencies' must be a list")
    result = []
    for index, dep in enumerate(value):
        where = f"{label}: dependencies[{index}]"
        if not isinstance(dep, dict):
            doc.fail("dependencies", f"{where} must be a mapping with 'image' and 'imports'")
        _unknown_keys(doc, dep, DEPENDENCY_KEYS, where)
        if not isinstance(dep.get("image"), str):
            doc.fail("dependencies", f"{where}: 'image' is required")
        imports = []
        for i, imp in enumerate(dep.get("imports") or []):
            iwhere = f"{where}.imports[{i}]"
            if not isinstance(imp, dict):
                doc.fail("dependencies", f"{iwhere} must be a mapping with 'type' and 'targetBuildArg'")
            _unknown_keys(doc, imp, IMPORT_KEYS, iwhere)
            if imp.get("type") not in IMPORT_TYPES:
                doc.fail("dependencies", f"{iwhere}: 'type' must be one of {', '.join(IMPORT_TYPES)}, "
                                         f"got {imp.get('type')!r}")
            if not isinstance(imp.get("targetBuildArg"), str) or not imp["targetBuildArg"]:
                doc.fail("dependencies", f"{iwhere}: 'targetBuildArg' is required")
            imports.append(Import(type=imp["type"], target_build_arg=imp["targetBuildArg"]))
        result.append(Dependency(image=dep["image"], imports=tuple(imports)))
    return tuple(result)


def _mapping(doc, key):
    value = doc.data.get(key) or {}
    if not isinstance(value, dict):
        doc.fail(key, f"'{key}' must be a mapping")
    return value


def _string(doc, data, key, what):
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        doc.fail(key, f"{what} must be a string, got {value!r}")
    return value


def _scalar_string(doc, data, key, what):
    value = data.get(key)
    if isinstance(value, (dict, list)):
        doc.fail(key, f"{what} must be a string or number")
    return None if value is None else str(value)


def _bool(doc, data, key, what, default):
    value = data.get(key, default)
    if not isinstance(value, bool):
        doc.fail(key, f"{what} must be true or false")
    return value


def _secrets(doc, value, label):
    """werf's build ``secrets``: ``env`` (id defaults to the variable), ``src`` (id defaults to the file name),
    ``value`` (needs ``id``)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        doc.fail("secrets", f"{label}: 'secrets' must be a list of mappings with env, src or value")
    result, seen = [], set()
    for index, item in enumerate(value):
        where = f"{label}: secrets[{index}]"
        if not isinstance(item, dict):
            doc.fail("secrets", f"{where} must be a mapping with one of env, src, value")
        _unknown_keys(doc, item, SECRET_KEYS, where)
        sources = [key for key in ("env", "src", "value") if key in item]
        if len(sources) != 1:
            doc.fail("secrets", f"{where} must have exactly one of env, src, value")
        source = item[sources[0]]
        if not isinstance(source, str) or (not source and sources[0] != "value"):
            doc.fail("secrets", f"{where}: '{sources[0]}' must be a non-empty string")
        secret_id = item.get("id")
        if secret_id is None:
            if sources[0] == "value":
                doc.fail("secrets", f"{where}: a 'value' secret needs an 'id'")
            secret_id = source if sources[0] == "env" else source.rstrip("/").rsplit("/", 1)[-1]
        if not isinstance(secret_id, str) or not SECRET_ID_RE.match(secret_id):
            doc.fail("secrets", f"{where}: id {secret_id!r} must be letters, digits, '.', '_' or '-'")
        if secret_id in seen:
            doc.fail("secrets", f"{where}: id {secret_id!r} is given twice")
        seen.add(secret_id)
        result.append(BuildSecret(id=secret_id, **{sources[0]: source}))
    return tuple(result)


_PLATFORM_RE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)?")


def _platforms(doc, data, what):
    value = data.get("platform")
    if value is None:
        return ()
    value = value if isinstance(value, list) else [value]
    if not all(isinstance(p, str) and p for p in value):
        doc.fail("platform", f"{what} must be a platform string like linux/amd64 or a list of them")
    for platform in value:
        if not _PLATFORM_RE.fullmatch(platform):
            doc.fail("platform", f"{what}: {platform!r} is not os/architecture[/variant], e.g. linux/amd64 or "
                                 "linux/arm64/v8")
    return tuple(value)


def _check_unique(images, path):
    seen = {}
    for image in images:
        if image.name in seen:
            raise ConvergeError(f"{path}:{image.line}: image '{image.name}' is defined twice "
                                f"(first at line {seen[image.name]})", file=path, field="image")
        seen[image.name] = image.line


def _check_dependencies(images, path):
    by_name = {image.name: image for image in images}
    for image in images:
        for dep in image.dependencies:
            if dep.image not in by_name:
                raise ConvergeError(f"{path}:{image.line}: image '{image.name}': dependencies refer to unknown "
                                    f"image '{dep.image}' (images: {', '.join(by_name)})", file=path,
                                    field="dependencies")
    dependency_order(images, path)


def dependency_order(images, path="werf.yaml"):
    """Images with every dependency before its dependents; a cycle is an error naming it."""
    by_name = {image.name: image for image in images}
    order, state = [], {}

    def visit(name, chain):
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = chain[chain.index(name):] + [name]
            raise ConvergeError(f"{path}:{by_name[name].line}: dependency cycle between images: "
                                f"{' -> '.join(cycle)}", file=path, field="dependencies")
        state[name] = "visiting"
        for dep in by_name[name].dependencies:
            visit(dep.image, chain + [name])
        state[name] = "done"
        order.append(by_name[name])

    for image in images:
        visit(image.name, [])
    return order
