# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module, run with hundreds of generated wrong argument sets (seeded, so a failure reproduces): each
must fail with a message naming one of the wrong options, never with a traceback.

Each set is a valid base with one to three options made wrong (a value of the wrong type, out of range or
not a name the option accepts, an unknown option, a required option left out). The base points at nothing
that exists (no project, no kubeconfig, no Docker socket), so an argument check that let a wrong value
through shows as a message about something else, which fails the test.
"""

from __future__ import annotations

import importlib
import random

import pytest

from module_runner import run_in_process

MODULES = ["chart_render", "image_build", "image_digest", "registry_images", "release_apply", "release_info",
           "release_rollback", "release_track"]
SETS_PER_MODULE = 250
SEED = 20261205

NOWHERE = "/nonexistent/berth-fuzz"
REF = "127.0.0.1:5000/fuzz/app:0123abcd"
CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}}
BASE = {
    "chart_render": {"project_dir": NOWHERE, "release": "shop", "namespace": "shop"},
    "image_build": {"project_dir": NOWHERE, "images": [{"name": "app", "ref": REF, "digest": "0123abcd"}]},
    "image_digest": {"project_dir": NOWHERE, "repo": "127.0.0.1:5000/fuzz"},
    "registry_images": {"refs": [REF]},
    "release_apply": {"release": "shop", "namespace": "shop", "manifests": [CM]},
    "release_info": {"release": "shop", "namespace": "shop"},
    "release_rollback": {"release": "shop", "namespace": "shop"},
    "release_track": {"release": "shop", "namespace": "shop",
                      "resources": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "cm"}]},
}


class _Captured(Exception):
    pass


def argument_spec(module):
    """The module's argument spec, read by running its main() up to the AnsibleModule it builds."""
    code = importlib.import_module(f"ansible_collections.berth.converge.plugins.modules.{module}")
    seen = {}

    def capture(**kwargs):
        seen.update(kwargs)
        raise _Captured

    # Modules with secret-carrying options build a SecretDataModule, the others an AnsibleModule.
    name = "SecretDataModule" if hasattr(code, "SecretDataModule") else "AnsibleModule"
    original = getattr(code, name)
    setattr(code, name, capture)
    try:
        code.main()
    except _Captured:
        pass
    finally:
        setattr(code, name, original)
    return seen["argument_spec"]


