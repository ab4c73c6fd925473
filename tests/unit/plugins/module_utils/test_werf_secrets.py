# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of werf_secrets.py: the cipher, values files, key lookup, masking. The fixed ciphertexts
were made by werf's own code (hack/conformance/werfsecret); test_werf_secrets_conformance.py checks
against that code live."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.berth.converge.plugins.module_utils import werf_secrets
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.werf_secrets import (
    SecretValueError,
    decrypt_value,
    decrypt_values_text,
    encrypt_value,
    encrypt_values,
    find_secret_key,
    go_text,
    mask_secrets,
    masked_error,
    parse_secret_key,
    secret_strings,
)

WERF_KEY = "000102030405060708090a0b0c0d0e0f"
OTHER_KEY = "f0e0d0c0b0a090807060504030201000"
# Made by werf's AesEncoder.Encrypt / YamlEncoder.EncryptYamlData with WERF_KEY.
WERF_PASSWORD = "1000763bcdb61407bfe2e7c341b30c6b3392816e44899c563ba2d2368a2ea3afbdcb"  # s3cr3t-passw0rd
WERF_EMPTY = "100058d16941c0811988383ad58c68b883956109fc1bd0d817b4f6339853778f627d"  # ""
WERF_VALUES_FILE = """\
db:
  password: 1000a6eb2d783e903f2c84c7f1dab9219970ecfce64b971f58ac6e383a4bf3e05ba3
  port: 100067d5fa7fc2f31f0e75551e99bdf7cedce4255e270d0fb1cea377c0fa035711e3
list: [1000de9e485d7e6c7039fe802b9e89f82382e247f574e58ba3f6ea1e38b0256414b2, null]
"""  # db: {password: hunter2, port: 5432}, list: [a, null]


@pytest.fixture
def key():
    return parse_secret_key(WERF_KEY, "test")


# --- one value ------------------------------------------------------------------------------------


def test_werf_ciphertexts_decrypt(key):
    assert decrypt_value(key, WERF_PASSWORD) == "s3cr3t-passw0rd"
    assert decrypt_value(key, WERF_EMPTY) == ""
    assert decrypt_value(key, "") == ""  # werf passes an empty ciphertext through


