"""image_build with builder=buildkit against the environment's real BuildKit daemons and registries.

The local daemon (unix socket) builds the modern Dockerfile features the classic builder lacks; the built
image must hold exactly the files the digest lists. The TLS daemon (tcp://, client certificates from the
environment's CA) stands in for a remote builder and pushes to the registry that wants credentials.
"""
import hashlib
import io
import os
import subprocess
import tarfile
import uuid

import pytest

from conftest import run_module
from gitrepo import commit, git, new_repo
from test_build_context_docker import digested_blobs, git_blob_id

WERF = "project: bk\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\ncontext: app\n"

DOCKERFILE = """\
FROM {base}
RUN --mount=type=cache,target=/cache echo cached >> /cache/runs && cp /cache/runs /from-cache.txt
COPY --link lib/ /lib-linked/
COPY --chmod=0751 tool.sh /tool.sh
COPY nothing-matches-* /none/
COPY . /ctx/
"""

FILES = {
    "werf.yaml": WERF,
    "app/.dockerignore": "vendor\n!vendor/keep/me.txt\n*.log\n",
    "app/lib/a.txt": "a\n",
    "app/lib/sub/b.txt": "b\n",
    "app/tool.sh": "echo tool\n",
    "app/vendor/drop.txt": "dropped\n",
    "app/vendor/keep/me.txt": "kept\n",
    "app/debug.log": "ignored\n",
}


