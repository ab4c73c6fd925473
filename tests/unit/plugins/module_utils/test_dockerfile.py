# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dockerfile parsing and build resolution, against the Dockerfile reference and BuildKit's behaviour.

Where a case relies on a BuildKit detail rather than the reference, the comment says so; those were
checked against BuildKit v0.34 (frontend/dockerfile).
"""

from __future__ import annotations

import json
import re

import pytest

from ansible_collections.berth.converge.plugins.module_utils.dockerfile import (
    ContextSource, Heredoc, parse_dockerfile, resolve)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError


def parse(text):
    return parse_dockerfile(text, "Dockerfile")


def only_instruction(text):
    """The single instruction after ``FROM scratch``."""
    (instruction,) = parse("FROM scratch\n" + text).stages[0].instructions
    return instruction


def stage_texts(text, target=None, build_args=None, **kwargs):
    build = resolve(parse(text), target, build_args or {}, **kwargs)
    return [list(stage.instructions) for stage in build.stages]


def last_text(text, build_args=None, **kwargs):
    return stage_texts(text, build_args=build_args, **kwargs)[-1][-1]


# ---------------------------------------------------------------------------
# Lines, comments, continuations, directives


def test_continuation_joins_lines_keeping_the_indentation_of_the_next_line():
    instruction = only_instruction("RUN apt-get update && \\\n    apt-get install -y x\n")
    assert instruction.args == ("apt-get update &&     apt-get install -y x",)
    assert instruction.line == 2
    assert instruction.text == "RUN apt-get update &&     apt-get install -y x"


def test_comment_and_blank_lines_inside_a_continuation_are_skipped():
    # BuildKit skips them and carries on (an empty continuation line only warns).
    text = "FROM scratch\nRUN a \\\n# a comment\n\n  b \\\n   # indented comment\n  c\nUSER x\n"
    stage = parse(text).stages[0]
    assert [i.args for i in stage.instructions] == [("a   b   c",), ("x",)]
    assert [i.line for i in stage.instructions] == [2, 8]


def test_continuation_at_end_of_file_ends_the_instruction():
    assert only_instruction("RUN a \\").args == ("a",)


def test_escaped_escape_at_end_of_line_is_not_a_continuation():
    stage = parse("FROM scratch\nRUN echo \\\\\nUSER x\n").stages[0]
    assert [i.keyword for i in stage.instructions] == ["RUN", "USER"]


@pytest.mark.parametrize("text,keywords", [
    ("# comment\nFROM scratch\n  # indented comment\nUSER x\n", ["USER"]),
    ("FROM scratch\nRUN echo # not a comment\n", ["RUN"]),
    ("\ufeffFROM scratch\r\nUSER x\r\n", ["USER"]),
])
def test_comments_and_line_endings(text, keywords):
    assert [i.keyword for i in parse(text).stages[0].instructions] == keywords


def test_escape_directive_switches_to_backtick():
    text = "# escape=`\nFROM scratch\nRUN dir c:\\ `\n  && echo ok\nCOPY a\\b c:\\dst\n"
    dockerfile = parse(text)
    run, copy = dockerfile.stages[0].instructions
    assert dockerfile.escape_token == "`"
    assert run.args == ("dir c:\\   && echo ok",)
    assert copy.args == ("a\\b", "c:\\dst")


@pytest.mark.parametrize("text,escape", [
    ("# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch\n", "`"),
    ("#ESCAPE = `\nFROM scratch\n", "`"),               # names are case-insensitive, spaces allowed
    ("# comment\n# escape=`\nFROM scratch\n", "\\"),    # directives stop at the first comment
    ("\n# escape=`\nFROM scratch\n", "\\"),             # ... or the first blank line
    ("# unknown=x\n# escape=`\nFROM scratch\n", "\\"),  # an unknown directive is a comment
    ("FROM scratch\n# escape=`\n", "\\"),
])
def test_parser_directives_only_at_the_top(text, escape):
    assert parse(text).escape_token == escape


@pytest.mark.parametrize("text,message", [
    ("# escape=x\nFROM scratch\n", "Dockerfile:1: invalid escape token"),
    ("# escape=`\n# escape=\\\nFROM scratch\n", "Dockerfile:2: only one escape parser directive"),
])
def test_bad_directives(text, message):
    with pytest.raises(ConvergeError, match=message):
        parse(text)


# ---------------------------------------------------------------------------
# Instructions, forms and flags


def test_keywords_are_case_insensitive():
    dockerfile = parse("from scratch as Build\nrun echo\nCopy a b\n")
    stage = dockerfile.stages[0]
    assert stage.name == "build"                        # stage names are lower-cased
    assert [i.keyword for i in stage.instructions] == ["RUN", "COPY"]


@pytest.mark.parametrize("line,args,json_form", [
    ('RUN ["echo", "a b"]', ("echo", "a b"), True),
    ("RUN echo a b", ("echo a b",), False),
    ("RUN [ -f x ] && echo", ("[ -f x ] && echo",), False),      # not JSON: shell form
    ('RUN ["a" "b"]', ('["a" "b"]',), False),
    ("RUN []", (), True),
    ('CMD ["x"]', ("x",), True),
    ('ENTRYPOINT ["/bin/x", "-v"]', ("/bin/x", "-v"), True),
    ('SHELL ["/bin/bash", "-c"]', ("/bin/bash", "-c"), True),
    ('COPY ["a b", "/dst/"]', ("a b", "/dst/"), True),
    ("COPY a  b\t/dst/", ("a", "b", "/dst/"), False),
    ("VOLUME /a /b", ("/a", "/b"), False),
    ("EXPOSE 80/tcp 443", ("80/tcp", "443"), False),
    ("WORKDIR /a b", ("/a b",), False),
    ("USER app:app", ("app:app",), False),
    ("ARG A=1 B=\"x y\" C", ("A=1", 'B="x y"', "C"), False),
    ('ENV A=1 B="x y"', ("A=1", 'B="x y"'), False),
    ("ENV PATH /usr/bin:$PATH", ("PATH=/usr/bin:$PATH",), False),  # the legacy "ENV key value" form
    ("LABEL a=b", ("a=b",), False),
    ("HEALTHCHECK --interval=5s CMD curl -f http://x/", ("CMD", "curl -f http://x/"), False),
    ('HEALTHCHECK CMD ["curl", "x"]', ("CMD", "curl", "x"), True),
    ("HEALTHCHECK NONE", ("NONE",), False),
    ("ONBUILD RUN make", ("RUN make",), False),
    ("STOPSIGNAL SIGTERM", ("SIGTERM",), False),
])
def test_argument_forms(line, args, json_form):
    instruction = only_instruction(line + "\n")
    assert instruction.args == args
    assert instruction.json_form is json_form


def test_flags():
    instruction = only_instruction(
        'COPY --from=build --chown="app user" --link --exclude=*.md --exclude=*.txt a b\n')
    assert instruction.flags == {"from": "build", "chown": "app user", "link": "true"}
    assert instruction.repeated_flags == {"exclude": ("*.md", "*.txt")}
    assert instruction.args == ("a", "b")


def test_run_mounts_may_repeat():
    instruction = only_instruction("RUN --mount=type=cache,target=/c --mount=type=bind,target=/s make\n")
    assert instruction.repeated_flags == {"mount": ("type=cache,target=/c", "type=bind,target=/s")}
    assert instruction.args == ("make",)


def test_double_dash_ends_the_flags():
    assert only_instruction("COPY --link -- --weird /dst\n").args == ("--weird", "/dst")


def test_flags_of_arg_and_stopsignal_are_ignored_as_buildkit_never_checks_them():
    assert only_instruction("ARG --bogus A=1\n").flags == {}
    assert only_instruction("STOPSIGNAL --x SIGINT\n").args == ("SIGINT",)


@pytest.mark.parametrize("line,message", [
    ("COPY --bogus a b", "unknown flag: --bogus"),
    ("COPY --from=a --from=b x y", "duplicate flag specified: --from"),
    ("COPY --from x y", "missing a value on flag: --from"),
    ("COPY --link=maybe x y", "expecting boolean value"),
    ("COPY onlyone", "COPY requires at least two arguments"),
    ("ADD onlyone", "ADD requires at least two arguments"),
    ('COPY ["a"]', "COPY requires at least two arguments"),
    ('RUN ["a", 1]', "arrays must be comprised of strings only"),
    ("SHELL /bin/sh -c", "SHELL requires the arguments to be in JSON form"),
    ("ENV", "ENV requires at least one argument"),
    ("ENV A", "ENV must have two arguments"),
    ("ENV A=1 B", "can't find = in 'B'"),
    ("ENV =1", "ENV names can not be blank"),
    ("ARG =1", "ARG names can not be blank"),
    ("USER", "USER requires exactly one argument"),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK PING x", "Unknown type"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("BOGUS x", "unknown instruction: BOGUS"),
    ("RUN --mount=type=bind,from=$STAGE,target=/x make", "'from' doesn't support variable expansion"),
])
def test_instruction_errors_name_file_and_line(line, message):
    with pytest.raises(ConvergeError, match=r"^Dockerfile:2: .*" + message.replace("[", r"\[")):
        parse("FROM scratch\n" + line + "\n")


@pytest.mark.parametrize("text,message", [
    ("", "Dockerfile: no FROM instruction"),
    ("ARG A\n# only args\n", "Dockerfile: no FROM instruction"),
    ("RUN x\nFROM scratch\n", "Dockerfile:1: RUN before the first FROM"),
    ("FROM a b\n", "Dockerfile:1: FROM requires either one or three arguments"),
    ("FROM a AS 1st\n", "Dockerfile:1: invalid name for build stage"),
])
def test_file_level_errors(text, message):
    with pytest.raises(ConvergeError, match="^" + message):
        parse(text)


def heredocs_of(text):
    return parse("FROM scratch\n" + text).stages[0].instructions[0].heredocs


def test_heredoc_bodies_belong_to_their_instruction():
    dockerfile = parse("FROM scratch\nRUN <<EOF\nFROM evil\n  echo hi\nEOF\nCOPY <<A <<'B' /dst/\na $X\nA\nb $X\nB\n"
                       "RUN 3<<EOF cat /dev/fd/3\nx\nEOF\nRUN cat <<-EOT > /x\n\thello\n\t\tdeep\n\tEOT\nRUN done\n")
    run, copy, fd, chomped, last = dockerfile.stages[0].instructions
    assert run.heredocs == (Heredoc("EOF", "FROM evil\n  echo hi\n"),)
    assert copy.heredocs == (Heredoc("A", "a $X\n"), Heredoc("B", "b $X\n", expand=False))
    assert fd.heredocs == (Heredoc("EOF", "x\n"),)
    assert chomped.heredocs == (Heredoc("EOT", "hello\ndeep\n", chomp=True),)
    assert last.args == ("done",) and len(dockerfile.stages) == 1


@pytest.mark.parametrize("text, message", [
    ("RUN <<EOF\nhello\n", "Dockerfile:2: unterminated heredoc <<EOF"),
    ("RUN cat <<-EOT > /x\nhello\nEOF\n", "Dockerfile:2: unterminated heredoc <<EOT"),
    ("ONBUILD RUN <<EOF\nhello\nEOF\n", "Dockerfile:2: heredocs (<<EOF) in ONBUILD triggers are not supported"),
    ("COPY a <<EOF\nhello\nEOF\n", "Dockerfile:2: COPY cannot accept a heredoc as a destination"),
])
def test_heredoc_errors(text, message):
    with pytest.raises(ConvergeError, match="^" + re.escape(message)):
        parse("FROM scratch\n" + text)


def test_heredoc_content_is_digested_and_heredoc_sources_read_no_context():
    text = "FROM scratch\nCOPY <<EOF a.txt /dst/\n{}\nEOF\n"
    one, two = (resolve(parse(text.format(body)), None, {}) for body in ("v1", "v2"))
    assert one.stages[0].instructions != two.stages[0].instructions
    assert "v1\nEOF" in one.stages[0].instructions[0]
    assert [source.patterns for source in one.context_sources] == [("a.txt",)]


@pytest.mark.parametrize("line", [
    "RUN cat <<< word",
    'RUN ["cat", "<<EOF"]',
    "RUN echo '<<EOF'",
    "CMD cat <<EOF",                                    # only RUN, COPY and ADD take heredocs
])
def test_not_heredocs(line):
    assert only_instruction(line + "\n").keyword in ("RUN", "CMD")


def test_stages_and_global_args():
    dockerfile = parse("ARG BASE=alpine\nFROM --platform=$BUILDPLATFORM ${BASE} AS build\nRUN x\n"
                       "FROM scratch\nCOPY --from=build /a /a\n")
    assert [a.args for a in dockerfile.global_args] == [("BASE=alpine",)]
    first, second = dockerfile.stages
    assert (first.index, first.name, first.base, first.platform, first.line) == (
        0, "build", "${BASE}", "$BUILDPLATFORM", 2)
    assert (second.index, second.name, second.base, second.platform) == (1, None, "scratch", None)
    assert len(first.instructions) == 1 and len(second.instructions) == 1


# ---------------------------------------------------------------------------
# Stages and targets

MULTI = """\
FROM scratch AS base
COPY base.txt /
FROM base AS build
COPY src/ /src/
FROM scratch AS unused
COPY unused/ /
FROM scratch AS final
COPY --from=build /src /app
COPY --from=0 /base.txt /
"""


def test_target_defaults_to_the_last_stage_and_unused_stages_are_left_out():
    build = resolve(parse(MULTI), None, {})
    assert build.target == 3
    assert [s.index for s in build.stages] == [0, 1, 3]
    assert [s.patterns for s in build.context_sources] == [("base.txt",), ("src",)]
    assert build.stages[1].base_stage == 0


@pytest.mark.parametrize("target,stages", [("build", [0, 1]), ("BASE", [0]), ("unused", [2])])
def test_target_by_name_case_insensitively(target, stages):
    assert [s.index for s in resolve(parse(MULTI), target, {}).stages] == stages


def test_unknown_target_names_the_file_and_the_stages():
    with pytest.raises(ConvergeError, match=r"^Dockerfile: target stage 'nope' could not be found "
                                            r"\(named stages: base, build, unused, final\)"):
        resolve(parse(MULTI), "nope", {})


def test_copy_from_by_name_is_case_insensitive_and_by_index():
    build = resolve(parse("FROM scratch AS one\nFROM scratch AS two\nFROM scratch\n"
                          "COPY --from=ONE /a /a\nCOPY --from=1 /b /b\n"), None, {})
    assert [s.index for s in build.stages] == [0, 1, 2]
    assert build.external_images == ()


def test_from_a_stage_needs_an_exact_lower_case_name_defined_above():
    # BuildKit looks the base up by its exact text among the stages defined so far.
    build = resolve(parse("FROM scratch AS base\nFROM Base\n"), None, {})
    assert build.stages[-1].base_stage is None
    assert build.external_images == ("Base",)


def test_run_mount_from_a_stage_is_a_dependency():
    build = resolve(parse("FROM scratch AS tools\nFROM scratch AS x\nFROM scratch\n"
                          "RUN --mount=type=bind,from=tools,target=/t make\n"), None, {})
    assert [s.index for s in build.stages] == [0, 2]


def test_external_images_are_deduplicated_in_order():
    text = ("FROM golang:1.22 AS build\nRUN --mount=type=cache,from=cacheimg,target=/c x\n"
            "FROM alpine\nCOPY --from=nginx:1 /etc/nginx /etc/nginx\nCOPY --from=golang:1.22 /go /go\n"
            "COPY --from=build /out /out\n")
    assert resolve(parse(text), None, {}).external_images == ("golang:1.22", "cacheimg", "alpine", "nginx:1")


@pytest.mark.parametrize("text,target,message", [
    ("FROM scratch\nCOPY --from=$SRC /a /a\n", None, "variable expansion is not supported for --from"),
    ("FROM scratch AS a\nCOPY --from=a /x /x\n", None, "circular dependency detected on stage: a"),
    ("FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y\n", "b",
     "circular dependency detected"),
    ("FROM scratch\nCOPY --from=5 /x /x\n", None, "invalid stage index 5"),
    ("FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n", "a",
     "cannot copy from stage 'b', it needs to be defined before the current stage"),
])
def test_stage_reference_errors(text, target, message):
    with pytest.raises(ConvergeError, match=r"^Dockerfile:\d+: " + message):
        resolve(parse(text), target, {})


def test_a_forward_reference_only_fails_when_that_stage_is_built():
    text = "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n"
    assert [s.index for s in resolve(parse(text), "b", {}).stages] == [1]


# ---------------------------------------------------------------------------
# ARG scoping and variable expansion

@pytest.mark.parametrize("text,build_args,expected", [
    # global ARGs are visible to FROM only ...
    ("ARG V=1\nFROM scratch\nWORKDIR /$V\n", {}, "WORKDIR /"),
    # ... unless redeclared in the stage, which inherits the global value
    ("ARG V=1\nFROM scratch\nARG V\nWORKDIR /$V\n", {}, "WORKDIR /1"),
    ("ARG V=1\nFROM scratch\nARG V\nWORKDIR /$V\n", {"V": "2"}, "WORKDIR /2"),
    # a stage ARG's scope starts at its line
    ("FROM scratch\nWORKDIR /$V\nARG V=1\n", {}, "ARG V=1"),
    ("FROM scratch\nARG V=1\nWORKDIR /$V\n", {"V": "cli"}, "WORKDIR /cli"),
    ("FROM scratch\nARG V\nWORKDIR /x$V\n", {}, "WORKDIR /x"),
    # an ARG default can use earlier ARGs of the same instruction
    ("FROM scratch\nARG A=1 B=${A}2\nWORKDIR /$B\n", {}, "WORKDIR /12"),
    # ENV after an ARG of the same name wins (Dockerfile reference, "Using ARG variables")
    ("FROM scratch\nARG V=arg\nENV V=env\nWORKDIR /$V\n", {"V": "cli"}, "WORKDIR /env"),
    # ENV takes part in expansion once set; ENV pairs expand against the values before the line
    ("FROM scratch\nENV A=1\nENV A=2 B=$A\nWORKDIR /$A$B\n", {}, "WORKDIR /21"),
    # BuildKit: a later ARG overrides an earlier ENV for expansion within the stage
    ("FROM scratch\nENV V=env\nARG V=arg\nWORKDIR /$V\n", {}, "WORKDIR /arg"),
    # BuildKit: a stage built FROM another inherits its ARG values, but ENV is applied again
    ("FROM scratch AS a\nARG V=1\nENV E=e\nFROM a\nWORKDIR /$V$E\n", {}, "WORKDIR /1e"),
    ("FROM scratch AS a\nENV V=env\nARG V=arg\nFROM a\nWORKDIR /$V\n", {}, "WORKDIR /env"),
    # undeclared build args are invisible
    ("FROM scratch\nWORKDIR /$SECRET\n", {"SECRET": "x"}, "WORKDIR /"),
    # scratch stages get Docker's default PATH
    ("FROM scratch\nENV PATH=/opt/bin:$PATH\n", {},
     "ENV PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
])
def test_arg_scoping(text, build_args, expected):
    assert last_text(text, build_args) == expected


EXPANSIONS = [
    ("$A", "a"), ("${A}", "a"), ("${A}x", "ax"), ("$Ax", ""), ("${U}", ""),
    ("${U:-dflt}", "dflt"), ("${E:-dflt}", "dflt"), ("${E-dflt}", ""), ("${A:-dflt}", "a"),
    ("${U-dflt}", "dflt"),
    ("${A:+set}", "set"), ("${E:+set}", ""), ("${E+set}", "set"), ("${U+set}", ""),
    ("${P#*/}", "b/c.tar.gz"), ("${P##*/}", "c.tar.gz"), ("${P%.*}", "a/b/c.tar"), ("${P%%.*}", "a/b/c"),
    ("${P/b/B}", "a/B/c.tar.gz"), ("${P//./_}", "a/b/c_tar_gz"), ("${P/#a/A}", "a/b/c.tar.gz"),
    ("\\$A", "$A"), ("'$A'", "$A"), ('"$A b"', "a b"), ("'a'\"b\"c", "abc"), ("${A:-'q'}", "a"),
    ("$", "$"), ("a$/b", "a$/b"), ("${E:-${A}}", "a"),
    ("${A//*/x}", "x"),                    # Go's replace-all skips the empty match after a match
    ("${P%%.t*}", "a/b/c"), ("${P%.t*}", "a/b/c"), ("${P#a/?/}", "c.tar.gz"),
]


@pytest.mark.parametrize("word,expected", EXPANSIONS)
def test_expansion_forms(word, expected):
    label = last_text(f"FROM scratch\nARG A=a E= P=a/b/c.tar.gz\nLABEL x={word}\n")
    value = label.removeprefix("LABEL x=")
    assert (json.loads(value) if value.startswith('"') else value) == expected


def test_escape_directive_applies_to_expansion():
    # `$ is a literal dollar; a backslash is an ordinary character (the text quotes it).
    assert last_text("# escape=`\nFROM scratch\nARG A=a\nWORKDIR c:\\`$A\\$A\n") == 'WORKDIR "c:\\\\$A\\\\a"'


@pytest.mark.parametrize("word,message", [
    ("${U:?must be set}", "U: must be set"),
    ("${E:?}", "E: is not allowed to be empty"),
    ("${U?}", "U: is not allowed to be unset"),
    ("${A:-x", "missing '}'"),
    ("${A", "unsupported modifier"),
    ("${}", "bad substitution"),
    ("${A!x}", "unsupported modifier"),
    ("'open", "matching single-quote"),
])
def test_expansion_errors_name_the_line(word, message):
    with pytest.raises(ConvergeError, match=r"^Dockerfile:3: failed to process .*" + message.replace("$", r"\$")):
        resolve(parse(f"FROM scratch\nARG A=a E=\nWORKDIR {word}\n"), None, {})


def test_expose_splits_expanded_words():
    assert last_text("FROM scratch\nARG P=\"80 443/tcp\"\nEXPOSE $P 8080\n") == "EXPOSE 80 443/tcp 8080"


def test_expose_word_splitting_keeps_buildkits_shared_buffer_quirk():
    # BuildKit exposes port 80 here, not "a80": the nested ${...} resets its word buffer.
    assert last_text("FROM scratch\nEXPOSE a${P:-80} 90\n") == "EXPOSE 80 90"


def test_run_cmd_entrypoint_are_not_expanded_but_run_mounts_are():
    texts = stage_texts('FROM scratch\nARG T=/cache\nRUN --mount=type=cache,target=$T echo $T\n'
                        'CMD ["echo", "$T"]\nENTRYPOINT exec $T\n')[0]
    assert texts[1:] == ['RUN --mount=target=/cache,type=cache echo $T', 'CMD ["echo", "$T"]', "ENTRYPOINT exec $T"]


# ---------------------------------------------------------------------------
# used_args


@pytest.mark.parametrize("text,build_args,used", [
    # a build arg no ARG declares is not used, even if the text mentions it
    ("FROM scratch\nRUN echo $X\n", {"X": "1"}, {}),
    # a declared ARG consumes the build arg even when no instruction mentions it (RUN sees it)
    ("FROM scratch\nARG X\nRUN make\n", {"X": "1"}, {"X": "1"}),
    ("FROM scratch\nARG X=dflt\n", {}, {"X": "dflt"}),
    ("FROM scratch\nARG X\n", {}, {"X": None}),
    # global ARGs count when a needed FROM line uses them, with the ARGs their defaults use
    ("ARG REG=r ARG TAG=${REG}1\nFROM $TAG\n", {"REG": "q"}, {"TAG": "q1", "REG": "q"}),
    ("ARG V=1\nFROM scratch\n", {"V": "2"}, {}),
    ("ARG V=1\nFROM scratch\nARG V\n", {"V": "2"}, {"V": "2"}),
    ("ARG V=1\nFROM scratch\nARG V\n", {}, {"V": "1"}),
    # inheriting a global value also consumes the build args that value was made from
    ("ARG A=1\nARG B=${A}x\nFROM scratch\nARG B\n", {"A": "2"}, {"A": "2", "B": "2x"}),
    # only needed stages count
    ("FROM scratch AS a\nARG A\nFROM scratch\nARG B\n", {"A": "1", "B": "2"}, {"B": "2"}),
    # proxy variables never count and never change the text
    ("FROM scratch\nARG HTTP_PROXY\nRUN make\n", {"HTTP_PROXY": "http://p"}, {}),
    # the platform ARGs are predefined; they count only when a build arg sets one
    ("FROM scratch\nARG TARGETARCH\n", {}, {}),
    ("FROM scratch\nARG TARGETARCH\n", {"TARGETARCH": "s390x"}, {"TARGETARCH": "s390x"}),
])
def test_used_args(text, build_args, used):
    assert resolve(parse(text), None, build_args).used_args == used


def test_proxy_build_args_do_not_reach_the_text():
    assert last_text("FROM scratch\nARG HTTP_PROXY=none\nENV P=$HTTP_PROXY\n", {"HTTP_PROXY": "http://p"}) \
        == "ENV P=none"


def test_arg_text_shows_the_default_and_the_value_goes_to_used_args():
    build = resolve(parse("FROM scratch\nARG A=1 B=$A C\n"), None, {"A": "9"})
    assert build.stages[0].instructions == ("ARG A=1 B=9 C",)
    assert build.used_args == {"A": "9", "B": "9", "C": None}


# ---------------------------------------------------------------------------
# Platform ARGs


def test_platform_args_are_placeholders_without_a_platform():
    text = "FROM --platform=$BUILDPLATFORM scratch AS b\nARG TARGETARCH\nWORKDIR /$TARGETARCH\n"
    build = resolve(parse(text), None, {})
    assert build.stages[0].platform == "${BUILDPLATFORM}"
    assert build.stages[0].instructions[-1] == "WORKDIR /${TARGETARCH}"


def test_target_platform_args_with_a_platform():
    text = ("FROM scratch\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT\n"
            "LABEL p=$TARGETPLATFORM/$TARGETOS/$TARGETARCH/$TARGETVARIANT\n")
    assert last_text(text, platform="linux/arm/v7") == "LABEL p=linux/arm/v7/linux/arm/v7"


def test_targetstage_is_the_target_name():
    text = "ARG TARGETSTAGE\nFROM scratch AS one\nFROM scratch AS two\nARG TARGETSTAGE\nLABEL s=$TARGETSTAGE\n"
    assert last_text(text) == "LABEL s=two"


def test_sources_using_unknown_values_are_flagged():
    text = "FROM golang\nARG TARGETARCH\nCOPY bin/$TARGETARCH/app $GOPATH/x /dst/\n"
    (source,) = resolve(parse(text), None, {}).context_sources
    assert source.unresolved_vars == ("GOPATH", "TARGETARCH")
    (source,) = resolve(parse(text), None, {}, platform="linux/amd64").context_sources
    assert source.patterns == ("bin/amd64/app", "x")
    assert source.unresolved_vars == ("GOPATH",)       # it may come from the golang image


def test_unset_variables_in_scratch_stages_are_not_flagged():
    (source,) = resolve(parse("FROM scratch\nCOPY $NOPE/x /\n"), None, {}).context_sources
    assert source.unresolved_vars == ()


# ---------------------------------------------------------------------------
# Context sources


@pytest.mark.parametrize("sources,patterns", [
    ("src/ lib/*.go", ("src", "lib/*.go")),
    (". ./", (".", ".")),
    ("/abs/path", ("abs/path",)),
    ("../outside ./a/../b", ("outside", "b")),          # BuildKit joins sources onto / and cleans them
    ('["with space", "/dst/"]', ("with space",)),   # the JSON form allows spaces
    ('"quoted" x\\*', ("quoted", "x*")),           # quotes and escapes are processed
])
def test_copy_sources_are_cleaned_context_paths(sources, patterns):
    line = f"COPY {sources}" if sources.startswith("[") else f"COPY {sources} /dst/"
    (source,) = resolve(parse(f"FROM scratch\n{line}\n"), None, {}).context_sources
    assert source == ContextSource(stage=0, line=2, keyword="COPY", patterns=patterns)


def test_copy_sources_expand_variables():
    text = "FROM scratch\nARG DIR=app\nCOPY ${DIR}/ ${DIR:-x}.json /dst/\n"
    (source,) = resolve(parse(text), None, {}).context_sources
    assert source.patterns == ("app", "app.json")


def test_add_remote_sources_are_kept_apart():
    text = ("FROM scratch\nADD https://example.com/a.tgz git@github.com:o/r.git "
            "https://github.com/o/r.git#v1 local.tgz /dst/\n")
    build = resolve(parse(text), None, {})
    assert build.remote_sources == (
        "https://example.com/a.tgz", "git@github.com:o/r.git", "https://github.com/o/r.git#v1")
    assert [s.patterns for s in build.context_sources] == [("local.tgz",)]


def test_copy_refuses_urls():
    with pytest.raises(ConvergeError, match="^Dockerfile:2: source can't be a URL"):
        resolve(parse("FROM scratch\nCOPY https://example.com/x /x\n"), None, {})


def test_copy_from_a_stage_reads_no_context():
    assert resolve(parse("FROM scratch AS a\nFROM scratch\nCOPY --from=a /x /x\n"), None, {}).context_sources == ()


def test_copy_parents_and_exclude_are_reported():
    text = "FROM scratch\nCOPY --parents --exclude=*.md --exclude=tmp ./apps/./*/package.json /\n"
    (source,) = resolve(parse(text), None, {}).context_sources
    assert source.parents is True
    assert source.excludes == ("*.md", "tmp")
    assert source.patterns == ("apps/*/package.json",)


def test_run_bind_mounts_without_from_read_the_context():
    text = ("FROM scratch\nARG M=go.mod\n"
            "RUN --mount=type=bind,source=$M,target=/m --mount=target=/all --mount=type=cache,target=/c "
            "--mount=type=secret,id=s --mount=type=bind,from=img,source=x,target=/i make\n")
    build = resolve(parse(text), None, {})
    assert [(s.keyword, s.patterns) for s in build.context_sources] == [("RUN", ("go.mod",)), ("RUN", (".",))]
    assert build.external_images == ("img",)


def test_onbuild_triggers_run_first_in_the_child_stage():
    text = ("FROM scratch AS base\nONBUILD COPY app/ /app/\nONBUILD ARG MODE\nRUN true\n"
            "FROM base\nARG X\nWORKDIR /$MODE\n")
    build = resolve(parse(text), None, {"MODE": "prod"})
    assert build.stages[0].instructions == ("ONBUILD COPY app/ /app/", "ONBUILD ARG MODE", "RUN true")
    assert build.stages[1].instructions == ("COPY app/ /app/", "ARG MODE", "ARG X", "WORKDIR /prod")
    assert [(s.stage, s.patterns) for s in build.context_sources] == [(1, ("app",))]
    assert build.used_args == {"MODE": "prod", "X": None}


# ---------------------------------------------------------------------------
# Canonical text


@pytest.mark.parametrize("lines,expected", [
    ("copy   --link  --chown=1:1   a    b", "COPY --chown=1:1 --link=true a b"),
    ('COPY ["a b", "c"]', 'COPY "a b" c'),
    ("COPY a b c", "COPY a b c"),
    ('RUN ["echo", "a"]', 'RUN ["echo", "a"]'),
    ("RUN   echo  'a   b'", "RUN echo  'a   b'"),            # shell text is kept as written
    ("ENV A=1 B=\"x y\"", 'ENV A=1 B="x y"'),
    ("ENV A b c", 'ENV A="b c"'),
    ("LABEL a.b=\"c\"", "LABEL a.b=c"),
    ("VOLUME [\"/a\", \"/b c\"]", 'VOLUME /a "/b c"'),
    ("HEALTHCHECK --timeout=3s --interval=5s CMD curl x", "HEALTHCHECK --interval=5s --timeout=3s CMD curl x"),
    ("onbuild run make $X", "ONBUILD RUN make $X"),
    ("MAINTAINER me", "MAINTAINER me"),
    ("STOPSIGNAL SIGKILL", "STOPSIGNAL SIGKILL"),
])
def test_canonical_text(lines, expected):
    assert last_text(f"FROM scratch\n{lines}\n") == expected


def test_base_is_substituted_and_comments_do_not_matter():
    plain = resolve(parse("ARG IMG=alpine\nFROM ${IMG}:3\nRUN a\n"), None, {})
    commented = resolve(parse("# hi\nARG IMG=alpine\n\nFROM ${IMG}:3\n# note\nRUN a\n"), None, {})
    assert plain.stages == commented.stages
    assert plain.stages[0].base == "alpine:3"


def test_base_name_must_not_expand_to_nothing():
    with pytest.raises(ConvergeError, match=r"^Dockerfile:1: base name \(\$NOPE\) should not be blank"):
        resolve(parse("FROM $NOPE\n"), None, {})
