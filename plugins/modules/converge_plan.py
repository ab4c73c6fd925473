#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: converge_plan
short_description: Save the plan of a converge to a file, or check that a converge still matches a saved plan
version_added: 0.2.0
description:
  - "Saved plans, as werf's C(plan --save-plan) and C(converge --use-plan): a check-mode converge writes what it
    would do to a JSON file (O(state=save)); a later converge given that file checks, before anything is built,
    pushed or applied, that it still does exactly that (O(state=check)). The converge role does both with
    C(converge_save_plan) and C(converge_use_plan). The format is described in docs/plans.md."
  - "O(state=save) writes the commit, the images (content-based references, and which would be built), a digest
    of each rendered manifest, the revision, each resource's action with its diff (Secret values masked) and the
    fingerprint of its live object (C(uid), C(resourceVersion), content digest), and the hooks that would run.
    Secret values are never written: a Secret's manifest is digested with salted PBKDF2, its live object by its
    C(resourceVersion) only."
  - "O(state=check) fails, naming every difference, when the release, the commit, an image reference or a
    rendered manifest differ from the plan, when the release recorded another revision since, or when a live
    object the plan acts on (or leaves unchanged) changed, appeared, vanished or was created again. It writes
    nothing. M(berth.converge.release_apply) with the returned RV(plan) checks the release again under its lock,
    right before its first write."
author:
  - berth.converge contributors (!UNKNOWN)
extends_documentation_fragment:
  - berth.converge.attributes
  - berth.converge.kubernetes
attributes:
  check_mode:
    support: full
    details:
      - O(state=save) writes the plan in check mode too (a plan is made by a check run); O(state=check) never
        writes anything.
  diff_mode:
    support: none
