"""Benchmark: rebuild one changed image of examples/shop on a fresh BuildKit builder, with the registry cache vs without.

Against the local environment's TLS BuildKit daemon (the "CI runner's builder"), whose state is pruned
(`buildctl prune --all`) before every build so each starts fresh. examples/shop is copied, its base image
taken from the registry (BuildKit does not see the Docker Engine's images), built once with
`cache_to: {repo}:cache`, then `frontend` changes one file; each run rebuilds `frontend` (force) with
`cache_from` or without. The figure is the ratio of medians (cache / no cache; lower is better).
Then the same rebuild, warm, with the Docker Engine's classic builder and with BuildKit (ratio BuildKit / classic).

    eval "$(hack/localenv env)"; python bench/bench_buildkit.py [--runs 5]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  pylint: disable=unused-import # makes the collection importable
from gitrepo import commit, git  # noqa: E402
from integration.conftest import run_module  # noqa: E402
from benchdocs import write_section  # noqa: E402


# A CPU-bound step (SHA-256 of 2 GiB) standing in for installing dependencies; the registry cache brings its layer back.
DEPENDENCY_STEP = "RUN dd if=/dev/zero bs=1M count=2048 2>/dev/null | sha256sum > /deps.sha256\n"


def tls_buildkit():
    env = os.environ
    return {"buildkit_address": env["BERTH_BUILDKIT_TLS_ADDR"], "buildkit_ca_cert": env["BERTH_BUILDKIT_CA"],
            "buildkit_client_cert": env["BERTH_BUILDKIT_CLIENT_CERT"],
            "buildkit_client_key": env["BERTH_BUILDKIT_CLIENT_KEY"]}


def prune(options):
    subprocess.run(["buildctl", "--addr", options["buildkit_address"], "--tlscacert", options["buildkit_ca_cert"],
                    "--tlscert", options["buildkit_client_cert"], "--tlskey", options["buildkit_client_key"],
                    "prune", "--all"], check=True, capture_output=True)


def module(name, args):
    result, output = run_module(name, args)
    if result.get("failed"):
        raise SystemExit(f"{name} failed:\n{output}")
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    options = tls_buildkit()
    with tempfile.TemporaryDirectory(prefix="berth-bench-buildkit-") as tmp:
        shop = Path(tmp) / "shop"
        shutil.copytree(ROOT / "examples" / "shop", shop)
        for dockerfile in shop.glob("*/Dockerfile"):
            dockerfile.write_text(dockerfile.read_text().replace("berth.local/base:busybox",
                                                                 os.environ["BERTH_BUILDKIT_BASE_IMAGE"]))
        frontend_dockerfile = shop / "frontend" / "Dockerfile"  # a dependency step before the changed COPY,
        lines = frontend_dockerfile.read_text().splitlines(keepends=True)  # as `RUN npm ci` would be
        frontend_dockerfile.write_text("".join(lines[:1] + [DEPENDENCY_STEP] + lines[1:]))
        git(shop, "init", "-q")
        commit(shop, message="shop")
        repo = f"{os.environ['BERTH_REGISTRY']}/bench-buildkit-{uuid.uuid4().hex[:8]}/shop"
        common = {"project_dir": str(shop), "builder": "buildkit", **options}
        images = module("image_digest", {"project_dir": str(shop), "repo": repo})["images"]
        module("image_build", {**common, "images": images, "cache_to": "{repo}:cache"})

        page = next((shop / "frontend").rglob("*.html"))
        page.write_text(page.read_text() + "<!-- one change -->\n")
        commit(shop, message="frontend: one change")
        images = module("image_digest", {"project_dir": str(shop), "repo": repo})["images"]
        frontend = next(image for image in images if image["name"] == "frontend")

        def rebuild(**cache):
            prune(options)
            start = time.perf_counter()
            module("image_build", {**common, "images": images, "image": frontend, "force": True, **cache})
            return time.perf_counter() - start

        without, with_cache = [], []
        for _run in range(args.runs):  # interleaved, so load on the shared machine hits both alike
            without.append(rebuild())
            with_cache.append(rebuild(cache_from=["{repo}:cache"]))
        plain, cached = statistics.median(without), statistics.median(with_cache)
        print(f"fresh builder, no cache:       median {plain:.2f} s  {[round(s, 2) for s in without]}")
        print(f"fresh builder, registry cache: median {cached:.2f} s  {[round(s, 2) for s in with_cache]}")
        print(f"ratio cache / no cache: {cached / plain:.2f} (each includes ~1-2 s of ansible module start)")
        write_section("## BuildKit registry cache", f"""## BuildKit registry cache

`bench/bench_buildkit.py --runs {args.runs}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, on the local
environment (2 CPUs shared with other work). examples/shop with its base image from the registry, built once
with `cache_to: {{repo}}:cache`; then one file of `frontend` changes and `image_build` rebuilds `frontend`
(`force`) on the TLS BuildKit daemon, pruned (`buildctl prune --all`) before every build, alternately
without and with `cache_from: ["{{repo}}:cache"]`. Each time includes the ansible module start (~1-2 s).

| what | median | samples |
|---|---|---|
| fresh builder, no cache | {plain:.2f} s | {[round(s, 2) for s in without]} |
| fresh builder, registry cache | {cached:.2f} s | {[round(s, 2) for s in with_cache]} |
| ratio cache / no cache | **{cached / plain:.2f}** | |

The frontend's Dockerfile gets one step before its `COPY` of the changed file, standing in for `RUN npm ci`:
`{DEPENDENCY_STEP.strip()}` (CPU-bound, about 10 s here). Without the cache the fresh builder runs it again; with the
cache it fetches that layer from the registry.
""")

        def warm_rebuild(builder_options):
            start = time.perf_counter()
            module("image_build", {"project_dir": str(shop), "images": images, "image": frontend, "force": True,
                                   **builder_options})
            return time.perf_counter() - start

        docker = {"builder": "docker"}
        warm_rebuild(docker)  # the Engine pulls the base image once
        classic, buildkit = [], []
        for _run in range(args.runs):
            classic.append(warm_rebuild(docker))
            buildkit.append(warm_rebuild(common))
        slow, fast = statistics.median(classic), statistics.median(buildkit)
        print(f"classic builder (Docker Engine), warm: median {slow:.2f} s  {[round(s, 2) for s in classic]}")
        print(f"BuildKit (TLS daemon), warm:           median {fast:.2f} s  {[round(s, 2) for s in buildkit]}")
        print(f"ratio BuildKit / classic: {fast / slow:.2f}")
        write_section("## BuildKit vs the classic builder", f"""## BuildKit vs the classic builder

`bench/bench_buildkit.py --runs {args.runs}`, same run and Dockerfiles as above: `image_build` rebuilds the
changed `frontend` (`force`, pushed each time) with `builder: docker` (the Docker Engine's classic builder,
its layer cache warm) and `builder: buildkit` (the TLS daemon, its state warm), alternately.

| what | median | samples |
|---|---|---|
| classic builder (Docker Engine) | {slow:.2f} s | {[round(s, 2) for s in classic]} |
| BuildKit (TLS daemon) | {fast:.2f} s | {[round(s, 2) for s in buildkit]} |
| ratio BuildKit / classic | **{fast / slow:.2f}** | |
""")


if __name__ == "__main__":
    main()
