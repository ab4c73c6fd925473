# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: RegistryClient.lookup on 200 references (half missing) versus 200 sequential manifest HEADs.

Needs the local environment (`eval "$(hack/localenv env)"`). Pushes one image to the plain registry under a
unique repository and tags its manifest 100 times through the registry API. Then, in one run, times
RegistryClient.lookup, the whole registry_images module process and 200 sequential HEADs on the same
references, twice: straight to the loopback registry, and through a proxy that delays every response by
--rtt-ms, as a registry across a network would. Prints the ratios and writes the `## registry_images`
section of docs/benchmarks.md. The repository's manifest and the local image are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import io
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import docker
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
importlib.import_module("conftest")  # makes ansible_collections.berth.converge importable

from benchdocs import write_section  # noqa: E402

from ansible_collections.berth.converge.plugins.module_utils.registry import (  # noqa: E402
    MANIFEST_ACCEPT,
    RegistryClient,
)

PRESENT = 100
MISSING = 100
GOAL = 0.25
SECTION = "## registry_images"


def build_and_push(client, registry, repository, base_image):
    """Push a small image built on the base image; return its tag."""
    dockerfile = f"FROM {base_image}\nRUN echo {uuid.uuid4().hex} > /bench\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    tag = "base"
    image_name = f"{registry}/{repository}"
    client.images.build(fileobj=context, custom_context=True, tag=f"{image_name}:{tag}", rm=True, forcerm=True)
    errors = [line for line in client.images.push(image_name, tag=tag, stream=True, decode=True) if "error" in line]
    if errors:
        raise SystemExit(f"push of {image_name}:{tag} failed: {errors}")
    return tag


def tag_manifest(session, registry, repository, source_tag, tags):
    """PUT the manifest of source_tag under every tag (its blobs are already there); return its digest."""
    url = f"http://{registry}/v2/{repository}/manifests"
    response = session.get(f"{url}/{source_tag}", headers={"Accept": MANIFEST_ACCEPT}, timeout=30)
    response.raise_for_status()
    content_type = response.headers["Content-Type"]
    for tag in tags:
        session.put(f"{url}/{tag}", data=response.content, headers={"Content-Type": content_type},
                    timeout=30).raise_for_status()
    return response.headers["Docker-Content-Digest"]


def _delaying_proxy(upstream_port, delay, port_queue):
    """TCP proxy to 127.0.0.1:upstream_port that holds every upstream chunk for `delay` seconds."""

    async def pump(reader, writer, hold):
        while data := await reader.read(65536):
            if hold:
                await asyncio.sleep(hold)
            writer.write(data)
            await writer.drain()
        writer.close()

    async def handle(client_reader, client_writer):
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pump(client_reader, upstream_writer, 0), pump(upstream_reader, client_writer, delay),
                             return_exceptions=True)

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_queue.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(serve())


def start_delaying_proxy(registry, rtt_ms):
    port_queue = multiprocessing.Queue()
    upstream_port = int(registry.rpartition(":")[2])
    proxy = multiprocessing.Process(target=_delaying_proxy, args=(upstream_port, rtt_ms / 1000, port_queue),
                                    daemon=True)
    proxy.start()
    return proxy, f"127.0.0.1:{port_queue.get(timeout=10)}"


