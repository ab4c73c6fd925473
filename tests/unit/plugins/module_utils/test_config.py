import pytest

from ansible_collections.berth.converge.plugins.module_utils.config import load_config
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

META = "project: shop\nconfigVersion: 1\n"


def error(text):
    with pytest.raises(ConvergeError) as info:
        load_config(text, "werf.yaml")
    return str(info.value)


def test_full_config_is_parsed():
    config = load_config(META + """build:
  cacheVersion: 3
deploy:
  helmChartDir: deploy/chart
  namespace: shop-ns
---
image: base
dockerfile: Dockerfile.base
---
image: [backend, backend-worker]
context: backend
dockerfile: Dockerfile
target: prod
args: {VERSION: 1.2, EMPTY: null}
contextAddFiles: [generated.txt]
dependencies:
- image: base
  imports:
  - type: ImageName
    targetBuildArg: BASE_IMAGE
final: false
cacheVersion: x
platform: linux/amd64
""")
    assert config.project == "shop"
    assert config.cache_version == "3"
    assert config.deploy.helm_chart_dir == "deploy/chart"
    assert config.deploy.namespace == "shop-ns"
    assert config.names == ["base", "backend", "backend-worker"]
    backend = config.image("backend")
    assert backend.dockerfile_path == "backend/Dockerfile"
    assert backend.args == {"VERSION": "1.2", "EMPTY": ""}
    assert backend.dependencies[0].image == "base"
    assert backend.dependencies[0].imports[0].type == "ImageName"
    assert backend.dependencies[0].imports[0].target_build_arg == "BASE_IMAGE"
    assert backend.final is False
    assert backend.platform == ("linux/amd64",)
    assert backend.line == 12
    assert config.image("base").context == ""
    assert config.deploy.helm_release is None


def test_defaults():
    config = load_config(META + "---\nimage: app\ndockerfile: Dockerfile\n")
    assert config.deploy.helm_chart_dir == ".helm"
    assert config.image("app").final is True
    assert config.image("app").dockerfile_path == "Dockerfile"


@pytest.mark.parametrize("text, expected", [
    (META + "---\nimage: app\ndockerfile: Dockerfile\ndockerfle: x\n", "werf.yaml:6: image 'app': unknown key 'dockerfle'"),
    (META + "deplyo: {}\n", "werf.yaml:3: meta document: unknown key 'deplyo'"),
    (META + "deploy: {chartDir: x}\n", "deploy: unknown key 'chartDir'"),
    (META + "---\nimage: app\nfrom: alpine\n", "werf.yaml:5: image 'app' is a Stapel image (from)"),
    (META + "---\nartifact: app\nfrom: alpine\n", "Stapel image"),
    (META + "---\nimage: app\ndockerfile: D\naddHost: [a:1.2.3.4]\n", "werf key 'addHost' is not supported yet"),
    ("project: Shop_1\nconfigVersion: 1\n", "werf.yaml:1: 'project: Shop_1' is not a valid slug"),
    ("project: shop\nconfigVersion: 2\n", "werf.yaml:2: 'configVersion' must be 1"),
    ("configVersion: 1\n", "'project' is required"),
    ("project: shop\nconfigVersion: 1\nbuild: [\n", "werf.yaml:4: YAML syntax error"),
    ("", "werf.yaml: empty"),
    (META + "---\nimage: app\n", "image 'app': 'dockerfile' is required"),
    (META + "---\ndockerfile: D\n", "werf.yaml:4: document has no 'image' key"),
    (META + "---\nimage: App\ndockerfile: D\n", "image name 'App' is not valid"),
    (META + "---\nimage: a\ndockerfile: D\n---\nimage: a\ndockerfile: D\n",
     "werf.yaml:7: image 'a' is defined twice (first at line 4)"),
    (META + "---\nimage: a\ndockerfile: D\ndependencies: [{image: nope}]\n",
     "image 'a': dependencies refer to unknown image 'nope'"),
    (META + "---\nimage: a\ndockerfile: D\ndependencies: [{image: b}]\n---\nimage: b\ndockerfile: D\n"
     "dependencies: [{image: a}]\n", "dependency cycle between images: a -> b -> a"),
    (META + "---\nimage: a\ndockerfile: D\ndependencies: [{image: a, imports: [{type: ImageSize, targetBuildArg: X}]}]\n",
     "'type' must be one of ImageName, ImageTag, ImageRepo, ImageDigest, ImageID"),
    (META + "---\nimage: a\ndockerfile: D\ncontext: ../outside\n", "leaves the project directory"),
    (META + "---\nimage: a\ndockerfile: D\nargs: [X]\n", "'args' must be a mapping"),
    (META + "---\nimage: a\ndockerfile: D\nsecrets: [{env: A, src: b}]\n",
     "image 'a': secrets[0] must have exactly one of env, src, value"),
    (META + "---\nimage: a\ndockerfile: D\nsecrets: [{value: x}]\n", "secrets[0]: a 'value' secret needs an 'id'"),
    (META + "---\nimage: a\ndockerfile: D\nsecrets: [{env: A}, {id: A, src: f}]\n", "secrets[1]: id 'A' is given twice"),
    (META + "---\nimage: a\ndockerfile: D\nsecrets: [{env: A, mode: x}]\n", "secrets[0]: unknown key 'mode'"),
    (META + "---\nimage: a\ndockerfile: D\nplatform: [linux/amd64, amd64]\n",
     "image 'a': platform: 'amd64' is not os/architecture[/variant]"),
    (META + "---\nimage: a\ndockerfile: D\nplatform: linux/arm/v7/x\n", "'linux/arm/v7/x' is not os/architecture"),
    (META + "---\nimage: a\ndockerfile: D\nnetwork: bridge\n",
     "image 'a': network must be one of default, host, none, got 'bridge'"),
    (META + "---\nimage: a\ndockerfile: D\nssh: ''\n", "image 'a': ssh must be an SSH agent socket or keys"),
])
def test_bad_input_names_file_line_and_field(text, expected):
    assert expected in error(text)


