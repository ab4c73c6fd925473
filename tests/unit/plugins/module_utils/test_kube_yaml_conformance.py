# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Conformance of the manifest reader (module_utils/kube_yaml) against kubectl's own code.

Every generated case (scalars in every position a manifest puts them, with and without quotes and tags, and
whole documents: streams, anchors, merge keys, duplicates, separators, errors) is read by
hack/conformance/kubeyaml (k8s.io/apimachinery's stream decoder and sigs.k8s.io/yaml as kubectl runs them, built
from the Go module proxy into the berth cache) and by kube_yaml.load_documents: the documents must be the same JSON,
numbers written as Go writes them, or both must fail. The Go program is required: when it cannot be built the
tests fail.
"""

from __future__ import annotations

import decimal
import json
import math
import random
import subprocess
from pathlib import Path

import pytest

from ansible_collections.berth.converge.plugins.module_utils.kube_yaml import KubeYAMLError, load_documents

ROOT = Path(__file__).resolve().parents[4]
BUILD = ROOT / "hack" / "conformance" / "kubeyaml" / "build"

BOOL_AND_NULL_WORDS = [
    "y", "Y", "yes", "Yes", "YES", "yEs", "n", "N", "no", "No", "NO", "nO", "true", "True", "TRUE", "tRUE",
    "false", "False", "FALSE", "on", "On", "ON", "oN", "off", "Off", "OFF", "oFF", "null", "Null", "NULL", "nULL",
    "~", "nil", "None", "t", "f", "o", "yess", "y!", "ja",
]
INTEGERS = [
    "0", "-0", "+0", "00", "000", "1", "-1", "+1", "42", "+42", "017", "0017", "-017", "08", "09", "0o17", "0O17",
    "-0o17", "+0o17", "0o8", "0o", "0x1F", "0X1f", "-0x1F", "+0x1F", "0x", "0xg", "0x_1F", "0x1_F", "0b101", "0B101",
    "-0b101", "+0b101", "0b", "0b2", "0b-101", "0b+1", "-0b-1", "0b_1", "1_000", "1__000", "_1000", "1000_", "+1_0",
    "1,000", "1 000", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "18446744073709551615", "18446744073709551616", "-18446744073709551616", "99999999999999999999999",
    "0x7FFFFFFFFFFFFFFF", "0x8000000000000000", "0xFFFFFFFFFFFFFFFF", "0x10000000000000000", "0777777777777777777777",
    "01777777777777777777777", "0b" + "1" * 63, "0b" + "1" * 64, "0b1" + "0" * 64, "-0b1" + "0" * 63,
    "4611686018427387904", "1234567890123456789", "9007199254740993", "123456789012345678901",
]
FLOATS = [
    "1.0", "-1.0", "+1.0", "1.", "-1.", ".5", "-.5", "+.5", "0.5", "00.5", "1.5", "3.14159", "1e3", "1E3", "1e+3",
    "1e-3", "-1e3", "+1e3", "1.5e3", "1.e3", ".5e3", ".5E-3", "1e", "e3", "1e3.5", "1e03", "1_0e1", "1e1_0", "1.5_0",
    "1_.5", ".5_5", "._5", "._", ".", "..", "0.", "+.", "-.", "1e400", "-1e400", "1e-400", "1.7976931348623157e308",
    "1.7976931348623159e308", "5e-324", "4.9e-324", "2e-324", "1e21", "1e20", "999999999999999999999", "1e-6",
    "1e-7", "0.000001", "0.0000001", "123456789.123456789", "0.1", "0.30000000000000004", "1e16",
    "12345678901234567890.0",
    "9.223372036854776e18", "-9.223372036854776e18", "1.8446744073709552e19", "100000000000000000000.5",
    ".inf", ".Inf", ".INF", ".iNF", "+.inf", "-.inf", "-.Inf", "+.INF", "inf", "Inf", "-inf", "infinity", "Infinity",
    ".nan", ".NaN", ".NAN", ".Nan", "nan", "NaN", "-.nan", "+.nan", "0x1p3", "0x1.8p1", "1d3", "1f", "1.5f", "0.0",
    "-0.0", "+0.0", "0e0", "-0e0", "1e-0", "3.0e+2",
]
SEXAGESIMAL_AND_TIMES = [
    "23:30", "1:20", "1:20:30", "190:20:30.15", "-1:30", "+1:30", "00:00", "24:00", "12:30:45", "1:2:3:4", "0:0",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14T21:59:43.10-05:00", "2001-12-14 21:59:43.10",
    "2001-12-14 21:59:43.10 -5", "2002-12-14T21:59:43Z", "2002-12-14T21:59:43+01:00", "2001-1-2", "2001-13-01",
    "2001-02-30", "2000-02-29", "1900-02-29", "2001-12-14T25:00:00Z", "2001-12-14T21:59:43", "20011-12-14",
    "2001-12-14T21:59:43,5Z", "2001-12-14   1:2:3", "2001-12-14T21:59:43.123456789123Z", "2001-12", "2001-",
    "12-14-2001", "2001/12/14", "v2001-12-14", "1.2.3", "1.2.3-rc.1", "v1", "1a", "a1", "10Gi", "500m", "0.5Gi",
    "1e3Gi", "80%", "$1", "1/2",
]
STRINGS = [
    "=", "==", "= x", "<<", "<", "-", "--", "?", "!", "&", "*", "#", "%", "@", "`", "|", ">", "[", "]", "{", "}", ",",
    ":", "a:b", "a: b", "a#b", "a #b", "http://example.com:80/x?y=1#z", "foo bar", " leading", "trailing ", "tab\there",
    "'single'", '"double"', "it's", 'say "hi"', "C:\\path", "ünïcödé", "日本語", "emoji 😀", "\\n", "x" * 200,
    "-a",
    "?a", ":a", "a:", "key: value: more", "@timestamp", "`cmd`", "%TAG", "~x", "x~", "null0", "true1", "yes!", "on-off",
]
SCALARS = BOOL_AND_NULL_WORDS + INTEGERS + FLOATS + SEXAGESIMAL_AND_TIMES + STRINGS


def random_scalars(count, seed=20251205):
    """Number-like and word-like plain scalars built from the characters go-yaml's resolver looks at."""
    rng = random.Random(seed)
    pieces = list("0123456789") * 3 + list("+-._eExXoObB:") + [
        "0x", "0o", "0b", ".inf", ".nan", "_", "e+", "e-", "y", "n", "on", "~", "1_0", "00", "a", "f", "F"]
    found = []
    while len(found) < count:
        text = "".join(rng.choice(pieces) for _piece in range(rng.randint(1, 6)))
        if text not in found and text not in SCALARS and not text.startswith((":", "-", "? ")) \
                and not text.endswith(":") and ": " not in text:
            found.append(text)
    return found


