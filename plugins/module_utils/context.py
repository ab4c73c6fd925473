# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The build context of an image: the set of files a build receives, and the tar made from it.

:func:`select_context` is the one place that decides which files of the converged Git tree a build gets.
The digest covers exactly its entries (docs/image-digests.md), and :func:`context_tar` writes exactly
those entries (plus the Dockerfile the builder must read), so what is built is what is digested.

Sources are resolved as BuildKit resolves COPY/ADD sources (``tonistiigi/fsutil`` ``copy.Copy`` with
``FollowLinks``, ``continuity`` ``fs.RootPath``):

* the path of a source is walked component by component; a symlink on the way, and the source itself
  when it is a symlink, is followed, so its target is part of the context (and of the digest);
* a wildcard source is matched by walking the directory named by its literal part: symlinks are
  matched by name but never descended, and a matched directory is not searched further; each match
  is then followed like a plain source;
* a directory is copied whole; symlinks inside it are copied as symlinks (their target does not count);
* BuildKit resolves a link as if the context were ``/`` (``..`` stops at the root, an absolute target
  is taken inside the context). Either almost always means a mistake, so a followed link that leaves
  the context is an error naming the link;
* ``.dockerignore``d paths do not exist for the build; following a link to one is an error.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass, field

from ansible_collections.berth.converge.plugins.module_utils.config import join_path
from ansible_collections.berth.converge.plugins.module_utils.dockerignore import (
    clean_path, glob_match, glob_may_match_below, has_glob, source_may_select_under, source_selects)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

SYMLINK_MODE = "120000"
TREE_MODE = "040000"
MAX_LINK_HOPS = 255   # continuity's fs.RootPath gives up after as many


@dataclass(frozen=True)
class ContextEntry:
    """One selected item: a whole directory (``tree``), a file or symlink (``blob``), a submodule (``commit``).

    ``path`` is relative to the context (``"."`` is all of it); ``oid`` the Git object id.
    """

    kind: str
    mode: str
    oid: str
    path: str


@dataclass(frozen=True)
class AddedFile:
    """A ``contextAddFiles`` file read from the working tree: its content is kept, so the build gets the
    bytes the digest hashed."""

    path: str
    mode: str          # 100644, 100755 or 120000 (then ``data`` is the link target)
    data: bytes = field(repr=False)

    @property
    def sha256(self):
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class SourceSpec:
    """One COPY/ADD/RUN --mount source: a cleaned pattern relative to the context, where it was written,
    and whether it may select nothing (a wildcard, or a path cut short at a variable we cannot see)."""

    pattern: str
    where: str
    parents: bool = False
    optional: bool = False


