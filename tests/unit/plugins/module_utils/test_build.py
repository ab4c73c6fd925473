"""Builder push retries and dependency scheduling, with a fake Docker API (the module boundary)."""
import pytest

from ansible_collections.berth.converge.plugins.module_utils import build
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

IMAGE = {"name": "backend", "ref": "127.0.0.1:5000/shop/backend:abc", "digest": "abc"}


class FakeDocker:
    """Push streams scripted per attempt: each a list of chunks as the Docker API sends them."""

    def __init__(self, attempts):
        self.attempts = list(attempts)
        self.pushes = []

    def push(self, repository, tag=None, stream=False, decode=False, auth_config=None):
        self.pushes.append((repository, tag, auth_config))
        return iter(self.attempts.pop(0))


def builder(fake, auth=None):
    return build.Builder(lambda: fake, "shop", "c0ffee", lambda ref: auth)


def test_push_retries_with_backoff_until_it_succeeds():
    fake = FakeDocker([[{"error": "connection reset"}], [{"error": "EOF"}],
                       [{"status": "Pushed"}, {"aux": {"Tag": "abc", "Digest": "sha256:1", "Size": 1}}]])
    sleeps = []
    assert builder(fake).push(IMAGE, sleep=sleeps.append) == "sha256:1"
    assert sleeps == [build.PUSH_BACKOFF, build.PUSH_BACKOFF * 2]
    assert [p[:2] for p in fake.pushes] == [("127.0.0.1:5000/shop/backend", "abc")] * 3


def test_push_gives_up_after_the_attempts_naming_the_image_and_error():
    fake = FakeDocker([[{"error": "blob upload unknown"}]] * build.PUSH_ATTEMPTS)
    with pytest.raises(ConvergeError, match=r"image 'backend': push of 127\.0\.0\.1:5000/shop/backend:abc failed "
                                            r"after 4 attempt\(s\): blob upload unknown"):
        builder(fake).push(IMAGE, sleep=lambda seconds: None)
    assert len(fake.pushes) == build.PUSH_ATTEMPTS


def test_push_does_not_retry_refused_credentials():
    fake = FakeDocker([[{"error": "unauthorized: authentication required"}]])
    with pytest.raises(ConvergeError, match="after 1 attempt"):
        builder(fake, auth={"username": "u", "password": "p"}).push(IMAGE, sleep=lambda seconds: None)
    assert fake.pushes[0][2] == {"username": "u", "password": "p"}


class RecordingBuilder:
    def __init__(self, fail=None):
        self.order, self.fail, self.local = [], fail, []

    def local_image_id(self, ref):
        self.local.append(ref)
        return "sha256:id-" + ref

    def build(self, image, context, build_args):
        if image["name"] == self.fail:
            raise ConvergeError(f"image '{image['name']}': build failed")
        self.order.append((image["name"], dict(build_args)))
        return "sha256:" + image["name"], ["Step 1/1 : FROM x"]

    def push(self, image):
        return "sha256:manifest-" + image["name"]


def images():
    base = {"name": "base", "ref": "r/base:1", "tag": "1", "repo": "r/base", "digest": "1", "dependencies": []}
    imports = [{"type": "ImageName", "targetBuildArg": "BASE"}, {"type": "ImageDigest", "targetBuildArg": "BASE_DIGEST"}]
    app = {"name": "app", "ref": "r/app:2", "tag": "2", "repo": "r/app", "digest": "2", "args": {"A": "x"},
           "dependencies": [{"image": "base", "imports": imports}]}
    other = {"name": "other", "ref": "r/other:3", "tag": "3", "repo": "r/other", "digest": "3", "dependencies": []}
    return [app, base, other]


def test_dependencies_build_first_and_imports_become_build_args():
    recorder = RecordingBuilder()
    results = build.build_missing(images(), ["app", "base", "other"], lambda image: b"", recorder, concurrency=2)
    names = [name for name, _args in recorder.order]
    assert names.index("base") < names.index("app")
    app_args = dict(recorder.order)["app"]
    assert app_args == {"A": "x", "BASE": "r/base:1", "BASE_DIGEST": "sha256:manifest-base"}
    assert "r/base:1" in recorder.local  # the dependency is made local before the dependent builds
    assert [(r.name, r.changed) for r in results] == [("app", True), ("base", True), ("other", True)]


def test_present_images_are_not_built_but_their_imports_are_used():
    recorder = RecordingBuilder()
    given = images()
    given[1]["manifest_digest"] = "sha256:in-registry"
    results = build.build_missing(given, ["app"], lambda image: b"", recorder)
    assert [name for name, _args in recorder.order] == ["app"]
    assert recorder.order[0][1]["BASE_DIGEST"] == "sha256:in-registry"
    assert {r.name: r.changed for r in results} == {"app": True, "base": False, "other": False}


def test_a_failed_build_stops_its_dependents():
    recorder = RecordingBuilder(fail="base")
    with pytest.raises(ConvergeError, match="image 'base': build failed"):
        build.build_missing(images(), ["app", "base"], lambda image: b"", recorder)
    assert "app" not in [name for name, _args in recorder.order]
