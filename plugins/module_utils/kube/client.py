# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way to the Kubernetes API server.

``Connection``: where the server is and which credentials to send, from the shared connection options
(common_args.KUBE_ARGS) as kubernetes.core reads them, over one urllib3 connection pool.
``Kube``: JSON requests, text requests (pod logs) and watch streams on that connection; transient failures
are retried with capped exponential backoff until a deadline; every failure is a ``KubeApiError``.

Which failures are transient: no connection (refused, reset, timed out); 429, 502, 503, 504; a 500 only when
the server marks it retryable (Retry-After) or its message names a passing cause (etcd's leader change, request
timeout, unavailability): the API server answers 500 to some permanent errors too (server-side apply's "failed
to create typed patch object ... field not declared in schema"), which must fail at once.

A request that may have reached the server before it failed is sent again only when that is safe: reads,
server-side apply and DELETE are idempotent; a create (POST) or update (PUT, merge PATCH) that then meets 409 is
checked against the live object, which is ours when it holds what we sent.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import threading
import time
from urllib.parse import urlencode

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

try:
    import yaml
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import RESTClientObject
    from urllib3 import Timeout
    from urllib3.exceptions import HTTPError, NameResolutionError, NewConnectionError, ConnectTimeoutError, SSLError
except ImportError as exc:  # reported by the module through missing_required_lib
    KUBERNETES_IMPORT_ERROR = exc
    HTTPError = NameResolutionError = NewConnectionError = ConnectTimeoutError = SSLError = OSError
else:
    KUBERNETES_IMPORT_ERROR = None

USER_AGENT = "berth-converge"
# Enough connections for concurrent applies and watches against one API server.
POOL_SIZE = 32
DEFAULT_RETRY_SECONDS = 60
CONNECT_SECONDS = 10
BACKOFF_FIRST = 0.2
BACKOFF_CAP = 5.0
RETRY_STATUSES = frozenset({429, 502, 503, 504})
TRANSIENT_MESSAGES = ("etcdserver: leader changed", "etcdserver: request timed out", "etcdserver: no leader",
                      "etcdserver: too many requests", "rpc error: code = Unavailable")
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
# Fields the server sets on every write: they never tell whose write it was.
_WRITE_STAMPS = ("resourceVersion", "managedFields", "generation")


class KubeApiError(ConvergeError):
    """A failed request: a non-success answer of the API server (``status``, ``reason`` from its Status), or no
    answer at all (``status`` None). ``transient`` when retrying later may succeed."""

    def __init__(self, status, reason, message, transient=False, **details):
        super().__init__(message or reason or f"HTTP {status}", status=status, reason=reason, **details)
        self.status = status
        self.reason = reason
        self.transient = transient

    @property
    def not_found(self):
        return self.status == 404


# ------------------------------------------------------------------------------------------- connection

class Connection:
    """The API server's address, a connection pool to it, the request headers that authenticate us, and a
    description of where those credentials came from (for errors)."""

    def __init__(self, host, pool, credentials, auth_headers=dict):
        self.host = host.rstrip("/")
        self.pool = pool
        self.credentials = credentials
        self._auth_headers = auth_headers

    @classmethod
    def of_configuration(cls, configuration, credentials):
        """A Connection for a kubernetes client Configuration (its TLS settings, proxy and token refresh)."""
        if KUBERNETES_IMPORT_ERROR:
            raise ConvergeError(f"the kubernetes Python library is required: {KUBERNETES_IMPORT_ERROR}")
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, POOL_SIZE)
        pool = RESTClientObject(configuration).pool_manager

        def auth_headers():
            auth = configuration.auth_settings().get("BearerToken")  # runs the token refresh hook, if any
            return {auth["key"]: auth["value"]} if auth and auth.get("value") else {}

        return cls(configuration.host, pool, credentials, auth_headers)

    def headers(self, content_type, accept="application/json"):
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        if content_type:
            headers["Content-Type"] = content_type
        headers.update(self._auth_headers())
        return headers


def api_client(params, timeout=DEFAULT_RETRY_SECONDS):
    """The Kube client for the module parameters of KUBE_ARGS; transient failures are retried for up to
    ``timeout`` seconds per request (the module's timeout).

    Order: host + api_key; else kubeconfig (option, KUBECONFIG, ~/.kube/config) with context; else the
    in-cluster service account. ``host``, ``api_key`` and the TLS options override what the kubeconfig says.
    """
    return Kube(connection(params), retry_seconds=timeout)


