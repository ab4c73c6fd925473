# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Path matching as Docker does it: ``.dockerignore`` patterns and COPY/ADD sources.

Three matchers live here, each a port of the Go code Docker runs:

* :func:`glob_match` is Go's ``path/filepath.Match`` (``*`` and ``?`` never match ``/``).
* :class:`DockerIgnore` is ``moby/patternmatcher`` fed by ``patternmatcher/ignorefile``,
  as BuildKit uses them to filter the build context.
* :func:`source_selects` is how BuildKit resolves a COPY/ADD source against the context
  (``tonistiigi/fsutil`` ``copy.ResolveWildcards``; with ``COPY --parents`` the source is an
  include pattern with ``patternmatcher`` semantics instead).

Besides matching a path, every matcher can answer "could anything at or below this directory
match?", which lets a caller walk Git trees lazily and take a directory's tree id whole.
Those answers are conservative: they may say "maybe" when nothing matches, never the reverse.

Paths are relative to the build context, ``/``-separated, without a leading ``/``.
"""

from __future__ import annotations

import functools
import re

from dataclasses import dataclass

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError


class _BadPattern(Exception):
    """Go's ``filepath.ErrBadPattern``."""


# ---------------------------------------------------------------------------
# Path helpers


def clean_path(path: str) -> str:
    """Go's ``path.Clean``: drop empty and ``.`` elements, resolve ``..`` lexically."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append(part)
            continue
        parts.append(part)
    joined = "/".join(parts)
    if rooted:
        return "/" + joined
    return joined or "."


def _self_and_ancestors(path: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b", "a/b/c"]``; the context root itself is never listed."""
    if path in ("", "."):
        return []
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _relative_path(path: str) -> str:
    """Normalise a caller's path; the context root becomes ``""``."""
    cleaned = clean_path(path.strip("/")) if path else "."
    return "" if cleaned == "." else cleaned


# ---------------------------------------------------------------------------
# Go path/filepath.Match


def has_glob(pattern: str) -> bool:
    """True if the COPY source contains an unescaped ``*``, ``?`` or ``[`` (fsutil's test)."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] in "*?[":
            return True
        i += 1
    return False


def glob_match(pattern: str, name: str) -> bool:
    """Go ``filepath.Match(pattern, name)`` on a Unix host.

    ``*`` matches any run of non-``/`` characters, ``?`` one non-``/`` character,
    ``[...]`` a class (ranges, ``^`` negation; a class may match ``/``), ``\\`` escapes.
    A malformed pattern raises :class:`ConvergeError` where Go returns ``ErrBadPattern``
    (Go stops looking once the name cannot match, so a bad tail may go unnoticed).
    """
    try:
        return _match(pattern, name)
    except _BadPattern:
        raise ConvergeError(f"syntax error in pattern {pattern!r}", pattern=pattern) from None


def _match(pattern: str, name: str) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name
        rest, ok = _match_chunk(chunk, name)
        if ok and (not rest or pattern):
            name = rest
            continue
        if star:
            rest = _match_after_star(chunk, name, last_chunk=not pattern)
            if rest is not None:
                name = rest
                continue
        return False
    return not name


def _match_after_star(chunk: str, name: str, last_chunk: bool) -> str | None:
    """Skip 1..n leading non-``/`` characters of ``name`` until ``chunk`` matches."""
    i = 0
    while i < len(name) and name[i] != "/":
        rest, ok = _match_chunk(chunk, name[i + 1:])
        if ok and not (last_chunk and rest):
            return rest
        i += 1
    return None


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif char == "[":
            in_range = True
        elif char == "]":
            in_range = False
        elif char == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, text: str) -> tuple[str, bool]:
    """Match ``chunk`` (no ``*``) at the start of ``text``; returns (rest, matched)."""
    failed = False
    i = 0
    while i < len(chunk):
        if not failed and not text:
            failed = True
        char = chunk[i]
        if char == "[":
            current = None if failed else text[0]
            if not failed:
                text = text[1:]
            in_class, i = _match_class(chunk, i + 1, current)
            failed = failed or not in_class
        elif char == "?":
            if not failed:
                failed = text[0] == "/"
                text = text[1:]
            i += 1
        else:
            if char == "\\":
                i += 1
                if i >= len(chunk):
                    raise _BadPattern()
            if not failed:
                failed = chunk[i] != text[0]
                text = text[1:]
            i += 1
    return ("", False) if failed else (text, True)


def _match_class(chunk: str, i: int, current: str | None) -> tuple[bool, int]:
    """Parse the class starting after ``[`` at ``chunk[i]``; returns (matched, index after ``]``)."""
    negated = i < len(chunk) and chunk[i] == "^"
    if negated:
        i += 1
    matched = False
    ranges = 0
    while True:
        if i < len(chunk) and chunk[i] == "]" and ranges:
            return matched != negated, i + 1
        low, i = _class_char(chunk, i)
        high = low
        if chunk[i] == "-":
            high, i = _class_char(chunk, i + 1)
        if current is not None and low <= current <= high:
            matched = True
        ranges += 1


def _class_char(chunk: str, i: int) -> tuple[str, int]:
    """Go ``getEsc``: one possibly escaped class character; something must follow it."""
    if i >= len(chunk) or chunk[i] in "-]":
        raise _BadPattern()
    if chunk[i] == "\\":
        i += 1
        if i >= len(chunk):
            raise _BadPattern()
    if i + 1 >= len(chunk):
        raise _BadPattern()
    return chunk[i], i + 1


# ---------------------------------------------------------------------------
# A small automaton over pattern tokens: it answers "could a path starting with this prefix
# match?", which Python's re cannot. Token kinds:
#   ("lit", c)               the character c
#   ("one",)                 any character but "/"            (glob ?, regex [^/])
#   ("star",)                any run of non-"/" characters   (glob *, regex [^/]*)
#   ("dirs",)                (.*/)? -- zero or more leading directories
#   ("any",)                 .* at the end of a pattern
#   ("class", neg, ranges)   a bracket expression
#   ("rep", token)           zero or more characters each accepted by token (Go: [[^/]* and the like)


def _parse_class(pattern: str, i: int, strict: bool = False) -> tuple[tuple, int]:
    """Bracket expression at ``pattern[i] == "["``; ``strict`` also rejects reversed ranges,
    as Go's regexp does for ``.dockerignore`` patterns."""
    i += 1
    negated = pattern[i] == "^"
    if negated:
        i += 1
    ranges = []
    while not (pattern[i] == "]" and ranges):
        low, i = _class_char(pattern, i)
        high = low
        if pattern[i] == "-":
            high, i = _class_char(pattern, i + 1)
        if strict and low > high:
            raise _BadPattern()
        ranges.append((low, high))
    return ("class", negated, tuple(ranges)), i + 1


