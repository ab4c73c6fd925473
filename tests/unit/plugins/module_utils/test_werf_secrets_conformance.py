# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""werf_secrets.py against werf's own secret code (github.com/werf/common-go, built from the Go module
proxy by hack/conformance/werfsecret/build): werf's ciphertexts decrypt to the right values here, ours
decrypt in werf, and the secret key is found where werf finds it. The build failing fails the tests."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.werf_secrets import (
    SecretValueError,
    decrypt_value,
    decrypt_values_text,
    encrypt_value,
    encrypt_values,
    find_secret_key,
    parse_secret_key,
)

ROOT = Path(__file__).resolve().parents[4]
BUILD = ROOT / "hack" / "conformance" / "werfsecret" / "build"

KEYS = ["000102030405060708090a0b0c0d0e0f", "5c" * 24, "A1B2C3D4E5F60718293A4B5C6D7E8F90" * 2]
PLAINTEXTS = [
    "", " ", "a", "password", "x" * 15, "x" * 16, "x" * 17, "y" * 31, "y" * 32, "y" * 33,
    "пароль", "密码🔐", "é" * 8, "tab\tand\r\nCRLF", "line 1\nline 2\n", "\n\n", "  padded  ",
    "quote \" and ' and \\", "a\x00b", "{\"json\": [1, 2]}", "-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n",
    "1000" + "ab" * 33, "L" * 10000, "ünïcödé " * 500,
]
# Plaintext values files: what werf's EncryptYamlData makes of them must decrypt here to what werf's
# DecryptYamlData makes of it.
VALUES_FILES = [
    "password: hunter2\n",
    "db:\n  user: admin\n  password: \"p@ss: #word\"\n  port: 5432\n  ssl: true\n  ratio: 0.25\n",
    "list:\n  - a\n  - ''\n  - null\n  - - nested\n    - 7\nmap: {x: {y: {z: deep}}}\n",
    "empty: ''\nnothing:\nspaces: '   '\n",
    "unicode_ключ: значение 🔐\n'quoted key': v\n",
    "cert: |\n  -----BEGIN CERTIFICATE-----\n  MIIBszCCAVmgAwIBAgIUY\n  -----END CERTIFICATE-----\n",
    "folded: >\n  one\n  two\n\n  three\nstrip: |-\n  no trailing newline\nkeep: |+\n  kept\n\n",
    "big: 1000000.0\nsmall: 0.00001\nint: -42\nlong: " + "w" * 3000 + "\n",
    "base: &anchor\n  token: t0k3n\ncopy: *anchor\n",
    "# a comment\nkey: value # trailing\n",
    "{}\n",
]
EXPECTED = [
    {"password": "hunter2"},
    {"db": {"user": "admin", "password": "p@ss: #word", "port": "5432", "ssl": "true", "ratio": "0.25"}},
    {"list": ["a", "", None, ["nested", "7"]], "map": {"x": {"y": {"z": "deep"}}}},
    {"empty": "", "nothing": None, "spaces": "   "},
    {"unicode_ключ": "значение 🔐", "quoted key": "v"},
    {"cert": "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY\n-----END CERTIFICATE-----\n"},
    {"folded": "one two\nthree\n", "strip": "no trailing newline", "keep": "kept\n\n"},
    {"big": "1e+06", "small": "1e-05", "int": "-42", "long": "w" * 3000},
    {"base": {"token": "t0k3n"}, "copy": {"token": "t0k3n"}},
    {"key": "value"},
    {},
]


