"""Smoke tests: one per real part of hack/localenv, proving each works before anything is built on it."""
import io
import subprocess
import tarfile
import time
import uuid

import pytest
import requests
from kubernetes import client, utils

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
])


def _context(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _build(docker_client, base_image, tag):
    marker = uuid.uuid4().hex
    dockerfile = f"FROM {base_image}\nRUN echo {marker} > /marker && mkdir /app && echo ok > /app/ok\nCMD [\"cat\", \"/marker\"]\n"
    image, _logs = docker_client.images.build(fileobj=_context({"Dockerfile": dockerfile}), custom_context=True,
                                              tag=tag, rm=True, forcerm=True)
    return image, marker


def _push(docker_client, repo, tag, auth_config=None):
    errors = [line for line in docker_client.images.push(repo, tag=tag, stream=True, decode=True,
                                                         auth_config=auth_config) if "error" in line]
    assert not errors, errors


def test_docker_builds_run_step_on_local_base_image(docker_client, localenv):
    image, marker = _build(docker_client, localenv.base_image, f"berth-smoke/run:{uuid.uuid4().hex[:8]}")
    out = docker_client.containers.run(image.id, remove=True, network_mode="none")
    assert out.decode().strip() == marker


def test_push_to_plain_registry_and_read_manifest(docker_client, localenv, registry):
    repo, tag = f"{registry}/smoke/plain", uuid.uuid4().hex[:12]
    image, _marker = _build(docker_client, localenv.base_image, f"{repo}:{tag}")
    _push(docker_client, repo, tag)
    resp = requests.get(f"http://{registry}/v2/smoke/plain/manifests/{tag}", headers={"Accept": MANIFEST_TYPES},
                        timeout=10)
    resp.raise_for_status()
    manifest = resp.json()
    assert manifest["config"]["digest"] == image.id
    assert len(manifest["layers"]) == 3  # the base: COPY busybox, RUN --install; ours: RUN


def test_push_to_tls_registry_with_credentials(docker_client, localenv, registry_tls):
    repo, tag = f"{registry_tls}/smoke/tls", uuid.uuid4().hex[:12]
    auth = {"username": localenv.registry_tls_username, "password": localenv.registry_tls_password}
    image, _marker = _build(docker_client, localenv.base_image, f"{repo}:{tag}")
    _push(docker_client, repo, tag, auth_config=auth)
    url = f"https://{registry_tls}/v2/smoke/tls/manifests/{tag}"
    anonymous = requests.get(url, headers={"Accept": MANIFEST_TYPES}, verify=localenv.ca_cert, timeout=10)
    assert anonymous.status_code == 401
    resp = requests.get(url, headers={"Accept": MANIFEST_TYPES}, verify=localenv.ca_cert, timeout=10,
                        auth=(auth["username"], auth["password"]))
    resp.raise_for_status()
    assert resp.json()["config"]["digest"] == image.id


def test_kubectl_reports_the_pinned_version(localenv):
    out = subprocess.run(["kubectl", "--kubeconfig", localenv.kubeconfig, "version", "-o", "json"],
                         check=True, capture_output=True, text=True).stdout
    assert f'"gitVersion": "{localenv.kube_version}"' in out.replace('":"', '": "')


def _deployment(name, labels=None):
    pod_labels = {"app": name, **(labels or {})}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": 2, "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [{"name": "main", "image": "127.0.0.1:5000/smoke/app:1"}]},
            },
        },
    }


def _wait(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def test_nodes_are_kwok_and_ready(kube_api):
    nodes = client.CoreV1Api(kube_api).list_node(label_selector="type=kwok").items
    assert len(nodes) >= 2
    for node in nodes:
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", node.metadata.name


def test_deployment_becomes_available(kube_api, namespace):
    utils.create_from_dict(kube_api, _deployment("web"), namespace=namespace)
    apps = client.AppsV1Api(kube_api)

    def available():
        dep = apps.read_namespaced_deployment_status("web", namespace)
        conds = {c.type: c.status for c in (dep.status.conditions or [])}
        return conds.get("Available") == "True" and dep.status.ready_replicas == 2

    _wait("Deployment web Available with 2 ready replicas", available)
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector="app=web").items
    assert {p.spec.node_name for p in pods} <= {n.metadata.name for n in client.CoreV1Api(kube_api).list_node().items}
    assert all(p.status.phase == "Running" for p in pods)


def _container_waiting_reason(core, namespace, selector):
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        for status in pod.status.container_statuses or []:
            if status.state.waiting and status.state.waiting.reason:
                return status.state.waiting.reason
    return None


@pytest.mark.parametrize("reason", ["CrashLoopBackOff", "ImagePullBackOff"])
def test_labelled_deployment_reports_failure_in_pod_status(kube_api, namespace, reason):
    utils.create_from_dict(kube_api, _deployment("broken", {"berth.test/fail": reason}), namespace=namespace)
    core = client.CoreV1Api(kube_api)
    got = _wait(f"a pod in {reason}", lambda: _container_waiting_reason(core, namespace, "app=broken"))
    assert got == reason
    dep = client.AppsV1Api(kube_api).read_namespaced_deployment_status("broken", namespace)
    assert not dep.status.ready_replicas


def test_labelled_job_fails(kube_api, namespace):
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"backoffLimit": 1, "template": {
            "metadata": {"labels": {"berth.test/fail": "Error"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "x"}]},
        }},
    }
    utils.create_from_dict(kube_api, job, namespace=namespace)
    batch = client.BatchV1Api(kube_api)

    def failed():
        conds = batch.read_namespaced_job_status("migrate", namespace).status.conditions or []
        return next((c for c in conds if c.type == "Failed" and c.status == "True"), None)

    cond = _wait("Job migrate Failed", failed, timeout=90)
    assert cond.reason == "BackoffLimitExceeded"


def test_unlabelled_job_completes(kube_api, namespace):
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "ok"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
    }
    utils.create_from_dict(kube_api, job, namespace=namespace)
    batch = client.BatchV1Api(kube_api)
    _wait("Job ok Complete", lambda: (batch.read_namespaced_job_status("ok", namespace).status.succeeded or 0) >= 1)


def test_helm_templates_a_tiny_chart(helm_bin, tmp_path):
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n")
    out = subprocess.run([helm_bin, "template", "rel", str(chart), "--set", "greeting=hi"],
                         check=True, capture_output=True, text=True).stdout
    assert "name: rel-cm" in out
    assert 'greeting: "hi"' in out
    version = subprocess.run([helm_bin, "version", "--short"], check=True, capture_output=True, text=True).stdout
    assert version.startswith("v3.18.6")


def test_everything_listens_on_loopback_only(localenv):
    """Every TCP listener owned by a localenv process is bound to 127.0.0.1 (or ::1)."""
    pids = set()
    for pidfile in (localenv.state / "run").glob("*.pid"):
        pid = pidfile.read_text().strip()
        pids.add(pid)
        # children (e.g. containerd shims) too
        out = subprocess.run(["pgrep", "-g", pid], capture_output=True, text=True, check=False).stdout
        pids.update(out.split())
    listeners = subprocess.run(["ss", "-Hltnp"], check=True, capture_output=True, text=True).stdout.splitlines()
    ours = [line for line in listeners if any(f"pid={pid}," in line for pid in pids)]
    assert ours, "expected the environment's listeners to be visible"
    for line in ours:
        local = line.split()[3]
        assert local.startswith(("127.", "[::1]", "[::ffff:127.")), line