def _glob_tokens(pattern: str) -> list[tuple]:
    tokens: list[tuple] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            tokens.append(("star",))
        elif char == "?":
            tokens.append(("one",))
        elif char == "[":
            token, i = _parse_class(pattern, i)
            tokens.append(token)
            continue
        else:
            if char == "\\":
                i += 1
            tokens.append(("lit", pattern[i]))
        i += 1
    return tokens


def _token_accepts(token: tuple, char: str) -> bool:
    kind = token[0]
    if kind == "lit":
        return char == token[1]
    if kind == "one":
        return char != "/"
    if kind == "class":
        return token[1] != any(low <= char <= high for low, high in token[2])
    return False


def _token_regex(token: tuple) -> str:
    """The Python regex accepting exactly what the automaton does for one token."""
    kind = token[0]
    if kind == "lit":
        return re.escape(token[1])
    if kind == "one":
        return "[^/]"
    if kind == "star":
        return "[^/]*"
    if kind == "dirs":
        return "(?:[^\\n]*/)?"
    if kind == "any":
        return "[^\\n]*"
    if kind == "rep":
        return f"(?:{_token_regex(token[1])})*"
    ranges = "".join(re.escape(low) if low == high else f"{re.escape(low)}-{re.escape(high)}"
                     for low, high in token[2])
    return f"[{'^' if token[1] else ''}{ranges}]"