def test_cycle_through_three_images():
    text = META
    for name, dep in (("a", "b"), ("b", "c"), ("c", "a")):
        text += f"---\nimage: {name}\ndockerfile: D\ndependencies: [{{image: {dep}}}]\n"
    assert "a -> b -> c -> a" in error(text)


def test_template_markers_are_plain_data_after_rendering():
    """load_config reads rendered werf.yaml (werf_template renders it first): braces are just text."""
    config = load_config(META + "---\nimage: app\ndockerfile: D\nargs: {A: \"{{ not a template here }}\"}\n")
    assert config.image("app").args == {"A": "{{ not a template here }}"}


def test_dependency_order_puts_dependencies_first():
    from ansible_collections.berth.converge.plugins.module_utils.config import dependency_order

    config = load_config(META + "---\nimage: app\ndockerfile: D\ndependencies: [{image: base}]\n"
                                "---\nimage: base\ndockerfile: D\n")
    assert [i.name for i in dependency_order(config.images)] == ["base", "app"]


def test_unhashable_key_is_a_clear_error():
    assert "werf.yaml:" in error(META + "---\nimage: a\ndockerfile: D\n? {x: 1}\n: y\n")


@pytest.mark.parametrize("text", [
    META + "---\n",
    "---\n" + META + "---\n\n---\n# only a comment\n---\nimage: a\ndockerfile: Dockerfile\n---\n   \n",
    "# leading comment\n---\n" + META + "---\nimage: a\ndockerfile: Dockerfile\n---\n",
])
def test_documents_of_blanks_and_comments_are_skipped_as_werf_skips_them(text):
    config = load_config(text, "werf.yaml")
    assert config.project == "shop"
    assert [image.name for image in config.images] == (["a"] if "image: a" in text else [])


@pytest.mark.parametrize("empty_value", ["~", "null", "''", "[]"])
def test_a_document_with_a_non_mapping_value_is_still_an_error(empty_value):
    assert "werf.yaml:4: a werf.yaml document must be a mapping" in error(META + "---\n" + empty_value + "\n")


def test_build_secrets_take_werf_default_ids():
    config = load_config(META + "---\nimage: a\ndockerfile: D\nsecrets:\n- env: TOKEN\n- src: ~/.aws/credentials\n"
                         "- {id: plain, value: s3cr3t}\n", "werf.yaml")
    assert [(s.id, s.env, s.src, s.value) for s in config.image("a").secrets] == [
        ("TOKEN", "TOKEN", None, None), ("credentials", None, "~/.aws/credentials", None), ("plain", None, None, "s3cr3t")]
    assert "s3cr3t" not in repr(config.image("a").secrets[2])