def connection(params):
    """The Connection for the module parameters of KUBE_ARGS (see api_client)."""
    if KUBERNETES_IMPORT_ERROR:
        raise ConvergeError(f"the kubernetes Python library is required: {KUBERNETES_IMPORT_ERROR}")
    configuration = k8s_client.Configuration()
    host, api_key = params.get("host"), params.get("api_key")
    if host and api_key:
        configuration.host = host
        credentials = f"the api_key option (or K8S_AUTH_API_KEY) for host {host}"
    else:
        paths, origin = kubeconfig_paths(params.get("kubeconfig"))
        if paths:
            credentials = _load_kubeconfig(configuration, paths, origin, params.get("context"))
        else:
            _load_in_cluster(configuration)
            credentials = f"the in-cluster service account token ({SERVICE_ACCOUNT_TOKEN})"
        if host:
            configuration.host = host
        if api_key:
            credentials = f"the api_key option (or K8S_AUTH_API_KEY) with the server of {credentials}"
    if api_key:
        configuration.api_key = {"authorization": "Bearer " + api_key}
        configuration.refresh_api_key_hook = None
    if params.get("ca_cert"):
        configuration.ssl_ca_cert = params["ca_cert"]
    if params.get("client_cert"):
        configuration.cert_file = params["client_cert"]
    if params.get("client_key"):
        configuration.key_file = params["client_key"]
    if params.get("validate_certs") is not None:
        configuration.verify_ssl = params["validate_certs"]
    return Connection.of_configuration(configuration, credentials)


def kubeconfig_paths(option):
    """(paths, origin): the kubeconfig files to read and what named them; no paths when none is configured.

    The option names one file; KUBECONFIG a list (kubectl's rules: files that do not exist are skipped).
    """
    if option:
        return [option], "the kubeconfig option (or K8S_AUTH_KUBECONFIG)"
    listed = [path for path in os.environ.get("KUBECONFIG", "").split(os.pathsep) if path]
    if listed:
        existing = [path for path in listed if os.path.exists(path)]
        return existing or listed, "KUBECONFIG"
    default = os.path.expanduser("~/.kube/config")
    return ([default] if os.path.exists(default) else []), "the default location"


def read_kubeconfig(path, origin):
    """The mapping in a kubeconfig file; ConvergeError naming the file when it is missing or not YAML."""
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConvergeError(f"kubeconfig {path} (from {origin}) cannot be read: {exc.strerror}",
                            kubeconfig=path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConvergeError(f"kubeconfig {path} (from {origin}) is not valid YAML{where}: {problem}",
                            kubeconfig=path) from None
    if not isinstance(data, dict):
        raise ConvergeError(f"kubeconfig {path} (from {origin}) is not a kubeconfig: it holds a "
                            f"{type(data).__name__}, not a mapping with clusters, users and contexts",
                            kubeconfig=path)
    return data


def _load_kubeconfig(configuration, paths, origin, context):
    """Load the kubeconfig files into the configuration; returns the description of its credentials."""
    configs = [read_kubeconfig(path, origin) for path in paths]
    names = " and ".join(paths)
    # kubectl's merge: the first file that sets current-context wins; contexts are found in any file.
    context = context or next((c.get("current-context") for c in configs if c.get("current-context")), None)
    entries = [entry for c in configs for entry in (c.get("contexts") or []) if isinstance(entry, dict)]
    found = next((entry.get("context") or {} for entry in entries if entry.get("name") == context), None)
    if context and found is None:
        known = sorted(str(entry.get("name")) for entry in entries)
        raise ConvergeError(f"kubeconfig {names} has no context {context!r}; it has: {', '.join(known) or 'none'}",
                            kubeconfig=names)
    try:
        k8s_config.load_kube_config(config_file=os.pathsep.join(paths), context=context,
                                    client_configuration=configuration, persist_config=False)
    except Exception as exc:  # the library raises several types for unusable files; the text says what is wrong
        raise ConvergeError(f"cannot use kubeconfig {names} (context {context}): {exc}", kubeconfig=names) from None
    return f"kubeconfig {names} (context {context}, user {(found or {}).get('user')})"


def _load_in_cluster(configuration):
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except Exception as exc:  # ConfigException, or OSError reading the service account files
        raise ConvergeError("no Kubernetes connection is configured: set kubeconfig (or K8S_AUTH_KUBECONFIG or "
                            "KUBECONFIG), or host and api_key, or run inside a cluster with a service account "
                            f"({exc})") from None


# ---------------------------------------------------------------------------------------- failures

def backoff_delay(attempt, retry_after=None):
    """Seconds to wait before attempt ``attempt + 1``: exponential from BACKOFF_FIRST, capped at BACKOFF_CAP,
    with jitter so concurrent requests do not return in step; the server's Retry-After when it gives one."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), BACKOFF_CAP)
    return min(BACKOFF_FIRST * 2 ** (attempt - 1), BACKOFF_CAP) * random.uniform(0.8, 1.0)


def transient_answer(status, message, retry_after=None):
    """Whether an HTTP error answer is worth retrying (see the module's docstring)."""
    return (status in RETRY_STATUSES or (retry_after is not None and (status or 0) >= 500)
            or any(text in (message or "") for text in TRANSIENT_MESSAGES))


def transport_failure(exc):
    """(transient, maybe_processed, text) for an exception raised while sending a request or reading its answer.

    A request whose connection was never established cannot have been processed; any later failure (reset,
    read timeout) may come after the server acted on it.
    """
    text = transport_text(exc)
    if isinstance(exc, NameResolutionError):
        return False, False, text  # a wrong host name: retrying will not fix it
    if isinstance(exc, (NewConnectionError, ConnectTimeoutError)):
        return True, False, text
    if isinstance(exc, SSLError):
        # A certificate problem is permanent; a handshake cut by a stopping server is not.
        return bool(re.search(r"EOF|reset|closed|timed out", text, re.IGNORECASE)), False, text
    return True, True, text


def transport_text(exc):
    """A short text for a transport exception: the OS error when there is one (e.g. Connection refused)."""
    for candidate in _causes(exc):
        if isinstance(candidate, OSError) and candidate.strerror:
            return candidate.strerror
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
    if match:
        return match.group(1).strip()
    args = getattr(exc, "args", ())
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], BaseException):
        return f"{args[0].rstrip('.')}: {args[1]}"  # urllib3's ProtocolError('Connection aborted.', cause)
    return str(exc) or type(exc).__name__


