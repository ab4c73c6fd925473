# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Go filepath.Match, .dockerignore (moby/patternmatcher) and COPY-source matching.

Expected values follow the Go documentation and Docker's .dockerignore documentation; the quirky
ones were checked against Go 1.26 path/filepath and moby/patternmatcher v0.6.1.
"""

from __future__ import annotations

import random

import pytest

from ansible_collections.berth.converge.plugins.module_utils.dockerignore import (
    DockerIgnore, clean_path, glob_match, has_glob, source_may_select_under, source_selects)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

# ---------------------------------------------------------------------------
# glob_match: Go path/filepath.Match (cases from Go's match_test.go and its documentation)

GLOB_CASES = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),                        # * never matches the separator
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("ab[!c]", "ab!", True),                      # Go negates with ^ only; ! is a plain member
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),                         # ? matches one character, not one byte
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),                        # ? never matches the separator
    ("a*b", "a/b", False),
    ("a[^x]b", "a/b", True),                      # a negated class does match it
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("*x", "xxx", True),
    ("", "", True),
    ("", "a", False),
]

GLOB_ERRORS = [
    ("[]a]", "]"),        # ] may not open a class
    ("[-]", "-"),
    ("[x-]", "x"),
    ("[-x]", "x"),
    ("\\", "a"),          # trailing escape
    ("[a-b-c]", "a"),
    ("[", "a"),
    ("[^", "a"),
    ("[^bc", "a"),
    ("a[", "a"),
    ("a[", "x"),          # still inside the chunk being matched
]


@pytest.mark.parametrize("pattern,name,expected", GLOB_CASES)
def test_glob_match_follows_go_filepath_match(pattern, name, expected):
    assert glob_match(pattern, name) is expected


@pytest.mark.parametrize("pattern,name", GLOB_ERRORS)
def test_glob_match_bad_pattern_is_an_error(pattern, name):
    with pytest.raises(ConvergeError, match="syntax error in pattern"):
        glob_match(pattern, name)


def test_glob_match_bad_tail_after_a_mismatch_goes_unnoticed_as_in_go():
    # Go 1.26 returns false without looking at the rest once the name cannot match.
    assert glob_match("a*[", "b") is False


@pytest.mark.parametrize("pattern,expected", [
    ("src", False), ("src/*.go", True), ("a?c", True), ("[ab]", True), ("a\\*b", False),
    ("a\\\\*", True), ("", False), ("dir/", False),
])
def test_has_glob_detects_unescaped_wildcards(pattern, expected):
    assert has_glob(pattern) is expected


@pytest.mark.parametrize("path,expected", [
    ("a/b/../c", "a/c"), ("./a//b/", "a/b"), ("../a", "../a"), ("/../a", "/a"), ("", "."),
    (".", "."), ("/", "/"), ("a/..", "."),
])
def test_clean_path_is_go_path_clean(path, expected):
    assert clean_path(path) == expected


# ---------------------------------------------------------------------------
# Parsing a .dockerignore file


def test_parsing_follows_ignorefile_readall():
    text = "\ufeff# comment\n\n  spaced  \n/abs/path\n./rel//x/\n! /inverted\n #not-a-comment\ncrlf\r\n"
    assert DockerIgnore(text).patterns == ("spaced", "abs/path", "rel/x", "!inverted", "#not-a-comment", "crlf")


def test_a_comment_only_counts_in_the_first_column():
    ignore = DockerIgnore(" #secret\n")
    assert ignore.ignored("#secret")


@pytest.mark.parametrize("text,line", [("ok\n!\n", 2), ("a\n\n[\n", 3), ("x[z-a]y\n", 1)])
def test_bad_patterns_name_file_and_line(text, line):
    with pytest.raises(ConvergeError, match=rf"^ctx/.dockerignore:{line}: "):
        DockerIgnore(text, "ctx/.dockerignore")


# ---------------------------------------------------------------------------
# ignored(): which context paths BuildKit leaves out

IGNORE_CASES = [
    # Docker docs: */temp* excludes files and directories starting with temp one level down
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "somedir/temp", True),
    ("*/temp*", "temp", False),
    ("*/temp*", "a/b/temp", False),
    ("*/temp*", "somedir/temp/inside.txt", True),          # a matching parent directory excludes
    # Docker docs: */*/temp* two levels down; temp? one character
    ("*/*/temp*", "a/b/temp.txt", True),
    ("*/*/temp*", "a/temp.txt", False),
    ("temp?", "tempa", True),
    ("temp?", "temp", False),
    ("temp?", "tempab", False),
    # ** matches any number of directories, including none
    ("**/*.go", "main.go", True),
    ("**/*.go", "a/b/main.go", True),
    ("**/*.go", "a/b/main.go.txt", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "ab", False),
    ("foo/**", "foo/x", True),
    ("foo/**", "foo", False),
    ("**", "anything/at/all", True),
    # patternmatcher's suffix shortcut: a leading ** followed by plain text is a suffix test
    ("**.log", "x.log", True),
    ("**.log", "a/b/error.log", True),
    ("**.log", "a/b/errorlog", False),
    ("**/foo", "foo", True),
    ("**/foo", "a/foo", True),
    ("**/foo", "afoo", False),
    # patterns are anchored at the context root, unlike .gitignore
    ("foo", "a/foo", False),
    ("foo", "foo/bar", True),
    ("/foo", "foo", True),                                  # leading slash is dropped
    ("./foo/../bar", "bar", True),                          # patterns are cleaned
    ("*.md", "docs/a.md", False),
    ("[a-c]*.txt", "b1.txt", True),
    ("[^a-c]*.txt", "b1.txt", False),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    (".", "a", False),                                      # "." never matches a path
]


@pytest.mark.parametrize("pattern,path,expected", IGNORE_CASES)
def test_ignored_single_pattern(pattern, path, expected):
    assert DockerIgnore(pattern).ignored(path) is expected


def test_exception_reincludes_and_last_match_wins():
    # Docker docs: *.md with !README.md keeps README.md only
    ignore = DockerIgnore("*.md\n!README.md\n")
    assert ignore.ignored("CHANGES.md")
    assert not ignore.ignored("README.md")


def test_exception_order_matters():
    # Docker docs: README-secret.md after !README*.md is excluded; before it, re-included.
    after = DockerIgnore("*.md\n!README*.md\nREADME-secret.md\n")
    before = DockerIgnore("*.md\nREADME-secret.md\n!README*.md\n")
    assert after.ignored("README-secret.md")
    assert not after.ignored("README-x.md")
    assert not before.ignored("README-secret.md")


def test_exception_before_the_exclusion_has_no_effect():
    assert DockerIgnore("!keep.txt\n*.txt\n").ignored("keep.txt")


def test_exception_inside_an_excluded_directory():
    ignore = DockerIgnore("docs\n!docs/keep.md\n")
    assert ignore.ignored("docs/other.md")
    assert not ignore.ignored("docs/keep.md")
    assert ignore.ignored("docs")


def test_the_context_root_is_never_ignored():
    ignore = DockerIgnore("*\n**\n")
    assert not ignore.ignored("")
    assert not ignore.ignored(".")
    assert ignore.ignored("x")


def test_dockerfile_and_dockerignore_get_the_plain_verdict():
    ignore = DockerIgnore("Dockerfile\n.dockerignore\n")
    assert ignore.ignored("Dockerfile")
    assert ignore.ignored(".dockerignore")


# ---------------------------------------------------------------------------
# may_affect() and ignores_all_under()

MAY_AFFECT_CASES = [
    ("node_modules", "src", False),
    ("node_modules", "node_modules", True),
    ("node_modules", "node_modules/pkg", True),             # an ancestor matches
    ("a/b/c", "a", True),                                   # something below may match
    ("a/b/c", "a/x", False),
    ("*.tmp", "src", False),                                # * stays at the top level
    ("*.tmp", "x.tmp", True),
    ("*/*.tmp", "src", True),
    ("*/*.tmp", "src/sub", False),
    ("**/*.tmp", "src/sub", True),
    ("**.log", "anything", True),
    ("foo/**", "foo", True),
    ("foo/**", "bar", False),
    ("foo**", "foobar", True),
    ("docs/[a-c]*", "docs", True),
    ("docs/[a-c]*", "src", False),
    ("!src/keep", "src", True),                             # exceptions count too
    ("!src/keep", "lib", False),
    ("", "", False),
]


@pytest.mark.parametrize("patterns,directory,expected", MAY_AFFECT_CASES)
def test_may_affect(patterns, directory, expected):
    assert DockerIgnore(patterns).may_affect(directory) is expected


def test_may_affect_the_root_when_any_pattern_exists():
    assert DockerIgnore("anything\n").may_affect("")


@pytest.mark.parametrize("patterns,directory,expected", [
    ("node_modules", "node_modules", True),
    ("node_modules", "node_modules/a", True),
    ("node_modules\n!node_modules/keep", "node_modules", False),
    ("node_modules\n!**/*.md", "node_modules", False),
    ("node_modules\n!other/keep", "node_modules", True),
    ("!node_modules/keep\nnode_modules", "node_modules", True),     # the exception comes first
    ("*.md", "docs", False),
    ("anything", "", False),
])
def test_ignores_all_under(patterns, directory, expected):
    assert DockerIgnore(patterns).ignores_all_under(directory) is expected


# ---------------------------------------------------------------------------
# Property: may_affect / ignores_all_under never contradict ignored()

NAMES = ["a", "b", "ab", "x.log", "c.md", "tmp"]
ATOMS = ["a", "b", "*", "**", "?", "[ab]", "[^a]", ".log", ".md", "/", "x", "tmp", "\\*"]


def _random_tree(rng):
    files = set()
    for _round in range(12):
        files.add("/".join(rng.choice(NAMES) for _part in range(rng.randint(1, 4))))
    return sorted(files)


def _directories(files):
    return sorted({f.rsplit("/", 1)[0] for f in files if "/" in f} | {
        "/".join(f.split("/")[:i]) for f in files for i in range(1, f.count("/") + 1)})


def _random_patterns(rng):
    lines = []
    for _line in range(rng.randint(1, 4)):
        pattern = "".join(rng.choice(ATOMS) for _atom in range(rng.randint(1, 4)))
        lines.append(("!" if rng.random() < 0.3 else "") + pattern)
    return "\n".join(lines)


def _ignore_or_none(text):
    try:
        return DockerIgnore(text)
    except ConvergeError:
        return None


def test_may_affect_false_means_nothing_below_is_ignored():
    rng = random.Random(20240611)
    checked = affected = 0
    for _round in range(1500):
        ignore = _ignore_or_none(_random_patterns(rng))
        if ignore is None:
            continue
        files = _random_tree(rng)
        for directory in _directories(files) + [""]:
            below = [f for f in files if f.startswith(directory + "/") or not directory]
            if ignore.may_affect(directory):
                affected += 1
                continue
            checked += 1
            assert not any(ignore.ignored(f) for f in below), (ignore.patterns, directory)
            assert not ignore.ignored(directory or ".")
    assert checked > 1000 and affected > 1000  # both answers were exercised


def test_ignores_all_under_true_means_everything_below_is_ignored():
    rng = random.Random(7)
    hits = 0
    for _round in range(1500):
        ignore = _ignore_or_none(_random_patterns(rng))
        if ignore is None:
            continue
        files = _random_tree(rng)
        for directory in _directories(files):
            if ignore.ignores_all_under(directory):
                hits += 1
                below = [f for f in files if f.startswith(directory + "/")]
                assert all(ignore.ignored(f) for f in below), (ignore.patterns, directory)
    assert hits > 200


def _reference_ignored(patterns, path):
    """Brute force: a pattern matches a path or any parent; the last matching pattern decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    verdict = False
    for pattern in patterns:
        exclusion = pattern.startswith("!")
        text = pattern[1:] if exclusion else pattern
        if any(_reference_match(text, c) for c in candidates):
            verdict = not exclusion
    return verdict


