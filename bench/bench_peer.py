"""Benchmark: the converge role against the playbook an Ansible user writes today (bench/peer/converge.yml:
community.docker builds and pushes per image, kubernetes.core.helm with wait: true), on examples/shop.

In one run, on the local environment, each round converges a fresh copy of the example with both, alternating
(role, then peer): the first converge (new registry repository and namespace each), a no-op converge (same
commit), and a one-image change (a commit that changes the frontend's site). The figures are the ratios of
medians role / peer per step (goal <= 0.5 for the no-op and the one-image change), and what each did: images
built and pushed (from the registry's tag lists), Deployments rolled (their generation), release revisions
(`helm history`, which reads the role's records too).
Then, per round, what the peer gets wrong, measured the same way for both: a by-hand change of a ConfigMap
(drift) and a no-op converge (is it reset?), and a change whose backend crashes (CrashLoopBackOff) with the same
timeout for both (60 s): how long until each fails, and what it leaves (the release's last status, whether
the crashing pods stay). The role runs it with converge_auto_rollback, as werf's --auto-rollback.
The peer runs from its own virtualenv with the `ansible` package (ansible-core 2.19, like the role's), made once
under the cache directory.

    eval "$(hack/localenv env)"; python bench/bench_peer.py [--rounds 2] [--write-docs]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
import conftest  # noqa: E402,F401  pylint: disable=unused-import # makes the collection importable
from bench_converge import make_project, role_command, run  # noqa: E402
from benchdocs import write_section  # noqa: E402

from ansible_collections.berth.converge.plugins.module_utils.render import (  # noqa: E402
    HELPERS_TEMPLATE_NAME, WERF_HELPERS_TEMPLATE)

PEER_ANSIBLE = "ansible==12.3.0"
PEER_REQUIREMENTS = [PEER_ANSIBLE, "docker", "requests", "kubernetes", "PyYAML"]
CACHE = Path(os.environ.get("BERTH_CACHE_DIR", Path.home() / ".cache" / "berth-converge"))
STEPS = ("first converge", "no-op converge", "one-image change")
CRASH_TIMEOUT = 60
CRASH_VALUES = {"backendPodLabels": {"berth.test/fail": "CrashLoopBackOff"}}


def peer_venv():
    """A virtualenv with the ansible package (community.docker, kubernetes.core), made once."""
    venv = CACHE / "peer-venv"
    marker = venv / ".installed"
    if marker.is_file() and marker.read_text() == " ".join(PEER_REQUIREMENTS):
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "pip"), "install", "-q", *PEER_REQUIREMENTS])
    marker.write_text(" ".join(PEER_REQUIREMENTS))
    return venv


def timed(command, env=None, fails=None):
    """Seconds the command took; it must succeed, or, when ``fails`` (a text), fail saying it."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    output = done.stdout + done.stderr
    if (done.returncode != 0) != bool(fails) or (fails and fails not in output):
        raise SystemExit(f"{command[0]}: rc {done.returncode}, expected {'a failure: ' + fails if fails else 0}:"
                         f"\n{output[-6000:]}")
    return seconds


def kubectl_json(*args):
    return json.loads(run(["kubectl", *args, "-o", "json"]).stdout)


def generation(namespace, deployment):
    """The Deployment's generation: 1 while its pod template was never changed since it was created."""
    return kubectl_json("-n", namespace, "get", "deployment", deployment)["metadata"]["generation"]


def history(release, namespace):
    """The release's revisions as `helm history` reads them (the role's records are Helm's)."""
    return json.loads(run(["helm", "history", release, "-n", namespace, "-o", "json"]).stdout)


def revisions(release, namespace):
    return len(history(release, namespace))


def last_status(release, namespace):
    return history(release, namespace)[-1]["status"]


def crashing_pods(namespace):
    pods = kubectl_json("-n", namespace, "get", "pods", "-l", "berth.test/fail=CrashLoopBackOff")["items"]
    return len([pod for pod in pods if not pod["metadata"].get("deletionTimestamp")])


