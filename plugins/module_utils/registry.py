# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small OCI distribution API client: image references, registry credentials, manifest existence.

No Docker daemon is involved. ``resolve_credentials`` is public so that image builds can hand the same
credentials to the Docker SDK (``Credentials.docker_auth_config()``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.reference import (
    DOCKER_HUB, DOCKER_HUB_API_HOST, DOCKER_HUB_LEGACY, parse_reference, parse_repository)

try:
    import requests
    from requests.adapters import HTTPAdapter
except ImportError:  # reported by the modules (requirements.check_libraries)
    requests = HTTPAdapter = None

DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
# Docker config keys that all mean Docker Hub (credentials; references normalize only index.docker.io)
DOCKER_HUB_ALIASES = frozenset({DOCKER_HUB, DOCKER_HUB_LEGACY, DOCKER_HUB_API_HOST})

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
INDEX_MEDIA_TYPES = ("application/vnd.oci.image.index.v1+json",
                     "application/vnd.docker.distribution.manifest.list.v2+json")
# Tags per page of a tag listing (distribution serves at most 1000 unless configured otherwise).
TAGS_PAGE_SIZE = 1000

# A helper's answer when it simply has nothing for the server.
_HELPER_NOT_FOUND = "credentials not found"
_HELPER_TIMEOUT = 60
# Token lifetime when the token service does not say (distribution token spec).
_DEFAULT_TOKEN_SECONDS = 60
# Refresh this early so a token does not expire between cache lookup and use.
_TOKEN_SAFETY_SECONDS = 5


@dataclass(frozen=True)
class Credentials:
    """Registry credentials: username and password, or an identity (refresh) token. Secrets never print."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)

    def docker_auth_config(self):
        """The ``auth_config`` dict the Docker SDK takes for pull and push."""
        if self.identity_token:
            return {"identitytoken": self.identity_token}
        return {"username": self.username, "password": self.password}


def resolve_credentials(registry_host, username=None, password=None, docker_config=None):
    """Credentials for ``registry_host`` (as in a Reference, ``docker.io`` for Docker Hub), or None.

    Order: explicit ``username``/``password`` (used for every registry); then the Docker ``config.json``
    (``docker_config``, else ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``):
    ``credHelpers[host]``, ``auths[host]``, ``credsStore``. A helper program that is not installed
    means no credentials. Raises ConvergeError for an unreadable config or a failing helper.
    """
    if username or password:
        if not (username and password):
            raise ConvergeError("registry_username and registry_password must be given together")
        return Credentials(username=username, password=password)
    path = docker_config_path(docker_config)
    config = _read_docker_config(path, required=docker_config is not None)
    host = _normalize_host(registry_host)
    helper = _lookup_host(config.get("credHelpers"), host)
    return (
        (helper and _credentials_from_helper(helper, registry_host))
        or _credentials_from_auths(_lookup_host(config.get("auths"), host), path, host)
        or (config.get("credsStore") and _credentials_from_helper(config["credsStore"], registry_host))
        or None
    )


def credentials_from_params(params, registry_host):
    """resolve_credentials with the options of the ``berth.converge.registry`` doc fragment."""
    return resolve_credentials(registry_host, params.get("registry_username"), params.get("registry_password"),
                               params.get("docker_config"))


def docker_config_path(docker_config=None):
    """Path of the Docker config file: the given one, ``$DOCKER_CONFIG/config.json`` or the home default."""
    if docker_config:
        return os.path.expanduser(docker_config)
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def _read_docker_config(path, required):
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except FileNotFoundError:
        if required:
            raise ConvergeError(f"Docker config {path} (docker_config) does not exist", path=path) from None
        return {}
    except (OSError, ValueError) as exc:
        raise ConvergeError(f"cannot read Docker config {path}: {exc}", path=path) from None
    if not isinstance(config, dict):
        raise ConvergeError(f"Docker config {path} is not a JSON object", path=path)
    return config


def _normalize_host(key):
    """Host of a config key such as ``https://host/v1/``; Docker Hub's aliases become ``docker.io``."""
    host = urlsplit(key if "://" in key else f"//{key}").netloc.lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def _lookup_host(section, host):
    if not isinstance(section, dict):
        return None
    return next((value for key, value in section.items() if _normalize_host(key) == host), None)


def _credentials_from_auths(entry, path, host):
    if not isinstance(entry, dict):
        return None
    username, password = entry.get("username"), entry.get("password")
    if entry.get("auth"):
        username, password = _decode_auth(entry["auth"], path, host)
    if entry.get("identitytoken"):
        return Credentials(username=username, identity_token=entry["identitytoken"])
    if username and password:
        return Credentials(username=username, password=password)
    return None


def _decode_auth(value, path, host):
    try:
        username, colon, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, TypeError):
        colon = ""
    if not colon:
        raise ConvergeError(f"Docker config {path}: auths entry for {host} has an \"auth\" value that is not "
                            "base64 of user:password", path=path, registry=host)
    return username, password