def _reference_match(pattern, path):
    """Independent oracle for simple patterns: ``**/`` is any run of directories, ``*`` one name."""
    if pattern.startswith("**/"):
        rest = pattern[3:]
        parts = path.split("/")
        return any(_reference_match(rest, "/".join(parts[i:])) for i in range(len(parts)))
    return glob_match(pattern, path)


def test_ignored_agrees_with_a_brute_force_reference_for_simple_patterns():
    rng = random.Random(99)
    atoms = ["a", "b", "*", "?", "x.log", "/"]
    compared = 0
    for _round in range(600):
        patterns = []
        for _pattern in range(rng.randint(1, 3)):
            body = "/".join("".join(rng.choice(atoms[:4]) for _atom in range(rng.randint(1, 2)))
                            for _component in range(rng.randint(1, 2)))
            prefix = "**/" if rng.random() < 0.3 else ""
            patterns.append(("!" if rng.random() < 0.3 else "") + prefix + body)
        ignore = DockerIgnore("\n".join(patterns))
        for path in _random_tree(rng):
            compared += 1
            assert ignore.ignored(path) is _reference_ignored(ignore.patterns, path), (ignore.patterns, path)
    assert compared > 5000


# ---------------------------------------------------------------------------
# COPY/ADD sources

SOURCE_CASES = [
    (".", "anything/below", True),
    ("src", "src", True),
    ("src", "src/main.go", True),
    ("src", "srcx/main.go", False),
    ("src/main.go", "src", False),
    ("*.go", "main.go", True),
    ("*.go", "cmd/main.go", False),                 # * does not cross directories
    ("cmd/*", "cmd/tool/main.go", True),            # a matched directory is copied whole
    ("*/main.go", "cmd/main.go", True),
    ("*/main.go", "a/cmd/main.go", False),
    ("**/main.go", "a/b/main.go", False),           # ** is just * for COPY sources
    ("**/main.go", "a/main.go", True),
    ("pkg/[ab]*", "pkg/api/x.go", True),
    ("pkg/[ab]*", "pkg/core/x.go", False),
    ("a\\*b", "a*b", False),                       # no wildcard: the literal path, escape included
    ("a\\*b", "a\\*b", True),
    ("a\\*b/*", "a*b/x", False),                   # the literal part is taken as written
    ("a\\*b/*", "a\\*b/x", True),
]


