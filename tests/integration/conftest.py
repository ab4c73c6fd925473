"""Fixtures for the real local environment (hack/localenv). They fail, never skip, when it is down."""
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def _load_localenv():
    """Use the exports of `hack/localenv env` when the caller has not eval'ed them."""
    if os.environ.get("BERTH_LOCALENV_DIR"):
        return
    out = subprocess.run([str(ROOT / "hack" / "localenv"), "env"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        value = " ".join(shlex.split(value))
        os.environ[key] = value.replace("$PATH", os.environ.get("PATH", ""))


_load_localenv()

DOWN = "is not reachable; start the environment with `hack/localenv up`"


class LocalEnv:
    """Addresses and credentials of the local environment."""

    def __init__(self):
        env = os.environ
        self.state = Path(env["BERTH_LOCALENV_DIR"])
        self.kubeconfig = env["KUBECONFIG"]
        self.docker_host = env["DOCKER_HOST"]
        self.registry = env["BERTH_REGISTRY"]
        self.registry_tls = env["BERTH_REGISTRY_TLS"]
        self.registry_tls_username = env["BERTH_REGISTRY_TLS_USERNAME"]
        self.registry_tls_password = Path(env["BERTH_REGISTRY_TLS_PASSWORD_FILE"]).read_text().strip()
        self.ca_cert = env["BERTH_REGISTRY_CA"]
        self.base_image = env["BERTH_BASE_IMAGE"]
        self.kube_version = env["BERTH_KUBE_VERSION"]


@pytest.fixture(scope="session")
def localenv():
    try:
        return LocalEnv()
    except (KeyError, OSError) as exc:
        pytest.fail(f"local environment not configured ({exc}); run `hack/localenv up`")


@pytest.fixture(scope="session")
def docker_client(localenv):
    import docker

    client = docker.DockerClient(base_url=localenv.docker_host, timeout=120)
    try:
        client.ping()
    except Exception as exc:  # the SDK raises several types here
        pytest.fail(f"Docker Engine at {localenv.docker_host} {DOWN}: {exc}")
    return client


@pytest.fixture(scope="session")
def registry(localenv):
    try:
        requests.get(f"http://{localenv.registry}/v2/", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"registry {localenv.registry} {DOWN}: {exc}")
    return localenv.registry


@pytest.fixture(scope="session")
def registry_tls(localenv):
    try:
        resp = requests.get(f"https://{localenv.registry_tls}/v2/", timeout=5, verify=localenv.ca_cert)
    except requests.RequestException as exc:
        pytest.fail(f"registry {localenv.registry_tls} {DOWN}: {exc}")
    assert resp.status_code == 401, "the TLS registry must ask for credentials"
    return localenv.registry_tls


@pytest.fixture(scope="session")
def kube_api(localenv):
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=localenv.kubeconfig)
    try:
        client.VersionApi(api_client).get_code(_request_timeout=5)
    except Exception as exc:  # urllib3 and ApiException alike
        pytest.fail(f"Kubernetes API from {localenv.kubeconfig} {DOWN}: {exc}")
    return api_client


@pytest.fixture
def namespace(kube_api, request):
    """A fresh namespace, deleted after the test."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    name = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-") + "-" + os.urandom(3).hex()
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def helm_bin(localenv):
    import shutil

    path = shutil.which("helm")
    if not path:
        pytest.fail(f"helm not on PATH {DOWN}")
    return path
