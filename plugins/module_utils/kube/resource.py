# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The REST mapping (apiVersion + kind -> path) from API discovery, cached once per process and API server.

``Kube`` and ``KubeApiError`` (the client and its error, see client.py) are importable from here too.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.client import Kube, KubeApiError

__all__ = ["CRD_API_VERSION", "Kube", "KubeApiError", "ResourceMapper", "ResourceType", "crd_kinds", "crd_scopes",
           "split_api_version"]

CRD_API_VERSION = "apiextensions.k8s.io/v1"


def split_api_version(api_version):
    """("apps", "v1") for "apps/v1", ("", "v1") for the core "v1"."""
    group, _slash, version = api_version.rpartition("/")
    return group, version


@dataclass(frozen=True)
class ResourceType:
    """Where objects of one kind live in the REST API."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace=None, name=None):
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return base + (f"/{quote(name, safe='')}" if name else "")


# Discovery answers per (API server, group/version), shared by every mapper in the process.
_DISCOVERY = {}
_DISCOVERY_LOCK = threading.Lock()


class ResourceMapper:
    """Maps apiVersion + kind to a ResourceType, discovering each group/version once per process."""

    def __init__(self, kube):
        self.kube = kube
        self._refreshed = set()

    def find(self, api_version, kind):
        """The ResourceType, or None when the server does not serve that kind.

        A miss refreshes a cached group/version once per mapper, not once per object of an unknown kind.
        """
        kinds = self._kinds(api_version, refresh=False)
        if kind not in kinds and api_version not in self._refreshed:
            kinds = self._kinds(api_version, refresh=True)
        return kinds.get(kind)

    def lookup(self, api_version, kind):
        rtype = self.find(api_version, kind)
        if rtype is None:
            raise ConvergeError(f"the API server does not serve kind {kind} in apiVersion {api_version}")
        return rtype

    def find_resource(self, resource_type, version=None, group=None):
        """The ResourceType that kubectl's `<type>[.<version>.<group>]` names (plural or kind, any case), or
        None. Without a version, the core group is searched first, then every group's preferred version."""
        if version:
            candidates = [f"{group}/{version}" if group and group != "core" else version]
        else:
            groups = (self.kube.get_or_none("/apis") or {}).get("groups") or []
            candidates = ["v1"] + [g["preferredVersion"]["groupVersion"] for g in groups if g.get("preferredVersion")]
        wanted = resource_type.lower()
        for api_version in candidates:
            for rtype in self._kinds(api_version, refresh=False).values():
                if wanted in (rtype.plural, rtype.kind.lower()):
                    return rtype
        return None

    def wait_for_crd(self, name, timeout=60.0):
        """Wait until the CRD is Established and its kinds are mappable, so its objects can be applied."""
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{quote(name, safe='')}"
        deadline = time.monotonic() + timeout
        while True:
            crd = self.kube.get_or_none(path) or {}
            if _established(crd) and all(kind in self._kinds(api_version, refresh=True)
                                         for api_version, kind in crd_kinds(crd)):
                return
            if time.monotonic() > deadline:
                raise ConvergeError(f"CustomResourceDefinition {name} did not become Established "
                                    f"and served within {timeout:.0f} s")
            time.sleep(0.1)

    def _kinds(self, api_version, refresh):
        key = (self.kube.host, api_version)
        with _DISCOVERY_LOCK:
            cached = _DISCOVERY.get(key)
        if cached is not None and not refresh:
            return cached
        kinds = self._discover(api_version)
        self._refreshed.add(api_version)
        with _DISCOVERY_LOCK:
            _DISCOVERY[key] = kinds
        return kinds

    def _discover(self, api_version):
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        listing = self.kube.get_or_none(path) or {}
        kinds = {}
        for entry in listing.get("resources", []):
            if "/" in entry["name"]:  # subresources such as deployments/status
                continue
            kinds[entry["kind"]] = ResourceType(group, version, entry["kind"], entry["name"], entry["namespaced"])
        return kinds


def _established(crd):
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def crd_kinds(crd):
    """(apiVersion, kind) of every served version of a CRD manifest."""
    spec = crd.get("spec") or {}
    group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
    return [(f"{group}/{v['name']}", kind) for v in spec.get("versions") or [] if v.get("served", True)]


def crd_scopes(manifests):
    """{(group, kind): namespaced} for the CRDs among manifests: kinds the server may not serve yet."""
    scopes = {}
    for obj in manifests:
        if obj.get("kind") == "CustomResourceDefinition" and obj.get("apiVersion") == CRD_API_VERSION:
            spec = obj.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind")
            scopes[(spec.get("group"), kind)] = spec.get("scope", "Namespaced") == "Namespaced"
    return scopes
