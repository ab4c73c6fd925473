"""What is built is what is digested: a differential test against the real Docker Engine.

Each case is a small project (symlinks to files and directories, links leaving the context, export-ignore,
nested .dockerignore exceptions, globs, ARG in paths, ...) whose Dockerfile COPYs into /out. For each:

* the reference: the commit checked out into a directory (symlinks, export-ignore files and all) and built
  by the docker CLI, which applies .dockerignore itself, as a user's `docker build` does;
* ours: the tar image_build sends (build.build_context, the digested file set) built by the same Engine;
* the digest inputs (`explain: true`): every file and symlink in the built /out must be a blob the inputs
  list (directly or inside a listed tree);
* then one change is committed: the digest must change exactly when the reference image's /out changes.

Cases where Docker must refuse the build (a followed link leaving the context) must make image_digest fail
with a message naming the link.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile

import pytest

from gitrepo import commit, git, new_repo

from ansible_collections.berth.converge.plugins.module_utils.build import build_context
from ansible_collections.berth.converge.plugins.module_utils.digest import compute_digests
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.project import load_project

BASE = "berth.local/base:busybox"
WERF = "project: ctx\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\ncontext: app\n"


def case(name, copy, files=None, links=None, change=None, expect="changes", dockerignore=None, werf_args=None,
         attributes=None, docker_differs=False):
    """``copy``: the Dockerfile lines after FROM; ``change``: {"files": {path: text|None}, "links": {path: target},
    "chmod": [path]} (paths under app/); ``expect``: changes | same | error (a message fragment follows ':')."""
    return pytest.param(dict(copy=copy, files=files or {}, links=links or {}, change=change or {}, expect=expect,
                             dockerignore=dockerignore, werf_args=werf_args, attributes=attributes,
                             docker_differs=docker_differs), id=name)


AB = {"a.txt": "a1\n", "b.txt": "b1\n", "c.txt": "c1\n"}
TREE = {"real/f.txt": "f1\n", "real/g.txt": "g1\n", "real/sub/h.txt": "h1\n"}

CASES = [
    case("link-to-file", "COPY link /out/", AB, {"link": "a.txt"}, {"files": {"a.txt": "a2\n"}}),
    case("link-retargeted", "COPY link /out/", AB, {"link": "a.txt"}, {"links": {"link": "b.txt"}}),
    case("glob-matches-link", "COPY lin* /out/", AB, {"link": "a.txt"}, {"files": {"a.txt": "a2\n"}}),
    case("glob-link-unselected-file", "COPY lin* /out/", AB, {"link": "a.txt"}, {"files": {"c.txt": "c2\n"}},
         "same"),
    case("link-chain", "COPY l1 /out/", AB, {"l1": "l2", "l2": "a.txt"}, {"files": {"a.txt": "a2\n"}}),
    case("link-up-from-subdir", "COPY sub/up /out/", {**AB, "sub/x": "x\n"}, {"sub/up": "../a.txt"},
         {"files": {"a.txt": "a2\n"}}),
    case("link-to-directory", "COPY dlink /out/", TREE, {"dlink": "real"}, {"files": {"real/sub/h.txt": "h2\n"}}),
    case("link-to-directory-new-file", "COPY dlink /out/", TREE, {"dlink": "real"},
         {"files": {"real/new.txt": "n\n"}}),
    case("directory-link-on-the-path", "COPY dlink/f.txt /out/", TREE, {"dlink": "real"},
         {"files": {"real/f.txt": "f2\n"}}),
    case("directory-link-on-the-path-other-file", "COPY dlink/f.txt /out/", TREE, {"dlink": "real"},
         {"files": {"real/g.txt": "g2\n"}}, "same"),
    case("glob-matches-directory-link", "COPY dl* /out/", TREE, {"dlink": "real"},
         {"files": {"real/g.txt": "g2\n"}}),
    case("link-to-context-root", "COPY root/a.txt /out/", AB, {"root": "."}, {"files": {"a.txt": "a2\n"}}),
    case("link-inside-copied-dir-target-changes", "COPY dir/ /out/", {**AB, "dir/f": "f\n"},
         {"dir/inner": "../c.txt"}, {"files": {"c.txt": "c2\n"}}, "same"),
    case("link-inside-copied-dir-retargeted", "COPY dir/ /out/", {**AB, "dir/f": "f\n"},
         {"dir/inner": "../c.txt"}, {"links": {"dir/inner": "../b.txt"}}),
    case("dangling-link-inside-copied-dir", "COPY dir/ /out/", {"dir/f": "f\n"}, {"dir/inner": "/nowhere"},
         {"links": {"dir/inner": "/elsewhere"}}),
    case("copy-all-with-links", "COPY . /out/", AB, {"link": "a.txt"}, {"links": {"link": "c.txt"}}),
    case("link-leaving-the-context", "COPY link /out/", {"x": "x\n"}, {"link": "../outside.txt"},
         expect="error:symlink 'link' -> '../outside.txt' points outside the context"),
    case("link-chain-leaving-the-context", "COPY l1 /out/", {"x": "x\n"}, {"l1": "l2", "l2": "../../etc/passwd"},
         expect="error:symlink 'l2' -> '../../etc/passwd' points outside"),
    case("absolute-link-to-nothing", "COPY link /out/", {"x": "x\n"}, {"link": "/nonexistent/file"},
         expect="error:symlink 'link' -> '/nonexistent/file'"),
    case("absolute-link-into-context", "COPY link /out/", AB, {"link": "/a.txt"},
         expect="error:symlink 'link' -> '/a.txt'", docker_differs=True),
    case("link-to-ignored-file", "COPY link /out/", AB, {"link": "a.txt"}, dockerignore="a.txt\n",
         expect="error:source 'link' is not in the context"),
    case("ignored-link-glob", "COPY lin* a.txt /out/", AB, {"link": "b.txt"}, {"links": {"link": "c.txt"}},
         "same", dockerignore="link\n"),
    case("export-ignore", "COPY . /out/", AB, change={"files": {"b.txt": "b2\n"}},
         attributes="app/b.txt export-ignore\n"),
    case("export-ignore-directory", "COPY dir /out/", {"dir/f": "f\n", "dir/g": "g\n"},
         change={"files": {"dir/g": "g2\n"}}, attributes="app/dir/** export-ignore\n"),
    case("dockerignore-glob", "COPY . /out/", {**AB, "x.tmp": "t\n"}, change={"files": {"x.tmp": "t2\n"}},
         expect="same", dockerignore="*.tmp\n"),
    case("nested-exception-kept", "COPY . /out/", {"docs/keep/k.md": "k\n", "docs/drop.md": "d\n", "a": "a\n"},
         change={"files": {"docs/keep/k.md": "k2\n"}}, dockerignore="docs\n!docs/keep\n"),
    case("nested-exception-dropped", "COPY . /out/", {"docs/keep/k.md": "k\n", "docs/drop.md": "d\n", "a": "a\n"},
         change={"files": {"docs/drop.md": "d2\n"}}, expect="same", dockerignore="docs\n!docs/keep\n"),
    case("double-star-exception", "COPY . /out/", {"s/x.log": "x\n", "s/important.log": "i\n", "m": "m\n"},
         change={"files": {"s/important.log": "i2\n"}}, dockerignore="**/*.log\n!**/important.log\n"),
    case("double-star-excluded", "COPY . /out/", {"s/x.log": "x\n", "s/important.log": "i\n", "m": "m\n"},
         change={"files": {"s/x.log": "x2\n"}}, expect="same", dockerignore="**/*.log\n!**/important.log\n"),
    case("glob-matches-directory", "COPY sr* /out/", {"src/a": "a\n", "src/d/b": "b\n", "other": "o\n"},
         change={"files": {"src/d/b": "b2\n"}}),
    case("glob-two-levels", "COPY */*.txt /out/", {"d1/a.txt": "a\n", "d2/b.txt": "b\n", "d1/c.md": "c\n"},
         change={"files": {"d1/c.md": "c2\n"}}, expect="same"),
    case("glob-class", "COPY [ab].txt /out/", AB, change={"files": {"c.txt": "c2\n"}}, expect="same"),
    case("arg-in-path", "ARG DIR=src\nCOPY ${DIR}/ /out/", {"src/a": "a\n", "lib/a": "l\n"},
         change={"files": {"src/a": "a2\n"}}),
    case("arg-from-werf-args", "ARG DIR=src\nCOPY ${DIR}/a /out/", {"src/a": "a\n", "lib/a": "l\n"},
         change={"files": {"src/a": "a2\n"}}, expect="same", werf_args={"DIR": "lib"}),
    case("several-sources", "COPY a.txt b.txt /out/", AB, change={"files": {"b.txt": "b2\n"}}),
    case("executable-bit", "COPY a.txt /out/", AB, change={"chmod": ["a.txt"]}),
    case("add-local-file", "ADD a.txt /out/", AB, change={"files": {"a.txt": "a2\n"}}),
]


def write_project(root, spec):
    werf = WERF + ("args: {%s}\n" % ", ".join(f"{k}: {v}" for k, v in spec["werf_args"].items())
                   if spec["werf_args"] else "")
    files = {"werf.yaml": werf, "outside.txt": "outside\n",
             "app/Dockerfile": f"FROM {BASE}\n{spec['copy']}\n",
             **{f"app/{path}": text for path, text in spec["files"].items()}}
    if spec["dockerignore"]:
        files["app/.dockerignore"] = spec["dockerignore"]
    if spec["attributes"]:
        files[".gitattributes"] = spec["attributes"]
    repo = new_repo(root, files)
    for path, target in spec["links"].items():
        os.symlink(target, repo / "app" / path)
    if spec["links"]:
        commit(repo)
    return repo


def apply_change(repo, change):
    for path, text in change.get("files", {}).items():
        full = repo / "app" / path
        full.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            full.unlink()
        else:
            full.write_text(text)
    for path, target in change.get("links", {}).items():
        os.unlink(repo / "app" / path)
        os.symlink(target, repo / "app" / path)
    for path in change.get("chmod", []):
        os.chmod(repo / "app" / path, 0o755)
    commit(repo)


def digest_of(repo):
    project = load_project(str(repo))
    image = compute_digests(project.git, project.config)[0]
    return project, image, image.as_dict(explain=True)["inputs"]


def docker_reference(repo, tmp_path, docker_env, build_args=None):
    """Image id of `docker build` (classic builder) run by the docker CLI on a checkout of HEAD; None if it
    fails."""
    checkout = tmp_path / f"checkout-{git(repo, 'rev-parse', '--short', 'HEAD')}"
    subprocess.run(["git", "clone", "-q", str(repo), str(checkout)], check=True)
    flags = [f"--build-arg={name}={value}" for name, value in (build_args or {}).items()]
    proc = subprocess.run(["docker", "build", "-q", "--no-cache", *flags, str(checkout / "app")], capture_output=True,
                          text=True, env=docker_env, check=False)
    shutil.rmtree(checkout)
    return proc.stdout.strip() if proc.returncode == 0 else None


def docker_ours(client, project, image):
    """Image id of the Engine's build of the tar image_build sends; None if the build fails."""
    image_id = None
    for chunk in client.api.build(fileobj=io.BytesIO(build_context(project.git, image)), custom_context=True,
                                  buildargs=image.args, rm=True, forcerm=True, nocache=True, decode=True):
        if "error" in chunk:
            return None
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
    return image_id


