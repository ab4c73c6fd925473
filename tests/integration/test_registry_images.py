# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""registry_images against the real local registries: the plain one and the TLS one with htpasswd."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import uuid

import pytest
import requests

from conftest import ansible_module
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.registry import (
    RegistryClient,
    resolve_credentials,
)

WRONG_PASSWORD = "wrong-" + uuid.uuid4().hex


def _context(dockerfile):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _push(docker_client, image, registry, repository, tag, auth_config=None):
    """Tag and push; return the manifest digest the registry reported."""
    image.tag(f"{registry}/{repository}", tag)
    digest = None
    for line in docker_client.images.push(f"{registry}/{repository}", tag=tag, stream=True, decode=True,
                                          auth_config=auth_config):
        assert "error" not in line, line
        digest = line.get("aux", {}).get("Digest", digest)
    assert digest, "the push reported no digest"
    return digest


@pytest.fixture(scope="module")
def pushed(docker_client, localenv, registry, registry_tls):
    """One small image pushed to both registries under a unique repository; deleted afterwards."""
    repository = f"berth-test/registry-images-{uuid.uuid4().hex[:10]}"
    tag = "present"
    dockerfile = f"FROM {localenv.base_image}\nRUN echo {uuid.uuid4().hex} > /marker\n"
    image = docker_client.images.build(fileobj=_context(dockerfile), custom_context=True, rm=True, forcerm=True)[0]
    auth = {"username": localenv.registry_tls_username, "password": localenv.registry_tls_password}
    digests = {registry: _push(docker_client, image, registry, repository, tag),
               registry_tls: _push(docker_client, image, registry_tls, repository, tag, auth)}
    yield {"repository": repository, "tag": tag, "digests": digests}
    requests.delete(f"http://{registry}/v2/{repository}/manifests/{digests[registry]}", timeout=10)
    requests.delete(f"https://{registry_tls}/v2/{repository}/manifests/{digests[registry_tls]}", timeout=10,
                    verify=localenv.ca_cert, auth=(auth["username"], auth["password"]))
    docker_client.images.remove(image.id, force=True)


def _refs(host, pushed):
    present = f"{host}/{pushed['repository']}:{pushed['tag']}"
    return present, [f"{host}/{pushed['repository']}:missing-{i}" for i in range(3)] + [f"{host}/berth-test/no-such-repo-{uuid.uuid4().hex[:8]}:x"]


def test_lookup_on_both_registries(localenv, registry, registry_tls, pushed):
    plain_present, plain_missing = _refs(registry, pushed)
    tls_present, tls_missing = _refs(registry_tls, pushed)
    digest_ref = f"{registry_tls}/{pushed['repository']}@{pushed['digests'][registry_tls]}"

    def credentials_for(host):
        return resolve_credentials(host, localenv.registry_tls_username, localenv.registry_tls_password)

    refs = [plain_missing[0], plain_present, tls_missing[0], tls_present, digest_ref] + plain_missing[1:] + tls_missing[1:]
    with RegistryClient(credentials_for=credentials_for, ca_cert=localenv.ca_cert, concurrency=4) as client:
        present, missing = client.lookup(refs)
    assert present == {plain_present: pushed["digests"][registry], tls_present: pushed["digests"][registry_tls],
                       digest_ref: pushed["digests"][registry_tls]}
    assert missing == [plain_missing[0], tls_missing[0]] + plain_missing[1:] + tls_missing[1:]


def test_tls_registry_without_its_ca_is_a_clear_tls_error(localenv, registry_tls, pushed):
    ref = _refs(registry_tls, pushed)[0]
    with RegistryClient(credentials_for=lambda host: None) as client:
        with pytest.raises(ConvergeError) as info:
            client.lookup([ref])
    message = str(info.value)
    assert ref in message and "TLS error" in message and "ca_cert" in message and "CERTIFICATE_VERIFY_FAILED" in message


def test_tls_registry_anonymously_says_credentials_are_needed(localenv, registry_tls, pushed):
    ref = _refs(registry_tls, pushed)[0]
    with RegistryClient(credentials_for=lambda host: None, ca_cert=localenv.ca_cert) as client:
        with pytest.raises(ConvergeError, match="requires credentials"):
            client.lookup([ref])


def test_module_on_both_registries(localenv, registry, registry_tls, pushed):
    plain_present, plain_missing = _refs(registry, pushed)
    tls_present, tls_missing = _refs(registry_tls, pushed)
    images = [{"name": "app", "ref": tls_present, "digest": "d1"}, {"name": "gone", "ref": tls_missing[0]}]
    proc = ansible_module("registry_images", {
        "refs": [plain_present, plain_missing[0]] + images,
        "registry_username": localenv.registry_tls_username,
        "registry_password": localenv.registry_tls_password,
        "ca_cert": localenv.ca_cert,
        "concurrency": 2,
    })
    assert proc.rc == 0, proc.output
    result = proc.result
    assert result["changed"] is False
    assert result["present"] == {plain_present: pushed["digests"][registry], tls_present: pushed["digests"][registry_tls]}
    assert result["missing"] == [plain_missing[0], tls_missing[0]]
    assert result["images"] == [
        {"ref": plain_present, "present": True, "manifest_digest": pushed["digests"][registry]},
        {"ref": plain_missing[0], "present": False, "manifest_digest": None},
        {"name": "app", "ref": tls_present, "digest": "d1", "present": True,
         "manifest_digest": pushed["digests"][registry_tls]},
        {"name": "gone", "ref": tls_missing[0], "present": False, "manifest_digest": None},
    ]
    assert localenv.registry_tls_password not in proc.output


def test_module_takes_credentials_from_a_docker_config(localenv, registry_tls, pushed, tmp_path):
    tls_present, tls_missing = _refs(registry_tls, pushed)
    pair = f"{localenv.registry_tls_username}:{localenv.registry_tls_password}".encode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {f"https://{registry_tls}": {"auth": base64.b64encode(pair).decode()}}}))
    args = {"refs": [tls_present, tls_missing[0]], "ca_cert": localenv.ca_cert}
    proc = ansible_module("registry_images", args, env={"DOCKER_CONFIG_FILE": str(config)})
    assert proc.rc == 0, proc.output
    result = proc.result
    assert result["present"] == {tls_present: pushed["digests"][registry_tls]}
    assert result["missing"] == [tls_missing[0]]


def test_module_wrong_password_fails_clearly_and_never_shows_it(localenv, registry_tls, pushed):
    tls_present = _refs(registry_tls, pushed)[0]
    args = {"refs": [tls_present], "registry_username": localenv.registry_tls_username,
            "registry_password": WRONG_PASSWORD, "ca_cert": localenv.ca_cert}
    proc = ansible_module("registry_images", args, verbosity=4)
    output = proc.output
    assert proc.rc != 0
    assert f"registry {registry_tls} refused the credentials (user '{localenv.registry_tls_username}')" in output
    assert "HTTP 401" in output and tls_present in output
    assert WRONG_PASSWORD not in output
    assert localenv.registry_tls_password not in output


def test_module_rejects_an_item_without_ref(registry):
    proc = ansible_module("registry_images", {"refs": [f"{registry}/x:y", {"name": "backend", "ref": None}]})
    assert proc.rc != 0
    assert "refs[1] (image 'backend') has no 'ref'" in proc.result["msg"]