def registry_cpu_seconds():
    """CPU time used so far by the local plain registry process (None when it cannot be read)."""
    try:
        pid = (Path(os.environ["BERTH_LOCALENV_DIR"]) / "run" / "registry.pid").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (KeyError, OSError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_lookup(refs, concurrency):
    start = time.perf_counter()
    with RegistryClient(concurrency=concurrency) as client:
        present, missing = client.lookup(refs)
    return time.perf_counter() - start, len(present), len(missing)


def time_module(refs, concurrency):
    """The whole `ansible localhost -m berth.converge.registry_images` process."""
    command = [str(Path(sys.executable).parent / "ansible"), "localhost", "-m", "berth.converge.registry_images",
               "-a", json.dumps({"refs": refs, "concurrency": concurrency})]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or " => " not in proc.stdout:
        raise SystemExit(f"registry_images failed:\n{proc.stdout}{proc.stderr}")
    result = json.loads(proc.stdout.split(" => ", 1)[1])
    return seconds, len(result["present"]), len(result["missing"])


def time_sequential(refs):
    start = time.perf_counter()
    present = 0
    with requests.Session() as session:
        for ref in refs:
            host, _slash, name = ref.partition("/")
            repository, _colon, tag = name.partition(":")
            response = session.head(f"http://{host}/v2/{repository}/manifests/{tag}",
                                    headers={"Accept": MANIFEST_ACCEPT}, timeout=30)
            present += response.status_code == 200
    return time.perf_counter() - start, present, len(refs) - present


def measure(refs, args):
    """Seconds per run of each way, alternating them; also the registry CPU spent per sequential HEAD."""
    ways = {"lookup": lambda: time_lookup(refs, args.concurrency), "sequential": lambda: time_sequential(refs),
            "module": lambda: time_module(refs, args.concurrency)}
    runs = {way: [] for way in ways}
    cpu_per_head = []
    for run in range(args.repeat):
        for way, timed in ways.items():
            if way == "module" and run >= args.module_repeat:
                continue
            cpu_before = registry_cpu_seconds()
            seconds, present, missing = timed()
            check(present, missing)
            runs[way].append(seconds)
            if way == "sequential" and cpu_before is not None:
                cpu_per_head.append((registry_cpu_seconds() - cpu_before) / len(refs))
    return runs, (statistics.median(cpu_per_head) if cpu_per_head else None)


def check(present, missing):
    if (present, missing) != (PRESENT, MISSING):
        raise SystemExit(f"wrong answer: {present} present and {missing} missing, expected {PRESENT} and {MISSING}")


def _ms(seconds):
    return f"{seconds * 1000:.0f}"


def scenario_rows(scenario, runs):
    sequential = statistics.median(runs["sequential"])
    rows = []
    for way, label in (("lookup", "`RegistryClient.lookup`"), ("module", "module, whole `ansible` process")):
        ratio = statistics.median(runs[way]) / sequential
        rows.append(f"| {scenario} | {label} | {_ms(statistics.median(runs[way]))} ms | {_ms(sequential)} ms | "
                    f"**{ratio:.3f}** | {'met' if ratio <= GOAL else 'missed'} | {', '.join(map(_ms, runs[way]))} | "
                    f"{', '.join(map(_ms, runs['sequential']))} |")
    return rows


def floor_note(loopback, cpu_per_head, cores):
    if cpu_per_head is None:
        return ""
    floor = cpu_per_head * (PRESENT + MISSING) / cores
    return (f"The registry process itself used {cpu_per_head * 1000:.2f} ms of CPU per HEAD (measured during the "
            f"sequential runs), so on {cores} cores no client can get {PRESENT + MISSING} answers in less than "
            f"about {_ms(floor)} ms: a ratio floor of {floor / statistics.median(loopback['sequential']):.2f} "
            "on loopback. ")


def report(args, loopback, delayed, cpu_per_head):
    rows = scenario_rows("loopback", loopback) + scenario_rows(f"{args.rtt_ms:g} ms round trip", delayed)
    ratio = statistics.median(loopback["lookup"]) / statistics.median(loopback["sequential"])
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cores = os.cpu_count()
    table = "\n".join(rows)
    fixed = statistics.median(loopback["module"]) - statistics.median(loopback["lookup"])
    return f"""{SECTION}

`bench/bench_registry.py`, {when}, {cores} CPUs shared with the rest of `hack/localenv` and other work
(1-minute load average {os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}.

{PRESENT + MISSING} references to one repository of the plain local registry ({PRESENT} present, {MISSING}
missing, interleaved), looked up with `RegistryClient.lookup` (a new client per run, so the registry probe
counts; concurrency {args.concurrency}) and versus {PRESENT + MISSING} sequential manifest HEADs through one plain
`requests.Session`. Medians of {args.repeat} runs ({args.module_repeat} for the whole `ansible localhost -m
berth.converge.registry_images` process), alternating, all in one run of the script. The "{args.rtt_ms:g} ms round
trip" rows go through a local proxy that holds every response for {args.rtt_ms:g} ms, as a registry across a
network would. Goal: ratio <= {GOAL}.

| scenario | way | time | sequential | ratio | goal | runs (ms) | sequential runs (ms) |
|---|---|---|---|---|---|---|---|
{table}

Ratio of `RegistryClient.lookup` on loopback: **{ratio:.3f}**. On loopback both ways are bound by CPU, not
by waiting. {floor_note(loopback, cpu_per_head, cores)}With network latency the HEADs overlap and the ratio
approaches 1/concurrency, as the round-trip rows show. The whole module process adds a fixed cost (Python
and Ansible start-up, module transfer: about {fixed:.1f} s here) that does not grow with the number of
references.
"""


def run_scenarios(args, registry, refs):
    loopback, cpu_per_head = measure(refs, args)
    proxy, delayed_host = start_delaying_proxy(registry, args.rtt_ms)
    try:
        delayed = measure([ref.replace(registry, delayed_host, 1) for ref in refs], args)[0]
    finally:
        proxy.terminate()
        proxy.join()
    return loopback, delayed, cpu_per_head


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--module-repeat", type=int, default=3, help="runs of the whole module process")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rtt-ms", type=float, default=10.0, help="round trip added by the proxy scenario")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    registry = os.environ["BERTH_REGISTRY"]
    client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], timeout=120)
    repository = f"bench/registry-{uuid.uuid4().hex[:10]}"
    source_tag = build_and_push(client, registry, repository, os.environ["BERTH_BASE_IMAGE"])
    session = requests.Session()
    digest = None
    try:
        present_tags = [f"t{i:03d}" for i in range(PRESENT)]
        digest = tag_manifest(session, registry, repository, source_tag, present_tags)
        refs = [f"{registry}/{repository}:{tag}"
                for i, present in enumerate(present_tags) for tag in (present, f"missing{i:03d}")]
        loopback, delayed, cpu_per_head = run_scenarios(args, registry, refs)
    finally:
        if digest:
            session.delete(f"http://{registry}/v2/{repository}/manifests/{digest}", timeout=30)
        client.images.remove(f"{registry}/{repository}:{source_tag}", force=True)
    text = report(args, loopback, delayed, cpu_per_head)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