def listing(client, image_id):
    """{path: (type, mode, content sha256 or link target)} of /out in the image."""
    container = client.containers.create(image_id, ["true"])
    try:
        stream, _stat = container.get_archive("/out")
        data = b"".join(stream)
    finally:
        container.remove(force=True)
    result = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isdir():
                result[member.name] = ("dir", member.mode & 0o7777, None)
            elif member.issym():
                result[member.name] = ("link", 0, member.linkname)
            else:
                content = tar.extractfile(member).read()
                result[member.name] = ("file", member.mode & 0o7777, git_blob_id(content))
    return result


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def digested_blobs(repo, inputs):
    """Object ids of every blob the `context` inputs stand for (trees listed)."""
    blobs = set()
    for line in inputs:
        if not line.startswith("context "):
            continue
        _word, kind, _mode, oid, _path = line.split(" ", 4)
        if kind == "tree":
            for record in git(repo, "ls-tree", "-r", oid).splitlines():
                blobs.add(record.split()[2])
        else:
            blobs.add(oid)
    return blobs


@pytest.fixture(scope="module")
def docker_env(localenv):
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is required for the reference builds (apt-get install docker.io)")
    return {**os.environ, "DOCKER_HOST": localenv.docker_host, "DOCKER_BUILDKIT": "0"}


