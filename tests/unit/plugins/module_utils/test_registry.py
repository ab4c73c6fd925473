# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the registry client: references, credentials, and a fake registry on 127.0.0.1."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import ssl
import sys
import threading
from collections import namedtuple
from types import SimpleNamespace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from ansible_collections.berth.converge.plugins.module_utils import registry as registry_module
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.reference import Reference, parse_reference
from ansible_collections.berth.converge.plugins.module_utils.registry import (
    Credentials,
    RegistryClient,
    client_from_params,
    is_loopback,
    resolve_credentials,
)

USER = "alice"
PASSWORD = "pa55-w0rd-never-shown"
DIGEST = "sha256:" + "ab" * 32
Seen = namedtuple("Seen", "method path authorization")


# ---------------------------------------------------------------- references

@pytest.mark.parametrize("ref, expected", [
    ("busybox", Reference("docker.io", "library/busybox", "latest")),
    ("busybox:1.36", Reference("docker.io", "library/busybox", "1.36")),
    ("bitnami/redis", Reference("docker.io", "bitnami/redis", "latest")),
    ("docker.io/busybox", Reference("docker.io", "library/busybox", "latest")),
    ("index.docker.io/library/busybox:1", Reference("docker.io", "library/busybox", "1")),
    ("localhost/app", Reference("localhost", "app", "latest")),
    ("localhost:5000/app:v1", Reference("localhost:5000", "app", "v1")),
    ("127.0.0.1:5000/shop/backend:0123abcd", Reference("127.0.0.1:5000", "shop/backend", "0123abcd")),
    ("[::1]:5000/shop/backend:x", Reference("[::1]:5000", "shop/backend", "x")),
    ("registry.example.com/a/b/c:t_1.2-3", Reference("registry.example.com", "a/b/c", "t_1.2-3")),
    (f"registry.example.com/shop@{DIGEST}", Reference("registry.example.com", "shop", None, DIGEST)),
    (f"registry.example.com/shop:v1@{DIGEST}", Reference("registry.example.com", "shop", "v1", DIGEST)),
    ("Registry.Example.com/shop", Reference("Registry.Example.com", "shop", "latest")),
    ("my-reg/shop", Reference("docker.io", "my-reg/shop", "latest")),
    ("a__b_c-d/e---f.g", Reference("docker.io", "a__b_c-d/e---f.g", "latest")),
])
def test_references_parse_as_docker_does(ref, expected):
    assert parse_reference(ref) == expected


def test_reference_target_prefers_digest_and_prints_canonically():
    ref = parse_reference(f"registry.example.com/shop:v1@{DIGEST}")
    assert ref.target == DIGEST
    assert str(ref) == f"registry.example.com/shop:v1@{DIGEST}"
    assert parse_reference("busybox").target == "latest"
    assert str(parse_reference("busybox")) == "docker.io/library/busybox:latest"
    assert parse_reference("busybox").api_host == "registry-1.docker.io"
    assert parse_reference("localhost:5000/app").api_host == "localhost:5000"


