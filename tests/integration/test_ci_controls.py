# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CI controls werf users rely on, through the converge role on the example shop: require built images,
the deploy report, saved plans, one build for many targets."""

from __future__ import annotations

import json

import pytest
import requests

from gitrepo import commit
from test_role_converge import IMAGES, _namespace_exists, revisions, shop  # noqa: F401  (shop is a fixture)


def tags(registry, shop, image):
    response = requests.get(f"http://{registry}/v2/t-{shop.env}/shop/{image}/tags/list", timeout=10)
    return [] if response.status_code == 404 else response.json().get("tags") or []


def test_require_built_images_fails_before_any_write_listing_the_missing(shop, kube_api, registry):
    rc, output, items = shop.converge(converge_require_built_images=True)
    assert rc != 0
    for image in IMAGES:
        assert f"{image} ({shop.repo}/{image}:" in output, output
    assert not _namespace_exists(kube_api, shop.namespace)
    assert all(tags(registry, shop, image) == [] for image in IMAGES)

    rc, output, _items = shop.converge()  # the build job
    assert rc == 0, output
    rc, output, items = shop.converge(converge_require_built_images=True)  # the deploy job: all built
    assert rc == 0, output
    assert revisions(kube_api, shop) == [(1, "deployed")]

    (shop.dir / "frontend" / "site" / "index.html").write_text("<h1>not built yet</h1>\n")
    commit(shop.dir, message="frontend: v2")
    rc, output, items = shop.converge(converge_require_built_images=True)
    assert rc != 0
    assert "require_built: not in the registry, and not built: frontend (" in output, output
    assert "backend (" not in output.split("require_built:", 1)[1].splitlines()[0]
    assert revisions(kube_api, shop) == [(1, "deployed")]
    assert len(tags(registry, shop, "frontend")) == 1