RANDOM_SCALARS = random_scalars(600)
TAGS = ["!!str", "!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!custom", "!", "!!map", "!!merge",
        "!<tag:yaml.org,2002:int>"]
TAGGED = ["0", "1", "-1", "017", "0x1F", "1.5", "1e3", "y", "yes", "off", "true", "~", "null", "", "2001-12-14",
          "2001-13-01", "23:30", "abc", "<<", ".inf", ".nan", "18446744073709551615", "9223372036854775808",
          "2001-12-14T21:59:43Z", "2001-12-14 21:59:43.10"]
BINARY = ["aGVsbG8=", "aGVsbG8", "aGVs\n bG8=", "////", "gICA", "4oKs", "4oI=", "wA==", "7aCA", "not base64!", ""]

DOCUMENTS = {
    "helm-configmap": ("---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                       "  name: settings\n  labels:\n    tier: web\ndata:\n  time: 23:30\n  answer: y\n"
                       "  count: 1e3\n  mode: 0o17\n  eq: =\n  date: 2020-01-01\n  quoted: \"23:30\"\n"),
    "two-docs": "a: 1\n---\nb: 2\n",
    "leading-separators": "---\n---\n---\na: 1\n",
    "trailing-separator": "a: 1\n---\n",
    "separator-comment": "--- # first\na: 1\n---   # second\nb: 2\n",
    "separator-trailing-space": "---   \na: 1\n---\t\nb: 2\n",
    "separator-crlf": "---\r\na: 1\r\n---\r\nb: 2\r\n",
    "separator-with-value": "--- a: 1\n",
    "separator-with-scalar": "--- x\n",
    "separator-block": "--- |\n  text\n",
    "separator-four-dashes": "----\na: 1\n",
    "separator-indented": "a:\n  ---\n",
    "separator-in-block-scalar": "a: |\n  line\n---\nb: 2\n",
    "dashes-in-block-scalar-indented": "a: |\n  ---\n  b\n",
    "document-end-marker": "a: 1\n...\n",
    "document-end-then-garbage": "a: 1\n...\n[unclosed\n",
    "document-end-then-doc": "a: 1\n...\nb: 2\n",
    "empty": "",
    "only-comments": "# nothing\n# here\n",
    "only-spaces": "   \n\n  \n",
    "null-document": "null\n",
    "tilde-document": "~\n",
    "scalar-document": "hello\n",
    "number-document": "017\n",
    "list-document": "- 1\n- y\n- 23:30\n",
    "empty-flow-map": "{}\n",
    "empty-flow-seq": "[]\n",
    "json-document": '{"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1", "b": 2}}\n',
    "json-after-separator": '---\n{"a": 1, "b": [true, null, 1.5, 1e3]}\n',
    "json-two": '---\n{"a": 1}\n---\n{"b": 2}\n',
    "anchors-and-aliases": "base: &b {x: 1, y: [1, 2]}\ncopy: *b\nlist: [*b, *b]\n",
    "anchor-scalar": "a: &v 23:30\nb: *v\nc: [*v]\n",
    "anchor-redefined": "a: &x 1\nb: *x\nc: &x 2\nd: *x\n",
    "alias-unknown": "a: *nope\n",
    "alias-recursive": "a: &x\n  b: *x\n",
    "alias-recursive-seq": "a: &x [1, *x]\n",
    "alias-as-key": "a: &k key\n*k : value\n",
    "alias-map-as-key": "a: &m {x: 1}\n? *m\n: value\n",
    "merge-basic": "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n",
    "merge-after": "base: &b {x: 1, y: 2}\nderived:\n  y: 3\n  <<: *b\n",
    "merge-list": "a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*a, *b]\n",
    "merge-list-reversed": "a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*b, *a]\n",
    "merge-inline": "c:\n  <<: {x: 1}\n  y: 2\n",
    "merge-inline-list": "c:\n  <<: [{x: 1}, {x: 2, z: 3}]\n",
    "merge-scalar": "c:\n  <<: 1\n",
    "merge-null": "c:\n  <<: ~\n",
    "merge-alias-scalar": "a: &s 1\nc:\n  <<: *s\n",
    "merge-list-with-scalar": "a: &a {x: 1}\nc:\n  <<: [*a, 1]\n",
    "merge-quoted-key": "c:\n  '<<': {x: 1}\n",
    "merge-tagged-key": "c:\n  !!merge <<: {x: 1}\n",
    "merge-str-tagged-key": "c:\n  !!str <<: {x: 1}\n",
    "merge-nested": "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n",
    "merge-twice": "a: &a {x: 1}\nb: &b {x: 2}\nc: {<<: *a, <<: *b}\n",
    "merge-as-value": "a: <<\n",
    "merge-top-level": "<<: {x: 1}\ny: 2\n",
    "duplicate-keys": "a: 1\na: 2\n",
    "duplicate-keys-nested": "m:\n  a: 1\n  b: 2\n  a: 3\n",
    "duplicate-keys-flow": "{a: 1, a: 2}\n",
    "bool-keys": "y: 1\nn: 2\non: 3\noff: 4\n",
    "number-keys": "1: a\n0x10: b\n017: c\n1.5: d\n1e3: e\n-0: f\n",
    "float-keys": "0.1: a\n123456789.0: b\n1e21: c\n0.0001: d\n0.00001: e\n1e6: f\n100000.0: g\n-0.0: h\n",
    "float-keys-special": ".inf: a\n-.inf: b\n.nan: c\n",
    "float-key-overflow32": "1e39: a\n3.4028235e38: c\n",
    "float-key-rounds-to-inf32": "3.5e38: b\n",
    "escape-single-quote": "a: \"it\\'s\"\n",
    "escape-slash-in-flow": "a: [\"x\\/y\"]\n",
    "escape-surrogate": "a: \"\\ud800\"\n",
    "escape-surrogate-pair": "a: \"\\ud83d\\ude00\"\n",
    "escape-too-big": "a: \"\\U00110000\"\n",
    "escape-max": "a: \"\\U0010FFFF\"\n",
    "escape-short-hex": "a: \"\\x4\"\n",
    "flow-colon-before-indicator": "a: [a:, b:]\n",
    "flow-map-colon-before-brace": "a: {x:}\n",
    "flow-url-with-query": "args: [--url=http://x:80/?q=1, -v]\n",
    "flow-map-url": "a: {u: http://x/?q}\n",
    "question-in-block": "a: what?\nb: ?x\nc: x ? y\n",
    "question-key": "? \n: v\n",
    "tab-in-plain-continuation": "a: one\n\ttwo\n",
    "tab-indented-continuation": "a:\n  b: one\n  \ttwo\n",
    "tab-between-words": "a: one\ttwo\tthree\n",
    "tab-before-comment": "a: 1\t# c\n",
    "tab-in-flow": "a: [1,\t2]\nb: {\tx: 1}\n",
    "tab-after-dash": "-\t1\n-\t2\n",
    "bom-mid-line": "a: \ufeffx\n",
    "bom-line-start": "a: 1\n\ufeffb: 2\n",
    "json-compact": '{"a":1,"b":[1,2],"c":{"d":"e"}}\n',
    "json-with-escapes": '{"a": "x\\/y", "b": "\\u00e9"}\n',
    "plain-with-colon-no-space": "a: b:c\nd: http://x:80\n",
    "plain-hash-no-space": "a: b#c\n",
    "multi-line-flow-question": "a: [\n  x?y,\n  z]\n",
    "json-numbers": '{"a": 1, "b": 1.0, "c": 1e3, "d": -0, "e": 12345678901234567890, "f": 0.1, "g": 1E-7}\n',
    "json-huge-number": '{"a": 1e400}\n',
    "json-nan": '{"a": NaN}\n',
    "json-duplicate-keys": '{"a": 1, "a": 2}\n',
    "json-lone-surrogate": '{"a": "\\ud800x"}\n',
    "json-control-char": '{"a": "x\ty"}\n',
    "json-then-yaml": '{"a": 1}\nb: 23:30\n',
    "json-then-yaml-separated": '{"a": 1}\n---\nb: y\n',
    "json-two-then-yaml": '{"a": 1}\n{"b": 2}\nc: 3\n',
    "json-concatenated": '{"a": 1}{"b": 2}\n',
    "json-then-array": '{"a": 1}\n[1, 2]\n',
    "json-null-value": '{"a": 1}\nnull\n',
    "yaml-flow-map-first": '{a: 1, b: y}\nc: 2\n',
    "yaml-flow-map-only": '{a: 23:30}\n',
    "json-leading-space": '   {"a": 1}\n',
    "json-leading-newlines": '\n\n{"a": 1}\n',
    "json-trailing-comment": '{"a": 1} # c\n',
    "null-key": "~: a\n",
    "empty-key": ": a\n",
    "uint-key": "18446744073709551615: a\n",
    "big-int-key": "9223372036854775807: a\n",
    "timestamp-key": "2001-12-14: a\n",
    "binary-key": "!!binary aGk=: a\n",
    "complex-key-map": "? {a: 1}\n: b\n",
    "complex-key-seq": "? [1, 2]\n: b\n",
    "explicit-key": "? a\n: b\n",
    "nan-value-nested": "a:\n  b: [1, .nan]\n",
    "inf-value": "a: -.inf\n",
    "block-literal": "a: |\n  23:30\n  y\nb: |-\n  x\nc: |+\n  x\n\n",
    "block-folded": "a: >\n  one\n  two\n\n  three\n",
    "block-indent-indicator": "a: |2\n    indented\n",
    "multiline-plain": "a: one\n  two\n  three\n",
    "multiline-quoted": "a: \"one\n  two\"\nb: 'x\n\n  y'\n",
    "escapes": "a: \"\\t\\n\\x41\\u00e9\\U0001F600\\\\\\\"\"\nb: \"\\/\"\nc: \"\\e\\N\\_\\L\\P\"\n",
    "bad-escape": "a: \"\\q\"\n",
    "single-quote-escape": "a: 'it''s'\n",
    "comments": "a: 1 # one\n# full\nb: 2#not\n",
    "flow-nested": "a: {b: [1, {c: y}], d: [[]]}\n",
    "flow-plain-colon": "a: [a:b, c: d]\n",
    "flow-question": "a: [?x, y?]\n",
    "flow-trailing-comma": "a: [1, 2, ]\nb: {x: 1, }\n",
    "flow-unclosed": "a: [1, 2\n",
    "flow-multiline": "a: [1,\n  2,\n  3]\n",
    "flow-map-no-space": "a: {b:1}\n",
    "flow-empty-value": "a: {b: , c}\n",
    "tab-indent": "a:\n\tb: 1\n",
    "tab-after-value": "a: 1\t\nb:\t2\n",
    "bad-indent": "a:\n  b: 1\n c: 2\n",
    "mapping-in-value": "a: b: c\n",
    "sequence-of-maps": "- a: 1\n  b: y\n- c: 23:30\n",
    "nested-seq": "- - - 1\n    - 2\n",
    "compact-nested": "a:\n- 1\n- 2\n",
    "yaml-directive": "%YAML 1.1\n---\na: 1\n",
    "yaml-directive-no-doc": "%YAML 1.1\na: 1\n",
    "tag-directive": "%TAG !e! tag:example.com,2000:\n---\na: !e!foo 1\n",
    "bom": "\ufeffa: 1\n",
    "bom-second-doc": "a: 1\n---\n\ufeffb: 2\n",
    "unicode-line-separator": "a: x\u2028y\n",
    "nel": "a: x\x85y\n",
    "control-char": "a: x\x01y\n",
    "nul-char": "a: x\x00y\n",
    "del-char": "a: x\x7fy\n",
    "tagged-map": "a: !custom {x: 1}\nb: !!map {y: 2}\nc: !!seq [1]\nd: !!str {z: 3}\n",
    "tagged-seq-null": "a: !!null [1]\n",
    "tag-on-empty": "a: !!str\nb: !!int\nc: !custom\n",
    "anchor-on-empty": "a: &x\nb: *x\n",
    "deep-flow": "a: " + "[" * 50 + "]" * 50 + "\n",
    "long-document": "".join(f"k{i}: {v}\n" for i, v in enumerate(["23:30", "y", "1e3", "0o17", "="] * 40)),
    "configmap-numbers-quoted": (
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "x"}\ndata:\n' "  a: '1e3'\n  b: \"0o17\"\n  c: 'y'\n"),
    "deployment": ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 03\n"
                   "  template:\n    spec:\n      containers:\n      - name: c\n        image: x:1.0\n"
                   "        ports:\n        - containerPort: 0x50\n        env:\n        - {name: A, value: \"y\"}\n"),
    "excessive-aliasing": ("a: &a [" + ", ".join(["x"] * 10) + "]\nb: &b [" + ", ".join(["*a"] * 10) + "]\n"
                           "c: &c [" + ", ".join(["*b"] * 10) + "]\nd: &d [" + ", ".join(["*c"] * 10) + "]\n"),
    "windows-line-endings": "a: 1\r\nb:\r\n  c: y\r\n",
    "cr-only": "a: 1\rb: 2\r",
    "no-final-newline": "a: 23:30",
    "indented-root": "  a: 1\n  b: 2\n",
    "key-with-spaces": "a b: 1\n'c d': 2\n",
    "quoted-keys-collide": "'1': a\n",
    "utf8-key": "ключ: значение\n",
}


