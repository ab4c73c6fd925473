# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of render.py: werf values, names, values merging, parsing, ordering, Jinja2 templates."""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.berth.converge.plugins.module_utils import render
from ansible_collections.berth.converge.plugins.module_utils.config import DeployConfig
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.git import GitProject
from ansible_collections.berth.converge.plugins.module_utils.werf_template import go_time_string

BACKEND = {
    "name": "backend",
    "digest": "a" * 64,
    "tag": "a" * 64,
    "repo": "127.0.0.1:5000/shop/backend",
    "ref": "127.0.0.1:5000/shop/backend:" + "a" * 64,
}
FRONTEND = {
    "name": "frontend",
    "digest": "b" * 64,
    "tag": "b" * 64,
    "repo": "127.0.0.1:5000/shop/frontend",
    "ref": "127.0.0.1:5000/shop/frontend:" + "b" * 64,
}
COMMIT = {"hash": "1b28e6843a963c5bdb3579f6fc93317cc028051c", "date": "2022-01-21T18:51:39+03:00", "unix": 1642780299}


# --- werf service values ------------------------------------------------------------------------


def test_werf_values_have_werfs_shape_and_the_global_images():
    images = render.normalize_images([BACKEND, FRONTEND])
    values = render.werf_values(project="shop", images=images, commit=COMMIT, env="production",
                                namespace="shop-production", repo="127.0.0.1:5000/shop")
    assert values == {
        "werf": {
            "name": "shop",
            "repo": "127.0.0.1:5000/shop",
            "env": "production",
            "namespace": "shop-production",
            "image": {"backend": BACKEND["ref"], "frontend": FRONTEND["ref"]},
            "tag": {"backend": "a" * 64, "frontend": "b" * 64},
            "commit": {
                "hash": COMMIT["hash"],
                "date": {"human": "2022-01-21 18:51:39 +0300 +0300", "unix": 1642780299},
            },
        },
        "global": {
            "env": "production",
            "werf": {
                "name": "shop",
                "images": {
                    "backend": {"registry": "127.0.0.1:5000", "repository": "shop/backend", "tag": "a" * 64,
                                "digest": "a" * 64, "ref": BACKEND["ref"]},
                    "frontend": {"registry": "127.0.0.1:5000", "repository": "shop/frontend", "tag": "b" * 64,
                                 "digest": "b" * 64, "ref": FRONTEND["ref"]},
                },
            },
        },
    }


def test_env_is_an_empty_string_without_env_so_pluck_still_works():
    values = render.werf_values(project="shop", images=[], commit=COMMIT, env=None, namespace="shop", repo="")
    assert values["werf"]["env"] == ""
    assert values["global"]["env"] == ""


@pytest.mark.parametrize("iso, human", [
    ("2022-01-21T18:51:39+03:00", "2022-01-21 18:51:39 +0300 +0300"),
    ("2023-06-01T08:00:00-07:30", "2023-06-01 08:00:00 -0730 -0730"),
    ("2024-02-29T23:59:59+00:00", "2024-02-29 23:59:59 +0000 UTC"),
])
def test_commit_human_date_prints_as_go_time_string(iso, human):
    assert go_time_string(iso) == human  # werf's .Values.werf.commit.date.human


def test_normalize_images_fills_repo_and_tag_from_the_reference():
    (image,) = render.normalize_images([{"name": "api", "ref": "registry.example.com:5000/team/api:v1"}])
    assert image == {"name": "api", "ref": "registry.example.com:5000/team/api:v1",
                     "repo": "registry.example.com:5000/team/api", "tag": "v1", "digest": ""}


def test_normalize_images_names_the_bad_entry():
    with pytest.raises(ConvergeError, match=r"images\[1\] needs at least 'name' and 'ref'"):
        render.normalize_images([BACKEND, {"name": "frontend"}])


@pytest.mark.parametrize("repo, expected", [
    ("127.0.0.1:5000/shop/backend", ("127.0.0.1:5000", "shop/backend")),
    ("localhost/backend", ("localhost", "backend")),
    ("ghcr.io/org/backend", ("ghcr.io", "org/backend")),
    ("org/backend", ("docker.io", "org/backend")),
    ("backend", ("docker.io", "library/backend")),
    ("index.docker.io/org/backend", ("docker.io", "org/backend")),
    ("Registry/backend", ("Registry", "backend")),
])
def test_split_registry_reads_the_host_as_docker_does(repo, expected):
    assert render.split_registry(repo) == expected


def test_base_repo_is_the_common_repository_of_the_images():
    images = render.normalize_images([BACKEND, FRONTEND])
    assert render.images_base_repo(images) == "127.0.0.1:5000/shop"
    other = dict(FRONTEND, repo="127.0.0.1:5000/other/frontend")
    assert render.images_base_repo(render.normalize_images([BACKEND, other])) == ""
    assert render.images_base_repo([]) == ""


