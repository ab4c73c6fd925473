# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of kube/resource.py: the cached REST mapping (requests and retries: test_kube_client.py)."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import resource
from ansible_collections.berth.converge.plugins.module_utils.kube.client import Connection


class FakePool:
    """Answers queued (status, body) pairs and records the requests."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def request(self, method, url, body=None, headers=None, timeout=None, retries=None, preload_content=True):
        self.requests.append((method, url, body, headers))
        status, data = self.answers.pop(0)
        return SimpleNamespace(status=status, reason="reason", headers={},
                               data=json.dumps(data).encode() if data is not None else b"")


def kube_with(pool):
    host = f"https://api-{os.urandom(3).hex()}.test:6443"  # a fresh host: the discovery cache is per process
    return resource.Kube(Connection(host, pool, "test credentials"))


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


def test_find_resource_as_kubectl_names_types():
    core = {"resources": [{"name": "secrets", "kind": "Secret", "namespaced": True}]}
    groups = {"groups": [{"name": "apps", "preferredVersion": {"groupVersion": "apps/v1"}}]}
    pool = FakePool((200, DISCOVERY), (200, groups), (200, core), (200, groups), (200, groups))
    mapper = resource.ResourceMapper(kube_with(pool))
    deployments = resource.ResourceType("apps", "v1", "Deployment", "deployments", True)
    assert mapper.find_resource("deployments", "v1", "apps") == deployments  # <plural>.<version>.<group>
    assert mapper.find_resource("deployment") == deployments  # a kind, searched in the core group, then apps/v1
    assert mapper.find_resource("secrets") == resource.ResourceType("", "v1", "Secret", "secrets", True)
    assert mapper.find_resource("widgets") is None
