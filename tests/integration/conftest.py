"""Fixtures for the real local environment (hack/localenv). They fail, never skip, when it is down."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def _load_localenv():
    """Use the exports of `hack/localenv env` when the caller has not eval'ed them."""
    if os.environ.get("BERTH_LOCALENV_DIR"):
        return
    out = subprocess.run([str(ROOT / "hack" / "localenv"), "env"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, _sep, value = line.removeprefix("export ").partition("=")
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
    ensure_default_service_account(core, name)
    yield name
    core.delete_namespace(name)


def ensure_default_service_account(core, namespace):
    """Pods need the namespace's default ServiceAccount. The controller manager makes it, but after the fault
    tests restart the API server its informers may take over a minute to resume; tests are not about that."""
    from kubernetes.client.exceptions import ApiException

    try:
        core.create_namespaced_service_account(namespace, {"metadata": {"name": "default"}})
    except ApiException as exc:
        if exc.status != 409:  # made by the controller already
            raise


class ApiServer:
    """Stops and starts the kube-apiserver of the test environment (hack/localenv stop/start). Stopping it
    disturbs every user of that environment: run such tests only where nobody else does at the same time."""

    CONTROLLERS = ("kube-controller-manager", "kube-scheduler", "kwok")

    def __init__(self, localenv):
        import yaml

        self.env = dict(os.environ, BERTH_LOCALENV_DIR=str(localenv.state))
        self.url = yaml.safe_load(Path(localenv.kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
        self.killed = False

    def _localenv(self, *args):
        subprocess.run([str(ROOT / "hack" / "localenv"), *args], env=self.env, check=True, capture_output=True,
                       text=True, timeout=180)

    def kill(self):
        """SIGKILL, as a crash: from now on connections are refused."""
        self.killed = True
        self._localenv("stop", "kube-apiserver", "--kill")

    def start(self):
        """Start it (nothing when it runs) and wait until it is ready. After an outage the controllers are
        restarted too: their informers resume only after client-go's backoff (over a minute seen under load)
        and kwok's nodes would meanwhile go unreachable; the tests are about our modules, not that."""
        self._localenv("start", "kube-apiserver")
        if self.killed:
            for component in self.CONTROLLERS:
                self._localenv("stop", component)
                self._localenv("start", component)
            self.killed = False


@pytest.fixture
def apiserver(localenv):
    server = ApiServer(localenv)
    yield server
    server.start()  # whatever happened in the test


@pytest.fixture(scope="session")
def helm_bin(localenv):
    import shutil

    path = shutil.which("helm")
    if not path:
        pytest.fail(f"helm not on PATH {DOWN}")
    return path


class ModuleRun(NamedTuple):
    status: str   # SUCCESS, CHANGED or FAILED! as ansible prints it
    result: dict  # the module's result, with "failed" set from the status
    output: str   # everything ansible printed (stdout + stderr), to check what a user would see
    rc: int


def ansible_command(module, args, *, check_mode=False, diff=False, verbosity=0, env=None, interpreter=sys.executable):
    """``(command, env)`` that runs ``berth.converge.<module>`` through `ansible localhost` as a user would."""
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")  # the one of this venv
    command = [ansible, "localhost", "-i", "localhost,", "-c", "local", "-m", f"berth.converge.{module}",
               "-a", json.dumps(args), "-e", f"ansible_python_interpreter={interpreter}"]
    if check_mode:
        command.append("--check")
    if diff:
        command.append("--diff")
    if verbosity:
        command.append("-" + "v" * verbosity)
    return command, {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", **(env or {})}


def module_run_of(stdout, stderr, returncode):
    """The ModuleRun of what `ansible localhost -m ...` printed."""
    output = stdout + stderr
    # ad hoc output ends with: localhost | SUCCESS|CHANGED|FAILED! => {json}; --diff output comes before it
    markers = list(re.finditer(r"^localhost \| ([A-Z!]+) => ", stdout, re.MULTILINE))
    if not markers:
        raise AssertionError(f"no module result from ansible (rc {returncode}):\n{output}")
    result, _end = json.JSONDecoder().raw_decode(stdout[markers[-1].end():])
    status = markers[-1].group(1)
    result["failed"] = "FAILED" in status
    return ModuleRun(status, result, output, returncode)


def ansible_module(module, args, *, check_mode=False, diff=False, verbosity=0, env=None, interpreter=sys.executable):
    """Run ``berth.converge.<module>`` through `ansible localhost` as a user would."""
    command, run_env = ansible_command(module, args, check_mode=check_mode, diff=diff, verbosity=verbosity, env=env,
                                       interpreter=interpreter)
    proc = subprocess.run(command, capture_output=True, text=True, env=run_env, check=False)
    return module_run_of(proc.stdout, proc.stderr, proc.returncode)


def run_module(module, args, **options):
    """``(result, output)`` of :func:`ansible_module`."""
    run = ansible_module(module, args, **options)
    return run.result, run.output
