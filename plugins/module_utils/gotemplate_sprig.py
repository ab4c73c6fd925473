# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Sprig v3 template function library (github.com/Masterminds/sprig), as Go templates see it.

Each function follows Sprig's Go implementation: its parameter types (a string parameter given a number is
an error, as in Go), its result types (``add`` gives an int64, ``splitList`` a []string), its treatment of
strings as bytes, and its errors. Functions that are not deterministic (dates, random values, UUIDs, key
generation) or need the network are listed in ``UNSUPPORTED`` with the reason: a template that uses one
fails when it is parsed, naming the function.
"""

from __future__ import annotations

import base64
import binascii
import copy
import decimal
import hashlib
import json
import math
import re
import unicodedata
import zlib

from ansible_collections.berth.converge.plugins.module_utils.dockerignore import clean_path
from ansible_collections.berth.converge.plugins.module_utils.gotemplate import (
    NO_VALUE, FuncError, GoFunc, GoList, GoMap, GoStruct, Int64, format_float, go_bytes, go_kind, go_len, go_quote,
    go_string, go_type, parse_go_float, parse_go_int, sorted_keys, sprint, sprintf, wrap_int64)

_NON_DETERMINISTIC = "its result changes between runs, which would change image digests"
_NOT_IMPLEMENTED = "not implemented by berth.converge"
UNSUPPORTED = {
    **{name: _NON_DETERMINISTIC for name in (
        "now", "ago", "date", "date_in_zone", "date_modify", "dateInZone", "dateModify", "htmlDate",
        "htmlDateInZone", "must_date_modify", "mustDateModify", "mustToDate", "toDate", "unixEpoch",
        "randAlphaNum", "randAlpha", "randAscii", "randNumeric", "randBytes", "randInt", "shuffle", "uuidv4",
        "bcrypt", "htpasswd", "genPrivateKey", "buildCustomCert", "genCA", "genCAWithKey", "genSelfSignedCert",
        "genSelfSignedCertWithKey", "genSignedCert", "genSignedCertWithKey", "encryptAES", "getHostByName")},
    **{name: _NOT_IMPLEMENTED for name in (
        "duration", "durationRound", "derivePassword", "decryptAES", "semver", "semverCompare", "urlParse",
        "urlJoin")},
}


# ---------------------------------------------------------------------------------------------------
# Go helpers


def go_is_space(char):
    """Go's unicode.IsSpace."""
    if ord(char) < 0x100:
        return char in "\t\n\v\f\r \x85\xa0"
    return char.isspace()


def go_trim_space(text):
    start, end = 0, len(text)
    while start < end and go_is_space(text[start]):
        start += 1
    while end > start and go_is_space(text[end - 1]):
        end -= 1
    return text[start:end]


def _simple_case(char, mapping):
    mapped = mapping(char)
    return mapped if len(mapped) == 1 else char


def go_runes(text):
    """The string as Go's range over runes sees it: bytes that are not UTF-8 become U+FFFD."""
    return "".join("\ufffd" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)


def go_upper(text):
    return "".join(_simple_case(c, str.upper) for c in go_runes(text))


def go_lower(text):
    return "".join(_simple_case(c, str.lower) for c in go_runes(text))


def go_title_rune(char):
    return _simple_case(char, str.title)


def _is_upper(char):
    return unicodedata.category(char) == "Lu"


def _is_letter(char):
    return unicodedata.category(char).startswith("L")


def _is_number(char):
    return unicodedata.category(char).startswith("N")


def _is_punct(char):
    return unicodedata.category(char).startswith("P")


def _byte_slice(text, start, end=None):
    """Go's s[start:end] on the string's bytes, with Go's panic for bad bounds."""
    data = go_bytes(text)
    end = len(data) if end is None else end
    if not 0 <= start <= end <= len(data):
        raise FuncError(f"runtime error: slice bounds out of range [{start}:{end}] with length {len(data)}")
    return go_string(data[start:end])


def kind_name(value):
    """reflect.TypeOf(value).Kind() as Sprig's messages print it."""
    if value is None or value is NO_VALUE:
        raise FuncError("runtime error: invalid memory address or nil pointer dereference")
    return go_kind(value)


def _require_list(value, message):
    kind = kind_name(value)
    if kind != "slice":
        raise FuncError(message % kind)
    return value


def strval(value):
    """Sprig's strval: strings as they are, anything else as fmt %v prints it."""
    return value if isinstance(value, str) else sprintf("%v", [value])


def strslice(value):
    """Sprig's strslice: a list of strings from a slice (nil elements dropped) or a single value."""
    if isinstance(value, GoList) and value.go_type == "[]string":
        return list(value)
    if isinstance(value, list):
        return [strval(v) for v in value if v is not None and v is not NO_VALUE]
    if value is None or value is NO_VALUE:
        return []
    return [strval(value)]


def empty(value):
    """Sprig's empty: nil, false, 0, "" and empty collections; structs never."""
    if value is None or value is NO_VALUE:
        return True
    if isinstance(value, (bool, int, float, complex)):
        return not value
    if isinstance(value, (str, list, dict)):
        return len(value) == 0
    return False


