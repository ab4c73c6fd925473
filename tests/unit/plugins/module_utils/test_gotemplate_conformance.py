# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Conformance of the Go template evaluator against the real thing.

Every case of data/gotemplate_cases.yaml is rendered by Go's text/template with Sprig and werf's werf.yaml
functions (hack/conformance/gotemplate, built here from the Go module proxy into the berth cache, keyed by
a hash of its sources) and by berth.converge's evaluator: the outputs must be identical, or both must fail
and our error must name the same template and line as Go's. The Go program is required: when it cannot be
built the tests fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.berth.converge.plugins.module_utils.gotemplate import TemplateError, go_bytes
from ansible_collections.berth.converge.plugins.module_utils.werf_template import ROOT_TEMPLATE, new_template_set

ROOT = Path(__file__).resolve().parents[4]
PROGRAM_DIR = ROOT / "hack" / "conformance" / "gotemplate"
CASES_FILE = Path(__file__).parent / "data" / "gotemplate_cases.yaml"
LOCATION = re.compile(r"template: ([^:\s]+):(\d+)")


def load_cases():
    document = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    shared = document["data"]
    cases = []
    for case in document["cases"]:
        data = case.get("data")
        if isinstance(data, str) and data.startswith("@"):
            data = shared[data[1:]]
        cases.append({"name": case["name"], "template": case["template"], "data": data,
                      "partials": [list(p) for p in case.get("partials", [])], "env": case.get("env", {})})
    return cases


CASES = load_cases()


def cache_dir():
    base = os.environ.get("BERTH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "berth-converge")
    return Path(base)


def build_go_program():
    """Build (once per source hash) the Go renderer; its path. Fails the tests when Go cannot build it."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((PROGRAM_DIR / name).read_bytes())
    binary = cache_dir() / "bin" / f"conformance-gotemplate-{digest.hexdigest()[:16]}"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is required to build hack/conformance/gotemplate (go is not on PATH)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    proc = subprocess.run([go, "build", "-trimpath", "-o", str(tmp), "."], cwd=PROGRAM_DIR, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"building hack/conformance/gotemplate failed:\n{proc.stderr}")
    tmp.replace(binary)
    return binary


@pytest.fixture(scope="module")
def go_results():
    binary = build_go_program()
    proc = subprocess.run([str(binary)], input=json.dumps(CASES), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"the Go renderer failed: {proc.stderr}")
    return {r["name"]: r for r in json.loads(proc.stdout)}


def render_python(case):
    """The case rendered as werf renders werf.yaml, with our evaluator: (output bytes, None) or (None, error)."""
    template_set = new_template_set(case["env"].get)
    data = json.loads(json.dumps(case["data"]), parse_int=float)  # Go decodes JSON numbers as float64
    try:
        for name, text in case["partials"]:
            template_set.parse(name, text)
        template_set.parse(ROOT_TEMPLATE, case["template"])
        return go_bytes(template_set.execute(ROOT_TEMPLATE, data)), None
    except TemplateError as exc:
        return None, exc


def test_case_names_are_unique():
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names))
    assert len(names) >= 300


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_same_as_go(case, go_results):
    expected = go_results[case["name"]]
    output, error = render_python(case)
    if not expected.get("error"):
        assert error is None, f"Go rendered {base64.b64decode(expected['output_b64'])!r}, we failed: {error}"
        assert output == base64.b64decode(expected["output_b64"])
        return
    assert error is not None, f"Go failed ({expected['error']}), we rendered {output!r}"
    go_location = LOCATION.search(expected["error"])
    if go_location:
        ours = LOCATION.search(str(error))
        assert ours is not None, f"our error names no location: {error}"
        assert ours.groups() == go_location.groups(), f"Go: {expected['error']}\nours: {error}"
