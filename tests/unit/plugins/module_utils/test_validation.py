# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.berth.converge.plugins.module_utils import validation
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError


@pytest.mark.parametrize("repo", ["127.0.0.1:5000", "localhost:5000", "registry.example.com:443",
                                  "127.0.0.1:5000/shop", "registry.example.com/team/shop"])
def test_a_registry_root_or_a_repository_is_a_repo(repo):
    validation._repo("repo", repo)  # pylint: disable=protected-access


@pytest.mark.parametrize("repo", ["shop:1", "reg:5000", "127.0.0.1:5000/shop:tag", "r.example.com/s@sha256:" + "a" * 64])
def test_a_tag_or_digest_is_no_repo(repo):
    with pytest.raises(ConvergeError, match=r"option 'repo': .* must be a repository without a tag or digest"):
        validation._repo("repo", repo)  # pylint: disable=protected-access