def test_image_ref_finds_the_image_and_names_the_known_ones_when_missing():
    assert render.image_ref([BACKEND, FRONTEND], "frontend") == FRONTEND["ref"]
    with pytest.raises(ConvergeError, match=r"image 'worker' is not among .*known: backend, frontend"):
        render.image_ref([BACKEND, FRONTEND], "worker")


def test_werf_image_filter_returns_the_reference_and_fails_clearly():
    from ansible.errors import AnsibleFilterError

    from ansible_collections.berth.converge.plugins.filter.werf_image import FilterModule

    werf_image = FilterModule().filters()["werf_image"]
    assert werf_image([BACKEND], "backend") == BACKEND["ref"]
    with pytest.raises(AnsibleFilterError, match="'worker' is not among"):
        werf_image([BACKEND], "worker")
    with pytest.raises(AnsibleFilterError, match="expects a list"):
        werf_image({"backend": BACKEND}, "backend")


# --- names ----------------------------------------------------------------------------------------

# Expected values are werf's own test vectors for its slug functions.


@pytest.mark.parametrize("name, expected", [
    ("data", "data"),
    ("release.name", "release.name"),
    ("-data", "data-a871d86e"),
    ("da/ta", "da-ta-afa96f8"),
    ("A", "a-54dcf7ce"),
    ("x" * 54, "x" * 44 + "-18c5dfb9"),
])
def test_release_slug_matches_werf(name, expected):
    assert render.release_slug(name) == expected
    assert render.release_slug(expected) == expected


@pytest.mark.parametrize("name, expected", [
    ("data", "data"),
    ("da_ta", "da-ta-3b339d14"),
    ("kubernetes.namespace", "kubernetes-namespace-1507f75c"),
    ("x" * 64, "x" * 54 + "-afd4efcd"),
])
def test_namespace_slug_matches_werf(name, expected):
    assert render.namespace_slug(name) == expected
    assert render.namespace_slug(expected) == expected


@pytest.mark.parametrize("text, size, expected", [
    ("postgres-feature-31981-change-delivery-date-del-result", 48,
     "postgres-feature-31981-change-delivery--852739dc"),
    ("php_fpm_exporter-monitoring-dev-encrypt-1", 48, "php-fpm-exporter-monitoring-dev-encrypt--83286e5"),
    ("x" * 43, 42, "x" * 33 + "-27e2f02f"),
])
def test_limited_slug_cuts_and_appends_werfs_hash(text, size, expected):
    assert render.limited_slug(text, size) == expected


def test_slugify_transliterates_and_collapses_dashes():
    assert render.slugify("  Crème_Brûlée//Shop  ") == "creme-brulee-shop"


def options(**kwargs):
    return render.RenderOptions(project_dir="/nonexistent", **kwargs)


@pytest.mark.parametrize("env, expected", [("production", "shop-production"), (None, "shop")])
def test_release_and_namespace_default_to_project_and_env(env, expected):
    assert render.release_and_namespace(options(env=env), "shop", DeployConfig()) == (
        expected, expected)


def test_default_names_are_slugged_when_invalid():
    release, namespace = render.release_and_namespace(options(env="Feature/JIRA-1"), "shop", DeployConfig())
    assert release == render.limited_slug("shop-Feature/JIRA-1", 53)
    assert namespace == render.limited_slug("shop-Feature/JIRA-1", 63)
    assert release.startswith("shop-feature-jira-1-")


def test_werf_yaml_name_templates_and_slug_switches_are_honoured():
    settings = DeployConfig(helm_release="[[ project ]]-app-[[ env ]]", namespace="team-[[ env ]]",
                            helm_release_slug=False)
    assert render.release_and_namespace(options(env="qa"), "shop", settings) == ("shop-app-qa", "team-qa")


def test_unsupported_name_template_is_an_error():
    settings = DeployConfig(helm_release="[[ project ]]-[[ env | lower ]]")
    with pytest.raises(ConvergeError, match="unsupported name template"):
        render.release_and_namespace(options(env="qa"), "shop", settings)


def test_explicit_names_are_kept_but_validated():
    assert render.release_and_namespace(options(release="my.release", namespace="my-ns"), None,
                                        DeployConfig()) == ("my.release", "my-ns")
    with pytest.raises(ConvergeError, match="namespace 'My_NS' is not a DNS-1123 label"):
        render.release_and_namespace(options(release="r", namespace="My_NS"), None, DeployConfig())
    with pytest.raises(ConvergeError, match="release name '" + "r" * 54):
        render.release_and_namespace(options(release="r" * 54, namespace="ns"), None, DeployConfig())