def test_there_are_enough_cases():
    assert len(CASES) >= 25
    assert sum(1 for c in CASES if c.values[0]["expect"].startswith("error")) >= 3


@pytest.mark.parametrize("spec", CASES)
def test_build_context_matches_docker(spec, tmp_path, docker_client, docker_env):
    repo = write_project(tmp_path / "p", spec)
    reference = docker_reference(repo, tmp_path, docker_env, spec["werf_args"])
    images = [i for i in [reference] if i]
    try:
        if spec["expect"].startswith("error"):
            with pytest.raises(ConvergeError) as failure:
                digest_of(repo)
            assert spec["expect"].split(":", 1)[1] in str(failure.value)
            assert (reference is not None) == spec["docker_differs"], "Docker's verdict on the build"
            return
        assert reference, "the reference docker build failed"
        project, image, inputs = digest_of(repo)
        ours = docker_ours(docker_client, project, image)
        assert ours, "the build of our context failed"
        images.append(ours)
        built = listing(docker_client, reference)
        assert listing(docker_client, ours) == built
        blobs = digested_blobs(repo, inputs)
        for path, (kind, _mode, content) in built.items():
            if kind == "file":
                assert content in blobs, f"{path} is in the image but its content is not a digest input"
            elif kind == "link":
                assert git_blob_id(content.encode()) in blobs, f"link {path} is not a digest input"

        apply_change(repo, spec["change"])
        _project, changed_image, _inputs = digest_of(repo)
        after = docker_reference(repo, tmp_path, docker_env, spec["werf_args"])
        assert after, "the reference docker build failed after the change"
        images.append(after)
        image_changed = listing(docker_client, after) != built
        assert image_changed == (spec["expect"] == "changes"), "the change changes the image as the case says"
        assert (changed_image.digest != image.digest) == image_changed, \
            f"digest changed: {changed_image.digest != image.digest}, image changed: {image_changed}"
    finally:
        for image_id in images:
            try:
                docker_client.images.remove(image_id, force=True)
            except Exception:  # shared base layers or already gone
                pass