@pytest.mark.parametrize("ref, reason", [
    ("", "non-empty"),
    ("Shop/Backend", "repository 'Backend'"),
    ("registry.example.com/Shop", "repository 'Shop'"),
    ("registry.example.com/shop:", "bad tag ''"),
    ("registry.example.com/shop:-x", "bad tag '-x'"),
    ("registry.example.com/shop:" + "t" * 129, "bad tag"),
    ("registry.example.com/shop@sha256:xyz", "bad digest"),
    ("registry.example.com/shop@", "bad digest"),
    ("registry.example.com//shop", "repository '/shop'"),
    ("registry.example.com/shop/", "repository 'shop/'"),
    ("reg_istry.example.com/shop", "registry host 'reg_istry.example.com'"),
    ("registry.example.com:port/shop", "registry host"),
    ("a:b:c", "bad tag 'b:c'"),
    ("registry.example.com/" + "a" * 256, "longer than 255"),
])
def test_invalid_references_are_named_in_the_error(ref, reason):
    with pytest.raises(ConvergeError) as info:
        parse_reference(ref)
    assert f"invalid image reference {ref!r}" in str(info.value)
    assert reason in str(info.value)


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1:5000", True), ("127.3.2.1", True), ("localhost", True), ("localhost:5000", True),
    ("[::1]:5000", True), ("[::1]", True), ("10.0.0.1:5000", False), ("registry.example.com", False),
    ("localhost.example.com:5000", False), ("[::2]:5000", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


# ---------------------------------------------------------------- credentials

def test_credentials_never_print_secrets():
    for creds in (Credentials(USER, PASSWORD), Credentials(identity_token=PASSWORD)):
        assert PASSWORD not in repr(creds)
        assert PASSWORD not in str(creds)
        assert PASSWORD not in f"{creds}"
    assert USER in repr(Credentials(USER, PASSWORD))


def test_docker_auth_config():
    assert Credentials(USER, PASSWORD).docker_auth_config() == {"username": USER, "password": PASSWORD}
    assert Credentials(identity_token="tok").docker_auth_config() == {"identitytoken": "tok"}


def _auth(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    """Writes a config.json and returns its path; HOME and DOCKER_CONFIG point elsewhere."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)

    def write(config, name="config.json"):
        path = tmp_path / name
        path.write_text(json.dumps(config))
        return str(path)

    return write


def test_explicit_credentials_win_for_every_registry(docker_config):
    path = docker_config({"auths": {"registry.example.com": {"auth": _auth("other", "x")}}})
    for host in ("registry.example.com", "docker.io", "127.0.0.1:5000"):
        assert resolve_credentials(host, USER, PASSWORD, path) == Credentials(USER, PASSWORD)


@pytest.mark.parametrize("username, password", [(USER, None), (None, PASSWORD), (USER, "")])
def test_half_of_the_explicit_credentials_is_an_error(username, password):
    with pytest.raises(ConvergeError) as info:
        resolve_credentials("registry.example.com", username, password)
    assert "registry_username and registry_password" in str(info.value)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize("key", [
    "registry.example.com:5000", "https://registry.example.com:5000", "https://registry.example.com:5000/v1/",
    "http://registry.example.com:5000/v2/", "REGISTRY.example.com:5000",
])
def test_auths_keys_in_any_form(docker_config, key):
    path = docker_config({"auths": {"other.example.com": {"auth": _auth("no", "no")}, key: {"auth": _auth(USER, PASSWORD)}}})
    assert resolve_credentials("registry.example.com:5000", docker_config=path) == Credentials(USER, PASSWORD)


def test_auths_entry_forms(docker_config):
    path = docker_config({"auths": {
        "a.example.com": {"auth": _auth(USER, "pass:with:colons")},
        "b.example.com": {"username": USER, "password": PASSWORD},
        "c.example.com": {"identitytoken": "refresh-token", "auth": _auth(USER, "")},
        "d.example.com": {},
        "https://index.docker.io/v1/": {"auth": _auth("hubuser", "hubpass")},
    }})
    assert resolve_credentials("a.example.com", docker_config=path) == Credentials(USER, "pass:with:colons")
    assert resolve_credentials("b.example.com", docker_config=path) == Credentials(USER, PASSWORD)
    assert resolve_credentials("c.example.com", docker_config=path) == Credentials(USER, identity_token="refresh-token")
    assert resolve_credentials("d.example.com", docker_config=path) is None
    assert resolve_credentials("e.example.com", docker_config=path) is None
    assert resolve_credentials("docker.io", docker_config=path) == Credentials("hubuser", "hubpass")


def test_bad_auth_value_is_named_without_its_content(docker_config):
    path = docker_config({"auths": {"a.example.com": {"auth": "bm8tY29sb24="}}})  # "no-colon"
    with pytest.raises(ConvergeError) as info:
        resolve_credentials("a.example.com", docker_config=path)
    assert path in str(info.value) and "a.example.com" in str(info.value)
    assert "bm8tY29sb24=" not in str(info.value)


def test_config_path_order(tmp_path, monkeypatch):
    home_config = tmp_path / "home" / ".docker" / "config.json"
    home_config.parent.mkdir(parents=True)
    home_config.write_text(json.dumps({"auths": {"r.example.com": {"auth": _auth("home", "p")}}}))
    env_dir = tmp_path / "envdir"
    env_dir.mkdir()
    (env_dir / "config.json").write_text(json.dumps({"auths": {"r.example.com": {"auth": _auth("env", "p")}}}))
    explicit = tmp_path / "explicit.json"
    explicit.write_text(json.dumps({"auths": {"r.example.com": {"auth": _auth("explicit", "p")}}}))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    assert resolve_credentials("r.example.com").username == "home"
    monkeypatch.setenv("DOCKER_CONFIG", str(env_dir))
    assert resolve_credentials("r.example.com").username == "env"
    assert resolve_credentials("r.example.com", docker_config=str(explicit)).username == "explicit"


def test_missing_default_config_means_no_credentials_but_a_missing_named_one_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    assert resolve_credentials("r.example.com") is None
    with pytest.raises(ConvergeError) as info:
        resolve_credentials("r.example.com", docker_config=str(tmp_path / "nope.json"))
    assert "nope.json" in str(info.value) and "does not exist" in str(info.value)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_unreadable_config_is_named(docker_config, tmp_path, content):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConvergeError) as info:
        resolve_credentials("r.example.com", docker_config=str(path))
    assert str(path) in str(info.value)


@pytest.fixture
def credential_helper(tmp_path, monkeypatch):
    """Installs docker-credential-NAME programs on PATH that answer from a dict; returns the servers asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "asked.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def install(name, answers, fail_with=None):
        script = bin_dir / f"docker-credential-{name}"
        script.write_text(f"""#!{sys.executable}
import json, sys
assert sys.argv[1:] == ["get"], sys.argv
server = sys.stdin.read()
open({str(asked)!r}, "a").write({name!r} + " " + server + "\\n")
fail_with = {fail_with!r}
if fail_with:
    print(fail_with)
    sys.exit(1)
answers = {answers!r}
if server not in answers:
    print("credentials not found in native keychain")
    sys.exit(1)
user, secret = answers[server]
print(json.dumps({{"ServerURL": server, "Username": user, "Secret": secret}}))
""")
        script.chmod(0o755)

    def servers():
        return asked.read_text().splitlines() if asked.exists() else []

    install.asked = servers
    return install


def test_cred_helpers_answer_per_host(docker_config, credential_helper):
    credential_helper("fake", {"registry.example.com": (USER, PASSWORD), "https://index.docker.io/v1/": ("hub", "x"),
                               "tok.example.com": ("<token>", "identity")})
    path = docker_config({
        "credHelpers": {"registry.example.com": "fake", "docker.io": "fake", "tok.example.com": "fake",
                        "none.example.com": "fake"},
        "auths": {"registry.example.com": {"auth": _auth("from-auths", "x")},
                  "none.example.com": {"auth": _auth("from-auths", "x")}},
    })
    assert resolve_credentials("registry.example.com", docker_config=path) == Credentials(USER, PASSWORD)
    assert resolve_credentials("docker.io", docker_config=path) == Credentials("hub", "x")
    assert resolve_credentials("tok.example.com", docker_config=path) == Credentials(identity_token="identity")
    # "credentials not found" from the helper: the next source answers.
    assert resolve_credentials("none.example.com", docker_config=path).username == "from-auths"
    assert credential_helper.asked() == ["fake registry.example.com", "fake https://index.docker.io/v1/",
                                         "fake tok.example.com", "fake none.example.com"]


def test_creds_store_comes_after_auths(docker_config, credential_helper):
    credential_helper("store", {"a.example.com": ("store-user", "p"), "b.example.com": ("store-user", "p")})
    path = docker_config({"credsStore": "store",
                          "auths": {"a.example.com": {}, "b.example.com": {"auth": _auth("from-auths", "x")}}})
    assert resolve_credentials("a.example.com", docker_config=path).username == "store-user"
    assert resolve_credentials("b.example.com", docker_config=path).username == "from-auths"
    assert resolve_credentials("c.example.com", docker_config=path) is None


def test_missing_helper_program_means_no_credentials(docker_config, credential_helper):
    path = docker_config({"credHelpers": {"a.example.com": "not-installed"}, "credsStore": "not-installed-either",
                          "auths": {"b.example.com": {"auth": _auth("from-auths", "x")}}})
    assert resolve_credentials("a.example.com", docker_config=path) is None
    assert resolve_credentials("b.example.com", docker_config=path).username == "from-auths"


def test_failing_helper_is_a_clear_error(docker_config, credential_helper):
    credential_helper("broken", {}, fail_with="error getting credentials - err: exit status 1, out: `locked`")
    path = docker_config({"credHelpers": {"a.example.com": "broken"}})
    with pytest.raises(ConvergeError) as info:
        resolve_credentials("a.example.com", docker_config=path)
    assert "docker-credential-broken" in str(info.value) and "a.example.com" in str(info.value)
    assert "locked" in str(info.value)


# ---------------------------------------------------------------- fake registry

class FakeRegistry:
    """A registry on 127.0.0.1 speaking just enough of the distribution API; records what it was asked.

    auth: "anonymous", "basic" (USER/PASSWORD), or "bearer" (token service at /token; it wants USER/PASSWORD
    when require_login, and gives anonymous tokens otherwise).
    """

    def __init__(self, auth="anonymous", require_login=True, send_digest=True, tls=None, token_lifetime=None):
        self.auth = auth
        self.require_login = require_login
        self.send_digest = send_digest
        self.token_lifetime = token_lifetime
        self.manifests = {}
        self.requests = []
        self.token_requests = []
        self.token_forms = []
        self.not_http = 0
        self.fail_with = None
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        if tls:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add(self, repository, tag):
        body = json.dumps({"schemaVersion": 2, "repository": repository, "tag": tag}).encode()
        self.manifests[(repository, tag)] = body
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def manifest_heads(self):
        return [seen for seen in self.requests if seen.method == "HEAD"]

    def _record(self, store, item):
        with self._lock:
            store.append(item)

    def _challenge(self, scope=None):
        if self.auth == "basic":
            return 'Basic realm="fake"'
        extra = f',scope="{scope}"' if scope else ""
        return f'Bearer realm="{self.scheme}://{self.host}/token",service="fake-registry"{extra}'

    def _authorized(self, header, scope):
        if self.auth == "basic":
            return header == "Basic " + _auth(USER, PASSWORD)
        if self.auth == "bearer":
            return scope is not None and header == f"Bearer token-for-{scope}"
        return True

    def _token(self, query, header):
        scope = query.get("scope", [""])[0]
        self._record(self.token_requests, scope)
        refreshing = query.get("grant_type") == ["refresh_token"] and query.get("refresh_token") == ["refresh-me"]
        if self.require_login and header != "Basic " + _auth(USER, PASSWORD) and not refreshing:
            return 401, {}, b'{"errors": [{"code": "UNAUTHORIZED"}]}'
        body = {"token": f"token-for-{scope}"}
        if self.token_lifetime is not None:
            body["expires_in"] = self.token_lifetime
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def answer(self, method, path, query, header):
        """(status, headers, body) for one request."""
        if path == "/token":
            return self._token(query, header)
        if path == "/v2/":
            if self._authorized(header, None):
                return 200, {}, b"{}"
            return 401, {"WWW-Authenticate": self._challenge()}, b""
        parts = path[len("/v2/"):].split("/manifests/")
        repository, target = parts[0], parts[-1]
        scope = f"repository:{repository}:pull"
        if not self._authorized(header, scope):
            return 401, {"WWW-Authenticate": self._challenge(scope)}, b""
        if self.fail_with:
            return self.fail_with, {}, b""
        body = self.manifests.get((repository, target))
        if body is None:
            return 404, {}, b'{"errors": [{"code": "MANIFEST_UNKNOWN"}]}'
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        if self.send_digest:
            headers["Docker-Content-Digest"] = "sha256:" + hashlib.sha256(body).hexdigest()
        return 200, headers, body

    def _handler(self):
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self, send_body):
                url = urlsplit(self.path)
                header = self.headers.get("Authorization")
                registry._record(registry.requests, Seen(self.command, url.path, header))
                status, headers, body = registry.answer(self.command, url.path, parse_qs(url.query), header)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def do_GET(self):
                self._serve(True)

            def do_HEAD(self):
                self._serve(False)

            def do_POST(self):
                form = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                registry._record(registry.token_forms, parse_qs(form))
                self.path += "?" + form
                self._serve(True)

            def send_error(self, code, message=None, explain=None):
                # Requests that are not HTTP at all, such as a TLS handshake.
                with registry._lock:
                    registry.not_http += 1
                super().send_error(code, message, explain)

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def fake_registry():
    started = []

    def start(**kwargs):
        registry = FakeRegistry(**kwargs)
        started.append(registry)
        return registry

    yield start
    for registry in started:
        registry.stop()


def refs_of(registry, repository, tags):
    return [f"{registry.host}/{repository}:{tag}" for tag in tags]


def test_anonymous_lookup_keeps_order_and_finds_digests(fake_registry):
    reg = fake_registry()
    digests = {f"t{i}": reg.add("shop/backend", f"t{i}") for i in range(0, 40, 2)}
    refs = refs_of(reg, "shop/backend", [f"t{i}" for i in range(40)])
    with RegistryClient(concurrency=8, timeout=5) as client:
        present, missing = client.lookup(refs + refs[:3])
    assert present == {ref: digests[ref.rpartition(":")[2]] for ref in refs[0::2]}
    assert missing == refs[1::2]
    assert len(reg.manifest_heads()) == 40  # duplicates looked up once
    assert all(seen.authorization is None for seen in reg.requests)


def test_manifest_digest_by_tag_and_by_digest(fake_registry):
    reg = fake_registry()
    digest = reg.add("app", "v1")
    reg.manifests[("app", digest)] = reg.manifests[("app", "v1")]
    with RegistryClient(timeout=5) as client:
        assert client.manifest_digest(f"{reg.host}/app:v1") == digest
        assert client.manifest_digest(f"{reg.host}/app:v1@{digest}") == digest
        assert client.manifest_digest(f"{reg.host}/app:v2") is None
    heads = [seen.path for seen in reg.manifest_heads()]
    assert heads == ["/v2/app/manifests/v1", f"/v2/app/manifests/{digest}", "/v2/app/manifests/v2"]


def test_manifest_requests_accept_oci_and_docker_types(fake_registry, monkeypatch):
    reg = fake_registry()
    sent = []
    original = requests.Session.request

    def spy(self, method, url, **kwargs):
        sent.append((method, kwargs.get("headers") or {}))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    with RegistryClient(timeout=5) as client:
        client.manifest_digest(f"{reg.host}/app:v1")
    accept = next(headers["Accept"] for method, headers in sent if method == "HEAD")
    for media_type in ("application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                       "application/vnd.docker.distribution.manifest.list.v2+json",
                       "application/vnd.docker.distribution.manifest.v2+json"):
        assert media_type in accept


def test_digest_comes_from_the_body_when_the_header_is_missing(fake_registry):
    reg = fake_registry(send_digest=False)
    digest = reg.add("app", "v1")
    with RegistryClient(timeout=5) as client:
        assert client.manifest_digest(f"{reg.host}/app:v1") == digest
    assert [seen.method for seen in reg.requests if "manifests" in seen.path] == ["HEAD", "GET"]


def test_basic_auth(fake_registry):
    reg = fake_registry(auth="basic")
    digest = reg.add("app", "v1")
    with RegistryClient(credentials_for=lambda host: Credentials(USER, PASSWORD), timeout=5) as client:
        present, missing = client.lookup([f"{reg.host}/app:v1", f"{reg.host}/app:v2"])
    assert present == {f"{reg.host}/app:v1": digest}
    assert missing == [f"{reg.host}/app:v2"]
    assert {seen.authorization for seen in reg.manifest_heads()} == {"Basic " + _auth(USER, PASSWORD)}


def test_credentials_are_asked_for_once_per_registry(fake_registry):
    regs = [fake_registry(auth="basic"), fake_registry(auth="basic")]
    asked = []

    def credentials_for(host):
        asked.append(host)
        return Credentials(USER, PASSWORD)

    refs = [ref for reg in regs for ref in refs_of(reg, "app", range(10))]
    with RegistryClient(credentials_for=credentials_for, timeout=5) as client:
        assert client.lookup(refs)[1] == refs
    assert sorted(asked) == sorted(reg.host for reg in regs)


def _error(client_or_fn, refs):
    with pytest.raises(ConvergeError) as info:
        client_or_fn.lookup(refs)
    return info.value


def _assert_secret_free(error):
    for text in (str(error), repr(error), repr(error.details), repr(error.__cause__), repr(error.__context__)):
        assert PASSWORD not in text
        assert _auth(USER, PASSWORD) not in text


def test_wrong_basic_password_is_a_clear_error_without_the_password(fake_registry):
    reg = fake_registry(auth="basic")
    ref = f"{reg.host}/app:v1"
    wrong = Credentials(USER, PASSWORD + "-wrong")
    with RegistryClient(credentials_for=lambda host: wrong, timeout=5) as client:
        error = _error(client, [ref])
    message = str(error)
    assert ref in message and reg.host in message and "401" in message
    assert "refused the credentials" in message and repr(USER) in message
    assert PASSWORD + "-wrong" not in message and PASSWORD + "-wrong" not in repr(error.details)
    assert error.details == {"image": ref, "registry": reg.host, "status": 401}


def test_anonymous_access_to_a_private_registry_says_credentials_are_needed(fake_registry):
    reg = fake_registry(auth="basic")
    with RegistryClient(timeout=5) as client:
        error = _error(client, [f"{reg.host}/app:v1"])
    assert "requires credentials" in str(error) and "HTTP 401" in str(error)


def test_bearer_token_is_fetched_once_for_many_refs_of_one_repository(fake_registry):
    reg = fake_registry(auth="bearer")
    digests = {reg.add("shop/backend", f"t{i}") for i in range(100)}
    refs = refs_of(reg, "shop/backend", [f"t{i}" for i in range(200)])
    other = refs_of(reg, "shop/frontend", ["x", "y"])
    with RegistryClient(credentials_for=lambda host: Credentials(USER, PASSWORD), timeout=5, concurrency=16) as client:
        present, missing = client.lookup(refs + other)
    assert set(present.values()) == digests and len(present) == 100
    assert missing == refs[100:] + other
    assert sorted(reg.token_requests) == ["repository:shop/backend:pull", "repository:shop/frontend:pull"]
    assert len(reg.manifest_heads()) == 202  # the token went with the first HEAD: no 401 round trips


def test_anonymous_bearer_tokens(fake_registry):
    reg = fake_registry(auth="bearer", require_login=False)
    digest = reg.add("library/app", "v1")
    with RegistryClient(timeout=5) as client:
        assert client.manifest_digest(f"{reg.host}/library/app:v1") == digest
    assert reg.token_requests == ["repository:library/app:pull"]


def test_identity_token_is_exchanged_with_oauth2_refresh_grant(fake_registry):
    reg = fake_registry(auth="bearer")
    digest = reg.add("app", "v1")
    with RegistryClient(credentials_for=lambda host: Credentials(identity_token="refresh-me"), timeout=5) as client:
        assert client.manifest_digest(f"{reg.host}/app:v1") == digest
    (form,) = reg.token_forms
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["refresh-me"]
    assert form["service"] == ["fake-registry"] and form["scope"] == ["repository:app:pull"]
    assert [seen.method for seen in reg.requests if seen.path == "/token"] == ["POST"]


def test_expired_tokens_are_fetched_again(fake_registry, monkeypatch):
    reg = fake_registry(auth="bearer", token_lifetime=60)
    clock = [1000.0]
    monkeypatch.setattr(registry_module.time, "monotonic", lambda: clock[0])
    with RegistryClient(credentials_for=lambda host: Credentials(USER, PASSWORD), timeout=5) as client:
        client.manifest_digest(f"{reg.host}/app:v1")
        clock[0] += 50
        client.manifest_digest(f"{reg.host}/app:v1")
        assert len(reg.token_requests) == 1
        clock[0] += 10
        client.manifest_digest(f"{reg.host}/app:v1")
    assert len(reg.token_requests) == 2


def test_token_service_refusing_credentials_is_a_clear_error(fake_registry):
    reg = fake_registry(auth="bearer")
    wrong = Credentials(USER, PASSWORD + "-wrong")
    with RegistryClient(credentials_for=lambda host: wrong, timeout=5) as client:
        error = _error(client, [f"{reg.host}/app:v1"])
    assert "refused the credentials" in str(error) and "token service" in str(error) and "401" in str(error)
    assert PASSWORD not in str(error) and PASSWORD not in repr(error.details)


def test_other_http_errors_name_ref_registry_and_status(fake_registry):
    reg = fake_registry()
    reg.fail_with = 503
    ref = f"{reg.host}/app:v1"
    with RegistryClient(timeout=5) as client:
        error = _error(client, [ref])
    assert ref in str(error) and reg.host in str(error) and "HTTP 503" in str(error)


def test_every_reference_is_parsed_before_any_request(fake_registry):
    reg = fake_registry()
    with RegistryClient(timeout=5) as client:
        with pytest.raises(ConvergeError, match="invalid image reference 'Bad/Ref'"):
            client.lookup([f"{reg.host}/app:v1", "Bad/Ref"])
    assert reg.requests == []


def test_concurrency_must_be_positive():
    with pytest.raises(ConvergeError, match="concurrency must be at least 1, got 0"):
        RegistryClient(concurrency=0)


def test_client_from_params_uses_the_shared_options(fake_registry, docker_config):
    reg = fake_registry(auth="basic")
    digest = reg.add("app", "v1")
    path = docker_config({"auths": {reg.host: {"auth": _auth(USER, PASSWORD)}}})
    params = {"registry_username": None, "registry_password": None, "docker_config": path, "ca_cert": None,
              "validate_certs": True, "insecure_registries": []}
    with client_from_params(params, concurrency=2) as client:
        assert client.concurrency == 2
        assert client.manifest_digest(f"{reg.host}/app:v1") == digest


# ---------------------------------------------------------------- transport

def test_loopback_registry_falls_back_to_http_once(fake_registry):
    reg = fake_registry()
    reg.add("app", "t1")
    refs = refs_of(reg, "app", [f"t{i}" for i in range(30)]) + [f"localhost:{reg.host.split(':')[1]}/app:t1"]
    with RegistryClient(timeout=5) as client:
        present, missing = client.lookup(refs)
    assert set(present) == {refs[1], refs[-1]} and len(missing) == 29
    # One TLS handshake per registry name (127.0.0.1:P and localhost:P), then plain HTTP only.
    assert reg.not_http == 2
    assert [seen.path for seen in reg.requests if seen.method == "GET"] == ["/v2/", "/v2/"]


@pytest.fixture
def refuse_all_connections(monkeypatch):
    """Every HTTP(S) request fails to connect; returns the URLs tried and the proxies each was sent with."""
    tried = SimpleNamespace(urls=[], proxies=[])

    def send(self, request, **kwargs):
        tried.urls.append(request.url)
        tried.proxies.append(kwargs.get("proxies"))
        raise requests.ConnectionError(f"connection refused: {request.url}")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    return tried


def test_remote_registry_is_never_contacted_over_plain_http(refuse_all_connections):
    ref = "registry.example.test:5000/shop/app:v1"
    with RegistryClient(timeout=5) as client:
        error = _error(client, [ref])
    assert refuse_all_connections.urls == ["https://registry.example.test:5000/v2/"]
    assert ref in str(error) and "over HTTPS" in str(error) and "insecure_registries" in str(error)


def test_insecure_registries_may_use_plain_http(refuse_all_connections):
    with RegistryClient(timeout=5, insecure_registries=["Registry.Example.Test:5000"]) as client:
        _error(client, ["registry.example.test:5000/shop/app:v1"])
    assert refuse_all_connections.urls == ["https://registry.example.test:5000/v2/",
                                           "http://registry.example.test:5000/v2/"]


def test_docker_hub_is_reached_at_its_api_host(refuse_all_connections):
    with RegistryClient(timeout=5) as client:
        error = _error(client, ["busybox"])
    assert refuse_all_connections.urls == ["https://registry-1.docker.io/v2/"]
    assert "image busybox:" in str(error) and "registry docker.io" in str(error)


def test_proxies_come_from_the_environment(refuse_all_connections, monkeypatch):
    monkeypatch.setenv("https_proxy", "http://proxy.example.test:3128")
    monkeypatch.setenv("no_proxy", "direct.example.test")
    with RegistryClient(timeout=5) as client:
        _error(client, ["registry.example.test/app:v1"])
        _error(client, ["direct.example.test/app:v1"])
    assert refuse_all_connections.proxies[0].get("https") == "http://proxy.example.test:3128"
    assert refuse_all_connections.proxies[1] == {}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA and a certificate for 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    directory = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, issuer, key, signing_key, ca, san=None):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake CA")])
    ca = certificate(ca_name, ca_name, ca_key, ca_key, True)
    cert = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, key, ca_key, False,
                       [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    (directory / "server.crt").write_bytes(cert.public_bytes(pem))
    (directory / "server.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    return directory


@pytest.fixture
def tls_context(tls_files):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "server.crt", tls_files / "server.key")
    return context


def test_https_registry_is_verified_with_ca_cert(fake_registry, tls_context, tls_files, monkeypatch):
    reg = fake_registry(auth="bearer", tls=tls_context)
    digest = reg.add("app", "v1")
    # requests would let this override a session's verify setting; the client must not.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")
    client = RegistryClient(credentials_for=lambda host: Credentials(USER, PASSWORD), ca_cert=str(tls_files / "ca.crt"),
                            timeout=5)
    with client:
        assert client.lookup([f"{reg.host}/app:v1", f"{reg.host}/app:v2"]) == (
            {f"{reg.host}/app:v1": digest}, [f"{reg.host}/app:v2"])
    assert reg.token_requests == ["repository:app:pull"]


def test_untrusted_certificate_on_loopback_is_a_tls_error_not_a_fallback(fake_registry, tls_context):
    reg = fake_registry(tls=tls_context)
    with RegistryClient(timeout=5) as client:
        error = _error(client, [f"{reg.host}/app:v1"])
    assert "TLS error" in str(error) and "ca_cert" in str(error) and "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert reg.requests == []


def test_validate_certs_false_skips_verification(fake_registry, tls_context):
    reg = fake_registry(tls=tls_context)
    digest = reg.add("app", "v1")
    with RegistryClient(validate_certs=False, timeout=5) as client:
        assert client.manifest_digest(f"{reg.host}/app:v1") == digest