options:
  state:
    description:
      - V(save) writes the plan to O(path); V(check) reads it and compares.
    type: str
    choices: [save, check]
    required: true
  path:
    description:
      - The plan file; written with mode C(0600).
    type: path
    required: true
  release:
    description:
      - Name of the release.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the release.
    type: str
    required: true
  commit:
    description:
      - The commit of the converge (M(berth.converge.image_digest)'s C(commit)).
    type: dict
    required: true
  images:
    description:
      - The images of the commit (M(berth.converge.image_digest)'s C(images)).
    type: list
    elements: dict
    default: []
  manifests:
    description:
      - The rendered manifests, CustomResourceDefinitions of C(crds/) included (M(berth.converge.chart_render)'s
        C(manifests) and C(crds)). They carry Secret values, which are only ever digested.
    type: list
    elements: dict
    default: []
  built:
    description:
      - With O(state=save), the check-mode result of M(berth.converge.image_build) (which images would be built).
    type: dict
    default: {}
  applied:
    description:
      - With O(state=save), the check-mode result of M(berth.converge.release_apply), run with C(record_live)
        and in diff mode.
    type: dict
    default: {}
  timeout:
    description:
      - Seconds each request to the API server is retried while the server is unreachable.
    type: int
    default: 60
requirements:
  - kubernetes (Python client) >= 28.1
  - urllib3
seealso:
  - module: berth.converge.release_apply
"""

EXAMPLES = r"""
- name: Save what the converge would do (a check-mode run)
  berth.converge.converge_plan:
    state: save
    path: plan.json
    release: "{{ rendered.release }}"
    namespace: "{{ rendered.namespace }}"
    commit: "{{ digests.commit }}"
    images: "{{ digests.images }}"
    manifests: "{{ rendered.manifests + rendered.crds }}"
    built: "{{ built }}"
    applied: "{{ applied }}"
  check_mode: false

- name: Refuse unless the converge is still the plan's
  berth.converge.converge_plan:
    state: check
    path: plan.json
    release: "{{ rendered.release }}"
    namespace: "{{ rendered.namespace }}"
    commit: "{{ digests.commit }}"
    images: "{{ digests.images }}"
    manifests: "{{ rendered.manifests + rendered.crds }}"
  register: plan
"""

RETURN = r"""
plan:
  description: The plan (as saved, with C(path) added), for M(berth.converge.release_apply)'s C(plan).
  returned: success
  type: dict
differences:
  description: With O(state=check), what no longer matches the plan (empty on success).
  returned: when the check ran
  type: list
  elements: str
  sample: ["ConfigMap shop/shop-config changed since the plan (resourceVersion 812 -> 840)"]
"""

import json
import os
import tempfile
from datetime import datetime, timezone

from ansible_collections.berth.converge.plugins.module_utils.common_args import (
    KUBE_ARGS, KUBE_ENV_FALLBACKS, with_env_fallbacks)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.client import Kube, api_client
from ansible_collections.berth.converge.plugins.module_utils.kube.release import latest
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import ResourceMapper
from ansible_collections.berth.converge.plugins.module_utils.plan import (
    build_plan, input_differences, live_differences, live_fingerprint, load_plan, refuse_on)
from ansible_collections.berth.converge.plugins.module_utils.requirements import KUBE_LIBRARIES, check_libraries
from ansible_collections.berth.converge.plugins.module_utils.secret_data import Manifests, SecretDataModule
from ansible_collections.berth.converge.plugins.module_utils.validation import validate_module_params


def write_plan(path, plan):
    """Write atomically, readable by the owner only."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".plan-")
    with os.fdopen(handle, "w") as out:
        json.dump(plan, out, indent=2, sort_keys=False)
        out.write("\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def check_plan(p):
    """The plan at p["path"], once the converge matches it; raises PlanMismatch naming every difference."""
    try:
        with open(p["path"]) as source:
            text = source.read()
    except OSError as exc:
        raise ConvergeError(f"cannot read the plan {p['path']}: {exc.strerror}")
    plan = load_plan(text, p["path"])
    differences = input_differences(plan, release=p["release"], namespace=p["namespace"], commit=p["commit"],
                                    images=p["images"], manifests=p["manifests"])
    kube = Kube.of(api_client(p, p["timeout"]))
    mapper = ResourceMapper(kube)

    def read_live(entry):
        rtype = mapper.find(entry["apiVersion"], entry["kind"])
        return live_fingerprint(kube.get_or_none(rtype.path(entry.get("namespace"), entry["name"]))) if rtype else None

    differences += live_differences(plan, read_live)
    now = latest(kube, p["release"], p["namespace"])
    latest_now = now.version if now else None
    if latest_now != plan.get("latest_revision"):
        differences.append(f"release: its latest revision is {latest_now}, the plan was made at "
                           f"{plan.get('latest_revision')}")
    refuse_on(differences, p["path"])
    return dict(plan, path=p["path"])


def main():
    module = SecretDataModule(
        argument_spec=dict(
            state=dict(type="str", choices=["save", "check"], required=True),
            path=dict(type="path", required=True),
            release=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            commit=dict(type="dict", required=True),
            images=dict(type="list", elements="dict", default=[]),
            manifests=dict(type="list", elements="dict", default=[], no_log=True),  # Secrets; only digested
            built=dict(type="dict", default={}),
            applied=dict(type="dict", default={}),
            timeout=dict(type="int", default=60),
            **with_env_fallbacks(KUBE_ARGS, KUBE_ENV_FALLBACKS),
        ),
        secret_data={"manifests": Manifests},
        supports_check_mode=True,
    )
    validate_module_params(module)
    p = module.params
    try:
        if p["state"] == "save":
            plan = build_plan(release=p["release"], namespace=p["namespace"], commit=p["commit"],
                              images=p["images"], built=p["built"], manifests=p["manifests"], applied=p["applied"],
                              created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            write_plan(p["path"], plan)
            module.exit_json(changed=True, plan=dict(plan, path=p["path"]))
        check_libraries(module, *KUBE_LIBRARIES)
        plan = check_plan(p)
    except ConvergeError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(changed=False, plan=plan, differences=[])


if __name__ == "__main__":
    main()
