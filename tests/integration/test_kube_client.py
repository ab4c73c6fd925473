# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection of the kube modules against the real API server: errors about credentials and kubeconfig
files name what is wrong and where it came from, without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import ansible_module


@pytest.fixture(scope="module")
def server(localenv):
    config = yaml.safe_load(Path(localenv.kubeconfig).read_text())
    return config["clusters"][0]["cluster"]["server"]


def release_info(args):
    run = ansible_module("release_info", {"release": "nothing", "namespace": "default", "timeout": 5, **args})
    assert run.status == "FAILED!" and "Traceback" not in run.output, run.output
    return run.result["msg"]


def test_a_wrong_token_names_the_api_server_and_the_credentials(server, localenv):
    message = release_info({"host": server, "api_key": "not-a-token", "ca_cert": localenv.ca_cert})
    assert message == (f"cannot read the revisions of release nothing in namespace default: the Kubernetes API server "
                       f"at {server} refused the credentials from the api_key option (or K8S_AUTH_API_KEY) for host "
                       f"{server} (401 Unauthorized) to GET /api/v1/namespaces/default/secrets")


def test_a_kubeconfig_user_without_valid_credentials_is_named(server, localenv, tmp_path):
    config = yaml.safe_load(Path(localenv.kubeconfig).read_text())
    config["users"] = [{"name": "mallory", "user": {"token": "stolen"}}]
    config["contexts"] = [{"name": "evil", "context": {"cluster": config["clusters"][0]["name"], "user": "mallory"}}]
    config["current-context"] = "evil"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    message = release_info({"kubeconfig": str(path)})
    assert (f"the Kubernetes API server at {server} refused the credentials from kubeconfig {path} (context evil, "
            "user mallory) (401 Unauthorized)") in message


def test_a_kubeconfig_that_is_not_yaml_or_missing_is_named(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nclusters:\n  - name: [unclosed\n")
    message = release_info({"kubeconfig": str(path)})
    assert message.startswith(f"kubeconfig {path} (from the kubeconfig option (or K8S_AUTH_KUBECONFIG)) is not valid "
                              "YAML at line ")
    missing = tmp_path / "missing"  # refused by the up-front option checks, naming the option and the file
    assert str(missing) in release_info({"kubeconfig": str(missing)})


def test_an_unknown_context_is_named(localenv):
    message = release_info({"kubeconfig": localenv.kubeconfig, "context": "prod"})
    assert message == f"kubeconfig {localenv.kubeconfig} has no context 'prod'; it has: berth-localenv"