def test_missing_project_is_an_error_naming_the_fix():
    with pytest.raises(ConvergeError, match="project name is unknown"):
        render.release_and_namespace(options(namespace="ns"), None, DeployConfig())


def test_deploy_settings_come_from_werf_yaml(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "werf.yaml").write_text(
        "project: shop\nconfigVersion: 1\ndeploy:\n  helmChartDir: deploy/chart\n  helmRelease: '[[ project ]]'\n"
        "---\nimage: backend\ndockerfile: Dockerfile\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
                   check=True)
    project, deploy = render.deploy_settings(GitProject(str(tmp_path)))
    assert project == "shop"
    assert deploy == DeployConfig(helm_chart_dir="deploy/chart", helm_release="[[ project ]]")
    (tmp_path / "werf.yaml").unlink()
    assert render.deploy_settings(GitProject(str(tmp_path), dev=True)) == (None, DeployConfig())


@pytest.mark.parametrize("chart_dir", ["/abs/chart", "../outside"])
def test_chart_dir_must_stay_inside_the_project(chart_dir):
    with pytest.raises(ConvergeError, match="must be a path inside the project"):
        render.normalize_chart_dir(chart_dir)


# --- values ---------------------------------------------------------------------------------------


def test_merge_values_merges_maps_replaces_the_rest_and_null_deletes():
    base = {"a": {"b": 1, "c": [1, 2], "d": "x"}, "keep": True}
    override = {"a": {"b": 2, "c": [3], "d": None}, "new": {"x": 1}}
    assert render.merge_values(base, override) == {"a": {"b": 2, "c": [3]}, "keep": True, "new": {"x": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2], "d": "x"}, "keep": True}


def test_set_paths_follow_helms_syntax():
    assert render.parse_value_path(r"metadata.annotations.example\.com/team") == [
        "metadata", "annotations", "example.com/team"]
    assert render.parse_value_path("list[1].name") == ["list", 1, "name"]
    assert render.set_values_tree({"a.b": 3, "l[1].x": True}, {"s": 5, "f": False}) == {
        "a": {"b": 3}, "l": [None, {"x": True}], "s": "5", "f": "false"}


def test_helm_set_arguments_keep_types_as_helms_cli():
    arguments = render.helm_set_arguments(
        {"replicas": 3, "debug": True, "ratio": 0.5, "name": "007", "list": [1, "a,b"], "off": None},
        {"text": "a,b\\c", "flag": False}, 1642780299)
    assert arguments == [
        "--set", "replicas=3",
        "--set-json", "debug=true",
        "--set-json", "ratio=0.5",
        "--set-json", 'name="007"',
        "--set-json", 'list=[1, "a,b"]',
        "--set-json", "off=null",
        "--set-string", "text=a\\,b\\\\c",
        "--set-string", "flag=false",
        "--set", "werf.commit.date.unix=1642780299",
    ]


@pytest.mark.parametrize("key", ["werf.env", "werf", "global.werf.images.backend.ref", "global.env"])
def test_service_values_cannot_be_set(key):
    with pytest.raises(ConvergeError, match="one of werf's service values"):
        render.helm_set_arguments({key: "x"}, {}, 0)
    with pytest.raises(ConvergeError, match="one of werf's service values"):
        render.set_values_tree({}, {key: "x"})


@pytest.mark.parametrize("key", ["", "a..b", "a.", "a[x]"])
def test_bad_set_paths_are_errors(key):
    with pytest.raises(ConvergeError, match="cannot parse the key"):
        render.parse_value_path(key)


def test_values_file_must_be_a_mapping():
    assert render.load_values_text("", "v.yaml") == {}
    with pytest.raises(ConvergeError, match="values file v.yaml must hold a mapping"):
        render.load_values_text("- a\n", "v.yaml")
    with pytest.raises(ConvergeError, match="values file v.yaml is not valid YAML"):
        render.load_values_text("a: [\n", "v.yaml")


# --- parsing and ordering ------------------------------------------------------------------------

HELM_OUTPUT = """\
---
# Source: shop/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  since: 2020-01-01
---
# Source: shop/templates/empty.yaml
# nothing rendered here
---
# Source: shop/templates/list.yaml
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: a}
  - apiVersion: v1
    kind: Service
    metadata: {name: b}
"""


def test_parse_manifests_drops_empty_documents_expands_lists_and_keeps_dates_as_text():
    objects = render.parse_manifests(HELM_OUTPUT)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ConfigMap", "settings"), ("Service", "a"), ("Service", "b")]
    assert objects[0]["data"]["since"] == "2020-01-01"


