# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dockerfile parsing and build resolution, following BuildKit's Dockerfile frontend.

:func:`parse_dockerfile` turns Dockerfile text into instructions grouped by stage, the way
BuildKit's ``parser`` and ``instructions`` packages do (parser directives, line continuations,
comments inside continuations, JSON and shell forms, builder flags).

:func:`resolve` then works out what one build of a target stage depends on: the stages it
needs, each instruction's canonical text after variable expansion, the build arguments it
consumes, and which paths of the build context its COPY/ADD instructions read. That is the
input of the image content digest; nothing here reads files or talks to a registry.

Where the classic builder and BuildKit differ, BuildKit's behaviour is modelled. Notably:
a stage built ``FROM`` another stage inherits that stage's ARG values as well as its ENV;
an ARG after an ENV of the same name overrides it for later expansion; ONBUILD triggers of a
parent stage run first in the child stage.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field

from ansible_collections.berth.converge.plugins.module_utils.dockerignore import clean_path
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction.

    ``args`` holds the JSON array for the exec form; otherwise whitespace-separated words for
    COPY/ADD/VOLUME/FROM/EXPOSE, quote-aware words for ARG, ``key=value`` items (quotes kept,
    expansion pending) for ENV/LABEL, and the whole remaining text as one element for
    RUN/CMD/ENTRYPOINT/SHELL/MAINTAINER/USER/WORKDIR/STOPSIGNAL/ONBUILD. HEALTHCHECK has its
    type first (``CMD`` or ``NONE``), then the command as for RUN.
    ``flags`` maps each single-valued builder flag to its value (booleans as ``"true"`` or
    ``"false"``); ``repeated_flags`` holds the flags that may repeat (``--mount``,
    ``--exclude``, ``--device``) in order.
    """

    keyword: str
    flags: dict[str, str]
    args: tuple[str, ...]
    json_form: bool
    line: int
    text: str
    repeated_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True)
class Heredoc:
    """A here-document of RUN/COPY/ADD (``<<EOF`` ... ``EOF``): its content as BuildKit reads it
    (the lines up to the terminator, newlines kept; leading tabs removed for ``<<-``)."""

    name: str
    content: str
    chomp: bool = False
    expand: bool = True


@dataclass(frozen=True)
class Stage:
    """A FROM line and the instructions up to the next one; ``name`` is lower-cased and
    ``base``/``platform`` are as written (expanded by :func:`resolve`)."""

    index: int
    name: str | None
    base: str
    platform: str | None
    instructions: tuple[Instruction, ...]
    line: int


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: the ARGs before the first FROM, the stages, the escape character."""

    path: str
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    escape_token: str = "\\"


@dataclass(frozen=True)
class ResolvedStage:
    """A stage the target needs. ``instructions`` is the canonical text of each instruction
    (ONBUILD triggers of a parent stage first), expanded where BuildKit expands."""

    name: str | None
    index: int
    base: str
    base_stage: int | None
    instructions: tuple[str, ...]
    platform: str | None = None


@dataclass(frozen=True)
class ContextSource:
    """Context paths one instruction reads.

    ``patterns`` are cleaned and relative to the context (``"."`` is all of it); match them
    with ``dockerignore.source_selects(pattern, path, parents=parents)``. ``keyword`` is COPY,
    ADD, or RUN for a ``--mount=type=bind`` without ``from``. ``excludes`` are the raw
    ``--exclude`` patterns: selecting without them gives a superset, which is safe for a digest.
    ``unresolved_vars`` names variables the sources use whose value may come from the base
    image's environment or the build platform, which this resolver cannot see.
    """

    stage: int
    line: int
    keyword: str
    patterns: tuple[str, ...]
    excludes: tuple[str, ...] = ()
    parents: bool = False
    unresolved_vars: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedBuild:
    """What one build of a target needs; ``stages`` are in Dockerfile order. See :func:`resolve`."""

    target: int
    stages: tuple[ResolvedStage, ...]
    used_args: dict[str, str | None]
    context_sources: tuple[ContextSource, ...]
    remote_sources: tuple[str, ...]
    external_images: tuple[str, ...]


# ---------------------------------------------------------------------------
# Shell-style word expansion (BuildKit frontend/dockerfile/shell/lex.go)


class _LexError(Exception):
    pass


def _go_isspace(char: str) -> bool:
    """Go ``unicode.IsSpace``."""
    return char.isspace() and char not in "\x1c\x1d\x1e\x1f"


def _is_digit(char: str) -> bool:
    return unicodedata.category(char) == "Nd"


class _Words:
    """Word splitting that runs alongside expansion (``ProcessWords``).

    BuildKit shares one word buffer between nested expansions, so a ``${VAR:-w}`` drops the
    part of the word before it from the split words (not from the result); that is kept.
    """

    def __init__(self, buffer: list[str]):
        self.buffer = buffer
        self.buffer.clear()
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, char: str) -> None:
        if _go_isspace(char):
            if self.in_word and self.buffer:
                self.words.append("".join(self.buffer))
                self.buffer.clear()
                self.in_word = False
        else:
            self.add_raw(char)

    def add_raw(self, text: str) -> None:
        if text:
            self.buffer.append(text)
        self.in_word = True

    def add_text(self, text: str) -> None:
        for char in text:
            self.add_char(char)

    def result(self) -> list[str]:
        if self.buffer:
            self.words.append("".join(self.buffer))
            self.buffer.clear()
            self.in_word = False
        return self.words


@dataclass
class _Expansion:
    result: str
    words: list[str]
    matched: set[str]
    unmatched: set[str]