class _Selector:
    def __init__(self, project, context, ignore):
        self.project = project
        self.context = context
        self.ignore = ignore
        self.found = {}          # path -> ContextEntry

    # ---- the tree, relative to the context

    def _children(self, rel):
        return self.project.list_tree(join_path(self.context, rel) if rel else self.context)

    def _child(self, rel, name):
        for entry in self._children(rel):
            if entry.path == name:
                return entry
        return None

    def _hidden(self, path, entry):
        """Not in the context BuildKit sees (.dockerignore), directories only when nothing below is kept."""
        if entry.type == "tree":
            return self.ignore.ignores_all_under(path)
        return self.ignore.ignored(path)

    def describe(self):
        return f"context '{self.context or '.'}' of {self.project.describe()}"

    # ---- resolution

    def resolve(self, path, where, follow_last=True):
        """(real path, entry) of ``path`` with symlinks followed as BuildKit does; links on the way are
        recorded. None when it does not exist. Errors for links leaving the context."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        current, hops, index = "", 0, 0
        entry = None
        while index < len(parts):
            name = parts[index]
            entry = self._child(current, name)
            here = f"{current}/{name}" if current else name
            if entry is None or self._hidden(here, entry):
                return None
            last = index == len(parts) - 1
            if entry.mode == SYMLINK_MODE and (follow_last or not last):
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise ConvergeError(f"{where}: too many levels of symbolic links at '{here}' in {self.describe()}")
                self._add(ContextEntry(entry.type, entry.mode, entry.oid, here))
                target = self.project.read_object(entry.oid).decode("utf-8", errors="surrogateescape")
                resolved = self._link_target(here, target, where)
                parts = ([p for p in resolved.split("/") if p] if resolved else []) + parts[index + 1:]
                current, index, entry = "", 0, None
                if not parts:   # a link to the context root
                    return "", None
                continue
            if entry.type != "tree" and not last:
                return None
            current, index = here, index + 1
        return current, entry

    def _link_target(self, link, target, where):
        """Context-relative path a symlink at ``link`` points to; an error when it leaves the context."""
        shown = f"symlink '{link}' -> '{target}'"
        if target.startswith("/"):
            raise ConvergeError(f"{where}: {shown} in {self.describe()} is absolute; Docker would resolve it "
                                "inside the build context, not on the host: make it relative", link=link)
        resolved = clean_path(f"{link.rpartition('/')[0]}/{target}".lstrip("/"))
        if resolved == ".." or resolved.startswith("../"):
            raise ConvergeError(f"{where}: {shown} points outside the {self.describe()}; a build sees only "
                                "the context", link=link)
        return "" if resolved == "." else resolved

    # ---- selection

    def _add(self, entry):
        self.found[entry.path] = entry

    def take(self, path, entry, where):
        """Add what copying the resolved ``path`` reads: a file, or a directory (whole when .dockerignore
        cannot touch it, else its kept files)."""
        if entry is None or entry.type == "tree":
            oid = entry.oid if entry else self.project.entry(self.context).oid
            if not self.ignore.may_affect(path):
                self._add(ContextEntry("tree", TREE_MODE, oid, path or "."))
                return
            for item in self.project.list_recursive(join_path(self.context, path) if path else self.context):
                inner = f"{path}/{item.path}" if path else item.path
                if not self.ignore.ignored(inner):
                    self._add(ContextEntry(item.type, item.mode, item.oid, inner))
            return
        self._add(ContextEntry(entry.type, entry.mode, entry.oid, path))

    def source(self, spec):
        if spec.parents:
            self._parents_source(spec.pattern)
            return
        if spec.pattern == ".":
            self.take("", None, spec.where)
            return
        literal, wildcard = _split_wildcards(spec.pattern)
        if not wildcard:
            found = self.resolve(literal, spec.where)
            if found is None:
                if not spec.optional:
                    raise ConvergeError(f"{spec.where}: source '{spec.pattern}' is not in the {self.describe()}"
                                        f"{self._excluded_hint(spec.pattern)}", source=spec.pattern)
                return
            self.take(*found, spec.where)
            return
        base = self.resolve(literal, spec.where) if literal else ("", None)
        if base is None or (base[1] is not None and base[1].type != "tree"):
            return
        for match in self._walk_matches(base[0], wildcard):
            found = self.resolve(match, spec.where)
            if found is not None:
                self.take(*found, spec.where)

    def _excluded_hint(self, path):
        return " (it is excluded by .dockerignore)" if self.ignore.ignored(path) else ""

    def _walk_matches(self, base, wildcard):
        """fsutil resolveWildcards: walk ``base``, match the path below it, skip into neither symlinks nor
        matched directories."""
        matches = []

        def visit(rel):
            for entry in self._children(join_path(base, rel) if base or rel else ""):
                below = f"{rel}/{entry.path}" if rel else entry.path
                full = f"{base}/{below}" if base else below
                if self._hidden(full, entry):
                    continue
                if glob_match(wildcard, below):
                    matches.append(full)
                elif entry.type == "tree" and glob_may_match_below(wildcard, below):
                    visit(below)

        visit("")
        return matches

    def _parents_source(self, pattern):
        """COPY --parents: the source is an include pattern over the context; symlinks are copied as links."""
        def visit(rel):
            for entry in self._children(rel):
                path = f"{rel}/{entry.path}" if rel else entry.path
                if entry.type == "tree":
                    if source_selects(pattern, path, parents=True):
                        if not self.ignore.ignores_all_under(path):
                            self.take(path, entry, pattern)
                    elif source_may_select_under(pattern, path, parents=True):
                        visit(path)
                elif source_selects(pattern, path, parents=True) and not self.ignore.ignored(path):
                    self._add(ContextEntry(entry.type, entry.mode, entry.oid, path))

        visit("")

    def entries(self):
        """Sorted by path; nothing below a directory that is taken whole."""
        trees = sorted(p for p, e in self.found.items() if e.kind == "tree")
        if "." in trees:
            return [self.found["."]]
        result = []
        for path in sorted(self.found):
            if not any(path != tree and path.startswith(tree + "/") for tree in trees):
                result.append(self.found[path])
        return result


def _split_wildcards(pattern):
    """fsutil splitWildcards: the literal leading components, then the rest from the first with a wildcard."""
    parts = pattern.split("/")
    for index, part in enumerate(parts):
        if has_glob(part):
            return "/".join(parts[:index]), "/".join(parts[index:])
    return pattern, ""


def source_specs(context_sources, dockerfile_path):
    """SourceSpecs for the ContextSources of a resolved Dockerfile.

    A source that uses a variable this resolver cannot see (``${TARGETARCH}``, or one the base image may
    set) is cut at the first component holding it (or widened to the whole context): the build may read
    anything there, so all of it counts.
    """
    specs = []
    for source in context_sources:
        where = f"{dockerfile_path}:{source.line}: {source.keyword}"
        unknown = set(source.unresolved_vars)
        for pattern in source.patterns:
            cut = _cut_at_variables(pattern, unknown)
            specs.append(SourceSpec(pattern=cut, where=where, parents=source.parents,
                                    optional=cut != pattern or has_glob(pattern)))
    return specs


def _cut_at_variables(pattern, names):
    if not names:
        return pattern
    placeholders = ["${%s}" % name for name in names]
    if not all(p in pattern for p in placeholders):
        return "."   # an unseen variable may have expanded to nothing: anything may be read
    parts = pattern.split("/")
    for index, part in enumerate(parts):
        if any(p in part for p in placeholders):
            return "/".join(parts[:index]) or "."
    return pattern


def select_context(project, context, specs, ignore):
    """ContextEntries a build of these sources reads from directory ``context`` of the converged tree.

    ``specs`` are SourceSpecs (see :func:`source_specs`); ``ignore`` the DockerIgnore that applies.
    """
    root = project.entry(context) if context else project.entry("")
    if root is None or root.type != "tree":
        raise ConvergeError(f"context '{context or '.'}' is not a directory in {project.describe()}")
    selector = _Selector(project, context, ignore)
    for spec in specs:
        selector.source(spec)
    return selector.entries()


def read_added_files(project_path, context, names, label):
    """AddedFiles for werf's ``contextAddFiles`` (paths relative to the context; directories walked)."""
    result = {}
    base = os.path.join(project_path, context)
    for rel in names:
        full = os.path.join(base, rel)
        if not os.path.lexists(full):
            raise ConvergeError(f"{label}: contextAddFiles entry '{rel}' does not exist in "
                                f"{os.path.join(context or '.', rel)}", field="contextAddFiles")
        if os.path.isdir(full) and not os.path.islink(full):
            paths = sorted(os.path.join(dirpath, name) for dirpath, _dirs, files in os.walk(full) for name in files)
        else:
            paths = [full]
        for path in paths:
            info = os.lstat(path)
            name = os.path.relpath(path, base).replace(os.sep, "/")
            if stat.S_ISLNK(info.st_mode):
                result[name] = AddedFile(name, SYMLINK_MODE, os.readlink(path).encode("utf-8", "surrogateescape"))
                continue
            with open(path, "rb") as handle:
                data = handle.read()
            result[name] = AddedFile(name, "100755" if info.st_mode & stat.S_IXUSR else "100644", data)
    return [result[name] for name in sorted(result)]