class _Automaton:
    """NFA over tokens. A state is (token index, inside ``dirs``); index == len(tokens) accepts.

    Whole-path matching uses the equivalent compiled regex (C speed: a context may hold thousands of
    files); the state sets serve prefix questions (``viable_after``), which a regex cannot answer.
    """

    def __init__(self, tokens: list[tuple]):
        self.tokens = tokens
        self.regex = re.compile("".join(_token_regex(token) for token in tokens))

    def _closure(self, states: set) -> set:
        todo = list(states)
        while todo:
            index, inside = todo.pop()
            if inside or index == len(self.tokens):
                continue
            if self.tokens[index][0] in ("star", "dirs", "any", "rep"):
                skipped = (index + 1, False)
                if skipped not in states:
                    states.add(skipped)
                    todo.append(skipped)
        return states

    def _step(self, states: set, char: str) -> set:
        following: set = set()
        for index, inside in states:
            if index == len(self.tokens):
                continue
            kind = self.tokens[index][0]
            if kind == "dirs":
                # Go regexp "." does not match a newline.
                if char != "\n":
                    following.add((index, True))
                if char == "/":
                    following.add((index + 1, False))
            elif kind == "star":
                if char != "/":
                    following.add((index, False))
            elif kind == "any":
                if char != "\n":
                    following.add((index, False))
            elif kind == "rep":
                if _token_accepts(self.tokens[index][1], char):
                    following.add((index, False))
            elif _token_accepts(self.tokens[index], char):
                following.add((index + 1, False))
        return self._closure(following)

    def _run(self, text: str) -> set:
        states = self._closure({(0, False)})
        for char in text:
            if not states:
                break
            states = self._step(states, char)
        return states

    def accepts(self, text: str) -> bool:
        return self.regex.fullmatch(text) is not None

    def accepts_by_states(self, text: str) -> bool:
        """``accepts`` computed on the state sets (the reference the regex is tested against)."""
        return (len(self.tokens), False) in self._run(text)

    def viable_after(self, prefix: str) -> bool:
        """Could some longer text starting with ``prefix`` be accepted? (Conservative.)"""
        return bool(self._run(prefix))


# ---------------------------------------------------------------------------
# moby/patternmatcher


# patternmatcher means to escape .+()|{}$ but its bitmap (escapeBytes[b%8] & 1<<(b/8), a byte) drops every
# character from 64 up: "|", "{" and "}" reach the regexp raw, so "a|b" is an alternation.
_REGEX_ESCAPED = set(".+()$")


@dataclass(frozen=True)
class _Pattern:
    """One compiled ``patternmatcher.Pattern``.

    ``kind`` follows patternmatcher's optimisations, which change results and so are kept:
    ``exact`` (plain text), ``prefix`` (``foo/**``), ``suffix`` (a leading ``**`` followed by
    plain text: ``**.log`` matches every path ending in ``.log``, ``**/foo`` matches ``foo`` at
    any depth) and ``regex`` (everything else, matched by the automaton).
    """

    text: str
    exclusion: bool
    kind: str
    automaton: _Automaton | None
    regex: re.Pattern | None = None

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        return self.regex.search(path) is not None

    def may_match_below(self, dir_path: str) -> bool:
        """Could this pattern match some path strictly below ``dir_path`` (``""`` = root)?"""
        if not dir_path:
            return True
        below = dir_path + "/"
        if self.kind == "exact":
            return self.text.startswith(below)
        if self.kind == "prefix":
            prefix = self.text[:-2]
            return prefix.startswith(below) or below.startswith(prefix)
        if self.kind == "suffix" or self.automaton is None:
            return True
        return self.automaton.viable_after(below)

    def may_match_at_or_around(self, dir_path: str) -> bool:
        """Could it match ``dir_path``, one of its ancestors, or something below it?"""
        return any(self.matches(p) for p in _self_and_ancestors(dir_path)) or self.may_match_below(dir_path)


def _compile_pattern(text: str, exclusion: bool, strict: bool = False) -> _Pattern:
    """Port of ``Pattern.compile``: classify the pattern and, for a regexp, compile what Go compiles.

    patternmatcher turns the pattern into a Go regexp *source* (``*`` -> ``[^/]*``, ``?`` -> ``[^/]``,
    ``**`` -> ``(.*/)?``, ``[``/``]``/``\\x``/``^`` passed through) and Go's RE2 parser reads it: so
    ``[*]`` is the class ``[[^/]`` repeated and then a ``]``, ``\\d`` is a digit and ``[[:alpha:]]`` a
    letter. :class:`_Re2` reads the source as RE2 does. A regexp Go cannot compile raises _BadPattern
    (Go reports it when the pattern is first used; ``strict`` is kept for callers' clarity).
    """
    kind, automaton, regex = _compiled(text)
    return _Pattern(text=text, exclusion=exclusion, kind=kind, automaton=automaton, regex=regex)


@functools.lru_cache(maxsize=4096)
def _compiled(text: str) -> tuple:
    """(kind, automaton or None, Python regex or None) of a pattern; cached: the same patterns are
    compiled again and again (COPY --parents sources, the ignore files of several images)."""
    kind, source = _go_regex_source(text)
    if kind != "regex":
        return kind, None, None
    alternatives = _Re2(source).parse()
    tokens = _automaton_tokens(alternatives)
    return kind, _Automaton(tokens) if tokens is not None else None, re.compile(
        _python_alternatives(alternatives), re.ASCII)