class _Lexer:
    """Expands ``$VAR``, ``${VAR}``, ``${VAR:-w}``, ``${VAR-w}``, ``${VAR:+w}``, ``${VAR+w}``,
    ``${VAR:?w}``, ``${VAR?w}``, ``${VAR#p}``, ``${VAR##p}``, ``${VAR%p}``, ``${VAR%%p}``,
    ``${VAR/p/r}``, ``${VAR//p/r}`` and removes quotes, with ``escape`` as escape character
    (a port of BuildKit's ``shell.Lex``)."""

    def __init__(self, escape: str = "\\", *, raw_quotes=False, raw_escapes=False, skip_unset=False):
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset

    def process(self, word: str, lookup) -> _Expansion:
        self._text = word
        self._pos = 0
        self._lookup = lookup
        self._buffer: list[str] = []
        self._matched: set[str] = set()
        self._unmatched: set[str] = set()
        result, words = self._until(None, self.raw_escapes, False)
        return _Expansion(result, words, self._matched, self._unmatched)

    def _peek(self) -> str | None:
        return self._text[self._pos] if self._pos < len(self._text) else None

    def _next(self) -> str | None:
        char = self._peek()
        if char is not None:
            self._pos += 1
        return char

    def _get(self, name: str) -> str | None:
        value = self._lookup(name)
        (self._unmatched if value is None else self._matched).add(name)
        return value

    def _until(self, stop: str | None, raw_escapes: bool, keep_pattern_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._scan_until(stop, keep_pattern_escapes)
        finally:
            self.raw_escapes = saved

    def _scan_until(self, stop: str | None, keep_pattern_escapes: bool) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words(self._buffer)
        while (char := self._peek()) is not None:
            if stop is not None and char == stop:
                self._next()
                return "".join(out), words.result()
            if char in "$<'\"":
                value = self._special(char, keep_pattern_escapes)
                out.append(value)
                if char == "$":
                    words.add_text(value)
                else:
                    words.add_raw(value)
            elif not self._escaped_char(out, words):
                break
        if stop is not None:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.result()

    def _special(self, char: str, keep_pattern_escapes: bool) -> str:
        if char == "$":
            return self._dollar()
        if char == "<":
            return self._angle()
        if char == "'":
            return self._single_quoted(keep_pattern_escapes)
        return self._double_quoted(keep_pattern_escapes)

    def _escaped_char(self, out: list[str], words: _Words) -> bool:
        """Consume one plain or escaped character; False when an escape ends the input."""
        char = self._next()
        if char == self.escape:
            if self.raw_escapes:
                words.add_raw(char)
                out.append(char)
            char = self._next()
            if char is None:
                return False
            words.add_raw(char)
        else:
            words.add_char(char)
        out.append(char)
        return True

    def _angle(self) -> str:
        """``<<`` keeps the blanks after it, so ``<< EOF`` stays one word."""
        self._next()
        if self._peek() != "<":
            return "<"
        self._next()
        blanks = []
        while self._peek() in ("\t", "\r", " "):
            blanks.append(self._next())
        return "<<" + "".join(blanks)

    def _opening_quote(self) -> list[str]:
        quote = self._next()
        return [quote] if self.raw_quotes else []

    def _single_quoted(self, keep_pattern_escapes: bool) -> str:
        out = self._opening_quote()
        while True:
            char = self._next()
            if char is None:
                raise _LexError("unexpected end of statement while looking for matching single-quote")
            if char == "'":
                if self.raw_quotes:
                    out.append(char)
                return "".join(out)
            if keep_pattern_escapes and char == self.escape:
                out.append(char)
            out.append(char)

    def _double_quoted(self, keep_pattern_escapes: bool) -> str:
        out = self._opening_quote()
        while True:
            char = self._peek()
            if char is None:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            if char == '"':
                self._next()
                if self.raw_quotes:
                    out.append(char)
                return "".join(out)
            if char == "$":
                out.append(self._dollar())
                continue
            char = self._next()
            if char == self.escape:
                following = self._peek()
                if following is None:
                    continue
                if following in ('"', "$", self.escape):
                    if self.raw_escapes:
                        out.append(char)
                    char = self._next()
                elif self.raw_escapes and (not self.raw_quotes or keep_pattern_escapes):
                    out.append(char)
            out.append(char)

    def _name(self) -> str:
        name: list[str] = []
        while (char := self._peek()) is not None:
            if not name and _is_digit(char):
                while (char := self._peek()) is not None and _is_digit(char):
                    name.append(self._next())
                return "".join(name)
            if not name and char in "@*#?-$!0":
                return self._next()
            if not (char.isalpha() or _is_digit(char) or char == "_"):
                break
            name.append(self._next())
        return "".join(name)

    def _dollar(self) -> str:
        self._next()
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value = self._get(name)
            if value is None:
                return "$" + name if self.skip_unset else ""
            return value
        self._next()
        if self._peek() is None:
            raise _LexError("syntax error: missing '}'")
        if self._peek() in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self._name()
        char = self._next()
        if char == "}":
            value = self._get(name)
            if value is None:
                return "${%s}" % name if self.skip_unset else ""
            return value
        if char == "/":
            return self._replace(name)
        return self._modifier(name, char)

    def _modifier(self, name: str, char: str | None) -> str:
        modifier = char or ""
        null_is_unset = char == ":"
        if null_is_unset:
            char = self._next()
            modifier += char or ""
        if char not in ("+", "-", "?", "#", "%") or (null_is_unset and char in "#%"):
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        pattern = char in "#%"
        word = self._word_until_brace(raw_escapes=pattern, keep_pattern_escapes=pattern)
        value = self._get(name)
        if self.skip_unset and value is None:
            return "${%s%s%s}" % (name, modifier, word)
        empty = value is None or (null_is_unset and value == "")
        if char == "-":
            return word if empty else value
        if char == "+":
            return "" if empty else word
        if char == "?":
            if empty:
                default = "is not allowed to be unset" if value is None else "is not allowed to be empty"
                raise _LexError(f"{name}: {word or default}")
            return value
        greedy = word.startswith(char)
        if greedy:
            word = word[1:]
        if char == "%":
            return _trim_suffix(word, value or "", greedy)
        return _trim_prefix(word, value or "", greedy)

    def _word_until_brace(self, raw_escapes: bool, keep_pattern_escapes: bool) -> str:
        try:
            return self._until("}", raw_escapes, keep_pattern_escapes)[0]
        except _LexError:
            if self._peek() is None:
                raise _LexError("syntax error: missing '}'") from None
            raise

    def _replace(self, name: str) -> str:
        replace_all = self._peek() == "/"
        if replace_all:
            self._next()
        try:
            pattern = self._until("/", True, True)[0]
        except _LexError:
            if self._peek() is None:
                raise _LexError("syntax error: missing '/' in ${}") from None
            raise
        replacement = self._word_until_brace(raw_escapes=True, keep_pattern_escapes=False)
        value = self._get(name)
        if self.skip_unset and value is None:
            return "${%s/%s/%s}" % (name, pattern, replacement)
        regex = _shell_pattern_regex(pattern, greedy=True, anchored=False)
        value = value or ""
        if replace_all:
            return _go_replace_all(regex, value, _go_template(replacement))
        found = regex.search(value)
        if found is None:
            return value
        return value[:found.start()] + replacement + value[found.end():]


def _shell_pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern:
    """``convertShellPatternToRegex``: ``*`` any string, ``?`` one character, no brackets."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        token = pattern[i]
        i += 1
        if token == "*":
            out.append(".*" if greedy else ".*?")
            continue
        if token == "?":
            out.append(".")
            continue
        if token == "\\":
            following = pattern[i] if i < len(pattern) else None
            if following in ("}", "/"):
                continue
            i += 1
            if following not in ("*", "?", "\\"):
                raise _LexError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{following or ''}'")
            token = following
        out.append(re.escape(token))
    return re.compile("".join(out))


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern but keep each escape in front of the character it escapes."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        if pattern[i] == "\\" and i != last:
            out[last - i - 1] = pattern[i]
            out[last - i] = pattern[i + 1]
            i += 2
        else:
            out[last - i] = pattern[i]
            i += 1
    return "".join(out)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    found = _shell_pattern_regex(pattern, greedy, anchored=True).search(value)
    return value[found.end():] if found else value


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _go_template(replacement: str) -> str:
    """What Go's ``ReplaceAllString`` makes of a replacement: ``$$`` is ``$``; ``$name`` and
    ``${name}`` refer to groups, and the pattern has none, so they vanish."""
    return re.sub(r"\$(\$|\{[A-Za-z0-9_]+\}|[A-Za-z0-9_]+)", lambda m: "$" if m.group(1) == "$" else "", replacement)


def _go_replace_all(regex: re.Pattern, value: str, replacement: str) -> str:
    """Go ``Regexp.ReplaceAllString`` (an empty match right after a match is not replaced)."""
    out: list[str] = []
    last_end = 0
    search = 0
    while search <= len(value):
        found = regex.search(value, search)
        if found is None:
            break
        start, end = found.span()
        out.append(value[last_end:start])
        if end > last_end or start == 0:
            out.append(replacement)
        last_end = end
        search = end if end > search else search + 1
    out.append(value[last_end:])
    return "".join(out)


# ---------------------------------------------------------------------------
# Parsing (BuildKit frontend/dockerfile/parser and instructions)

_BOOL, _STRING, _STRINGS = "bool", "string", "strings"
_FLAGS = {
    "ADD": {"chown": _STRING, "chmod": _STRING, "link": _BOOL, "keep-git-dir": _BOOL,
            "checksum": _STRING, "unpack": _BOOL, "exclude": _STRINGS},
    "COPY": {"chown": _STRING, "from": _STRING, "chmod": _STRING, "link": _BOOL,
             "exclude": _STRINGS, "parents": _BOOL},
    "FROM": {"platform": _STRING},
    "RUN": {"mount": _STRINGS, "network": _STRING, "security": _STRING, "device": _STRINGS},
    "HEALTHCHECK": {"interval": _STRING, "timeout": _STRING, "start-period": _STRING,
                    "start-interval": _STRING, "retries": _STRING},
}
_KEYWORDS = frozenset((
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
))
_JSON_OR_WORDS = frozenset(("ADD", "COPY", "VOLUME"))
_JSON_OR_TEXT = frozenset(("RUN", "CMD", "ENTRYPOINT", "SHELL"))
_EXACTLY_ONE = frozenset(("MAINTAINER", "STOPSIGNAL", "USER", "WORKDIR"))
_HEREDOC_KEYWORDS = frozenset(("RUN", "COPY", "ADD"))

_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[ \t\n\f\r]*=[ \t\n\f\r]*(.+?)[ \t\n\f\r]*\Z")
_DIRECTIVES = frozenset(("syntax", "escape", "check"))
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*\Z")
_HEREDOC_WORD = re.compile(r"(\d*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")


class _Directives:
    """Parser directives (``# escape=``, ``# syntax=``, ``# check=``) at the top of the file."""

    def __init__(self, where):
        self.where = where
        self.escape = "\\"
        self.done = False
        self.seen: set[str] = set()
        self._set_continuation()

    def _set_continuation(self) -> None:
        token = re.escape(self.escape)
        self.continuation = re.compile(f"([^{token}]){token}[ \\t]*\\Z|\\A{token}[ \\t]*\\Z")

    def feed(self, line: str, number: int) -> None:
        if self.done:
            return
        found = _DIRECTIVE.match(line[1:].lstrip()) if line.startswith("#") else None
        name = found.group(1).lower() if found else None
        if name not in _DIRECTIVES:
            self.done = True
            return
        if name in self.seen:
            raise ConvergeError(f"{self.where}:{number}: only one {name} parser directive can be used")
        self.seen.add(name)
        if name == "escape":
            value = found.group(2)
            if value not in ("`", "\\"):
                raise ConvergeError(f"{self.where}:{number}: invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self._set_continuation()

    def strip_continuation(self, line: str) -> tuple[str, bool]:
        """(line without the continuation mark, whether the instruction goes on)."""
        found = self.continuation.search(line)
        if not found:
            return line, False
        return line[:found.start()] + (found.group(1) or ""), True


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _logical_lines(text: str, where: str):
    """Yield (start line, instruction text) pairs, and set the escape token on the way.

    Comment lines and blank lines inside a continuation are skipped, as BuildKit does (a blank
    line there does not end the instruction).
    """
    directives = _Directives(where)
    lines = text.removeprefix("\ufeff").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    number = 0
    while number < len(lines):
        raw = lines[number].rstrip("\r\n")
        number += 1
        token = raw.lstrip()
        directives.feed(token, number)
        start = number
        line, goes_on = directives.strip_continuation("" if _is_comment(raw) else token)
        if not goes_on and not line:
            continue
        while goes_on and number < len(lines):
            raw = lines[number].rstrip("\r\n")
            number += 1
            directives.feed(raw, number)
            if _is_comment(raw) or not raw.strip():
                continue
            more, goes_on = directives.strip_continuation(raw)
            line += more
        heredocs = []
        for name, chomp, expand in _heredoc_words(line, directives.escape, f"{where}:{start}"):
            content = []
            while True:
                if number >= len(lines):
                    raise ConvergeError(f"{where}:{start}: unterminated heredoc <<{name} (no line {name!r} "
                                        "after it)")
                raw = lines[number]
                number += 1
                terminator = raw.rstrip("\r\n")
                if (terminator.lstrip("\t") if chomp else terminator) == name:
                    break
                content.append(raw + "\n")
            text = "".join(content)
            if chomp:
                text = re.sub(r"(?m)^\t+", "", text)
            heredocs.append(Heredoc(name, text, chomp, expand))
        yield start, line, directives.escape, tuple(heredocs)


def _parse_words(rest: str, escape: str) -> list[str]:
    """``parseWords``: split on whitespace outside quotes, keeping quotes and escapes."""
    words: list[str] = []
    word: list[str] = []
    phase, quote, blank_ok = "space", "", False
    i = 0
    while i < len(rest):
        char = rest[i]
        if phase == "space":
            if _go_isspace(char):
                i += 1
                continue
            phase = "word"
        if phase == "word":
            if _go_isspace(char):
                if blank_ok or word:
                    words.append("".join(word))
                phase, word, blank_ok = "space", [], False
                i += 1
                continue
            if char in "'\"":
                phase, quote, blank_ok = "quote", char, True
        elif char == quote:
            phase = "word"
        if char == escape and (phase == "word" or quote != "'"):
            if i + 1 == len(rest):
                phase = "word"
                i += 1
                continue
            word.append(char)
            i += 1
            char = rest[i]
        word.append(char)
        i += 1
    if phase != "space" and (blank_ok or word):
        words.append("".join(word))
    return words


def _extract_flags(rest: str, escape: str) -> tuple[str, list[str]]:
    """``extractBuilderFlags``: leading ``--flag[=value]`` words (quotes removed) and the rest."""
    words: list[str] = []
    word: list[str] = []
    phase, quote, blank_ok = "space", "", False
    i = 0
    while i < len(rest):
        char = rest[i]
        if phase == "space":
            if _go_isspace(char):
                i += 1
                continue
            if not rest.startswith("--", i):
                return rest[i:], words
            phase = "word"
        if phase == "word" and _go_isspace(char):
            if "".join(word) == "--":
                return rest[i:], words
            if blank_ok or word:
                words.append("".join(word))
            phase, word, blank_ok = "space", [], False
        elif phase == "word" and char in "'\"":
            phase, quote, blank_ok = "quote", char, True
        elif phase == "quote" and char == quote:
            phase = "word"
        elif char == escape and i + 1 == len(rest):
            phase = "word"
        else:
            if char == escape:
                i += 1
                char = rest[i]
            word.append(char)
        i += 1
    if phase != "space" and "".join(word) != "--" and (blank_ok or word):
        words.append("".join(word))
    return "", words


def _parse_flags(keyword: str, words: list[str], where: str) -> tuple[dict, dict]:
    """``BFlags.Parse`` against the flags BuildKit defines for ``keyword``."""
    known = _FLAGS.get(keyword, {})
    single: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for word in words:
        name, has_value, value = word[2:].partition("=")
        kind = known.get(name)
        if kind is None:
            raise ConvergeError(f"{where}: unknown flag: --{name}")
        if kind != _STRINGS and name in single:
            raise ConvergeError(f"{where}: duplicate flag specified: --{name}")
        if kind == _BOOL:
            if has_value and not value:
                raise ConvergeError(f"{where}: missing a value on flag: --{name}")
            if value.lower() not in ("", "true", "false"):
                raise ConvergeError(f"{where}: expecting boolean value for flag --{name}, not: {value}")
            single[name] = "false" if value.lower() == "false" else "true"
        elif not has_value:
            raise ConvergeError(f"{where}: missing a value on flag: --{name}")
        elif kind == _STRINGS:
            repeated.setdefault(name, []).append(value)
        else:
            single[name] = value
    return single, {name: tuple(values) for name, values in repeated.items()}


class _NotJson(Exception):
    pass


def _reject_constant(name: str):
    raise _NotJson(name)


def _parse_json(rest: str, where: str) -> list[str] | None:
    """A JSON array of strings, None if ``rest`` is not JSON (then it is shell form)."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, _NotJson):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise ConvergeError(f"{where}: when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _name_value_args(keyword: str, rest: str, escape: str, where: str) -> tuple[str, ...]:
    """ENV/LABEL: ``key value`` (old form) or ``key=value ...``; returns ``key=value`` items."""
    words = _parse_words(rest, escape)
    if not words:
        return ()
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ConvergeError(f"{where}: {keyword} must have two arguments")
        return (f"{parts[0]}={parts[1]}",)
    for word in words:
        if "=" not in word:
            raise ConvergeError(f"{where}: Syntax error - can't find = in {word!r}. Must be of the form: name=value")
    return tuple(words)


def _split_whitespace(rest: str) -> tuple[str, ...]:
    return tuple(_WHITESPACE.split(rest)) if rest else ()


def _parse_args(keyword: str, rest: str, escape: str, where: str) -> tuple[tuple[str, ...], bool]:
    if keyword in _JSON_OR_WORDS or keyword in _JSON_OR_TEXT:
        parsed = _parse_json(rest, where)
        if parsed is not None:
            return tuple(parsed), True
        if keyword in _JSON_OR_WORDS:
            return _split_whitespace(rest), False
        return ((rest,) if rest else ()), False
    if keyword == "HEALTHCHECK":
        kind, *command = re.split(r"\s+", rest, maxsplit=1)
        if not kind:
            return (), False
        command_args, json_form = _parse_args("CMD", command[0] if command else "", escape, where)
        return (kind, *command_args), json_form
    if keyword in ("FROM", "EXPOSE"):
        return _split_whitespace(rest), False
    if keyword == "ARG":
        return tuple(_parse_words(rest, escape)), False
    if keyword in ("ENV", "LABEL"):
        return _name_value_args(keyword, rest, escape, where), False
    return ((rest,) if rest else ()), False


def _validate(keyword: str, args: tuple[str, ...], json_form: bool, where: str) -> None:
    if keyword in ("COPY", "ADD") and len(args) < 2:
        raise ConvergeError(
            f"{where}: {keyword} requires at least two arguments, but only one was provided. "
            "Destination could not be determined."
        )
    if keyword in _EXACTLY_ONE and len(args) != 1:
        raise ConvergeError(f"{where}: {keyword} requires exactly one argument")
    if keyword in ("ARG", "ENV", "LABEL", "EXPOSE", "VOLUME", "ONBUILD", "HEALTHCHECK") and not args:
        raise ConvergeError(f"{where}: {keyword} requires at least one argument")
    if keyword in ("ARG", "ENV", "LABEL") and any(a.startswith("=") for a in args):
        raise ConvergeError(f"{where}: {keyword} names can not be blank")
    if keyword == "VOLUME" and any(not a.strip() for a in args):
        raise ConvergeError(f"{where}: VOLUME specified can not be an empty string")
    if keyword == "SHELL" and (not json_form or not args):
        raise ConvergeError(f"{where}: SHELL requires the arguments to be in JSON form")
    if keyword == "FROM":
        _validate_from(args, where)
    if keyword == "HEALTHCHECK":
        _validate_healthcheck(args, where)


def _validate_from(args: tuple[str, ...], where: str) -> None:
    if len(args) == 3 and args[1].lower() == "as":
        if not _STAGE_NAME.match(args[2].lower()):
            raise ConvergeError(
                f"{where}: invalid name for build stage: {args[2]!r}, name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise ConvergeError(f"{where}: FROM requires either one or three arguments")


def _validate_healthcheck(args: tuple[str, ...], where: str) -> None:
    kind = args[0].upper()
    if kind == "NONE" and len(args) > 1:
        raise ConvergeError(f"{where}: HEALTHCHECK NONE takes no arguments")
    if kind == "CMD" and len(args) == 1:
        raise ConvergeError(f"{where}: Missing command after HEALTHCHECK CMD")
    if kind not in ("NONE", "CMD"):
        raise ConvergeError(f"{where}: Unknown type {args[0]!r} in HEALTHCHECK (try CMD)")


def _heredoc_names(line: str) -> list[tuple[str, str]]:
    """(word, terminator word as written) of each heredoc word of ``line`` (BuildKit's heredocsFromLine)."""
    if "<<" not in line:
        return []
    try:
        words = _Lexer(raw_quotes=True, raw_escapes=True, skip_unset=True).process(line, lambda _: None).words
    except _LexError:
        return []
    found = []
    for word in words:
        match = _HEREDOC_WORD.match(word)
        if match and match.group(3) and _single_word(match.group(3)):
            found.append((word, match.group(3)))
    return found


def _heredoc_word(word: str):
    """(name, chomp, expand) when ``word`` is a heredoc word (``<<EOF``, ``<<-"EOF"``), else None."""
    match = _HEREDOC_WORD.match(word)
    if not match or not match.group(3) or not _single_word(match.group(3)):
        return None
    rest = match.group(3)
    try:
        name = _Lexer(skip_unset=True).process(rest, lambda _: None).words[0]
        raw = _Lexer(raw_quotes=True, skip_unset=True).process(rest, lambda _: None).words[0]
    except _LexError:
        return None
    # a quoted terminator (any part of it) means the content is taken literally
    expand = name.count("'") + name.count('"') == raw.count("'") + raw.count('"')
    return name, match.group(2) == "-", expand


def _heredoc_words(line: str, escape: str, where: str) -> list[tuple[str, bool, bool]]:
    """(name, chomp, expand) of the heredocs a RUN/COPY/ADD line (not in JSON form) opens, in order."""
    if "<<" not in line:
        return []
    written, _flag_words, rest = _split_instruction(line, escape)
    keyword = written.upper()
    if keyword not in _HEREDOC_KEYWORDS:
        return []
    _args, json_form = _parse_args(keyword, rest, escape, where)
    if json_form:
        return []
    return [parsed for parsed in (_heredoc_word(word) for word, _name in _heredoc_names(line)) if parsed]


def _reject_heredoc(keyword: str, json_form: bool, line: str, where: str) -> None:
    """Heredocs in ONBUILD triggers are not supported here: refuse them clearly."""
    if keyword not in _HEREDOC_KEYWORDS or json_form:
        return
    for word, _name in _heredoc_names(line):
        raise ConvergeError(f"{where}: heredocs ({word}) in ONBUILD triggers are not supported; "
                            "put the content in a file")


def _single_word(text: str) -> bool:
    try:
        return len(_Lexer(skip_unset=True).process(text, lambda _: None).words) == 1
    except _LexError:
        return False


def _split_instruction(line: str, escape: str) -> tuple[str, list[str], str]:
    """``splitCommand``: (keyword as written, builder flag words, remaining text)."""
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flag_words = _extract_flags(parts[1], escape)
    return parts[0], flag_words, rest.strip()


def _parse_instruction(line: str, number: int, escape: str, where: str, heredocs=()) -> Instruction:
    written, flag_words, rest = _split_instruction(line, escape)
    keyword = written.upper()
    if keyword not in _KEYWORDS:
        raise ConvergeError(f"{where}: unknown instruction: {written}")
    args, json_form = _parse_args(keyword, rest, escape, where)
    flags, repeated = {}, {}
    # BuildKit never checks the flags of ARG, STOPSIGNAL and HEALTHCHECK NONE: they are ignored.
    if keyword not in ("ARG", "STOPSIGNAL") and not (keyword == "HEALTHCHECK" and args[:1] == ("NONE",)):
        flags, repeated = _parse_flags(keyword, flag_words, where)
    _validate(keyword, args, json_form, where)
    if keyword == "ONBUILD":
        _check_trigger(args[0], escape, where)
    if keyword in ("COPY", "ADD") and _heredoc_word(args[-1]):
        raise ConvergeError(f"{where}: {keyword} cannot accept a heredoc as a destination")
    _reject_mount_from_variable(repeated.get("mount", ()), where)
    return Instruction(keyword, flags, args, json_form, number, line.strip(), repeated, heredocs)


def _check_trigger(trigger: str, escape: str, where: str) -> None:
    """What BuildKit checks of an ONBUILD trigger up front; the rest fails when it runs."""
    written, _flag_words, rest = _split_instruction(trigger, escape)
    keyword = written.upper()
    if keyword == "ONBUILD":
        raise ConvergeError(f"{where}: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if keyword in ("MAINTAINER", "FROM"):
        raise ConvergeError(f"{where}: {keyword} isn't allowed as an ONBUILD trigger")
    if keyword in _KEYWORDS:
        _args, json_form = _parse_args(keyword, rest, escape, where)
        _reject_heredoc(keyword, json_form, trigger, where)


def _reject_mount_from_variable(mounts: tuple[str, ...], where: str) -> None:
    for mount in mounts:
        source = _mount_fields(mount, where).get("from") or ""
        if "$" in source[:-1]:
            raise ConvergeError(f"{where}: 'from' doesn't support variable expansion, define alias stage instead")


def uses_heredocs(dockerfile: Dockerfile) -> bool:
    """Whether an instruction has a here-document (the classic builder cannot build those)."""
    return any(i.heredocs for stage in dockerfile.stages for i in stage.instructions)


def parse_dockerfile(text: str, path: str) -> Dockerfile:
    """Parse Dockerfile ``text``; ``path`` names the file in error messages (``path:line: ...``)."""
    global_args: list[Instruction] = []
    stages: list[dict] = []
    escape = "\\"
    for number, line, escape, heredocs in _logical_lines(text, path):
        instruction = _parse_instruction(line, number, escape, f"{path}:{number}", heredocs)
        if instruction.keyword == "FROM":
            stages.append(_new_stage(len(stages), instruction))
        elif stages:
            stages[-1]["instructions"].append(instruction)
        elif instruction.keyword == "ARG":
            global_args.append(instruction)
        else:
            raise ConvergeError(
                f"{path}:{number}: {instruction.keyword} before the first FROM: no build stage in current context"
            )
    if not stages:
        raise ConvergeError(f"{path}: no FROM instruction: the Dockerfile contains no stages to build")
    built = tuple(Stage(instructions=tuple(s.pop("instructions")), **s) for s in stages)
    return Dockerfile(path=path, global_args=tuple(global_args), stages=built, escape_token=escape)


def _new_stage(index: int, instruction: Instruction) -> dict:
    args = instruction.args
    return {
        "index": index,
        "name": args[2].lower() if len(args) == 3 else None,
        "base": args[0],
        "platform": instruction.flags.get("platform"),
        "instructions": [],
        "line": instruction.line,
    }


# ---------------------------------------------------------------------------
# Resolution (BuildKit frontend/dockerfile/dockerfile2llb)

_PROXY_ARGS = frozenset((
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
))
_BUILD_PLATFORM_ARGS = ("BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT")
_TARGET_PLATFORM_ARGS = ("TARGETPLATFORM", "TARGETOS", "TARGETOSVERSION", "TARGETARCH", "TARGETVARIANT")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SCP_LIKE_GIT = re.compile(r"[A-Za-z0-9_.\-]+@[A-Za-z0-9_.\-]+:")
_SAFE_TOKEN = re.compile(r"[^\s\"'\\\[\]=]+\Z")
_SAFE_FLAG_VALUE = re.compile(r"[^\s\"'\\]+\Z")


def _placeholder(name: str) -> str:
    return "${%s}" % name


def _automatic_args(platform: str | None, target: str, build_args: dict[str, str]) -> dict[str, str]:
    """BuildKit's predefined platform ARGs plus TARGETSTAGE.

    The build platform depends on the machine, so BUILD* stay symbolic (``${BUILDARCH}``);
    TARGET* are real only when ``platform`` is given. Build args override any of them.
    """
    values = {name: _placeholder(name) for name in _BUILD_PLATFORM_ARGS + _TARGET_PLATFORM_ARGS}
    if platform:
        os_name, rest = (platform.lower().split("/", 1) + [""])[:2]
        arch, variant = (rest.split("/", 1) + [""])[:2]
        values.update(TARGETPLATFORM=platform.lower(), TARGETOS=os_name, TARGETOSVERSION="",
                      TARGETARCH=arch, TARGETVARIANT=variant)
    values["TARGETSTAGE"] = target or "default"
    values.update((k, v) for k, v in build_args.items() if k in values)
    return values


def _render_token(token: str) -> str:
    return token if _SAFE_TOKEN.match(token) else json.dumps(token, ensure_ascii=False)


def _render_args(args) -> str:
    return " ".join(_render_token(a) for a in args)


def _render_pairs(pairs) -> str:
    return " ".join(f"{_render_token(k)}={_render_token(v)}" for k, v in pairs)


def _render_flag_value(value: str) -> str:
    return value if _SAFE_FLAG_VALUE.match(value) else json.dumps(value, ensure_ascii=False)


def _render(keyword: str, flags: list[tuple[str, str]], body: str) -> str:
    """``KEYWORD --flag=value... body``, flags sorted by name (repeats keep their order)."""
    ordered = sorted(flags, key=lambda flag: flag[0])
    parts = [keyword] + [f"--{name}={_render_flag_value(value)}" for name, value in ordered]
    if body:
        parts.append(body)
    return " ".join(parts)


def _flag_items(instruction: Instruction) -> list[tuple[str, str]]:
    items = list(instruction.flags.items())
    for name, values in instruction.repeated_flags.items():
        items.extend((name, value) for value in values)
    return items


def _command_body(instruction: Instruction) -> str:
    """RUN/CMD/ENTRYPOINT/SHELL body as written: JSON for the exec form, text otherwise."""
    if instruction.json_form:
        return json.dumps(list(instruction.args), ensure_ascii=False)
    return instruction.args[0] if instruction.args else ""


def _raw_text(instruction: Instruction) -> str:
    """Canonical text of an instruction BuildKit does not expand."""
    keyword = instruction.keyword
    if keyword == "HEALTHCHECK":
        kind = instruction.args[0].upper()
        command = Instruction(keyword, {}, instruction.args[1:], instruction.json_form, 0, "")
        return _render(keyword, _flag_items(instruction), " ".join(filter(None, (kind, _command_body(command)))))
    if keyword in _JSON_OR_TEXT:
        return _render(keyword, _flag_items(instruction), _command_body(instruction))
    if keyword == "ONBUILD":
        # The trigger is kept as written (keyword upper-cased, flags sorted): it runs, and is
        # expanded, in the stages built FROM this one.
        written, flag_words, rest = _split_instruction(instruction.args[0], "\\")
        return " ".join(filter(None, ["ONBUILD", written.upper(), *sorted(flag_words), rest]))
    return _render(keyword, _flag_items(instruction), " ".join(instruction.args))


def _mount_fields(mount: str, where: str) -> dict[str, str | None]:
    """The fields of a ``--mount`` value (CSV, keys lower-cased; None for a bare ``ro``)."""
    fields: dict[str, str | None] = {}
    for item in _csv_fields(mount, where):
        key, has_value, value = item.partition("=")
        fields[key.lower()] = value if has_value else None
    return fields


def _csv_fields(text: str, where: str) -> list[str]:
    """One CSV record (``encoding/csv`` rules: fields may be double-quoted, ``""`` escapes)."""
    fields: list[str] = []
    i = 0
    while True:
        if text.startswith('"', i):
            value, i = _quoted_csv_field(text, i + 1, where)
        else:
            end = text.find(",", i)
            end = len(text) if end < 0 else end
            value, i = text[i:end], end
        fields.append(value)
        if i >= len(text):
            return fields
        i += 1


def _quoted_csv_field(text: str, i: int, where: str) -> tuple[str, int]:
    value = []
    while i < len(text):
        if text[i] == '"':
            if text.startswith('""', i):
                value.append('"')
                i += 2
                continue
            return "".join(value), i + 1
        value.append(text[i])
        i += 1
    raise ConvergeError(f"{where}: failed to parse csv mounts: extraneous or missing \" in quoted-field")


def _is_remote(source: str) -> bool:
    """ADD sources BuildKit fetches instead of reading the context (HTTP(S) URLs, Git refs)."""
    return source.startswith(("http://", "https://", "git://", "ssh://", "git@")) or bool(
        _SCP_LIKE_GIT.match(source)
    )


def _context_pattern(source: str) -> str:
    """Where a source points in the context: BuildKit joins it onto ``/`` and cleans it."""
    return clean_path("/" + source).lstrip("/") or "."


class _StageState:
    """A stage's variables: ``env`` is what expansion and RUN see (ARG and ENV values, the
    later winning), ``image_env`` only the ENV values that go into the image config."""

    def __init__(self, image_env: dict[str, str], image_env_unknown: bool):
        self.env = dict(image_env)
        self.image_env = image_env
        self.image_env_unknown = image_env_unknown

    def child(self) -> _StageState:
        """A stage built FROM this one starts from its variables, then BuildKit applies the
        image config's environment again, so ENV values beat ARG values of the same name."""
        state = _StageState(dict(self.image_env), self.image_env_unknown)
        state.env = {**self.env, **self.image_env}
        return state


class _Resolution:
    """One ``resolve()`` call: the global ARGs, and what the needed stages have used so far."""

    def __init__(self, dockerfile: Dockerfile, build_args: dict[str, str], automatic: dict[str, str]):
        self.dockerfile = dockerfile
        self.path = dockerfile.path
        self.build_args = {k: v for k, v in build_args.items() if k not in _PROXY_ARGS}
        self.automatic = automatic
        self.symbolic = {k for k, v in automatic.items() if v == _placeholder(k)}
        self.lexer = _Lexer(dockerfile.escape_token)
        self.names = _StageNames(dockerfile.stages)
        self.global_env, self.global_deps, self.global_values = self._global_args()
        self.used_args: dict[str, str | None] = {}
        self.external: list[str] = []
        self.context_sources: list[ContextSource] = []
        self.remote_sources: list[str] = []

    # -- expansion

    def expand(self, word: str, env: dict[str, str], where: str) -> _Expansion:
        try:
            return self.lexer.process(word, env.get)
        except _LexError as error:
            raise ConvergeError(f"{where}: failed to process {word!r}: {error}") from None

    def _global_args(self):
        """``buildMetaArgs``: evaluate the ARGs before the first FROM, in order."""
        env = dict(self.automatic)
        deps: dict[str, set[str]] = {}
        values: dict[str, str | None] = {}
        for instruction in self.dockerfile.global_args:
            where = f"{self.path}:{instruction.line}"
            for name, default in _arg_pairs(instruction):
                value, deps[name] = self._global_value(name, default, env, deps, where)
                values[name] = value
                if value is not None:
                    env[name] = value
        return env, deps, values

    def _global_value(self, name, default, env, deps, where):
        if name in self.build_args:
            return self.build_args[name], set()
        if default is None:
            return None, set()
        expansion = self.expand(default, env, where)
        found = expansion.matched - {name}
        if name in expansion.matched:
            found |= deps.get(name, set())
        return expansion.result, found

    def use_global(self, names: set[str]) -> None:
        """Record global ARGs a FROM line used, with the ARGs their defaults used."""
        todo = sorted(names)
        while todo:
            name = todo.pop(0)
            if name in self.used_args or (name in self.automatic and name not in self.build_args):
                continue
            if name in self.global_values:
                self.used_args[name] = self.global_values[name]
                todo.extend(sorted(self.global_deps.get(name, ())))
            elif name in self.automatic:
                self.used_args[name] = self.build_args[name]

    def add_external(self, image: str) -> None:
        if image != "scratch" and image not in self.external:
            self.external.append(image)


def _arg_pairs(instruction: Instruction):
    for word in instruction.args:
        name, has_value, value = word.partition("=")
        yield name, (value if has_value else None)


@dataclass
class _Plan:
    """A stage with its FROM line expanded and the stages it depends on."""

    stage_where: str
    stage: Stage
    base: str
    platform: str | None
    base_stage: int | None
    uses: set[str]
    triggers: tuple[Instruction, ...] = ()
    deps: set[int] = field(default_factory=set)
    # --from and mount stages of the stage's own instructions, later ones included
    references: set[int] = field(default_factory=set)
    # BuildKit only fails on a COPY --from of a later stage when it builds that stage.
    forward_references: list[str] = field(default_factory=list)


class _StageNames:
    """Stage lookup for ``--from``, ``--mount from=`` and the target, as BuildKit does it: every
    stage, case-insensitively, a later stage winning over an earlier one of the same name.
    (A FROM line only sees the stages above it, by exact name: see ``_plan_stages``.)"""

    def __init__(self, stages: tuple[Stage, ...]):
        self.all = {s.name: s.index for s in stages if s.name}

    def lookup(self, name: str) -> int | None:
        return self.all.get(name.lower())


def resolve(dockerfile: Dockerfile, target: str | None, build_args: dict[str, str], *,
            platform: str | None = None) -> ResolvedBuild:
    """What building ``target`` (a stage name, or None for the last stage) depends on.

    ``build_args`` are the ``--build-arg`` values; proxy variables (HTTP_PROXY, ...) among them
    are ignored, as Docker keeps them out of the cache. ``platform`` (``os/arch[/variant]``)
    gives TARGETPLATFORM, TARGETOS, TARGETARCH and TARGETVARIANT real values; without it they
    expand to ``${NAME}`` placeholders, as BUILDPLATFORM and friends always do.

    ``used_args`` lists every ARG declared in scope in a needed stage (and every global ARG a
    needed FROM line uses), with the build arg's value, else the default, else None. A build arg
    no such ARG declares is not listed: it cannot affect the build.
    """
    target_index = _target_index(dockerfile, target)
    target_name = dockerfile.stages[target_index].name or ""
    resolution = _Resolution(dockerfile, build_args, _automatic_args(platform, target or target_name, build_args))
    plans = _plan_stages(dockerfile, resolution)
    needed = _needed_stages(plans, target_index)
    states: dict[int, _StageState] = {}
    resolved = []
    for index in needed:
        plan = plans[index]
        if plan.forward_references:
            raise ConvergeError(plan.forward_references[0])
        resolution.use_global(plan.uses)
        resolved.append(_resolve_stage(resolution, plan, states))
    return ResolvedBuild(
        target=target_index,
        stages=tuple(resolved),
        used_args=resolution.used_args,
        context_sources=tuple(resolution.context_sources),
        remote_sources=tuple(resolution.remote_sources),
        external_images=tuple(resolution.external),
    )


def _target_index(dockerfile: Dockerfile, target: str | None) -> int:
    if target is None:
        return len(dockerfile.stages) - 1
    index = _StageNames(dockerfile.stages).lookup(target)
    if index is None:
        names = ", ".join(s.name for s in dockerfile.stages if s.name) or "none"
        raise ConvergeError(
            f"{dockerfile.path}: target stage {target!r} could not be found (named stages: {names})",
            target=target,
        )
    return index


def _plan_stages(dockerfile: Dockerfile, resolution: _Resolution) -> list[_Plan]:
    names = _StageNames(dockerfile.stages)
    plans: list[_Plan] = []
    earlier: dict[str, int] = {}
    for stage in dockerfile.stages:
        plan = _plan_stage(stage, resolution, earlier)
        plans.append(plan)
        if stage.name:
            earlier[stage.name] = stage.index
    for plan in plans:
        if plan.base_stage is not None:
            plan.triggers = _triggers(plans[plan.base_stage].stage, dockerfile.path)
            plan.deps.add(plan.base_stage)
        for instruction in plan.stage.instructions:
            plan.references.update(_add_instruction_deps(plan, instruction, names, dockerfile))
    _reject_cycles(plans)
    for plan in plans:
        for instruction in plan.triggers:
            _add_instruction_deps(plan, instruction, names, dockerfile)
    return plans


def _reject_cycles(plans: list[_Plan]) -> None:
    """BuildKit refuses a Dockerfile whose --from references loop, needed stage or not."""
    done: set[int] = set()

    def visit(index: int, path: set[int]) -> bool:
        if index in done:
            return False
        done.add(index)
        path.add(index)
        for reference in plans[index].references:
            if reference in path or visit(reference, path):
                return True
        path.discard(index)
        return False

    for plan in plans:
        if visit(plan.stage.index, set()):
            name = plan.stage.name or f"stage-{plan.stage.index}"
            raise ConvergeError(f"{plan.stage_where}: circular dependency detected on stage: {name}")


def _plan_stage(stage: Stage, resolution: _Resolution, earlier: dict[str, int]) -> _Plan:
    where = f"{resolution.path}:{stage.line}"
    base = resolution.expand(stage.base, resolution.global_env, where)
    if not base.result:
        raise ConvergeError(f"{where}: base name ({stage.base}) should not be blank")
    uses = set(base.matched)
    platform = None
    if stage.platform is not None:
        expanded = resolution.expand(stage.platform, resolution.global_env, where)
        if not expanded.result:
            raise ConvergeError(f"{where}: empty platform value from expression {stage.platform}")
        platform = expanded.result
        uses |= expanded.matched
    return _Plan(where, stage, base.result, platform, earlier.get(base.result), uses)


def _triggers(parent: Stage, path: str) -> tuple[Instruction, ...]:
    """A parent stage's ONBUILD instructions, parsed as the child will run them."""
    return tuple(
        _parse_instruction(i.args[0], i.line, "\\", f"{path}:{i.line}") for i in parent.instructions
        if i.keyword == "ONBUILD"
    )


def _add_instruction_deps(plan: _Plan, instruction: Instruction, names: _StageNames,
                          dockerfile: Dockerfile) -> set[int]:
    """Add the stages ``instruction`` reads to ``plan``; returns their indexes."""
    where = f"{dockerfile.path}:{instruction.line}"
    found_all = set()
    for reference in _stage_references(instruction, where):
        found = _stage_reference(reference, names, instruction.keyword, where, len(dockerfile.stages))
        if found is None:
            continue
        found_all.add(found)
        if found >= plan.stage.index:
            plan.forward_references.append(
                f"{where}: cannot copy from stage {reference!r}, it needs to be defined before the current stage"
            )
        else:
            plan.deps.add(found)
    return found_all


def _stage_references(instruction: Instruction, where: str) -> list[str]:
    if instruction.keyword == "COPY" and "from" in instruction.flags:
        source = instruction.flags["from"]
        if _Lexer().process(source, lambda _: "").result != source:
            raise ConvergeError(
                f"{where}: variable expansion is not supported for --from, define a new stage with FROM "
                "using ARG from global scope as a workaround"
            )
        return [source]
    if instruction.keyword == "RUN":
        mounts = (_mount_fields(m, where) for m in instruction.repeated_flags.get("mount", ()))
        return [fields["from"] for fields in mounts if fields.get("from")]
    return []


def _stage_reference(reference: str, names: _StageNames, keyword: str, where: str, count: int) -> int | None:
    """Stage index a ``--from`` names, or None for an image. COPY also takes an index."""
    if keyword == "COPY" and re.fullmatch(r"[+-]?\d+", reference):
        if not 0 <= int(reference) < count:
            raise ConvergeError(f"{where}: invalid stage index {int(reference)}")
        return int(reference)
    return names.lookup(reference)


def _needed_stages(plans: list[_Plan], target: int) -> list[int]:
    needed = set()
    todo = [target]
    while todo:
        index = todo.pop()
        if index not in needed:
            needed.add(index)
            todo.extend(plans[index].deps)
    return sorted(needed)


def _resolve_stage(resolution: _Resolution, plan: _Plan, states: dict[int, _StageState]) -> ResolvedStage:
    if plan.base_stage is not None:
        state = states[plan.base_stage].child()
    else:
        resolution.add_external(plan.base)
        scratch = plan.base == "scratch"
        state = _StageState({"PATH": _DEFAULT_PATH} if scratch else {}, image_env_unknown=not scratch)
    stage_resolver = _StageResolver(resolution, plan, state)
    texts = tuple(stage_resolver.instruction_text(i) for i in plan.triggers + plan.stage.instructions)
    states[plan.stage.index] = state
    return ResolvedStage(
        name=plan.stage.name,
        index=plan.stage.index,
        base=plan.base,
        base_stage=plan.base_stage,
        instructions=texts,
        platform=plan.platform,
    )


class _StageResolver:
    """Walks one stage's instructions, tracking variables as BuildKit's dispatcher does."""

    def __init__(self, resolution: _Resolution, plan: _Plan, state: _StageState):
        self.resolution = resolution
        self.plan = plan
        self.state = state
        self.where = ""

    def instruction_text(self, instruction: Instruction) -> str:
        """Canonical text of ``instruction``, updating the stage's variables on the way."""
        self.where = f"{self.resolution.path}:{instruction.line}"
        handlers = {
            "ARG": self._arg, "ENV": self._env, "LABEL": self._label, "EXPOSE": self._expose,
            "USER": self._single_expanded, "WORKDIR": self._single_expanded,
            "STOPSIGNAL": self._single_expanded, "VOLUME": self._volume,
            "COPY": self._copy, "ADD": self._copy, "RUN": self._run,
        }
        handler = handlers.get(instruction.keyword)
        text = handler(instruction) if handler else _raw_text(instruction)
        # the here-documents' content is part of what the instruction does (ARG values are inputs anyway)
        for heredoc in instruction.heredocs:
            text += f"\n<<{'-' if heredoc.chomp else ''}{heredoc.name}{'' if heredoc.expand else ' (literal)'}\n" \
                    f"{heredoc.content}{heredoc.name}"
        return text

    def _expand(self, word: str) -> str:
        return self.resolution.expand(word, self.state.env, self.where).result

    def _expand_all(self, words) -> list[str]:
        return [self._expand(w) for w in words]

    def _arg(self, instruction: Instruction) -> str:
        """Each ARG takes the build arg, else its default expanded, else the global value.
        The text shows the default (expanded unless a build arg overrides it)."""
        rendered = []
        for name, default in _arg_pairs(instruction):
            value, shown = self._arg_value(name, default)
            if value is not None:
                self.state.env[name] = value
            self._record_arg(name, value)
            rendered.append(_render_token(name) if shown is None else f"{_render_token(name)}={_render_token(shown)}")
        return _render("ARG", [], " ".join(rendered))

    def _arg_value(self, name: str, default: str | None) -> tuple[str | None, str | None]:
        resolution = self.resolution
        if name in resolution.build_args:
            return resolution.build_args[name], default
        if default is not None:
            expanded = self._expand(default)
            return expanded, expanded
        # Inherits the global value, and with it the build args that value was made from.
        resolution.use_global(resolution.global_deps.get(name, set()))
        return resolution.global_env.get(name), None

    def _record_arg(self, name: str, value: str | None) -> None:
        resolution = self.resolution
        if name in _PROXY_ARGS:
            return
        if name in resolution.automatic and name not in resolution.build_args:
            return
        resolution.used_args.setdefault(name, value)

    def _env(self, instruction: Instruction) -> str:
        pairs = [(self._expand(k), self._expand(v)) for k, v in (a.split("=", 1) for a in instruction.args)]
        self.state.env.update(pairs)
        self.state.image_env.update(pairs)
        return _render("ENV", [], _render_pairs(pairs))

    def _label(self, instruction: Instruction) -> str:
        pairs = [(self._expand(k), self._expand(v)) for k, v in (a.split("=", 1) for a in instruction.args)]
        return _render("LABEL", [], _render_pairs(pairs))

    def _expose(self, instruction: Instruction) -> str:
        ports = []
        for word in instruction.args:
            ports.extend(self.resolution.expand(word, self.state.env, self.where).words)
        return _render("EXPOSE", [], _render_args(ports))

    def _single_expanded(self, instruction: Instruction) -> str:
        return _render(instruction.keyword, [], _render_token(self._expand(instruction.args[0])))

    def _volume(self, instruction: Instruction) -> str:
        return _render("VOLUME", [], _render_args(self._expand_all(instruction.args)))

    def _copy(self, instruction: Instruction) -> str:
        flags = []
        for name, value in _flag_items(instruction):
            expand = name in ("chown", "chmod", "checksum")
            flags.append((name, self._expand(value) if expand else value))
        expansions = [self.resolution.expand(a, self.state.env, self.where) for a in instruction.args]
        args = [e.result for e in expansions]
        if "from" in instruction.flags:
            self._copy_from_image(instruction.flags["from"])
        else:
            sources = [e for a, e in zip(instruction.args[:-1], expansions[:-1]) if not _heredoc_word(a)]
            self._record_sources(instruction, sources)
        return _render(instruction.keyword, flags, _render_args(args))

    def _copy_from_image(self, reference: str) -> None:
        stages = len(self.resolution.dockerfile.stages)
        if _stage_reference(reference, self.resolution.names, "COPY", self.where, stages) is None:
            self.resolution.add_external(reference)

    def _record_sources(self, instruction: Instruction, expansions: list[_Expansion]) -> None:
        local = []
        unresolved: set[str] = set()
        for expansion in expansions:
            if _is_remote(expansion.result):
                if instruction.keyword != "ADD":
                    raise ConvergeError(f"{self.where}: source can't be a URL or Git ref for COPY: {expansion.result}")
                self.resolution.remote_sources.append(expansion.result)
                continue
            local.append(_context_pattern(expansion.result))
            unresolved |= self._unresolved(expansion)
        if local:
            self.resolution.context_sources.append(ContextSource(
                stage=self.plan.stage.index,
                line=instruction.line,
                keyword=instruction.keyword,
                patterns=tuple(local),
                excludes=instruction.repeated_flags.get("exclude", ()),
                parents=instruction.flags.get("parents") == "true",
                unresolved_vars=tuple(sorted(unresolved)),
            ))

    def _unresolved(self, expansion: _Expansion) -> set[str]:
        names = {n for n in self.resolution.symbolic if _placeholder(n) in expansion.result}
        if self.state.image_env_unknown:
            names |= expansion.unmatched
        return names

    def _run(self, instruction: Instruction) -> str:
        flags = list(instruction.flags.items())
        for mount in instruction.repeated_flags.get("mount", ()):
            flags.append(("mount", self._run_mount(instruction, mount)))
        flags.extend(("device", value) for value in instruction.repeated_flags.get("device", ()))
        return _render("RUN", flags, _command_body(instruction))

    def _run_mount(self, instruction: Instruction, mount: str) -> str:
        """Expand each field of a ``--mount`` and note what it reads."""
        raw = _mount_fields(mount, self.where)
        fields = {key: None if value is None else self._expand(value) for key, value in raw.items()}
        kind = (fields.get("type") or "bind").lower()
        source_stage = raw.get("from") or ""
        if source_stage:
            if self.resolution.names.lookup(source_stage) is None:
                self.resolution.add_external(source_stage)
        elif kind == "bind":
            source = raw.get("source") or raw.get("src") or ""
            expansion = self.resolution.expand(source, self.state.env, self.where)
            self.resolution.context_sources.append(ContextSource(
                stage=self.plan.stage.index,
                line=instruction.line,
                keyword="RUN",
                patterns=(_context_pattern(expansion.result),),
                unresolved_vars=tuple(sorted(self._unresolved(expansion))),
            ))
        return ",".join(key if value is None else f"{key}={value}" for key, value in sorted(fields.items()))
