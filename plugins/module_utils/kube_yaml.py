# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""YAML read as Kubernetes reads it, so that what is applied is what ``kubectl apply -f`` and Helm apply.

kubectl (and Helm, and the values files Helm reads) go through the same steps, ported here:
- the stream is split into documents on lines that start with ``---`` (k8s.io/apimachinery's YAMLReader; any
  other text after ``---`` than spaces and a comment is an error);
- each document is read by go-yaml v2 (``go.yaml.in/yaml/v2``, the parser of ``sigs.k8s.io/yaml``): YAML 1.1
  words for booleans (``y``, ``n``, ``on``, ``off``...) and nulls, Go's number syntax (``0o17``, ``0x1F``,
  ``017`` is octal, ``1_000``, ``1e3``), no base-60 numbers (``23:30`` is a string), timestamps kept as text,
  merge keys ``<<`` applied in document order, anchors may be redefined, the last duplicate key wins;
- ``sigs.k8s.io/yaml`` turns it into JSON: non-string keys become strings (``1.5``, ``true``, floats in their
  float32 form), NaN and infinities are errors;
- the JSON is decoded as kubectl sends it (k8s.io/apimachinery util/json): a number that JSON writes as an
  integer fitting int64 is an ``int``, any other a ``float``.

hack/conformance/kubeyaml runs the Go code itself; tests/unit/plugins/module_utils/test_kube_yaml_conformance.py
checks this port against it case by case.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import collections
import decimal
import math
import re
import struct

try:
    import yaml
except ImportError:  # reported by the modules (requirements.check_libraries)
    yaml = None

from ansible_collections.berth.converge.plugins.module_utils.gotemplate import parse_go_float, parse_go_int

SEPARATOR = "---"
MAX_DEPTH = 10000

_TAG = "tag:yaml.org,2002:"
STR_TAG, BOOL_TAG, INT_TAG, FLOAT_TAG = _TAG + "str", _TAG + "bool", _TAG + "int", _TAG + "float"
NULL_TAG, TIMESTAMP_TAG, BINARY_TAG, MERGE_TAG = _TAG + "null", _TAG + "timestamp", _TAG + "binary", _TAG + "merge"
_RESOLVABLE_TAGS = ("", STR_TAG, BOOL_TAG, INT_TAG, FLOAT_TAG, NULL_TAG, TIMESTAMP_TAG)

