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
            if self.tokens[index][0] in ("star", "dirs", "any"):
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


_REGEX_ESCAPED = set(".+()|{}$")


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

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        return self.automaton.accepts(path)

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
        if self.kind == "suffix":
            return True
        return self.automaton.viable_after(below)

    def may_match_at_or_around(self, dir_path: str) -> bool:
        """Could it match ``dir_path``, one of its ancestors, or something below it?"""
        return any(self.matches(p) for p in _self_and_ancestors(dir_path)) or self.may_match_below(dir_path)


def _compile_pattern(text: str, exclusion: bool, strict: bool = False) -> _Pattern:
    """Port of ``Pattern.compile``: classify the pattern and build its tokens."""
    tokens: list[tuple] = []
    kind = "exact"
    i = 0
    while i < len(text):
        char = text[i]
        if char == "*" and text[i + 1:i + 2] == "*":
            start = i
            i += 2
            if text[i:i + 1] == "/":
                i += 1
            if i == len(text):
                if kind == "exact":
                    kind = "prefix"
                else:
                    tokens.append(("any",))
                    kind = "regex"
            else:
                tokens.append(("dirs",))
                kind = "regex"
            if start == 0:
                kind = "suffix"
            continue
        if char in "*?":
            tokens.append(("star",) if char == "*" else ("one",))
            kind = "regex"
        elif char == "[":
            token, i = _parse_class(text, i, strict)
            tokens.append(token)
            kind = "regex"
            continue
        elif char == "\\" and i + 1 < len(text):
            i += 1
            tokens.append(("lit", text[i]))
            kind = "regex"
        elif char == "]":
            # A stray "]" is literal, but Go still switches to a regexp (no suffix shortcut).
            tokens.append(("lit", char))
            kind = "regex"
        else:
            tokens.append(("lit", char))
        i += 1
    automaton = _Automaton(tokens) if kind == "regex" else None
    return _Pattern(text=text, exclusion=exclusion, kind=kind, automaton=automaton)


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
