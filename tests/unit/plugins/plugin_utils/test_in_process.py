"""Running a module in the worker process: when it may, and that its output is what AnsiballZ would give."""
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.berth.converge.plugins.plugin_utils import in_process


def reason(**changes):
    settings = dict(connection="local", become=False, async_val=0, interpreter=None, enabled=True)
    return in_process.in_process_reason(**{**settings, **changes})


def test_local_runs_with_the_controller_python_run_in_process():
    assert reason() is None
    assert reason(interpreter="auto_silent") is None
    assert reason(interpreter=sys.executable) is None
    # python3 beside python in a virtualenv: the same environment
    other_name = os.path.join(os.path.dirname(sys.executable), "python3")
    if os.path.realpath(other_name) == os.path.realpath(sys.executable):
        assert reason(interpreter=other_name) is None


@pytest.mark.parametrize("changes, expected", [
    ({"connection": "ssh"}, "connection ssh (not local)"),
    ({"become": True}, "become"),
    ({"async_val": 30}, "async"),
    ({"enabled": False}, "berth_converge_in_process is false"),
    ({"supported": False}, "ansible-core older than 2.19"),
    ({"interpreter": "/usr/bin/python3.99"}, "ansible_python_interpreter /usr/bin/python3.99 is not the controller"),
])
def test_everything_else_runs_as_a_module(changes, expected):
    assert reason(**changes).startswith(expected)


def test_the_same_file_in_another_directory_is_another_environment(tmp_path):
    link = tmp_path / "python"
    link.symlink_to(os.path.realpath(sys.executable))  # e.g. the base Python of this virtualenv
    if os.path.dirname(os.path.abspath(sys.executable)) != str(tmp_path):
        assert reason(interpreter=str(link)) is not None


def test_file_descriptor_capture_takes_what_child_processes_write():
    with in_process._FileDescriptorCapture(1) as out, in_process._FileDescriptorCapture(2) as err:
        subprocess.run(["sh", "-c", "echo to-stdout; echo to-stderr >&2"], check=True)
        os.write(1, b"by fd\n")
    assert out.text() == "to-stdout\nby fd\n"
    assert err.text() == "to-stderr\n"


def payload(args):
    return json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": False, "_ansible_no_log": False,
                                               "_ansible_tmpdir": None}}).encode()


def test_a_module_failure_is_its_json_and_rc_1():
    args = payload({"release": "r", "namespace": "n", "bogus": 1})
    stdout, _stderr, rc = in_process._call_main("release_info", args, {})
    assert rc == 1
    result = json.loads(stdout[stdout.index("{"):])
    assert result["failed"] and "bogus" in result["msg"], result


def test_an_exception_is_a_traceback_on_stderr(monkeypatch):
    from ansible_collections.berth.converge.plugins.modules import release_info

    def crash():
        raise RuntimeError("boom")

    monkeypatch.setattr(release_info, "main", crash)
    stdout, stderr, rc = in_process._call_main("release_info", payload({}), {"BERTH_TEST_VARIABLE": "set"})
    assert (stdout, rc) == ("", 1)
    assert "RuntimeError: boom" in stderr and "Traceback" in stderr
    assert os.environ.pop("BERTH_TEST_VARIABLE") == "set"  # the task's environment