def _causes(exc):
    """The exception and those it wraps (urllib3 keeps them in ``reason`` or in its arguments)."""
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        wrapped = [getattr(exc, "reason", None)] + list(getattr(exc, "args", ())) + [exc.__cause__, exc.__context__]
        exc = next((item for item in wrapped if isinstance(item, BaseException)), None)
    return seen


def holds(live, sent):
    """Whether the live object holds everything a request body sent (null: absent), server write stamps aside."""
    if isinstance(sent, dict):
        if not isinstance(live, dict):
            return False
        return all((value is None and live.get(key) is None) or (key in live and holds(live[key], value))
                   for key, value in sent.items())
    return live == sent


def _without_stamps(body):
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        return body
    return dict(body, metadata={key: value for key, value in metadata.items() if key not in _WRITE_STAMPS})


def _named_path(method, path, body):
    """The path of the object a write addresses, or None when it cannot be known (generateName)."""
    if method != "POST":
        return path
    name = ((body or {}).get("metadata") or {}).get("name") if isinstance(body, dict) else None
    return f"{path}/{name}" if name else None


def _replayable(method, query, body, content_type):
    """Whether a request that may have been processed can be sent again: its repetition either changes
    nothing or fails in a way we can check (409 on a named object)."""
    if method in ("GET", "HEAD", "DELETE") or content_type == "application/apply-patch+yaml":
        return True
    if (query or {}).get("dryRun"):
        return True
    return isinstance(body, dict) and _named_path(method, "", body) is not None


def _decode(raw):
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw.decode(errors="replace")[:500]}


def _retry_after(headers, status=None):
    """Seconds the server asks us to wait (Retry-After, or its Status' details.retryAfterSeconds), or None."""
    details = (status.get("details") or {}) if isinstance(status, dict) else {}
    for value in ((headers or {}).get("Retry-After"), details.get("retryAfterSeconds")):
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None


# -------------------------------------------------------------------------------------------- client

