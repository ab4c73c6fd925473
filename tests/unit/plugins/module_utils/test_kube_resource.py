# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of kube/resource.py: requests over the ApiClient's pool, and the cached REST mapping."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
import urllib3

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import resource


class FakePool:
    """Answers queued (status, body) pairs and records the requests."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def request(self, method, url, body=None, headers=None, timeout=None, preload_content=True):
        self.requests.append((method, url, body, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, data = answer
        return SimpleNamespace(status=status, reason="reason", headers={"Retry-After": "0"},
                               data=json.dumps(data).encode() if data is not None else b"")


def kube_with(pool, token="t0k"):
    configuration = SimpleNamespace(
        host=f"https://api-{os.urandom(3).hex()}.test:6443/",
        auth_settings=lambda: {"BearerToken": {"key": "authorization", "value": f"Bearer {token}"}} if token else {})
    return resource.Kube(SimpleNamespace(configuration=configuration, rest_client=SimpleNamespace(pool_manager=pool)))


def test_request_sends_json_with_credentials_and_query():
    pool = FakePool((200, {"kind": "ConfigMap"}))
    kube = kube_with(pool)
    answer = kube.request("PATCH", "/api/v1/namespaces/a/configmaps/b", {"dryRun": "All", "force": "false"},
                          {"kind": "ConfigMap"}, "application/apply-patch+yaml")
    assert answer == {"kind": "ConfigMap"}
    method, url, body, headers = pool.requests[0]
    assert method == "PATCH" and url == f"{kube.host}/api/v1/namespaces/a/configmaps/b?dryRun=All&force=false"
    assert json.loads(body) == {"kind": "ConfigMap"}
    assert headers["Content-Type"] == "application/apply-patch+yaml" and headers["authorization"] == "Bearer t0k"


def test_transient_answers_are_retried_and_errors_carry_the_server_message():
    pool = FakePool((503, {}), (429, {}), (200, {"ok": True}))
    assert kube_with(pool, token=None).request("GET", "/api") == {"ok": True}
    assert len(pool.requests) == 3 and "authorization" not in pool.requests[0][3]

    pool = FakePool((422, {"message": 'ConfigMap "x" is invalid: data: Invalid value'}))
    with pytest.raises(resource.KubeApiError) as caught:
        kube_with(pool).request("PATCH", "/x", body={})
    assert (caught.value.status, str(caught.value)) == (422, 'ConfigMap "x" is invalid: data: Invalid value')
    assert not caught.value.not_found
    assert kube_with(FakePool((404, {"message": "not found"}))).get_or_none("/x") is None


def test_unreachable_server_is_a_converge_error():
    pool = FakePool(urllib3.exceptions.MaxRetryError(None, "/api", "connection refused"))
    kube = kube_with(pool)
    with pytest.raises(ConvergeError, match=f"cannot reach the Kubernetes API server at {kube.host}"):
        kube.request("GET", "/api")


DISCOVERY = {"resources": [
    {"name": "deployments", "kind": "Deployment", "namespaced": True},
    {"name": "deployments/status", "kind": "Deployment", "namespaced": True},
    {"name": "deployments/scale", "kind": "Scale", "namespaced": True}]}


def test_mapping_is_discovered_once_per_process_and_refreshed_once_on_a_miss():
    pool = FakePool((200, DISCOVERY), (200, DISCOVERY))
    kube = kube_with(pool)
    deployments = resource.ResourceMapper(kube).find("apps/v1", "Deployment")
    assert deployments == resource.ResourceType("apps", "v1", "Deployment", "deployments", True)
    mapper = resource.ResourceMapper(kube)
    assert mapper.find("apps/v1", "Deployment") == deployments  # from the process-wide cache
    assert len(pool.requests) == 1 and pool.requests[0][1].endswith("/apis/apps/v1")
    assert mapper.find("apps/v1", "Scale") is None  # a subresource is no kind of its own; the cache is refreshed
    assert mapper.find("apps/v1", "Widget") is None  # but only once per mapper
    assert len(pool.requests) == 2
    with pytest.raises(ConvergeError, match="the API server does not serve kind Widget in apiVersion apps/v1"):
        mapper.lookup("apps/v1", "Widget")


def test_unknown_group_version_maps_nothing():
    pool = FakePool((404, {"message": "not found"}))
    assert resource.ResourceMapper(kube_with(pool)).find("example.com/v1", "Widget") is None
    assert pool.requests[0][1].endswith("/apis/example.com/v1")
