# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""werf.yaml as werf renders it: a Go template with Sprig, werf's functions and werf's data.

As in werf: partials ``.werf/**/*.tmpl`` are parsed first, each as a template named by its path inside
``.werf`` (so their ``define``s join the common namespace); werf.yaml is the template ``werfConfig``; the
data is ``.Env`` (the environment name), ``.Commit.Hash``, ``.Commit.Date.Human``/``.Unix`` (the author date;
Unix is a string, as in werf) and ``.Files`` (Get, Glob, Exists, IsDir) reading the converged tree: the
commit (giterminism), or the working tree in dev mode. Functions: Sprig without ``expandenv``, werf's ``env``
(an unset variable is an error unless a default is given), ``include``, ``tpl``, ``required``, ``fromYaml``,
the ``*_debug`` helpers, and ``toYaml`` (Helm's; an addition werf lacks).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import re
import zlib

try:
    import yaml
except ImportError:  # reported by the modules (requirements.check_libraries)
    yaml = None

from ansible_collections.berth.converge.plugins.module_utils.config import join_path, load_config
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.gotemplate import (
    NO_VALUE, FuncError, GoFunc, GoMap, GoStruct, TemplateError, TemplateSet, Uint64, parse_go_int, sprint)
from ansible_collections.berth.converge.plugins.module_utils.gotemplate_sprig import (
    UNSUPPORTED, go_parse_float, sprig_functions, to_json)

ROOT_TEMPLATE = "werfConfig"
TEMPLATES_DIR = ".werf"
PARTIAL_SUFFIX = ".tmpl"


# ---------------------------------------------------------------------------------------------------
# fromYaml / toYaml


_YAML_V2_RESOLVERS = (
    ("bool", r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
     "yYnNtTfFoO"),
    ("null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("int", r"^[-+]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*)$", "-+0123456789"),
    ("float", r"^(?:[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
              r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+.0123456789"),
    ("merge", r"^<<$", "<"),
)


def _construct_int(loader, node):
    text = loader.construct_scalar(node).replace("_", "")
    number = parse_go_int(text)
    if number is not None:
        return number
    unsigned = parse_go_int(text, unsigned=True)
    if unsigned is not None:
        return Uint64(unsigned)
    return go_parse_float(text) if go_parse_float(text) is not None else text


def _construct_float(loader, node):
    text = loader.construct_scalar(node).replace("_", "")
    special = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}
    if text.lower() in special:
        return special[text.lower()]
    number = go_parse_float(text)
    return text if number is None else number


def _construct_bool(loader, node):
    return loader.construct_scalar(node).lower() in ("y", "yes", "true", "on")


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    return GoMap(((loader.construct_object(k, deep=True), loader.construct_object(v, deep=True))
                  for k, v in node.value), "map[interface {}]interface {}")


@functools.lru_cache(maxsize=None)
def yaml_v2_loader():
    """A PyYAML loader resolving YAML 1.1 scalars as gopkg.in/yaml.v2 (werf's YAML library) does: timestamps
    stay strings, y/n are booleans, nested maps are map[interface {}]interface {}."""
    loader = type("YamlV2Loader", (yaml.SafeLoader,), {"yaml_implicit_resolvers": {}})
    for tag, pattern, first in _YAML_V2_RESOLVERS:
        loader.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", re.compile(pattern), list(first))
    loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])
    for tag, constructor in (("bool", _construct_bool), ("int", _construct_int), ("float", _construct_float),
                             ("timestamp", yaml.SafeLoader.construct_yaml_str), ("map", _construct_mapping)):
        loader.add_constructor(f"tag:yaml.org,2002:{tag}", constructor)
    return loader


def from_yaml(text):
    """werf's fromYaml: the first YAML document, as yaml.v2 reads it into map[string]interface {} (nested
    maps are map[interface {}]interface {})."""
    loader = yaml_v2_loader()(text)
    try:
        node = loader.get_node() if loader.check_node() else None
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise FuncError(f"yaml: unmarshal errors:\n  line {node.start_mark.line + 1}: cannot unmarshal "
                            f"{node.tag.replace('tag:yaml.org,2002:', '!!')} into map[string]interface {{}}")
        loader.flatten_mapping(node)
        return {_string_key(loader, k): loader.construct_object(v, deep=True) for k, v in node.value}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise FuncError(f"yaml: {where}{getattr(exc, 'problem', None) or exc}")
    finally:
        loader.dispose()


