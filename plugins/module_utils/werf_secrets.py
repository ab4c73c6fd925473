# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""werf secret values: the secret key lookup and werf's encryption of values files.

werf encrypts each scalar of a values file on its own. A ciphertext is hex text of: a 2-byte little-endian
format number (always 16, so every ciphertext starts with ``1000``), a 16-byte IV, then the AES-CBC
ciphertext of the value's text with PKCS#7 padding. The key is 16, 24 or 32 bytes written as hex
(AES-128/192/256). Mapping keys stay in clear text, null values stay null, an empty string stays empty,
and every decrypted value is a string, as in werf.

CBC has no integrity check, so a wrong key is recognised by the padding and by the value not being UTF-8
text; werf itself may accept a wrong key and return garbage, here that is an error.
"""

from __future__ import annotations

import binascii
import dataclasses
import decimal
import math
import os
from pathlib import Path

try:
    import yaml
except ImportError:  # reported by the module (requirements.check_libraries)
    yaml = None

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError as exc:
    CRYPTOGRAPHY_IMPORT_ERROR = exc
else:
    CRYPTOGRAPHY_IMPORT_ERROR = None

SECRET_KEY_ENV = "WERF_SECRET_KEY"
WERF_HOME_ENV = "WERF_HOME"
PROJECT_KEY_FILE = ".werf_secret_key"
GLOBAL_KEY_FILE = "global_secret_key"
CHART_SECRET_VALUES_FILE = "secret-values.yaml"
ANSIBLE_VAULT_HEADER = "$ANSIBLE_VAULT;"

KEY_SIZES = (16, 24, 32)
BLOCK_SIZE = 16
FORMAT_SIZE = 2
CBC_FORMAT = 16

_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"


class SecretValueError(ValueError):
    """A ciphertext that cannot be decrypted with the key. The message never holds the value."""


@dataclasses.dataclass(frozen=True)
class SecretKey:
    """An AES key and where it came from (``source`` is safe to show; the key never is)."""

    material: bytes = dataclasses.field(repr=False)
    source: str


# ---------------------------------------------------------------------------------------------------
# The key


def generate_secret_key():
    """A new key as werf's ``helm secret generate-secret-key`` makes it: 16 random bytes in hex."""
    return os.urandom(16).hex()


def parse_secret_key(text, source):
    """The key in ``text`` (hex, surrounding white space ignored); errors name ``source``, never the key."""
    try:
        material = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        raise ConvergeError(f"the werf secret key from {source} is not hex text; werf keys are 16, 24 or 32 "
                            "bytes in hex (`werf helm secret generate-secret-key` makes one)")
    if len(material) not in KEY_SIZES:
        raise ConvergeError(f"the werf secret key from {source} is {len(material)} bytes long; werf keys are "
                            "16, 24 or 32 bytes in hex (`werf helm secret generate-secret-key` makes one)")
    return SecretKey(material, source)