def _go_regex_source(text: str) -> tuple[str, str]:
    """``Pattern.compile``'s match type and Go regexp source for ``text`` (Unix separator)."""
    reg = ["^"]
    kind = "exact"
    i = 0
    iteration = 0
    while i < len(text):
        char = text[i]
        i += 1
        if char == "*":
            if text[i:i + 1] == "*":
                i += 1
                if text[i:i + 1] == "/":
                    i += 1
                if i == len(text):
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        reg.append(".*")
                        kind = "regex"
                else:
                    reg.append("(.*/)?")
                    kind = "regex"
                if iteration == 0:
                    kind = "suffix"
            else:
                reg.append("[^/]*")
                kind = "regex"
        elif char == "?":
            reg.append("[^/]")
            kind = "regex"
        elif char in _REGEX_ESCAPED:
            reg.append("\\" + char)
        elif char == "\\":
            if i < len(text):
                reg.append("\\" + text[i])
                i += 1
                kind = "regex"
            else:
                reg.append("\\")
        elif char in "[]":
            reg.append(char)
            kind = "regex"
        else:
            reg.append(char)
        iteration += 1
    if kind == "regex":
        reg.append("$")
    return kind, "".join(reg)


# ---------------------------------------------------------------------------
# Go regexp/syntax (Perl flags, as regexp.Compile) for the sources patternmatcher writes.
# Nodes: ("char", ranges) one character in ranges ((lo, hi) code points, sorted, merged);
# ("assert", "begin" | "end" | "word" | "nonword"); ("group", nodes); ("rep", node, min, max).

_MAX_RUNE = 0x10FFFF
_PERL_CLASSES = {"d": ((48, 57),), "s": ((9, 10), (12, 13), (32, 32)),
                 "w": ((48, 57), (65, 90), (95, 95), (97, 122))}
_POSIX_CLASSES = {
    "alnum": ((48, 57), (65, 90), (97, 122)), "alpha": ((65, 90), (97, 122)), "ascii": ((0, 127),),
    "blank": ((9, 9), (32, 32)), "cntrl": ((0, 31), (127, 127)), "digit": ((48, 57),),
    "graph": ((33, 126),), "lower": ((97, 122),), "print": ((32, 126),),
    "punct": ((33, 47), (58, 64), (91, 96), (123, 126)), "space": ((9, 13), (32, 32)),
    "upper": ((65, 90),), "word": ((48, 57), (65, 90), (95, 95), (97, 122)),
    "xdigit": ((48, 57), (65, 70), (97, 102)),
}
_UNICODE_CACHE: dict[str, tuple] = {}


def _merge(ranges) -> tuple:
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple((low, high) for low, high in merged)


def _negate(ranges) -> tuple:
    result, start = [], 0
    for low, high in _merge(ranges):
        if low > start:
            result.append((start, low - 1))
        start = high + 1
    if start <= _MAX_RUNE:
        result.append((start, _MAX_RUNE))
    return tuple(result)


def _unicode_ranges(name: str) -> tuple:
    """Go's unicode tables by name: Any and the general categories (scripts are not supported)."""
    import unicodedata

    if name == "Any":
        return ((0, _MAX_RUNE),)
    found = _UNICODE_CACHE.get(name)
    if found is not None:
        return found
    if not (len(name) in (1, 2) and name[0] in "CLMNPSZ"):
        raise _BadPattern(f"Unicode class \\p{{{name}}} is not supported by berth.converge")
    ranges = []
    for code in range(_MAX_RUNE + 1):
        category = unicodedata.category(chr(code))
        if category == name or (len(name) == 1 and category[0] == name and category != "Cn"):
            ranges.append((code, code))
    if not ranges:
        raise _BadPattern(f"invalid character class range \\p{{{name}}}")
    _UNICODE_CACHE[name] = _merge(ranges)
    return _UNICODE_CACHE[name]


def _isalnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


