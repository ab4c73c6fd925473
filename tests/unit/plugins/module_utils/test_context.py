"""The build context is the digested file set (context.py), on real Git repositories made in tmp_path."""
import io
import os
import tarfile

import pytest

from gitrepo import commit, git, new_repo

from ansible_collections.berth.converge.plugins.module_utils.build import build_context
from ansible_collections.berth.converge.plugins.module_utils.context import context_files
from ansible_collections.berth.converge.plugins.module_utils.digest import compute_digests
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.project import load_project

WERF = "project: shop\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\ncontext: app\n"


def make(tmp_path, dockerfile, files, links=(), extra=None):
    repo = new_repo(tmp_path / "shop", {"werf.yaml": WERF, "app/Dockerfile": dockerfile, **files})
    for path, target in links:
        os.symlink(target, repo / path)
    for path, text in (extra or {}).items():
        (repo / path).write_text(text)
    if links or extra:
        commit(repo)
    return repo


def image(repo, dev=False):
    project = load_project(str(repo), dev=dev)
    return project, compute_digests(project.git, project.config)[0]


def tar_members(repo):
    project, digest = image(repo)
    with tarfile.open(fileobj=io.BytesIO(build_context(project.git, digest))) as tar:
        return {m.name: (m.linkname if m.issym() else tar.extractfile(m).read() if m.isfile() else "dir")
                for m in tar.getmembers()}


def context_lines(repo):
    return [line for line in image(repo)[1].inputs if line.startswith("context ")]


def test_a_symlink_source_is_followed_and_its_target_changes_the_digest(tmp_path):
    repo = make(tmp_path, "FROM scratch\nCOPY link /link\n", {"app/a.txt": "v1\n"}, [("app/link", "a.txt")])
    before = image(repo)[1].digest
    assert [line.split()[-1] for line in context_lines(repo)] == ["a.txt", "link"]
    commit(repo, {"app/a.txt": "v2\n"})
    assert image(repo)[1].digest != before
    members = tar_members(repo)
    assert members["link"] == "a.txt" and members["a.txt"] == b"v2\n"


def test_a_glob_matching_a_symlink_follows_it(tmp_path):
    repo = make(tmp_path, "FROM scratch\nCOPY lin* /x/\n", {"app/a.txt": "v1\n", "app/other.txt": "o\n"},
                [("app/link", "a.txt")])
    before = image(repo)[1].digest
    commit(repo, {"app/a.txt": "v2\n"})
    assert image(repo)[1].digest != before
    commit(repo, {"app/other.txt": "changed\n"})   # not selected
    assert image(repo)[1].digest == image(repo)[1].digest


def test_symlinked_directories_on_the_way_and_as_source(tmp_path):
    repo = make(tmp_path, "FROM scratch\nCOPY dirlink/f.txt /f\nCOPY dirlink /d/\n",
                {"app/real/f.txt": "f\n", "app/real/g.txt": "g\n"}, [("app/dirlink", "real")])
    paths = [line.split()[-1] for line in context_lines(repo)]
    assert paths == ["dirlink", "real"]          # the link, and the real directory as one tree
    before = image(repo)[1].digest
    commit(repo, {"app/real/g.txt": "g2\n"})
    assert image(repo)[1].digest != before


def test_a_symlink_inside_a_copied_directory_is_copied_as_a_link(tmp_path):
    repo = make(tmp_path, "FROM scratch\nCOPY dir/ /d/\n", {"app/dir/f.txt": "f\n", "app/target.txt": "t\n"},
                [("app/dir/inner", "../target.txt")])
    before = image(repo)[1].digest
    commit(repo, {"app/target.txt": "t2\n"})     # Docker copies the link, not its target
    assert image(repo)[1].digest == before
    assert tar_members(repo)["dir/inner"] == "../target.txt"
    assert "target.txt" not in tar_members(repo)


