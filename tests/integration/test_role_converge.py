"""The converge role on the example shop, against the real local environment, as users run it."""
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from kubernetes import client

from gitrepo import commit, git

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "shop"
BIN = Path(sys.executable).parent
ITEM_LINE = re.compile(r"^(changed|ok): \[localhost\] => \(item=([^)]*)\)", re.MULTILINE)


class Shop:
    """A fresh Git repository of examples/shop, its own registry repository and namespace."""

    def __init__(self, tmp_path, registry):
        self.dir = tmp_path / "shop"
        shutil.copytree(EXAMPLE, self.dir)
        git(self.dir, "init", "-q")
        commit(self.dir, message="shop")
        self.env = "t" + uuid.uuid4().hex[:6]
        self.release = self.namespace = f"shop-{self.env}"
        self.repo = f"{registry}/t-{self.env}/shop"

    def extra_vars(self, **more):
        return {"converge_project_dir": str(self.dir), "converge_repo": self.repo, "converge_env": self.env,
                "converge_vault_values_files": [str(self.dir / "secret-values.vault.yaml")],
                "converge_timeout": 60, **more}

    def converge(self, *flags, **more):
        """Run the converge playbook; returns (rc, output, {item: changed|ok})."""
        command = [str(BIN / "ansible-playbook"), "berth.converge.converge", "-e", json.dumps(self.extra_vars(**more)),
                   "--vault-password-file", str(self.dir / "vault-password.txt"), *flags]
        proc = subprocess.run(command, capture_output=True, text=True, check=False,
                              env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
        output = proc.stdout + proc.stderr
        items = {item: state for state, item in ITEM_LINE.findall(proc.stdout) if not item.startswith("(censored")}
        return proc.returncode, output, items


@pytest.fixture
def shop(tmp_path, registry, kube_api):
    shop = Shop(tmp_path, registry)
    yield shop
    if _namespace_exists(kube_api, shop.namespace):
        client.CoreV1Api(kube_api).delete_namespace(shop.namespace)


def _namespace_exists(kube_api, name):
    return any(ns.metadata.name == name for ns in client.CoreV1Api(kube_api).list_namespace().items)


def revisions(kube_api, shop):
    secrets = client.CoreV1Api(kube_api).list_namespaced_secret(
        shop.namespace, label_selector=f"owner=helm,name={shop.release}").items
    return sorted((int(s.metadata.labels["version"]), s.metadata.labels["status"]) for s in secrets)


IMAGES = {"base", "backend", "frontend"}
RESOURCES = {"Deployment/backend", "Deployment/frontend", "Service/backend", "Service/frontend",
             "ConfigMap/shop-config", "Secret/shop-db"}


def test_first_converge_then_idempotent_then_one_image(shop, kube_api):
    rc, output, items = shop.converge()
    assert rc == 0, output
    assert {i for i, state in items.items() if state == "changed"} >= IMAGES | RESOURCES, items
    assert any(i.startswith("Job/migrate-") for i in items)
    assert revisions(kube_api, shop) == [(1, "deployed")]
    assert f"The shop is deployed as release {shop.release} in namespace {shop.namespace}." in output  # NOTES.txt
    secret = client.CoreV1Api(kube_api).read_namespaced_secret("shop-db", shop.namespace)
    assert secret.data["password"]  # from the Vault-encrypted values file
    assert "s3cr3t-Demo-Passw0rd" not in output

    rc, output, items = shop.converge()
    assert rc == 0, output
    assert set(items.values()) == {"ok"}, items
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", output), output
    assert revisions(kube_api, shop) == [(1, "deployed")]

    (shop.dir / "frontend" / "site" / "index.html").write_text("<h1>The shop, v2</h1>\n")
    commit(shop.dir, message="frontend: v2")
    rc, output, items = shop.converge()
    assert rc == 0, output
    assert {i for i, state in items.items() if state == "changed"} == {"frontend", "Deployment/frontend"}, items
    assert [status for _version, status in revisions(kube_api, shop)] == ["superseded", "deployed"]


def test_failing_rollout_rolls_back_to_the_last_good_revision(shop, kube_api):
    rc, output, _items = shop.converge()
    assert rc == 0, output
    crash = {"backendPodLabels": {"berth.test/fail": "CrashLoopBackOff"}}
    rc, output, _items = shop.converge(converge_set=crash, converge_auto_rollback=True)
    assert rc != 0
    assert "CrashLoopBackOff" in output and "backend" in output
    assert "\nRolled back to revision 1." in output, output  # on a line of its own in the error display
    assert [status for _version, status in revisions(kube_api, shop)] == ["superseded", "failed", "deployed"]
    deployment = client.AppsV1Api(kube_api).read_namespaced_deployment("backend", shop.namespace)
    assert "berth.test/fail" not in (deployment.spec.template.metadata.labels or {})
    assert deployment.status.ready_replicas == 2


def test_check_mode_changes_nothing(shop, kube_api, registry):
    rc, output, items = shop.converge("--check", "--diff")
    assert rc == 0, output
    assert "+++ after" in output and "Deployment/backend" in output  # the resource diffs are shown
    assert {i for i, state in items.items() if state == "changed"} >= IMAGES | RESOURCES, items
    assert "would be built" in output
    assert not _namespace_exists(kube_api, shop.namespace)
    for image in IMAGES:  # nothing pushed: the repositories do not exist
        assert requests.get(f"http://{registry}/v2/t-{shop.env}/shop/{image}/tags/list", timeout=10).status_code == 404
    assert "s3cr3t-Demo-Passw0rd" not in output


def test_role_from_the_built_tarball_under_ansible_runner(shop, kube_api, tmp_path, localenv):
    """As AWX runs it: installed collection, no prompts, credentials from the environment."""
    import ansible_runner

    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(ROOT), "--output-path", str(tmp_path)],
                   check=True, capture_output=True)
    tarball = next(tmp_path.glob("berth-converge-*.tar.gz"))
    collections = tmp_path / "collections"
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--force", "-p", str(collections), str(tarball)],
                   check=True, capture_output=True)
    vault = shop.dir / "secret-values.vault.yaml"
    extra = shop.extra_vars(converge_repo=f"{localenv.registry_tls}/t-{shop.env}/shop",
                            converge_registry_ca_cert=localenv.ca_cert, converge_vault_values_files=[str(vault)])
    private = tmp_path / "runner"
    (private / "env").mkdir(parents=True)
    (private / "env" / "extravars").write_text(json.dumps(extra))
    envvars = {"ANSIBLE_COLLECTIONS_PATH": str(collections), "PATH": f"{BIN}:{os.environ['PATH']}",
               "K8S_AUTH_KUBECONFIG": localenv.kubeconfig, "DOCKER_HOST": localenv.docker_host,
               "BERTH_REGISTRY_USERNAME": localenv.registry_tls_username,
               "BERTH_REGISTRY_PASSWORD": localenv.registry_tls_password,
               "ANSIBLE_VAULT_PASSWORD_FILE": str(shop.dir / "vault-password.txt")}
    run = ansible_runner.run(private_data_dir=str(private), playbook="berth.converge.converge", envvars=envvars,
                             quiet=True)
    stdout = run.stdout.read()
    assert run.status == "successful" and run.rc == 0, stdout
    changed_items = [event["event_data"]["res"].get("item") for event in run.events
                     if event["event"] == "runner_item_on_ok" and event["event_data"]["res"].get("changed")]
    assert len(changed_items) >= len(IMAGES | RESOURCES), changed_items
    assert localenv.registry_tls_password not in stdout
    assert revisions(kube_api, shop) == [(1, "deployed")]