@pytest.fixture(scope="module")
def buildkit(localenv):
    env = os.environ
    try:
        info = {"addr": env["BERTH_BUILDKIT_ADDR"], "tls_addr": env["BERTH_BUILDKIT_TLS_ADDR"],
                "ca": env["BERTH_BUILDKIT_CA"], "cert": env["BERTH_BUILDKIT_CLIENT_CERT"],
                "key": env["BERTH_BUILDKIT_CLIENT_KEY"], "base": env["BERTH_BUILDKIT_BASE_IMAGE"]}
    except KeyError as exc:
        pytest.fail(f"BuildKit not in the local environment ({exc}); run `hack/localenv up`")
    probe = subprocess.run(["buildctl", "--addr", info["addr"], "debug", "workers"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        pytest.fail(f"buildkitd at {info['addr']} is not reachable; `hack/localenv up`: {probe.stderr}")
    return info


def project_with(tmp_path, base, files=None):
    return new_repo(tmp_path / "bk", {**FILES, "app/Dockerfile": DOCKERFILE.format(base=base), **(files or {})})


def digest(project, repo):
    result, output = run_module("image_digest", {"project_dir": str(project), "repo": repo, "explain": True})
    assert not result.get("failed"), output
    return result["images"]


def image_files(docker_client, ref, path):
    """{path: (mode, git blob id)} of the regular files under ``path`` in the image ``ref``, pulled from its registry."""
    docker_client.images.pull(ref)
    container = docker_client.containers.create(ref, ["true"])
    try:
        stream, _stat = container.get_archive(path)
        data = b"".join(stream)
    finally:
        container.remove(force=True)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                content = tar.extractfile(member).read()
                out[member.name] = (member.mode & 0o7777, git_blob_id(content))
    return out


def test_modern_dockerfile_features_build_and_the_image_holds_exactly_the_digested_files(
        tmp_path, buildkit, registry, docker_client):
    project = project_with(tmp_path, buildkit["base"])
    repo = f"{registry}/bk-{uuid.uuid4().hex[:8]}"
    images = digest(project, repo)
    result, output = run_module("image_build", {"project_dir": str(project), "images": images,
                                                "builder": "buildkit", "buildkit_address": buildkit["addr"]})
    assert not result.get("failed"), output
    built = result["images"][0]
    assert built["changed"] and built["manifest_digest"].startswith("sha256:")
    assert built["image_id"].startswith("sha256:")
    ref = built["ref"]

    ctx = image_files(docker_client, ref, "/ctx")
    names = {name.removeprefix("ctx/") for name in ctx}
    assert names == {".dockerignore", "Dockerfile", "lib/a.txt", "lib/sub/b.txt", "tool.sh", "vendor/keep/me.txt"}
    assert {blob for _mode, blob in ctx.values()} == digested_blobs(project, images[0]["inputs"])

    singles = {}
    for path in ("/from-cache.txt", "/tool.sh", "/lib-linked"):
        singles.update(image_files(docker_client, ref, path))
    assert singles["tool.sh"][0] == 0o751
    assert {"lib-linked/a.txt", "lib-linked/sub/b.txt", "from-cache.txt"} <= set(singles)
    labels = docker_client.images.get(ref).labels
    assert labels["io.berth.converge.digest"] == images[0]["digest"]
    assert labels["org.opencontainers.image.revision"] == git(project, "rev-parse", "HEAD").strip()

    again, output = run_module("image_build", {"project_dir": str(project), "images": images,
                                               "builder": "buildkit", "buildkit_address": buildkit["addr"]})
    assert not again.get("failed") and again["built"] == [], output


def test_remote_tls_builder_builds_and_pushes_to_the_registry_with_credentials(
        tmp_path, buildkit, localenv, registry_tls):
    project = project_with(tmp_path, buildkit["base"])
    repo = f"{registry_tls}/bk-{uuid.uuid4().hex[:8]}"
    auth = {"registry_username": localenv.registry_tls_username, "registry_password": localenv.registry_tls_password,
            "ca_cert": localenv.ca_cert}
    images = digest(project, repo)
    result, output = run_module("image_build", {
        "project_dir": str(project), "images": images, **auth, "builder": "buildkit",
        "buildkit_address": buildkit["tls_addr"], "buildkit_ca_cert": buildkit["ca"],
        "buildkit_client_cert": buildkit["cert"], "buildkit_client_key": buildkit["key"]}, verbosity=4)
    assert not result.get("failed"), output
    assert result["built"] == ["app"]
    assert localenv.registry_tls_password not in output
    listed, output = run_module("registry_images", {"refs": [images[0]["ref"]], **auth})
    assert not listed.get("failed"), output
    assert listed["missing"] == [], output


def test_wrong_client_certificate_and_unreachable_daemon_are_clear_errors(tmp_path, buildkit, registry):
    project = project_with(tmp_path, buildkit["base"])
    images = digest(project, f"{registry}/bk-{uuid.uuid4().hex[:8]}")
    pki = tmp_path / "other-ca"
    pki.mkdir()
    for command in (
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other-ca",
             "-keyout", "ca.key", "-out", "ca.crt"],
            ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=intruder", "-keyout", "client.key",
             "-out", "client.csr"],
            ["openssl", "x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "1", "-out", "client.crt"]):
        subprocess.run(command, cwd=pki, check=True, capture_output=True)
    result, output = run_module("image_build", {
        "project_dir": str(project), "images": images, "builder": "buildkit",
        "buildkit_address": buildkit["tls_addr"], "buildkit_ca_cert": buildkit["ca"],
        "buildkit_client_cert": str(pki / "client.crt"), "buildkit_client_key": str(pki / "client.key")})
    assert result.get("failed"), output
    assert f"BuildKit at {buildkit['tls_addr']} refused the TLS connection" in result["msg"]

    result, output = run_module("image_build", {
        "project_dir": str(project), "images": images, "builder": "buildkit",
        "buildkit_address": f"unix://{tmp_path}/no-buildkitd.sock"})
    assert result.get("failed"), output
    assert f"cannot reach BuildKit at unix://{tmp_path}/no-buildkitd.sock" in result["msg"]


def test_converge_role_with_the_buildkit_builder(tmp_path, buildkit, registry, kube_api):
    from kubernetes import client
    from test_role_converge import Shop

    shop = Shop(tmp_path, registry)
    for dockerfile in shop.dir.glob("*/Dockerfile"):  # BuildKit pulls the base image from the registry
        dockerfile.write_text(dockerfile.read_text().replace("berth.local/base:busybox", buildkit["base"])
                              # the classic builder fails on this line: proof BuildKit built it
                              + "RUN --mount=type=cache,target=/tmp/cache ls /tmp/cache\n")
    commit(shop.dir, message="base image from the registry")
    try:
        rc, output, items = shop.converge(converge_builder="buildkit", converge_buildkit_address=buildkit["addr"])
        assert rc == 0, output
        assert {i for i, state in items.items() if state == "changed"} >= {"base", "backend", "frontend"}, items
        deployment = client.AppsV1Api(kube_api).read_namespaced_deployment("backend", shop.namespace)
        assert deployment.spec.template.spec.containers[0].image.startswith(shop.repo)
    finally:
        if any(ns.metadata.name == shop.namespace for ns in client.CoreV1Api(kube_api).list_namespace().items):
            client.CoreV1Api(kube_api).delete_namespace(shop.namespace)


SECRETS_WERF = """project: bk
configVersion: 1
---
image: app
dockerfile: Dockerfile
context: app
secrets:
- env: BERTH_TEST_TOKEN
- id: npmrc
  src: npmrc.txt
- id: plain
  value: {plain}
"""

SECRETS_DOCKERFILE = """FROM {base}
RUN echo {nonce} > /nonce
RUN --mount=type=secret,id=BERTH_TEST_TOKEN --mount=type=secret,id=npmrc --mount=type=secret,id=plain \\
    cat /run/secrets/BERTH_TEST_TOKEN /run/secrets/npmrc /run/secrets/plain | sha256sum | cut -c1-64 > /secrets.sha
"""


def test_werf_build_secrets_are_usable_in_run_and_absent_from_image_history_and_output(
        tmp_path, buildkit, registry, docker_client):
    # BuildKit's cache ignores secret values (as Docker's): the nonce makes the RUN run with these ones
    token, file_secret, plain = (f"{kind}-{uuid.uuid4().hex}" for kind in ("token", "file", "plain"))
    project = new_repo(tmp_path / "bk", {
        "werf.yaml": SECRETS_WERF.format(plain=plain), "app/Dockerfile": SECRETS_DOCKERFILE.format(base=buildkit["base"], nonce=uuid.uuid4().hex)})
    (project / "npmrc.txt").write_text(file_secret)  # werf: `src` from the project directory, never committed
    images = digest(project, f"{registry}/bk-{uuid.uuid4().hex[:8]}")
    args = {"project_dir": str(project), "images": images, "builder": "buildkit", "buildkit_address": buildkit["addr"]}
    result, output = run_module("image_build", args, verbosity=4, env={"BERTH_TEST_TOKEN": token})
    assert not result.get("failed"), output
    ref = result["images"][0]["ref"]

    seen = image_files(docker_client, ref, "/secrets.sha")
    assert seen["secrets.sha"][1] == git_blob_id(
        hashlib.sha256((token + file_secret + plain).encode()).hexdigest().encode() + b"\n")
    image = docker_client.images.get(ref)
    exported = b"".join(image.save())
    history = repr(image.history()) + repr(image.attrs)
    for secret in (token, file_secret, plain):
        assert secret not in output
        assert secret not in history
        assert secret.encode() not in exported

    assert "BERTH_TEST_TOKEN" not in os.environ
    result, output = run_module("image_build", {**args, "force": True})
    assert result.get("failed") and "secret 'BERTH_TEST_TOKEN': environment variable BERTH_TEST_TOKEN is not set" \
        in result["msg"], output

    result, output = run_module("image_build", {**args, "builder": "docker", "force": True},
                                env={"BERTH_TEST_TOKEN": token})
    assert result.get("failed") and "werf.yaml 'secrets' need builder: buildkit" in result["msg"], output


def test_registry_cache_lets_a_fresh_builder_reuse_unchanged_layers(tmp_path, buildkit, registry):
    nonce = uuid.uuid4().hex  # no builder has this step cached yet
    project = new_repo(tmp_path / "bk", {
        "werf.yaml": WERF, "app/app.txt": "v1\n",
        "app/Dockerfile": f"FROM {buildkit['base']}\nRUN echo slow-step-{nonce} > /slow.txt\nCOPY app.txt /app.txt\n"})
    repo = f"{registry}/bk-{uuid.uuid4().hex[:8]}"
    args = {"project_dir": str(project), "builder": "buildkit"}
    first, output = run_module("image_build", {**args, "images": digest(project, repo), "cache_to": "{repo}:cache",
                                               "buildkit_address": buildkit["addr"]})
    assert not first.get("failed"), output
    assert not any("CACHED" in line for line in first["images"][0]["log"]), first["images"][0]["log"]

    commit(project, {"app/app.txt": "v2\n"}, message="one file changed")
    # the TLS daemon stands in for a fresh CI runner's builder: its own state, never built this Dockerfile
    second, output = run_module("image_build", {
        **args, "images": digest(project, repo), "cache_from": ["{repo}:cache"],
        "buildkit_address": buildkit["tls_addr"], "buildkit_ca_cert": buildkit["ca"],
        "buildkit_client_cert": buildkit["cert"], "buildkit_client_key": buildkit["key"]})
    assert not second.get("failed"), output
    log = second["images"][0]["log"]
    step = next(line.split(" ", 1)[0] for line in log if f"RUN echo slow-step-{nonce}" in line)
    # a step satisfied by the registry cache pulls its layer ("extracting sha256:...") instead of running
    assert any(line.startswith(f"{step} extracting sha256:") for line in log), "\n".join(log)
    assert not any(line.startswith(f"{step} extracting") for line in first["images"][0]["log"])


PLATFORM_WERF = "project: bk\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\ncontext: app\nplatform: {platforms}\n"
PLATFORM_DOCKERFILE = """FROM --platform=$BUILDPLATFORM {base} AS probe
ARG TARGETPLATFORM
RUN echo "$TARGETPLATFORM" > /built-for
FROM scratch
COPY --from=probe /built-for /built-for
COPY a.txt /a.txt
"""
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_ACCEPT = ", ".join(INDEX_TYPES + ("application/vnd.oci.image.manifest.v1+json",
                                           "application/vnd.docker.distribution.manifest.v2+json"))


def registry_get(registry, repository, kind, reference):
    import requests
    return requests.get(f"http://{registry}/v2/{repository}/{kind}/{reference}", headers={"Accept": MANIFEST_ACCEPT},
                        timeout=30)


def files_of_manifest(registry, repository, manifest):
    """{path: content} of the regular files in the layers of an image manifest."""
    files = {}
    for layer in manifest["layers"]:
        blob = registry_get(registry, repository, "blobs", layer["digest"])
        blob.raise_for_status()
        with tarfile.open(fileobj=io.BytesIO(blob.content), mode="r:*") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    files[member.name] = tar.extractfile(member).read()
    return files


def test_platforms_build_push_an_index_and_a_platform_the_builder_lacks_fails_before_any_push(
        tmp_path, buildkit, registry):
    project = new_repo(tmp_path / "bk", {
        "werf.yaml": PLATFORM_WERF.format(platforms="[linux/amd64, linux/386]"), "app/a.txt": "a\n",
        "app/Dockerfile": PLATFORM_DOCKERFILE.format(base=buildkit["base"])})
    repo = f"{registry}/bk-{uuid.uuid4().hex[:8]}"
    images = digest(project, repo)
    repository = images[0]["ref"].split("/", 1)[1].rsplit(":", 1)[0]
    assert "platform linux/amd64,linux/386" in images[0]["inputs"]
    args = {"project_dir": str(project), "builder": "buildkit", "buildkit_address": buildkit["addr"]}
    result, output = run_module("image_build", {**args, "images": images})
    assert not result.get("failed"), output
    tag = images[0]["ref"].rsplit(":", 1)[1]
    index = registry_get(registry, repository, "manifests", tag)
    assert index.status_code == 200 and index.headers["Content-Type"] in INDEX_TYPES, index.text
    assert result["images"][0]["manifest_digest"] == index.headers["Docker-Content-Digest"]
    built_for = {}
    for entry in index.json()["manifests"]:
        platform = entry.get("platform") or {}
        if platform.get("architecture") == "unknown":   # BuildKit's attestation manifests
            continue
        manifest = registry_get(registry, repository, "manifests", entry["digest"]).json()
        files = files_of_manifest(registry, repository, manifest)
        assert files.get("a.txt") == b"a\n"
        built_for[f"{platform['os']}/{platform['architecture']}"] = files["built-for"].decode().strip()
    assert built_for == {"linux/amd64": "linux/amd64", "linux/386": "linux/386"}

    # the same Dockerfile for amd64 only: another digest (the platform is in it), a single-platform image
    commit(project, {"werf.yaml": PLATFORM_WERF.format(platforms="linux/amd64")}, message="amd64 only")
    single = digest(project, repo)
    assert single[0]["digest"] != images[0]["digest"]

    commit(project, {"werf.yaml": PLATFORM_WERF.format(platforms="[linux/amd64, linux/arm64, linux/s390x]")},
           message="a platform the builder lacks")
    wanted = digest(project, repo)
    result, output = run_module("image_build", {**args, "images": wanted})
    assert result.get("failed"), output
    assert (f"image 'app': platform linux/arm64 (werf.yaml `platform`) cannot be built by BuildKit at "
            f"{buildkit['addr']}, whose workers build linux/amd64") in result["msg"]
    wanted_tag = wanted[0]["ref"].rsplit(":", 1)[1]
    assert registry_get(registry, repository, "manifests", wanted_tag).status_code == 404


HEREDOC_DOCKERFILE = """FROM {base}
ARG GREETING=hello
RUN <<EOF
set -e
mkdir -p /gen
echo "from a RUN heredoc" > /gen/run.txt
EOF
COPY <<EOF /gen/copied.txt
$GREETING from a COPY heredoc
EOF
COPY <<'EOF' /gen/literal.txt
$GREETING stays
EOF
COPY --parents src/*/keep.txt /par/
COPY --link --chmod=0700 lib/ /linked/
"""


def test_heredocs_parents_link_chmod_build_and_the_image_holds_exactly_the_digested_files(
        tmp_path, buildkit, registry, docker_client):
    project = new_repo(tmp_path / "bk", {
        "werf.yaml": WERF, "app/Dockerfile": HEREDOC_DOCKERFILE.format(base=buildkit["base"]),
        "app/src/a/keep.txt": "a\n", "app/src/a/other.txt": "not copied\n", "app/src/b/keep.txt": "b\n",
        "app/src/c/nothing.txt": "not copied\n", "app/lib/x.txt": "x\n", "app/lib/deep/y.txt": "y\n",
        "app/unused.txt": "unused\n"})
    repo = f"{registry}/bk-{uuid.uuid4().hex[:8]}"
    images = digest(project, repo)
    result, output = run_module("image_build", {"project_dir": str(project), "images": images,
                                                "builder": "buildkit", "buildkit_address": buildkit["addr"]})
    assert not result.get("failed"), output
    ref = result["images"][0]["ref"]

    from_context = {**image_files(docker_client, ref, "/par"), **image_files(docker_client, ref, "/linked")}
    assert set(from_context) == {"par/src/a/keep.txt", "par/src/b/keep.txt", "linked/x.txt", "linked/deep/y.txt"}
    assert {blob for _mode, blob in from_context.values()} == digested_blobs(project, images[0]["inputs"])
    assert {mode for name, (mode, _blob) in from_context.items() if name.startswith("linked/")} == {0o700}

    generated = image_files(docker_client, ref, "/gen")
    assert generated["gen/run.txt"][1] == git_blob_id(b"from a RUN heredoc\n")
    assert generated["gen/copied.txt"][1] == git_blob_id(b"hello from a COPY heredoc\n")
    assert generated["gen/literal.txt"][1] == git_blob_id(b"$GREETING stays\n")

    # an unselected file leaves the digest alone; a heredoc's content is part of it
    commit(project, {"app/src/a/other.txt": "changed\n", "app/unused.txt": "changed\n"}, message="unselected")
    assert digest(project, repo)[0]["digest"] == images[0]["digest"]
    commit(project, {"app/Dockerfile": HEREDOC_DOCKERFILE.format(base=buildkit["base"]).replace(
        "from a RUN heredoc", "from a changed RUN heredoc")}, message="heredoc changed")
    changed = digest(project, repo)
    assert changed[0]["digest"] != images[0]["digest"]
    result, output = run_module("image_build", {"project_dir": str(project), "images": changed, "builder": "docker"})
    assert result.get("failed") and "app/Dockerfile uses heredocs (<<EOF), which need builder: buildkit" \
        in result["msg"], output


NETWORK_WERF = """project: bk
configVersion: 1
---
image: offline
dockerfile: Dockerfile
context: app
network: none
ssh: default={agent}
---
image: online
dockerfile: Dockerfile
context: app
"""
NETWORK_DOCKERFILE = """FROM {base}
RUN if wget -q -O /dev/null http://{registry}/v2/; then echo reachable; else echo unreachable; fi > /net.txt
RUN --mount=type=ssh,required=false if [ -S "$SSH_AUTH_SOCK" ]; then echo agent; else echo no-agent; fi > /ssh.txt
"""


def test_werf_network_and_ssh_reach_the_run_steps(tmp_path, buildkit, registry, docker_client):
    import shutil
    import tempfile
    agent_dir = tempfile.mkdtemp(prefix="bk-ssh-")   # a unix socket path must stay short
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", f"{agent_dir}/agent.sock"], stdout=subprocess.DEVNULL)
    try:
        for _attempt in range(50):
            if os.path.exists(f"{agent_dir}/agent.sock"):
                break
            __import__("time").sleep(0.1)
        project = new_repo(tmp_path / "bk", {
            "werf.yaml": NETWORK_WERF.format(agent=f"{agent_dir}/agent.sock"),
            "app/Dockerfile": NETWORK_DOCKERFILE.format(base=buildkit["base"], registry=registry)})
        images = digest(project, f"{registry}/bk-{uuid.uuid4().hex[:8]}")
        by_name = {image["name"]: image for image in images}
        assert "network none" in by_name["offline"]["inputs"]
        assert not any(line.startswith("network") for line in by_name["online"]["inputs"])
        result, output = run_module("image_build", {"project_dir": str(project), "images": images,
                                                    "builder": "buildkit", "buildkit_address": buildkit["addr"]})
        assert not result.get("failed"), output
        seen = {}
        for image in result["images"]:
            files = {**image_files(docker_client, image["ref"], "/net.txt"),
                     **image_files(docker_client, image["ref"], "/ssh.txt")}
            seen[image["name"]] = (files["net.txt"][1], files["ssh.txt"][1])
        assert seen == {"offline": (git_blob_id(b"unreachable\n"), git_blob_id(b"agent\n")),
                        "online": (git_blob_id(b"reachable\n"), git_blob_id(b"no-agent\n"))}

        result, output = run_module("image_build", {"project_dir": str(project), "images": images,
                                                    "builder": "docker", "force": True})
        assert result.get("failed") and "werf.yaml 'ssh' and 'network' need builder: buildkit" in result["msg"], output
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        shutil.rmtree(agent_dir, ignore_errors=True)