@pytest.mark.parametrize("target,message", [
    ("../outside.txt", r"app/Dockerfile:2: COPY: symlink 'link' -> '\.\./outside\.txt' points outside the "
                       r"context 'app' of commit \w+; a build sees only the context"),
    ("/etc/passwd", r"symlink 'link' -> '/etc/passwd' .* is absolute"),
])
def test_a_followed_symlink_leaving_the_context_is_an_error_naming_it(tmp_path, target, message):
    repo = make(tmp_path, "FROM scratch\nCOPY link /link\n", {"outside.txt": "o\n"}, [("app/link", target)])
    with pytest.raises(ConvergeError, match=message):
        image(repo)


def test_symlink_loops_are_an_error(tmp_path):
    repo = make(tmp_path, "FROM scratch\nCOPY a /a\n", {}, [("app/a", "b"), ("app/b", "a")])
    with pytest.raises(ConvergeError, match="too many levels of symbolic links"):
        image(repo)


def test_a_link_to_an_ignored_file_is_not_found(tmp_path):
    repo = make(tmp_path, "FROM scratch\nCOPY link /link\n", {"app/a.txt": "a\n", "app/.dockerignore": "a.txt\n"},
                [("app/link", "a.txt")])
    with pytest.raises(ConvergeError, match=r"app/Dockerfile:2: COPY: source 'link' is not in the context"):
        image(repo)


def test_a_missing_source_names_dockerfile_line_and_source(tmp_path):
    repo = make(tmp_path, "FROM scratch\n\nCOPY nope.txt /x\n", {"app/a.txt": "a\n"})
    with pytest.raises(ConvergeError, match=r"app/Dockerfile:3: COPY: source 'nope\.txt' is not in the context "
                                            r"'app' of commit"):
        image(repo)
    repo2 = make(tmp_path / "2", "FROM scratch\nCOPY nope*.txt /x/\n", {"app/a.txt": "a\n"})
    assert context_lines(repo2) == []           # a wildcard may match nothing (BuildKit allows it)


def test_export_ignore_files_reach_the_build(tmp_path):
    repo = make(tmp_path, "FROM scratch\nCOPY . /app/\n", {"app/keep.txt": "k\n", "app/secret.txt": "s\n",
                                                           ".gitattributes": "app/secret.txt export-ignore\n"})
    assert tar_members(repo)["secret.txt"] == b"s\n"


def test_the_tar_holds_exactly_the_digested_files_and_the_dockerfile(tmp_path):
    repo = make(tmp_path, "FROM scratch\nCOPY src/ /s/\nCOPY lnk /l\n",
                {"app/src/a.py": "a\n", "app/src/b.tmp": "b\n", "app/src/sub/c.py": "c\n", "app/README": "r\n",
                 "app/.dockerignore": "src/*.tmp\nREADME\n", "app/target": "t\n"}, [("app/lnk", "target")])
    project, digest = image(repo)
    digested = {path for path, _mode, _kind, _oid in context_files(project.git, "app", digest.context_entries)}
    assert digested == {"src/a.py", "src/sub/c.py", "lnk", "target"}
    files = {name for name, value in tar_members(repo).items() if value != "dir"}
    # the Dockerfile rides along for the builder, with a .dockerignore that makes the classic builder drop it
    assert files == digested | {"Dockerfile", ".dockerignore"}
    assert tar_members(repo)[".dockerignore"] == b"Dockerfile\n.dockerignore\n"


def test_a_source_with_a_variable_we_cannot_see_counts_everything_from_there(tmp_path):
    repo = make(tmp_path, "FROM scratch\nARG TARGETARCH\nCOPY bin/$TARGETARCH/app /app\n",
                {"app/bin/amd64/app": "x\n", "app/bin/arm64/app": "y\n", "app/other": "o\n"})
    oid = git(repo, "rev-parse", "HEAD:app/bin")
    assert context_lines(repo) == [f"context tree 040000 {oid} bin"]


def test_dev_mode_reads_symlinks_from_the_working_tree(tmp_path):
    repo = make(tmp_path, "FROM scratch\nCOPY link /link\n", {"app/a.txt": "v1\n", "app/b.txt": "b\n"},
                [("app/link", "a.txt")])
    committed = image(repo)[1].digest
    os.unlink(repo / "app" / "link")
    os.symlink("b.txt", repo / "app" / "link")
    assert image(repo)[1].digest == committed
    assert image(repo, dev=True)[1].digest != committed
