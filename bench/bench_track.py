# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: seconds from a pod turning CrashLoopBackOff to release_track failing (goal <= 2 s).

Needs the local environment (`eval "$(hack/localenv env)"`). In a fresh namespace, each run:
  1. starts release_track on a Deployment that does not exist yet, and waits for its first progress line
     (written once its watches are established);
  2. creates that Deployment with pods labelled `berth.test/fail: CrashLoopBackOff` (kwok shows the crash
     loop in the pod's first status update);
  3. notes when a separate pod watch in this process receives the status update showing
     CrashLoopBackOff, and when release_track has failed.
Three ways of running release_track, --runs times each:
  - the module through `ansible localhost -m berth.converge.release_track` (failed = the process has
    exited with its failure result, as a playbook would see it);
  - the module file run by Python with an arguments file, without Ansible (failed = the process exited);
  - the module logic, track(), in a thread of this process (failed = it raised the ConvergeError).
Prints the medians and writes the `## release_track` section of docs/benchmarks.md. The namespace is
deleted afterwards.
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
import threading
import time
import uuid
from pathlib import Path

from kubernetes import client, config, utils, watch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from benchdocs import write_section  # noqa: E402
import conftest  # noqa: E402,F401  makes ansible_collections.berth.converge importable

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError  # noqa: E402
from ansible_collections.berth.converge.plugins.module_utils.kube.track import track  # noqa: E402

GOAL = 2.0
SECTION = "## release_track"
ANSIBLE = Path(sys.executable).with_name("ansible")
MODULE = ROOT / "plugins" / "modules" / "release_track.py"
WAIT = 120


def crashing_deployment(name):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name, "berth.test/fail": "CrashLoopBackOff"}},
            "spec": {"containers": [{"name": "main", "image": "127.0.0.1:5000/bench/app:1"}]},
        }},
    }


class CrashWatch:
    """A pod watch of the namespace that notes when it first receives a CrashLoopBackOff status."""

    def __init__(self, api, namespace):
        self.seen_at = None
        self._core = client.CoreV1Api(api)
        self._watch = watch.Watch()
        version = self._core.list_namespaced_pod(namespace).metadata.resource_version
        self._thread = threading.Thread(target=self._run, args=(namespace, version), daemon=True)
        self._thread.start()

    def _run(self, namespace, version):
        for event in self._watch.stream(self._core.list_namespaced_pod, namespace, resource_version=version,
                                        timeout_seconds=WAIT):
            statuses = event["raw_object"].get("status", {}).get("containerStatuses") or []
            if any((s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff" for s in statuses):
                self.seen_at = time.monotonic()
                break

    def wait(self):
        self._thread.join(WAIT)
        self._watch.stop()
        if self.seen_at is None:
            raise SystemExit("the separate watch never saw CrashLoopBackOff")
        return self.seen_at


def wait_for_line(path, deadline):
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return
        time.sleep(0.01)
    raise SystemExit(f"release_track wrote no progress line to {path}")


def module_args(namespace, name, progress):
    return {"resources": [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace, "name": name}],
            "timeout": WAIT, "progress_file": str(progress)}


def through_ansible(args, workdir):
    return [str(ANSIBLE), "localhost", "-m", "berth.converge.release_track", "-a", json.dumps(args)]


def module_alone(args, workdir):
    """The module file run by Python with an arguments file, as AnsiballZ does, without Ansible around it."""
    args_file = workdir / f"args-{uuid.uuid4().hex[:8]}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    return [sys.executable, str(MODULE), str(args_file)]


def run_module(api, namespace, workdir, name, command):
    progress = workdir / f"{name}.log"
    proc = subprocess.Popen(command(module_args(namespace, name, progress), workdir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(conftest.COLLECTIONS_PATH)})
    wait_for_line(progress, time.monotonic() + WAIT)
    observer = CrashWatch(api, namespace)
    utils.create_from_dict(api, crashing_deployment(name), namespace=namespace)
    out, err = proc.communicate(timeout=WAIT)
    failed_at = time.monotonic()
    if proc.returncode == 0 or "CrashLoopBackOff" not in out:
        raise SystemExit(f"release_track did not fail with CrashLoopBackOff:\n{out}\n{err}")
    return failed_at - observer.wait()


def run_in_process(api, namespace, workdir, name):
    progress = workdir / f"{name}.log"
    outcome = {}

    def tracking():
        try:
            track(api, [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace, "name": name}],
                  timeout=WAIT, progress_file=str(progress))
        except ConvergeError as exc:
            outcome["failed_at"], outcome["error"] = time.monotonic(), str(exc)

    thread = threading.Thread(target=tracking)
    thread.start()
    wait_for_line(progress, time.monotonic() + WAIT)
    observer = CrashWatch(api, namespace)
    utils.create_from_dict(api, crashing_deployment(name), namespace=namespace)
    thread.join(WAIT)
    if "CrashLoopBackOff" not in outcome.get("error", ""):
        raise SystemExit(f"track() did not fail with CrashLoopBackOff: {outcome}")
    return outcome["failed_at"] - observer.wait()