def _credentials_from_helper(helper, registry_host):
    program = f"docker-credential-{helper}"
    if not shutil.which(program):
        return None
    server = DOCKER_HUB_CONFIG_KEY if _normalize_host(registry_host) == DOCKER_HUB else registry_host
    try:
        proc = subprocess.run([program, "get"], input=server, capture_output=True, text=True,
                              timeout=_HELPER_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConvergeError(f"credential helper {program} failed for {server}: {exc}", registry=server) from None
    if proc.returncode != 0:
        # Helpers print their error message on stdout; it carries no secret.
        message = (proc.stdout.strip() or proc.stderr.strip())
        if _HELPER_NOT_FOUND in message.lower():
            return None
        raise ConvergeError(f"credential helper {program} failed for {server}: {message}", registry=server)
    return _parse_helper_output(program, server, proc.stdout)


def _parse_helper_output(program, server, output):
    try:
        answer = json.loads(output)
        username, secret = answer["Username"], answer["Secret"]
    except (ValueError, KeyError, TypeError):
        # Never echo the output: it may hold the secret.
        raise ConvergeError(f"credential helper {program} gave an unreadable answer for {server}",
                            registry=server) from None
    if not secret:
        return None
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username=username, password=secret)


def is_loopback(host):
    """True for ``localhost``, ``127.0.0.0/8`` and ``[::1]`` hosts, with or without a port."""
    hostname = urlsplit(f"//{host}").hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class _Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str
    params: tuple = ()

    @classmethod
    def parse(cls, header):
        if not header:
            return None
        scheme, _space, rest = header.strip().partition(" ")
        params = re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))', rest)
        return cls(scheme.lower(), tuple((key.lower(), quoted or bare) for key, quoted, bare in params))

    def get(self, key):
        return dict(self.params).get(key)


