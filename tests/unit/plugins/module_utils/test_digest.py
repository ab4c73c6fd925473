"""Digest rules of DESIGN.md section 4, on real Git repositories made in tmp_path."""
import subprocess

import pytest

from gitrepo import commit, git, new_repo, write

from ansible_collections.berth.converge.plugins.module_utils.digest import compute_digests
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.project import load_project

WERF = """project: shop
configVersion: 1
---
image: base
dockerfile: Dockerfile
context: base
---
image: backend
dockerfile: Dockerfile
context: backend
args: {MODE: prod, UNUSED: x}
dependencies:
- image: base
  imports:
  - type: ImageName
    targetBuildArg: BASE_IMAGE
---
image: frontend
dockerfile: Dockerfile
context: frontend
"""

FILES = {
    "werf.yaml": WERF,
    "base/Dockerfile": "FROM berth.local/base:busybox\nRUN echo base > /base\n",
    "backend/Dockerfile": ("ARG BASE_IMAGE\nFROM $BASE_IMAGE\nARG MODE\n# a comment\nCOPY src/ /app/\n"
                           "COPY config.json /app/\nRUN echo $MODE\n"),
    "backend/.dockerignore": "src/*.tmp\n",
    "backend/src/main.py": "print('hi')\n",
    "backend/src/scratch.tmp": "ignored\n",
    "backend/config.json": "{}\n",
    "backend/README.md": "not copied\n",
    "frontend/Dockerfile": "FROM berth.local/base:busybox\nCOPY . /site\n",
    "frontend/index.html": "<h1>shop</h1>\n",
    "docs/guide.md": "outside every context\n",
}


@pytest.fixture
def repo(tmp_path):
    return new_repo(tmp_path / "shop", FILES)


def digests(path, dev=False, **kwargs):
    project = load_project(str(path), dev=dev)
    return {d.name: d for d in compute_digests(project.git, project.config, **kwargs)}