def _string_key(loader, node):
    """A top-level key read into a Go string: its text as written ("" for null)."""
    if isinstance(node, yaml.ScalarNode):
        return "" if node.tag == "tag:yaml.org,2002:null" else node.value
    return sprint([loader.construct_object(node, deep=True)])


def to_yaml(value):
    """Helm's toYaml: the value as YAML (via its JSON form, keys sorted), without the final newline."""
    try:
        plain = json.loads(to_json(value))
    except FuncError:
        return ""
    text = yaml.safe_dump(plain, default_flow_style=False, allow_unicode=True, sort_keys=True, width=2 ** 30)
    return text[:-1] if text.endswith("\n") else text


# ---------------------------------------------------------------------------------------------------
# The template set with werf's functions


def _env_function(lookup_env):
    def env(value, *default):
        if len(default) > 1:
            raise FuncError("more than 1 optional argument prohibited")
        name = sprint([value])
        found = lookup_env(name)
        if found is None:
            if default:
                return default[0]
            raise FuncError(f'the environment variable "{name}" must be set or default must be provided')
        if found == "" and default:
            return default[0]
        return found
    return env


def _required(message, value):
    if value is None or value is NO_VALUE or value == "":
        raise FuncError(message)
    return value


def werf_functions(template_set, lookup_env):
    """werf's additions to Sprig for werf.yaml (pkg/config/parser.go), bound to ``template_set``."""
    def tpl(text, data):
        name = f"tpl-{zlib.adler32(text.encode('utf-8', 'surrogateescape'))}"
        template_set.parse(name, text)
        return template_set.execute(name, data)

    return {
        "env": GoFunc(_env_function(lookup_env), ("any",), "string"),
        "required": GoFunc(_required, ("string", "any")),
        "include": GoFunc(template_set.execute, ("string", "any")),
        "include_debug": GoFunc(template_set.execute, ("string", "any")),
        "tpl": GoFunc(tpl, ("string", "any")),
        "tpl_debug": GoFunc(tpl, ("string", "any")),
        "printf_debug": GoFunc(lambda fmt, *args: "", ("string",), "any"),
        "dump_debug": GoFunc(lambda value: "", ("any",)),
        "fromYaml": GoFunc(from_yaml, ("string",)),
        "toYaml": GoFunc(to_yaml, ("any",)),
    }


def new_template_set(lookup_env):
    """A template set with Sprig (minus ``expandenv``) and werf's functions; ``lookup_env(name)`` gives an
    environment variable's value or None."""
    template_set = TemplateSet(unsupported=UNSUPPORTED, name=ROOT_TEMPLATE)
    functions = sprig_functions()
    functions.update(werf_functions(template_set, lookup_env))
    template_set.funcs.update(functions)
    return template_set


# ---------------------------------------------------------------------------------------------------
# werf.yaml data: .Env, .Commit, .Files


def go_time_string(iso_date):
    """A date as Go's time.Time.String() prints it for a Git signature: ``2022-01-21 18:51:39 +0300 +0300``
    (UTC: ``+0000 UTC``)."""
    moment = datetime.datetime.fromisoformat(iso_date)
    offset = moment.strftime("%z") or "+0000"
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S')} {offset} {'UTC' if offset == '+0000' else offset}"