def row(label, runs):
    median = statistics.median(runs)
    return median, (f"| {label} | **{median:.3f} s** | {'met' if median <= GOAL else 'missed'} | "
                    f"{', '.join(f'{r:.3f}' for r in runs)} |")


def report(args, runs):
    ansible_median, ansible_row = row("`ansible localhost -m berth.converge.release_track` "
                                      "(failed = `ansible` exited with the failure)", runs["ansible"])
    module_median, module_row = row("the module file run by Python, without Ansible "
                                    "(failed = the module process exited)", runs["module"])
    process_median, process_row = row("track() in a thread of this process (failed = ConvergeError raised)",
                                      runs["process"])
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""{SECTION}

Failure detection: seconds from a pod turning CrashLoopBackOff to `release_track` failing; goal <= {GOAL:g} s.
The start is the moment a separate pod watch (in the benchmark process) receives the pod status update
that shows CrashLoopBackOff. Each run starts tracking a Deployment that does not exist yet, waits for the
first progress line (written once the watches are established), then creates the Deployment, so the
failure is detected from watch events and not from an initial list. Median of {args.runs} runs each.

| how release_track ran | median | goal | runs (s) |
|---|---|---|---|
{ansible_row}
{module_row}
{process_row}

Result: through Ansible, `release_track` fails {ansible_median:.3f} s (median) after the pod status
appears: goal {'met' if ansible_median <= GOAL else 'missed'}. Of that, the tracker takes
{process_median * 1000:.0f} ms to react to the watch event, the module process {module_median:.3f} s in all to
report the failure and exit (Python shutting down included), and Ansible adds the rest.

Measured {when} on {platform.platform()} ({os.cpu_count()} cores), Kubernetes {os.environ.get('BERTH_KUBE_VERSION',
'?')} with kwok nodes (hack/localenv). Command: `python bench/bench_track.py --runs {args.runs}`.
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-docs", action="store_true", help="print the section, do not write docs/benchmarks.md")
    args = parser.parse_args()

    api = config.new_client_from_config()  # the kubernetes client, for the observer; track() wraps it
    core = client.CoreV1Api(api)
    namespace = f"bench-track-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    runs = {"ansible": [], "module": [], "process": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            for index in range(args.runs):
                runs["ansible"].append(run_module(api, namespace, workdir, f"ansible-{index}", through_ansible))
                runs["module"].append(run_module(api, namespace, workdir, f"module-{index}", module_alone))
                runs["process"].append(run_in_process(api, namespace, workdir, f"inproc-{index}"))
                print(f"run {index + 1}: " + ", ".join(f"{way} {times[-1]:.3f} s" for way, times in runs.items()),
                      flush=True)
    finally:
        core.delete_namespace(namespace)
    section = report(args, runs)
    print(section)
    if not args.no_docs:
        write_section(SECTION, section)


if __name__ == "__main__":
    main()
