"""BuildKit backend: the Docker config buildctl gets, connection errors, push retries (a fake buildctl script)."""
import base64
import io
import json
import os
import tarfile
from types import SimpleNamespace

import pytest

from ansible_collections.berth.converge.plugins.module_utils import buildkit
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.registry import Credentials

IMAGE = {"name": "app", "ref": "127.0.0.1:5000/shop/app:abc", "digest": "abc", "dockerfile": "app/Dockerfile",
         "context": "app"}


def test_docker_config_keeps_the_users_config_and_adds_explicit_auths(tmp_path):
    user = tmp_path / "config.json"
    user.write_text(json.dumps({"auths": {"other.example": {"auth": "eA=="}},
                                "credHelpers": {"reg.example": "gcr", "third.example": "ecr"}}))
    creds = {"reg.example": Credentials("ci", "pw"), "docker.io": Credentials(identity_token="tok")}
    config = buildkit.docker_config_for(["reg.example", "docker.io", "none.example"], creds.get, str(user))
    assert base64.b64decode(config["auths"]["reg.example"]["auth"]) == b"ci:pw"
    assert config["auths"]["other.example"] == {"auth": "eA=="}
    assert config["auths"]["docker.io"] == config["auths"]["https://index.docker.io/v1/"] == {"identitytoken": "tok"}
    assert "none.example" not in config["auths"]
    assert config["credHelpers"] == {"third.example": "ecr"}


@pytest.mark.parametrize("address, stderr, expected", [
    ("unix:///run/x.sock", 'error: connection error: desc = "transport: Error while dialing: dial unix /run/x.sock: '
     'connect: no such file or directory"', "cannot reach BuildKit at unix:///run/x.sock"),
    ("tcp://h:1234", "error: failed to list workers: Unavailable: write tcp 1->2: write: broken pipe",
     "BuildKit at tcp://h:1234 refused the TLS connection"),
    ("tcp://h:1234", 'error: ... remote error: tls: certificate required"', "refused the TLS connection"),
    ("tcp://h:1234", "error: failed to solve: process did not complete: connection reset", None),
])
def test_connection_errors_are_named(address, stderr, expected):
    message = buildkit.BuildKitConnection("buildctl", address).explain(stderr)
    assert (message is None) if expected is None else (expected in message)


def test_bad_connection_options_are_refused(tmp_path):
    with pytest.raises(ConvergeError, match="buildkit_address must be"):
        buildkit.BuildKitConnection("buildctl", "/run/buildkitd.sock")
    with pytest.raises(ConvergeError, match="given together"):
        buildkit.BuildKitConnection("buildctl", "tcp://h:1", client_cert=str(tmp_path))
    with pytest.raises(ConvergeError, match="buildkit_ca_cert: no such file"):
        buildkit.BuildKitConnection("buildctl", "tcp://h:1", ca_cert=str(tmp_path / "nope"))


def fake_buildctl(tmp_path, failures, error):
    """A buildctl that fails ``failures`` times with ``error``, then writes the metadata file."""
    count = tmp_path / "count"
    count.write_text("0")
    script = tmp_path / "buildctl"
    script.write_text(f"""#!/bin/sh
n=$(cat {count}); echo $((n + 1)) > {count}
cp "$DOCKER_CONFIG/config.json" {tmp_path}/seen-config.json
if [ "$n" -lt {failures} ]; then echo '{error}' >&2; exit 1; fi
while [ $# -gt 0 ]; do [ "$1" = --metadata-file ] && meta=$2; shift; done
echo '{{"containerimage.digest": "sha256:m", "containerimage.config.digest": "sha256:c"}}' > "$meta"
""")
    script.chmod(0o755)
    return str(script), count


def context_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"FROM scratch\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def builder(script):
    return buildkit.BuildKitBuilder(buildkit.BuildKitConnection(script, "unix:///x"), "shop", "c0ffee",
                                    {"auths": {"127.0.0.1:5000": {"auth": "c2VjcmV0"}}})


def test_push_failure_is_retried_then_the_digest_is_reported(tmp_path):
    script, count = fake_buildctl(tmp_path, 2, "error: failed to solve: failed to push 127.0.0.1:5000/x: 503")
    b, sleeps = builder(script), []
    image_id, _log = b.build(IMAGE, context_tar(), {}, sleep=sleeps.append)
    assert (image_id, b.push(IMAGE), count.read_text().strip(), sleeps) == ("sha256:c", "sha256:m", "3", [1.0, 2.0])
    assert json.loads((tmp_path / "seen-config.json").read_text())["auths"]["127.0.0.1:5000"]["auth"] == "c2VjcmV0"


