# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of kube/client.py: retries and their deadline, failure classification, repeated writes, error
texts, kubeconfig errors, and the parsing of watch answers. The pool is faked (the module boundary); the
integration fault tests (tests/integration/test_faults_apiserver.py) stop a real API server."""

from __future__ import annotations

import errno
import json
import threading
from types import SimpleNamespace

import pytest
import urllib3
from urllib3.exceptions import NameResolutionError, NewConnectionError, ProtocolError, ReadTimeoutError, SSLError

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import client
from ansible_collections.berth.converge.plugins.module_utils.kube.client import (
    Connection,
    Kube,
    KubeApiError,
    WatchDecoder,
)

HOST = "https://api.test:6443"


class Clock:
    """A fake monotonic clock; sleeping advances it."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class FakePool:
    """Answers queued (status, body[, headers]) tuples or raises queued exceptions; records the requests.
    A callable answer is called with the clock time to decide."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def request(self, method, url, body=None, headers=None, timeout=None, retries=None, preload_content=True):
        self.requests.append(SimpleNamespace(method=method, url=url, body=body, headers=headers, timeout=timeout,
                                             retries=retries))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        status, data, *headers = answer
        raw = data if isinstance(data, bytes) else (json.dumps(data).encode() if data is not None else b"")
        return SimpleNamespace(status=status, reason=REASONS.get(status, "Reason"), headers=(headers or [{}])[0],
                               data=raw)


REASONS = {200: "OK", 201: "Created", 401: "Unauthorized", 404: "Not Found", 409: "Conflict", 422: "Unprocessable",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def kube_with(pool, retry_seconds=60, token="t0k"):
    clock = Clock()
    headers = (lambda: {"authorization": f"Bearer {token}"}) if token else dict
    connection = Connection(HOST + "/", pool, "kubeconfig /k/config (context dev, user alice)", headers)
    return Kube(connection, retry_seconds=retry_seconds, sleep=clock.sleep, clock=clock), clock


def refused():
    return NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")


def reset():
    return ProtocolError("Connection aborted.", ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))


def status(code, message, reason="InternalError"):
    return {"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message}


# ------------------------------------------------------------------------------------ plain requests

def test_request_sends_json_with_credentials_and_query_without_urllib3_retries():
    pool = FakePool((200, {"kind": "ConfigMap"}))
    kube, _clock = kube_with(pool)
    answer = kube.request("PATCH", "/api/v1/namespaces/a/configmaps/b", {"dryRun": "All", "force": "false"},
                          {"kind": "ConfigMap"}, "application/apply-patch+yaml")
    assert answer == {"kind": "ConfigMap"}
    sent = pool.requests[0]
    assert sent.method == "PATCH" and sent.url == f"{HOST}/api/v1/namespaces/a/configmaps/b?dryRun=All&force=false"
    assert json.loads(sent.body) == {"kind": "ConfigMap"} and sent.retries is False
    assert sent.headers["Content-Type"] == "application/apply-patch+yaml"
    assert sent.headers["authorization"] == "Bearer t0k"


def test_error_answers_carry_the_server_message_and_are_not_retried():
    pool = FakePool((422, status(422, 'ConfigMap "x" is invalid: data: Invalid value', "Invalid")))
    kube, _clock = kube_with(pool)
    with pytest.raises(KubeApiError) as caught:
        kube.request("PATCH", "/x", body={})
    assert (caught.value.status, caught.value.reason, str(caught.value)) == (
        422, "Invalid", 'ConfigMap "x" is invalid: data: Invalid value')
    assert not caught.value.not_found and not caught.value.transient and len(pool.requests) == 1
    kube, _clock = kube_with(FakePool((404, status(404, "not found", "NotFound"))))
    assert kube.get_or_none("/x") is None


def test_unauthorized_names_the_server_and_where_the_credentials_came_from():
    kube, _clock = kube_with(FakePool((401, status(401, "Unauthorized", "Unauthorized"))))
    with pytest.raises(KubeApiError) as caught:
        kube.request("GET", "/api/v1/namespaces/shop/secrets")
    assert str(caught.value) == (f"the Kubernetes API server at {HOST} refused the credentials from kubeconfig "
                                 "/k/config (context dev, user alice) (401 Unauthorized) to GET "
                                 "/api/v1/namespaces/shop/secrets")
    assert caught.value.status == 401


# ------------------------------------------------------------------------------------------ retries

@pytest.mark.parametrize("failure", [
    refused(), reset(), ReadTimeoutError(None, "/x", "Read timed out. (read timeout=60)"),
    (429, status(429, "too many requests", "TooManyRequests")), (500, status(500, "etcdserver: leader changed")),
    (500, status(500, "rpc error: code = Unavailable desc = connection error")),
    (500, status(500, "Internal error occurred: something passing"), {"Retry-After": "1"}),
    (500, dict(status(500, "Internal error occurred: storage is busy"), details={"retryAfterSeconds": 1})),
    (502, None), (503, status(503, "the server is currently unable to handle the request", "ServiceUnavailable")),
    (504, status(504, "etcdserver: request timed out", "Timeout")),
    (400, status(400, "rpc error: etcdserver: request timed out", "BadRequest")),
])
def test_transient_failures_are_retried(failure):
    pool = FakePool(failure, failure, (200, {"ok": True}))
    kube, clock = kube_with(pool)
    assert kube.request("GET", "/api") == {"ok": True}
    assert len(pool.requests) == 3 and len(clock.sleeps) == 2


@pytest.mark.parametrize("failure", [
    (400, status(400, "bad request", "BadRequest")), (403, status(403, "forbidden", "Forbidden")),
    (404, status(404, "not found", "NotFound")), (409, status(409, "exists", "AlreadyExists")),
    (422, status(422, "invalid", "Invalid")),
    # server-side apply's answer to an unknown field: a 500 that no retry fixes
    (500, status(500, "failed to create typed patch object (shop/web; apps/v1, Kind=Deployment): "
                      ".spec.template.spec.containers[name=\"main\"].imagePullPolize: field not declared in schema")),
])
def test_other_answers_are_not_retried(failure):
    pool = FakePool(failure, (200, {}))
    kube, clock = kube_with(pool)
    with pytest.raises(KubeApiError):
        kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "a"}})
    assert len(pool.requests) == 1 and clock.sleeps == []


@pytest.mark.parametrize("failure, text", [
    (NameResolutionError("nowhere.test", None, "Name or service not known"), "nowhere.test"),
    (SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "CERTIFICATE_VERIFY_FAILED"),
])
def test_permanent_transport_failures_fail_at_once(failure, text):
    kube, clock = kube_with(FakePool(failure))
    with pytest.raises(KubeApiError, match=f"cannot reach the Kubernetes API server at {HOST} \\(GET /api\\): "
                                           f".*{text}") as caught:
        kube.request("GET", "/api")
    assert caught.value.status is None and clock.sleeps == []


def test_backoff_is_exponential_capped_and_honours_retry_after(monkeypatch):
    monkeypatch.setattr(client.random, "uniform", lambda low, high: 1.0)
    assert [client.backoff_delay(n) for n in range(1, 8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert client.backoff_delay(1, retry_after=2.0) == 2.0 and client.backoff_delay(3, retry_after=60) == 5.0
    pool = FakePool((429, status(429, "slow down"), {"Retry-After": "3"}), (200, {}))
    kube, clock = kube_with(pool)
    kube.request("GET", "/api")
    assert clock.sleeps == [3.0]


def test_retries_stop_at_the_deadline_with_a_message_naming_server_request_time_and_last_error():
    pool = FakePool(*[refused()] * 200)
    kube, clock = kube_with(pool, retry_seconds=30)
    with pytest.raises(KubeApiError) as caught:
        kube.request("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web", body={},
                     content_type="application/apply-patch+yaml")
    error = caught.value
    assert clock.now == pytest.approx(1030.0) and sum(clock.sleeps) == pytest.approx(30.0)
    assert max(clock.sleeps) <= client.BACKOFF_CAP
    attempts = len(pool.requests)
    assert str(error) == (f"the Kubernetes API server at {HOST} did not answer PATCH "
                          f"/apis/apps/v1/namespaces/shop/deployments/web: retried for 30 s ({attempts} attempts); "
                          "last error: Connection refused")
    assert error.transient and error.status is None
    assert error.details["api_server"] == HOST and error.details["retried_seconds"] == 30.0
    # each attempt's timeouts fit in what is left of the time
    assert all(sent.timeout.connect_timeout <= client.CONNECT_SECONDS for sent in pool.requests)


def test_a_caller_deadline_bounds_the_retries_and_a_stop_event_ends_them():
    kube, clock = kube_with(FakePool(*[(503, None)] * 50), retry_seconds=300)
    with pytest.raises(KubeApiError, match="retried for 5 s .* last error: HTTP 503 Service Unavailable") as caught:
        kube.request("GET", "/api", deadline=clock.now + 5)
    assert caught.value.status == 503

    stop = threading.Event()
    stop.set()
    kube, _clock = kube_with(FakePool(refused(), (200, {})))
    with pytest.raises(KubeApiError, match=f"^cannot reach the Kubernetes API server at {HOST} \\(GET /api\\): "
                                           "Connection refused$") as caught:
        kube.request("GET", "/api", stop=stop)
    assert caught.value.transient


def test_without_time_to_retry_the_servers_own_answer_is_the_error():
    """Pod logs get one attempt: a node without a kubelet answers 500 with the reason."""
    reason = 'Get "https://:10250/containerLogs/a/p/main": dial tcp :10250: connect: connection refused'
    kube, clock = kube_with(FakePool((500, status(500, reason))))
    with pytest.raises(KubeApiError) as caught:
        kube.read_text("/api/v1/namespaces/a/pods/p/log", deadline=clock.now)
    assert (caught.value.status, str(caught.value)) == (500, reason)


# ------------------------------------------------------------------------------- repeated writes

SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
          "metadata": {"name": "sh.helm.release.v1.shop.v3", "namespace": "shop", "labels": {"owner": "helm"}},
          "data": {"release": "H4sI"}}


def live(obj, **metadata):
    out = json.loads(json.dumps(obj))
    out["metadata"].update(uid="u-1", resourceVersion="42", creationTimestamp="2026-01-01T00:00:00Z",
                           managedFields=[{"manager": "berth-converge"}], **metadata)
    return out


def test_a_create_repeated_after_a_reset_that_meets_its_own_object_returns_it():
    pool = FakePool(reset(), (409, status(409, "already exists", "AlreadyExists")), (200, live(SECRET)))
    kube, _clock = kube_with(pool)
    created = kube.request("POST", "/api/v1/namespaces/shop/secrets", body=SECRET)
    assert created["metadata"]["uid"] == "u-1"
    assert [(r.method, r.url.rsplit("/", 1)[1]) for r in pool.requests] == [
        ("POST", "secrets"), ("POST", "secrets"), ("GET", "sh.helm.release.v1.shop.v3")]


def test_a_create_repeated_that_meets_another_object_is_the_conflict():
    other = dict(SECRET, data={"release": "other"})
    pool = FakePool((503, None), (409, status(409, "already exists", "AlreadyExists")), (200, live(other)))
    kube, _clock = kube_with(pool)
    with pytest.raises(KubeApiError) as caught:
        kube.request("POST", "/api/v1/namespaces/shop/secrets", body=SECRET)
    assert caught.value.status == 409 and caught.value.reason == "AlreadyExists"


def test_a_first_conflict_is_never_settled_by_reading():
    pool = FakePool((409, status(409, "already exists", "AlreadyExists")))
    kube, _clock = kube_with(pool)
    with pytest.raises(KubeApiError):
        kube.request("POST", "/api/v1/namespaces/shop/secrets", body=SECRET)
    assert len(pool.requests) == 1


def test_an_update_repeated_after_a_timeout_that_meets_its_own_write_returns_it():
    updated = live(SECRET)
    updated["metadata"]["labels"]["status"] = "deployed"
    sent = json.loads(json.dumps(updated))
    sent["metadata"]["resourceVersion"] = "41"  # the version it replaced
    pool = FakePool(ReadTimeoutError(None, "/x", "Read timed out."), (409, status(409, "modified", "Conflict")),
                    (200, updated))
    kube, _clock = kube_with(pool)
    assert kube.request("PUT", "/api/v1/namespaces/shop/secrets/x", body=sent) == updated


def test_a_delete_repeated_that_finds_nothing_did_its_work():
    pool = FakePool(reset(), (404, status(404, "not found", "NotFound")))
    kube, _clock = kube_with(pool)
    assert kube.request("DELETE", "/api/v1/namespaces/shop/configmaps/c") == {}


def test_a_create_without_a_name_is_not_sent_again_once_it_may_have_been_done():
    body = {"metadata": {"generateName": "job-"}}
    kube, _clock = kube_with(FakePool(reset(), (201, {})))
    with pytest.raises(KubeApiError, match="may or may not have been done; not sent again"):
        kube.request("POST", "/api/v1/namespaces/shop/pods", body=body)
    pool = FakePool(refused(), (201, {"metadata": {"name": "job-x"}}))  # never connected: safe to send again
    kube, _clock = kube_with(pool)
    assert kube.request("POST", "/api/v1/namespaces/shop/pods", body=body)["metadata"]["name"] == "job-x"
    kube, _clock = kube_with(FakePool(reset(), (201, {})))  # a dry run changes nothing
    assert kube.request("POST", "/api/v1/namespaces/shop/pods", {"dryRun": "All"}, body=body) == {}


def test_holds_compares_what_was_sent():
    assert client.holds({"a": 1, "b": {"c": [1, 2], "d": 2}}, {"b": {"c": [1, 2]}})
    assert not client.holds({"b": {"c": [1]}}, {"b": {"c": [1, 2]}})
    assert client.holds({"a": 1}, {"gone": None}) and not client.holds({"gone": 1}, {"gone": None})


def test_transport_texts_are_short():
    assert client.transport_text(refused()) == "Connection refused"
    assert client.transport_text(reset()) == "Connection reset by peer"
    assert client.transport_text(ProtocolError("Connection aborted.", RuntimeError("x"))) == "Connection aborted: x"


# -------------------------------------------------------------------------------------- read_text

def test_read_text_returns_the_log_and_raises_with_the_server_message():
    pool = FakePool((200, b"line 1\nline 2\n"))
    kube, _clock = kube_with(pool)
    assert kube.read_text("/api/v1/namespaces/a/pods/p/log", {"tailLines": "20"}) == "line 1\nline 2\n"
    assert pool.requests[0].url.endswith("/pods/p/log?tailLines=20") and pool.requests[0].headers["Accept"] == "*/*"
    kube, _clock = kube_with(FakePool((400, status(400, 'container "x" is not valid for pod "p"', "BadRequest"))))
    with pytest.raises(KubeApiError, match='container "x" is not valid'):
        kube.read_text("/api/v1/namespaces/a/pods/p/log")


# ------------------------------------------------------------------------------------ kubeconfig

def test_kubeconfig_that_is_missing_or_not_yaml_names_the_file(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    with pytest.raises(ConvergeError, match=f"kubeconfig {missing} \\(from the kubeconfig option .*\\) cannot be "
                                            "read: No such file or directory"):
        client.connection({"kubeconfig": str(missing)})
    broken = tmp_path / "broken"
    broken.write_text("apiVersion: v1\nclusters: [\n  - {name: x\n")
    with pytest.raises(ConvergeError, match=f"kubeconfig {broken} .* is not valid YAML at line \\d+, column \\d+"):
        client.connection({"kubeconfig": str(broken)})
    listed = tmp_path / "list"
    listed.write_text("- a\n- b\n")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{listed}")
    with pytest.raises(ConvergeError, match=f"kubeconfig {listed} \\(from KUBECONFIG\\) is not a kubeconfig: it "
                                            "holds a list"):
        client.connection({})


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: alice
  user: {token: secret-token}
contexts:
- name: dev
  context: {cluster: c, user: alice}
current-context: dev
"""


