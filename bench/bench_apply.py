# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: release_apply versus `kubectl apply --server-side` on 300 resources, first apply and no-op.

Needs the local environment (`eval "$(hack/localenv env)"`). Each round applies the same manifests
(ConfigMaps, Services and Deployments with zero replicas, so no pods load the shared cluster) three ways,
each into its own fresh namespace, then re-applies them unchanged:
  - kubectl apply --server-side -f <file>;
  - the module logic in this process (release.apply_release, the discovery cache emptied first, as in a
    fresh module process);
  - the module through `ansible-playbook` (the whole process: Ansible start, module transfer, imports).
Prints the median times and ratios and writes the `## release_apply` section of docs/benchmarks.md.
The namespaces are deleted afterwards.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from benchdocs import write_section  # noqa: E402
import conftest  # noqa: E402,F401  pylint: disable=unused-import  # makes the collection importable

from ansible_collections.berth.converge.plugins.module_utils.kube import resource  # noqa: E402
from ansible_collections.berth.converge.plugins.module_utils.kube.client import api_client  # noqa: E402
from ansible_collections.berth.converge.plugins.module_utils.kube.release import (  # noqa: E402
    ReleaseRequest,
    apply_release,
)

GOAL = 1.0
SECTION = "## release_apply"
PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Apply the benchmark release
      berth.converge.release_apply:
        manifests: "{{ bench_manifests }}"
        release: "{{ bench_release }}"
        namespace: "{{ bench_namespace }}"
"""


def manifests(count):
    """count objects, a third each ConfigMaps, Services and Deployments (replicas 0)."""
    out = []
    for index in range(count):
        name = f"app-{index:03d}"
        kind = index % 3
        if kind == 0:
            out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                        "data": {"index": str(index), "settings.yaml": f"name: {name}\nlevel: info\n"}})
        elif kind == 1:
            out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80,
                                                                       "targetPort": 8080}]}})
        else:
            labels = {"app": name}
            out.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
                        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
                            "metadata": {"labels": labels},
                            "spec": {"containers": [{"name": "main", "image": f"127.0.0.1:5000/bench/{name}:1",
                                                     "ports": [{"containerPort": 8080}],
                                                     "env": [{"name": "INDEX", "value": str(index)}]}]}}}})
    return out


def run_command(argv):
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv[:3])} ... failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def timed(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def children_cpu():
    usage = os.times()
    return usage.children_user + usage.children_system


def kubectl_apply(path, namespace):
    run_command(["kubectl", "apply", "--server-side", "--field-manager", "bench-kubectl", "-n", namespace,
                 "-f", str(path)])


def logic_apply(objects, namespace, release):
    def run():
        resource._DISCOVERY.clear()  # a module process starts with an empty cache
        result = apply_release(api_client({}), release, namespace, ReleaseRequest(objects))
        assert len(result["resources"]) == len(objects)
    return run


def ansible_apply(playbook, vars_file, namespace, release):
    def run():
        run_command(["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook), "-e", f"@{vars_file}",
                     "-e", f"bench_namespace={namespace}", "-e", f"bench_release={release}",
                     "-e", f"ansible_python_interpreter={sys.executable}"])
    return run


def one_round(objects, workdir, tag, namespaces):
    """{way: (first, no-op)} seconds, each way in a fresh namespace (appended to namespaces)."""
    manifest_file = workdir / "manifests.yaml"
    kubectl_ns, logic_ns, ansible_ns = (f"bench-apply-{tag}-{way}" for way in ("kubectl", "logic", "ansible"))
    for namespace in (kubectl_ns, logic_ns, ansible_ns):
        run_command(["kubectl", "create", "namespace", namespace])
        namespaces.append(namespace)
    steps = ("first", "no-op")
    cpu_before = children_cpu()
    kubectl = [timed(lambda: kubectl_apply(manifest_file, kubectl_ns)) for _step in steps]
    kubectl_cpu = (children_cpu() - cpu_before) / len(steps)
    logic = [timed(logic_apply(objects, logic_ns, "bench")) for _step in steps]
    play = ansible_apply(workdir / "playbook.yml", workdir / "vars.json", ansible_ns, "bench")
    ansible = [timed(play) for _step in steps]
    return {"kubectl": kubectl, "logic": logic, "ansible": ansible, "kubectl_cpu": kubectl_cpu}


def report(count, rounds):
    def median(way, step):
        return statistics.median(r[way][step] for r in rounds)

    rows, ratios = [], {}
    for step, label in ((0, "first apply"), (1, "no-op re-apply")):
        kubectl = median("kubectl", step)
        for way, name in (("logic", "module logic"), ("ansible", "module via ansible-playbook")):
            ratio = median(way, step) / kubectl
            ratios[(way, step)] = ratio
            runs = ", ".join(f"{r[way][step]:.2f}" for r in rounds)
            rows.append(f"| {label} | {name} | {median(way, step):.2f} s | {kubectl:.2f} s | **{ratio:.2f}** | "
                        f"{'met' if ratio <= GOAL else 'missed'} | {runs} |")
    kubectl_cpu = statistics.median(r["kubectl_cpu"] for r in rounds)
    kubectl_version = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True,
                                     text=True, check=False).stdout
    client_version = json.loads(kubectl_version or "{}").get("clientVersion", {}).get("gitVersion", "?")
    text = f"""{SECTION}

