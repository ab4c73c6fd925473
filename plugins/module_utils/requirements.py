# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The third-party libraries the modules need, so a missing one is reported by name, not as a traceback."""

from __future__ import annotations

import importlib.util

# import name -> distribution name (what to pip install)
LIBRARIES = {
    "yaml": "PyYAML",
    "git": "GitPython",
    "docker": "docker",
    "kubernetes": "kubernetes",
    "requests": "requests",
    "jinja2": "Jinja2",
    "cryptography": "cryptography",
    "urllib3": "urllib3",
    "jmespath": "jmespath",
}

# What the modules that talk to the Kubernetes API import (PyYAML for the release records' manifests).
KUBE_LIBRARIES = ("kubernetes", "urllib3", "yaml")


def missing_libraries(*import_names):
    """Distribution names of the libraries among ``import_names`` that cannot be imported."""
    return [LIBRARIES[name] for name in dict.fromkeys(import_names) if importlib.util.find_spec(name) is None]


def check_libraries(module, *import_names):
    """Fail the Ansible module, naming what to install, when one of the libraries is missing."""
    from ansible.module_utils.basic import missing_required_lib

    missing = missing_libraries(*import_names)
    if missing:
        module.fail_json(msg=missing_required_lib(" and ".join(missing)))