@pytest.mark.parametrize("plaintext", ["", "a", "x" * 15, "x" * 16, "x" * 17, "пароль 🔐", "a\nb\n", "z" * 5000])
def test_round_trip_and_format(key, plaintext):
    ciphertext = encrypt_value(key, plaintext)
    assert ciphertext.startswith("1000")
    assert len(ciphertext) == 2 * (2 + 16 + (len(plaintext.encode()) // 16 + 1) * 16)
    assert decrypt_value(key, ciphertext) == plaintext


def test_each_encryption_uses_a_fresh_iv(key):
    assert encrypt_value(key, "same") != encrypt_value(key, "same")


@pytest.mark.parametrize("key_hex", [WERF_KEY, "00" * 24, "11" * 32])
def test_all_aes_key_sizes_work(key_hex):
    key = parse_secret_key(key_hex, "test")
    assert decrypt_value(key, encrypt_value(key, "value")) == "value"


def test_a_wrong_key_is_an_error_never_garbage():
    wrong = parse_secret_key(OTHER_KEY, "test")
    right = parse_secret_key(WERF_KEY, "test")
    for index in range(300):
        ciphertext = encrypt_value(right, f"value number {index}")
        with pytest.raises(SecretValueError, match="key is wrong"):
            decrypt_value(wrong, ciphertext)


@pytest.mark.parametrize("ciphertext, reason", [
    ("zz", "not hex"),
    ("100", "not hex"),
    ("1000", "hex digits"),
    (WERF_PASSWORD[:-2], "hex digits"),
    ("0200" + WERF_PASSWORD[4:], "format 2"),
])
def test_malformed_ciphertexts_are_errors(key, ciphertext, reason):
    with pytest.raises(SecretValueError, match=reason):
        decrypt_value(key, ciphertext)


# --- values files ---------------------------------------------------------------------------------


def test_werf_values_file_decrypts_to_strings(key):
    assert decrypt_values_text(key, WERF_VALUES_FILE, "secret.yaml") == {
        "db": {"password": "hunter2", "port": "5432"}, "list": ["a", None]}


def test_values_file_keeps_keys_nulls_aliases_and_empty_documents(key):
    text = yaml.safe_dump({"base": {"token": encrypt_value(key, "t0ken")}, "none": None})
    text += "copy: &anchor\n  user: " + encrypt_value(key, "admin") + "\nagain: *anchor\n"
    data = decrypt_values_text(key, text, "s.yaml")
    assert data == {"base": {"token": "t0ken"}, "none": None, "copy": {"user": "admin"}, "again": {"user": "admin"}}
    assert decrypt_values_text(key, "", "s.yaml") == {}
    assert decrypt_values_text(key, "# only a comment\n", "s.yaml") == {}


def test_encrypt_values_round_trip_types_become_werfs_text(key):
    data = {"a": {"b": [1, True, 1.5, 1e6, None, "x"]}, "empty": ""}
    encrypted = encrypt_values(key, data)
    assert encrypted["a"]["b"][4] is None
    text = yaml.safe_dump(encrypted)
    assert decrypt_values_text(key, text, "s.yaml") == {"a": {"b": ["1", "true", "1.5", "1e+06", None, "x"]},
                                                        "empty": ""}


def test_a_wrong_key_names_the_file_the_value_and_the_key_source_but_no_value(key):
    wrong = parse_secret_key(OTHER_KEY, "$WERF_SECRET_KEY")
    with pytest.raises(ConvergeError) as error:
        decrypt_values_text(wrong, WERF_VALUES_FILE, ".helm/secret-values.yaml")
    message = str(error.value)
    assert ".helm/secret-values.yaml" in message
    assert "db.password" in message
    assert "$WERF_SECRET_KEY" in message
    assert "hunter2" not in message and WERF_KEY not in message and OTHER_KEY not in message
    assert error.value.details == {"file": ".helm/secret-values.yaml", "value": "db.password"}


def test_the_path_of_a_bad_value_in_a_list_and_a_dotted_key(key):
    text = "a.b:\n  - " + encrypt_value(key, "ok") + "\n  - 1234abcd\n"
    with pytest.raises(ConvergeError, match=r"value of a\\.b\[1\].*not a werf ciphertext"):
        decrypt_values_text(key, text, "s.yaml")


@pytest.mark.parametrize("text, message", [
    ("port: 5432\n", r"s\.yaml: the value of port is a int, not an encrypted string"),
    ("on: true\n", "is a bool, not an encrypted string"),
    ("- a\n", "must hold a mapping"),
    ("a: [\n", "not valid YAML"),
    ("$ANSIBLE_VAULT;1.1;AES256\n6162\n", "encrypted with Ansible Vault"),
])
def test_values_files_that_are_not_werf_secrets_are_errors(key, text, message):
    with pytest.raises(ConvergeError, match=message):
        decrypt_values_text(key, text, "s.yaml")


@pytest.mark.parametrize("value, text", [
    (True, "true"), (False, "false"), (5, "5"), (-7, "-7"), ("x", "x"), (1.5, "1.5"), (1e6, "1e+06"),
    (123456.0, "123456"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"), (0.00001, "1e-05"),
    (-2.25e-7, "-2.25e-07"), (100.0, "100"), (0.0, "0"), (1e100, "1e+100"), (float("inf"), "+Inf"),
])
def test_go_text_prints_scalars_as_go(value, text):
    assert go_text(value) == text


# --- the key --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("xyz", "not hex text"),
    ("abc", "not hex text"),
    ("00" * 15, "15 bytes long"),
    ("00" * 20, "20 bytes long"),
    ("", "0 bytes long"),
])
def test_bad_keys_are_errors_that_do_not_show_the_key(text, message):
    with pytest.raises(ConvergeError, match=message) as error:
        parse_secret_key(text, "/p/.werf_secret_key")
    assert "/p/.werf_secret_key" in str(error.value)
    if text:
        assert text not in str(error.value)


def test_key_surrounding_white_space_is_ignored():
    assert parse_secret_key(f"  {WERF_KEY}\n", "x").material == bytes.fromhex(WERF_KEY)


def test_key_repr_hides_the_key():
    assert WERF_KEY not in repr(parse_secret_key(WERF_KEY, "x"))


@pytest.fixture
def places(tmp_path):
    project = tmp_path / "project"
    home = tmp_path / "home"
    (home / ".werf").mkdir(parents=True)
    project.mkdir()
    return project, home


def lookup(places, environ=None, explicit=None):
    project, home = places
    return find_secret_key(str(project), explicit=explicit, environ=environ or {}, user_home=str(home))


def test_key_lookup_order(places):
    project, home = places
    (home / ".werf" / "global_secret_key").write_text("22" * 16 + "\n")
    assert lookup(places).source == str(home / ".werf" / "global_secret_key")
    (project / ".werf_secret_key").write_text("11" * 16 + "\n")
    found = lookup(places)
    assert (found.material, found.source) == (bytes.fromhex("11" * 16), str(project / ".werf_secret_key"))
    found = lookup(places, environ={"WERF_SECRET_KEY": "33" * 16})
    assert (found.material, found.source) == (bytes.fromhex("33" * 16), "$WERF_SECRET_KEY")
    found = lookup(places, environ={"WERF_SECRET_KEY": "33" * 16}, explicit="44" * 16)
    assert (found.material, found.source) == (bytes.fromhex("44" * 16), "the secret_key option")


def test_an_empty_variable_is_skipped_and_werf_home_is_honoured(places, tmp_path):
    other_home = tmp_path / "werf-home"
    other_home.mkdir()
    (other_home / "global_secret_key").write_text("55" * 16)
    found = lookup(places, environ={"WERF_SECRET_KEY": "", "WERF_HOME": str(other_home)})
    assert found.source == str(other_home / "global_secret_key")


def test_no_key_lists_every_place_looked_in(places):
    project, home = places
    with pytest.raises(ConvergeError) as error:
        lookup(places)
    message = str(error.value)
    for place in ("secret_key option", "$WERF_SECRET_KEY", str(project / ".werf_secret_key"),
                  str(home / ".werf" / "global_secret_key")):
        assert place in message


def test_the_first_key_file_wins_even_when_empty(places):
    project, home = places
    (project / ".werf_secret_key").write_text("\n")
    (home / ".werf" / "global_secret_key").write_text("22" * 16)
    with pytest.raises(ConvergeError, match=r"\.werf_secret_key is empty"):
        lookup(places)


def test_a_bad_key_file_is_named(places):
    project = places[0]
    (project / ".werf_secret_key").write_text("not-a-key")
    with pytest.raises(ConvergeError, match=r"from .*\.werf_secret_key is not hex"):
        lookup(places)


def test_generated_keys_are_werfs_kind():
    key = werf_secrets.generate_secret_key()
    assert len(key) == 32 and parse_secret_key(key, "x").material == bytes.fromhex(key)
    assert werf_secrets.generate_secret_key() != key


# --- masking --------------------------------------------------------------------------------------


def test_secret_strings_are_values_and_their_lines_of_four_or_more_characters():
    found = secret_strings([{"a": "hunter2", "b": ["abc", None, "line one\n  second line  \nxy"]}])
    assert found == {"hunter2", "line one\n  second line  \nxy", "line one", "second line"}


def test_masked_errors_hide_secrets_in_message_and_details():
    error = ConvergeError("helm failed: hunter2 and hunter22", stderr="x hunter22 y", file="f", count=3)
    masked = masked_error(error, {"hunter2", "hunter22"})
    assert str(masked) == "helm failed: *** and ***"
    assert masked.details == {"stderr": "x *** y", "file": "f", "count": 3}
    assert masked_error(error, set()) is error
    assert mask_secrets("no secret here", {"hunter2"}) == "no secret here"