class _Re2:
    """The part of Go's regexp/syntax parser that patternmatcher's sources can reach."""

    def __init__(self, source: str):
        self.t = source

    def parse(self) -> list:
        """The alternatives (lists of nodes) of the whole expression."""
        levels: list[list[list]] = [[[]]]      # per open group: its alternatives, the last one being built
        last_repeat = False
        while self.t:
            char = self.t[0]
            current = levels[-1][-1]
            repeat = False
            if char == "(":
                self.t = self.t[1:]
                levels.append([[]])
            elif char == ")":
                if len(levels) == 1:
                    raise _BadPattern("unexpected )")
                self.t = self.t[1:]
                alternatives = levels.pop()
                levels[-1][-1].append(("group", alternatives))
            elif char == "|":
                self.t = self.t[1:]
                levels[-1].append([])
            elif char in "*+?" or (char == "{" and _repeat_bounds(self.t) is not None):
                if char == "{":
                    low, high, self.t = _repeat_bounds(self.t)
                    if low < 0 or low > 1000 or (high is not None and (high > 1000 or low > high)):
                        raise _BadPattern("invalid repeat count")
                else:
                    self.t = self.t[1:]
                    low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
                if self.t.startswith("?"):   # non-greedy: the same set of whole matches
                    self.t = self.t[1:]
                if last_repeat:
                    raise _BadPattern("invalid nested repetition operator")
                if not current:
                    raise _BadPattern("missing argument to repetition operator")
                current[-1] = ("rep", current[-1], low, high)
                repeat = True
            elif char == "^":
                self.t = self.t[1:]
                current.append(("assert", "begin"))
            elif char == "$":
                self.t = self.t[1:]
                current.append(("assert", "end"))
            elif char == ".":
                self.t = self.t[1:]
                current.append(("char", _ANY_BUT_NEWLINE))
            elif char == "[":
                current.append(("char", self._class()))
            elif char == "\\":
                current.extend(self._backslash())
            else:
                self.t = self.t[1:]
                current.append(("char", ((ord(char), ord(char)),)))
            last_repeat = repeat
        if len(levels) != 1:
            raise _BadPattern("missing closing )")
        return levels[0]

    def _backslash(self) -> list:
        following = self.t[1:2]
        if following in ("A", "z"):
            self.t = self.t[2:]
            return [("assert", "begin" if following == "A" else "end")]
        if following in ("b", "B"):
            self.t = self.t[2:]
            return [("assert", "word" if following == "b" else "nonword")]
        if following == "C":
            raise _BadPattern("invalid escape sequence: \\C")
        if following == "Q":
            literal, _sep, rest = self.t[2:].partition("\\E")
            self.t = rest
            return [("char", ((ord(c), ord(c)),)) for c in literal]
        ranges = self._unicode_class() or self._perl_class()
        if ranges is not None:
            return [("char", ranges)]
        code = self._escape()
        return [("char", ((code, code),))]

    def _unicode_class(self):
        if not self.t.startswith(("\\p", "\\P")):
            return None
        negated = self.t[1] == "P"
        rest = self.t[2:]
        if rest[:1] != "{":
            name, self.t = rest[:1], rest[1:]
        else:
            end = rest.find("}")
            if end < 0:
                raise _BadPattern("invalid character class range")
            name, self.t = rest[1:end], rest[end + 1:]
        if name.startswith("^"):
            negated, name = not negated, name[1:]
        if not name:
            raise _BadPattern("invalid character class range")
        ranges = _unicode_ranges(name)
        return _negate(ranges) if negated else ranges

    def _perl_class(self):
        letter = self.t[1:2]
        if len(self.t) < 2 or letter.lower() not in _PERL_CLASSES:
            return None
        self.t = self.t[2:]
        ranges = _PERL_CLASSES[letter.lower()]
        return _negate(ranges) if letter.isupper() else ranges

    def _escape(self) -> int:
        """parseEscape: one escaped character at ``self.t`` (which starts with a backslash)."""
        t = self.t[1:]
        if not t:
            raise _BadPattern("trailing backslash at end of expression")
        char, t = t[0], t[1:]
        if char.isascii() and not _isalnum(char):
            self.t = t
            return ord(char)
        if char in "1234567" and (not t or t[0] not in "01234567"):
            raise _BadPattern("invalid escape sequence")
        if char in "01234567":
            code = ord(char) - 48
            for _digit in range(2):
                if not t or t[0] not in "01234567":
                    break
                code, t = code * 8 + ord(t[0]) - 48, t[1:]
            self.t = t
            return code
        if char == "x":
            if t[:1] == "{":
                end = t.find("}")
                digits = t[1:end] if end > 0 else ""
                if not digits or any(d not in "0123456789abcdefABCDEF" for d in digits) or \
                        int(digits, 16) > _MAX_RUNE:
                    raise _BadPattern("invalid escape sequence")
                self.t = t[end + 1:]
                return int(digits, 16)
            digits = t[:2]
            if len(digits) < 2 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise _BadPattern("invalid escape sequence")
            self.t = t[2:]
            return int(digits, 16)
        simple = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
        if char in simple:
            self.t = t
            return simple[char]
        raise _BadPattern("invalid escape sequence")

    def _class(self) -> tuple:
        self.t = self.t[1:]
        negated = self.t.startswith("^")
        if negated:
            self.t = self.t[1:]
        ranges: list = []
        first = True
        while not self.t or self.t[0] != "]" or first:
            first = False
            if len(self.t) > 2 and self.t.startswith("[:"):
                end = self.t.find(":]", 2)
                if end >= 0:
                    name = self.t[2:end]
                    self.t = self.t[end + 2:]
                    group_negated = name.startswith("^")
                    group = _POSIX_CLASSES.get(name[1:] if group_negated else name)
                    if group is None:
                        raise _BadPattern("invalid character class range")
                    ranges.extend(_negate(group) if group_negated else group)
                    continue
            found = self._unicode_class() if self.t.startswith("\\") else None
            if found is None and self.t.startswith("\\"):
                found = self._perl_class()
            if found is not None:
                ranges.extend(found)
                continue
            low = self._class_char()
            high = low
            if len(self.t) >= 2 and self.t[0] == "-" and self.t[1] != "]":
                self.t = self.t[1:]
                high = self._class_char()
                if high < low:
                    raise _BadPattern("invalid character class range")
            ranges.append((low, high))
        self.t = self.t[1:]
        return _negate(ranges) if negated else _merge(ranges)

    def _class_char(self) -> int:
        if not self.t:
            raise _BadPattern("missing closing ]")
        if self.t[0] == "\\":
            return self._escape()
        char, self.t = self.t[0], self.t[1:]
        return ord(char)