class Kube:
    """Requests to one API server over one connection pool, with retries of transient failures.

    ``retry_seconds`` bounds how long one request keeps retrying (a caller may pass an earlier ``deadline``).
    """

    def __init__(self, api, retry_seconds=DEFAULT_RETRY_SECONDS, sleep=None, clock=time.monotonic):
        if not isinstance(api, Connection):  # a kubernetes ApiClient: use its configuration
            api = Connection.of_configuration(api.configuration,
                                              f"the client configuration for {api.configuration.host}")
        self.connection = api
        self.host = api.host
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def of(cls, api):
        """A Kube for either a Kube or a kubernetes ApiClient."""
        return api if isinstance(api, cls) else cls(api)

    # -- requests

    def request(self, method, path, query=None, body=None, content_type="application/json", timeout=60,
                deadline=None, stop=None):
        """The decoded JSON answer; raises KubeApiError. Transient failures are retried until ``deadline``
        (time.monotonic() seconds; default: ``retry_seconds`` from now); ``stop`` (a threading.Event) ends the
        retries early."""
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        response, maybe_repeated = self._exchange(method, path, query, payload, content_type, timeout, deadline,
                                                  stop, replayable=_replayable(method, query, body, content_type))
        data = _decode(response.data)
        if 200 <= response.status <= 299:
            return data
        error = self._error(response, data, method, path)
        if maybe_repeated:
            return self._settle_repeat(error, method, path, body, content_type, deadline)
        raise error

    def get_or_none(self, path, deadline=None):
        try:
            return self.request("GET", path, deadline=deadline)
        except KubeApiError as exc:
            if exc.not_found:
                return None
            raise

    def read_text(self, path, query=None, timeout=60, deadline=None):
        """The answer as text (such as a pod's log, GET .../pods/<pod>/log); raises KubeApiError."""
        response, _repeated = self._exchange("GET", path, query, None, None, timeout, deadline, None,
                                             replayable=True, accept="*/*")
        if 200 <= response.status <= 299:
            return response.data.decode("utf-8", errors="replace")
        raise self._error(response, _decode(response.data), "GET", path)

    def open_watch(self, path, query, read_timeout):
        """A WatchStream of ``GET path?watch=1&...`` (one attempt). KubeApiError when it cannot be opened;
        ``transient`` tells whether to try again later."""
        query = dict(query or {}, watch="1")
        url = self.host + path + "?" + urlencode(query)
        try:
            response = self.connection.pool.request(
                "GET", url, headers=self.connection.headers(None), preload_content=False, retries=False,
                timeout=Timeout(connect=CONNECT_SECONDS, read=read_timeout))
        except (HTTPError, OSError) as exc:
            transient, _processed, text = transport_failure(exc)
            raise KubeApiError(None, "NoAnswer", f"cannot watch {path} at the API server {self.host}: {text}",
                               transient=transient) from None
        if response.status != 200:
            data = _decode(response.data)
            response.release_conn()
            raise self._error(response, data, "GET", path)
        return WatchStream(response, self.host, path)

    # -- internals

    def _exchange(self, method, path, query, payload, content_type, timeout, deadline, stop, replayable,
                  accept="application/json"):
        """(response, maybe_repeated): the first answer that is not a transient failure, retrying until the
        deadline. ``maybe_repeated`` when an earlier attempt may have been processed by the server."""
        url = self.host + path + ("?" + urlencode(query) if query else "")
        started = self._clock()
        deadline = deadline if deadline is not None else started + self.retry_seconds
        attempt, maybe_repeated = 0, False
        while True:
            attempt += 1
            remaining = max(deadline - self._clock(), 1.0)
            try:
                response = self.connection.pool.request(
                    method, url, body=payload, headers=self.connection.headers(content_type, accept),
                    timeout=Timeout(connect=min(CONNECT_SECONDS, remaining), read=min(timeout, remaining)),
                    retries=False, preload_content=True)
            except (HTTPError, OSError) as exc:
                transient, processed, last = transport_failure(exc)
                status, retry_after = None, None
                if not transient:
                    raise KubeApiError(None, "NoAnswer", f"cannot reach the Kubernetes API server at {self.host} "
                                                         f"({method} {path}): {last}") from None
            else:
                data = None if 200 <= response.status <= 299 else _decode(response.data)
                message = data.get("message") if isinstance(data, dict) else None
                retry_after = _retry_after(response.headers, data)
                if not (data is not None and transient_answer(response.status, message, retry_after)):
                    return response, maybe_repeated
                status, processed = response.status, True
                last = f"HTTP {response.status} {response.reason}" + (f": {message}" if message else "")
            if processed and not replayable:
                raise KubeApiError(status, "Unknown", f"{method} {path} at the API server {self.host} failed and "
                                                      f"may or may not have been done; not sent again: {last}")
            remaining = deadline - self._clock()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                if attempt == 1 and status is not None:
                    return response, maybe_repeated  # no time to retry: the server's own answer is the error
                raise self._gave_up(method, path, status, attempt, self._clock() - started, last)
            maybe_repeated = maybe_repeated or processed
            delay = min(backoff_delay(attempt, retry_after), remaining)
            if stop is not None:
                if stop.wait(delay):
                    raise self._gave_up(method, path, status, attempt, self._clock() - started, last)
            else:
                (self._sleep or time.sleep)(delay)

    def _gave_up(self, method, path, status, attempts, seconds, last):
        if attempts == 1:
            return KubeApiError(status, "NoAnswer", f"cannot reach the Kubernetes API server at {self.host} "
                                                    f"({method} {path}): {last}", transient=True)
        return KubeApiError(status, "Unavailable",
                            f"the Kubernetes API server at {self.host} did not answer {method} {path}: retried for "
                            f"{seconds:.0f} s ({attempts} attempts); last error: {last}",
                            transient=True, api_server=self.host, request=f"{method} {path}",
                            retried_seconds=round(seconds, 1), attempts=attempts, last_error=last)

    def _error(self, response, data, method, path):
        message = data.get("message") if isinstance(data, dict) else None
        reason = (data.get("reason") if isinstance(data, dict) else None) or response.reason
        if response.status == 401:
            message = (f"the Kubernetes API server at {self.host} refused the credentials from "
                       f"{self.connection.credentials} (401 Unauthorized) to {method} {path}")
        return KubeApiError(response.status, reason, message,
                            transient=transient_answer(response.status, message, _retry_after(response.headers, data)))

    def _settle_repeat(self, error, method, path, body, content_type, deadline):
        """The answer to a request sent again after an attempt that may have been done: a DELETE that finds
        nothing left did its work; a write that meets 409 did its work when the object holds what it sent."""
        if method == "DELETE" and error.not_found:
            return {}
        target = _named_path(method, path, body)
        if error.status == 409 and method in ("POST", "PUT", "PATCH") and isinstance(body, dict) and target \
                and content_type != "application/apply-patch+yaml":
            live = self.get_or_none(target, deadline=deadline)
            if live is not None and holds(live, _without_stamps(body)):
                return live
        raise error