def glob_regex(pattern):
    """A doublestar glob (``**`` spans directories, ``{a,b}`` alternatives) as a regular expression."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        close = pattern.find("]" if char == "[" else "}", i + 1)
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and close > i + 1:
            body = pattern[i + 1:close]
            out.append("[" + ("^" + body[1:] if body[0] in "!^" else body).replace("\\", "\\\\") + "]")
            i = close
        elif char == "{" and close > 0:
            out.append("(?:" + "|".join(glob_regex(o) for o in pattern[i + 1:close].split(",")) + ")")
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


class ProjectFiles:
    """werf's ``.Files``: project files from the converged tree (the commit, or the working tree in dev)."""

    def __init__(self, git_project):
        self.git = git_project

    def _path(self, call, rel_path):
        try:
            return join_path("", rel_path)
        except ConvergeError as exc:
            raise FuncError(f'{{{{ .Files.{call} "{rel_path}" }}}}: {exc}')

    def get(self, rel_path):
        path = self._path("Get", rel_path)
        data = self.git.read_blob(path) if path else None
        if data is None:
            raise FuncError(f'{{{{ .Files.Get "{rel_path}" }}}}: the file "{rel_path}" not found in '
                            f"{self.git.describe()}")
        return data.decode("utf-8", "surrogateescape")

    def exists(self, rel_path):
        path = self._path("Exists", rel_path)
        entry = self.git.entry(path) if path else None
        return entry is not None and entry.type == "blob"

    def is_dir(self, rel_path):
        path = self._path("IsDir", rel_path)
        entry = self.git.entry(path)
        return entry is not None and entry.type == "tree"

    def walk(self, directory=""):
        """Every file path under ``directory`` (project-relative), sorted."""
        for entry in sorted(self.git.list_tree(directory), key=lambda e: e.path):
            path = f"{directory}/{entry.path}" if directory else entry.path
            if entry.type == "tree":
                yield from self.walk(path)
            elif entry.type == "blob":
                yield path

    def glob(self, pattern):
        # werf matches the glob and everything under a directory the glob matches
        matcher = re.compile(f"(?:{glob_regex(pattern.strip('/'))})(?:/.*)?")
        found = {path: self.get(path) for path in self.walk() if matcher.fullmatch(path)}
        if not found:
            raise FuncError(f'{{{{ .Files.Glob "{pattern}" }}}}: no matches found')
        return found

    def as_struct(self):
        return GoStruct("config.files", methods={
            "Get": GoFunc(self.get, ("string",)), "Glob": GoFunc(self.glob, ("string",)),
            "Exists": GoFunc(self.exists, ("string",)), "IsDir": GoFunc(self.is_dir, ("string",))})


def template_data(git_project, env):
    commit = git_project.commit
    return {
        "Files": ProjectFiles(git_project).as_struct(),
        "Env": env or "",
        "Commit": {"Hash": commit.hash,
                   "Date": GoMap({"Human": go_time_string(commit.date), "Unix": str(commit.unix)},
                                 "map[string]string")},
    }


# ---------------------------------------------------------------------------------------------------
# Rendering


def partials(git_project):
    """``(name inside .werf, project path, text)`` of every ``.werf/**/*.tmpl`` partial, sorted by path."""
    files = ProjectFiles(git_project)
    found = []
    for path in files.walk(TEMPLATES_DIR) if files.is_dir(TEMPLATES_DIR) else ():
        if path.endswith(PARTIAL_SUFFIX):
            found.append((path[len(TEMPLATES_DIR) + 1:], path, files.get(path)))
    return found


def render_werf_yaml(text, path, git_project, env, environ=None):
    """Render werf.yaml ``text`` (read from ``path``) as werf does; ``env`` is the werf environment name,
    ``environ`` the environment variables ``env`` reads (default: this process's)."""
    environ = os.environ if environ is None else environ
    template_set = new_template_set(environ.get)
    try:
        for name, partial_path, partial_text in partials(git_project):
            template_set.parse(name, partial_text, parse_name=partial_path)
        template_set.parse(ROOT_TEMPLATE, text, parse_name=path)
        return template_set.execute(ROOT_TEMPLATE, template_data(git_project, env))
    except TemplateError as exc:
        message = str(exc) if exc.parse_name else f"{path}: {exc}"
        raise ConvergeError(message, file=exc.parse_name or path, line=exc.line)


def load_werf_config(text, path, git_project, env=None):
    """The WerfConfig of werf.yaml ``text``: rendered first when it holds template actions."""
    if "{{" in text:
        text = render_werf_yaml(text, path, git_project, env)
    return load_config(text, path)