@pytest.fixture(scope="module")
def werf():
    """Run requests through werf's code: ``werf([{op, ...}]) -> [response]``."""
    built = subprocess.run([str(BUILD)], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        pytest.fail(f"building werf's secret code failed (needs Go and the Go module proxy):\n{built.stderr}")
    binary = built.stdout.strip()

    def call(requests):
        done = subprocess.run([binary], input=json.dumps(requests), capture_output=True, text=True, check=True)
        responses = json.loads(done.stdout)
        assert len(responses) == len(requests)
        return responses

    return call


def werf_plaintext(response):
    assert "error" not in response, response
    return base64.b64decode(response.get("plaintext_b64", "")).decode()


@pytest.mark.parametrize("key_hex", KEYS)
def test_werf_ciphertexts_decrypt_to_the_plaintext(werf, key_hex):
    responses = werf([{"op": "encrypt", "key": key_hex, "plaintext": text} for text in PLAINTEXTS])
    key = parse_secret_key(key_hex, "test")
    for plaintext, response in zip(PLAINTEXTS, responses):
        assert "error" not in response, response
        assert decrypt_value(key, response["ciphertext"]) == plaintext


@pytest.mark.parametrize("key_hex", KEYS)
def test_our_ciphertexts_decrypt_in_werf(werf, key_hex):
    key = parse_secret_key(key_hex, "test")
    responses = werf([{"op": "decrypt", "key": key_hex, "ciphertext": encrypt_value(key, text)}
                      for text in PLAINTEXTS])
    assert [werf_plaintext(response) for response in responses] == PLAINTEXTS


@pytest.mark.parametrize("plaintext, expected", list(zip(VALUES_FILES, EXPECTED)))
def test_values_files_werf_encrypts_decrypt_as_in_werf(werf, plaintext, expected):
    key_hex = KEYS[0]
    encrypted = werf([{"op": "encrypt_yaml", "key": key_hex, "yaml": plaintext}])[0]
    assert "error" not in encrypted, encrypted
    werf_decrypted = werf([{"op": "decrypt_yaml", "key": key_hex, "yaml": encrypted["yaml"]}])[0]
    assert "error" not in werf_decrypted, werf_decrypted
    ours = decrypt_values_text(parse_secret_key(key_hex, "test"), encrypted["yaml"], "secret-values.yaml")
    assert ours == (yaml.safe_load(werf_decrypted["yaml"]) or {})
    assert ours == expected


@pytest.mark.parametrize("expected", EXPECTED)
def test_values_files_we_encrypt_decrypt_in_werf(werf, expected):
    key_hex = KEYS[1]
    text = yaml.safe_dump(encrypt_values(parse_secret_key(key_hex, "test"), expected), allow_unicode=True)
    decrypted = werf([{"op": "decrypt_yaml", "key": key_hex, "yaml": text}])[0]
    assert "error" not in decrypted, decrypted
    assert (yaml.safe_load(decrypted["yaml"]) or {}) == expected


@pytest.mark.parametrize("key_text", ["abc", "zz" * 16, "00" * 15, "00" * 20, "00" * 33])
def test_keys_werf_refuses_are_refused(werf, key_text):
    assert "error" in werf([{"op": "encrypt", "key": key_text, "plaintext": "x"}])[0]
    with pytest.raises(ConvergeError):
        parse_secret_key(key_text, "test")


def test_werf_values_decrypted_with_a_wrong_key_fail_here(werf):
    """werf's CBC has no integrity check: with a wrong key werf may return garbage; here it fails."""
    responses = werf([{"op": "encrypt", "key": KEYS[0], "plaintext": f"value {i}"} for i in range(200)])
    wrong = parse_secret_key(KEYS[1][:32], "test")
    for response in responses:
        with pytest.raises(SecretValueError):
            decrypt_value(wrong, response["ciphertext"])


LOOKUPS = [
    # (WERF_SECRET_KEY, project .werf_secret_key, home global_secret_key)
    ("11" * 16, "22" * 16, "33" * 16),
    (None, "22" * 16, "33" * 16),
    ("", "22" * 16 + "\n", "33" * 16),
    (None, None, "  " + "33" * 16 + "\n"),
    ("", None, "33" * 16),
    (None, None, None),
    ("", None, None),
]


@pytest.mark.parametrize("env, project_key, home_key", LOOKUPS)
def test_the_key_is_found_where_werf_finds_it(werf, tmp_path, env, project_key, home_key):
    project, home = tmp_path / "project", tmp_path / "werf-home"
    project.mkdir()
    home.mkdir()
    for path, text in ((project / ".werf_secret_key", project_key), (home / "global_secret_key", home_key)):
        if text is not None:
            path.write_text(text)
    response = werf([{"op": "find_key", "dir": str(project), "env": env, "home": str(home)}])[0]
    environ = {"WERF_HOME": str(home)} if env is None else {"WERF_HOME": str(home), "WERF_SECRET_KEY": env}
    if "error" in response:
        with pytest.raises(ConvergeError, match="no werf secret key found"):
            find_secret_key(str(project), environ=environ)
    else:
        found = find_secret_key(str(project), environ=environ)
        assert found.material == bytes.fromhex(response["key"])
