"""image_digest -> registry_images -> image_build against the real Docker Engine and registries."""
import re
import uuid

import pytest

from conftest import run_module
from gitrepo import commit, git, new_repo
from ansible_collections.berth.converge.plugins.module_utils.registry import RegistryClient

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
args: {GREETING: hello}
dependencies:
- image: base
  imports:
  - type: ImageName
    targetBuildArg: BASE_IMAGE
  - type: ImageDigest
    targetBuildArg: BASE_DIGEST
---
image: frontend
dockerfile: Dockerfile
context: frontend
---
# a trailing separator and a comment-only document, as templated werf.yaml files often end
"""


def files(base_image):
    return {
        "werf.yaml": WERF,
        "base/Dockerfile": f"FROM {base_image}\nRUN echo from-base > /base.txt\n",
        "backend/Dockerfile": ("ARG BASE_IMAGE\nFROM $BASE_IMAGE\nARG GREETING\nARG BASE_DIGEST\n"
                               "COPY app/ /app/\nRUN echo \"$GREETING $BASE_DIGEST\" > /greeting.txt\n"),
        "backend/app/main.sh": "echo backend v1\n",
        "frontend/Dockerfile": f"FROM {base_image}\nCOPY . /site/\nRUN ls /site > /listing.txt\n",
        "frontend/index.html": "<h1>shop</h1>\n",
    }


@pytest.fixture
def project(tmp_path, localenv):
    return new_repo(tmp_path / "shop", files(localenv.base_image))


def digest(project, repo, **more):
    result, output = run_module("image_digest", {"project_dir": str(project), "repo": repo, **more})
    assert not result.get("failed"), output
    return result


def build(project, images, **more):
    result, output = run_module("image_build", {"project_dir": str(project), "images": images, **more})
    assert not result.get("failed"), output
    return result


def run_image(docker_client, ref, *command):
    return docker_client.containers.run(ref, list(command), remove=True, network_mode="none").decode()


def test_first_run_builds_all_second_none_then_only_what_changed(project, registry, docker_client):
    repo = f"{registry}/t-{uuid.uuid4().hex[:8]}"
    first = digest(project, repo)
    lookup, _output = run_module("registry_images", {"refs": first["images"]})
    assert sorted(lookup["missing"]) == sorted(i["ref"] for i in first["images"])

    built = build(project, first["images"])
    assert built["changed"] is True
    assert sorted(built["built"]) == ["backend", "base", "frontend"]
    with RegistryClient() as client:
        present, missing = client.lookup([i["ref"] for i in first["images"]])
    assert not missing
    assert {i["name"]: i["manifest_digest"] for i in built["images"]} == \
        {i["name"]: present[i["ref"]] for i in first["images"]}

    again = build(project, digest(project, repo)["images"])
    assert again["changed"] is False and again["built"] == []
    assert all(not i["changed"] for i in again["images"])

    commit(project, {"backend/app/main.sh": "echo backend v2\n", "README.md": "outside every context\n"})
    second = digest(project, repo)
    first_digests = {i["name"]: i["digest"] for i in first["images"]}
    changed = {i["name"] for i in second["images"] if i["digest"] != first_digests[i["name"]]}
    assert changed == {"backend"}
    rebuilt = build(project, second["images"])
    assert rebuilt["built"] == ["backend"]

    backend = next(i for i in second["images"] if i["name"] == "backend")
    base = next(i for i in built["images"] if i["name"] == "base")
    assert run_image(docker_client, backend["ref"], "cat", "/app/main.sh") == "echo backend v2\n"
    assert run_image(docker_client, backend["ref"], "cat", "/base.txt") == "from-base\n"
    assert run_image(docker_client, backend["ref"], "cat", "/greeting.txt") == \
        f"hello {base['manifest_digest']}\n"
    labels = docker_client.images.get(backend["ref"]).labels
    assert labels["io.berth.converge.digest"] == backend["digest"]
    assert labels["org.opencontainers.image.revision"] == git(project, "rev-parse", "HEAD")


def test_change_to_dependency_rebuilds_its_importers(project, registry):
    repo = f"{registry}/t-{uuid.uuid4().hex[:8]}"
    build(project, digest(project, repo)["images"])
    commit(project, {"base/Dockerfile": files("berth.local/base:busybox")["base/Dockerfile"] + "RUN true\n"})
    rebuilt = build(project, digest(project, repo)["images"])
    assert sorted(rebuilt["built"]) == ["backend", "base"]


def test_build_context_comes_from_the_commit_not_the_work_tree(project, registry, docker_client):
    (project / "frontend" / "stray.txt").write_text("not committed\n")
    repo = f"{registry}/t-{uuid.uuid4().hex[:8]}"
    result = digest(project, repo, images=["frontend"])
    assert "frontend/stray.txt" in result["uncommitted"]
    build(project, result["images"])
    listing = run_image(docker_client, result["images"][0]["ref"], "cat", "/listing.txt")
    assert "index.html" in listing and "stray.txt" not in listing


def test_check_mode_builds_nothing(project, registry):
    repo = f"{registry}/t-{uuid.uuid4().hex[:8]}"
    images = digest(project, repo)["images"]
    result, output = run_module("image_build", {"project_dir": str(project), "images": images}, check_mode=True)
    assert result["changed"] is True, output
    assert sorted(result["built"]) == ["backend", "base", "frontend"]
    with RegistryClient() as client:
        _present, missing = client.lookup([i["ref"] for i in images])
    assert len(missing) == 3


def test_failed_build_names_the_step_and_pushes_nothing(project, registry):
    commit(project, {"frontend/Dockerfile": "FROM berth.local/base:busybox\nRUN echo about to fail && exit 3\n"})
    repo = f"{registry}/t-{uuid.uuid4().hex[:8]}"
    images = digest(project, repo, images=["frontend"])["images"]
    result, output = run_module("image_build", {"project_dir": str(project), "images": images})
    assert result.get("failed"), output
    assert re.search(r"image 'frontend': build failed at Step 2/\d+ : RUN echo about to fail && exit 3", result["msg"])
    assert "about to fail" in result["msg"]  # the log tail
    with RegistryClient() as client:
        assert client.manifest_digest(images[0]["ref"]) is None


def test_digests_from_another_commit_are_refused(project, registry):
    repo = f"{registry}/t-{uuid.uuid4().hex[:8]}"
    images = digest(project, repo)["images"]
    commit(project, {"frontend/index.html": "changed\n"})
    result, _output = run_module("image_build", {"project_dir": str(project), "images": images})
    assert result.get("failed")
    assert "image 'frontend': its digest at commit" in result["msg"]


def test_tls_registry_with_credentials_and_wrong_password(project, localenv, registry_tls):
    repo = f"{registry_tls}/t-{uuid.uuid4().hex[:8]}"
    images = digest(project, repo, images=["frontend"])["images"]
    auth = {"registry_username": localenv.registry_tls_username, "registry_password": localenv.registry_tls_password,
            "ca_cert": localenv.ca_cert}
    built = build(project, images, **auth)
    assert built["built"] == ["frontend"]
    lookup, _output = run_module("registry_images", {"refs": images, **auth})
    assert lookup["present"] == {images[0]["ref"]: built["images"][0]["manifest_digest"]}

    wrong = "Wr0ng-" + uuid.uuid4().hex
    result, output = run_module("image_build", {"project_dir": str(project), "images": images, **auth,
                                                "registry_password": wrong, "force": True}, verbosity=4)
    assert result.get("failed"), output
    assert "credentials" in result["msg"].lower() or "unauthorized" in result["msg"].lower(), result["msg"]
    assert wrong not in output
    assert localenv.registry_tls_password not in output


def test_dependency_only_in_a_private_registry_is_pulled_with_the_module_credentials(project, localenv, registry_tls,
                                                                                     docker_client):
    repo = f"{registry_tls}/t-{uuid.uuid4().hex[:8]}"
    auth = {"registry_username": localenv.registry_tls_username, "registry_password": localenv.registry_tls_password,
            "ca_cert": localenv.ca_cert}
    first = digest(project, repo)["images"]
    build(project, first, **auth)
    base = next(i for i in first if i["name"] == "base")
    for image in first:  # nothing local any more: the Engine has no credentials of its own for this registry
        docker_client.images.remove(image["ref"], force=True)
    commit(project, {"backend/app/main.sh": "echo backend v3\n"})
    rebuilt = build(project, digest(project, repo)["images"], **auth)
    assert rebuilt["built"] == ["backend"]
    assert docker_client.images.get(base["ref"])  # pulled before the backend's FROM
