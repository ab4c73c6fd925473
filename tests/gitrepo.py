"""Real Git repositories for tests: write files, commit, read back."""
import os
import subprocess
from pathlib import Path

IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com"}


def git(repo, *args, env=None):
    """Output of `git -C repo args` (stripped), with a fixed identity."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **IDENTITY, **(env or {})}).stdout.strip()


def write(repo, files):
    """Write ``{path: text}`` under repo; a None text deletes the file."""
    for name, text in files.items():
        path = Path(repo, name)
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def commit(repo, files=None, message="change", env=None):
    """Write ``files`` (if any), commit everything, return the commit id."""
    write(repo, files or {})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, env=env)
    return git(repo, "rev-parse", "HEAD")


def new_repo(path, files, message="initial"):
    """A fresh repository at ``path`` with one commit of ``files``."""
    Path(path).mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    commit(path, files, message)
    return Path(path)