def test_same_commit_same_digests_on_another_clone(repo, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert {n: d.digest for n, d in digests(repo).items()} == {n: d.digest for n, d in digests(clone).items()}


def test_reference_is_namespaced_under_repo(repo):
    backend = digests(repo, repo="127.0.0.1:5000/shop")["backend"]
    assert backend.ref == f"127.0.0.1:5000/shop/backend:{backend.digest}"
    assert len(backend.digest) == 64


def test_file_outside_copy_sources_does_not_change_digest(repo):
    before = digests(repo)
    commit(repo, {"backend/README.md": "edited\n", "docs/guide.md": "edited\n"})
    after = digests(repo)
    assert after["backend"].digest == before["backend"].digest
    assert after["frontend"].digest == before["frontend"].digest


def test_dockerignored_file_does_not_change_digest(repo):
    before = digests(repo)["backend"].digest
    commit(repo, {"backend/src/scratch.tmp": "edited\n", "backend/src/other.tmp": "new\n"})
    assert digests(repo)["backend"].digest == before


def test_file_inside_copy_source_changes_only_that_image(repo):
    before = digests(repo)
    commit(repo, {"backend/src/main.py": "print('changed')\n"})
    after = digests(repo)
    assert after["backend"].digest != before["backend"].digest
    assert after["frontend"].digest == before["frontend"].digest
    assert after["base"].digest == before["base"].digest


def test_new_file_in_copied_directory_changes_digest(repo):
    before = digests(repo)["frontend"].digest
    commit(repo, {"frontend/app.js": "x\n"})
    assert digests(repo)["frontend"].digest != before


def test_dependency_change_flows_into_importing_image(repo):
    before = digests(repo)
    commit(repo, {"base/Dockerfile": "FROM berth.local/base:busybox\nRUN echo base2 > /base\n"})
    after = digests(repo)
    assert after["base"].digest != before["base"].digest
    assert after["backend"].digest != before["backend"].digest
    assert after["frontend"].digest == before["frontend"].digest


def test_arg_value_changes_digest_only_when_declared(repo):
    before = digests(repo)["backend"].digest
    commit(repo, {"werf.yaml": WERF.replace("UNUSED: x", "UNUSED: y")})
    assert digests(repo)["backend"].digest == before
    commit(repo, {"werf.yaml": WERF.replace("MODE: prod", "MODE: dev")})
    assert digests(repo)["backend"].digest != before


def test_comments_do_not_change_digest_but_instructions_do(repo):
    before = digests(repo)["backend"].digest
    dockerfile = FILES["backend/Dockerfile"]
    commit(repo, {"backend/Dockerfile": dockerfile.replace("# a comment", "# another comment")})
    assert digests(repo)["backend"].digest == before
    commit(repo, {"backend/Dockerfile": dockerfile.replace("RUN echo $MODE", "RUN echo $MODE!")})
    assert digests(repo)["backend"].digest != before


def test_cache_version_changes_digest(repo):
    before = digests(repo)
    commit(repo, {"werf.yaml": WERF.replace("configVersion: 1\n", "configVersion: 1\nbuild: {cacheVersion: 2}\n")})
    after = digests(repo)
    assert all(after[name].digest != before[name].digest for name in before)


def test_uncommitted_changes_count_only_in_dev_mode(repo):
    before = digests(repo)["frontend"].digest
    write(repo, {"frontend/index.html": "<h1>uncommitted</h1>\n", "frontend/new.txt": "untracked\n"})
    assert digests(repo)["frontend"].digest == before
    assert digests(repo, dev=True)["frontend"].digest != before
    assert "frontend/index.html" in load_project(str(repo)).git.uncommitted_changes()


def test_explain_lists_inputs(repo):
    backend = digests(repo)["backend"]
    inputs = backend.as_dict(explain=True)["inputs"]
    assert inputs[0] == "berth-digest-version 2"
    assert "arg MODE=prod" in inputs
    assert not any("UNUSED" in line for line in inputs)
    assert any(line.startswith("import ImageName BASE_IMAGE <- base ") for line in inputs)
    oid = git(repo, "rev-parse", "HEAD:backend/src/main.py")
    assert f"context blob 100644 {oid} src/main.py" in inputs
    assert not any("scratch.tmp" in line or "README.md" in line for line in inputs)


def test_directory_untouched_by_dockerignore_is_one_tree_input(repo):
    frontend = digests(repo)["frontend"].as_dict(explain=True)["inputs"]
    oid = git(repo, "rev-parse", "HEAD:frontend")
    assert f"context tree 040000 {oid} ." in frontend


def test_project_in_a_subdirectory_of_the_repository(repo, tmp_path):
    mono = tmp_path / "mono"
    (mono / "apps").mkdir(parents=True)
    git(mono, "init", "-q")
    write(mono / "apps" / "shop", FILES)
    commit(mono, {"README.md": "monorepo\n"})
    assert {n: d.digest for n, d in digests(mono / "apps" / "shop").items()} == \
        {n: d.digest for n, d in digests(repo).items()}


def test_only_restricts_result_but_keeps_dependency_digests(repo):
    full = digests(repo)
    only = digests(repo, only=["backend"])
    assert list(only) == ["backend"]
    assert only["backend"].digest == full["backend"].digest
    with pytest.raises(ConvergeError, match="no image named 'nope'"):
        digests(repo, only=["nope"])


def test_missing_dockerfile_names_werf_yaml_image_and_field(repo):
    commit(repo, {"frontend/Dockerfile": None})
    with pytest.raises(ConvergeError, match=r"werf\.yaml:\d+: image 'frontend': dockerfile 'Dockerfile' "
                                            r"\(context 'frontend'\) not found in commit"):
        digests(repo)


def test_not_a_repository_and_no_commit(tmp_path):
    with pytest.raises(ConvergeError, match="not a Git repository"):
        load_project(str(tmp_path))
    git(tmp_path, "init", "-q")
    with pytest.raises(ConvergeError, match="has no commit yet"):
        load_project(str(tmp_path))


def test_werf_yaml_must_be_committed(tmp_path):
    git(tmp_path, "init", "-q")
    commit(tmp_path, {"README.md": "x\n"})
    write(tmp_path, {"werf.yaml": WERF})
    with pytest.raises(ConvergeError, match=r"werf\.yaml: not found in commit .* \(is it committed\?\)"):
        load_project(str(tmp_path))
