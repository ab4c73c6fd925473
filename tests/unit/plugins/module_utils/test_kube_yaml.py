# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest reader's own contract (what the conformance test cannot see: lines, texts, sources) and its
use by render: rendered manifests, values files and werf's int64 values."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.berth.converge.plugins.module_utils import kube_yaml
from ansible_collections.berth.converge.plugins.module_utils import render
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube_yaml import (
    KubeYAMLError, load_document, load_documents, split_documents)


def test_split_documents_keeps_lines_and_drops_separators():
    assert split_documents("---\na: 1\n--- # c\n\nb: 2\n---\n") == [(2, "a: 1\n"), (4, "\nb: 2\n")]
    assert split_documents("a: 1") == [(1, "a: 1")]
    assert split_documents("") == []


def test_separator_with_content_is_an_error_naming_the_line():
    with pytest.raises(KubeYAMLError, match=r"^line 3: invalid Yaml document separator: x$"):
        split_documents("a: 1\n\n--- x\n")


def test_documents_carry_their_line_text_and_value():
    documents = load_documents("---\n# Source: a.yaml\nx: 23:30\n---\n# nothing\n---\nz: [y, 1e3, 0o17, =]\n")
    assert [(d.line, d.value) for d in documents] == [(2, {"x": "23:30"}), (7, {"z": [True, 1000, 15, "="]})]
    assert documents[0].text == "# Source: a.yaml\nx: 23:30\n"


def test_errors_name_the_line_in_the_whole_stream():
    with pytest.raises(KubeYAMLError) as caught:
        load_documents("a: 1\n---\nb: 2\nc: [\n")
    assert caught.value.line == 5


def test_numbers_as_kubectl_sends_them():
    value = load_document("a: 1e3\nb: 1.5\nc: 12345678901234567890\nd: -9223372036854775809\ne: 4611686018427387904\n")
    assert value == {"a": 1000, "b": 1.5, "c": 12345678901234567890.0, "d": -9223372036854775808.0,
                     "e": 4611686018427387904}
    assert [type(value[k]) for k in "abcde"] == [int, float, float, float, int]


def test_nan_is_an_error_as_in_json():
    with pytest.raises(KubeYAMLError, match="unsupported value: NaN"):
        load_document("a: .nan\n")


def test_parse_manifests_names_the_template_and_its_line():
    text = "---\n# Source: app/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n" \
           "---\n# Source: app/templates/b.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [b\n"
    with pytest.raises(ConvergeError, match=r"rendered YAML of app/templates/b\.yaml is invalid: line 5: "):
        render.parse_manifests(text)


def test_parse_manifests_reads_scalars_as_kubectl_and_keeps_the_source_of_later_documents():
    text = "---\n# Source: app/templates/two.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n" \
           "data: {time: 23:30, eq: =}\n---\napiVersion: v1\nkind: Secret\n"
    with pytest.raises(ConvergeError, match=r"^app/templates/two\.yaml: a rendered object has no apiVersion"):
        render.parse_manifests(text.replace("apiVersion: v1\nkind: Secret", "kind: Secret"))
    objects = render.parse_manifests(text + "metadata: {name: b}\n")
    assert objects[0]["data"] == {"time": "23:30", "eq": "="}


def test_values_files_are_read_as_helm_reads_them():
    # As in Helm, a key `n` is the boolean false, so .Values.n is missing and the key is "false".
    assert render.load_values_text("t: 23:30\nb: on\nm: 0o17\nn: x\n", "v.yaml") == {
        "t": "23:30", "b": True, "m": 15, "false": "x"}
    with pytest.raises(ConvergeError, match="values file v.yaml is not valid YAML: line 2: "):
        render.load_values_text("a: [\n", "v.yaml")


def test_werf_unix_time_and_set_integers_are_int64_and_survive_copies_and_merges():
    values = render.werf_values(project="p", images=[], commit={"hash": "h", "date": "2026-12-05T18:00:00+00:00",
                                                                "unix": 1796474609},
                                env="", namespace="n", repo="")
    unix = values["werf"]["commit"]["date"]["unix"]
    assert isinstance(copy.deepcopy(unix), render.HelmInt64)
    assert isinstance(render.merge_values({}, {"x": {"y": unix}})["x"]["y"], render.HelmInt64)
    tree = render.set_values_tree({"a.b": 3, "c": 1.5, "d": True}, {"e": 4})
    assert isinstance(tree["a"]["b"], render.HelmInt64)
    assert not any(isinstance(tree[k], render.HelmInt64) for k in "cde")


def test_int64_set_arguments_cover_exported_int64_leaves_unless_a_higher_layer_sets_them():
    exports = {"sub": {"werf": {"commit": {"date": {"unix": render.HelmInt64(5), "human": "x"}}},
                       "fromFile": 7, "odd.key": render.HelmInt64(6)},
               "other": {"n": render.HelmInt64(8)}, "gone": {"n": render.HelmInt64(9)}}
    higher = [{"other": {"n": 1}}, {"gone": None}]
    assert render.int64_set_arguments(exports, higher) == [
        "--set", "sub.werf.commit.date.unix=5", "--set", "sub.odd\\.key=6"]


def test_dump_quotes_what_kubectl_would_read_as_another_value():
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"},
           "data": {"a": "23:30", "b": "y", "c": "1e3", "d": "0o17", "e": "=", "f": "plain", "g": "true", "y": "x"}}
    text = kube_yaml.dump(obj)
    assert 'b: "y"' in text and "f: plain" in text
    assert [document.value for document in kube_yaml.load_documents(text)] == [obj]
