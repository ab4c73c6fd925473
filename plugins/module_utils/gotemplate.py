# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An evaluator of Go's ``text/template`` language, as werf uses it to render werf.yaml.

The whole syntax is supported (actions, pipelines, variables, if/else if/range/with/else with/define/
template/block, break/continue, trim markers, comments, raw strings, character and number constants) with
Go's semantics for truth, comparisons, printing (``fmt``), missing map keys and errors. Errors read like
Go's: ``template: NAME:LINE:COL: executing "NAME" at <NODE>: MESSAGE`` (parse errors ``template: NAME:LINE:
MESSAGE``). The Sprig function library lives in ``gotemplate_sprig``.

Go values are modelled with Python values: ``str`` (Go strings are bytes: bytes that are not UTF-8 are
kept as surrogate escapes), ``bool``, ``int`` (Go ``int``), ``Int64``, ``float`` (``float64``), ``None``
(a nil interface), ``NO_VALUE`` (Go's invalid value, e.g. a missing map key), ``list``
(``[]interface {}``), ``dict`` (``map[string]interface {}``), and ``GoList``/``GoMap``/``GoStruct`` for the
other Go types functions return or receive.
"""

from __future__ import annotations

import bisect
import decimal
import math
import unicodedata
import urllib.parse


# ---------------------------------------------------------------------------------------------------
# Values


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key or an unset pipeline evaluates to."""

    __slots__ = ()

    def __repr__(self):
        return "NO_VALUE"


NO_VALUE = _NoValue()


class Int64(int):
    """A Go ``int64`` (Sprig's arithmetic returns it); a plain ``int`` is Go's ``int``."""


class Uint64(int):
    """A Go ``uint64`` (YAML integers beyond int64)."""


class GoList(list):
    """A slice whose Go type is not ``[]interface {}``, e.g. ``[]string`` or ``[]int``."""

    def __init__(self, items=(), go_type="[]string"):
        super().__init__(items)
        self.go_type = go_type


class GoMap(dict):
    """A map whose Go type is not ``map[string]interface {}``, e.g. ``map[string]string``."""

    def __init__(self, items=(), go_type="map[string]string"):
        super().__init__(items)
        self.go_type = go_type

    def zero(self):
        """The zero value of the element type (what ``index`` gives for a missing key)."""
        return "" if self.go_type.endswith("]string") else None


class GoStruct:
    """A Go struct value: exported fields and methods (``GoFunc``), e.g. werf's ``.Files``."""

    def __init__(self, go_type, fields=None, methods=None):
        self.go_type = go_type
        self.fields = fields or {}
        self.methods = methods or {}


class GoFunc:
    """A function callable from templates.

    ``params`` are the Go types of the fixed parameters and ``variadic`` the element type of a final
    ``...`` parameter. Types: ``any`` (interface {}), ``value`` (reflect.Value, builtins only), ``string``,
    ``int``, ``float64``, ``bool``, ``map`` (map[string]interface {}). ``fn`` receives the converted
    arguments and returns the result; it raises ``FuncError`` for a Go error or panic.
    """

    __slots__ = ("fn", "params", "variadic", "lazy")

    def __init__(self, fn, params=(), variadic=None, lazy=False):
        self.fn = fn
        self.params = tuple(params)
        self.variadic = variadic
        self.lazy = lazy  # and/or: receives thunks and evaluates them itself


class FuncError(Exception):
    """An error returned (or a panic raised) by a template function."""


class TemplateError(Exception):
    """A parse or execution error; ``str()`` reads like Go's error, ``parse_name``/``line`` locate it."""

    def __init__(self, message, parse_name=None, line=None):
        super().__init__(message)
        self.parse_name = parse_name
        self.line = line


class ParseError(TemplateError):
    pass


class ExecError(TemplateError):
    pass


GO_TYPE_NAMES = {"any": "interface {}", "map": "map[string]interface {}", "value": "reflect.Value"}
NIL_TYPES = ("any", "map", "value")


def go_bytes(text):
    """A Go string's bytes."""
    return text.encode("utf-8", "surrogateescape")


def go_string(data):
    """The Go string of ``data`` bytes (bytes that are not UTF-8 are kept as surrogate escapes)."""
    return data.decode("utf-8", "surrogateescape")


def go_len(text):
    """Length of a Go string: bytes."""
    return len(go_bytes(text))


def go_type(value):
    """The Go type name of a value (``%T``); None for nil."""
    if value is None or value is NO_VALUE:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (Int64, Uint64)):
        return "int64" if isinstance(value, Int64) else "uint64"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, complex):
        return "complex128"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (GoList, GoMap, GoStruct)):
        return value.go_type
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, GoFunc):
        return "func"
    return type(value).__name__


def go_kind(value):
    """The reflect.Kind name of a value (Sprig's ``kindOf``)."""
    if value is None or value is NO_VALUE:
        return "invalid"
    if isinstance(value, (bool, str)):
        return "bool" if isinstance(value, bool) else "string"
    if isinstance(value, int):
        return go_type(value)
    if isinstance(value, float):
        return "float64"
    if isinstance(value, complex):
        return "complex128"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, GoStruct):
        return "struct"
    return "func"


def is_true(value):
    """Go template truth: false, 0, nil, and empty strings, slices and maps are false."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, (bool, int, float, complex)):
        return bool(value)
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True


def wrap_int64(number):
    """Go int64 overflow: wrap around."""
    return Int64((number + 2 ** 63) % 2 ** 64 - 2 ** 63)


# ---------------------------------------------------------------------------------------------------
# fmt: Go's Sprint, Sprintln and Sprintf


def is_print(char):
    """Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    return char == " " or (char.isprintable() and not unicodedata.category(char).startswith("Z"))


