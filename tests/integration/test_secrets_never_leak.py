# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets never leave the process: the converge role converges Secrets carrying werf secret values and
Ansible Vault values at -vvvv, with --diff, with --check, on a failing rollout, and release_apply,
release_track and chart_render are called with argument errors; every output stream, the syslog (a real
datagram socket at /dev/log), the controller log, the progress file and every file left in the run's home
(~/.ansible/tmp) and temporary directory are searched for each secret, its base64 and its URL-encoding.

The runs see our socket as /dev/log through a private mount namespace (``unshare -m``): there /dev is a
directory of links to the real devices plus the socket, so this machine's /dev (and a syslog daemon that
may own /dev/log) is never touched, and nothing is left mounted when the run ends.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as random_tokens
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import yaml
from kubernetes import client

from gitrepo import commit
from test_role_converge import Shop, _namespace_exists

BIN = Path(sys.executable).parent


class SyslogCapture:
    """A unix datagram socket, as /dev/log of syslogd, whose messages are kept."""

    def __init__(self, path):
        self.path = str(path)
        self.messages = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self):
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(1 << 20).decode("utf-8", "replace"))
            except socket.timeout:
                continue

    def text(self):
        return "\n".join(self.messages)

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


class Sandbox:
    """Runs commands in a private mount namespace whose /dev/log is a SyslogCapture, with their own home
    (so ~/.ansible/tmp is theirs), temporary directory, Ansible log file and progress file."""

    def __init__(self, root):
        if os.geteuid() != 0:
            pytest.fail("this test needs root for `unshare -m` (a private /dev/log)")
        self.root = root
        self.host_dev = root / "host-dev"
        self.dev = root / "dev"
        self.home = root / "home"
        self.tmp = root / "tmp"
        for path in (self.host_dev, self.dev, self.home, self.tmp):
            path.mkdir(parents=True)
        for entry in os.listdir("/dev"):
            if entry != "log":
                (self.dev / entry).symlink_to(self.host_dev / entry)
        self.ansible_log = root / "ansible.log"
        self.progress = root / "progress.log"
        self.syslog = SyslogCapture(self.dev / "log")
        self.streams = {}  # "run name stdout|stderr" -> text

    def run(self, name, command, env=None):
        wrapped = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                   'mount --rbind /dev "$1" && mount --bind "$2" /dev && shift 2 && exec "$@"',
                   "sh", str(self.host_dev), str(self.dev), *command]
        run_env = {**os.environ, "HOME": str(self.home), "TMPDIR": str(self.tmp), "ANSIBLE_NOCOLOR": "1",
                   "ANSIBLE_LOG_PATH": str(self.ansible_log), **(env or {})}
        proc = subprocess.run(wrapped, capture_output=True, text=True, env=run_env, check=False, timeout=900)
        self.streams[f"{name} stdout"] = proc.stdout
        self.streams[f"{name} stderr"] = proc.stderr
        return proc.returncode, proc.stdout + proc.stderr

    def everything(self):
        """{stream or file: text} of all that the runs printed, logged and left behind."""
        found = dict(self.streams)
        found["syslog (/dev/log)"] = self.syslog.text()
        for path in (self.ansible_log, self.progress):
            found[path.name] = path.read_text(errors="replace") if path.exists() else ""
        for top in (self.home, self.tmp):
            for path in sorted(top.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    found[f"leftover {path.relative_to(self.root)}"] = path.read_bytes().decode("utf-8", "replace")
        return found

    def close(self):
        self.syslog.close()


def forms(secret):
    """The ways a secret could show: as is, base64 (Secret data), URL-encoded."""
    return {"plain": secret, "base64": base64.b64encode(secret.encode()).decode(),
            "url": quote(secret, safe=""), "url+": quote_plus(secret)}


def leaks(found, secrets):
    """{(stream, secret name, form): count} of every occurrence."""
    counts = {}
    for stream, text in found.items():
        for name, secret in secrets.items():
            for form, value in forms(secret).items():
                counts[(stream, name, form)] = text.count(value)
    return counts


@pytest.fixture(params=[True, False], ids=["in-process", "as-module"])
def sandbox(tmp_path, request):
    """A sandbox whose runs execute the modules in the worker process (the default on the controller), or
    as modules (AnsiballZ, as on another host)."""
    box = Sandbox(tmp_path / "sandbox")
    box.in_process = request.param
    yield box
    box.close()


def _token(prefix):
    # '/', '+', '=' and ' ' make the URL-encoding and base64 of a value differ from the value
    return f"{prefix}/{random_tokens.token_hex(8)}+x= {random_tokens.token_hex(4)}"


@pytest.fixture
def secret_shop(tmp_path, registry, kube_api):
    """The example shop with fresh secrets: an Ansible Vault values file (and vault password) and werf secret
    values read by a second Secret, as stringData and as base64 data."""
    from ansible_collections.berth.converge.plugins.module_utils import werf_secrets

    shop = Shop(tmp_path, registry)
    values = {"vault": _token("vault"), "werf": _token("werf"), "werf-data": _token("werfdata"),
              "werf-key": werf_secrets.generate_secret_key(), "vault-password": random_tokens.token_hex(12)}
    (shop.dir / "vault-password.txt").write_text(values["vault-password"] + "\n")
    vaulted = shop.dir / "secret-values.vault.yaml"
    vaulted.write_text(yaml.safe_dump({"secrets": {"dbPassword": values["vault"]}}))
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(shop.dir / "vault-password.txt"),
                    str(vaulted)], check=True, capture_output=True)
    key = werf_secrets.parse_secret_key(values["werf-key"], "test")
    encrypted = werf_secrets.encrypt_values(key, {"api": {"token": values["werf"], "key": values["werf-data"]}})
    (shop.dir / ".helm" / "secret-values.yaml").write_text(yaml.safe_dump(encrypted))
    (shop.dir / ".helm" / "templates" / "api-secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: shop-api\ntype: Opaque\n"
        "stringData:\n  token: {{ .Values.api.token | quote }}\n"
        "data:\n  key: {{ .Values.api.key | b64enc }}\n")
    commit(shop.dir, message="secrets")
    shop.secrets = values
    shop.key = key
    yield shop
    if _namespace_exists(kube_api, shop.namespace):
        client.CoreV1Api(kube_api).delete_namespace(shop.namespace)


