# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a chart sees of its release and cluster, read from the cluster as Helm and werf read it:
the next revision and whether it upgrades (from the release history), and the cluster's capabilities."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.berth.converge.plugins.module_utils.kube.release import history
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import Kube
from ansible_collections.berth.converge.plugins.module_utils.render import ReleaseContext

DISCOVERY_CONCURRENCY = 8


def cluster_capabilities(kube):
    """``(kube_version, api_versions)``: the server's version, and each group/version it serves with each
    of its kinds (subresources' included) as group/version/Kind: the set Helm reads from a cluster for
    ``.Capabilities.APIVersions``."""
    version = kube.request("GET", "/version").get("gitVersion")
    group_versions = ["v1"] + [entry["groupVersion"] for group in kube.request("GET", "/apis").get("groups") or []
                               for entry in group.get("versions") or []]

    def kinds(group_version):
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        listing = kube.get_or_none(path) or {}
        return [f"{group_version}/{r['kind']}" for r in listing.get("resources") or []]  # subresources too, as Helm

    with ThreadPoolExecutor(max_workers=DISCOVERY_CONCURRENCY) as pool:
        listed = list(pool.map(kinds, group_versions))
    return version, tuple(sorted(set(group_versions).union(*listed)))


def release_context(api, release, namespace):
    """The ReleaseContext of the next converge of ``release``: revision latest + 1 and an upgrade when the
    release has revisions, else revision 1 and an install; capabilities of the cluster."""
    kube = Kube.of(api)
    revisions = history(kube, release, namespace)
    kube_version, api_versions = cluster_capabilities(kube)
    return ReleaseContext(revision=revisions[-1].version + 1 if revisions else 1, is_upgrade=bool(revisions),
                          kube_version=kube_version, api_versions=api_versions)
