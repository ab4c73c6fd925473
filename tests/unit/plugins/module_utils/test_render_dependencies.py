# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the chart dependency parts of render.py: werf's export-values, local dependency paths,
the charts already in charts/, Helm's private state."""

from __future__ import annotations

import io
import tarfile

import pytest

from ansible_collections.berth.converge.plugins.module_utils import render
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

PARENT = {"werf": {"env": "qa", "image": {"backend": "repo/backend:1"}}, "db": {"host": "db", "port": 5432},
          "exports": {"shared": {"tier": "gold"}, "root": True}, "empty": None}


def exported(*entries, name="child", alias=None):
    dependency = {"name": name, "export-values": list(entries)}
    if alias:
        dependency["alias"] = alias
    return render.exported_values(render.ChartTree(".helm", {"dependencies": [dependency]}, {}, []), PARENT)


def test_a_table_goes_to_the_child_path_or_merges_into_the_root():
    assert exported({"parent": "werf", "child": "werf"}) == {"child": {"werf": PARENT["werf"]}}
    assert exported({"parent": "db", "child": "."}) == {"child": {"host": "db", "port": 5432}}
    assert exported({"parent": "werf.image", "child": "images.all"}) == {
        "child": {"images": {"all": {"backend": "repo/backend:1"}}}}


def test_a_scalar_needs_a_child_path():
    assert exported({"parent": "db.port", "child": "database.port"}) == {"child": {"database": {"port": 5432}}}
    with pytest.raises(ConvergeError, match=r"^\.helm/Chart\.yaml: dependency child: export-values parent db\.port "
                                            r"is not a mapping, so it needs a child path"):
        exported({"parent": "db.port", "child": ""})


def test_the_string_form_exports_from_exports_to_the_root():
    assert exported("shared") == {"child": {"tier": "gold"}}


def test_missing_parents_export_nothing_and_later_entries_win():
    assert exported({"parent": "nothing.here", "child": "x"}, {"parent": "empty", "child": "y"}) == {}
    assert exported({"parent": "db", "child": "."}, {"parent": "werf.env", "child": "host"}) == {
        "child": {"host": "qa", "port": 5432}}


def test_an_aliased_dependency_gets_its_values_under_the_alias():
    assert exported({"parent": "db", "child": "db"}, alias="primary") == {"primary": {"db": PARENT["db"]}}


def test_exported_values_are_copies():
    result = exported({"parent": "db", "child": "db"})
    result["child"]["db"]["host"] = "changed"
    assert PARENT["db"]["host"] == "db"


@pytest.mark.parametrize("entry", [{"parent": "."}, {"parent": "", "child": "x"}, {"child": "x"}, 5])
def test_invalid_entries_name_the_file_and_the_dependency(entry):
    with pytest.raises(ConvergeError, match=r"^\.helm/Chart\.yaml: dependency child: export-values\[0\] must be a "
                                            r"string or a mapping"):
        exported(entry)


def test_local_dependency_paths_stay_inside_the_project():
    assert render.local_dependency_path({"name": "w", "repository": "file://../shared/worker"}, ".helm") == \
        "shared/worker"
    assert render.local_dependency_path({"name": "w", "repository": "oci://r/charts"}, ".helm") is None
    with pytest.raises(ConvergeError, match=r"^\.helm/Chart\.yaml: dependency w: file://\.\./\.\./up is outside"):
        render.local_dependency_path({"name": "w", "repository": "file://../../up"}, ".helm")


def test_dependencies_must_be_named_mappings():
    assert render.chart_dependencies({}, ".helm") == []
    with pytest.raises(ConvergeError, match=r"^\.helm/Chart\.yaml: dependencies must be a list of mappings"):
        render.chart_dependencies({"dependencies": [{"version": "1"}]}, ".helm")