def converge(box, name, shop, *flags, **more):
    command = [str(BIN / "ansible-playbook"), "berth.converge.converge", "-vvvv", "--diff",
               "-e", json.dumps(shop.extra_vars(converge_progress_file=str(box.progress),
                                                berth_converge_in_process=box.in_process, **more)),
               "--vault-password-file", str(shop.dir / "vault-password.txt"), *flags]
    return box.run(name, command, env={"WERF_SECRET_KEY": shop.secrets["werf-key"]})


def module(box, name, module_name, args):
    command = [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-vvvv", "--diff",
               "-m", f"berth.converge.{module_name}", "-a", json.dumps(args),
               "-e", f"ansible_python_interpreter={sys.executable}",
               "-e", json.dumps({"berth_converge_in_process": box.in_process})]
    return box.run(name, command)


def secret_manifest(shop):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "direct"},
            "stringData": {"token": shop.secrets["werf"]},
            "data": {"key": base64.b64encode(shop.secrets["werf-data"].encode()).decode()}}


def test_no_secret_reaches_output_syslog_logs_or_files(secret_shop, sandbox, kube_api):
    shop, box = secret_shop, sandbox

    # The capture works: a module sends the arguments that are not no_log to our /dev/log.
    control = _token("control")
    rc, output = module(box, "control", "release_info", {"release": control, "namespace": shop.namespace})
    assert control in box.syslog.text(), f"/dev/log capture saw nothing: {box.syslog.text()!r}\n{output}"
    assert leaks({"control": box.syslog.text()}, {"control": control})[("control", "control", "plain")] == 1

    # 1. converge at -vvvv --diff: Secrets from Vault and werf secret values are applied.
    rc, output = converge(box, "converge", shop)
    assert rc == 0, output
    core = client.CoreV1Api(kube_api)
    api_secret = core.read_namespaced_secret("shop-api", shop.namespace)
    assert base64.b64decode(api_secret.data["token"]).decode() == shop.secrets["werf"]
    assert base64.b64decode(api_secret.data["key"]).decode() == shop.secrets["werf-data"]
    db_secret = core.read_namespaced_secret("shop-db", shop.namespace)
    assert base64.b64decode(db_secret.data["password"]).decode() == shop.secrets["vault"]
    # per-resource reporting and the masked --diff still work
    assert "changed: [localhost] => (item=Secret/shop-api)" in output, output
    assert "changed: [localhost] => (item=Secret/shop-db)" in output, output
    assert "+++ after" in output and "<hidden:" in output, output
    # no module file with its arguments is written to ~/.ansible/tmp (-vvvv would show its PUT): in the worker,
    # or pipelined
    assert "AnsiballZ_" not in output, output
    if box.in_process:
        assert "berth.converge: running berth.converge.release_apply in the worker process" in output, output
    else:
        assert "EXEC /bin/sh -c '" in output and "in the worker process" not in output, output

    # 2. --check --diff of a new werf secret value: a masked diff, nothing applied.
    shop.secrets["werf-new"] = _token("werfnew")
    from ansible_collections.berth.converge.plugins.module_utils import werf_secrets

    encrypted = werf_secrets.encrypt_values(shop.key, {"api": {"token": shop.secrets["werf-new"],
                                                               "key": shop.secrets["werf-data"]}})
    (shop.dir / ".helm" / "secret-values.yaml").write_text(yaml.safe_dump(encrypted))
    commit(shop.dir, message="new token")
    rc, output = converge(box, "check", shop, "--check")
    assert rc == 0, output
    assert "changed: [localhost] => (item=Secret/shop-api)" in output, output
    assert "ok: [localhost] => (item=Secret/shop-db)" in output, output

    # 3. A failing rollout (CrashLoopBackOff) that is rolled back.
    rc, output = converge(box, "failing converge", shop, converge_auto_rollback=True,
                          converge_set={"backendPodLabels": {"berth.test/fail": "CrashLoopBackOff"}})
    assert rc != 0 and "CrashLoopBackOff" in output, output
    assert "Rolled back to revision 1." in output, output

    # 4. Argument errors with secrets in manifests and values (unknown option, wrong type).
    manifest = secret_manifest(shop)
    cases = {
        "release_apply wrong type": ("release_apply", {
            "release": "r", "namespace": shop.namespace, "concurrency": "x", "manifests": [manifest]}),
        "release_apply unknown option": ("release_apply", {
            "release": "r", "namespace": shop.namespace, "bogus": 1, "manifests": [manifest]}),
        "release_track wrong type": ("release_track", {"resources": [manifest], "timeout": "x"}),
        "chart_render unknown option": ("chart_render", {"project_dir": str(shop.dir), "bogus": 1,
                                                         "set": {"secrets": {"dbPassword": shop.secrets["vault"]}}}),
    }
    argument_errors = {}
    for name, (module_name, args) in cases.items():
        rc, argument_errors[name] = module(box, name, module_name, args)
        assert rc != 0 and "FAILED" in argument_errors[name], argument_errors[name]

    # 5. A direct release_apply of a Secret at -vvvv --diff, then its check-mode repetition.
    rc, output = module(box, "release_apply", "release_apply", {"release": f"{shop.release}-direct",
                                                                "namespace": shop.namespace, "manifests": [manifest]})
    assert rc == 0 and "CHANGED" in output, output

    found = box.everything()
    assert "Invoked with" in found["syslog (/dev/log)"], "the modules logged nothing to /dev/log"
    counts = leaks(found, shop.secrets)
    per_stream = {}
    for (stream, _name, _form), count in counts.items():
        per_stream[stream] = per_stream.get(stream, 0) + count
    summary = "\n".join(f"{count:4d}  {stream}" for stream, count in sorted(per_stream.items()))
    print(f"\nsecret occurrences per stream ({len(shop.secrets)} secrets x {len(forms('x'))} forms):\n{summary}")
    leaked = {key: count for key, count in counts.items() if count}
    assert not leaked, f"secrets leaked: {leaked}\n{summary}"
    for output in argument_errors.values():  # the arguments are still shown, masked
        assert "<hidden:" in output or "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output, output