@pytest.mark.parametrize("pattern,path,expected", SOURCE_CASES)
def test_source_selects(pattern, path, expected):
    assert source_selects(pattern, path) is expected


@pytest.mark.parametrize("pattern,path,expected", [
    ("**/package.json", "a/b/package.json", True),   # COPY --parents: patternmatcher rules
    ("**/package.json", "package.json", True),
    ("apps/*/package.json", "apps/web/package.json", True),
    ("apps/*/package.json", "apps/web/src/package.json", False),
    ("src", "src/x/y", True),
])
def test_source_selects_with_parents(pattern, path, expected):
    assert source_selects(pattern, path, parents=True) is expected


@pytest.mark.parametrize("pattern,directory,expected", [
    (".", "any", True),
    ("src/main.go", "src", True),
    ("src/main.go", "lib", False),
    ("src", "src/deep/dir", True),
    ("cmd/*/main.go", "cmd", True),
    ("cmd/*/main.go", "cmd/tool", True),
    ("cmd/*/main.go", "cmd/tool/sub", False),
    ("cmd/*/main.go", "pkg", False),
    ("*.go", "pkg", False),
    ("*", "pkg", True),
    ("a[^x]b", "a", True),                       # the class can match the "/"
])
def test_source_may_select_under(pattern, directory, expected):
    assert source_may_select_under(pattern, directory) is expected