class _TokenCache:
    """Bearer tokens per scope; concurrent askers for one scope wait for a single fetch."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = {}

    def get(self, key, fetch):
        with self._lock:
            entry = self._entries.setdefault(key, {"lock": threading.Lock(), "token": None, "expires": 0.0})
        with entry["lock"]:
            if entry["token"] is None or time.monotonic() >= entry["expires"]:
                token, lifetime = fetch()
                entry["token"] = token
                entry["expires"] = time.monotonic() + max(lifetime - _TOKEN_SAFETY_SECONDS, 1)
            return entry["token"]


class _Transport:
    """Request settings taken from the environment once.

    The sessions do not read the environment themselves (``trust_env`` off): requests would scan all of
    ``os.environ`` for proxies on every request, and let ``REQUESTS_CA_BUNDLE`` override ``ca_cert``.
    """

    def __init__(self, ca_cert, validate_certs, timeout):
        env_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.verify = (ca_cert or env_bundle or True) if validate_certs else False
        self.timeout = timeout
        self._proxies = {}

    def options(self, url):
        """``verify``, ``timeout`` and ``proxies`` (honouring ``*_proxy`` and ``no_proxy``) for a request to url."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._proxies:
            self._proxies[origin] = requests.utils.get_environ_proxies(origin)
        return {"verify": self.verify, "timeout": self.timeout, "proxies": self._proxies[origin]}


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry serves it: its digest, media type and decoded JSON body."""

    digest: str
    media_type: str
    body: dict = field(repr=False)

    @property
    def is_index(self):
        return self.media_type in INDEX_MEDIA_TYPES or "manifests" in self.body

    @property
    def config_digest(self):
        return (self.body.get("config") or {}).get("digest")

    @property
    def children(self):
        """Digests of the manifests an index lists."""
        return [item["digest"] for item in self.body.get("manifests") or [] if item.get("digest")]


def _next_page(response, base_url):
    """The URL of the next page from an RFC 5988 ``Link: <url>; rel="next"`` header, or None."""
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', response.headers.get("Link", ""))
    return urljoin(base_url + "/", match.group(1)) if match else None


def _error_codes(response):
    try:
        codes = [error.get("code") for error in response.json().get("errors") or []]
    except (ValueError, AttributeError):
        codes = []
    return f", {', '.join(code for code in codes if code)}" if any(codes) else ""


def _unsupported(response):
    return "UNSUPPORTED" in _error_codes(response)


class _Registry:
    """One registry: base URL (scheme chosen once), HTTP session and authentication."""

    def __init__(self, host, base_url, session, challenge, credentials, transport):
        self.host = host
        self.base_url = base_url
        self.session = session
        self.challenge = challenge
        self.credentials = credentials
        self.transport = transport
        self.sent = 0
        self._tokens = _TokenCache()

    def manifest_digest(self, reference, ref):
        url = f"{self.base_url}/v2/{reference.repository}/manifests/{reference.target}"
        response, headers = self._authorized("HEAD", url, reference, ref)
        if response.status_code == 404:
            return None
        self._check_status(response, ref)
        digest = response.headers.get("Docker-Content-Digest")
        return digest or self._digest_of_body(url, headers, ref)

    def _authorized(self, method, url, reference, ref, actions="pull"):
        headers = {"Accept": MANIFEST_ACCEPT, **self._auth_header(self.challenge, reference, ref, actions)}
        response = self._send(method, url, ref, headers=headers)
        challenge = _Challenge.parse(response.headers.get("WWW-Authenticate"))
        if response.status_code == 401 and challenge:
            # The repository may ask for something the /v2/ probe did not (another scheme or realm).
            retry = {"Accept": MANIFEST_ACCEPT, **self._auth_header(challenge, reference, ref, actions)}
            if retry != headers:
                headers, response = retry, self._send(method, url, ref, headers=retry)
        return response, headers

    def tags(self, reference, ref, page_size):
        """Every tag of the repository, following the ``Link`` header over all pages; [] when it is unknown."""
        url = f"{self.base_url}/v2/{reference.repository}/tags/list?n={page_size}"
        tags = []
        while url:
            response, _headers = self._authorized("GET", url, reference, ref)
            if response.status_code == 404:  # NAME_UNKNOWN: nothing was ever pushed there
                return tags
            self._check_status(response, ref, what="tag listing")
            try:
                tags.extend(response.json().get("tags") or [])
            except (ValueError, AttributeError) as exc:
                raise ConvergeError(f"repository {ref}: registry {self.host} sent an unreadable tag list: {exc}",
                                    image=ref, registry=self.host) from None
            url = _next_page(response, self.base_url)
        return tags

    def manifest(self, reference, ref):
        """The Manifest ``reference`` names (by tag or digest), or None when the registry does not have it."""
        url = f"{self.base_url}/v2/{reference.repository}/manifests/{reference.target}"
        response, _headers = self._authorized("GET", url, reference, ref)
        if response.status_code == 404:
            return None
        self._check_status(response, ref)
        content = response.content
        digest = response.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(content).hexdigest()
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ConvergeError(f"image {ref}: registry {self.host} sent a manifest that is not a JSON object",
                                image=ref, registry=self.host)
        media_type = body.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0]
        return Manifest(digest=digest, media_type=media_type, body=body)

    def blob_json(self, reference, digest, ref):
        """A JSON blob (an image config) of the repository, decoded."""
        url = f"{self.base_url}/v2/{reference.repository}/blobs/{digest}"
        response, _headers = self._authorized("GET", url, reference, ref)
        self._check_status(response, ref, what=f"blob request for {digest}")
        try:
            return response.json()
        except ValueError as exc:
            raise ConvergeError(f"image {ref}: blob {digest} is not JSON: {exc}", image=ref,
                                registry=self.host) from None

    def delete_manifest(self, reference, digest, ref):
        """DELETE the manifest ``digest`` (and so every tag on it); False when it was already gone."""
        url = f"{self.base_url}/v2/{reference.repository}/manifests/{digest}"
        response, _headers = self._authorized("DELETE", url, reference, ref, actions="delete")
        if response.status_code == 404:
            return False
        if response.status_code in (405, 400) or (response.status_code == 403 and _unsupported(response)):
            raise ConvergeError(
                f"repository {ref}: registry {self.host} refuses to delete manifests (HTTP {response.status_code}"
                f"{_error_codes(response)}); enable deletes (distribution: storage.delete.enabled: true)",
                image=ref, registry=self.host, status=response.status_code)
        self._check_status(response, ref, what=f"manifest DELETE of {digest}")
        return True

    def _digest_of_body(self, url, headers, ref):
        # Some registries omit Docker-Content-Digest on HEAD; the digest is that of the manifest bytes.
        response = self._send("GET", url, ref, headers=headers)
        self._check_status(response, ref)
        return "sha256:" + hashlib.sha256(response.content).hexdigest()

    def _auth_header(self, challenge, reference, ref, actions="pull"):
        if challenge is None:
            return {}
        if challenge.scheme == "basic" and self.credentials and self.credentials.password:
            pair = f"{self.credentials.username}:{self.credentials.password}".encode("utf-8")
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        if challenge.scheme == "bearer" and challenge.get("realm"):
            scope = f"repository:{reference.repository}:{actions}"
            key = (challenge.get("realm"), challenge.get("service"), scope)
            token = self._tokens.get(key, lambda: self._fetch_token(challenge, scope, ref))
            return {"Authorization": f"Bearer {token}"}
        return {}

    def _fetch_token(self, challenge, scope, ref):
        realm = challenge.get("realm")
        params = {key: value for key, value in (("service", challenge.get("service")), ("scope", scope)) if value}
        creds = self.credentials
        if creds and creds.identity_token:
            form = dict(params, grant_type="refresh_token", refresh_token=creds.identity_token,
                        client_id="berth.converge")
            response = self._send("POST", realm, ref, data=form)
        else:
            auth = (creds.username, creds.password) if creds and creds.password else None
            response = self._send("GET", realm, ref, params=params, auth=auth)
        self._check_status(response, ref, what=f"token service {realm}")
        return self._token_from(response, realm, ref)

    def _token_from(self, response, realm, ref):
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            lifetime = int(body.get("expires_in") or _DEFAULT_TOKEN_SECONDS)
        except (ValueError, AttributeError, TypeError):
            token = None
        if not token:
            raise ConvergeError(f"image {ref}: token service {realm} of registry {self.host} returned no token",
                                image=ref, registry=self.host)
        return token, lifetime

    def _send(self, method, url, ref, **kwargs):
        self.sent += 1  # an int += under the GIL: a count for benchmarks, not a lock-protected invariant
        try:
            return self.session.request(method, url, **self.transport.options(url), **kwargs)
        except requests.RequestException as exc:
            raise ConvergeError(f"image {ref}: request to registry {self.host} failed: {exc}",
                                image=ref, registry=self.host) from None

    def _check_status(self, response, ref, what="manifest request"):
        status = response.status_code
        if status in (401, 403):
            raise ConvergeError(self._refused(ref, status, what), image=ref, registry=self.host, status=status)
        if status >= 400:
            raise ConvergeError(f"image {ref}: registry {self.host} answered HTTP {status} to the {what}",
                                image=ref, registry=self.host, status=status)

    def _refused(self, ref, status, what):
        if self.credentials:
            who = f"user {self.credentials.username!r}" if self.credentials.username else "identity token"
            return (f"image {ref}: registry {self.host} refused the credentials ({who}) with HTTP {status} "
                    f"to the {what}")
        return (f"image {ref}: registry {self.host} requires credentials (HTTP {status} to the {what}) and none "
                "were given or found in the Docker config")


class RegistryClient:
    """Asks OCI registries whether manifests exist. Thread-safe; use as a context manager or call close().

    ``credentials_for(registry_host)`` returns Credentials or None (see resolve_credentials). HTTPS is
    verified with ``ca_cert`` when given. Plain HTTP is used only for loopback registries and
    ``insecure_registries``, and only after HTTPS fails, as Docker does.
    """

    def __init__(self, credentials_for=None, ca_cert=None, validate_certs=True, insecure_registries=(),
                 timeout=30, concurrency=16):
        if concurrency < 1:
            raise ConvergeError(f"concurrency must be at least 1, got {concurrency}")
        self._credentials_for = credentials_for or (lambda host: None)
        self._transport = _Transport(ca_cert, validate_certs, timeout)
        self._insecure = frozenset(host.lower() for host in insecure_registries)
        self.concurrency = concurrency
        self._registries = {}
        self._probes = 0
        self._locks = {}
        self._lock = threading.Lock()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Close the HTTP sessions."""
        for registry in self._registries.values():
            registry.session.close()

    def manifest_digest(self, ref):
        """Digest of the manifest ``ref`` names, or None when the registry does not have it."""
        return self._manifest_digest(parse_reference(ref), ref)

    def lookup(self, refs):
        """``(present, missing)``: dict ref -> manifest digest and the list of missing refs, in input order.

        Every reference is parsed before any request; each registry is probed once; the manifest HEADs
        then run on ``concurrency`` threads.
        """
        parsed = {ref: parse_reference(ref) for ref in dict.fromkeys(refs)}
        for ref, reference in parsed.items():
            self._registry(reference.registry, ref)
        digests = self._digests(parsed)
        present = {ref: digest for ref, digest in digests.items() if digest}
        return present, [ref for ref, digest in digests.items() if not digest]

    def list_tags(self, repository, page_size=TAGS_PAGE_SIZE):
        """Every tag of ``repository`` (``registry/path``, no tag), over all pages; [] for an unknown one."""
        reference = parse_repository(repository)
        return self._registry(reference.registry, repository).tags(reference, repository, page_size)

    def manifest(self, ref):
        """The Manifest ``ref`` names, or None when the registry does not have it."""
        reference = parse_reference(ref)
        return self._registry(reference.registry, ref).manifest(reference, ref)

    def blob_json(self, repository, digest):
        """A JSON blob of ``repository`` (an image config), decoded."""
        reference = parse_repository(repository)
        return self._registry(reference.registry, repository).blob_json(reference, digest, f"{repository}@{digest}")

    def delete_manifest(self, repository, digest):
        """Delete manifest ``digest`` of ``repository`` (distribution removes every tag on it with it).

        False when it was already gone; a registry refusing deletes (HTTP 405/UNSUPPORTED) is a ConvergeError.
        """
        reference = parse_repository(repository)
        return self._registry(reference.registry, repository).delete_manifest(reference, digest, repository)

    def check_deletes(self, repository):
        """Raise ConvergeError unless the registry accepts manifest DELETEs in ``repository``.

        Sends a DELETE for a digest no content can have (the SHA-256 of a random nonce): a registry that
        allows deletes answers 404, one that does not answers 405 (or 401/403 without the right).
        Nothing is removed either way.
        """
        nonce = hashlib.sha256(os.urandom(32)).hexdigest()
        self.delete_manifest(repository, f"sha256:{nonce}")

    @property
    def requests_sent(self):
        """HTTP requests sent so far (probes, tokens, API calls), for benchmarks."""
        return sum(registry.sent for registry in self._registries.values()) + self._probes

    def _digests(self, parsed):
        if not parsed:
            return {}
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(parsed))) as pool:
            futures = {ref: pool.submit(self._manifest_digest, reference, ref) for ref, reference in parsed.items()}
            try:
                return {ref: future.result() for ref, future in futures.items()}
            except BaseException:
                for future in futures.values():
                    future.cancel()
                raise

    def _manifest_digest(self, reference, ref):
        return self._registry(reference.registry, ref).manifest_digest(reference, ref)

    def _registry(self, host, ref):
        with self._lock:
            lock = self._locks.setdefault(host, threading.Lock())
        with lock:
            if host not in self._registries:
                self._registries[host] = self._connect(host, ref)
            return self._registries[host]

    def _connect(self, host, ref):
        api_host = DOCKER_HUB_API_HOST if host == DOCKER_HUB else host
        credentials = self._credentials_for(host)
        session = self._new_session()
        try:
            base_url, response = self._probe(session, host, api_host, ref)
        except BaseException:
            session.close()
            raise
        challenge = _Challenge.parse(response.headers.get("WWW-Authenticate")) if response.status_code == 401 else None
        return _Registry(host, base_url, session, challenge, credentials, self._transport)

    def _new_session(self):
        session = requests.Session()
        adapter = HTTPAdapter(pool_maxsize=self.concurrency)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.trust_env = False
        return session

    def _probe(self, session, host, api_host, ref):
        """GET /v2/ over HTTPS, else (when allowed) plain HTTP: gives the base URL and the auth challenge."""
        try:
            return f"https://{api_host}", self._ping(session, f"https://{api_host}")
        except requests.ConnectionError as https_error:  # includes TLS handshake failures
            if not (is_loopback(host) or host.lower() in self._insecure):
                raise ConvergeError(self._https_failed(ref, host, https_error, http_allowed=False),
                                    image=ref, registry=host) from None
            return f"http://{api_host}", self._ping_http(session, host, api_host, ref, https_error)
        except requests.RequestException as exc:
            raise ConvergeError(f"image {ref}: cannot reach registry {host}: {exc}", image=ref, registry=host) from None

    def _ping(self, session, base_url):
        self._probes += 1
        return session.get(f"{base_url}/v2/", **self._transport.options(base_url))

    def _ping_http(self, session, host, api_host, ref, https_error):
        try:
            response = self._ping(session, f"http://{api_host}")
        except requests.RequestException:
            response = None
        # 400: the port speaks TLS, so the HTTPS failure (often the certificate) is the real problem.
        if response is None or response.status_code == 400:
            raise ConvergeError(self._https_failed(ref, host, https_error, http_allowed=True),
                                image=ref, registry=host)
        return response

    @staticmethod
    def _https_failed(ref, host, error, http_allowed):
        hint = "set ca_cert to the CA that signed its certificate"
        if not http_allowed:
            hint += ", or add it to insecure_registries if it serves plain HTTP"
        kind = "TLS" if isinstance(error, requests.exceptions.SSLError) else "connection"
        return f"image {ref}: {kind} error talking to registry {host} over HTTPS ({hint}): {error}"


def client_from_params(params, concurrency=16):
    """A RegistryClient configured by the options of the ``berth.converge.registry`` doc fragment."""
    return RegistryClient(
        credentials_for=lambda host: credentials_from_params(params, host),
        ca_cert=params.get("ca_cert"),
        validate_certs=params.get("validate_certs", True),
        insecure_registries=params.get("insecure_registries") or (),
        concurrency=concurrency,
    )