def test_present_charts_reads_directories_and_archives(tmp_path):
    unpacked = tmp_path / "charts" / "cache-dir"
    unpacked.mkdir(parents=True)
    (unpacked / "Chart.yaml").write_text("apiVersion: v2\nname: cache\nversion: 0.1.0\n")
    with tarfile.open(tmp_path / "charts" / "queue-0.2.0.tgz", "w:gz") as archive:
        data = b"apiVersion: v2\nname: queue\nversion: 0.2.0\n"
        info = tarfile.TarInfo("queue/Chart.yaml")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    (tmp_path / "charts" / "broken-1.0.0.tgz").write_text("not an archive")
    assert render.present_charts(tmp_path) == {"cache", "queue", None}
    assert render.present_charts(tmp_path / "nowhere") == set()


def test_helm_state_lives_under_the_given_home(tmp_path):
    env = render.helm_state_env(tmp_path)
    assert set(env) == {"HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME", "HELM_REPOSITORY_CACHE",
                        "HELM_REPOSITORY_CONFIG", "HELM_REGISTRY_CONFIG"}
    assert all(value.startswith(str(tmp_path)) for value in env.values())


def _archive(files, top):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            data = text if isinstance(text, bytes) else text.encode()
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _export_werf(name, alias=None):
    entry = f"- name: {name}\n  version: 0.1.0\n  export-values:\n  - parent: werf\n    child: werf\n"
    return entry + (f"  alias: {alias}\n" if alias else "")


def test_exports_reach_every_depth_through_directories_and_nested_archives(tmp_path):
    """root -> api (an archive) -> worker (an archive inside it) -> cron (an unpacked directory inside that)."""
    cron = {"Chart.yaml": "apiVersion: v2\nname: cron\nversion: 0.1.0\n", "values.yaml": "schedule: daily\n"}
    worker = {"Chart.yaml": "apiVersion: v2\nname: worker\nversion: 0.1.0\ndependencies:\n" + _export_werf("cron"),
              "values.yaml": "werf: {env: ignored-below-the-parent}\nown: 1\n",
              **{f"charts/cron/{path}": text for path, text in cron.items()}}
    api = {"Chart.yaml": "apiVersion: v2\nname: api\nversion: 0.1.0\ndependencies:\n"
                         + _export_werf("worker", alias="jobs"),
           "charts/worker-0.1.0.tgz": _archive(worker, "worker")}
    (tmp_path / "charts").mkdir()
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: root\nversion: 0.1.0\ndependencies:\n"
                                         + _export_werf("api"))
    (tmp_path / "charts" / "api-0.1.0.tgz").write_bytes(_archive(api, "api"))
    tree = render.ChartTree.of_directory(tmp_path, ".helm")
    exports = render.exported_values(tree, PARENT)
    werf = PARENT["werf"]
    assert exports == {"api": {"werf": werf, "jobs": {"werf": werf, "cron": {"werf": werf}}}}


def test_a_child_exports_what_its_parent_gives_it_over_its_own_values(tmp_path):
    sub = {"Chart.yaml": "apiVersion: v2\nname: sub\nversion: 0.1.0\ndependencies:\n- name: leaf\n  version: 0.1.0\n"
                         "  export-values:\n  - parent: settings\n    child: settings\n",
           "values.yaml": "settings: {size: 1, color: red}\n",
           "charts/leaf/Chart.yaml": "apiVersion: v2\nname: leaf\nversion: 0.1.0\n"}
    (tmp_path / "charts").mkdir()
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: root\nversion: 0.1.0\n"
                                         "dependencies:\n- name: sub\n  version: 0.1.0\n")
    (tmp_path / "charts" / "sub-0.1.0.tgz").write_bytes(_archive(sub, "sub"))
    exports = render.exported_values(render.ChartTree.of_directory(tmp_path, ".helm"),
                                     {"sub": {"settings": {"size": 3}}})
    assert exports == {"sub": {"leaf": {"settings": {"size": 3, "color": "red"}}}}


def test_an_unreadable_archive_is_named(tmp_path):
    (tmp_path / "charts").mkdir()
    (tmp_path / "charts" / "bad-1.0.0.tgz").write_text("not an archive")
    with pytest.raises(ConvergeError, match=r"^\.helm/charts/bad-1\.0\.0\.tgz: unreadable chart archive"):
        render.ChartTree.of_directory(tmp_path, ".helm")
