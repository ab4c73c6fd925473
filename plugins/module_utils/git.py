# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The project's Git repository: the commit, its trees (read lazily), and the working-tree state.

Giterminism: by default only committed content counts. In dev mode the working tree (tracked and
untracked, not ignored files) is written to a temporary tree object, so everything downstream still reads
Git trees and the same code serves both modes.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

try:
    import git as gitpython
except ImportError as exc:
    GITPYTHON_IMPORT_ERROR = exc
else:
    GITPYTHON_IMPORT_ERROR = None


@dataclass(frozen=True)
class CommitInfo:
    hash: str
    date: str      # ISO 8601 author date (as werf)
    unix: int

    def as_dict(self):
        return {"hash": self.hash, "date": self.date, "unix": self.unix}


@dataclass(frozen=True)
class TreeEntry:
    path: str      # relative to the tree it was listed from
    mode: str      # "040000" tree, "100644"/"100755" file, "120000" symlink, "160000" submodule
    type: str      # tree | blob | commit
    oid: str


class GitProject:
    """A Git work tree at ``path`` and the revision to converge (default HEAD)."""

    def __init__(self, path, revision="HEAD", dev=False):
        if GITPYTHON_IMPORT_ERROR:
            raise ConvergeError(f"GitPython is required: {GITPYTHON_IMPORT_ERROR}")
        if not os.path.isdir(path):
            raise ConvergeError(f"project_dir {path}: no such directory")
        try:
            self.repo = gitpython.Repo(path, search_parent_directories=True)
        except (gitpython.InvalidGitRepositoryError, gitpython.NoSuchPathError):
            raise ConvergeError(f"project_dir {path}: not a Git repository (run `git init` and commit the project)")
        self.path = os.path.abspath(path)
        # the project may be a directory of a larger repository (werf allows that); paths are project-relative
        self.prefix = os.path.relpath(os.path.realpath(path), os.path.realpath(self.repo.working_tree_dir))
        self.prefix = "" if self.prefix == "." else self.prefix.replace(os.sep, "/")
        self.dev = dev
        try:
            commit = self.repo.commit(revision)
            commit.authored_date  # noqa: B018 - reads the object: a shallow clone names parents it lacks
        except (gitpython.BadName, ValueError):
            if revision == "HEAD":
                raise ConvergeError(f"project_dir {path}: the Git repository has no commit yet; commit the project")
            shallow = os.path.exists(os.path.join(self.repo.git_dir, "shallow"))
            raise ConvergeError(f"project_dir {path}: revision '{revision}' not found"
                                + (" (the clone is shallow: fetch more history, e.g. `git fetch --unshallow`)"
                                   if shallow else ""), option="revision")
        # werf's commit date is the author date
        self.commit = CommitInfo(hash=commit.hexsha, date=commit.authored_datetime.isoformat(),
                                 unix=int(commit.authored_date))
        self._trees = {}
        self.tree_oid = self._worktree_tree() if dev else commit.tree.hexsha
        if self.prefix:
            found = self.entry(self.prefix)
            if found is None or found.type != "tree":
                where = "the working tree" if dev else f"commit {commit.hexsha[:12]}"
                raise ConvergeError(f"project_dir {path}: directory '{self.prefix}' is not in {where}")
            self.tree_oid = found.oid
            self._trees = {}

    def git(self, *args, input_bytes=None, env=None):
        """Run git in the project and return stdout bytes; a failure is a ConvergeError with git's message."""
        proc = subprocess.run(["git", "-C", self.path, *args], input=input_bytes, capture_output=True,
                              env={**os.environ, **(env or {})}, check=False)
        if proc.returncode != 0:
            raise ConvergeError(f"git {' '.join(args)} failed in {self.path}: "
                                f"{proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    def _worktree_tree(self):
        """Tree object id of the working tree (tracked + untracked, minus .gitignore), written to the object db."""
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            self.git("read-tree", "HEAD", env=env)
            self.git("add", "-A", ".", env=env)
            return self.git("write-tree", env=env).decode().strip()

    def uncommitted_changes(self):
        """Paths that differ from the commit in the working tree (porcelain status lines)."""
        out = self.git("status", "--porcelain=v1", "-z", "--untracked-files=all").decode(errors="replace")
        return [entry[3:] for entry in out.split("\0") if entry]

    # ---- trees, read lazily through GitPython's persistent `git cat-file --batch`

    def entry(self, path):
        """The TreeEntry at ``path`` (project-relative) in the converged tree, or None."""
        if path in ("", "."):
            return TreeEntry(path="", mode="040000", type="tree", oid=self.tree_oid)
        parent, _sep, name = path.rpartition("/")
        for item in self.list_tree(parent):
            if item.path == name:
                return item
        return None

    def list_tree(self, path):
        """Entries directly inside directory ``path`` (project-relative; "" for the root). [] if absent."""
        if path in self._trees:
            return self._trees[path]
        parent = self.entry(path) if path else TreeEntry("", "040000", "tree", self.tree_oid)
        entries = []
        if parent is not None and parent.type == "tree":
            tree = gitpython.Tree(self.repo, bytes.fromhex(parent.oid), 0o40000, path)
            for obj in tree:
                entries.append(TreeEntry(path=obj.name, mode=f"{obj.mode:06o}", type=obj.type, oid=obj.hexsha))
        self._trees[path] = entries
        return entries

    def list_recursive(self, path):
        """Every file (blob, symlink, submodule) under directory ``path``, paths relative to it.

        One `git ls-tree -r` of the directory's tree: native speed, for walks that must see each file.
        """
        found = self.entry(path) if path else TreeEntry("", "040000", "tree", self.tree_oid)
        if found is None or found.type != "tree":
            return []
        entries = []
        for record in self.git("ls-tree", "-r", "-z", "--full-tree", found.oid).split(b"\0"):
            if record:
                meta, _sep, name = record.partition(b"\t")
                mode, kind, oid = meta.decode().split(" ")
                entries.append(TreeEntry(path=name.decode("utf-8", errors="surrogateescape"), mode=mode,
                                         type=kind, oid=oid))
        return entries

    def read_blob(self, path):
        """Content of the file at ``path`` in the converged tree, or None if it is not there."""
        found = self.entry(path)
        if found is None or found.type != "blob":
            return None
        return self.repo.odb.stream(bytes.fromhex(found.oid)).read()

    def read_object(self, oid):
        """Content of the blob ``oid`` (hex): a file's bytes or a symlink's target."""
        return self.repo.odb.stream(bytes.fromhex(oid)).read()

    def read_text(self, path):
        """Like read_blob, decoded as UTF-8."""
        data = self.read_blob(path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def extract(self, path, dest):
        """Write directory ``path`` of the converged tree under ``dest``; False when it is not there."""
        found = self.entry(path)
        if found is None or found.type != "tree":
            return False
        target = os.path.join(dest, path)
        os.makedirs(target, exist_ok=True)
        try:
            with tarfile.open(fileobj=io.BytesIO(self.archive(path)), mode="r:") as tar:
                tar.extractall(target, filter="data")
        except tarfile.TarError as exc:  # e.g. a symlink pointing out of the directory
            raise ConvergeError(f"cannot extract '{path}' from {self.describe()}: {exc}")
        return True

    def describe(self):
        """Where content comes from, for messages."""
        return "the working tree" if self.dev else f"commit {self.commit.hash[:12]}"

    def archive(self, path):
        """A tar stream (bytes) of directory ``path`` of the converged tree, entries relative to it."""
        found = self.entry(path)
        if found is None or found.type != "tree":
            raise ConvergeError(f"directory '{path}' is not in commit {self.commit.hash[:12]}")
        return self.git("archive", "--format=tar", found.oid)