def test_template_error_stops_before_anything_is_built(shop, kube_api, registry):
    (shop.dir / ".helm" / "templates" / "broken.yaml").write_text("kind: ConfigMap\nname: {{ .Values.nope.deeper }}\n")
    commit(shop.dir, message="broken template")
    rc, output, items = shop.converge()
    assert rc != 0
    assert "templates/broken.yaml:2" in output, output
    assert not items  # no image line, no resource line
    for image in IMAGES:
        assert requests.get(f"http://{registry}/v2/t-{shop.env}/shop/{image}/tags/list", timeout=10).status_code == 404
    assert not _namespace_exists(kube_api, shop.namespace)


def playbook(name, extra, *flags):
    command = [str(BIN / "ansible-playbook"), f"berth.converge.{name}", "-e", json.dumps(extra), *flags]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    return proc.returncode, proc.stdout + proc.stderr


def test_render_playbook_prints_manifests_with_secrets_masked(shop, registry):
    rc, output = playbook("render", shop.extra_vars(), "--vault-password-file", str(shop.dir / "vault-password.txt"))
    assert rc == 0, output
    assert "kind: Deployment" in output and f"{shop.repo}/backend:" in output
    assert "name: shop-db" in output
    assert "s3cr3t-Demo-Passw0rd" not in output
    assert requests.get(f"http://{registry}/v2/t-{shop.env}/shop/base/tags/list", timeout=10).status_code == 404