def _repeat_bounds(text: str):
    """Go parseRepeat: (min, max or None, rest) of ``{n}``, ``{n,}``, ``{n,m}`` at the start of ``text``;
    None when it is not one (then ``{`` is a literal). An over-large number gives -1."""
    found = re.match(r"\{(0|[1-9][0-9]*|0[0-9]+)(?:(,)([0-9]*))?\}", text)
    if found is None:
        return None
    low_text, comma, high_text = found.groups()

    def number(digits):
        if len(digits) >= 2 and digits[0] == "0":
            return None
        return -1 if len(digits) > 9 else int(digits)

    low = number(low_text)
    high = low if not comma else (None if high_text == "" else number(high_text))
    if low is None or (comma and high_text and high is None):
        return None
    if high is not None and high < 0:
        low = -1
    return low, high, text[found.end():]


def _python_alternatives(alternatives: list) -> str:
    return "|".join(_python_regex(nodes) for nodes in alternatives)


def _python_regex(nodes: list) -> str:
    """The Python ``re`` source (compiled with re.ASCII) matching what Go's regexp does for ``nodes``."""
    out = []
    for node in nodes:
        kind = node[0]
        if kind == "char":
            out.append(_python_class(node[1]))
        elif kind == "assert":
            out.append({"begin": "\\A", "end": "\\Z", "word": "\\b", "nonword": "\\B"}[node[1]])
        elif kind == "group":
            out.append(f"(?:{_python_alternatives(node[1])})")
        else:
            _rep, inner, low, high = node
            body = _python_regex([inner])
            out.append(f"(?:{body}){{{low},{'' if high is None else high}}}")
    return "".join(out)


def _python_class(ranges: tuple) -> str:
    if not ranges:
        return "(?!)"
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return re.escape(chr(ranges[0][0]))
    negated = ranges[-1][1] == _MAX_RUNE   # written as [^...] of the complement: far cheaper to compile
    body = _negate(ranges) if negated else ranges
    return ("[^" if negated else "[") + "".join(
        "\\U%08x" % low if low == high else "\\U%08x-\\U%08x" % (low, high) for low, high in body) + "]"


_NOT_SLASH = _negate(((47, 47),))
_ANY_BUT_NEWLINE = ((0, 9), (11, _MAX_RUNE))