def test_push_denied_is_not_retried_and_a_build_error_names_the_step(tmp_path):
    script, count = fake_buildctl(tmp_path, 9, "error: failed to solve: failed to push x: 401 Unauthorized")
    with pytest.raises(ConvergeError, match="push of .* failed after 1 attempt"):
        builder(script).build(IMAGE, context_tar(), {}, sleep=lambda _s: None)
    script, count = fake_buildctl(tmp_path, 9, "#5 [stage-0 2/3] RUN false\\nerror: failed to solve: exit code: 1")
    with pytest.raises(ConvergeError, match=r"build failed at \[stage-0 2/3\] RUN false"):
        builder(script).build(IMAGE, context_tar(), {}, sleep=lambda _s: None)


def test_secret_values_reach_buildctl_as_files_never_as_arguments(tmp_path):
    from ansible_collections.berth.converge.plugins.module_utils.config import BuildSecret

    (tmp_path / "npmrc").write_text("from-file")
    secrets = (BuildSecret(id="plain", value="s3cr3t"), BuildSecret(id="npmrc", src="npmrc"),
               BuildSecret(id="HOME", env="HOME"))
    b = buildkit.BuildKitBuilder(buildkit.BuildKitConnection("buildctl", "unix:///x"), "p", "c", {},
                                 image_config_for=lambda name: SimpleNamespace(secrets=secrets), project_dir=str(tmp_path))
    options = b._secret_options(IMAGE, str(tmp_path))
    assert "s3cr3t" not in " ".join(options)
    plain_file = options[1].split("src=", 1)[1]
    assert open(plain_file).read() == "s3cr3t" and (os.stat(plain_file).st_mode & 0o777) == 0o600
    assert options[3] == f"id=npmrc,src={tmp_path / 'npmrc'}" and options[5] == "id=HOME,env=HOME"
    missing = buildkit.BuildKitBuilder(buildkit.BuildKitConnection("buildctl", "unix:///x"), "p", "c", {},
                                       image_config_for=lambda name: SimpleNamespace(secrets=(BuildSecret(id="x", src="nope"),)),
                                       project_dir=str(tmp_path))
    with pytest.raises(ConvergeError, match="image 'app': secret 'x': no such file nope"):
        missing._secret_options(IMAGE, str(tmp_path))


@pytest.mark.parametrize("text, normalized", [
    ("linux/amd64", "linux/amd64"), ("Linux/x86_64", "linux/amd64"), ("linux/amd64/v1", "linux/amd64"),
    ("linux/amd64/v3", "linux/amd64/v3"), ("linux/aarch64", "linux/arm64"), ("linux/arm64/v8", "linux/arm64"),
    ("linux/arm", "linux/arm/v7"), ("linux/armhf", "linux/arm/v7"), ("linux/arm/6", "linux/arm/v6"),
    ("linux/i386", "linux/386"), ("windows/amd64", "windows/amd64"),
])
def test_platforms_are_compared_as_containerd_normalizes_them(text, normalized):
    assert buildkit.normalize_platform(text) == normalized


def test_a_platform_the_workers_cannot_build_is_an_error_naming_image_platform_and_workers():
    connection = buildkit.BuildKitConnection("buildctl", "tcp://builder:1234")
    supported = ["linux/amd64", "linux/amd64/v2", "linux/386"]
    connection.check_platforms([{"name": "api", "platform": ["linux/x86_64", "linux/386"]}, {"name": "web"}], supported)
    with pytest.raises(ConvergeError) as info:
        connection.check_platforms([{"name": "api", "platform": ["linux/amd64"]},
                                    {"name": "web", "platform": ["linux/amd64", "linux/arm64"]}], supported)
    message = str(info.value)
    assert "image 'web': platform linux/arm64" in message and "tcp://builder:1234" in message
    assert "linux/amd64, linux/amd64/v2, linux/386" in message


def test_werf_network_and_ssh_become_buildctl_options():
    configs = {"none": SimpleNamespace(secrets=(), network="none", ssh=None),
               "host": SimpleNamespace(secrets=(), network="host", ssh="default=/tmp/agent.sock"),
               "plain": SimpleNamespace(secrets=(), network="default", ssh=None)}
    b = buildkit.BuildKitBuilder(buildkit.BuildKitConnection("buildctl", "unix:///x"), "p", "c", {},
                                 image_config_for=configs.__getitem__)
    assert b._run_options({"name": "none"}) == ["--opt", "force-network-mode=none"]
    assert b._run_options({"name": "host"}) == ["--opt", "force-network-mode=host", "--allow", "network.host",
                                                "--ssh", "default=/tmp/agent.sock"]
    assert b._run_options({"name": "plain"}) == []
