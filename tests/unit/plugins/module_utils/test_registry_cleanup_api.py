# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry calls of the cleanup against a small fake registry: tag pages through the Link header (which
distribution 2.8 does not send, but distribution 3, Harbor, GitLab and the cloud registries do), the DELETE
probe, and the bearer scope a DELETE asks for."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.registry import RegistryClient

TAGS = [f"t{i:03d}" for i in range(23)]


class Fake:
    def __init__(self, deletes="enabled", bearer=False):
        self.deletes = deletes
        self.bearer = bearer
        self.scopes = []
        self.deleted = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body=None, headers=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self):
                if not fake.bearer or self.headers.get("Authorization") == "Bearer tok":
                    return True
                realm = f"http://127.0.0.1:{fake.port}/token"
                self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]},
                           {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake"'})
                return False

            def do_GET(self):
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if url.path == "/token":
                    fake.scopes.append(query["scope"][0])
                    return self._send(200, {"token": "tok"})
                if not self._authorized():
                    return None
                if url.path == "/v2/":
                    return self._send(200, {})
                if url.path == "/v2/shop/app/tags/list":
                    size = int(query["n"][0])
                    start = TAGS.index(query["last"][0]) + 1 if "last" in query else 0
                    page = TAGS[start:start + size]
                    headers = {}
                    if start + size < len(TAGS):
                        headers["Link"] = f'</v2/shop/app/tags/list?n={size}&last={page[-1]}>; rel="next"'
                    return self._send(200, {"name": "shop/app", "tags": page}, headers)
                return self._send(404, {"errors": [{"code": "NAME_UNKNOWN"}]})

            def do_DELETE(self):
                if not self._authorized():
                    return None
                digest = self.path.rpartition("/")[2]
                if fake.deletes == "disabled":
                    return self._send(405, {"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported."}]})
                if digest == "sha256:" + "1" * 64:
                    fake.deleted.append(digest)
                    return self._send(202)
                return self._send(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def repository(self):
        return f"127.0.0.1:{self.port}/shop/app"


@pytest.fixture
def fake():
    servers = []

    def start(**options):
        servers.append(Fake(**options))
        return servers[-1]

    yield start
    for server in servers:
        server.server.shutdown()
        server.server.server_close()


def test_tags_come_from_every_page(fake):
    registry = fake()
    with RegistryClient() as client:
        assert client.list_tags(registry.repository, page_size=5) == TAGS
        listing_requests = client.requests_sent
    assert listing_requests == 2 + 5     # the HTTPS then HTTP probe, and 5 pages of at most 5 tags


def test_an_unknown_repository_has_no_tags(fake):
    registry = fake()
    with RegistryClient() as client:
        assert client.list_tags(registry.repository.replace("/app", "/none")) == []


def test_delete_probe_and_deletes(fake):
    registry = fake()
    with RegistryClient() as client:
        client.check_deletes(registry.repository)          # 404 for a digest nothing has: deletes work
        assert client.delete_manifest(registry.repository, "sha256:" + "1" * 64) is True
        assert client.delete_manifest(registry.repository, "sha256:" + "2" * 64) is False   # already gone
    assert registry.deleted == ["sha256:" + "1" * 64]


def test_a_registry_without_deletes_is_named(fake):
    registry = fake(deletes="disabled")
    with RegistryClient() as client, pytest.raises(ConvergeError) as caught:
        client.check_deletes(registry.repository)
    message = str(caught.value)
    assert f"repository {registry.repository}: registry 127.0.0.1:{registry.port} refuses to delete manifests" in message
    assert "HTTP 405, UNSUPPORTED" in message and "storage.delete.enabled" in message


def test_a_delete_asks_the_token_service_for_the_delete_action(fake):
    registry = fake(bearer=True)
    with RegistryClient() as client:
        assert client.list_tags(registry.repository, page_size=100) == TAGS
        client.delete_manifest(registry.repository, "sha256:" + "1" * 64)
    assert registry.scopes == ["repository:shop/app:pull", "repository:shop/app:delete"]