def _automaton_tokens(alternatives: list) -> list | None:
    """The automaton's tokens for the expression, or None when it cannot express them (then the prefix
    questions answer "maybe")."""
    if len(alternatives) != 1:
        return None
    body = list(alternatives[0])
    if body[:1] == [("assert", "begin")]:
        body = body[1:]
    if body[-1:] == [("assert", "end")]:
        body = body[:-1]
    tokens: list = []
    for index, node in enumerate(body):
        if node[0] == "char":
            tokens.append(_char_token(node[1]))
        elif node == ("rep", ("group", [[("rep", ("char", _ANY_BUT_NEWLINE), 0, None), ("char", ((47, 47),))]]), 0, 1):
            tokens.append(("dirs",))
        elif node == ("rep", ("char", _ANY_BUT_NEWLINE), 0, None) and index == len(body) - 1:
            tokens.append(("any",))
        elif node[0] == "rep" and node[1][0] == "char" and (node[2], node[3]) == (0, None):
            inner = _char_token(node[1][1])
            tokens.append(("star",) if inner == ("one",) else ("rep", inner))
        else:
            return None
    return tokens


def _char_token(ranges: tuple) -> tuple:
    if ranges == _NOT_SLASH:
        return ("one",)
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return ("lit", chr(ranges[0][0]))
    negated = ranges[-1][1] == _MAX_RUNE
    body = _negate(ranges) if negated else ranges
    return ("class", negated, tuple((chr(low), chr(high)) for low, high in body))


def _new_pattern(raw: str, where: str) -> _Pattern:
    """``patternmatcher.New`` for one line: trim, clean, split off ``!``, validate the syntax."""
    cleaned = clean_path(raw.strip())
    exclusion = cleaned.startswith("!")
    if exclusion:
        if len(cleaned) == 1:
            raise ConvergeError(f'{where}: illegal exclusion pattern: "!"')
        cleaned = cleaned[1:]
    try:
        _match(cleaned, ".")
        return _compile_pattern(cleaned, exclusion, strict=True)
    except (_BadPattern, IndexError):
        # Go reports some of these only when the pattern is first used; we report them upfront.
        raise ConvergeError(f"{where}: syntax error in pattern {raw!r}", pattern=raw) from None


def _ignorefile_lines(text: str):
    """``ignorefile.ReadAll``: yields (line number, normalised pattern) pairs."""
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if number == 1:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        yield number, ("!" + pattern) if invert else pattern


class DockerIgnore:
    """A parsed ``.dockerignore`` file.

    Parsing follows ``ignorefile.ReadAll``: a line starting with ``#`` in its first column is a
    comment, blank lines are skipped, surrounding whitespace is trimmed, ``!`` marks an
    exception, each pattern is cleaned like ``filepath.Clean`` and a leading ``/`` is dropped.
    Unlike ``.gitignore``, every pattern is anchored at the context root. A malformed pattern,
    or a lone ``!``, raises :class:`ConvergeError` naming ``path:line``.
    """

    def __init__(self, text: str, path: str = ".dockerignore"):
        self.path = path
        self._patterns = tuple(
            _new_pattern(pattern, f"{path}:{number}")
            for number, pattern in _ignorefile_lines(text)
            if pattern.strip()
        )
        self._parent_cache: dict[str, tuple] = {}

    @property
    def patterns(self) -> tuple[str, ...]:
        """The normalised patterns, exceptions prefixed with ``!``, in file order."""
        return tuple(("!" if p.exclusion else "") + p.text for p in self._patterns)

    def ignored(self, path: str) -> bool:
        """Would BuildKit leave ``path`` out of the build context?

        ``MatchesOrParentMatches``: a pattern matches a path when it matches the path itself or
        any of its parent directories; patterns are applied in order and the last one that
        matches decides (an exception ``!pat`` re-includes). The context root is never ignored.

        This is the patterns' verdict only. BuildKit honours it for the Dockerfile and
        ``.dockerignore`` too (they reach the builder by other means, so ``COPY Dockerfile``
        fails when it is ignored); the classic builder re-adds both to the context. The caller
        chooses which behaviour to model.
        """
        path = _relative_path(path)
        if not path:
            return False
        parent_matches = self._parent_matches(path.rpartition("/")[0])
        matched = False
        for pattern, parent_match in zip(self._patterns, parent_matches):
            if pattern.exclusion != matched:
                continue
            if parent_match or pattern.matches(path):
                matched = not pattern.exclusion
        return matched

    def _parent_matches(self, directory: str) -> tuple:
        """Per pattern: does it match ``directory`` or one of its ancestors? Cached: the files of a
        context share few directories."""
        found = self._parent_cache.get(directory)
        if found is None:
            parents = _self_and_ancestors(directory)
            found = tuple(any(pattern.matches(parent) for parent in parents) for pattern in self._patterns)
            self._parent_cache[directory] = found
        return found

    def may_affect(self, dir_path: str) -> bool:
        """False only if no pattern could match ``dir_path``, an ancestor, or anything below it.

        When False, nothing at or below ``dir_path`` is ignored and its Git tree can be taken
        whole. ``""`` is the context root.
        """
        dir_path = _relative_path(dir_path)
        return any(p.may_match_at_or_around(dir_path) for p in self._patterns)

    def ignores_all_under(self, dir_path: str) -> bool:
        """True if ``dir_path`` is ignored and no exception could re-include anything below it,
        so the whole directory can be skipped unread."""
        dir_path = _relative_path(dir_path)
        if not dir_path or not self.ignored(dir_path):
            return False
        # An exception can only re-include a path that an earlier pattern excluded.
        excluding = False
        for pattern in self._patterns:
            if not pattern.exclusion:
                excluding = excluding or pattern.may_match_at_or_around(dir_path)
            elif excluding and pattern.may_match_below(dir_path):
                return False
        return True