def test_kubeconfig_credentials_are_described_and_a_wrong_context_is_named(tmp_path):
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    connection = client.connection({"kubeconfig": str(path)})
    assert connection.host == "https://10.0.0.1:6443"
    assert connection.credentials == f"kubeconfig {path} (context dev, user alice)"
    assert connection.headers("application/json")["authorization"] == "Bearer secret-token"
    with pytest.raises(ConvergeError, match=f"kubeconfig {path} has no context 'prod'; it has: dev"):
        client.connection({"kubeconfig": str(path), "context": "prod"})
    overridden = client.connection({"kubeconfig": str(path), "host": "https://other:6443", "api_key": "k"})
    assert overridden.host == "https://other:6443" and "api_key" in overridden.credentials
    assert overridden.headers(None)["authorization"] == "Bearer k"
    direct = client.connection({"host": "https://h:6443", "api_key": "k2", "validate_certs": False})
    assert direct.credentials == "the api_key option (or K8S_AUTH_API_KEY) for host https://h:6443"


# ---------------------------------------------------------------------------------------- watches

def test_watch_decoder_joins_events_cut_anywhere():
    events = [{"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "5"}}},
              {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
              {"type": "DELETED", "object": {"metadata": {"name": "a", "resourceVersion": "10"}}}]
    raw = b"".join(json.dumps(event).encode() + b"\n" for event in events)
    for cut in range(1, len(raw)):
        decoder = WatchDecoder()
        assert decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) == events
        decoder.finish()
    decoder = WatchDecoder()
    decoder.feed(raw[:-5])
    with pytest.raises(ValueError, match="ended inside an event"):
        decoder.finish()


class FakeResponse:
    def __init__(self, chunks, status=200):
        self.chunks, self.status, self.reason, self.headers = chunks, status, "OK", {}
        self.closed = False

    def stream(self, amount, decode_content=True):
        for chunk in self.chunks:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk

    def shutdown(self):
        self.closed = True

    def close(self):
        self.closed = True


def test_watch_stream_yields_events_and_raises_on_gone_and_on_a_cut_connection():
    added = {"type": "ADDED", "object": {"metadata": {"name": "a"}}}
    gone = {"type": "ERROR", "object": status(410, "too old resource version: 5 (80)", "Expired")}
    response = FakeResponse([json.dumps(added).encode() + b"\n", json.dumps(gone).encode() + b"\n"])
    stream = client.WatchStream(response, HOST, "/api/v1/namespaces/a/pods")
    seen = []
    with pytest.raises(KubeApiError) as caught:
        seen.extend(stream)
    assert seen == [added] and caught.value.status == 410 and not caught.value.transient
    assert response.closed

    cut = FakeResponse([json.dumps(added).encode()[:10], urllib3.exceptions.ProtocolError(
        "Connection broken", ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))])
    with pytest.raises(KubeApiError, match="was cut: Connection reset by peer") as caught:
        list(client.WatchStream(cut, HOST, "/x"))
    assert caught.value.transient

    ended = FakeResponse([json.dumps(added).encode() + b"\n"])  # the server ended the watch (timeoutSeconds)
    assert list(client.WatchStream(ended, HOST, "/x")) == [added]


def test_open_watch_sends_the_query_and_raises_on_an_error_answer():
    class WatchPool(FakePool):
        def request(self, method, url, body=None, headers=None, timeout=None, retries=None, preload_content=True):
            self.requests.append(url)
            answer = self.answers.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer

    gone = FakeResponse([])
    gone.status, gone.data, gone.release_conn = 403, json.dumps(status(403, "forbidden", "Forbidden")).encode(), \
        lambda: None
    pool = WatchPool(FakeResponse([]), gone, refused())
    kube, _clock = kube_with(pool)
    assert list(kube.open_watch("/api/v1/pods", {"resourceVersion": "7"}, 30)) == []
    assert pool.requests[0] == f"{HOST}/api/v1/pods?resourceVersion=7&watch=1"
    with pytest.raises(KubeApiError, match="forbidden") as caught:
        kube.open_watch("/api/v1/pods", {}, 30)
    assert not caught.value.transient
    with pytest.raises(KubeApiError, match="cannot watch /api/v1/pods .*: Connection refused") as caught:
        kube.open_watch("/api/v1/pods", {}, 30)
    assert caught.value.transient
