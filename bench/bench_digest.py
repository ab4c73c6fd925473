"""Benchmark: image_digest on a 100,000-file repository with 10 images, against `git ls-tree -r HEAD`.

Both run in this process's script on the same repository; the figure is the ratio of medians (goal <= 1.5).
The repository is generated with `git fast-import` (fast, deterministic) and checked out, so the module's
`git status` for uncommitted changes works on a real work tree, as for a user.

    python bench/bench_digest.py [--files 100000] [--images 10] [--runs 5]
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  pylint: disable=unused-import # makes the collection importable

from ansible_collections.berth.converge.plugins.module_utils.digest import compute_digests  # noqa: E402
from ansible_collections.berth.converge.plugins.module_utils.project import load_project  # noqa: E402


def repository_stream(files, images):
    """A fast-import stream: `images` services with Dockerfiles, the rest of `files` spread over dirs."""
    entries = {}
    werf = ["project: bench\nconfigVersion: 1\n"]
    for index in range(images):
        base = f"services/svc{index:02d}"
        werf.append(f"---\nimage: svc{index:02d}\ndockerfile: Dockerfile\ncontext: {base}\n")
        entries[f"{base}/Dockerfile"] = "FROM berth.local/base:busybox\nCOPY package.json /app/\nCOPY src/ /app/src/\n"
        entries[f"{base}/package.json"] = f'{{"name": "svc{index}"}}\n'
        if index % 2:  # half the images have a .dockerignore that can match anywhere: full walk of src/
            entries[f"{base}/.dockerignore"] = "**/*.tmp\n"
    entries["werf.yaml"] = "".join(werf)
    per_service = files // 2 // images
    for index in range(images):
        for number in range(per_service):
            entries[f"services/svc{index:02d}/src/m{number // 100:03d}/f{number:05d}.js"] = f"// {index} {number}\n"
    number = 0
    while len(entries) < files:
        entries[f"other/d{number // 500:04d}/f{number:06d}.txt"] = f"{number}\n"
        number += 1
    out = ["commit refs/heads/main\ncommitter bench <bench@example.com> 1700000000 +0000\ndata 5\nbench\n"]
    for path, text in sorted(entries.items()):
        data = text.encode()
        out.append(f"M 100644 inline {path}\ndata {len(data)}\n{text}\n")
    return "".join(out).encode(), len(entries)


def make_repository(path, files, images):
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    stream, count = repository_stream(files, images)
    subprocess.run(["git", "-C", str(path), "fast-import", "--quiet"], input=stream, check=True)
    subprocess.run(["git", "-C", str(path), "checkout", "-q", "-f", "main"], check=True)
    return count


def timed(function, runs):
    samples = []
    for _run in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="berth-bench-digest-") as tmp:
        repo = Path(tmp) / "repo"
        start = time.perf_counter()
        count = make_repository(repo, args.files, args.images)
        print(f"repository: {count} committed files, {args.images} images, made in "
              f"{time.perf_counter() - start:.1f} s")

        def ls_tree():
            subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "HEAD"], check=True, stdout=subprocess.DEVNULL)

        def digests():
            project = load_project(str(repo))
            result = compute_digests(project.git, project.config, repo="127.0.0.1:5000/bench")
            assert len(result) == args.images
            return project

        def image_digest():  # what the module does: digests, then the uncommitted-changes report
            digests().git.uncommitted_changes()

        image_digest()  # warm the OS caches for both alike
        ls_tree()
        baseline, baseline_samples = timed(ls_tree, args.runs)
        ours, our_samples = timed(image_digest, args.runs)
        digest_only, digest_samples = timed(digests, args.runs)
        print(f"git ls-tree -r HEAD: median {baseline:.3f} s  {[round(s, 3) for s in baseline_samples]}")
        print(f"image_digest logic (load, digests, status): median {ours:.3f} s  {[round(s, 3) for s in our_samples]}")
        print(f"  of which digests only (load, digests): median {digest_only:.3f} s  "
              f"{[round(s, 3) for s in digest_samples]}")
        print(f"ratio image_digest / ls-tree: {ours / baseline:.2f}; digests only: {digest_only / baseline:.2f} "
              "(goal <= 1.5)")


if __name__ == "__main__":
    main()