def werf_home_dir(environ=None, user_home=None):
    """werf's home directory: ``$WERF_HOME``, else ``~/.werf``."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(WERF_HOME_ENV) or Path(user_home or Path.home(), ".werf"))


def secret_key_files(project_dir, environ=None, user_home=None):
    """The key files werf reads, in order: the project's ``.werf_secret_key``, then werf home's
    ``global_secret_key``."""
    return [Path(os.path.abspath(project_dir), PROJECT_KEY_FILE),
            werf_home_dir(environ, user_home) / GLOBAL_KEY_FILE]


def find_secret_key(project_dir, *, explicit=None, environ=None, user_home=None):
    """The secret key, looked up as werf does: ``explicit`` (the module's ``secret_key`` option), then
    ``$WERF_SECRET_KEY``, then the first key file of :func:`secret_key_files` that exists."""
    environ = os.environ if environ is None else environ
    if explicit:
        return parse_secret_key(explicit, "the secret_key option")
    if environ.get(SECRET_KEY_ENV):
        return parse_secret_key(environ[SECRET_KEY_ENV], f"${SECRET_KEY_ENV}")
    files = secret_key_files(project_dir, environ, user_home)
    for path in files:
        if os.path.lexists(path):
            return _read_key_file(path)
    places = ", ".join(["the secret_key option", f"${SECRET_KEY_ENV}"] + [str(path) for path in files])
    raise ConvergeError(f"no werf secret key found (looked in: {places})")


def _read_key_file(path):
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvergeError(f"cannot read the werf secret key file {path}: {exc}", file=str(path))
    if not text.strip():
        raise ConvergeError(f"the werf secret key file {path} is empty", file=str(path))
    return parse_secret_key(text, str(path))


# ---------------------------------------------------------------------------------------------------
# One value


def _cipher(key, iv):
    if CRYPTOGRAPHY_IMPORT_ERROR:
        raise ConvergeError(f"the Python package cryptography is required for werf secrets: "
                            f"{CRYPTOGRAPHY_IMPORT_ERROR}")
    return Cipher(algorithms.AES(key.material), modes.CBC(iv))


def encrypt_value(key, plaintext):
    """werf's ciphertext of ``plaintext`` (a string) with a fresh random IV."""
    data = plaintext.encode()
    padding = BLOCK_SIZE - len(data) % BLOCK_SIZE
    iv = os.urandom(BLOCK_SIZE)
    encryptor = _cipher(key, iv).encryptor()
    body = encryptor.update(data + bytes([padding]) * padding) + encryptor.finalize()
    return (CBC_FORMAT.to_bytes(FORMAT_SIZE, "little") + iv + body).hex()


def decrypt_value(key, ciphertext):
    """The text werf encrypted into ``ciphertext``; an empty ciphertext is the empty string, as in werf.
    Raises :class:`SecretValueError`."""
    if ciphertext == "":
        return ""
    try:
        data = binascii.unhexlify(ciphertext)
    except (binascii.Error, ValueError):
        raise SecretValueError("it is not a werf ciphertext (not hex text)")
    if len(data) < FORMAT_SIZE + 2 * BLOCK_SIZE or (len(data) - FORMAT_SIZE) % BLOCK_SIZE:
        raise SecretValueError(f"it is not a werf ciphertext ({len(ciphertext)} hex digits)")
    version = int.from_bytes(data[:FORMAT_SIZE], "little")
    if version != CBC_FORMAT:
        raise SecretValueError(f"its format {version} is not werf's AES-CBC format {CBC_FORMAT} "
                               "(a ciphertext starts with 1000)")
    iv, body = data[FORMAT_SIZE:FORMAT_SIZE + BLOCK_SIZE], data[FORMAT_SIZE + BLOCK_SIZE:]
    decryptor = _cipher(key, iv).decryptor()
    padded = decryptor.update(body) + decryptor.finalize()
    padding = padded[-1]
    if not 1 <= padding <= BLOCK_SIZE or padded[-padding:] != bytes([padding]) * padding:
        raise SecretValueError("the key is wrong or the ciphertext is damaged")
    try:
        return padded[:-padding].decode()
    except UnicodeDecodeError:
        raise SecretValueError("the key is wrong or the ciphertext is damaged")


# ---------------------------------------------------------------------------------------------------
# Values files


def is_ansible_vault(text):
    """Whether ``text`` is an Ansible Vault file (which only the controller can decrypt)."""
    return text.lstrip().startswith(ANSIBLE_VAULT_HEADER)


def decrypt_values_text(key, text, source):
    """The values of a werf secret values file, decrypted: a dict whose leaves are strings or None.

    Errors name ``source`` and the path of the value at fault, never a value.
    """
    if is_ansible_vault(text):
        raise ConvergeError(f"secret values file {source} is encrypted with Ansible Vault, not werf: decrypt "
                            "it on the controller (the converge role's converge_vault_values_files, or the "
                            "ansible.builtin.unvault lookup) and pass its values in set", file=source)
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConvergeError(f"secret values file {source} is not valid YAML: {exc}", file=source)
    if document is None:
        return {}
    if not isinstance(document, yaml.MappingNode):
        raise ConvergeError(f"secret values file {source} must hold a mapping", file=source)
    _decrypt_node(key, document, source, "", set())
    return yaml.SafeLoader("").construct_document(document)


def _decrypt_node(key, node, source, path, seen):
    if id(node) in seen:  # an alias: its anchor is already decrypted
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            _decrypt_node(key, value_node, source, _child_path(path, key_node.value), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _decrypt_node(key, item, source, f"{path}[{index}]", seen)
    elif node.tag == _STR_TAG:
        node.value = _decrypt_scalar(key, node.value, source, path)
    elif node.tag != _NULL_TAG:
        raise ConvergeError(f"secret values file {source}: the value of {path or 'the document'} is a "
                            f"{node.tag.rsplit(':', 1)[-1]}, not an encrypted string", file=source, value=path)


def _decrypt_scalar(key, ciphertext, source, path):
    try:
        return decrypt_value(key, ciphertext)
    except SecretValueError as exc:
        raise ConvergeError(f"secret values file {source}: cannot decrypt the value of {path} with the werf "
                            f"secret key from {key.source}: {exc}", file=source, value=path) from None


def _child_path(path, name):
    name = str(name).replace(".", "\\.")
    return f"{path}.{name}" if path else name


# ---------------------------------------------------------------------------------------------------
# Keeping decrypted values out of messages

MASK = "***"
MIN_MASKED_LENGTH = 4  # as werf: shorter values would mask ordinary words


def secret_strings(trees):
    """The strings to hide for decrypted values ``trees``: each value and each of its lines, stripped,
    when at least 4 characters long, as werf masks its logs."""
    found = set()
    pending = list(trees)
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            found.update(text for text in [item] + [line.strip() for line in item.splitlines()]
                         if len(text) >= MIN_MASKED_LENGTH)
    return found


def mask_secrets(text, secrets):
    """``text`` with every string of ``secrets`` replaced by ``***`` (longest first)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def masked_error(error, secrets):
    """``error`` (a ConvergeError) with ``secrets`` hidden in its message and string details."""
    if not secrets:
        return error
    details = {name: mask_secrets(value, secrets) if isinstance(value, str) else value
               for name, value in error.details.items()}
    return ConvergeError(mask_secrets(str(error), secrets), **details)


# ---------------------------------------------------------------------------------------------------
# Encrypting, for tests and for users making secret values files


def encrypt_values(key, data):
    """``data`` (nested dicts and lists) with every scalar encrypted as werf does: the value's text as Go
    prints it (``true``, ``5``, ``1e+06``), nulls kept."""
    if isinstance(data, dict):
        return {name: encrypt_values(key, value) for name, value in data.items()}
    if isinstance(data, list):
        return [encrypt_values(key, item) for item in data]
    if data is None:
        return None
    return encrypt_value(key, go_text(data))


def go_text(value):
    """A YAML scalar's text as Go's ``fmt.Sprintf("%v")`` prints it, which werf encrypts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float_text(value)
    if isinstance(value, (int, str)):
        return str(value)
    raise TypeError(f"cannot encrypt a {type(value).__name__} value as werf does")


def _go_float_text(value):
    """Go's ``%v`` of a float64: the shortest digits, in exponent form below 1e-4 and from 1e+06 on."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digits))
    point = len(digits) + exponent if value else 1  # digits before the decimal point
    scientific = point - 1
    text = "-" if sign else ""
    if scientific < -4 or scientific >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{text}{mantissa}e{'-' if scientific < 0 else '+'}{abs(scientific):02d}"
    if point <= 0:
        return f"{text}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{text}{digits}{'0' * (point - len(digits))}"
    return f"{text}{digits[:point]}.{digits[point:]}"