def scalar_cases():
    cases = {}
    for index, scalar in enumerate(SCALARS):
        cases[f"value-{index}-{scalar[:30]}"] = f"v: {scalar}\n"
        cases[f"key-{index}-{scalar[:30]}"] = f"{scalar}: v\n"
        cases[f"flow-{index}-{scalar[:30]}"] = f"v: [{scalar}]\n"
        cases[f"single-{index}-{scalar[:30]}"] = "v: '" + scalar.replace("'", "''") + "'\n"
    for index, scalar in enumerate(RANDOM_SCALARS):
        cases[f"random-{index}-{scalar}"] = f"v: {scalar}\nk{index}: [{scalar}]\n{scalar}: key\n"
    for tag in TAGS:
        for index, scalar in enumerate(TAGGED):
            cases[f"tag-{tag}-{index}-{scalar}"] = f"v: {tag} {scalar}\n"
            cases[f"tag-quoted-{tag}-{index}-{scalar}"] = f"v: {tag} \"{scalar}\"\n"
    for index, scalar in enumerate(BINARY):
        cases[f"binary-{index}"] = f"v: !!binary {json.dumps(scalar)}\n"
    return cases


SCALAR_CASES = scalar_cases()
CASES = {**SCALAR_CASES, **{f"document-{name}": text for name, text in DOCUMENTS.items()}}