def test_yaml_error_names_the_source_template():
    broken = HELM_OUTPUT + "---\n# Source: shop/templates/bad.yaml\nkind: [\n"
    with pytest.raises(ConvergeError, match="rendered YAML of shop/templates/bad.yaml is invalid"):
        render.parse_manifests(broken)


def test_non_objects_are_errors_naming_the_source():
    with pytest.raises(ConvergeError, match="shop/templates/x.yaml: a rendered document is a list"):
        render.parse_manifests("---\n# Source: shop/templates/x.yaml\n- a\n")
    with pytest.raises(ConvergeError, match="app.yaml.j2: a rendered object has no apiVersion or kind"):
        render.parse_manifests("metadata: {name: x}\n", source="app.yaml.j2")


def obj(kind, name, weight=None, api_version="v1"):
    metadata = {"name": name}
    if weight is not None:
        metadata["annotations"] = {"werf.io/weight": str(weight)}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


def test_order_is_crds_namespaces_then_weight_and_stable():
    manifests = [
        obj("Deployment", "app"),
        obj("Job", "migrate", weight=-10),
        obj("Namespace", "ns"),
        obj("ConfigMap", "late", weight=5),
        obj("CustomResourceDefinition", "foos.example.com", api_version="apiextensions.k8s.io/v1"),
        obj("Service", "app"),
        obj("ConfigMap", "early", weight=-10),
    ]
    ordered = [(m["kind"], m["metadata"]["name"]) for m in render.order_manifests(manifests)]
    assert ordered == [
        ("CustomResourceDefinition", "foos.example.com"),
        ("Namespace", "ns"),
        ("Job", "migrate"),
        ("ConfigMap", "early"),
        ("Deployment", "app"),
        ("Service", "app"),
        ("ConfigMap", "late"),
    ]


def test_a_weight_that_is_not_an_integer_names_the_resource():
    with pytest.raises(ConvergeError, match="Job/migrate: annotation werf.io/weight must be an integer"):
        render.order_manifests([obj("Job", "migrate", weight="first")])


# --- Jinja2 templates -----------------------------------------------------------------------------


def jinja_chart(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def render_jinja(chart_root, values=None):
    values = values or render.werf_values(project="shop", images=render.normalize_images([BACKEND]),
                                          commit=COMMIT, env="qa", namespace="shop-qa", repo="127.0.0.1:5000/shop")
    names = render.jinja_template_names(chart_root)
    return render.render_jinja_templates(chart_root, names, values=values, release="shop-qa",
                                         namespace="shop-qa", images=[BACKEND])


def test_jinja_templates_see_values_werf_release_and_werf_image(tmp_path):
    root = jinja_chart(tmp_path, {
        "templates/app.yaml.j2": (
            "{% include 'templates/_labels.j2' %}\n"
            "image: {{ werf_image('backend') }}\n"
            "same: {{ Values.werf.image.backend == werf.image['backend'] }}\n"
            "env: {{ werf.env }}\nrelease: {{ Release.Name }}/{{ Release.Namespace }}\n"
            "global: {{ Values.global.werf.images.backend.repository }}\n"
            "data: {{ {'a': [1]} | to_json }}\n"),
        "templates/_labels.j2": "# partial, not rendered by itself",
        "templates/plain.yaml": "not jinja: {{ x }}",
    })
    ((name, text),) = render_jinja(root)
    assert name == "templates/app.yaml.j2"
    assert text == (
        "# partial, not rendered by itself\n"
        f"image: {BACKEND['ref']}\nsame: True\nenv: qa\nrelease: shop-qa/shop-qa\n"
        "global: shop/backend\ndata: {\"a\": [1]}\n")


def test_jinja_undefined_value_names_the_template_and_line(tmp_path):
    root = jinja_chart(tmp_path, {"cm.yaml.j2": "a: 1\nb: 2\nc: {{ Values.missing.key }}\n"})
    with pytest.raises(ConvergeError, match=r"Jinja2 template cm.yaml.j2:3: .*missing"):
        render_jinja(root)


def test_jinja_syntax_error_names_the_template_and_line(tmp_path):
    root = jinja_chart(tmp_path, {"sub/cm.yaml.j2": "a: 1\nb: {% if %}\n"})
    with pytest.raises(ConvergeError, match=r"Jinja2 template sub/cm.yaml.j2:2: "):
        render_jinja(root)


def test_jinja_unknown_image_names_the_template_and_image(tmp_path):
    root = jinja_chart(tmp_path, {"cm.yaml.j2": "a: 1\nimage: {{ werf_image('worker') }}\n"})
    with pytest.raises(ConvergeError, match=r"Jinja2 template cm.yaml.j2:2: image 'worker' is not among"):
        render_jinja(root)