def quote_rune(code, quote, ascii_only=False):
    """Go's escaping of one rune inside a quoted string or rune literal."""
    char = chr(code)
    if char == quote or char == "\\":
        return "\\" + char
    if (ascii_only and code < 0x80 and is_print(char)) or (not ascii_only and is_print(char)):
        return char
    simple = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    if code in simple:
        return simple[code]
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        code = 0xFFFD
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def go_quote(text, ascii_only=False):
    """Go's strconv.Quote (QuoteToASCII with ``ascii_only``)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(quote_rune(code, '"', ascii_only))
    out.append('"')
    return "".join(out)


def can_backquote(text):
    return all(c == "\t" or (c >= " " and c not in "`\x7f\ufeff" and not 0xDC80 <= ord(c) <= 0xDCFF)
               for c in text)


class _Digits:
    """A decimal digit string and the position of the decimal point (Go's decimalSlice)."""

    def __init__(self, digits, point):
        self.digits = digits.rstrip("0")
        self.point = point if self.digits else 0

    @classmethod
    def shortest(cls, value):
        """The shortest digits that read back as ``value`` (value >= 0)."""
        sign, digits, exponent = decimal.Decimal(repr(value)).as_tuple()
        text = "".join(map(str, digits)).lstrip("0")
        return cls(text, len(text) + exponent)

    @classmethod
    def rounded(cls, value, significant):
        """``value`` (>= 0) correctly rounded to ``significant`` digits."""
        mantissa, exponent = f"{value:.{max(significant - 1, 0)}e}".split("e")
        text = mantissa.replace(".", "")
        return cls(text, int(exponent) + 1) if text.strip("0") else cls("", 0)

    def digit(self, index):
        return self.digits[index] if 0 <= index < len(self.digits) else "0"

    def fmt_e(self, prec, letter):
        first = self.digits[0] if self.digits else "0"
        frac = "".join(self.digit(i) for i in range(1, prec + 1))
        exponent = self.point - 1 if self.digits else 0
        sign = "-" if exponent < 0 else "+"
        return f"{first}{'.' + frac if prec > 0 else ''}{letter}{sign}{abs(exponent):02d}"

    def fmt_f(self, prec):
        whole = "".join(self.digit(i) for i in range(self.point)) if self.point > 0 else "0"
        frac = "".join(self.digit(self.point + i) for i in range(prec))
        return whole + ("." + frac if prec > 0 else "")


def format_float(value, verb="g", prec=-1):
    """Go's strconv.FormatFloat(value, verb, prec, 64) for verbs e E f F g G x X."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    value = abs(value)
    if verb in "xX":
        return sign + _format_hex_float(value, prec, verb)
    if verb in "fF" and prec >= 0:
        return sign + f"{value:.{prec}f}"
    letter = "E" if verb in "EG" else "e"
    if prec < 0:
        digits = _Digits.shortest(value)
        prec = {"e": len(digits.digits) - 1, "E": len(digits.digits) - 1,
                "f": max(len(digits.digits) - digits.point, 0), "F": max(len(digits.digits) - digits.point, 0),
                }.get(verb, len(digits.digits))
        shortest = True
    else:
        if verb in "gG" and prec == 0:
            prec = 1
        digits = _Digits.rounded(value, prec + 1 if verb in "eE" else prec)
        shortest = False
    if verb in "eE":
        return sign + digits.fmt_e(max(prec, 0), letter)
    if verb in "fF":
        return sign + digits.fmt_f(prec)
    eprec = prec
    if eprec > len(digits.digits) and len(digits.digits) >= digits.point:
        eprec = len(digits.digits)
    if shortest:
        eprec = 6
    exponent = digits.point - 1
    if exponent < -4 or exponent >= eprec:
        prec = min(prec, len(digits.digits))
        return sign + digits.fmt_e(max(prec - 1, 0), letter)
    if prec > digits.point:
        prec = len(digits.digits)
    return sign + digits.fmt_f(max(prec - digits.point, 0))


def _format_hex_float(value, prec, verb):
    if value == 0:
        mantissa, exponent = "0", 0
    else:
        text = value.hex()  # 0x1.8000000000000p+1
        mantissa, exponent = text[2:].split("p")
        mantissa, exponent = mantissa.rstrip("0").rstrip("."), int(exponent)
    if prec >= 0:
        whole, frac = mantissa.split(".", 1) if "." in mantissa else (mantissa, "")
        mantissa = whole + ("." + frac.ljust(prec, "0")[:prec] if prec > 0 else "")
    sign = "-" if exponent < 0 else "+"
    out = f"0x{mantissa}p{sign}{abs(exponent):02d}"
    return out.upper() if verb == "X" else out


class _Printer:
    """One fmt call: flags of the current verb and the output."""

    def __init__(self):
        self.out = []
        self.clear_flags()

    def clear_flags(self):
        self.sharp = self.zero = self.plus = self.minus = self.space = False
        self.sharp_v = self.plus_v = False
        self.wid = self.prec = None

    # -- padding

    def padding(self, width):
        if width > 0:
            self.out.append(("0" if self.zero and not self.minus else " ") * width)

    def pad(self, text):
        if not self.wid:
            self.out.append(text)
            return
        width = self.wid - len(text)
        if self.minus:
            self.out.append(text)
            self.padding(width)
        else:
            self.padding(width)
            self.out.append(text)

    def truncate(self, text):
        return text[: self.prec] if self.prec is not None else text

    # -- arguments

    def print_arg(self, arg, verb):
        if arg is None or arg is NO_VALUE:
            if verb in "Tv":
                self.pad("<nil>")
            else:
                self.bad_verb(verb, None)
            return
        if verb == "T":
            self.pad(self.truncate(go_type(arg)))
            return
        self.print_value(arg, verb, 0)

    def print_value(self, value, verb, depth):
        if value is None or value is NO_VALUE:
            self.out.append("interface {}(nil)" if self.sharp_v else "<nil>")
        elif isinstance(value, bool):
            self.fmt_bool(value, verb)
        elif isinstance(value, int):
            self.fmt_integer(value, verb)
        elif isinstance(value, float):
            self.fmt_float(value, verb)
        elif isinstance(value, complex):
            self.fmt_complex(value, verb)
        elif isinstance(value, str):
            self.fmt_string(value, verb)
        elif isinstance(value, list):
            self.fmt_list(value, verb, depth)
        elif isinstance(value, dict):
            self.fmt_map(value, verb, depth)
        elif isinstance(value, GoStruct):
            self.fmt_struct(value, verb, depth)
        else:
            self.bad_verb(verb, value)

    def bad_verb(self, verb, value):
        self.out.append(f"%!{verb}(")
        if value is None:
            self.out.append("<nil>")
        else:
            self.out.append(go_type(value) + "=")
            self.print_arg(value, "v")
        self.out.append(")")

    def fmt_bool(self, value, verb):
        if verb in "tv":
            self.pad("true" if value else "false")
        else:
            self.bad_verb(verb, value)

    def fmt_integer(self, value, verb):
        if verb in "vd":
            self.fmt_number(value, 10, verb, "0123456789abcdefx")
        elif verb == "b":
            self.fmt_number(value, 2, verb, "0123456789abcdefx")
        elif verb in "oO":
            self.fmt_number(value, 8, verb, "0123456789abcdefx")
        elif verb in "xX":
            self.fmt_number(value, 16, verb, "0123456789abcdefx" if verb == "x" else "0123456789ABCDEFX")
        elif verb == "c":
            self.pad(chr(value) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "\ufffd")
        elif verb == "q":
            code = value if 0 <= value <= 0x10FFFF else 0xFFFD
            self.pad("'" + quote_rune(code, "'", self.plus) + "'")
        elif verb == "U":
            self.fmt_unicode(value)
        else:
            self.bad_verb(verb, value)

    def fmt_number(self, value, base, verb, digits):
        negative = value < 0
        magnitude = -value if negative else value
        if self.prec is not None and self.prec == 0 and magnitude == 0:
            zero, self.zero = self.zero, False
            self.padding(self.wid or 0)
            self.zero = zero
            return
        text = ""
        while True:
            text = digits[magnitude % base] + text
            magnitude //= base
            if not magnitude:
                break
        min_digits = self.prec or 0
        if self.prec is None and self.zero and not self.minus and self.wid:
            min_digits = self.wid - (1 if negative or self.plus or self.space else 0)
        text = text.rjust(min_digits, "0")
        if self.sharp:
            if base == 2:
                text = "0b" + text
            elif base == 8 and not text.startswith("0"):
                text = "0" + text
            elif base == 16:
                text = "0" + digits[16] + text
        if verb == "O":
            text = "0o" + text
        if negative:
            text = "-" + text
        elif self.plus:
            text = "+" + text
        elif self.space:
            text = " " + text
        zero, self.zero = self.zero, False
        self.pad(text)
        self.zero = zero

    def fmt_unicode(self, value):
        text = f"U+{value:04X}" if value >= 0 else f"U+{value & 0xFFFFFFFFFFFFFFFF:04X}"
        if self.prec is not None and self.prec > 4:
            text = "U+" + text[2:].rjust(self.prec, "0")
        if self.sharp and 0 <= value <= 0x10FFFF and is_print(chr(value)):
            text += f" '{chr(value)}'"
        zero, self.zero = self.zero, False
        self.pad(text)
        self.zero = zero

    def fmt_float(self, value, verb):
        if verb == "v":
            self.fmt_float_as(value, "g", -1)
        elif verb in "bgGxX":
            self.fmt_float_as(value, verb, -1)
        elif verb in "feEF":
            self.fmt_float_as(value, verb, 6)
        else:
            self.bad_verb(verb, value)

    def fmt_float_as(self, value, verb, prec):
        if self.prec is not None:
            prec = self.prec
        num = format_float(value, "g" if verb == "b" else verb, prec)
        num = num if num[0] in "+-" else "+" + num
        if self.space and num[0] == "+" and not self.plus:
            num = " " + num[1:]
        if num[1] in "IN":
            zero, self.zero = self.zero, False
            if num[1] == "N" and not self.space and not self.plus:
                num = num[1:]
            self.pad(num)
            self.zero = zero
            return
        if self.sharp and verb not in "bxX":
            num = self.sharp_float(num, verb, prec)
        if self.plus or num[0] != "+":
            if self.zero and not self.minus and self.wid and self.wid > len(num):
                self.out.append(num[0])
                self.padding(self.wid - len(num))
                self.out.append(num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    @staticmethod
    def sharp_float(num, verb, prec):
        """``%#g`` keeps trailing zeros and ``%#e``/``%#f``/``%#g`` always show a decimal point."""
        mantissa, letter, exponent = num, "", ""
        for marker in "eE":
            if marker in num:
                mantissa, exponent = num.split(marker)
                letter = marker
        if "." not in mantissa:
            mantissa += "."
        if verb in "gG":
            wanted = 6 if prec == -1 else prec
            digits = len(mantissa.replace(".", "").lstrip("+- 0")) or 1
            if prec != -1 or digits < wanted:
                mantissa += "0" * max(wanted - digits, 0)
        return mantissa + letter + exponent

    def fmt_complex(self, value, verb):
        if verb not in "vbgGxXfFeE":
            self.bad_verb(verb, value)
            return
        plus = self.plus
        self.out.append("(")
        self.fmt_float(value.real, verb)
        self.plus = True
        self.fmt_float(value.imag, verb)
        self.out.append("i)")
        self.plus = plus

    def fmt_string(self, value, verb):
        if verb == "v":
            if self.sharp_v:
                self.fmt_q(value)
            else:
                self.pad(self.truncate(value))
        elif verb == "s":
            self.pad(self.truncate(value))
        elif verb in "xX":
            self.fmt_sx(value, verb)
        elif verb == "q":
            self.fmt_q(value)
        else:
            self.bad_verb(verb, value)

    def fmt_q(self, value):
        value = self.truncate(value)
        if self.sharp and can_backquote(value):
            self.pad("`" + value + "`")
        else:
            self.pad(go_quote(value, self.plus))

    def fmt_sx(self, value, verb):
        data = go_bytes(value)
        if self.prec is not None:
            data = data[: self.prec]
        if not data:
            self.padding(self.wid or 0)
            return
        prefix = "0x" if verb == "x" else "0X"
        parts = [f"{b:02x}" if verb == "x" else f"{b:02X}" for b in data]
        if self.space:
            text = " ".join((prefix if self.sharp else "") + p for p in parts)
        else:
            text = (prefix if self.sharp else "") + "".join(parts)
        zero, self.zero = self.zero, False
        self.pad(text)
        self.zero = zero

    def fmt_list(self, value, verb, depth):
        if self.sharp_v:
            self.out.append(go_type(value) + "{")
            sep = ", "
        else:
            self.out.append("[")
            sep = " "
        for index, item in enumerate(value):
            if index:
                self.out.append(sep)
            self.print_value(item, verb, depth + 1)
        self.out.append("}" if self.sharp_v else "]")

    def fmt_map(self, value, verb, depth):
        self.out.append(go_type(value) + "{" if self.sharp_v else "map[")
        for index, key in enumerate(sorted_keys(value)):
            if index:
                self.out.append(", " if self.sharp_v else " ")
            self.print_value(key, verb, depth + 1)
            self.out.append(":")
            self.print_value(value[key], verb, depth + 1)
        self.out.append("}" if self.sharp_v else "]")

    def fmt_struct(self, value, verb, depth):
        self.out.append("{")
        for index, (name, field) in enumerate(value.fields.items()):
            if index:
                self.out.append(" ")
            if self.plus_v or self.sharp_v:
                self.out.append(name + ":")
            self.print_value(field, verb, depth + 1)
        self.out.append("}")

    # -- Printf

    def printf(self, fmt, args):
        """Go's doPrintf."""
        self.fmt, self.args, self.arg_num, self.reordered = fmt, args, 0, False
        i = 0
        while i < len(fmt):
            start = fmt.find("%", i)
            start = len(fmt) if start < 0 else start
            self.out.append(fmt[i:start])
            if start >= len(fmt):
                break
            i = self.directive(start + 1)
            if i is None:
                break
        if not self.reordered and self.arg_num < len(args):
            self.extra_args()
        return "".join(self.out)

    def directive(self, i):
        """Format one %-directive starting after the %; the index after it (None: the format ended)."""
        self.good_arg_num = True
        self.clear_flags()
        while i < len(self.fmt) and self.fmt[i] in "#0+- ":
            self.set_flag(self.fmt[i])
            i += 1
        i, after_index = self.width(i)
        if i + 1 < len(self.fmt) and self.fmt[i] == ".":
            i, after_index = self.precision(i + 1, after_index)
        if not after_index:
            i, after_index = self.arg_number(i)
        if i >= len(self.fmt):
            self.out.append("%!(NOVERB)")
            return None
        self.verb(self.fmt[i])
        return i + 1

    def width(self, i):
        i, after_index = self.arg_number(i)
        if i < len(self.fmt) and self.fmt[i] == "*":
            self.wid = self.int_from_arg()
            if self.wid is None:
                self.out.append("%!(BADWIDTH)")
            elif self.wid < 0:
                self.wid, self.minus, self.zero = -self.wid, True, False
            return i + 1, False
        self.wid, i = parse_num(self.fmt, i, len(self.fmt))
        if after_index and self.wid is not None:
            self.good_arg_num = False
        return i, after_index

    def precision(self, i, after_index):
        if after_index:
            self.good_arg_num = False
        i, after_index = self.arg_number(i)
        if i < len(self.fmt) and self.fmt[i] == "*":
            self.prec = self.int_from_arg()
            if self.prec is not None and self.prec < 0:
                self.prec = None
            if self.prec is None:
                self.out.append("%!(BADPREC)")
            return i + 1, False
        self.prec, i = parse_num(self.fmt, i, len(self.fmt))
        self.prec = self.prec or 0
        return i, after_index

    def verb(self, verb):
        if verb == "%":
            self.out.append("%")
        elif not self.good_arg_num:
            self.out.append(f"%!{verb}(BADINDEX)")
        elif self.arg_num >= len(self.args):
            self.out.append(f"%!{verb}(MISSING)")
        else:
            if verb == "v":
                self.sharp_v, self.sharp = self.sharp, False
                self.plus_v, self.plus = self.plus, False
            self.print_arg(self.args[self.arg_num], verb)
            self.arg_num += 1

    def extra_args(self):
        self.clear_flags()
        self.out.append("%!(EXTRA ")
        for index, arg in enumerate(self.args[self.arg_num:]):
            if index:
                self.out.append(", ")
            if arg is None or arg is NO_VALUE:
                self.out.append("<nil>")
            else:
                self.out.append(go_type(arg) + "=")
                self.print_arg(arg, "v")
        self.out.append(")")

    def set_flag(self, char):
        if char == "#":
            self.sharp = True
        elif char == "0":
            self.zero = not self.minus
        elif char == "+":
            self.plus = True
        elif char == "-":
            self.minus, self.zero = True, False
        else:
            self.space = True

    def arg_number(self, i):
        """An explicit argument index like [3] at fmt[i]: (index after it, whether one was found)."""
        fmt = self.fmt
        if i >= len(fmt) or fmt[i] != "[":
            return i, False
        self.reordered = True
        close = fmt.find("]", i + 1)
        if len(fmt) - i < 3 or close < 0:
            self.good_arg_num = False
            return i + 1, False
        number, stop = parse_num(fmt, i + 1, close)
        if number is None or stop != close:
            self.good_arg_num = False
            return close + 1, False
        if 0 <= number - 1 < len(self.args):
            self.arg_num = number - 1
        else:
            self.good_arg_num = False
        return close + 1, True

    def int_from_arg(self):
        """A width or precision taken from the arguments (``*``): the int, or None if it is not one."""
        if self.arg_num >= len(self.args):
            return None
        value = self.args[self.arg_num]
        self.arg_num += 1
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 1_000_000:
            return int(value)
        return None


def parse_num(fmt, start, end):
    """A decimal number at fmt[start:end]: (number or None, index after it)."""
    i, number = start, None
    while i < end and fmt[i] in "0123456789":
        if number is not None and number > 1_000_000:  # Go checks before adding the digit
            return None, end
        number = (number or 0) * 10 + int(fmt[i])
        i += 1
    return number, i


def sprintf(fmt, args):
    return _Printer().printf(fmt, list(args))


def sprint(args):
    printer = _Printer()
    previous_string = False
    for index, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if index and not is_string and not previous_string:
            printer.out.append(" ")
        printer.print_arg(arg, "v")
        previous_string = is_string
    return "".join(printer.out)


def sprintln(args):
    printer = _Printer()
    for index, arg in enumerate(args):
        if index:
            printer.out.append(" ")
        printer.print_arg(arg, "v")
    printer.out.append("\n")
    return "".join(printer.out)


def _key_rank(key):
    """Sort key of a map key: by value within a type; mixed types (map[interface {}]...) in the order Go's
    fmtsort gives (it compares type descriptors: string, int64, int, float64, bool)."""
    if key is None:
        return (0, 0)
    if isinstance(key, str):
        return (1, go_bytes(key))
    if isinstance(key, bool):
        return (5, key)
    if isinstance(key, Int64):
        return (2, key)
    if isinstance(key, int):
        return (3, key)
    if isinstance(key, float):
        return (4, -math.inf if math.isnan(key) else key)
    return (6, repr(key))


def sorted_keys(mapping):
    """Map keys in Go's fmt/range order (fmtsort)."""
    return sorted(mapping, key=_key_rank)


# ---------------------------------------------------------------------------------------------------
# Lexer (Go's text/template/parse lexer: one item at a time, positions are string indexes)

SPACE_CHARS = " \t\r\n"
KEYWORDS = {".": "dot", "block": "block", "break": "break", "continue": "continue", "define": "define",
            "else": "else", "end": "end", "if": "if", "range": "range", "nil": "nil", "template": "template",
            "with": "with"}


class Item:
    __slots__ = ("typ", "pos", "val", "line")

    def __init__(self, typ, pos, val, line):
        self.typ, self.pos, self.val, self.line = typ, pos, val, line

    def __str__(self):
        if self.typ == "eof":
            return "EOF"
        if self.typ == "error":
            return self.val
        if self.typ in KEYWORDS.values():
            return f"<{self.val}>"
        if len(self.val) > 10:
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


def _is_space(char):
    return char != "" and char in SPACE_CHARS


def _is_alnum(char):
    return char == "_" or (char != "" and (char.isalpha() or unicodedata.category(char) == "Nd"))


class Lexer:
    def __init__(self, text):
        self.input = text
        self.pos = self.start = 0
        self.paren_depth = 0
        self.inside_action = False
        self.item = None
        self._line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def line_of(self, pos):
        return bisect.bisect_right(self._line_starts, pos)

    # -- primitives

    def next_char(self):
        if self.pos >= len(self.input):
            self.pos += 1
            return ""
        char = self.input[self.pos]
        self.pos += 1
        return char

    def peek_char(self):
        return self.input[self.pos] if self.pos < len(self.input) else ""

    def backup(self):
        self.pos -= 1

    def emit(self, typ):
        self.item = Item(typ, self.start, self.input[self.start:self.pos], self.line_of(self.start))
        self.start = self.pos
        return None

    def ignore(self):
        self.start = self.pos

    def accept(self, chars):
        if self.peek_char() != "" and self.peek_char() in chars:
            self.pos += 1
            return True
        return False

    def accept_run(self, chars):
        while self.peek_char() != "" and self.peek_char() in chars:
            self.pos += 1

    def errorf(self, message):
        self.item = Item("error", self.start, message, self.line_of(self.start))
        self.input = ""
        self.start = self.pos = 0
        self._line_starts = [0]
        return None

    def next_item(self):
        self.item = Item("eof", self.pos, "EOF", self.line_of(self.pos))
        state = self.lex_inside_action if self.inside_action else self.lex_text
        while state is not None:
            state = state()
        return self.item

    # -- states

    def at_right_delim(self):
        rest = self.input[self.pos:]
        if len(rest) >= 2 and _is_space(rest[0]) and rest[1] == "-" and rest[2:].startswith("}}"):
            return True, True
        return rest.startswith("}}"), False

    def lex_text(self):
        index = self.input.find("{{", self.pos)
        if index < 0:
            self.pos = len(self.input)
            if self.pos > self.start:
                return self.emit("text")
            return self.emit("eof")
        if index > self.pos:
            self.pos = index
            after = self.input[index + 2:]
            trim = 0
            if len(after) >= 2 and after[0] == "-" and _is_space(after[1]):
                text = self.input[self.start:self.pos]
                trim = len(text) - len(text.rstrip(SPACE_CHARS))
            self.pos -= trim
            item = Item("text", self.start, self.input[self.start:self.pos], self.line_of(self.start))
            self.pos += trim
            self.ignore()
            if item.val:
                self.item = item
                return None
        return self.lex_left_delim

    def lex_left_delim(self):
        self.pos += 2
        rest = self.input[self.pos:]
        trim = len(rest) >= 2 and rest[0] == "-" and _is_space(rest[1])
        after_marker = 2 if trim else 0
        if self.input.startswith("/*", self.pos + after_marker):
            self.pos += after_marker
            self.ignore()
            return self.lex_comment
        item = Item("leftdelim", self.start, "{{", self.line_of(self.start))
        self.inside_action = True
        self.pos += after_marker
        self.ignore()
        self.paren_depth = 0
        self.item = item
        return None

    def lex_comment(self):
        self.pos += 2
        index = self.input.find("*/", self.pos)
        if index < 0:
            return self.errorf("unclosed comment")
        self.pos = index + 2
        delim, trim = self.at_right_delim()
        if not delim:
            return self.errorf("comment ends before closing delimiter")
        if trim:
            self.pos += 2
        self.pos += 2
        if trim:
            rest = self.input[self.pos:]
            self.pos += len(rest) - len(rest.lstrip(SPACE_CHARS))
        self.ignore()
        return self.lex_text

    def lex_right_delim(self):
        trim = self.at_right_delim()[1]
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += 2
        item = Item("rightdelim", self.start, "}}", self.line_of(self.start))
        if trim:
            rest = self.input[self.pos:]
            self.pos += len(rest) - len(rest.lstrip(SPACE_CHARS))
        self.ignore()
        self.inside_action = False
        self.item = item
        return None

    def lex_inside_action(self):
        delim = self.at_right_delim()[0]
        if delim:
            if self.paren_depth == 0:
                return self.lex_right_delim
            return self.errorf("unclosed left paren")
        char = self.next_char()
        if char == "":
            return self.errorf("unclosed action")
        if _is_space(char):
            self.backup()
            return self.lex_space
        simple = {"=": "assign", "|": "pipe"}
        if char in simple:
            return self.emit(simple[char])
        if char == ":":
            if self.next_char() != "=":
                return self.errorf("expected :=")
            return self.emit("declare")
        if char == '"':
            return self.lex_quote
        if char == "`":
            return self.lex_raw_quote
        if char == "$":
            return self.lex_variable
        if char == "'":
            return self.lex_char
        if char == "." and self.pos < len(self.input) and not "0" <= self.input[self.pos] <= "9":
            return self.lex_field
        if char in "+-." or "0" <= char <= "9":
            self.backup()
            return self.lex_number
        if _is_alnum(char):
            self.backup()
            return self.lex_identifier
        if char == "(":
            self.paren_depth += 1
            return self.emit("leftparen")
        if char == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self.errorf("unexpected right paren")
            return self.emit("rightparen")
        if ord(char) < 0x80 and char.isprintable():
            return self.emit("char")
        return self.errorf(f"unrecognized character in action: U+{ord(char):04X}")

    def lex_space(self):
        count = 0
        while _is_space(self.peek_char()):
            self.pos += 1
            count += 1
        rest = self.input[self.pos - 1:]
        if len(rest) >= 2 and _is_space(rest[0]) and rest[1] == "-" and rest[2:].startswith("}}"):
            self.backup()
            if count == 1:
                return self.lex_right_delim
        return self.emit("space")

    def lex_identifier(self):
        while _is_alnum(self.peek_char()):
            self.pos += 1
        word = self.input[self.start:self.pos]
        if not self.at_terminator():
            return self.errorf(f"bad character {sprintf('%#U', [ord(self.peek_char())])}")
        if word in KEYWORDS and word != ".":
            return self.emit(KEYWORDS[word])
        if word in ("true", "false"):
            return self.emit("bool")
        return self.emit("identifier")

    def lex_field(self):
        return self.lex_field_or_variable("field")

    def lex_variable(self):
        if self.at_terminator():
            return self.emit("variable")
        return self.lex_field_or_variable("variable")

    def lex_field_or_variable(self, typ):
        if self.at_terminator():
            return self.emit("variable" if typ == "variable" else "dot")
        while _is_alnum(self.peek_char()):
            self.pos += 1
        if not self.at_terminator():
            return self.errorf(f"bad character {sprintf('%#U', [ord(self.peek_char())])}")
        return self.emit(typ)

    def at_terminator(self):
        char = self.peek_char()
        if char == "" or _is_space(char) or char in ".,|:()":
            return True
        return self.input.startswith("}}", self.pos)

    def lex_char(self):
        while True:
            char = self.next_char()
            if char == "\\":
                char = self.next_char()
                if char not in ("", "\n"):
                    continue
            if char in ("", "\n"):
                return self.errorf("unterminated character constant")
            if char == "'":
                return self.emit("charconst")

    def lex_number(self):
        if not self.scan_number():
            return self.errorf(f"bad number syntax: {go_quote(self.input[self.start:self.pos])}")
        if self.peek_char() in ("+", "-"):
            if not self.scan_number() or self.input[self.pos - 1] != "i":
                return self.errorf(f"bad number syntax: {go_quote(self.input[self.start:self.pos])}")
            return self.emit("complex")
        return self.emit("number")

    def scan_number(self):
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if _is_alnum(self.peek_char()):
            self.pos += 1
            return False
        return True

    def lex_quote(self):
        while True:
            char = self.next_char()
            if char == "\\":
                char = self.next_char()
                if char not in ("", "\n"):
                    continue
            if char in ("", "\n"):
                return self.errorf("unterminated quoted string")
            if char == '"':
                return self.emit("string")

    def lex_raw_quote(self):
        while True:
            char = self.next_char()
            if char == "":
                return self.errorf("unterminated raw quoted string")
            if char == "`":
                return self.emit("rawstring")


# ---------------------------------------------------------------------------------------------------
# Go literal syntax (strconv.Unquote, ParseInt, ParseFloat)

_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unquote_char(text, i, quote):
    """One (possibly escaped) character of a quoted literal at text[i]: (string, next index)."""
    char = text[i]
    if char != "\\":
        if char == quote and quote == "'":
            raise ValueError("invalid syntax")
        return char, i + 1
    if i + 1 >= len(text):
        raise ValueError("invalid syntax")
    esc = text[i + 1]
    if esc in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[esc], i + 2
    if esc in "'\"":
        if esc != quote:
            raise ValueError("invalid syntax")
        return esc, i + 2
    sizes = {"x": 2, "u": 4, "U": 8}
    if esc in sizes:
        digits = text[i + 2:i + 2 + sizes[esc]]
        if len(digits) != sizes[esc] or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError("invalid syntax")
        code = int(digits, 16)
        if esc == "x":
            return (chr(code) if code < 0x80 else chr(0xDC00 + code)), i + 4
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise ValueError("invalid syntax")
        return chr(code), i + 2 + sizes[esc]
    if "0" <= esc <= "7":
        digits = text[i + 1:i + 4]
        if len(digits) != 3 or any(c not in "01234567" for c in digits) or int(digits, 8) > 255:
            raise ValueError("invalid syntax")
        code = int(digits, 8)
        return (chr(code) if code < 0x80 else chr(0xDC00 + code)), i + 4
    raise ValueError("invalid syntax")


def unquote(literal):
    """Go's strconv.Unquote for "..." and `...` literals."""
    if literal.startswith("`"):
        if len(literal) < 2 or not literal.endswith("`") or "`" in literal[1:-1]:
            raise ValueError("invalid syntax")
        return literal[1:-1].replace("\r", "")
    if len(literal) < 2 or literal[0] != '"' or literal[-1] != '"':
        raise ValueError("invalid syntax")
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        if body[i] == '"' or body[i] == "\n":
            raise ValueError("invalid syntax")
        char, i = _unquote_char(body, i, '"')
        out.append(char)
    return "".join(out)


def unquote_rune(literal):
    """The code point of a Go character constant like 'a' or '\\n'."""
    if len(literal) < 3:
        raise ValueError("invalid syntax")
    char, end = _unquote_char(literal, 1, "'")
    if literal[end:] != "'":
        raise ValueError(f"malformed character constant: {literal}")
    code = ord(char)
    return code - 0xDC00 if 0xDC80 <= code <= 0xDCFF else code


def _underscores_ok(text):
    """Go's underscoreOK: underscores only between digits, or right after a base prefix."""
    body = text[1:] if text[:1] in "+-" else text
    saw, start, is_hex = "^", 0, False
    if len(body) >= 2 and body[0] == "0" and body[1].lower() in "box":
        saw, start, is_hex = "0", 2, body[1].lower() == "x"
    for char in body[start:]:
        if "0" <= char <= "9" or (is_hex and "a" <= char.lower() <= "f"):
            saw = "0"
        elif char == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def parse_go_int(text, bits=64, unsigned=False):
    """Go's strconv.ParseInt/ParseUint(text, 0, bits); None when it fails."""
    if not _underscores_ok(text):
        return None
    sign, body = 1, text
    if body[:1] in "+-" and body:
        if unsigned:
            return None
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    body = body.replace("_", "")
    base = 10
    if len(body) > 1 and body[0] == "0":
        prefixes = {"x": 16, "X": 16, "o": 8, "O": 8, "b": 2, "B": 2}
        if body[1] in prefixes:
            base, body = prefixes[body[1]], body[2:]
        else:
            base, body = 8, body[1:]
    digits = "0123456789abcdefABCDEF"[:base if base <= 10 else 10 + 2 * (base - 10)]
    if not body or any(c not in digits for c in body):
        return None
    value = sign * int(body, base)
    low, high = (0, 2 ** bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return value if low <= value <= high else None


def parse_go_float(text):
    """Go's strconv.ParseFloat(text, 64) for number literals; None when it fails."""
    if not text or not _underscores_ok(text):
        return None
    body = text.replace("_", "")
    unsigned = body.lstrip("+-")
    try:
        if unsigned[:2] in ("0x", "0X"):
            if "p" not in unsigned.lower():
                return None
            mantissa, exponent = unsigned[2:].lower().split("p", 1)
            whole, frac = mantissa.split(".", 1) if "." in mantissa else (mantissa, "")
            value = int(whole + frac or "0", 16) * 2.0 ** (int(exponent) - 4 * len(frac))
            return -value if body.startswith("-") else value
        if any(c not in "0123456789.eE+-" for c in unsigned):
            return None
        value = float(body)
    except (ValueError, OverflowError):
        return None
    return None if math.isinf(value) else value


# ---------------------------------------------------------------------------------------------------
# Parse tree


class Node:
    __slots__ = ("pos", "tree")
    kind = "node"

    def __init__(self, tree, pos):
        self.tree, self.pos = tree, pos


class ListNode(Node):
    __slots__ = ("nodes",)
    kind = "list"

    def __init__(self, tree, pos):
        super().__init__(tree, pos)
        self.nodes = []

    def __str__(self):
        return "".join(str(n) for n in self.nodes)


class TextNode(Node):
    __slots__ = ("text",)
    kind = "text"

    def __init__(self, tree, pos, text):
        super().__init__(tree, pos)
        self.text = text

    def __str__(self):
        return sprintf("%q", [self.text])


class CommentNode(Node):
    __slots__ = ()
    kind = "comment"


class PipeNode(Node):
    __slots__ = ("line", "is_assign", "decl", "cmds")
    kind = "pipe"

    def __init__(self, tree, pos, line):
        super().__init__(tree, pos)
        self.line, self.is_assign, self.decl, self.cmds = line, False, [], []

    def __str__(self):
        text = ""
        if self.decl:
            text = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return text + " | ".join(str(c) for c in self.cmds)


class ActionNode(Node):
    __slots__ = ("line", "pipe")
    kind = "action"

    def __init__(self, tree, pos, line, pipe):
        super().__init__(tree, pos)
        self.line, self.pipe = line, pipe

    def __str__(self):
        return "{{" + str(self.pipe) + "}}"


class CommandNode(Node):
    __slots__ = ("args",)
    kind = "command"

    def __init__(self, tree, pos):
        super().__init__(tree, pos)
        self.args = []

    def __str__(self):
        return " ".join("(" + str(a) + ")" if isinstance(a, PipeNode) else str(a) for a in self.args)


class IdentifierNode(Node):
    __slots__ = ("ident",)
    kind = "identifier"

    def __init__(self, tree, pos, ident):
        super().__init__(tree, pos)
        self.ident = ident

    def __str__(self):
        return self.ident


class VariableNode(Node):
    __slots__ = ("ident",)
    kind = "variable"

    def __init__(self, tree, pos, ident):
        super().__init__(tree, pos)
        self.ident = ident.split(".")

    def __str__(self):
        return ".".join(self.ident)


class DotNode(Node):
    __slots__ = ()
    kind = "dot"

    def __str__(self):
        return "."


class NilNode(Node):
    __slots__ = ()
    kind = "nil"

    def __str__(self):
        return "nil"


class FieldNode(Node):
    __slots__ = ("ident",)
    kind = "field"

    def __init__(self, tree, pos, ident):
        super().__init__(tree, pos)
        self.ident = ident[1:].split(".")

    def __str__(self):
        return "." + ".".join(self.ident)


class ChainNode(Node):
    __slots__ = ("node", "fields")
    kind = "chain"

    def __init__(self, tree, pos, node):
        super().__init__(tree, pos)
        self.node, self.fields = node, []

    def __str__(self):
        base = "(" + str(self.node) + ")" if isinstance(self.node, PipeNode) else str(self.node)
        return base + "".join("." + f for f in self.fields)


class BoolNode(Node):
    __slots__ = ("value",)
    kind = "bool"

    def __init__(self, tree, pos, value):
        super().__init__(tree, pos)
        self.value = value

    def __str__(self):
        return "true" if self.value else "false"


class NumberNode(Node):
    __slots__ = ("text", "is_int", "is_uint", "is_float", "is_complex", "int_value", "float_value",
                 "complex_value")
    kind = "number"

    def __str__(self):
        return self.text


class StringNode(Node):
    __slots__ = ("quoted", "text")
    kind = "string"

    def __init__(self, tree, pos, quoted, text):
        super().__init__(tree, pos)
        self.quoted, self.text = quoted, text

    def __str__(self):
        return self.quoted


class EndNode(Node):
    __slots__ = ()
    kind = "end"

    def __str__(self):
        return "{{end}}"


class ElseNode(Node):
    __slots__ = ("line",)
    kind = "else"

    def __init__(self, tree, pos, line):
        super().__init__(tree, pos)
        self.line = line

    def __str__(self):
        return "{{else}}"


class BranchNode(Node):
    """if, range and with."""

    __slots__ = ("line", "pipe", "list", "else_list")
    kind = "branch"

    def __init__(self, tree, pos, line, pipe, list_node, else_list):
        super().__init__(tree, pos)
        self.line, self.pipe, self.list, self.else_list = line, pipe, list_node, else_list

    def __str__(self):
        text = "{{" + self.kind + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            text += "{{else}}" + str(self.else_list)
        return text + "{{end}}"


class IfNode(BranchNode):
    __slots__ = ()
    kind = "if"


class RangeNode(BranchNode):
    __slots__ = ()
    kind = "range"


class WithNode(BranchNode):
    __slots__ = ()
    kind = "with"


class BreakNode(Node):
    __slots__ = ()
    kind = "break"

    def __str__(self):
        return "{{break}}"


class ContinueNode(Node):
    __slots__ = ()
    kind = "continue"

    def __str__(self):
        return "{{continue}}"


class TemplateNode(Node):
    __slots__ = ("line", "name", "pipe")
    kind = "template"

    def __init__(self, tree, pos, line, name, pipe):
        super().__init__(tree, pos)
        self.line, self.name, self.pipe = line, name, pipe

    def __str__(self):
        pipe = "" if self.pipe is None else " " + str(self.pipe)
        return "{{template " + go_quote(self.name) + pipe + "}}"


def is_empty_tree(node):
    """Go's parse.IsEmptyTree: only whitespace text and comments."""
    if node is None or isinstance(node, CommentNode):
        return True
    if isinstance(node, ListNode):
        return all(is_empty_tree(n) for n in node.nodes)
    if isinstance(node, TextNode):
        return not node.text.strip(" \t\n\r\v\f\x85\xa0")
    return False


# ---------------------------------------------------------------------------------------------------
# Parser (Go's text/template/parse: three-token lookahead, the same error messages and lines)


class Tree:
    """One parsed template (the top-level text or a {{define}}/{{block}} body)."""

    def __init__(self, name, parse_name, text, has_function, check_function):
        self.name, self.parse_name, self.text = name, parse_name, text
        self.has_function = has_function
        self.check_function = check_function
        self.root = None
        self._line_starts = None

    def location(self, node):
        """``parse_name:line:col`` of a node (col: 0-based byte offset in the line, as Go)."""
        if self._line_starts is None:
            self._line_starts = [0] + [i + 1 for i, c in enumerate(self.text) if c == "\n"]
        line = bisect.bisect_right(self._line_starts, node.pos)
        col = len(go_bytes(self.text[self._line_starts[line - 1]:node.pos]))
        return line, col


class _Parser:
    def __init__(self, tree, lexer, tree_set):
        self.tree, self.lex, self.tree_set = tree, lexer, tree_set
        self.token = [None, None, None]
        self.peek_count = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0

    # -- tokens

    def next(self):
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self.lex.next_item()
        return self.token[self.peek_count]

    def backup(self):
        self.peek_count += 1

    def backup2(self, t1):
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2, t1):
        self.token[1], self.token[2] = t1, t2
        self.peek_count = 3

    def peek(self):
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self.lex.next_item()
        return self.token[0]

    def next_non_space(self):
        while True:
            token = self.next()
            if token.typ != "space":
                return token

    def peek_non_space(self):
        token = self.next_non_space()
        self.backup()
        return token

    # -- errors

    def errorf(self, message):
        raise ParseError(f"template: {self.tree.parse_name}:{self.token[0].line}: {message}",
                         self.tree.parse_name, self.token[0].line)

    def expect(self, typ, context):
        token = self.next_non_space()
        if token.typ != typ:
            self.unexpected(token, context)
        return token

    def expect_one_of(self, types, context):
        token = self.next_non_space()
        if token.typ not in types:
            self.unexpected(token, context)
        return token

    def unexpected(self, token, context):
        if token.typ == "error":
            extra = ""
            if self.action_line and self.action_line != token.line:
                extra = f" in action started at {self.tree.parse_name}:{self.action_line}"
                if token.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            self.errorf(f"{token}{extra}")
        self.errorf(f"unexpected {token} in {context}")

    # -- structure

    def parse_top(self):
        tree = self.tree
        tree.root = ListNode(tree, self.peek().pos)
        while self.peek().typ != "eof":
            if self.peek().typ == "leftdelim":
                delim = self.next()
                if self.next_non_space().typ == "define":
                    self.parse_definition()
                    continue
                self.backup2(delim)
            node = self.text_or_action()
            if isinstance(node, (EndNode, ElseNode)):
                self.errorf(f"unexpected {node}")
            tree.root.nodes.append(node)
        self.add(tree)

    def sub_parser(self, name):
        """A parser for a {{define}}/{{block}} body sharing this lexer and token buffer."""
        tree = Tree(name, self.tree.parse_name, self.tree.text, self.tree.has_function, self.tree.check_function)
        sub = _Parser(tree, self.lex, self.tree_set)
        sub.token, sub.peek_count = self.token, self.peek_count
        return sub

    def adopt(self, sub):
        self.token, self.peek_count = sub.token, sub.peek_count

    def parse_definition(self):
        sub = self.sub_parser("definition")
        try:
            name = sub.expect_one_of(("string", "rawstring"), "define clause")
            sub.tree.name = sub.unquote(name.val)
            sub.expect("rightdelim", "define clause")
            sub.tree.root, end = sub.item_list()
            if not isinstance(end, EndNode):
                sub.errorf(f"unexpected {end} in define clause")
            sub.add(sub.tree)
        finally:
            self.adopt(sub)

    def add(self, tree):
        existing = self.tree_set.get(tree.name)
        if existing is None or is_empty_tree(existing.root):
            self.tree_set[tree.name] = tree
            return
        if not is_empty_tree(tree.root):
            self.errorf(f"template: multiple definition of template {go_quote(tree.name)}")

    def unquote(self, literal):
        try:
            return unquote(literal)
        except ValueError as exc:
            self.errorf(str(exc))

    def item_list(self):
        node_list = ListNode(self.tree, self.peek_non_space().pos)
        while self.peek_non_space().typ != "eof":
            node = self.text_or_action()
            if isinstance(node, (EndNode, ElseNode)):
                return node_list, node
            node_list.nodes.append(node)
        self.errorf("unexpected EOF")

    def text_or_action(self):
        token = self.next_non_space()
        if token.typ == "text":
            return TextNode(self.tree, token.pos, token.val)
        if token.typ == "leftdelim":
            self.action_line = token.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(token, "input")

    def action(self):
        token = self.next_non_space()
        handlers = {"block": self.block_control, "else": self.else_control, "end": self.end_control,
                    "if": lambda: self.branch_control(IfNode, "if"),
                    "range": lambda: self.branch_control(RangeNode, "range"),
                    "template": self.template_control,
                    "with": lambda: self.branch_control(WithNode, "with")}
        if token.typ in ("break", "continue"):
            return self.loop_control(token)
        if token.typ in handlers:
            return handlers[token.typ]()
        self.backup()
        token = self.peek()
        return ActionNode(self.tree, token.pos, token.line, self.pipeline("command", "rightdelim"))

    def loop_control(self, keyword):
        token = self.next_non_space()
        if token.typ != "rightdelim":
            self.unexpected(token, "{{" + keyword.typ + "}}")
        if self.range_depth == 0:
            self.errorf("{{" + keyword.typ + "}} outside {{range}}")
        return (BreakNode if keyword.typ == "break" else ContinueNode)(self.tree, keyword.pos)

    def parse_control(self, context):
        saved_vars = len(self.vars)
        try:
            pipe = self.pipeline(context, "rightdelim")
            if context == "range":
                self.range_depth += 1
            node_list, next_node = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(next_node, ElseNode):
                if context in ("if", "with") and self.peek().typ == context:
                    self.next()
                    else_list = ListNode(self.tree, next_node.pos)
                    node_class = IfNode if context == "if" else WithNode
                    else_list.nodes.append(self.branch_control(node_class, context))
                else:
                    else_list, next_node = self.item_list()
                    if not isinstance(next_node, EndNode):
                        self.errorf(f"expected end; found {next_node}")
            return pipe, node_list, else_list
        finally:
            del self.vars[saved_vars:]

    def branch_control(self, node_class, context):
        pipe, node_list, else_list = self.parse_control(context)
        return node_class(self.tree, pipe.pos, pipe.line, pipe, node_list, else_list)

    def end_control(self):
        return EndNode(self.tree, self.expect("rightdelim", "end").pos)

    def else_control(self):
        peek = self.peek_non_space()
        if peek.typ in ("if", "with"):
            return ElseNode(self.tree, peek.pos, peek.line)
        token = self.expect("rightdelim", "else")
        return ElseNode(self.tree, token.pos, token.line)

    def block_control(self):
        context = "block clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe = self.pipeline(context, "rightdelim")
        sub = self.sub_parser(name)
        try:
            sub.tree.root, end = sub.item_list()
            if not isinstance(end, EndNode):
                self.adopt(sub)
                self.errorf(f"unexpected {end} in {context}")
            sub.add(sub.tree)
        finally:
            self.adopt(sub)
        return TemplateNode(self.tree, token.pos, token.line, name, pipe)

    def template_control(self):
        context = "template clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe = None
        if self.next_non_space().typ != "rightdelim":
            self.backup()
            pipe = self.pipeline(context, "rightdelim")
        return TemplateNode(self.tree, token.pos, token.line, name, pipe)

    def parse_template_name(self, token, context):
        if token.typ in ("string", "rawstring"):
            return self.unquote(token.val)
        self.unexpected(token, context)

    # -- pipelines

    def pipeline(self, context, end):
        token = self.peek_non_space()
        pipe = PipeNode(self.tree, token.pos, token.line)
        self.declarations(pipe, context)
        while True:
            token = self.next_non_space()
            if token.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if token.typ in ("bool", "charconst", "complex", "dot", "field", "identifier", "number", "nil",
                             "rawstring", "string", "variable", "leftparen"):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def declarations(self, pipe, context):
        while True:
            variable = self.peek_non_space()
            if variable.typ != "variable":
                return
            self.next()
            token_after = self.peek()
            following = self.peek_non_space()
            if following.typ in ("assign", "declare"):
                pipe.is_assign = following.typ == "assign"
                self.next_non_space()
                pipe.decl.append(VariableNode(self.tree, variable.pos, variable.val))
                self.vars.append(variable.val)
                return
            if following.typ == "char" and following.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(self.tree, variable.pos, variable.val))
                self.vars.append(variable.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in ("variable", "rightdelim", "rightparen"):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            if token_after.typ == "space":
                self.backup3(variable, token_after)
            else:
                self.backup2(variable)
            return

    def check_pipeline(self, pipe, context):
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for index, cmd in enumerate(pipe.cmds[1:]):
            if isinstance(cmd.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf(f"non executable command in pipeline stage {index + 2}")

    def command(self):
        cmd = CommandNode(self.tree, self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.typ == "space":
                continue
            if token.typ in ("rightdelim", "rightparen"):
                self.backup()
            elif token.typ != "pipe":
                self.unexpected(token, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == "field":
            chain = ChainNode(self.tree, self.peek().pos, node)
            while self.peek().typ == "field":
                chain.fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(self.tree, chain.pos, str(chain))
            if isinstance(node, VariableNode):
                return VariableNode(self.tree, chain.pos, str(chain))
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf(f"unexpected . after term {go_quote(str(node))}")
            return chain
        return node

    def term(self):
        token = self.next_non_space()
        typ = token.typ
        if typ == "identifier":
            if not self.tree.has_function(token.val):
                self.errorf(f"function {go_quote(token.val)} not defined")
            problem = self.tree.check_function(token.val)
            if problem:
                self.errorf(problem)
            return IdentifierNode(self.tree, token.pos, token.val)
        if typ == "dot":
            return DotNode(self.tree, token.pos)
        if typ == "nil":
            return NilNode(self.tree, token.pos)
        if typ == "variable":
            return self.use_var(token)
        if typ == "field":
            return FieldNode(self.tree, token.pos, token.val)
        if typ == "bool":
            return BoolNode(self.tree, token.pos, token.val == "true")
        if typ in ("charconst", "complex", "number"):
            return self.number(token)
        if typ == "leftparen":
            return self.pipeline("parenthesized pipeline", "rightparen")
        if typ in ("string", "rawstring"):
            return StringNode(self.tree, token.pos, token.val, self.unquote(token.val))
        self.backup()
        return None

    def use_var(self, token):
        node = VariableNode(self.tree, token.pos, token.val)
        if node.ident[0] not in self.vars:
            self.errorf(f"undefined variable {go_quote(node.ident[0])}")
        return node

    def number(self, token):
        try:
            return new_number(self.tree, token.pos, token.val, token.typ)
        except ValueError as exc:
            self.errorf(str(exc))


def new_number(tree, pos, text, typ):
    """A NumberNode with Go's interpretations of the constant (int, uint, float, complex)."""
    node = NumberNode(tree, pos)
    node.text = text
    node.is_int = node.is_uint = node.is_float = node.is_complex = False
    node.int_value, node.float_value, node.complex_value = 0, 0.0, 0j
    if typ == "charconst":
        code = unquote_rune(text)
        node.is_int = node.is_uint = node.is_float = True
        node.int_value, node.float_value = code, float(code)
        return node
    if typ == "complex" or text.endswith("i"):
        value = _parse_complex(text, typ)
        if value is not None:
            node.is_complex, node.complex_value = True, value
            _simplify_complex(node)
            return node
        if typ == "complex":
            raise ValueError(f"malformed complex constant: {text}")
    unsigned = parse_go_int(text, unsigned=True)
    signed = parse_go_int(text)
    if unsigned is not None:
        node.is_uint, node.int_value = True, unsigned
    if signed is not None:
        node.is_int, node.int_value = True, signed
        node.is_uint = node.is_uint or signed == 0
    if node.is_int or node.is_uint:
        node.is_float, node.float_value = True, float(node.int_value)
    else:
        value = parse_go_float(text)
        if value is not None:
            if not any(c in text for c in ".eEpP"):
                raise ValueError(f"integer overflow: {go_quote(text)}")
            node.is_float, node.float_value = True, value
            if value == int(value) and abs(value) < 2 ** 63:
                node.is_int, node.int_value = True, int(value)
                node.is_uint = value >= 0
    if not (node.is_int or node.is_uint or node.is_float):
        raise ValueError(f"illegal number syntax: {go_quote(text)}")
    return node


def _parse_complex(text, typ):
    if typ == "complex":
        split = max(text.rfind("+"), text.rfind("-"))
        real, imag = parse_go_float(text[:split]), parse_go_float(text[split:-1])
        return None if real is None or imag is None else complex(real, imag)
    imag = parse_go_float(text[:-1])
    return None if imag is None else complex(0, imag)


def _simplify_complex(node):
    value = node.complex_value
    node.is_float = value.imag == 0
    if node.is_float:
        node.float_value = value.real
        node.is_int = value.real == int(value.real) and abs(value.real) < 2 ** 63
        node.is_uint = node.is_int and value.real >= 0
        node.int_value = int(value.real) if node.is_int else 0


def parse_trees(name, text, parse_name, has_function, check_function):
    """Parse ``text``: {template name: Tree}, including every {{define}} and {{block}}."""
    trees = {}
    tree = Tree(name, parse_name, text, has_function, check_function)
    parser = _Parser(tree, Lexer(text), trees)
    parser.parse_top()
    return trees


# ---------------------------------------------------------------------------------------------------
# Execution

_MISSING = object()  # "no final value" in a pipeline
# Go allows 100000 nested {{template}} calls; Python's stack allows far fewer, so nesting of templates and
# include/tpl calls together is limited (real werf.yaml files nest a few levels).
MAX_EXEC_DEPTH = 100


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    def __init__(self, template_set, name, tree):
        self.set, self.name, self.tree = template_set, name, tree
        self.vars = []
        self.node = None
        self.out = []

    # -- errors

    def errorf(self, message):
        if self.node is None:
            raise ExecError(f"template: {self.name}: {message}")
        tree = self.node.tree
        line, col = tree.location(self.node)
        raise ExecError(f"template: {tree.parse_name}:{line}:{col}: executing {go_quote(self.name)} "
                        f"at <{self.node}>: {message}", tree.parse_name, line)

    def at(self, node):
        self.node = node

    # -- variables

    def push(self, name, value):
        self.vars.append([name, value])

    def mark(self):
        return len(self.vars)

    def pop(self, mark):
        del self.vars[mark:]

    def set_var(self, name, value):
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        self.errorf(f"undefined variable: {name}")

    def set_top_var(self, n, value):
        self.vars[len(self.vars) - n][1] = value

    def var_value(self, name):
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        self.errorf(f"undefined variable: {name}")

    # -- walking

    def walk(self, dot, node):
        self.at(node)
        if isinstance(node, ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, value)
        elif isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, (IfNode, WithNode)):
            self.walk_if_or_with(dot, node)
        elif isinstance(node, RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break()
        elif isinstance(node, ContinueNode):
            raise _Continue()
        elif not isinstance(node, CommentNode):
            self.errorf(f"unknown node: {node}")

    def print_value(self, node, value):
        self.at(node)
        if isinstance(value, GoFunc):
            self.errorf(f"can't print {node} of type func")
        self.out.append("<no value>" if value is NO_VALUE else sprint([value]))

    def walk_if_or_with(self, dot, node):
        mark = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if is_true(value):
                self.walk(value if isinstance(node, WithNode) else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot, node):
        self.at(node)
        outer = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            mark = self.mark()
            if not self.range_items(node, value, mark) and node.else_list is not None:
                self.walk(dot, node.else_list)
        except _Break:
            pass
        finally:
            self.pop(outer)

    def range_items(self, node, value, mark):
        """Run the range body per element; False when there was nothing to iterate."""
        if isinstance(value, int) and not isinstance(value, bool):
            if len(node.pipe.decl) > 1:
                self.errorf(f"can't use {sprint([value])} to iterate over more than one variable")
            items = [(NO_VALUE, type(value)(i)) for i in range(value)] if value > 0 else []
        elif isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            items = [(key, value[key]) for key in sorted_keys(value)]
        elif value is NO_VALUE or value is None:
            items = []
        else:
            self.errorf(f"range can't iterate over {sprint([value])}")
        for index, element in items:
            self.range_iteration(node, index, element, mark)
        return bool(items)

    def range_iteration(self, node, index, element, mark):
        decl = node.pipe.decl
        if decl:
            if node.pipe.is_assign:
                self.set_var(decl[0].ident[0], index if len(decl) > 1 else element)
            else:
                self.set_top_var(1, element)
        if len(decl) > 1:
            if node.pipe.is_assign:
                self.set_var(decl[1].ident[0], element)
            else:
                self.set_top_var(2, index)
        try:
            self.walk(element, node.list)
        except _Continue:
            pass
        finally:
            self.pop(mark)

    def walk_template(self, dot, node):
        self.at(node)
        tree = self.set.trees.get(node.name)
        if tree is None:
            self.errorf(f"template {go_quote(node.name)} not defined")
        if self.set.nesting >= MAX_EXEC_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_EXEC_DEPTH})")
        dot = self.eval_pipeline(dot, node.pipe)
        state = _State(self.set, node.name, tree)
        state.out = self.out
        state.push("$", dot)
        self.set.nesting += 1
        try:
            state.walk(dot, tree.root)
        finally:
            self.set.nesting -= 1

    # -- pipelines and commands

    def eval_pipeline(self, dot, pipe):
        if pipe is None:
            return NO_VALUE
        self.at(pipe)
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # a nil interface{} is an invalid value from here on, as in Go
                value = NO_VALUE
        for variable in pipe.decl:
            if pipe.is_assign:
                self.set_var(variable.ident[0], value)
            else:
                self.push(variable.ident[0], value)
        return value

    def eval_command(self, dot, cmd, final):
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        self.errorf(f"can't evaluate command {go_quote(str(first))}")

    def not_a_function(self, args, final):
        if (args and len(args) > 1) or final is not _MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def ideal_constant(self, constant):
        self.at(constant)
        if constant.is_complex:
            return constant.complex_value
        text = constant.text
        is_hex = len(text) > 2 and text[0] == "0" and text[1] in "xX" and not any(c in text for c in "pP")
        if constant.is_float and not is_hex and not text.startswith("'") and any(c in text for c in ".eEpP"):
            return constant.float_value
        if constant.is_int:
            return constant.int_value
        if constant.is_uint:
            self.errorf(f"{text} overflows int")
        return NO_VALUE

    def eval_field_node(self, dot, field, args, final):
        self.at(field)
        return self.eval_field_chain(dot, dot, field, field.ident, args, final)

    def eval_chain_node(self, dot, chain, args, final):
        self.at(chain)
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        receiver = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(dot, receiver, chain, chain.fields, args, final)

    def eval_variable_node(self, dot, variable, args, final):
        self.at(variable)
        value = self.var_value(variable.ident[0])
        if len(variable.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, variable, variable.ident[1:], args, final)

    def eval_field_chain(self, dot, receiver, node, idents, args, final):
        for name in idents[:-1]:
            receiver = self.eval_field(dot, name, node, None, _MISSING, receiver)
        return self.eval_field(dot, idents[-1], node, args, final, receiver)

    def eval_field(self, dot, name, node, args, final, receiver):
        if receiver is NO_VALUE:
            return NO_VALUE
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, GoStruct) and name in receiver.methods:
            return self.eval_call(dot, receiver.methods[name], node, name, args, final)
        has_args = (args is not None and len(args) > 1) or final is not _MISSING
        if isinstance(receiver, dict):
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            return receiver.get(name, NO_VALUE)
        if isinstance(receiver, GoStruct) and name in receiver.fields:
            if has_args:
                self.errorf(f"{name} has arguments but cannot be invoked as function")
            return receiver.fields[name]
        self.errorf(f"can't evaluate field {name} in type {go_type(receiver)}")

    def eval_function(self, dot, node, cmd, args, final):
        self.at(node)
        function = self.set.funcs.get(node.ident)
        if function is None:
            self.errorf(f"{go_quote(node.ident)} is not a defined function")
        return self.eval_call(dot, function, cmd, node.ident, args, final)

    def eval_call(self, dot, function, node, name, args, final):
        args = list(args[1:]) if args else []
        num_in = len(args) + (0 if final is _MISSING else 1)
        fixed = len(function.params)
        if function.variadic is not None:
            if num_in < fixed:
                self.errorf(f"wrong number of args for {name}: want at least {fixed} got {len(args)}")
        elif num_in != fixed:
            self.errorf(f"wrong number of args for {name}: want {fixed} got {num_in}")
        if function.lazy:
            thunks = [lambda a=a: self.eval_arg(dot, "value", a) for a in args]
            if final is not _MISSING:
                thunks.append(lambda: final)
            return self.call(function, [thunks], node, name)
        argv = []
        for index, arg in enumerate(args):
            argv.append(self.eval_arg(dot, self.param_type(function, index), arg))
        if final is not _MISSING:
            argv.append(self.validate(final, self.param_type(function, num_in - 1)))
        return self.call(function, argv, node, name)

    @staticmethod
    def param_type(function, index):
        return function.params[index] if index < len(function.params) else function.variadic

    def call(self, function, argv, node, name):
        try:
            return function.fn(*argv)
        except (FuncError, TemplateError) as exc:
            self.at(node)
            self.errorf(f"error calling {name}: {exc}")
        except RecursionError:
            self.at(node)
            self.errorf(f"error calling {name}: exceeded maximum template depth")
        except Exception as exc:  # a bug here must still name the template, line and function
            self.at(node)
            self.errorf(f"error calling {name}: internal error: {type(exc).__name__}: {exc}")

    # -- arguments

    def eval_arg(self, dot, typ, node):
        self.at(node)
        if isinstance(node, DotNode):
            return self.validate(dot, typ)
        if isinstance(node, NilNode):
            if typ is None or typ in NIL_TYPES:
                return NO_VALUE if typ in (None, "value") else None
            self.errorf(f"cannot assign nil to {GO_TYPE_NAMES.get(typ, typ)}")
        if isinstance(node, FieldNode):
            return self.validate(self.eval_field_node(dot, node, [node], _MISSING), typ)
        if isinstance(node, VariableNode):
            return self.validate(self.eval_variable_node(dot, node, None, _MISSING), typ)
        if isinstance(node, PipeNode):
            return self.validate(self.eval_pipeline(dot, node), typ)
        if isinstance(node, IdentifierNode):
            return self.validate(self.eval_function(dot, node, node, None, _MISSING), typ)
        if isinstance(node, ChainNode):
            return self.validate(self.eval_chain_node(dot, node, None, _MISSING), typ)
        return self.eval_constant_arg(typ, node)

    def eval_constant_arg(self, typ, node):
        if typ in ("any", "value", None):
            if isinstance(node, BoolNode):
                return node.value
            if isinstance(node, NumberNode):
                return self.ideal_constant(node)
            if isinstance(node, StringNode):
                return node.text
        if typ == "bool" and isinstance(node, BoolNode):
            return node.value
        if typ == "string" and isinstance(node, StringNode):
            return node.text
        if typ == "int" and isinstance(node, NumberNode) and node.is_int:
            return node.int_value
        if typ == "float64" and isinstance(node, NumberNode) and node.is_float:
            return node.float_value
        expected = {"bool": "bool", "string": "string", "int": "integer", "float64": "float"}.get(typ)
        if expected:
            self.errorf(f"expected {expected}; found {node}")
        self.errorf(f"can't handle {node} for arg of type {GO_TYPE_NAMES.get(typ, typ)}")

    def validate(self, value, typ):
        """Go's validateType: the value as the parameter type receives it, or an error."""
        if typ is None or typ == "value":
            return value
        if value is NO_VALUE:
            if typ in NIL_TYPES:
                return None
            self.errorf(f"invalid value; expected {GO_TYPE_NAMES.get(typ, typ)}")
        if typ == "any":
            return value
        if _has_type(value, typ):
            return value
        got = "interface {}" if value is None else go_type(value)
        self.errorf(f"wrong type for value; expected {GO_TYPE_NAMES.get(typ, typ)}; got {got}")


def _has_type(value, typ):
    if typ == "string":
        return isinstance(value, str)
    if typ == "bool":
        return isinstance(value, bool)
    if typ == "int":
        return isinstance(value, int) and not isinstance(value, (bool, Int64, Uint64))
    if typ == "float64":
        return isinstance(value, float)
    if typ == "map":
        return isinstance(value, dict) and not isinstance(value, GoMap)
    return False


# ---------------------------------------------------------------------------------------------------
# Go's builtin functions


def _indirect(value):
    return NO_VALUE if value is None else value


def _basic_kind(value):
    """Go's basicKind: the comparable basic kinds; everything else (nil, maps, slices) is "invalid"."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, complex):
        return "complex"
    if isinstance(value, str):
        return "string"
    return "invalid"


def builtin_eq(arg1, *others):
    arg1 = _indirect(arg1)
    if not others:
        raise FuncError("missing argument for comparison")
    kind1 = _basic_kind(arg1)
    for arg in others:
        arg = _indirect(arg)
        kind2 = _basic_kind(arg)
        if kind1 != kind2:
            if arg1 is not NO_VALUE and arg is not NO_VALUE:
                raise FuncError(f"incompatible types for comparison: {go_type(arg1)} and {go_type(arg)}")
            truth = False
        elif kind1 == "invalid":
            truth = _compare_other(arg1, arg)
        else:
            truth = arg1 == arg
        if truth:
            return True
    return False


def _compare_other(arg1, arg):
    """eq for values that are not basic: nil compares with anything, maps and slices with nothing."""
    if arg1 is NO_VALUE or arg is NO_VALUE:
        return arg1 is arg
    if go_kind(arg1) != go_kind(arg):
        raise FuncError(f"non-comparable types {sprintf('%s', [arg1])}: {go_type(arg1)}, {go_type(arg)}: "
                        f"{sprint([arg])}")
    if isinstance(arg, (list, dict, GoFunc)):
        raise FuncError(f"non-comparable type {sprintf('%s', [arg])}: {go_type(arg)}")
    return arg1 is arg


def builtin_ne(arg1, arg2):
    return not builtin_eq(arg1, arg2)


def builtin_lt(arg1, arg2):
    arg1, arg2 = _indirect(arg1), _indirect(arg2)
    kind1, kind2 = _basic_kind(arg1), _basic_kind(arg2)
    if "invalid" in (kind1, kind2):
        raise FuncError("invalid type for comparison")
    if kind1 != kind2:
        raise FuncError("incompatible types for comparison")
    if kind1 in ("bool", "complex"):
        raise FuncError("invalid type for comparison")
    if kind1 == "string":
        return go_bytes(arg1) < go_bytes(arg2)
    return arg1 < arg2


def builtin_le(arg1, arg2):
    return builtin_lt(arg1, arg2) or builtin_eq(arg1, arg2)


def builtin_gt(arg1, arg2):
    return not builtin_le(arg1, arg2)


def builtin_ge(arg1, arg2):
    return not builtin_lt(arg1, arg2)


def builtin_and(thunks):
    value = NO_VALUE
    for thunk in thunks:
        value = thunk()
        if not is_true(value):
            return value
    return value


def builtin_or(thunks):
    value = NO_VALUE
    for thunk in thunks:
        value = thunk()
        if is_true(value):
            return value
    return value


def builtin_not(value):
    return not is_true(value)


def builtin_len(value):
    if value is None:
        raise FuncError("len of nil pointer")
    if value is NO_VALUE:
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(value, str):
        return go_len(value)
    if isinstance(value, (list, dict)):
        return len(value)
    raise FuncError(f"len of type {go_type(value)}")


def _index_arg(index, length):
    if index is NO_VALUE or index is None:
        raise FuncError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise FuncError(f"cannot index slice/array with type {go_type(index)}")
    if index < 0 or index > length:
        raise FuncError(f"index out of range: {index}")
    if index == length:
        raise FuncError("reflect: slice index out of range")
    return index


def builtin_index(item, *indexes):
    item = _indirect(item)
    if item is NO_VALUE:
        raise FuncError("index of untyped nil")
    for index in indexes:
        index = _indirect(index)
        if item is None or item is NO_VALUE:
            raise FuncError("index of nil pointer")
        if isinstance(item, str):
            data = go_bytes(item)
            item = data[_index_arg(index, len(data))]
        elif isinstance(item, list):
            item = item[_index_arg(index, len(item))]
        elif isinstance(item, dict):
            item = _map_index(item, index)
        else:
            raise FuncError(f"can't index item of type {go_type(item)}")
    return item


def _map_index(mapping, key):
    if key is NO_VALUE or key is None:
        raise FuncError("value is nil; should be of type string")
    if isinstance(mapping, GoMap) and "[interface {}]" in mapping.go_type:
        return mapping.get(key, mapping.zero())
    if not isinstance(key, str):
        raise FuncError(f"value has type {go_type(key)}; should be string")
    return mapping.get(key, mapping.zero() if isinstance(mapping, GoMap) else None)


def _slice_bounds(args, length):
    bounds = []
    for arg in args:
        arg = _indirect(arg)
        if not isinstance(arg, int) or isinstance(arg, bool):
            raise FuncError("cannot index slice/array with type " + str(go_type(arg) or "nil"))
        if arg < 0 or arg > length:
            raise FuncError(f"index out of range: {arg}")
        bounds.append(arg)
    return bounds


def builtin_slice(item, *indexes):
    item = _indirect(item)
    if item is NO_VALUE:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        data = go_bytes(item)
        bounds = _slice_bounds(indexes, len(data))
        start, end = (bounds + [0, len(data)][len(bounds):])[:2]
        if start > end:
            raise FuncError(f"invalid slice index: {start} > {end}")
        return go_string(data[start:end])
    if isinstance(item, list):
        bounds = _slice_bounds(indexes, len(item))
        start, end = (bounds + [0, len(item)][len(bounds):])[:2]
        if start > end:
            raise FuncError(f"invalid slice index: {start} > {end}")
        result = item[start:end]
        return GoList(result, item.go_type) if isinstance(item, GoList) else result
    raise FuncError(f"can't slice item of type {go_type(item)}")


def html_escape(text):
    """Go's template.HTMLEscapeString."""
    table = {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
    return "".join(table.get(c, c) for c in text)


def js_escape(text):
    """Go's template.JSEscapeString."""
    table = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
             "=": "\\u003D"}
    out = []
    for char in text:
        code = ord(char)
        if char in table:
            out.append(table[char])
        elif code < 0x80 and code < 0x20:
            out.append(f"\\u{code:04X}")
        elif code >= 0x80 and not is_print(char):
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    return "".join(out)


def _eval_args(args):
    """Go's evalArgs: a lone string as is, anything else through fmt.Sprint."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(args)


def builtin_call(function, *args):
    if function is NO_VALUE or function is None:
        raise FuncError("call of nil")
    if not isinstance(function, GoFunc):
        raise FuncError(f"non-function of type {go_type(function)}")
    try:
        return function.fn(*args)
    except FuncError as exc:
        raise FuncError(f"error calling call: {exc}")


def builtin_functions():
    """Go's text/template builtins."""
    return {
        "and": GoFunc(builtin_and, ("value",), "value", lazy=True),
        "or": GoFunc(builtin_or, ("value",), "value", lazy=True),
        "not": GoFunc(builtin_not, ("value",)),
        "len": GoFunc(builtin_len, ("value",)),
        "index": GoFunc(builtin_index, ("value",), "value"),
        "slice": GoFunc(builtin_slice, ("value",), "value"),
        "call": GoFunc(builtin_call, ("value",), "value"),
        "print": GoFunc(lambda *a: sprint(a), (), "any"),
        "printf": GoFunc(lambda f, *a: sprintf(f, a), ("string",), "any"),
        "println": GoFunc(lambda *a: sprintln(a), (), "any"),
        "html": GoFunc(lambda *a: html_escape(_eval_args(a)), (), "any"),
        "js": GoFunc(lambda *a: js_escape(_eval_args(a)), (), "any"),
        "urlquery": GoFunc(lambda *a: urllib.parse.quote_plus(go_bytes(_eval_args(a)), safe="-_.~"), (), "any"),
        "eq": GoFunc(builtin_eq, ("value",), "value"),
        "ne": GoFunc(builtin_ne, ("value", "value")),
        "lt": GoFunc(builtin_lt, ("value", "value")),
        "le": GoFunc(builtin_le, ("value", "value")),
        "gt": GoFunc(builtin_gt, ("value", "value")),
        "ge": GoFunc(builtin_ge, ("value", "value")),
    }


# ---------------------------------------------------------------------------------------------------
# Template sets


class TemplateSet:
    """Associated templates sharing functions, like a Go ``*template.Template`` and its ``New`` children.

    ``funcs`` adds to (and overrides) Go's builtins; ``unsupported`` maps function names that exist in
    the Go original but not here to the reason, so a template using one fails at parse time naming it.
    """

    def __init__(self, funcs=None, unsupported=None, name=""):
        self.name = name  # the template the set belongs to, for messages (werf: werfConfig)
        self.funcs = builtin_functions()
        self.funcs.update(funcs or {})
        self.unsupported = dict(unsupported or {})
        self.trees = {}
        self.nesting = 0

    def has_function(self, name):
        return name in self.funcs or name in self.unsupported

    def check_function(self, name):
        reason = self.unsupported.get(name)
        return f"function {go_quote(name)} is not supported: {reason}" if reason else None

    def parse(self, name, text, parse_name=None):
        """Parse ``text`` as template ``name`` (Go: ``t.New(name).Parse(text)``); ``parse_name`` names it in
        messages (Go uses ``name``)."""
        trees = parse_trees(name, text, parse_name or name, self.has_function, self.check_function)
        for tree_name, tree in trees.items():
            old = self.trees.get(tree_name)
            if old is not None and is_empty_tree(tree.root) and old.root is not None:
                continue
            self.trees[tree_name] = tree

    def execute(self, name, data):
        """Execute template ``name`` with ``data`` as dot and ``$``; the output text."""
        tree = self.trees.get(name)
        if tree is None:
            raise ExecError(f"template: no template {go_quote(name)} associated with template {go_quote(self.name)}")
        if self.nesting >= MAX_EXEC_DEPTH:
            raise ExecError(f"template: {name}: exceeded maximum template depth ({MAX_EXEC_DEPTH})")
        data = NO_VALUE if data is None else data  # Go: reflect.ValueOf(nil) is the invalid value
        state = _State(self, name, tree)
        state.push("$", data)
        self.nesting += 1
        try:
            state.walk(data, tree.root)
        except RecursionError:
            raise ExecError(f"template: {name}: exceeded maximum template depth (Python recursion limit)")
        finally:
            self.nesting -= 1
        return "".join(state.out)