`bench/bench_apply.py`, {datetime.date.today().isoformat()}, {platform.node()} ({os.cpu_count()} CPUs, the
local control plane of `hack/localenv` on the same machine), kubectl {client_version}, {len(rounds)} rounds
(median; every round uses fresh namespaces).

{count} resources (a third each ConfigMaps, Services, Deployments with zero replicas), applied with
`release_apply` (default concurrency 8) and with `kubectl apply --server-side -f <file>` (sequential, one
request per object), first into an empty namespace, then again unchanged. "Module logic" is
`release.apply_release` called in-process (client creation, discovery, dry-run validation of the whole set,
writes, revision record, lock); "via ansible-playbook" is the whole `ansible-playbook` process running the
module once. Goal: ratio to kubectl <= {GOAL}.

| step | release_apply | time | kubectl | ratio | goal | runs (s) |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

release_apply does more than kubectl on a first apply: it validates the whole set with a server-side dry
run before writing anything, reads every live object to decide create/update/unchanged, records the
revision and takes the lock. On a no-op it writes nothing (kubectl re-sends every object and the server
re-runs the apply), so resourceVersions stay unchanged. It wins by sending its requests concurrently and
by doing little per object on the client: kubectl used {kubectl_cpu:.1f} s of CPU itself per run (median),
most of its time, while its requests are sent one after another.
"""
    write_section(SECTION, text)
    return text, ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    objects = manifests(args.count)
    rounds, namespaces = [], []
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        workdir = Path(tmp)
        (workdir / "manifests.yaml").write_text(yaml.safe_dump_all(objects))
        (workdir / "playbook.yml").write_text(PLAYBOOK)
        (workdir / "vars.json").write_text(json.dumps({"bench_manifests": objects}))
        try:
            for number in range(args.rounds):
                tag = f"{os.urandom(2).hex()}{number}"
                timings = one_round(objects, workdir, tag, namespaces)
                rounds.append(timings)
                summary = ", ".join(f"{way} {timings[way][0]:.2f}/{timings[way][1]:.2f} s"
                                    for way in ("kubectl", "logic", "ansible"))
                print(f"round {number + 1}: {summary}", flush=True)
        finally:
            if namespaces:
                subprocess.run(["kubectl", "delete", "namespace", "--wait=false", *namespaces], capture_output=True,
                               check=False)
    text, _ratios = report(args.count, rounds)
    print(text)


if __name__ == "__main__":
    main()