def test_dismiss_playbook_deletes_the_release(shop, kube_api):
    rc, output, _items = shop.converge()
    assert rc == 0, output
    rc, output = playbook("dismiss", {"converge_release": shop.release, "converge_namespace": shop.namespace})
    assert rc == 0, output
    assert "Deployment/backend" in output
    apps = client.AppsV1Api(kube_api)
    assert not apps.list_namespaced_deployment(shop.namespace).items
    assert revisions(kube_api, shop) == []


def test_built_collection_lists_its_modules(tmp_path):
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(ROOT), "--output-path", str(tmp_path)],
                   check=True, capture_output=True)
    tarball = next(tmp_path.glob("berth-converge-*.tar.gz"))
    collections = tmp_path / "collections"
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--force", "-p", str(collections),
                    str(tarball)], check=True, capture_output=True)
    listing = subprocess.run([str(BIN / "ansible-doc"), "-l", "berth.converge"], check=True, capture_output=True,
                             text=True, env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)}).stdout
    modules = {line.split()[0] for line in listing.splitlines() if line.startswith("berth.converge.")}
    assert modules >= {f"berth.converge.{name}" for name in (
        "image_digest", "registry_images", "image_build", "chart_render", "release_apply", "release_track",
        "release_rollback", "release_info")}, listing
    installed = collections / "ansible_collections" / "berth" / "converge"
    assert (installed / "roles" / "converge" / "meta" / "argument_specs.yml").is_file()
    assert not (installed / "tests").exists() and not (installed / "hack").exists()


def test_werf_secret_values_and_a_wrong_key_that_stops_before_any_build(shop, kube_api, registry):
    import yaml

    from ansible_collections.berth.converge.plugins.module_utils import werf_secrets

    key = werf_secrets.generate_secret_key()
    encrypted = werf_secrets.encrypt_values(werf_secrets.parse_secret_key(key, "test"),
                                            {"greeting": "hello from a werf secret"})
    (shop.dir / ".helm" / "secret-values.yaml").write_text(yaml.safe_dump(encrypted))
    commit(shop.dir, message="werf secret values")

    rc, output, items = shop.converge(converge_secret_key=werf_secrets.generate_secret_key())
    assert rc != 0
    assert "secret-values.yaml" in output, output
    assert not items
    assert requests.get(f"http://{registry}/v2/t-{shop.env}/shop/base/tags/list", timeout=10).status_code == 404
    assert key not in output

    rc, output, _items = shop.converge(converge_secret_key=key)
    assert rc == 0, output
    config = client.CoreV1Api(kube_api).read_namespaced_config_map("shop-config", shop.namespace)
    assert config.data["greeting"] == "hello from a werf secret"
    assert key not in output