def context_files(project, context, entries):
    """Every file the entries stand for: (path, mode, kind, oid), trees expanded, sorted by path."""
    files = []
    for entry in entries:
        if entry.kind != "tree":
            files.append((entry.path, entry.mode, entry.kind, entry.oid))
            continue
        prefix = "" if entry.path == "." else entry.path + "/"
        for item in project.list_recursive(join_path(context, "" if entry.path == "." else entry.path)):
            files.append((prefix + item.path, item.mode, item.type, item.oid))
    return sorted(files)


def context_tar(project, context, entries, added=(), dockerfile=None, dockerfile_data=None):
    """Tar bytes holding exactly ``entries`` (and ``added``), plus the Dockerfile at ``dockerfile``
    (context-relative) when no entry carries it.

    Modification times are zero; directories are 0755, files 0644/0755 as Git records them. When the
    Dockerfile is only there for the builder, a ``.dockerignore`` naming it (and itself) goes along unless
    the context has its own: the classic builder then drops both after reading the Dockerfile, so no COPY
    can see what the digest does not cover.
    """
    files = context_files(project, context, entries)
    names = {path for path, _mode, _kind, _oid in files} | {a.path for a in added}
    extra = []
    if dockerfile and dockerfile not in names:
        data = dockerfile_data if dockerfile_data is not None else project.read_blob(join_path(context, dockerfile))
        if data is None:
            raise ConvergeError(f"dockerfile '{dockerfile}' is not in the context '{context or '.'}'")
        extra.append(AddedFile(dockerfile, "100644", data))
        if ".dockerignore" not in names:
            extra.append(AddedFile(".dockerignore", "100644", f"{dockerfile}\n.dockerignore\n".encode()))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made = set()

        def parents(path):
            parts = path.split("/")[:-1]
            for index in range(1, len(parts) + 1):
                directory = "/".join(parts[:index])
                if directory not in made:
                    made.add(directory)
                    tar.addfile(_info(directory, tarfile.DIRTYPE, 0o755))

        for path, mode, kind, oid in files:
            parents(path)
            if kind == "commit":   # a submodule: an empty directory, as in a checkout without it
                if path not in made:
                    made.add(path)
                    tar.addfile(_info(path, tarfile.DIRTYPE, 0o755))
                continue
            _add_file(tar, path, mode, project.read_object(oid))
        for item in list(added) + extra:
            parents(item.path)
            _add_file(tar, item.path, item.mode, item.data)
    return buffer.getvalue()


def _info(path, kind, mode, size=0, linkname=""):
    info = tarfile.TarInfo(path)
    info.type, info.mode, info.size, info.mtime, info.linkname = kind, mode, size, 0, linkname
    return info


def _add_file(tar, path, mode, data):
    if mode == SYMLINK_MODE:
        tar.addfile(_info(path, tarfile.SYMTYPE, 0o777, linkname=data.decode("utf-8", "surrogateescape")))
    else:
        tar.addfile(_info(path, tarfile.REGTYPE, 0o755 if mode == "100755" else 0o644, len(data)), io.BytesIO(data))