def tag_count(registry, repo):
    path = repo.split("/", 1)[1]
    total = 0
    for image in ("base", "backend", "frontend"):
        response = requests.get(f"http://{registry}/v2/{path}/{image}/tags/list", timeout=10)
        total += len(response.json().get("tags") or []) if response.ok else 0
    return total


class Peer:
    def __init__(self, venv, project, chart, registry, tmp):
        self.env_name = "p" + uuid.uuid4().hex[:6]
        self.release = f"shop-{self.env_name}"
        self.repo = f"{registry}/bench-{self.env_name}/shop"
        self.password = run([str(Path(sys.executable).parent / "ansible-vault"), "view", "--vault-password-file",
                             str(project / "vault-password.txt"),
                             str(project / "secret-values.vault.yaml")]).stdout
        extra = {"project": str(project), "chart": str(chart), "repo": self.repo, "release": self.release,
                 "env": self.env_name, "db_password": yaml.safe_load(self.password)["secrets"]["dbPassword"]}
        self.extra_file = Path(tmp) / f"peer-{self.env_name}.json"
        self.extra_file.write_text(json.dumps(extra))
        self.command = [str(venv / "bin" / "ansible-playbook"), str(ROOT / "bench" / "peer" / "converge.yml"),
                        "-e", f"@{self.extra_file}"]
        self.env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": "", "ANSIBLE_PYTHON_INTERPRETER": str(venv / "bin" / "python")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    registry = os.environ["BERTH_REGISTRY"]
    venv = peer_venv()
    samples = {(who, step): [] for who in ("role", "peer") for step in STEPS}
    facts = []
    with tempfile.TemporaryDirectory(prefix="berth-bench-peer-") as tmp:
        for round_index in range(args.rounds):
            project = make_project(Path(tmp) / f"round{round_index}")
            chart = Path(tmp) / f"chart{round_index}"  # the chart plus werf's werf_image helper, as werf adds it
            shutil.copytree(project / ".helm", chart)
            (chart / "templates" / HELPERS_TEMPLATE_NAME).write_text(WERF_HELPERS_TEMPLATE)
            role_env_name = "r" + uuid.uuid4().hex[:6]
            role_repo = f"{registry}/bench-{role_env_name}/shop"
            role = role_command(project, role_repo, role_env_name)
            peer = Peer(venv, project, chart, registry, tmp)
            for step in STEPS:
                if step == "one-image change":
                    (project / "frontend" / "site" / "index.html").write_text(f"<h1>round {round_index}</h1>\n")
                    run(["git", "-C", str(project), "-c", "user.name=b", "-c", "user.email=b@example.com",
                         "commit", "-qam", "frontend change"])
                samples[("role", step)].append(timed(role))
                samples[("peer", step)].append(timed(peer.command, env=peer.env))
            role_namespace = f"shop-{role_env_name}"
            fact = {"role_tags": tag_count(registry, role_repo), "peer_tags": tag_count(registry, peer.repo),
                    "role_revisions": revisions(role_namespace, role_namespace),
                    "peer_revisions": revisions(peer.release, peer.release),
                    "role_backend_generation": generation(role_namespace, "backend"),
                    "peer_backend_generation": generation(peer.release, "backend")}
            # drift: a by-hand change, then a no-op converge of each
            drift = '{"data": {"greeting": "changed by hand"}}'
            for namespace in (role_namespace, peer.release):
                run(["kubectl", "-n", namespace, "patch", "configmap", "shop-config", "--type=merge", "-p", drift])
            timed(role)
            timed(peer.command, env=peer.env)
            for who, namespace in (("role", role_namespace), ("peer", peer.release)):
                greeting = kubectl_json("-n", namespace, "get", "configmap", "shop-config")["data"]["greeting"]
                fact[f"{who}_drift_reset"] = greeting != "changed by hand"
            # a crashing backend, the same timeout for both
            crash = json.dumps({"converge_set": CRASH_VALUES, "converge_timeout": CRASH_TIMEOUT,
                                "converge_auto_rollback": True})
            fact["role_crash_seconds"] = round(timed(role + ["-e", crash], fails="CrashLoopBackOff"), 1)
            peer_crash = json.dumps({"extra_values": CRASH_VALUES, "wait_timeout": f"{CRASH_TIMEOUT}s"})
            peer_seconds = timed(peer.command + ["-e", peer_crash], env=peer.env, fails="context deadline exceeded")
            fact["peer_crash_seconds"] = round(peer_seconds, 1)
            fact["role_status_after_crash"] = last_status(role_namespace, role_namespace)
            fact["peer_status_after_crash"] = last_status(peer.release, peer.release)
            fact["role_crashing_pods"] = crashing_pods(role_namespace)
            fact["peer_crashing_pods"] = crashing_pods(peer.release)
            facts.append(fact)
            print("round", round_index, fact)
            run(["helm", "uninstall", peer.release, "-n", peer.release, "--wait=false"])
            for namespace in (peer.release, role_namespace):
                run(["kubectl", "delete", "namespace", namespace, "--wait=false"])

    lines = []
    for step in STEPS:
        ours, theirs = statistics.median(samples[("role", step)]), statistics.median(samples[("peer", step)])
        lines.append(f"| {step} | {ours:.2f} s | {theirs:.2f} s | {ours / theirs:.2f} |")
        print(f"{step:18} role median {ours:6.2f} s {[round(s, 2) for s in samples[('role', step)]]}  "
              f"peer median {theirs:6.2f} s {[round(s, 2) for s in samples[('peer', step)]]}  ratio {ours / theirs:.2f}")
    print("after the three steps, per round:", facts)
    if args.write_docs:
        write_section("## Converge: the role against the usual Ansible playbook", f"""\
## Converge: the role against the usual Ansible playbook

`bench/bench_peer.py --rounds {args.rounds}`: examples/shop converged by the role and by
`bench/peer/converge.yml` (community.docker build+push per image tagged with the commit, kubernetes.core.helm
with `wait: true`, from the `{PEER_ANSIBLE}` package), alternating, in one run on the local environment
(2 cores). Medians of {args.rounds} rounds; goal role/peer <= 0.5 on the no-op and the one-image change.

| step | role | peer | role / peer |
|---|---|---|---|
{chr(10).join(lines)}

What each left after the three steps (first, no-op, one-image change), per round: images in the registry
(tags) role {[f['role_tags'] for f in facts]}, peer {[f['peer_tags'] for f in facts]} (the peer tags every image
with the commit, so a one-image change builds and pushes all three again); generation of the backend Deployment,
whose image did not change: role {[f['role_backend_generation'] for f in facts]}, peer
{[f['peer_backend_generation'] for f in facts]} (above 1: rolled, its pods restarted, though its image did not
change); release revisions (`helm history`) role {[f['role_revisions'] for f in facts]}, peer
{[f['peer_revisions'] for f in facts]}.

What the peer gets wrong, per round:

| | role | peer |
|---|---|---|
| a ConfigMap changed by hand, then a no-op converge: reset? | {[f['role_drift_reset'] for f in facts]} | {[f['peer_drift_reset'] for f in facts]} |
| a change whose backend crashes (CrashLoopBackOff), timeout {CRASH_TIMEOUT} s: seconds until it fails \
| {[f['role_crash_seconds'] for f in facts]} | {[f['peer_crash_seconds'] for f in facts]} |
| then the release's last status (`helm history`) | {[f['role_status_after_crash'] for f in facts]} | {[f['peer_status_after_crash'] for f in facts]} |
| then crashing backend pods left | {[f['role_crashing_pods'] for f in facts]} | {[f['peer_crashing_pods'] for f in facts]} |

The role reports each image and resource as its own `changed`/`ok` line; the peer reports one line per image
task and one for the whole release.
""")


if __name__ == "__main__":
    main()