SOURCE_ATOMS = ["a", "b", "*", "?", "[ab]", "[^a]", "/", "x.log", "**"]


@pytest.mark.parametrize("parents", [False, True])
def test_source_may_select_under_false_means_nothing_below_is_selected(parents):
    rng = random.Random(5 + parents)
    checked = maybe = 0
    for _round in range(1500):
        pattern = clean_path("".join(rng.choice(SOURCE_ATOMS) for _atom in range(rng.randint(1, 5)))).lstrip("/")
        try:
            glob_match(pattern, "")
            source_selects(pattern, "a/b", parents=parents)
        except ConvergeError:
            continue
        files = _random_tree(rng)
        for directory in _directories(files):
            below = [f for f in files if f == directory or f.startswith(directory + "/")]
            if source_may_select_under(pattern, directory, parents=parents):
                maybe += 1
                continue
            checked += 1
            assert not any(source_selects(pattern, f, parents=parents) for f in below), (pattern, directory)
            assert not source_selects(pattern, directory, parents=parents)
    assert checked > 1000 and maybe > 500


def test_compiled_regex_accepts_exactly_what_the_automaton_accepts():
    """The fast whole-path matcher agrees with the automaton's state sets on random patterns and paths."""
    rng = random.Random(99)
    compared = 0
    for _round in range(3000):
        ignore = _ignore_or_none(_random_patterns(rng))
        if ignore is None:
            continue
        automata = [p.automaton for p in ignore._patterns if p.automaton is not None]
        for path in _random_tree(rng) + _directories(_random_tree(rng)):
            for automaton in automata:
                assert automaton.accepts(path) == automaton.accepts_by_states(path), (automaton.tokens, path)
                compared += 1
    assert compared > 10000
