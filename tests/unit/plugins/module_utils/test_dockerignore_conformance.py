"""Conformance of .dockerignore matching against github.com/moby/patternmatcher itself.

Generated .dockerignore files (hand-picked oddities such as ``x/[]a]``, ``[*]``, ``a\\d``, ``[[:alpha:]]``,
``\\Q..\\E`` and thousands of random lines over the characters that mean something to filepath.Match or to
Go's regexp) are evaluated by hack/conformance/patternmatcher (ignorefile.ReadAll, patternmatcher.New,
MatchesOrParentMatches; built from the Go module proxy by its `build` script) and by DockerIgnore:

* Go rejects the file (New) -> we reject it, naming file and line;
* a pattern whose regexp Go cannot compile (Go says so when the pattern is first evaluated) -> we reject
  the file up front;
* otherwise the normalised patterns and the verdict for every path are identical.
The Go program is required: when it cannot be built the tests fail.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from ansible_collections.berth.converge.plugins.module_utils.dockerignore import DockerIgnore, clean_path
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

ROOT = Path(__file__).resolve().parents[4]
BUILD = ROOT / "hack" / "conformance" / "patternmatcher" / "build"

HAND_PICKED = [
    "x/[]a]", "[]a]", "[^]a]", "x/[", "a[]", "[a-]", "[-a]", "[z-a]", "a*[", "a\\", "!", "! ", "!a", "!!a",
    "[*]", "[?]", "[**]", "x[*]*", "[a*]b", "[a?]", "[^*]", "*]", "a]", "]", "]*",
    "a\\d", "\\d*", "[\\d]x", "a\\w", "\\s", "[\\S]", "\\D", "a\\b", "\\bfoo", "a\\B*", "\\Ax", "x\\z",
    "[[:alpha:]]", "[[:alpha:]]*", "[[:^digit:]]", "[[:foo:]]", "[[:]", "[[:a]", "[[:digit:]-]",
    "^a", "a^", "a/^", "**^a", "[^a]", "[^/]", "\\x41", "\\x{42}", "\\x4", "\\x{}", "\\101", "\\0", "\\1",
    "\\12", "\\8", "\\Qa*b\\E", "\\Q[\\E*", "\\Qab", "\\E", "\\C", "\\pL", "\\p{Lu}*", "\\PN", "\\p{^L}",
    "\\p", "\\p{", "\\n", "\\t", "\\é", "a\\.b", "a.b", "a+b", "(a)", "a|b", "|", "a|", "a{2}", "a{2}*", "a{,2}",
    "a{01}", "a{3,1}", "a{1001}", "x{1,2}",
    "a$", "$",
    "**", "**/", "**/a", "a/**", "a/**/b", "**.log", "**[ab]", "**\\d", "***", "**?", "a**b", "a/**/**",
    "./a", "/a/", "a//b", "a/./b", "a/../b", "../a", "#a", " a ", "a b",
]
ATOMS = ["a", "b", "x", "/", "*", "**", "?", "[", "]", "^", "-", "\\", "\\d", "\\w", "[:alpha:]", ":", ".",
         "\\Q", "\\E", "\\x41", "\\0", "{", "}", "{2}", "{1,", "$", "(", ")", "+", "|", "!", "é", "5", "A"]
PATHS = ["a", "b", "x", "A", "5", "é", "ab", "ba", "aa", "a/b", "b/a", "a/b/c", "x/a", "x/]", "x/b", "]", "[",
         "[]", "a]", "-", "^", "^a", "a^", "a5", "ad", "a.b", "a+b", "a*b", "a b", "*", "?", "\\", "(a)",
         "a|b", "a$", "foo", "x/foo", "afoo", "a.log", "d/e.log", ":", "a:b", "ab/c/d", "a/b/x/y"]


def random_files(rng, count):
    files = []
    for _index in range(count):
        lines = []
        for _line in range(rng.randint(1, 3)):
            line = "".join(rng.choice(ATOMS) for _atom in range(rng.randint(1, 6)))
            if rng.random() < 0.2:
                line = "!" + line
            lines.append(line)
        files.append("\n".join(lines) + "\n")
    return files


def build_cases():
    rng = random.Random(20261205)
    texts = [p + "\n" for p in HAND_PICKED] + [f"*\n!{p}\n" for p in HAND_PICKED[:40]]
    texts += random_files(rng, 3000)
    cases = []
    for index, text in enumerate(texts):
        extra = ["/".join("".join(rng.choice("abx]^5.-*[|{}") for _c in range(rng.randint(1, 3)))
                          for _part in range(rng.randint(1, 3))) for _p in range(6)]
        extra = [p for p in extra if clean_path(p) == p and p != "." and not p.startswith("..")]   # contexts paths are clean
        cases.append({"name": f"case-{index}", "dockerignore": text, "paths": PATHS + extra})
    return cases


CASES = build_cases()


@pytest.fixture(scope="module")
def go_results():
    built = subprocess.run([str(BUILD)], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        pytest.fail(f"building hack/conformance/patternmatcher failed:\n{built.stderr}")
    done = subprocess.run([built.stdout.strip()], input=json.dumps(CASES), capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"the patternmatcher program failed: {done.stderr}")
    return json.loads(done.stdout)


def compare(case, expected):
    """None when DockerIgnore agrees with Go on ``case``, else a description of the difference."""
    try:
        ours = DockerIgnore(case["dockerignore"], "ctx/.dockerignore")
    except ConvergeError as exc:
        if expected.get("error") or expected["bad"]:
            return None if str(exc).startswith("ctx/.dockerignore:") else f"error names no file:line: {exc}"
        return f"we reject it ({exc}), Go accepts it"
    if expected.get("error") or expected["bad"]:
        return f"Go rejects it ({expected.get('error') or 'regexp of pattern %s' % expected['bad']}), we accept it"
    if list(ours.patterns) != (expected["patterns"] or []):
        return f"patterns {list(ours.patterns)} != Go's {expected['patterns']}"
    for path, ignored in zip(case["paths"], expected["ignored"]):
        if ours.ignored(path) != ignored:
            return f"{path!r}: ours {ours.ignored(path)}, Go {ignored}"
    return None


def test_every_case_agrees_with_patternmatcher(go_results):
    assert len(go_results) == len(CASES) >= 3000
    differences = []
    for case, expected in zip(CASES, go_results):
        difference = compare(case, expected)
        if difference:
            differences.append(f"{case['dockerignore']!r}: {difference}")
    assert not differences, f"{len(differences)} differ:\n" + "\n".join(differences[:40])


def test_the_cases_cover_accepted_rejected_and_lazily_rejected_patterns(go_results):
    """The comparison means something: each kind of outcome occurs many times."""
    rejected = sum(1 for r in go_results if r.get("error"))
    lazily = sum(1 for r in go_results if not r.get("error") and r["bad"])
    accepted = [r for r in go_results if not r.get("error") and not r["bad"]]
    matched = sum(sum(r["ignored"]) for r in accepted)
    assert rejected > 200 and lazily > 100 and len(accepted) > 1000
    assert matched > 2000 and sum(len(r["ignored"]) for r in accepted) - matched > 20000


@pytest.mark.parametrize("text,path,expected", [
    ("[*]\n", "]", True),               # Go's regexp reads [[^/]*] : a class of "[", "^", "/" repeated, then "]"
    ("[*]\n", "*", False),
    ("a\\d\n", "a5", True),            # \d is a digit class in Go's regexp, not a literal "d"
    ("a\\d\n", "ad", False),
    ("[[:alpha:]]\n", "q", True),
    ("^a\n", "^a", True),              # no regexp character: compared as text
    ("x*^a\n", "x^a", False),          # in a regexp, ^ is an anchor
    ("a|b*\n", "anything/at/all", True),   # "|" is not escaped: ^a|b[^/]*$ finds a "b" anywhere... or not
    ("x{2}*\n", "xx", True),           # {2} repeats
])
def test_go_regexp_readings(text, path, expected):
    assert DockerIgnore(text).ignored(path) is expected


def test_x_bracket_close_bracket_a_is_rejected_as_go_rejects_it():
    # filepath.Match (Go >= 1.16) checks the whole chunk, so patternmatcher.New refuses "x/[]a]"
    with pytest.raises(ConvergeError, match=r"ctx/.dockerignore:2: syntax error in pattern 'x/\[\]a\]'"):
        DockerIgnore("ok\nx/[]a]\n", "ctx/.dockerignore")
