# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the watch streams of kube/track.py: list, watch from the resourceVersion, resume after a cut
(bookmarks count), list again after 410 Gone, report a lost and a regained API server. The client is faked at
its boundary (Kube.request / Kube.open_watch); tests/integration/test_faults_apiserver.py stops a real one."""

from __future__ import annotations

import queue

import pytest

from ansible_collections.berth.converge.plugins.module_utils.kube import track
from ansible_collections.berth.converge.plugins.module_utils.kube.client import KubeApiError
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import ResourceType

PODS = ResourceType("", "v1", "Pod", "pods", True)


def pod(name, version):
    return {"metadata": {"name": name, "resourceVersion": version}}


def cut():
    return KubeApiError(None, "Disconnected", "the watch was cut: Connection reset by peer", transient=True)


class FakeKube:
    """Lists answer the queued listings; each open_watch takes the next script entry: a list of events (one
    watch, ended by the server), or an exception (the open fails, or, inside a list, the watch is cut)."""

    host = "https://api.test"

    def __init__(self, listings, watches):
        self.listings = list(listings)
        self.watches = list(watches)
        self.watched_from = []
        self.stream = None

    def request(self, method, path, query=None, deadline=None, stop=None):
        assert (method, path) == ("GET", "/api/v1/namespaces/shop/pods")
        return self.listings.pop(0)

    def open_watch(self, path, query, read_timeout):
        self.watched_from.append(query["resourceVersion"])
        assert query["allowWatchBookmarks"] == "true"
        if not self.watches:
            self.stream.stop()
            return iter(())
        script = self.watches.pop(0)
        if isinstance(script, BaseException):
            raise script
        return _events(script)


def _events(script):
    for item in script:
        if isinstance(item, BaseException):
            raise item
        yield item


def run_stream(kube):
    sink = queue.Queue()
    stream = track._Stream(kube, PODS, "shop", ("v1", "Pod", "shop"), sink, deadline=None)
    kube.stream = stream
    stream.run()  # in this thread: it returns once the fake stops it
    messages = []
    while not sink.empty():
        change, _key, payload = sink.get()
        messages.append((change, payload["metadata"]["name"] if isinstance(payload, dict) else
                         (str(payload) if payload else None)))
    return messages


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(track, "backoff_delay", lambda attempt: 0)


def test_list_then_watch_from_its_version_then_resume_from_the_last_event_or_bookmark():
    kube = FakeKube([{"items": [pod("a", "5")], "metadata": {"resourceVersion": "10"}}], [
        [{"type": "MODIFIED", "object": pod("a", "11")}],  # the server ends this watch (timeoutSeconds)
        [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}, cut()],
        [{"type": "DELETED", "object": pod("a", "16")}],
    ])
    messages = run_stream(kube)
    assert kube.watched_from == ["10", "11", "15", "16"]
    assert messages == [("ADDED", "a"), ("SYNCED", None), ("MODIFIED", "a"),
                        ("DISCONNECTED", "the watch was cut: Connection reset by peer"), ("CONNECTED", None),
                        ("DELETED", "a")]


def test_gone_history_lists_again_and_resets_the_store():
    gone = KubeApiError(410, "Expired", "too old resource version: 10 (90)")
    kube = FakeKube([{"items": [pod("a", "5")], "metadata": {"resourceVersion": "10"}},
                     {"items": [pod("b", "88")], "metadata": {"resourceVersion": "90"}}], [gone, []])
    messages = run_stream(kube)
    assert kube.watched_from == ["10", "90", "90"]
    assert messages == [("ADDED", "a"), ("SYNCED", None), ("RESET", None), ("ADDED", "b")]


def test_an_unreachable_server_is_retried_and_reported_once():
    refused = KubeApiError(None, "NoAnswer", "cannot watch /api/v1/namespaces/shop/pods: Connection refused",
                           transient=True)
    kube = FakeKube([{"items": [], "metadata": {"resourceVersion": "10"}}], [refused, refused, refused, []])
    messages = run_stream(kube)
    assert kube.watched_from == ["10"] * 5
    assert messages == [("SYNCED", None), ("DISCONNECTED", str(refused)), ("CONNECTED", None)]


def test_a_permanent_failure_ends_the_stream_with_an_error():
    forbidden = KubeApiError(403, "Forbidden", 'pods is forbidden: User "ci" cannot watch resource "pods"')
    kube = FakeKube([{"items": [], "metadata": {"resourceVersion": "10"}}], [forbidden])
    assert run_stream(kube) == [("SYNCED", None), ("ERROR", str(forbidden))]