def deep_equal(left, right):
    """Go's reflect.DeepEqual for template values (types must match)."""
    if (left is None or left is NO_VALUE) and (right is None or right is NO_VALUE):
        return True
    if go_type(left) != go_type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(deep_equal(a, b) for a, b in zip(left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(deep_equal(left[k], right[k]) for k in left)
    if isinstance(left, GoStruct):
        return left is right
    return left == right


# ---------------------------------------------------------------------------------------------------
# cast (github.com/spf13/cast), which Sprig's conversions use; errors become 0


def _trim_zero_decimal(text):
    found_zero = False
    for i in range(len(text), 0, -1):
        char = text[i - 1]
        if char == ".":
            return text[:i - 1] if found_zero else text
        if char == "0":
            found_zero = True
        else:
            return text
    return text


def go_parse_float(text):
    """Go's strconv.ParseFloat(text, 64): None on error (including overflow)."""
    lowered = text.lower().lstrip("+-")
    if lowered in ("inf", "infinity"):
        return -math.inf if text.startswith("-") else math.inf
    if lowered == "nan":
        return math.nan
    return parse_go_float(text)


def to_int64(value):
    """cast.ToInt64 (0 when it cannot convert)."""
    if value is None or value is NO_VALUE or isinstance(value, (list, dict, GoStruct, complex)):
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value) or abs(value) >= 2 ** 63:
            return -(2 ** 63)
        return int(value)
    if isinstance(value, str):
        number = parse_go_int(_trim_zero_decimal(value))
        return 0 if number is None else number
    return 0


def to_float64(value):
    """cast.ToFloat64 (0 when it cannot convert)."""
    if value is None or value is NO_VALUE or isinstance(value, (list, dict, GoStruct, complex)):
        return 0.0
    if isinstance(value, (bool, int)):
        return float(int(value))
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        number = go_parse_float(value)
        return 0.0 if number is None else number
    return 0.0


# ---------------------------------------------------------------------------------------------------
# Strings


def abbreviate_full(text, offset, max_width):
    """goutils.AbbreviateFull (on bytes)."""
    data = go_bytes(text)
    if not data:
        return ""
    if max_width < 4:
        return ""
    if len(data) <= max_width:
        return text
    offset = min(offset, len(data))
    if len(data) - offset < max_width - 3:
        offset = len(data) - (max_width - 3)
    if offset <= 4:
        return go_string(data[:max_width - 3]) + "..."
    if max_width < 7:
        return ""
    if offset + max_width - 3 < len(data):
        return "..." + abbreviate_full(go_string(data[offset:]), 0, max_width - 3)
    return "..." + go_string(data[len(data) - (max_width - 3):])


def abbrev(width, text):
    return text if width < 4 else abbreviate_full(text, 0, width)


def abbrevboth(left, right, text):
    if right < 4 or (left > 0 and right < 7):
        return text
    return abbreviate_full(text, left, right)


def trunc(count, text):
    data = go_bytes(text)
    if count < 0 and len(data) + count > 0:
        return go_string(data[len(data) + count:])
    if count >= 0 and len(data) > count:
        return go_string(data[:count])
    return text


def substr(start, end, text):
    length = go_len(text)
    if start < 0:
        return _byte_slice(text, 0, end)
    if end < 0 or end > length:
        return _byte_slice(text, start)
    return _byte_slice(text, start, end)


def repeat(count, text):
    if count < 0:
        raise FuncError("strings: negative Repeat count")
    return text * count


def go_title(text):
    """Go's strings.Title."""
    def is_separator(char):
        if ord(char) <= 0x7F:
            return not (char.isalnum() or char == "_")
        if _is_letter(char) or unicodedata.category(char) == "Nd":
            return False
        return go_is_space(char)
    out, previous = [], " "
    for char in go_runes(text):
        out.append(go_title_rune(char) if is_separator(previous) else char)
        previous = char
    return "".join(out)


def untitle(text):
    """goutils.Uncapitalize: the first letter of each whitespace-separated word in lower case."""
    out, lower_next = [], True
    for char in go_runes(text):
        if go_is_space(char):
            lower_next = True
            out.append(char)
        elif lower_next:
            out.append(_simple_case(char, str.lower))
            lower_next = False
        else:
            out.append(char)
    return "".join(out)


def swapcase(text):
    """goutils.SwapCase."""
    out, whitespace = [], True
    for char in go_runes(text):
        category = unicodedata.category(char)
        if category in ("Lu", "Lt"):
            out.append(_simple_case(char, str.lower))
            whitespace = False
        elif category == "Ll":
            out.append(go_title_rune(char) if whitespace else _simple_case(char, str.upper))
            whitespace = False
        else:
            out.append(char)
            whitespace = go_is_space(char)
    return "".join(out)


def nospace(text):
    """goutils.DeleteWhiteSpace, which reads the string byte by byte."""
    data = go_bytes(text)
    kept = [chr(b) for b in data if not go_is_space(chr(b))]
    return text if len(kept) == len(data) else "".join(kept)


def initials(text):
    """goutils.Initials, which reads the string byte by byte."""
    out, gap = [], True
    for byte in go_bytes(text):
        char = chr(byte)
        if go_is_space(char):
            gap = True
        elif gap:
            out.append(char)
            gap = False
    return "".join(out)


def wrap_custom(text, length, newline, wrap_long):
    """goutils.WrapCustom (on bytes)."""
    data = go_bytes(text)
    if not data:
        return ""
    newline = go_bytes(newline) if newline else b"\n"
    length = max(length, 1)
    out, offset = b"", 0
    while len(data) - offset > length:
        if data[offset:offset + 1] == b" ":
            offset += 1
            continue
        space = data.rfind(b" ", offset, length + offset + 1)
        if space >= offset:
            out += data[offset:space] + newline
            offset = space + 1
        elif wrap_long:
            out += data[offset:offset + length] + newline
            offset += length
        else:
            index = data.find(b" ", length + offset)
            if index == -1:
                out += data[offset:]
                offset = len(data)
            else:
                out += data[offset:index] + newline
                offset = index + 1
    return go_string(out + data[offset:])


def go_trim(text, cutset):
    """Go's strings.Trim: remove runes in cutset from both ends."""
    start, end = 0, len(text)
    while start < end and text[start] in cutset:
        start += 1
    while end > start and text[end - 1] in cutset:
        end -= 1
    return text[start:end]


def _is_connector(char):
    return char in "-_" or go_is_space(char)


def _is_alphabet(char):
    if not _is_letter(char):
        return False
    code = ord(char)
    return not (0x4E00 <= code <= 0x9FCC or 0x3400 <= code <= 0x4D85 or 0x20000 <= code <= 0x2B81D)


def _next_word(text):
    """xstrings.nextWord: (word type, word, remaining)."""
    if not text:
        return "invalid", "", ""
    first = text[0]
    i = 1

    def run_while(predicate, start):
        j = start
        while j < len(text) and predicate(text[j]):
            j += 1
        return j

    if _is_connector(first):
        return "connector", text[:run_while(_is_connector, 1)], text[run_while(_is_connector, 1):]
    if _is_punct(first):
        j = run_while(_is_punct, 1)
        return "punct", text[:j], text[j:]
    if _is_upper(first):
        if len(text) > 1 and _is_upper(text[1]):
            j = run_while(_is_upper, 1)
            if j < len(text) and _is_alphabet(text[j]):
                j -= 1
            return "upper", text[:j], text[j:]
        if len(text) > 1 and _is_alphabet(text[1]):
            j = run_while(lambda c: _is_alphabet(c) and not _is_upper(c), 1)
            return "upper", text[:j], text[j:]
        return "upper", text[:i], text[i:]
    if _is_alphabet(first):
        j = run_while(lambda c: _is_alphabet(c) and not _is_upper(c), 1)
        return "alphabet", text[:j], text[j:]
    if _is_number(first):
        j = run_while(_is_number, 1)
        return "number", text[:j], text[j:]
    j = run_while(lambda c: not (_is_connector(c) or _is_alphabet(c) or _is_number(c) or _is_punct(c)), 1)
    return "other", text[:j], text[j:]


def _to_lower_word(out, word_type, word, connector):
    if word_type not in ("upper", "connector"):
        out.append(word)
        return
    for char in word:
        if _is_connector(char):
            out.append(connector)
        else:
            out.append(_simple_case(char, str.lower) if _is_upper(char) else char)


def camel_to_lower(text, connector):
    """xstrings.camelCaseToLowerCase (snakecase and kebabcase)."""
    if not text:
        return ""
    out = []
    word_type, word, remaining = _next_word(text)
    while remaining:
        if word_type != "connector":
            _to_lower_word(out, word_type, word, connector)
        previous, last = word_type, word
        word_type, word, remaining = _next_word(remaining)
        if previous == "number":
            while word_type in ("alphabet", "number"):
                _to_lower_word(out, word_type, word, connector)
                word_type, word, remaining = _next_word(remaining)
            if word_type not in ("invalid", "punct", "connector"):
                out.append(connector)
        elif previous == "connector":
            _to_lower_word(out, previous, last, connector)
        elif previous == "punct":
            pass
        elif word_type != "number":
            if word_type not in ("connector", "punct"):
                out.append(connector)
        elif remaining:
            last = word
            word_type, word, remaining = _next_word(remaining)
            if word_type != "alphabet":
                _to_lower_word(out, "number", last, connector)
                if word_type not in ("connector", "punct"):
                    out.append(connector)
            else:
                out.append(connector)
                _to_lower_word(out, "number", last, connector)
                while word_type in ("alphabet", "number"):
                    _to_lower_word(out, word_type, word, connector)
                    word_type, word, remaining = _next_word(remaining)
                if word_type not in ("invalid", "connector", "punct"):
                    out.append(connector)
    _to_lower_word(out, word_type, word, connector)
    return "".join(out)


def to_pascal_case(text):
    """xstrings.ToPascalCase (Sprig's camelcase)."""
    if not text:
        return ""
    out, index, current, first_upper = [], 0, "", False
    while index < len(text):
        current = text[index]
        index += 1
        if not _is_connector(current):
            first_upper = _is_upper(current)
            current = _simple_case(current, str.upper)
            break
        out.append(current)
    if index >= len(text):
        out.append(current)
        return "".join(out)
    for char in text[index:]:
        previous, current = current, char
        if _is_connector(current) and _is_connector(previous):
            out.append(previous)
            continue
        if _is_connector(previous):
            first_upper = _is_upper(current)
            current = _simple_case(current, str.upper)
        else:
            if first_upper:
                if _is_upper(current):
                    current = _simple_case(current, str.lower)
                else:
                    first_upper = False
            out.append(previous)
    out.append(current)
    return "".join(out)


def indent(spaces, text):
    pad = repeat(spaces, " ")
    return pad + text.replace("\n", "\n" + pad)


def go_split(text, sep, limit=-1):
    """Go's strings.SplitN (limit < 0: all)."""
    if limit == 0:
        return []
    if sep == "":
        chars = list(text)
        if 0 < limit < len(chars):
            chars = chars[:limit - 1] + ["".join(chars[limit - 1:])]
        return chars
    return text.split(sep, limit - 1) if limit > 0 else text.split(sep)


def split_map(parts):
    return GoMap({f"_{i}": part for i, part in enumerate(parts)}, "map[string]string")


def quote(*values):
    return " ".join(go_quote(strval(v)) for v in values if v is not None and v is not NO_VALUE)


def squote(*values):
    return " ".join(sprintf("'%v'", [v]) for v in values if v is not None and v is not NO_VALUE)


def cat(*values):
    kept = [v for v in values if v is not None and v is not NO_VALUE]
    return sprintf(" ".join(["%v"] * len(kept)), kept)


def seq(*params):
    if len(params) == 1:
        start, end = 1, params[0]
        step = -1 if end < start else 1
        values = until_step(start, end + step, step)
    elif len(params) == 2:
        start, end = params
        step = -1 if end < start else 1
        values = until_step(start, end + step, step)
    elif len(params) == 3:
        start, step, end = params
        increment = 1
        if end < start:
            increment = -1
            if step > 0:
                return ""
        values = until_step(start, end + increment, step)
    else:
        return ""
    return " ".join(str(v) for v in values)


def until_step(start, stop, step):
    values = []
    if stop < start:
        if step >= 0:
            return GoList(values, "[]int")
        i = start
        while i > stop:
            values.append(i)
            i += step
        return GoList(values, "[]int")
    if step <= 0:
        return GoList(values, "[]int")
    return GoList(range(start, stop, step), "[]int")


# ---------------------------------------------------------------------------------------------------
# Base64/base32 with Go's error messages


def b64dec(text):
    data = go_bytes(text)
    position = _base64_error(data)
    if position is not None:
        return f"illegal base64 data at input byte {position}"
    cleaned = data.replace(b"\n", b"").replace(b"\r", b"")
    return go_string(base64.b64decode(cleaned))


def _base64_error(data):
    """Go's base64.StdEncoding decoding: the position of the first illegal byte, or None."""
    alphabet = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    si = 0
    while True:
        j = 0
        while j < 4:
            if si == len(data):
                return None if j == 0 else si - j
            char = data[si]
            si += 1
            if char in alphabet:
                j += 1
            elif char not in b"\r\n":
                return si - 1 if char != ord("=") else _base64_padding(data, si, j)


def _base64_padding(data, si, j):
    if j in (0, 1):
        return si - 1
    if j == 2:
        while si < len(data) and data[si] in b"\r\n":
            si += 1
        if si == len(data):
            return len(data)
        if data[si] != ord("="):
            return si - 1
        si += 1
    while si < len(data) and data[si] in b"\r\n":
        si += 1
    return si if si < len(data) else None


def b32dec(text):
    data = go_bytes(text).replace(b"\n", b"").replace(b"\r", b"")
    try:
        return go_string(base64.b32decode(data))
    except (binascii.Error, ValueError):
        return f"illegal base32 data at input byte {_base32_error(data)}"


def _base32_error(data):
    alphabet = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    for index, char in enumerate(data):
        if char not in alphabet and char != ord("="):
            return index
    return len(data)


# ---------------------------------------------------------------------------------------------------
# Numbers


def _decimal(value):
    number = to_float64(value)
    if math.isnan(number) or math.isinf(number):
        raise FuncError(f"Cannot create a Decimal from {format(number)}")
    return decimal.Decimal(repr(number))


def decimal_op(first, rest, operation):
    """Sprig's execDecimalOp: shopspring/decimal arithmetic on the values' shortest decimal forms."""
    with decimal.localcontext() as context:
        context.prec = 100
        result = _decimal(first)
        for value in rest:
            operand = _decimal(value)
            if operation == "div":
                if operand == 0:
                    raise FuncError("decimal division by zero")
                result = (result / operand).quantize(decimal.Decimal(1).scaleb(-16), decimal.ROUND_HALF_UP)
            elif operation == "add":
                result += operand
            elif operation == "sub":
                result -= operand
            else:
                result *= operand
        return float(result)


def int_div(left, right):
    left, right = to_int64(left), to_int64(right)
    if right == 0:
        raise FuncError("runtime error: integer divide by zero")
    quotient = abs(left) // abs(right)
    return wrap_int64(quotient if (left < 0) == (right < 0) else -quotient)


def int_mod(left, right):
    left, right = to_int64(left), to_int64(right)
    if right == 0:
        raise FuncError("runtime error: integer divide by zero")
    remainder = abs(left) % abs(right)
    return wrap_int64(-remainder if left < 0 else remainder)


def mul(first, *rest):
    value = to_int64(first)
    for item in rest:
        value = to_int64(wrap_int64(value * to_int64(item)))
    return wrap_int64(value)


def go_rounding(function, value):
    """math.Ceil/math.Floor: infinities and NaN unchanged, a zero result keeps the sign of the value."""
    if not math.isfinite(value):
        return value
    result = float(function(value))
    return math.copysign(0.0, value) if result == 0 else result


def go_max(values):
    result = values[0]
    for value in values[1:]:
        if math.isnan(value) or math.isnan(result):
            return math.nan
        result = max(result, value)
    return result


def go_min(values):
    result = values[0]
    for value in values[1:]:
        if math.isnan(value) or math.isnan(result):
            return math.nan
        result = min(result, value)
    return result


def go_round(value, places, *round_on):
    threshold = round_on[0] if round_on else 0.5
    pow10 = math.pow(10, float(places))
    digit = pow10 * to_float64(value)
    fraction = math.fmod(digit, 1.0)
    rounded = math.ceil(digit) if fraction >= threshold else math.floor(digit)
    return rounded / pow10


def to_decimal(value):
    text = sprint([value])
    try:
        if not text or any(c not in "01234567" for c in text.lstrip("+-")) or not text.lstrip("+-"):
            return Int64(0)
        number = int(text, 8)
    except ValueError:
        return Int64(0)
    return Int64(number) if -(2 ** 63) <= number < 2 ** 63 else Int64(0)


def atoi(text):
    """strconv.Atoi with its error ignored: 0, or the int64 limit on overflow."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or any(c not in "0123456789" for c in body):
        return 0
    return max(-(2 ** 63), min(int(text), 2 ** 63 - 1))


# ---------------------------------------------------------------------------------------------------
# Lists


def _elements(value, message):
    return list(_require_list(value, message))


def first(value):
    items = _elements(value, "Cannot find first on type %s")
    return items[0] if items else None


def last(value):
    items = _elements(value, "Cannot find last on type %s")
    return items[-1] if items else None


def rest(value):
    return _elements(value, "Cannot find rest on type %s")[1:]


def initial(value):
    return _elements(value, "Cannot find initial on type %s")[:-1]


def reverse(value):
    return _elements(value, "Cannot find reverse on type %s")[::-1]


def compact(value):
    return [v for v in _elements(value, "Cannot compact on type %s") if not empty(v)]


def uniq(value):
    result = []
    for item in _elements(value, "Cannot find uniq on type %s"):
        if not any(deep_equal(item, seen) for seen in result):
            result.append(item)
    return result


def without(value, *omit):
    return [v for v in _elements(value, "Cannot find without on type %s")
            if not any(deep_equal(v, o) for o in omit)]


def has(needle, haystack):
    if haystack is None or haystack is NO_VALUE:
        return False
    return any(deep_equal(needle, v) for v in _elements(haystack, "Cannot find has on type %s"))


def push(value, item):
    return _elements(value, "Cannot push on type %s") + [item]


def prepend(value, item):
    return [item] + _elements(value, "Cannot prepend on type %s")


def chunk(size, value):
    items = _elements(value, "Cannot chunk type %s")
    if size <= 0:
        raise FuncError("runtime error: makeslice: len out of range")
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    return GoList(chunks, "[][]interface {}")


def slice_list(value, *indices):
    items = _require_list(value, "list should be type of slice or array but %s")
    if not items:
        return None
    start = to_int64(indices[0]) if indices else 0
    end = to_int64(indices[1]) if len(indices) > 1 else len(items)
    if not 0 <= start <= end <= len(items):
        raise FuncError("reflect: slice index out of range")
    result = items[start:end]
    return GoList(result, items.go_type) if isinstance(items, GoList) else result


def concat(*lists):
    result = []
    for value in lists:
        kind = kind_name(value)
        if kind != "slice":
            raise FuncError(f"Cannot concat type {kind} as list")
        result.extend(value)
    return result


def sort_alpha(value):
    if isinstance(value, list):
        return GoList(sorted(strslice(value), key=go_bytes), "[]string")
    return GoList([strval(value)], "[]string")


def until(count):
    return until_step(0, count, -1 if count < 0 else 1)


# ---------------------------------------------------------------------------------------------------
# Dicts


def dict_(*values):
    result = {}
    for i in range(0, len(values), 2):
        key = strval(values[i])
        result[key] = values[i + 1] if i + 1 < len(values) else ""
    return result


def get(mapping, key):
    return (mapping or {}).get(key, "")


def set_(mapping, key, value):
    if mapping is None:
        raise FuncError("assignment to entry in nil map")
    mapping[key] = value
    return mapping


def unset(mapping, key):
    if mapping is not None:
        mapping.pop(key, None)
    return mapping


def pluck(key, *mappings):
    return [m[key] for m in mappings if m is not None and key in m]


def keys(*mappings):
    return GoList([k for m in mappings if m for k in sorted_keys(m)], "[]string")


def pick(mapping, *names):
    mapping = mapping or {}
    return {k: mapping[k] for k in names if k in mapping}


def omit(mapping, *names):
    return {k: v for k, v in (mapping or {}).items() if k not in names}


def values(mapping):
    mapping = mapping or {}
    return [mapping[k] for k in sorted_keys(mapping)]


def dig(*args):
    if len(args) < 3:
        raise FuncError("dig needs at least three arguments")
    mapping, default, names = args[-1], args[-2], args[:-2]
    for name in names:
        if not isinstance(name, str):
            raise FuncError(f"interface conversion: interface {{}} is {go_type(name) or 'nil'}, not string")
    for index, name in enumerate(names):
        if not isinstance(mapping, dict) or isinstance(mapping, GoMap):
            kind = go_type(mapping) or "nil"
            raise FuncError(f"interface conversion: interface {{}} is {kind}, not map[string]interface {{}}")
        if name not in mapping:
            return default
        if index == len(names) - 1:
            return mapping[name]
        mapping = mapping[name]
    return default


def merge_into(dst, src, overwrite):
    """mergo.Merge / MergeWithOverwrite as Sprig calls them on map[string]interface {} (dst is modified)."""
    for key, value in src.items():
        had, old = key in dst, dst.get(key)
        if value is None or value is NO_VALUE:
            if overwrite:
                dst[key] = None
            continue
        if isinstance(value, dict) and isinstance(old, dict):
            merge_into(old, value, overwrite)
        if isinstance(value, list):
            if overwrite or not dst:
                dst[key] = value
            else:
                dst[key] = old if had and old is not None else []
        if had and not empty(old):
            if isinstance(value, list) or (isinstance(value, dict) and isinstance(old, dict)):
                continue
        if overwrite or not had or empty(old):
            dst[key] = value
    return dst


def merge(overwrite):
    """Sprig's merge/mergeOverwrite and their must variants (mergo cannot fail on these maps)."""
    def merge_maps(dst, *sources):
        dst = {} if dst is None else dst
        for src in sources:
            merge_into(dst, src or {}, overwrite)
        return dst
    return merge_maps


# ---------------------------------------------------------------------------------------------------
# JSON (Go's encoding/json)


def json_string(text, escape_html=True):
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif char == "\b":
            out.append("\\b")
        elif char == "\f":
            out.append("\\f")
        elif code < 0x20 or (escape_html and char in "<>&") or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append("\\ufffd")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def json_float(value):
    if math.isnan(value) or math.isinf(value):
        raise FuncError(f"json: unsupported value: {sprint([value])}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = format_float(value, "e", -1)
        if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    return format_float(value, "f", -1)


def to_json(value, indent_by="", escape_html=True, level=0):
    """Go's json.Marshal (json.MarshalIndent with ``indent_by``)."""
    if value is None or value is NO_VALUE:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, str):
        return json_string(value, escape_html)
    if isinstance(value, GoMap) and not value.go_type.startswith("map[string]"):
        raise FuncError(f"json: unsupported type: {value.go_type}")
    newline = "\n" + indent_by * (level + 1) if indent_by else ""
    closing = "\n" + indent_by * level if indent_by else ""
    if isinstance(value, list):
        if not value:
            return "[]"
        items = [to_json(v, indent_by, escape_html, level + 1) for v in value]
        return "[" + newline + ("," + newline).join(items) + closing + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        separator = ": " if indent_by else ":"
        items = [json_string(k, escape_html) + separator + to_json(value[k], indent_by, escape_html, level + 1)
                 for k in sorted(value, key=go_bytes)]
        return "{" + newline + ("," + newline).join(items) + closing + "}"
    if isinstance(value, GoStruct):
        return "{}"
    if isinstance(value, complex):
        raise FuncError("json: unsupported type: complex128")
    raise FuncError(f"json: unsupported type: {go_type(value)}")


def _json_error(message):
    raise ValueError(message)


def from_json(text):
    """Go's json.Unmarshal into interface{}: numbers are float64."""
    def as_float(number):
        value = float(number)
        if math.isinf(value):
            raise ValueError(f"json: cannot unmarshal number {number} into Go value of type float64")
        return value
    try:
        return json.loads(text, parse_int=as_float, parse_float=as_float,
                          parse_constant=lambda c: _json_error(f"invalid character '{c[0]}' looking for beginning "
                                                               "of value"))
    except RecursionError:
        raise FuncError("exceeded max depth")
    except ValueError as exc:
        raise FuncError(_go_json_message(str(exc)))


def _go_json_message(message):
    return message if message.startswith("json:") or message.startswith("invalid character") else \
        "invalid JSON: " + message


def quiet(function, default=None):
    """Sprig's non-must variants: the error becomes a default result."""
    def call(*args):
        try:
            return function(*args)
        except FuncError:
            return default
    return call


# ---------------------------------------------------------------------------------------------------
# Regular expressions (Go's RE2 syntax translated to Python's re where they differ)

_POSIX_CLASSES = {"alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7F", "blank": "\\t ",
                  "cntrl": "\\x00-\\x1F\\x7F", "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~",
                  "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": "0-9A-Za-z_",
                  "xdigit": "0-9A-Fa-f"}
# RE2's Perl classes are ASCII-only; Python's are Unicode.
_CLASS_BODIES = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_WORD = "[0-9A-Za-z_]"
_ESCAPES = {"b": f"(?:(?<={_WORD})(?!{_WORD})|(?<!{_WORD})(?={_WORD}))",
            "B": f"(?:(?<={_WORD})(?={_WORD})|(?<!{_WORD})(?!{_WORD}))", "z": "\\Z", "A": "\\A"}


class _RegexpSyntaxError(Exception):
    pass


def translate_go_regexp(pattern):
    """A Go (RE2) regular expression as a Python one with the same meaning; RE2's errors for syntax it lacks."""
    multiline = re.search(r"\(\?[a-zA-Z]*m", pattern) is not None
    out, i, in_class = [], 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(_translate_escape(pattern, i, in_class))
            i += 2
            continue
        if in_class:
            posix = re.match(r"\[:(\^?)(\w+):\]", pattern[i:])
            if posix:
                if posix.group(1) or posix.group(2) not in _POSIX_CLASSES:
                    raise _RegexpSyntaxError(f"invalid character class range: `{posix.group(0)}`")
                out.append(_POSIX_CLASSES[posix.group(2)])
                i += posix.end()
                continue
            in_class = char != "]"
            out.append("\\[" if char == "[" else char)
        elif char == "[":
            in_class = True
            out.append(char)
            if pattern[i + 1:i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1:i + 2] == "]":
                out.append("\\]")
                i += 1
        elif char == "$" and not multiline:
            out.append("\\Z")
        elif pattern.startswith(("(?=", "(?!", "(?<=", "(?<!", "(?>"), i):
            raise _RegexpSyntaxError(f"invalid or unsupported Perl syntax: `{pattern[i:i + 3]}`")
        elif pattern.startswith("(?<", i):
            out.append("(?P<")
            i += 3
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _translate_escape(pattern, i, in_class):
    letter = pattern[i + 1]
    if letter.lower() in _CLASS_BODIES:
        body = _CLASS_BODIES[letter.lower()]
        if in_class:
            if letter.isupper():
                raise _RegexpSyntaxError(f"negated class \\{letter} inside [...] is not supported by berth.converge")
            return body
        return f"[{'^' if letter.isupper() else ''}{body}]"
    if letter in _ESCAPES and not in_class:
        return _ESCAPES[letter]
    if letter in "123456789":
        raise _RegexpSyntaxError(f"invalid escape sequence: `\\{letter}`")
    if letter in "pP":
        raise _RegexpSyntaxError("Unicode classes \\p are not supported by berth.converge")
    return "\\" + letter


def go_regexp(pattern):
    """Compile a Go regular expression; a bad one is an error like Go's."""
    try:
        return re.compile(translate_go_regexp(pattern))
    except (_RegexpSyntaxError, re.error) as exc:
        raise FuncError(f"error parsing regexp: {exc}")


def find_all(regexp, text, limit):
    """Go's FindAllStringIndex: no empty match right after the previous match."""
    if limit < 0:
        limit = len(text) + 1
    matches, pos, previous_end = [], 0, -1
    while len(matches) < limit and pos <= len(text):
        match = regexp.search(text, pos)
        if match is None:
            break
        accept = True
        if match.end() == match.start() == pos or match.end() == pos:
            if match.start() == previous_end:
                accept = False
            pos += 1
        else:
            pos = match.end()
        previous_end = match.end()
        if accept:
            matches.append(match)
    return matches


def regex_split(regexp, text, limit):
    if limit == 0:
        return GoList([], "[]string")
    if regexp.pattern and not text:
        return GoList([""], "[]string")
    parts, begin, end = [], 0, 0
    for match in find_all(regexp, text, limit):
        if 0 < limit and len(parts) == limit - 1:
            break
        end = match.start()
        if match.end() != 0:
            parts.append(text[begin:end])
        begin = match.end()
    if end != len(text):
        parts.append(text[begin:])
    return GoList(parts, "[]string")


def expand_template(template, match):
    """Go's Regexp.Expand: $1, ${1}, $name, ${name}; $$ is a dollar."""
    out, i = [], 0
    while i < len(template):
        if template[i] != "$":
            out.append(template[i])
            i += 1
            continue
        if template[i + 1:i + 2] == "$":
            out.append("$")
            i += 2
            continue
        name_match = re.match(r"\{(\w+)\}|(\w+)", template[i + 1:])
        if not name_match:
            out.append("$")
            i += 1
            continue
        name = name_match.group(1) or name_match.group(2)
        i += 1 + name_match.end()
        out.append(_group(match, name))
    return "".join(out)


def _group(match, name):
    try:
        value = match.group(int(name)) if name.isdigit() else match.group(name)
    except IndexError:
        return ""
    return value or ""


def replace_all(regexp, text, replacement):
    """Go's ReplaceAllString (replacement is a function of the match)."""
    out, last_end, search = [], 0, 0
    while search <= len(text):
        match = regexp.search(text, search)
        if match is None:
            break
        out.append(text[last_end:match.start()])
        if match.end() > last_end or match.start() == 0:
            out.append(replacement(match))
        last_end = match.end()
        search = search + 1 if search + 1 > match.end() else match.end()
    out.append(text[last_end:])
    return "".join(out)


def regex_functions():
    def find_all_strings(regex, text, limit):
        return GoList([m.group(0) for m in find_all(go_regexp(regex), text, limit)], "[]string")

    def find(regex, text):
        match = go_regexp(regex).search(text)
        return match.group(0) if match else ""

    def replace(regex, text, repl):
        return replace_all(go_regexp(regex), text, lambda m: expand_template(repl, m))

    def replace_literal(regex, text, repl):
        return replace_all(go_regexp(regex), text, lambda m: repl)

    def split(regex, text, limit):
        return regex_split(go_regexp(regex), text, limit)

    def match(regex, text):
        return go_regexp(regex).search(text) is not None

    def match_quietly(regex, text):
        try:
            return match(regex, text)
        except FuncError:
            return False

    functions = {"regexMatch": (match, ("string", "string")),
                 "regexFindAll": (find_all_strings, ("string", "string", "int")),
                 "regexFind": (find, ("string", "string")),
                 "regexReplaceAll": (replace, ("string", "string", "string")),
                 "regexReplaceAllLiteral": (replace_literal, ("string", "string", "string")),
                 "regexSplit": (split, ("string", "string", "int"))}
    result = {"regexQuoteMeta": GoFunc(lambda s: re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", s), ("string",))}
    for name, (function, params) in functions.items():
        must = "must" + name[0].upper() + name[1:]
        result[name] = GoFunc(function, params)
        result[must] = GoFunc(function, params)
    result["regexMatch"] = GoFunc(match_quietly, ("string", "string"))
    return result


# ---------------------------------------------------------------------------------------------------
# Paths (Go's path package)


def path_clean(path):
    """Go's ``path.Clean`` (one implementation, shared with .dockerignore matching)."""
    return clean_path(path)


def path_base(path):
    if path == "":
        return "."
    path = path.rstrip("/")
    if path == "":
        return "/"
    return path.rsplit("/", 1)[-1]


def path_dir(path):
    return path_clean(path[:path.rfind("/") + 1])


def path_ext(path):
    for i in range(len(path) - 1, -1, -1):
        if path[i] == "/":
            break
        if path[i] == ".":
            return path[i:]
    return ""


# ---------------------------------------------------------------------------------------------------
# The function map


def deep_copy(value):
    if value is None or value is NO_VALUE:
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    return copy.deepcopy(value)


def _to_strings(value):
    return GoList(strslice(value), "[]string")


def _type_is_like(target, value):
    name = go_type(value) or "<nil>"
    return target == name or "*" + target == name


def _hash(algorithm):
    return lambda text: hashlib.new(algorithm, go_bytes(text)).hexdigest()


def _fail(message):
    raise FuncError(message)


def sprig_functions():
    """Sprig's TxtFuncMap (minus what UNSUPPORTED lists) as GoFunc objects."""
    s, i, a, m, f, b = "string", "int", "any", "map", "float64", "bool"
    table = {
        "hello": (lambda: "Hello!", ()),
        # strings
        "abbrev": (abbrev, (i, s)), "abbrevboth": (abbrevboth, (i, i, s)), "trunc": (trunc, (i, s)),
        "trim": (go_trim_space, (s,)), "upper": (go_upper, (s,)), "lower": (go_lower, (s,)),
        "title": (go_title, (s,)), "untitle": (untitle, (s,)), "substr": (substr, (i, i, s)),
        "repeat": (repeat, (i, s)), "trimall": (lambda c, t: go_trim(t, c), (s, s)),
        "trimAll": (lambda c, t: go_trim(t, c), (s, s)),
        "trimSuffix": (lambda x, t: t[: -len(x)] if x and t.endswith(x) else t, (s, s)),
        "trimPrefix": (lambda x, t: t[len(x):] if t.startswith(x) else t, (s, s)),
        "nospace": (nospace, (s,)), "initials": (initials, (s,)), "swapcase": (swapcase, (s,)),
        "snakecase": (lambda t: camel_to_lower(t, "_"), (s,)), "camelcase": (to_pascal_case, (s,)),
        "kebabcase": (lambda t: camel_to_lower(t, "-"), (s,)),
        "wrap": (lambda n, t: wrap_custom(t, n, "", False), (i, s)),
        "wrapWith": (lambda n, sep, t: wrap_custom(t, n, sep, True), (i, s, s)),
        "contains": (lambda x, t: x in t, (s, s)), "hasPrefix": (lambda x, t: t.startswith(x), (s, s)),
        "hasSuffix": (lambda x, t: t.endswith(x), (s, s)),
        "indent": (indent, (i, s)), "nindent": (lambda n, t: "\n" + indent(n, t), (i, s)),
        "replace": (lambda old, new, t: t.replace(old, new), (s, s, s)),
        "plural": (lambda one, many, n: one if n == 1 else many, (s, s, i)),
        "sha1sum": (_hash("sha1"), (s,)), "sha256sum": (_hash("sha256"), (s,)),
        "sha512sum": (_hash("sha512"), (s,)),
        "adler32sum": (lambda t: str(zlib.adler32(go_bytes(t))), (s,)),
        "toString": (strval, (a,)),
        # conversions and numbers
        "atoi": (atoi, (s,)), "int64": (lambda v: Int64(wrap_int64(to_int64(v))), (a,)),
        "int": (lambda v: int(wrap_int64(to_int64(v))), (a,)), "float64": (to_float64, (a,)),
        "toDecimal": (to_decimal, (a,)),
        "add1": (lambda v: wrap_int64(to_int64(v) + 1), (a,)),
        "sub": (lambda x, y: wrap_int64(to_int64(x) - to_int64(y)), (a, a)),
        "div": (int_div, (a, a)), "mod": (int_mod, (a, a)),
        "add1f": (lambda v: decimal_op(v, [1], "add"), (a,)),
        "ceil": (lambda v: go_rounding(math.ceil, to_float64(v)), (a,)),
        "floor": (lambda v: go_rounding(math.floor, to_float64(v)), (a,)),
        # lists
        "splitList": (lambda sep, t: GoList(go_split(t, sep), "[]string"), (s, s)),
        "split": (lambda sep, t: split_map(go_split(t, sep)), (s, s)),
        "splitn": (lambda sep, n, t: split_map(go_split(t, sep, n)), (s, i, s)),
        "toStrings": (_to_strings, (a,)), "until": (until, (i,)), "untilStep": (until_step, (i, i, i)),
        "join": (lambda sep, v: sep.join(strslice(v)), (s, a)), "sortAlpha": (sort_alpha, (a,)),
        "first": (first, (a,)), "mustFirst": (first, (a,)), "last": (last, (a,)), "mustLast": (last, (a,)),
        "rest": (rest, (a,)), "mustRest": (rest, (a,)), "initial": (initial, (a,)),
        "mustInitial": (initial, (a,)), "reverse": (reverse, (a,)), "mustReverse": (reverse, (a,)),
        "uniq": (uniq, (a,)), "mustUniq": (uniq, (a,)), "compact": (compact, (a,)),
        "mustCompact": (compact, (a,)), "has": (has, (a, a)), "mustHas": (has, (a, a)),
        "append": (push, (a, a)), "push": (push, (a, a)), "mustAppend": (push, (a, a)),
        "mustPush": (push, (a, a)), "prepend": (prepend, (a, a)), "mustPrepend": (prepend, (a, a)),
        "chunk": (chunk, (i, a)), "mustChunk": (chunk, (i, a)),
        # defaults and flow
        "empty": (empty, (a,)), "ternary": (lambda x, y, cond: x if cond else y, (a, a, b)),
        "fail": (_fail, (s,)),
        "fromJson": (quiet(from_json), (s,)), "mustFromJson": (from_json, (s,)),
        "toJson": (quiet(to_json, ""), (a,)), "mustToJson": (to_json, (a,)),
        "toPrettyJson": (quiet(lambda v: to_json(v, "  "), ""), (a,)),
        "mustToPrettyJson": (lambda v: to_json(v, "  "), (a,)),
        "toRawJson": (lambda v: to_json(v, "", False), (a,)),
        "mustToRawJson": (lambda v: to_json(v, "", False), (a,)),
        "deepCopy": (deep_copy, (a,)), "mustDeepCopy": (deep_copy, (a,)),
        # reflection
        "typeOf": (lambda v: go_type(v) or "<nil>", (a,)), "typeIs": (lambda t, v: t == (go_type(v) or "<nil>"), (s, a)),
        "typeIsLike": (_type_is_like, (s, a)), "kindOf": (go_kind, (a,)),
        "kindIs": (lambda k, v: k == go_kind(v), (s, a)), "deepEqual": (deep_equal, (a, a)),
        # paths
        "base": (path_base, (s,)), "dir": (path_dir, (s,)), "clean": (path_clean, (s,)), "ext": (path_ext, (s,)),
        "isAbs": (lambda p: p.startswith("/"), (s,)), "osBase": (path_base, (s,)), "osDir": (path_dir, (s,)),
        "osClean": (path_clean, (s,)), "osExt": (path_ext, (s,)), "osIsAbs": (lambda p: p.startswith("/"), (s,)),
        # encodings
        "b64enc": (lambda t: base64.b64encode(go_bytes(t)).decode(), (s,)), "b64dec": (b64dec, (s,)),
        "b32enc": (lambda t: base64.b32encode(go_bytes(t)).decode(), (s,)), "b32dec": (b32dec, (s,)),
        # dicts
        "get": (get, (m, s)), "set": (set_, (m, s, a)), "unset": (unset, (m, s)),
        "hasKey": (lambda d, k: k in (d or {}), (m, s)), "values": (values, (m,)),
    }
    variadic = {
        "quote": (quote, (), a), "squote": (squote, (), a), "cat": (cat, (), a), "seq": (seq, (), i),
        "add": (lambda *v: wrap_int64(sum(to_int64(x) for x in v)), (), a),
        "mul": (mul, (a,), a),
        "max": (lambda x, *v: Int64(max([to_int64(x)] + [to_int64(y) for y in v])), (a,), a),
        "biggest": (lambda x, *v: Int64(max([to_int64(x)] + [to_int64(y) for y in v])), (a,), a),
        "min": (lambda x, *v: Int64(min([to_int64(x)] + [to_int64(y) for y in v])), (a,), a),
        "maxf": (lambda x, *v: go_max([to_float64(x)] + [to_float64(y) for y in v]), (a,), a),
        "minf": (lambda x, *v: go_min([to_float64(x)] + [to_float64(y) for y in v]), (a,), a),
        "addf": (lambda *v: decimal_op(0.0, v, "add"), (), a),
        "subf": (lambda x, *v: decimal_op(x, v, "sub"), (a,), a),
        "mulf": (lambda x, *v: decimal_op(x, v, "mul"), (a,), a),
        "divf": (lambda x, *v: decimal_op(x, v, "div"), (a,), a),
        "round": (go_round, (a, i), f),
        "default": (lambda d, *given: d if not given or empty(given[0]) else given[0], (a,), a),
        "coalesce": (lambda *v: next((x for x in v if not empty(x)), None), (), a),
        "all": (lambda *v: all(not empty(x) for x in v), (), a),
        "any": (lambda *v: any(not empty(x) for x in v), (), a),
        "list": (lambda *v: list(v), (), a), "tuple": (lambda *v: list(v), (), a),
        "dict": (dict_, (), a), "without": (without, (a,), a), "mustWithout": (without, (a,), a),
        "slice": (slice_list, (a,), a), "mustSlice": (slice_list, (a,), a), "concat": (concat, (), a),
        "dig": (dig, (), a), "pluck": (pluck, (s,), m), "keys": (keys, (), m), "pick": (pick, (m,), s),
        "omit": (omit, (m,), s),
        "merge": (merge(False), (m,), m), "mergeOverwrite": (merge(True), (m,), m),
        "mustMerge": (merge(False), (m,), m), "mustMergeOverwrite": (merge(True), (m,), m),
    }
    functions = {name: GoFunc(fn, params) for name, (fn, params) in table.items()}
    functions.update({name: GoFunc(fn, params, var) for name, (fn, params, var) in variadic.items()})
    functions.update(regex_functions())
    return functions
