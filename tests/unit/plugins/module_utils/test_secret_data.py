# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SecretDataModule: options with manifests and values stay out of the log and of argument errors, and do not
garble the result."""

from __future__ import annotations

import base64
import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.berth.converge.plugins.module_utils.secret_data import (
    HIDDEN, Hidden, Manifests, SecretDataModule, strings_of)

PASSWORD = "plain-pw-7f3a"
DATA = "data-value-91c2"
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backend"},
          "stringData": {"password": PASSWORD}, "data": {"key": base64.b64encode(DATA.encode()).decode()}}
CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "visible"}}
SPEC = dict(
    manifests=dict(type="list", elements="dict", no_log=True),
    set=dict(type="dict", default={}, no_log=True),
    release=dict(type="str", required=True),
    concurrency=dict(type="int", default=8),
    api_key=dict(type="str", no_log=True),
)


def make_module(args, then=None):
    """The module made from args; ``then(module)`` runs while the args are in place (exit_json needs them)."""
    with patch_module_args(args):
        module = SecretDataModule(argument_spec=dict(SPEC), secret_data={"manifests": Manifests, "set": Hidden})
        if then:
            then(module)
        return module


def returned(capsys, call):
    with pytest.raises(SystemExit):
        call()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def logged(monkeypatch):
    """What AnsibleModule sends to syslog/journald."""
    messages = []
    monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, log_args=None: messages.append(msg))
    return messages


def test_the_log_line_holds_no_manifest_or_value(logged):
    make_module({"release": "backend", "manifests": [SECRET, CONFIG], "set": {"db": PASSWORD}})
    assert len(logged) == 1 and logged[0].startswith("Invoked with")
    assert "manifests=NOT_LOGGING_PARAMETER" in logged[0] and "set=NOT_LOGGING_PARAMETER" in logged[0]
    assert PASSWORD not in logged[0] and "concurrency=8" in logged[0]


def test_the_result_is_not_garbled_and_shows_secrets_masked(capsys, logged):
    args = {"release": "backend", "manifests": [SECRET, CONFIG], "set": {"db": PASSWORD}, "api_key": "key-3c1d"}

    def finish(module):
        assert module.no_log_values == {"key-3c1d"}  # the credential stays masked, the manifests' strings not
        module.exit_json(resources=[{"kind": "Secret", "name": "backend"}], note="key-3c1d")

    result = returned(capsys, lambda: make_module(args, finish))
    assert result["resources"] == [{"kind": "Secret", "name": "backend"}]
    assert result["note"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"  # the credential, masked as Ansible does
    shown = result["invocation"]["module_args"]
    assert shown["manifests"][1] == CONFIG
    assert shown["manifests"][0]["metadata"] == {"name": "backend"}
    assert shown["manifests"][0]["stringData"]["password"].startswith("<hidden:")
    assert shown["set"] == HIDDEN and shown["api_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    text = json.dumps(result)
    assert PASSWORD not in text and SECRET["data"]["key"] not in text


@pytest.mark.parametrize("bad", [{"concurrency": "x"}, {"bogus": 1}, {"manifests": [SECRET, "password: x"]}],
                         ids=["wrong type", "unknown option", "element not a dict"])
def test_an_argument_error_shows_no_secret_and_a_readable_message(capsys, bad, logged):
    args = {"release": "backend", "manifests": [SECRET, CONFIG], "set": {"db": PASSWORD}, **bad}
    result = returned(capsys, lambda: make_module(args))
    assert result["failed"] and not logged
    text = json.dumps(result)
    assert PASSWORD not in text and SECRET["data"]["key"] not in text and DATA not in text
    assert "********" not in result["msg"], result["msg"]  # names such as "backend" are not masked in it
    assert next(iter(bad)) in result["msg"]
    assert result["invocation"]["module_args"]["set"] == HIDDEN


def test_a_secret_data_option_must_be_no_log():
    with patch_module_args({"release": "r"}), pytest.raises(ValueError, match="manifests"):
        SecretDataModule(argument_spec={**SPEC, "manifests": dict(type="list", elements="dict")},
                         secret_data={"manifests": Manifests})


def test_manifests_secret_strings_include_decoded_data_and_whatever_is_no_object():
    found = Manifests.secret_strings([SECRET, CONFIG, "raw: text"])
    assert {PASSWORD, DATA, SECRET["data"]["key"], "raw: text"} <= found
    assert "cfg" not in found and "backend" not in found
    assert Manifests.show("not a list") == HIDDEN


def test_strings_of_matches_what_ansible_masks():
    assert strings_of({"a": ["x", 3, 1.5, True, None, ""], "b": {"c": b"y"}}) == {"x", "3", "1.5", "y"}