def _name(rng, alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", size=(1, 20)):
    return "".join(rng.choice(alphabet) for _char in range(rng.randint(*size)))


def _bad_dns(rng, limit):
    return rng.choice([
        "", "-" + _name(rng), _name(rng) + "-", _name(rng).upper() + "A", _name(rng) + "_" + _name(rng),
        "a" * rng.randint(limit + 1, limit + 40), _name(rng) + " " + _name(rng), _name(rng) + "é",
    ])


def _bad_manifest(rng):
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    choice = rng.randrange(9)
    if choice == 0:
        obj["metadata"] = rng.choice(["oops", ["a"], 5, True])
    elif choice == 1:
        obj["metadata"]["name"] = rng.choice([123, 1.5, ["x"], {"a": 1}, True])
    elif choice == 2:
        obj["metadata"]["labels"] = rng.choice([["a"], "a", {"a": rng.choice([1, None, ["x"], {"b": "c"}])}])
    elif choice == 3:
        obj["metadata"]["annotations"] = rng.choice([["a"], "a=b", {"a": rng.choice([1, False, ["x"]])}])
    elif choice == 4:
        del obj[rng.choice(["apiVersion", "kind"])]
    elif choice == 5:
        obj[rng.choice(["apiVersion", "kind"])] = rng.choice(["", 5, ["v1"]])
    elif choice == 6:
        obj["metadata"]["namespace"] = rng.choice([5, ["a"], {"a": 1}])
    elif choice == 7:
        del obj["metadata"]
    else:
        obj["metadata"]["name"] = ""
    return obj


def wrong_values(name, spec, rng):
    """Values of option ``name`` that the module must refuse, or [] when any value of its type is fine."""
    kind = spec.get("type", "str")
    elements = spec.get("elements")
    if name in ("timeout", "lock_timeout"):
        return [rng.randint(-10 ** 6, -1), "soon", [1], 2.5]
    if name in ("concurrency", "docker_timeout"):
        return [0, rng.randint(-100, 0), "many", {"a": 1}]
    if name == "revision":
        return [0, rng.randint(-50, 0), "latest", [3]] if kind == "int" else ["", "   "]
    if name == "release":
        return [_bad_dns(rng, 53), ["a"]]
    if name == "namespace":
        return [_bad_dns(rng, 63), "a.b"]
    if name == "repo":
        return ["", "127.0.0.1:5000/" + _name(rng).upper() + "X", f"127.0.0.1:5000/{_name(rng)}:v1",
                f"registry.example/{_name(rng)}@sha256:" + "a" * 64, "a b"]
    if name in ("kubeconfig", "ca_cert", "client_cert", "client_key"):
        return [f"{NOWHERE}/{_name(rng)}"]  # empty means not given, as an empty K8S_AUTH_* variable
    if name == "docker_host":
        return [_name(rng), "ftp://" + _name(rng), f"unix://{NOWHERE}/{_name(rng)}.sock"]
    if name == "host":
        return [_name(rng), "ftp://" + _name(rng)]
    if name in ("config", "chart_dir"):
        return ["", "/" + _name(rng)]
    if name in ("helm_binary", "env", "project", "project_dir"):
        return ["", "   "]
    if name == "manifests":
        return [[CM, _bad_manifest(rng)], [_bad_manifest(rng)], ["oops"], {"a": 1}]
    if name == "resources":
        return [[{"apiVersion": "v1", "kind": "Pod", "metadata": rng.choice(["x", ["a"]])}],
                [{"apiVersion": 5, "kind": "Pod", "name": "p"}], [{"kind": "Pod", "name": ["p"]}], "oops"]
    if name == "image":
        return [{"ref": REF}, {"name": rng.choice([5, "", ["a"]])}, "not a dict"]
    if name == "images" and elements == "dict":
        return [[{"ref": REF}], [{"name": 5, "ref": REF}], [{"name": "app", "ref": 5}], {"a": 1}]
    if name in ("values_files", "secret_values_files", "insecure_registries"):
        return [[""], ["   "], {"a": 1}]
    if name == "refs":
        return [[rng.choice([5, 2.5, True, None])], [{"name": "app"}], ["registry.example/UPPER" + _name(rng) + ":x"],
                [f"{REF}@sha256:{_name(rng)}"]]
    if spec.get("choices"):
        return ["bogus-" + _name(rng)]
    if kind == "int":
        return ["x" + _name(rng), [1], 1.5]
    if kind == "bool":
        return ["maybe-" + _name(rng), [True], {"a": 1}]
    if kind == "list":
        return [{"a": 1}]
    if kind == "dict":
        return ["not a dict", [1, 2]]
    return []


def generated_sets(module, spec, rng):
    """(arguments, names of the options made wrong) pairs."""
    names = [n for n in spec if wrong_values(n, spec[n], rng)]
    required = [n for n, s in spec.items() if s.get("required") and n in BASE[module]]
    for _index in range(SETS_PER_MODULE):
        args = dict(BASE[module])
        culprits = []
        for _wrong in range(rng.randint(1, 3)):
            kind = rng.random()
            if kind < 0.08:
                option = "zz_" + _name(rng, "abcdefghijklmnopqrstuvwxyz")
                args[option] = rng.choice([1, "x", None, [1]])
            elif kind < 0.14 and required:
                option = rng.choice(required)
                args.pop(option, None)
            else:
                option = rng.choice(names)
                args[option] = rng.choice(wrong_values(option, spec[option], rng))
            culprits.append(option)
        yield args, culprits


@pytest.fixture(autouse=True)
def nothing_reachable(monkeypatch):
    """No kubeconfig, Kubernetes or Docker settings from the environment: the modules reach nothing."""
    for key in ("K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "K8S_AUTH_SSL_CA_CERT",
                "K8S_AUTH_CERT_FILE", "K8S_AUTH_KEY_FILE", "K8S_AUTH_VERIFY_SSL", "DOCKER_HOST", "DOCKER_CONFIG_FILE",
                "BERTH_REGISTRY_USERNAME", "BERTH_REGISTRY_PASSWORD", "BERTH_PROGRESS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("KUBECONFIG", f"{NOWHERE}/kubeconfig")
    monkeypatch.setenv("HOME", NOWHERE)


@pytest.mark.parametrize("module", MODULES)
def test_wrong_arguments_fail_naming_the_option_without_a_traceback(module):
    rng = random.Random(f"{SEED}-{module}")
    spec = argument_spec(module)
    failures, count = [], 0
    for args, culprits in generated_sets(module, spec, rng):
        count += 1
        run = run_in_process(module, args, check_mode=rng.random() < 0.3)
        if run.traceback:
            failures.append(f"{args}: traceback\n{run.traceback}")
            continue
        result = run.result or {}
        message = result.get("msg") or ""
        if not result.get("failed") or not message:
            failures.append(f"{args}: not a failure with msg: {result}")
        elif "Traceback" in message or not any(name in message for name in culprits):
            failures.append(f"{args}: the message names none of {culprits}: {message}")
    assert count >= 200
    assert not failures, f"{len(failures)} of {count} argument sets:\n" + "\n".join(failures[:10])
