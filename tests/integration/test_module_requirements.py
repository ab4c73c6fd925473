# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each module names the libraries to install when they are missing, the same way (missing_required_lib),
instead of ending in a traceback. The module runs under a Python interpreter that cannot import them."""

from __future__ import annotations

import sys

import pytest

from conftest import ansible_module

# The import names of every third-party library of requirements.txt (ansible-core aside).
BLOCKED = ("yaml", "git", "docker", "kubernetes", "urllib3", "requests", "jinja2", "cryptography", "jmespath")
KUBE = {"kubernetes", "urllib3", "PyYAML"}

# module -> (arguments that pass its argument checks, the distributions it must ask for)
CASES = {
    "image_digest": ({"project_dir": "/nonexistent"}, {"PyYAML", "GitPython"}),
    "image_build": ({"project_dir": "/nonexistent", "images": [{"name": "x"}]},
                    {"PyYAML", "GitPython", "docker", "requests"}),
    "registry_images": ({"refs": []}, {"requests"}),
    "chart_render": ({"project_dir": "/nonexistent"}, {"PyYAML", "GitPython", "Jinja2", "cryptography"}),
    "release_apply": ({"release": "r", "namespace": "n", "manifests": []}, KUBE),
    "release_track": ({"resources": []}, KUBE | {"jmespath"}),
    "release_rollback": ({"release": "r", "namespace": "n"}, KUBE),
    "release_info": ({"release": "r", "namespace": "n"}, KUBE),
}


@pytest.fixture(scope="module")
def python_without_libraries(tmp_path_factory):
    """An interpreter for the module in which none of BLOCKED can be imported."""
    root = tmp_path_factory.mktemp("nolibs")
    (root / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in BLOCKED))
    wrapper = root / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{root}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_the_interpreter_really_lacks_the_libraries(python_without_libraries):
    import subprocess

    probe = subprocess.run([python_without_libraries, "-c", "import yaml"], capture_output=True, text=True,
                           check=False)
    assert probe.returncode != 0 and "yaml" in probe.stderr


@pytest.mark.parametrize("module", sorted(CASES))
def test_a_missing_library_is_named_with_what_to_install(module, python_without_libraries):
    args, wanted = CASES[module]
    run = ansible_module(module, args, interpreter=python_without_libraries)
    assert run.result["failed"], run.output
    assert "Traceback" not in run.output and "module_stderr" not in run.result, run.output
    msg = run.result["msg"]
    assert msg.startswith("Failed to import the required Python library ("), msg
    named = set(msg[msg.index("(") + 1:msg.index(")")].split(" and "))
    assert named == wanted, msg