def go_number(value):
    """A number as Go's encoding/json writes it."""
    if isinstance(value, int):
        return str(value)
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    if 1e-6 <= abs(value) < 1e21:
        return format(decimal.Decimal(repr(value)).normalize(), "f")
    mantissa, exponent = repr(value).split("e")
    if exponent[0] == "+":
        return f"{mantissa}e+{int(exponent[1:]):02d}"
    return f"{mantissa}e-{int(exponent[1:])}"  # Go writes e-7, not e-07


def comparable(value):
    """Numbers as Go's text, so that 1 and 1.0 (and JSON's int64 boundary) compare as kubectl sees them."""
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return ("number", go_number(value))


@pytest.fixture(scope="module")
def go_results():
    built = subprocess.run([str(BUILD)], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        pytest.fail(f"building hack/conformance/kubeyaml failed (Go and the Go module proxy are required):\n"
                    f"{built.stderr}")
    cases = [{"name": name, "yaml": text} for name, text in CASES.items()]
    proc = subprocess.run([built.stdout.strip()], input=json.dumps(cases), capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        pytest.fail(f"the Go reader failed: {proc.stderr}")
    # Go's number text is kept, as comparable() writes ours.
    results = json.loads(proc.stdout, parse_int=go_number_text, parse_float=go_number_text)
    return {result["name"]: result for result in results}


def go_number_text(text):
    return ("number", text)


def test_enough_cases():
    assert len(SCALARS) >= 300
    assert len(SCALAR_CASES) >= 2000
    assert len(DOCUMENTS) >= 100


@pytest.mark.parametrize("scanner", ["libyaml-where-it-agrees", "python"])
@pytest.mark.parametrize("name", list(CASES))
def test_same_as_kubectl(name, scanner, go_results):
    expected = go_results[name]
    try:
        ours = [document.value for document in load_documents(CASES[name], pure=scanner == "python")]
        error = None
    except KubeYAMLError as exc:
        ours, error = None, exc
    if expected.get("error"):
        assert error is not None, f"kubectl fails ({expected['error']}), we read {ours!r}"
        return
    assert error is None, f"kubectl reads {expected['documents']}, we fail: {error}"
    assert [comparable(document) for document in ours] == expected["documents"]