# ---------------------------------------------------------------------------
# COPY / ADD sources


def _split_wildcards(pattern: str) -> tuple[list[str], str]:
    """fsutil ``splitWildcards``: literal leading components, then the rest from the first
    component holding a wildcard."""
    parts = pattern.split("/")
    for index, part in enumerate(parts):
        if has_glob(part):
            return parts[:index], "/".join(parts[index:])
    return parts, ""


def _source_relative(pattern: str, path: str) -> tuple[str, str] | None:
    """(wildcard part, path below the literal part) or None when ``path`` is not below it."""
    literal, wildcard = _split_wildcards(pattern)
    parts = path.split("/") if path else []
    if parts[: len(literal)] != literal:
        return None
    return wildcard, "/".join(parts[len(literal):])


def source_selects(pattern: str, path: str, *, parents: bool = False) -> bool:
    """Does the COPY/ADD source ``pattern`` (as in ``ContextSource.patterns``) select ``path``?

    A source selects the path it names and everything below it; ``"."`` selects everything.
    A source with wildcards is split at its first wildcard component: the literal part must
    be a parent directory, and the rest is matched with :func:`glob_match` against the path
    below it and against each of that path's parent directories (a matched directory is
    copied whole). With ``parents=True`` (``COPY --parents``) the source is an include pattern
    with ``patternmatcher`` semantics, where ``**`` crosses directories.
    """
    path = _relative_path(path)
    if pattern == ".":
        return bool(path)
    if parents:
        pattern_ = _compile_pattern(pattern, exclusion=False)
        return any(pattern_.matches(p) for p in _self_and_ancestors(path))
    if not has_glob(pattern):
        return path == pattern or path.startswith(pattern + "/")
    split = _source_relative(pattern, path)
    if split is None:
        return False
    wildcard, below = split
    return any(glob_match(wildcard, p) for p in _self_and_ancestors(below))


def source_may_select_under(pattern: str, dir_path: str, *, parents: bool = False) -> bool:
    """Could ``pattern`` select ``dir_path`` or anything below it? (Conservative.)

    False means the whole directory can be skipped for this source.
    """
    dir_path = _relative_path(dir_path)
    if pattern == "." or not dir_path:
        return True
    if parents:
        return _compile_pattern(pattern, exclusion=False).may_match_at_or_around(dir_path)
    if not has_glob(pattern):
        return dir_path == pattern or pattern.startswith(dir_path + "/") or dir_path.startswith(pattern + "/")
    literal = _split_wildcards(pattern)[0]
    dir_parts = dir_path.split("/")
    if literal[: len(dir_parts)] == dir_parts:
        return True
    split = _source_relative(pattern, dir_path)
    if split is None:
        return False
    wildcard, below = split
    if any(glob_match(wildcard, p) for p in _self_and_ancestors(below)):
        return True
    return _Automaton(_glob_tokens(wildcard)).viable_after(below + "/")


def glob_may_match_below(pattern: str, dir_path: str) -> bool:
    """Could the wildcard part ``pattern`` of a COPY source (Go ``filepath.Match`` syntax) match some path
    strictly below ``dir_path``? (Conservative; used to prune the walk over a directory.)"""
    try:
        return _Automaton(_glob_tokens(pattern)).viable_after(dir_path + "/")
    except (_BadPattern, IndexError):
        return True