# --------------------------------------------------------------------------------------------- watches

class WatchDecoder:
    """Splits a watch answer (one JSON event per line, cut anywhere into chunks) into events."""

    def __init__(self):
        self._buffer = b""

    def feed(self, chunk):
        """The complete events in the data so far: [{"type": ..., "object": {...}}]."""
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [self._event(line) for line in lines if line.strip()]

    def finish(self):
        """At the end of the answer: raises when a partial event is left (the connection was cut)."""
        if self._buffer.strip():
            raise ValueError(f"the watch answer ended inside an event ({len(self._buffer)} bytes)")

    @staticmethod
    def _event(line):
        event = json.loads(line)
        if not isinstance(event, dict) or "type" not in event:
            raise ValueError(f"a watch event without a type: {line[:200]!r}")
        return event


def watch_error(status, host, path):
    """The KubeApiError for a watch event of type ERROR (its object is a Status); code 410: history expired."""
    status = status if isinstance(status, dict) else {}
    code, message = status.get("code"), status.get("message") or ""
    return KubeApiError(code, status.get("reason") or "Error", f"watch of {path} at {host}: {message or code}",
                        transient=transient_answer(code, message, _retry_after(None, status)))


class WatchStream:
    """The events of an open watch: iterate for {"type", "object"} dicts (ADDED, MODIFIED, DELETED, BOOKMARK);
    an ERROR event or a cut connection raises KubeApiError; the iteration ends when the server ends the watch.
    ``close()`` may be called from another thread to end a blocked read."""

    def __init__(self, response, host, path):
        self._response = response
        self._host, self._path = host, path
        self._closed = threading.Event()

    def __iter__(self):
        decoder = WatchDecoder()
        try:
            for chunk in self._response.stream(64 * 1024, decode_content=True):
                for event in decoder.feed(chunk):
                    if event["type"] == "ERROR":
                        raise watch_error(event.get("object"), self._host, self._path)
                    yield event
            decoder.finish()
        except Exception as exc:
            if self._closed.is_set():
                return  # closed by close(): whatever the read raised is expected
            if isinstance(exc, KubeApiError) or not isinstance(exc, (HTTPError, OSError, ValueError)):
                raise
            text = str(exc) if isinstance(exc, ValueError) else transport_text(exc)
            raise KubeApiError(None, "Disconnected", f"the watch of {self._path} at the API server {self._host} "
                                                     f"was cut: {text}", transient=True) from None
        finally:
            self._closed.set()
            self._response.close()  # never back to the pool half read

    def close(self):
        """End the stream from any thread; a read blocked in another thread returns."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._response.shutdown()  # urllib3 >= 2.3: unblocks a read in another thread
        except Exception:  # older urllib3, or already released: shut the socket down directly
            sock = getattr(getattr(self._response, "connection", None), "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
