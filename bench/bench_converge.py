"""Benchmark: a no-op converge of the example shop, the whole role, against a shell pipeline doing the same checks.

In one run, on the local environment: the example is converged once (not timed); then, alternately, the
role through `ansible-playbook berth.converge.converge` and a shell pipeline doing the same checks by hand:
`git rev-parse HEAD`, one manifest HEAD per image, `helm template`, `kubectl apply --server-side` of its
output (as a server-side dry run with --force-conflicts: a second field manager would otherwise conflict with
ours on Secret stringData, or take fields over; the server does the same work), `kubectl rollout status` of
each Deployment. The figure is the ratio of medians (goal <= 1.5).
Each task's time inside the role is recorded with bench/callback_plugins/task_seconds.py.

    eval "$(hack/localenv env)"; python bench/bench_converge.py [--runs 5]
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
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  pylint: disable=unused-import # makes the collection importable

from ansible_collections.berth.converge.plugins.module_utils.render import (  # noqa: E402
    HELPERS_TEMPLATE_NAME, WERF_HELPERS_TEMPLATE, werf_values)

BIN = Path(sys.executable).parent
MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json,application/vnd.oci.image.manifest.v1+json"


def run(command, **kwargs):
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


def make_project(tmp):
    project = Path(tmp) / "shop"
    shutil.copytree(ROOT / "examples" / "shop", project)
    run(["git", "-C", str(project), "init", "-q"])
    run(["git", "-C", str(project), "add", "-A"])
    run(["git", "-C", str(project), "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm", "shop"])
    return project


def role_command(project, repo, env):
    extra = {"converge_project_dir": str(project), "converge_repo": repo, "converge_env": env,
             "converge_vault_values_files": [str(project / "secret-values.vault.yaml")]}
    return [str(BIN / "ansible-playbook"), "berth.converge.converge", "-e", json.dumps(extra),
            "--vault-password-file", str(project / "vault-password.txt")]


def pipeline_script(project, chart, images, namespace, values_file):
    """The same checks as a shell pipeline, as someone would write them without berth.converge."""
    heads = "\n".join(
        f"curl -sf -o /dev/null -I -H 'Accept: {MANIFEST_ACCEPT}' "
        f"http://{image['repo'].split('/', 1)[0]}/v2/{image['repo'].split('/', 1)[1]}/manifests/{image['tag']}"
        for image in images)
    return f"""set -euo pipefail
cd {project}
git rev-parse HEAD >/dev/null
{heads}
helm template {namespace} {chart} --namespace {namespace} -f {values_file} \\
  | kubectl apply --server-side --force-conflicts --dry-run=server -n {namespace} -f - >/dev/null
kubectl -n {namespace} rollout status deployment/backend >/dev/null
kubectl -n {namespace} rollout status deployment/frontend >/dev/null
"""


def timed(command, env=None):
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    registry = os.environ["BERTH_REGISTRY"]
    env_name = "b" + uuid.uuid4().hex[:6]
    namespace = f"shop-{env_name}"
    repo = f"{registry}/bench-{env_name}/shop"
    with tempfile.TemporaryDirectory(prefix="berth-bench-converge-") as tmp:
        project = make_project(tmp)
        role = role_command(project, repo, env_name)
        run(role)  # first converge: builds and creates everything (not timed)

        digest = json.loads(run([str(BIN / "ansible"), "localhost", "-m", "berth.converge.image_digest", "-a",
                                 json.dumps({"project_dir": str(project), "repo": repo}), "-o",
                                 "-e", f"ansible_python_interpreter={sys.executable}"]).stdout.split(" => ", 1)[1])
        commit = digest["commit"]
        values = werf_values(project="shop", images=digest["images"], commit=commit, env=env_name,
                             namespace=namespace, repo=repo)
        secrets = run([str(BIN / "ansible-vault"), "view", "--vault-password-file", str(project / "vault-password.txt"),
                       str(project / "secret-values.vault.yaml")]).stdout
        values.update(yaml.safe_load(secrets))
        values_file = Path(tmp) / "values.json"
        values_file.write_text(json.dumps(values))
        chart = Path(tmp) / "chart"  # the chart plus werf's werf_image helper, as werf adds it
        shutil.copytree(project / ".helm", chart)
        (chart / "templates" / HELPERS_TEMPLATE_NAME).write_text(WERF_HELPERS_TEMPLATE)
        script = Path(tmp) / "pipeline.sh"
        script.write_text(pipeline_script(project, chart, digest["images"], namespace, values_file))
        subprocess.run(["bash", str(script)], check=True)  # warm caches alike (not timed)

        seconds_file = Path(tmp) / "tasks.jsonl"
        role_env = {**os.environ, "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "bench" / "callback_plugins"),
                    "ANSIBLE_CALLBACKS_ENABLED": "task_seconds", "BERTH_TASK_SECONDS_FILE": str(seconds_file)}
        role_samples, pipeline_samples = [], []
        for _run in range(args.runs):
            role_samples.append(timed(role, env=role_env))
            pipeline_samples.append(timed(["bash", str(script)]))
        tasks = defaultdict(list)
        for line in seconds_file.read_text().splitlines():
            entry = json.loads(line)
            tasks[entry["task"].split(" : ", 1)[-1]].append(entry["seconds"])
        run(["kubectl", "delete", "namespace", namespace, "--wait=false"])

    ours, theirs = statistics.median(role_samples), statistics.median(pipeline_samples)
    print(f"no-op converge, role (ansible-playbook): median {ours:.2f} s  {[round(s, 2) for s in role_samples]}")
    print(f"shell pipeline:                          median {theirs:.2f} s  {[round(s, 2) for s in pipeline_samples]}")
    print(f"ratio role / pipeline: {ours / theirs:.2f} (goal <= 1.5)")
    print("median seconds per role task:")
    for task, samples in tasks.items():
        print(f"  {statistics.median(samples):6.3f}  {task[:90]}")


if __name__ == "__main__":
    main()
