"""Conformance of the image-reference parser against github.com/distribution/reference itself.

Hand-picked references (Docker Hub's spellings, ports, IPv6, digests, tags, upper case, lengths) and
thousands of random ones over the characters that mean something to the grammar are read by
hack/conformance/reference (ParseNormalizedNamed, as Docker reads a reference; built from the Go module
proxy by its `build` script) and by reference.parse_reference: both accept with the same registry,
repository, tag and digest, or both reject (and an upper-case repository is called that by both);
the one deliberate difference: a name Go reads with no registry at all (``ex_ample.com/app``) we reject.
The Go program is required: when it cannot be built the tests fail.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.reference import parse_reference

ROOT = Path(__file__).resolve().parents[4]
BUILD = ROOT / "hack" / "conformance" / "reference" / "build"

SHA256 = "sha256:" + "0123456789abcdef" * 4
HAND_PICKED = [
    "busybox", "busybox:1.36", "library/busybox", "docker.io/busybox", "docker.io/library/busybox",
    "index.docker.io/busybox", "index.docker.io/library/busybox", "index.docker.io/team/app:v1",
    "registry-1.docker.io/busybox", "Docker.io/busybox", "docker.io:443/busybox", "team/app", "team/app/sub",
    "localhost/app", "localhost:5000/app", "localhost", "localhost:5000", "localhost:5000/app:tag",
    "127.0.0.1:5000/shop/backend:v1", "[::1]:5000/app", "[::1]/app", "[fe80::1%eth0]/app", "::1/app",
    "example.com/app", "example.com:/app", "example.com:abc/app", "ex_ample.com/app", "-example.com/app",
    "example-.com/app", "exa--mple.com/app", "EXAMPLE.com/app", "Example/app", "example/App", "App",
    "app:Tag", "app:TAG_1.2-x", "app:.tag", "app:-tag", "app:_tag", "app:" + "t" * 128, "app:" + "t" * 129,
    "app:", "app@", "app:tag@", ":tag", "@" + SHA256, "/app", "app/", "a//b", "a/./b", "a/../b",
    "a__b", "a___b", "a_b", "a.b", "a..b", "a-b", "a--b", "a-", "-a", "_a", "a.", "a.b/c_d-e/f__g",
    "app@" + SHA256, "app:v1@" + SHA256, "app@sha256:" + "A" * 64, "app@sha256:" + "a" * 63,
    "app@sha256:" + "a" * 65, "app@sha512:" + "a" * 128, "app@sha384:" + "a" * 96, "app@md5:" + "a" * 32,
    "app@sha256+b64:" + "a" * 64, "app@SHA256:" + "a" * 64, "app@s:" + "a" * 32, "app@sha256:" + "g" * 64,
    "0123456789abcdef" * 4, "0123456789ABCDEF" * 4, "0123456789abcdef" * 4 + ":tag",
    "example.com/" + "0123456789abcdef" * 4, "a" * 255, "a" * 256, "library/" + "a" * 248,
    "example.com/" + "a" * 255, "example.com/" + "a" * 256, "docker.io/" + "a" * 248,
    "host.example.com:5000/a/b/c:latest", "ho st/app", "app name", "app\n", "é/app", "app/é", "app:é",
    "UPPER/case:tag", "lower/Case", "registry.example.com/Team/app", "localhost/App", "index.docker.io/App",
]
ATOMS = ["a", "b", "z", "0", "9", "A", "Z", "/", ":", "@", ".", "_", "__", "-", "--", "localhost", "docker.io",
         "index.docker.io", "example.com", "5000", "[::1]", "[", "]", "sha256:", SHA256[7:], "latest", "library/"]


def random_refs(rng, count):
    return ["".join(rng.choice(ATOMS) for _atom in range(rng.randint(1, 7))) for _index in range(count)]


REFS = list(dict.fromkeys(HAND_PICKED + random_refs(random.Random(20261206), 4000)))


@pytest.fixture(scope="module")
def go_results():
    built = subprocess.run([str(BUILD)], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        pytest.fail(f"building hack/conformance/reference failed:\n{built.stderr}")
    done = subprocess.run([built.stdout.strip()], input=json.dumps(REFS), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"the reference program failed: {done.stderr}")
    return {item["ref"]: item for item in json.loads(done.stdout)}


def compare(ref, expected):
    """None when parse_reference agrees with Go on ``ref``, else a description of the difference."""
    try:
        ours = parse_reference(ref, default_tag=None)
    except ConvergeError as exc:
        if not expected.get("error") and not expected.get("domain"):
            # Go's name without a registry (ex_ample.com/app): refused on purpose, see reference.py
            return None if "bad registry host" in str(exc) else f"unexpected message: {exc}"
        if not expected.get("error"):
            return f"we reject it ({exc}), Go reads {expected}"
        if ("must be lowercase" in expected["error"]) != ("must be lowercase" in str(exc)):
            return f"upper case: Go says {expected['error']!r}, we say {exc}"
        return None
    if expected.get("error"):
        return f"Go rejects it ({expected['error']}), we read {ours}"
    got = {"domain": ours.registry, "path": ours.repository, "tag": ours.tag or "", "digest": ours.digest or ""}
    want = {key: expected.get(key, "") for key in got}
    return None if got == want else f"Go reads {want}, we read {got}"


def test_the_cases_cover_both_verdicts(go_results):
    verdicts = [bool(item.get("error")) for item in go_results.values()]
    assert sum(verdicts) > 300 and len(verdicts) - sum(verdicts) > 300, "the generator lost its variety"
    assert sum("must be lowercase" in (item.get("error") or "") for item in go_results.values()) > 20


def test_hand_picked_references_read_as_docker_reads_them(go_results):
    differences = {ref: compare(ref, go_results[ref]) for ref in HAND_PICKED}
    assert {ref: why for ref, why in differences.items() if why} == {}


def test_generated_references_read_as_docker_reads_them(go_results):
    differences = {ref: compare(ref, go_results[ref]) for ref in REFS}
    wrong = {ref: why for ref, why in differences.items() if why}
    assert not wrong, f"{len(wrong)} of {len(REFS)} differ, e.g. {dict(list(wrong.items())[:10])}"
