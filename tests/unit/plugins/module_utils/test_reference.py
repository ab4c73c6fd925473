"""The one image-reference parser: registry.py, render.py, build.py and buildkit.py read a reference alike.

Docker's own rules are checked against the Go library in test_reference_conformance.py.
"""
import pytest

from ansible_collections.berth.converge.plugins.module_utils import render
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.reference import parse_reference, split_written

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("ref, written, tag", [
    ("index.docker.io/team/app:v1", "index.docker.io/team/app", "v1"),
    ("busybox", "busybox", ""),
    ("127.0.0.1:5000/shop/backend:abc", "127.0.0.1:5000/shop/backend", "abc"),
    (f"localhost:5000/app:v2@{DIGEST}", "localhost:5000/app", "v2"),
    (f"localhost:5000/app@{DIGEST}", "localhost:5000/app", ""),
])
def test_split_written_keeps_the_users_spelling(ref, written, tag):
    assert split_written(ref) == (written, tag)


@pytest.mark.parametrize("ref", ["index.docker.io/team/app:v1", "docker.io/team/app:v1", "team/app:v1",
                                 "index.docker.io/app:v1", "127.0.0.1:5000/shop/backend:abc", "Host/app:v1"])
def test_every_reader_finds_the_same_registry(ref):
    registry = parse_reference(ref).registry
    assert render.split_registry(split_written(ref)[0])[0] == registry
    (image,) = render.normalize_images([{"name": "app", "ref": ref}])
    assert render.split_registry(image["repo"])[0] == registry
    assert registry != "index.docker.io"


def test_normalize_images_names_the_entry_with_a_bad_reference():
    with pytest.raises(ConvergeError, match=r"images\[0\] \(app\): invalid image reference 'Team/App:v1'"):
        render.normalize_images([{"name": "app", "ref": "Team/App:v1"}])