_RESOLVE_MAP = {}
for _words, _tag, _value in (
        (("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), BOOL_TAG, True),
        (("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), BOOL_TAG, False),
        (("", "~", "null", "Null", "NULL"), NULL_TAG, None),
        ((".nan", ".NaN", ".NAN"), FLOAT_TAG, math.nan),
        ((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), FLOAT_TAG, math.inf),
        (("-.inf", "-.Inf", "-.INF"), FLOAT_TAG, -math.inf),
        (("<<",), MERGE_TAG, "<<")):
    _RESOLVE_MAP.update((word, (_tag, _value)) for word in _words)


def _hint(text):
    """go-yaml's first-character hint: S(ign), D(igit), M(ap word), ``.`` or none."""
    if not text:
        return "N"
    first = text[0]
    if first in "+-":
        return "S"
    if first in "0123456789":
        return "D"
    if first in "yYnNtTfFoO~":
        return "M"
    return "." if first == "." else ""


class KubeYAMLError(ValueError):
    """The YAML cannot be read as Kubernetes reads it; ``line`` (1-based, in the text given) when known."""

    def __init__(self, message, line=None):
        super().__init__(f"line {line}: {message}" if line else message)
        self.problem = message
        self.line = line


Document = collections.namedtuple("Document", "line text value")
Document.__doc__ = "A document of a stream: its first line (1-based), its text and its value."


class _Uint64(int):
    """An integer go-yaml reads as uint64 (above int64): JSON cannot key a map with it."""


_YAML_STYLE_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_INT64 = (-(1 << 63), (1 << 63) - 1)


# ---------------------------------------------------------------------------------------------------
# Timestamps: only an explicit !!timestamp needs them (go-yaml keeps every timestamp as its text)


_TIMESTAMP_FORMATS = (
    re.compile(r"(\d{4})-(\d\d?)-(\d\d?)T(\d\d?):(\d\d?):(\d\d?)(?:[.,]\d+)?(Z|[+-]\d\d:\d\d)\Z", re.ASCII),
    re.compile(r"(\d{4})-(\d\d?)-(\d\d?)t(\d\d?):(\d\d?):(\d\d?)(?:[.,]\d+)?(Z|[+-]\d\d:\d\d)\Z", re.ASCII),
    re.compile(r"(\d{4})-(\d\d?)-(\d\d?) +(\d\d?):(\d\d?):(\d\d?)(?:[.,]\d+)?()\Z", re.ASCII),
    re.compile(r"(\d{4})-(\d\d?)-(\d\d?)()()()()\Z", re.ASCII),
)


def _is_timestamp(text):
    """Whether one of go-yaml's layouts parses ``text`` with Go's time.Parse (ranges included)."""
    if not re.match(r"[0-9]{4}-", text):
        return False
    for layout in _TIMESTAMP_FORMATS:
        found = layout.match(text)
        if not found:
            continue
        year, month, day = (int(found.group(i)) for i in (1, 2, 3))
        hour, minute, second = (int(found.group(i) or 0) for i in (4, 5, 6))
        zone = found.group(7) or "Z"
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        month_days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
        if not 1 <= month <= 12 or not 1 <= day <= month_days[month - 1]:
            continue
        if hour >= 24 or minute >= 60 or second >= 60:
            continue
        if zone != "Z" and (int(zone[1:3]) > 24 or int(zone[4:6]) > 60):
            continue
        return True
    return False


# ---------------------------------------------------------------------------------------------------
# Scalars as go-yaml v2 resolves them (resolve.go)


def _resolve_plain(tag, text):
    """go-yaml's resolve() without the tag check: ``(resolved tag, value)``."""
    hint = _hint(text)
    if not hint or tag in (STR_TAG, BINARY_TAG):
        return STR_TAG, text
    if text in _RESOLVE_MAP:
        return _RESOLVE_MAP[text]
    if hint == ".":
        value = parse_go_float(text)
        if value is not None:
            return FLOAT_TAG, value
    elif hint in "DS":
        if tag in ("", TIMESTAMP_TAG) and _is_timestamp(text):
            return TIMESTAMP_TAG, text
        plain = text.replace("_", "")
        number = parse_go_int(plain)
        if number is not None:
            return INT_TAG, number
        number = parse_go_int(plain, unsigned=True)
        if number is not None:
            return INT_TAG, _Uint64(number)
        if _YAML_STYLE_FLOAT.match(plain):
            value = parse_go_float(plain)
            if value is not None:
                return FLOAT_TAG, value
        if plain.startswith(("0b", "-0b")):  # strconv.ParseInt(digits, 2, 64) takes a sign of its own
            digits = plain[2:] if plain.startswith("0b") else "-" + plain[3:]
            if re.match(r"[+-]?[01]+\Z", digits):
                value = int(digits, 2)
                if _INT64[0] <= value <= _INT64[1]:
                    return INT_TAG, value
                if plain.startswith("0b") and digits[0] in "01" and value < 1 << 64:
                    return INT_TAG, _Uint64(value)
    return STR_TAG, text


def _short_tag(tag):
    return "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag


def resolve_scalar(tag, text):
    """The value go-yaml v2 gives a scalar with this tag ("" when plain and untagged) read into interface{}:
    None, bool, int, float or str (timestamps stay text). KubeYAMLError as go-yaml fails."""
    if tag not in _RESOLVABLE_TAGS:
        return text
    resolved_tag, value = _resolve_plain(tag, text)
    if tag and tag not in (resolved_tag, STR_TAG):
        if tag == FLOAT_TAG and resolved_tag == INT_TAG and not isinstance(value, _Uint64):
            return float(value)
        raise KubeYAMLError(f"cannot decode {_short_tag(resolved_tag)} `{text}` as a {_short_tag(tag)}")
    return value


# ---------------------------------------------------------------------------------------------------
# Documents: events from PyYAML's parser (libyaml's, as go-yaml is a port of libyaml), nodes and decoding
# as go-yaml's parser and decoder make them


class _Node:
    __slots__ = ("kind", "tag", "implicit", "value", "children", "target", "line")

    def __init__(self, kind, line, tag="", implicit=False, value=None):
        self.kind, self.line, self.tag, self.implicit, self.value = kind, line, tag or "", implicit, value
        self.children = []
        self.target = None


_BLANKZ = "\0 \t\r\n\x85\u2028\u2029"
_BREAKS = "\r\n\x85\u2028\u2029"
_FLOW_COLON = re.compile(r":[,?\[\]{}]")


def _libyaml_differs(text):
    """Whether the text has one of the few constructs libyaml (PyYAML's C parser) reads unlike go-yaml, its
    port: after a flow collection starts, a '?' or a ':' before a flow indicator; the escapes \\/ and \\'
    in double quotes; a BOM after the start. Linear in the text."""
    starts = [index for index in (text.find("["), text.find("{")) if index >= 0]
    if starts:
        rest = text[min(starts):]
        if "?" in rest or _FLOW_COLON.search(rest):
            return True
    return "\\/" in text or "\\'" in text or "\ufeff" in text[1:]


def _go_scanner_loader():
    """PyYAML's pure-Python reader, scanner and parser with go-yaml's scanning rules where they differ."""
    from yaml.scanner import ScannerError, ScalarToken

    class GoScanner(yaml.scanner.Scanner):
        ESCAPE_REPLACEMENTS = {**{k: v for k, v in yaml.scanner.Scanner.ESCAPE_REPLACEMENTS.items() if k != "/"},
                               "'": "'"}

        def scan_to_next_token(self):
            # Spaces always; tabs in flow context or where no simple key may start. go-yaml means to skip a BOM
            # at any line start but checks the start of its buffer instead: only the text's first BOM goes.
            while True:
                if self.index == 0 and self.peek() == "\ufeff":
                    self.forward()
                while self.peek() == " " or self.peek() == "\t" and (self.flow_level or not self.allow_simple_key):
                    self.forward()
                if self.peek() == "#":
                    while self.peek() not in "\0" + _BREAKS:
                        self.forward()
                if not self.scan_line_break():
                    return
                if not self.flow_level:
                    self.allow_simple_key = True

        def scan_plain(self):
            # A plain scalar ends at ': ' (never at ':' before a flow indicator) and, in flow context, at ,?[]{}.
            chunks, spaces = [], []
            start_mark = end_mark = self.get_mark()
            indent = self.indent + 1
            while self.peek() != "#":
                length = 0
                while True:
                    char = self.peek(length)
                    if char in _BLANKZ or char == ":" and self.peek(length + 1) in _BLANKZ or \
                            self.flow_level and char in ",?[]{}":
                        break
                    length += 1
                if not length:
                    break
                self.allow_simple_key = False
                chunks.extend(spaces)
                chunks.append(self.prefix(length))
                self.forward(length)
                end_mark = self.get_mark()
                spaces = self.scan_plain_spaces(indent, start_mark)
                if not spaces or self.peek() == "#" or not self.flow_level and self.column < indent:
                    break
            return ScalarToken("".join(chunks), True, start_mark, end_mark)

        def scan_plain_spaces(self, indent, start_mark):
            # Blanks are spaces and tabs; a tab in the indentation of a continuation line is an error.
            chunks, breaks, whitespaces, line_break = [], [], "", None
            while self.peek() in " \t" + _BREAKS:
                char = self.peek()
                if char in " \t":
                    if line_break is not None and char == "\t" and self.column < indent:
                        raise ScannerError("while scanning a plain scalar", start_mark,
                                           "found a tab character that violates indentation", self.get_mark())
                    if line_break is None:
                        whitespaces += char
                    self.forward()
                    continue
                if line_break is None:
                    line_break = self.scan_line_break()
                else:
                    breaks.append(self.scan_line_break())
                self.allow_simple_key = True
                if self.prefix(3) in ("---", "...") and self.peek(3) in _BLANKZ:
                    return None
            if line_break is None:
                return [whitespaces] if whitespaces else []
            if line_break != "\n":
                chunks.append(line_break)
            elif not breaks:
                chunks.append(" ")
            return chunks + breaks

        def scan_flow_scalar_non_spaces(self, double, start_mark):
            # go-yaml refuses escapes of surrogates and of code points above U+10FFFF.
            try:
                chunks = super().scan_flow_scalar_non_spaces(double, start_mark)
            except ValueError:
                chunks = None
            if chunks is None or any("\ud800" <= char <= "\udfff" for chunk in chunks for char in chunk):
                raise ScannerError("while parsing a quoted scalar", start_mark,
                                   "found invalid Unicode character escape code", self.get_mark())
            return chunks

    class GoParser(yaml.reader.Reader, GoScanner, yaml.parser.Parser):
        def __init__(self, stream):
            yaml.reader.Reader.__init__(self, stream)
            GoScanner.__init__(self)
            yaml.parser.Parser.__init__(self)

        def dispose(self):
            pass

    return GoParser


_GO_SCANNER_LOADER = []


def _parser(text, pure=False):
    """PyYAML's C parser (libyaml) where it reads as go-yaml does, else the go-yaml scanning rules in Python."""
    c_parser = getattr(yaml, "CBaseLoader", None)
    if c_parser is not None and not pure and not _libyaml_differs(text):
        return c_parser(text)
    if not _GO_SCANNER_LOADER:
        _GO_SCANNER_LOADER.append(_go_scanner_loader())
    return _GO_SCANNER_LOADER[0](text)


def _first_document_node(text, pure=False):
    """The root node of the first document (None for an empty stream), aliases linked to their anchors."""
    loader = None
    try:
        loader = _parser(text, pure)
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # document start
        anchors = {}
        stack = [_Node("document", 0)]
        while True:
            event = loader.get_event()
            line = event.start_mark.line + 1
            if isinstance(event, yaml.DocumentEndEvent):
                return stack[0].children[0] if stack[0].children else None
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                stack.pop()
                continue
            if isinstance(event, yaml.AliasEvent):
                node = _Node("alias", line, value=event.anchor)
                node.target = anchors.get(event.anchor)
                if node.target is None:
                    raise KubeYAMLError(f"unknown anchor '{event.anchor}' referenced", line)
            elif isinstance(event, yaml.ScalarEvent):
                node = _Node("scalar", line, event.tag, event.implicit[0], event.value)
            else:
                node = _Node("mapping" if isinstance(event, yaml.MappingStartEvent) else "sequence", line, event.tag)
            if getattr(event, "anchor", None) and node.kind != "alias":
                anchors[event.anchor] = node
            stack[-1].children.append(node)
            if node.kind in ("mapping", "sequence"):
                if len(stack) > MAX_DEPTH:
                    raise KubeYAMLError(f"exceeded max depth of {MAX_DEPTH}", line)
                stack.append(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise KubeYAMLError(exc.problem or str(exc), mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise KubeYAMLError(str(exc).replace("\n", " ")) from None
    finally:
        if loader is not None:
            loader.dispose()


class _GoMap:
    """A Go map[interface{}]interface{}: keys of different Go types never collide (1, "1" and true)."""

    __slots__ = ("items",)

    def __init__(self):
        self.items = {}

    def set(self, key, value):
        self.items[(type(key), key)] = (key, value)


def _allowed_alias_ratio(decodes):
    if decodes <= 400000:
        return 0.99
    if decodes >= 4000000:
        return 0.10
    return 0.99 - 0.89 * (decodes - 400000) / 3600000


class _Decoder:
    """go-yaml v2's decoder into interface{} (decode.go)."""

    def __init__(self):
        self.decodes = 0
        self.alias_decodes = 0
        self.alias_depth = 0
        self.expanding = set()

    def decode(self, node, into=None):
        self.decodes += 1
        if self.alias_depth:
            self.alias_decodes += 1
        if self.alias_decodes > 100 and self.decodes > 1000 and \
                self.alias_decodes / self.decodes > _allowed_alias_ratio(self.decodes):
            raise KubeYAMLError("document contains excessive aliasing")
        if node.kind == "alias":
            return self._alias(node, into)
        if node.kind == "scalar":
            try:
                return self._scalar(node)
            except KubeYAMLError as exc:
                raise KubeYAMLError(exc.problem, node.line) from None
        if node.kind == "sequence":
            return [self.decode(child) for child in node.children]
        return self._mapping(node, _GoMap() if into is None else into)

    def _alias(self, node, into):
        if id(node) in self.expanding:
            raise KubeYAMLError(f"anchor '{node.value}' value contains itself", node.line)
        self.expanding.add(id(node))
        self.alias_depth += 1
        try:
            return self.decode(node.target, into)
        finally:
            self.alias_depth -= 1
            self.expanding.discard(id(node))

    @staticmethod
    def _scalar(node):
        if not node.tag and not node.implicit:
            return node.value
        value = resolve_scalar(node.tag, node.value)
        if node.tag == BINARY_TAG:
            try:
                data = base64.b64decode(node.value.replace("\r", "").replace("\n", ""), validate=True)
            except (binascii.Error, ValueError):
                raise KubeYAMLError("!!binary value contains invalid base64 data") from None
            return data.decode("utf-8", errors="berth-go-utf8")
        return value

    def _mapping(self, node, into):
        children = node.children
        for index in range(0, len(children), 2):
            key_node, value_node = children[index], children[index + 1]
            if key_node.kind == "scalar" and key_node.value == "<<" and \
                    (key_node.implicit or key_node.tag == MERGE_TAG):
                self._merge(value_node, into)
                continue
            key = self.decode(key_node)
            if isinstance(key, (_GoMap, list)):
                raise KubeYAMLError(f"invalid map key: {_go_repr(key)}", key_node.line)
            into.set(key, self.decode(value_node))
        return into

    def _merge(self, node, into):
        def mapping_like(candidate):
            target = candidate.target if candidate.kind == "alias" else candidate
            return target is not None and target.kind == "mapping"

        if node.kind in ("mapping", "alias"):
            if not mapping_like(node):
                raise KubeYAMLError("map merge requires map or sequence of maps as the value", node.line)
            self.decode(node, into)
        elif node.kind == "sequence":
            for child in reversed(node.children):  # earlier maps take precedence
                if not mapping_like(child):
                    raise KubeYAMLError("map merge requires map or sequence of maps as the value", child.line)
                self.decode(child, into)
        else:
            raise KubeYAMLError("map merge requires map or sequence of maps as the value", node.line)


def _go_repr(value):
    return "map[interface {}]interface {}{...}" if isinstance(value, _GoMap) else "[]interface {}{...}"


def _go_utf8_replace(error):
    # Go's encoders replace each invalid byte with U+FFFD (Python's "replace" may join a truncated sequence).
    return "\ufffd", error.start + 1


codecs.register_error("berth-go-utf8", _go_utf8_replace)


# ---------------------------------------------------------------------------------------------------
# sigs.k8s.io/yaml's conversion to JSON, then kubectl's JSON numbers


def _float32_key(value):
    """strconv.FormatFloat(value, 'g', -1, 32), with go-yaml's names for infinities and NaN."""
    try:
        single = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        single = math.copysign(math.inf, value)
    if math.isnan(single):
        return ".nan"
    if math.isinf(single):
        return ".inf" if single > 0 else "-.inf"
    sign = "-" if math.copysign(1, single) < 0 else ""
    single = abs(single)
    if single == 0:
        return sign + "0"
    for precision in range(1, 10):
        digits_text = f"{single:.{precision - 1}e}"
        if struct.unpack("f", struct.pack("f", float(digits_text)))[0] == single:
            break
    mantissa, exponent = digits_text.split("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    exponent = int(exponent)
    if exponent < -4 or exponent >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    point = exponent + 1
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _json_key(key):
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int) and not isinstance(key, _Uint64):
        return str(key)
    if isinstance(key, float):
        return _float32_key(key)
    type_name = "<nil>" if key is None else "uint64"
    raise KubeYAMLError(f"unsupported map key of type: {type_name}, key: {key!r}")


def _json_number(value):
    """The number kubectl sends for a go-yaml number: JSON's text of it read back as int64, else float64."""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise KubeYAMLError(f"json: unsupported value: {'NaN' if math.isnan(value) else value}")
        if value != int(value) or abs(value) >= 1e21:
            return value
        # Go writes the shortest decimal digits of the float, padded with zeros: that text is the integer.
        number = int(decimal.Decimal(repr(value)))
    else:
        number = int(value)
    return number if _INT64[0] <= number <= _INT64[1] else float(number)


def _to_json_value(value):
    if isinstance(value, _GoMap):
        return {_json_key(key): _to_json_value(item) for key, item in value.items.values()}
    if isinstance(value, list):
        return [_to_json_value(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return _json_number(value)


def load_document(text, pure=False):
    """The first YAML document of ``text`` as sigs.k8s.io/yaml and kubectl read it: dict (string keys), list,
    str, int, float, bool or None. KubeYAMLError (with the line) when Kubernetes could not read it.
    ``pure`` scans in Python even where libyaml would do (for the tests)."""
    if yaml is None:
        raise KubeYAMLError("PyYAML is required to read YAML")
    root = _first_document_node(text, pure)
    if root is None:
        return None
    try:
        return _to_json_value(_Decoder().decode(root))
    except RecursionError:
        raise KubeYAMLError("the document is nested too deeply") from None


def split_documents(text):
    """kubectl's documents of a YAML stream: ``[(first line number, text)]``, the ``---`` lines left out.
    A ``---`` line with anything but spaces and a comment after it is an error, as in kubectl."""
    documents, current, start = [], [], 1
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith(SEPARATOR):
            rest = line[len(SEPARATOR):].strip(" \t\r\n\v\f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
                                               "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
            if rest and not rest.startswith("#"):
                raise KubeYAMLError(f"invalid Yaml document separator: {rest}", number)
            if current:
                documents.append((start, "\n".join(current) + "\n"))
            current, start = [], number + 1
            continue
        current.append(line)
    if current and (len(current) > 1 or current[0]):
        documents.append((start, "\n".join(current)))
    return documents


def _json_int(text):
    number = int(text)
    return number if _INT64[0] <= number <= _INT64[1] else _json_float(text)


def _json_float(text):
    number = float(text)
    if math.isinf(number):
        raise KubeYAMLError(f"json: cannot unmarshal number {text} into a float64")
    return number


def _json_constant(name):
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _without_surrogates(value):
    """Go's JSON decoder reads an escaped lone surrogate as U+FFFD."""
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if isinstance(value, dict):
        return {_without_surrogates(key): _without_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    return value


_JSON_DECODER = None


def _load_json_stream(text, pure):
    """kubectl's reading of a stream that starts with '{': JSON values one after the other; when the first or
    second one is not JSON, the rest (from the line where it starts) is read as YAML."""
    global _JSON_DECODER
    if _JSON_DECODER is None:
        import json
        _JSON_DECODER = json.JSONDecoder(parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    loaded, position = [], 0
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        if position == len(text):
            return loaded
        line, start = text.count("\n", 0, position) + 1, position
        try:
            value, position = _JSON_DECODER.raw_decode(text, position)
        except KubeYAMLError as exc:  # valid JSON, but no number kubectl can hold
            raise KubeYAMLError(exc.problem, line) from None
        except ValueError as exc:
            if len(loaded) > 1:
                raise KubeYAMLError(f"invalid JSON: {exc}", line) from None
            rest = text[position:]
            skipped = len(rest) - len(rest.lstrip(" \t\r\v\f\x85\xa0"))
            offset = line - 1
            try:
                documents = load_documents(rest[skipped:], pure, sniff_json=False)
            except KubeYAMLError as error:
                raise KubeYAMLError(error.problem, error.line + offset if error.line else None) from None
            return loaded + [document._replace(line=document.line + offset) for document in documents]
        if value is not None:
            loaded.append(Document(line, text[start:position], _without_surrogates(value)))


def load_documents(text, pure=False, sniff_json=True):
    """Every non-empty document of a YAML stream, as kubectl reads them: ``[Document]``. Errors name the line
    in ``text``. A stream that starts with '{' is read as JSON first, as kubectl does."""
    if sniff_json and text.lstrip(" \t\n\r\v\f\x85\xa0").startswith("{"):
        return _load_json_stream(text, pure)
    loaded = []
    for start, document in split_documents(text):
        try:
            value = load_document(document, pure)
        except KubeYAMLError as exc:
            raise KubeYAMLError(exc.problem, exc.line + start - 1 if exc.line else None) from None
        if value is not None:
            loaded.append(Document(start, document, value))
    return loaded


# ---------------------------------------------------------------------------------------------------
# Writing YAML that reads back the same under these rules


def _reads_back_as(text):
    """Whether a plain scalar ``text`` reads back as the same string under go-yaml v2's rules."""
    try:
        value = resolve_scalar("", text)
    except KubeYAMLError:
        return False
    return isinstance(value, str) and value == text


if yaml is not None:
    class _Dumper(yaml.SafeDumper):  # pylint: disable=too-many-ancestors
        """PyYAML resolves plain scalars by YAML 1.1 rules and go-yaml v2 by others (`y`, `23:30`, `1e3`):
        a string that would not read back as itself is quoted."""

        def represent_str(self, data):
            style = None if _reads_back_as(data) else '"'
            return self.represent_scalar(STR_TAG, data, style=style)

    _Dumper.add_representer(str, _Dumper.represent_str)


def dump(obj):
    """Block-style YAML of ``obj`` (keys in their order) that load_documents reads back as ``obj``."""
    return yaml.dump(obj, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True)
