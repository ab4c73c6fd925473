# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs a berth.converge module in the task's worker process when the module would run on the controller
anyway, with the controller's Python: no interpreter start, no AnsiballZ payload to build, unpack and compile
(about 0.5 s of each module start) and no module file or arguments written anywhere.

The worker is a fork of ``ansible-playbook`` made for this one task and gone after it, so what the module leaves
behind (threads, globals, environment) goes with it. The module's ``main()`` runs exactly as under AnsiballZ:
the same arguments (``_update_module_args``), the same JSON on stdout, parsed by the same
``_parse_returned_data``, so results, ``no_log`` masking, warnings and failures do not change.

Everything else (another host, ``become``, ``async``, a ``ansible_python_interpreter`` other than the
controller's Python, ``berth_converge_in_process: false``, or ansible-core before 2.19) runs the module the
usual way.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import threading
import traceback

from ansible.module_utils.common.text.converters import to_bytes
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.vars.clean import remove_internal_keys

try:  # ansible-core 2.19: modules serialize with a profile; older cores run the modules the usual way
    from ansible.module_utils.common.json import Direction, get_module_encoder
except ImportError:
    Direction = get_module_encoder = None

display = Display()

IN_PROCESS_VAR = "berth_converge_in_process"
SERIALIZATION_PROFILE = "legacy"  # what AnsibleModule uses unless a module asks for another


def _is_controller_python(interpreter):
    """Whether the configured interpreter is this process's Python (unset, auto discovery, or the same file)."""
    if not interpreter or str(interpreter).startswith("auto"):
        return True
    path = os.path.abspath(str(interpreter).split()[0])
    # a virtualenv's python and python3 are links to one file, shared with the Python it was made from:
    # the same file in the same directory is the same environment
    return path == sys.executable or (os.path.dirname(path) == os.path.dirname(os.path.abspath(sys.executable))
                                      and os.path.realpath(path) == os.path.realpath(sys.executable))


def in_process_reason(connection, become, async_val, interpreter, enabled, supported=True):
    """None when the module may run in this process; otherwise why it runs the usual way."""
    if not supported:
        return "ansible-core older than 2.19"
    if not enabled:
        return f"{IN_PROCESS_VAR} is false"
    if connection != "local":
        return f"connection {connection} (not local)"
    if become:
        return "become"
    if async_val:
        return "async"
    if not _is_controller_python(interpreter):
        return f"ansible_python_interpreter {interpreter} is not the controller's Python"
    return None


def preload(short_name):
    """Import the module (and so its libraries) in this process. ansible-playbook loads an action plugin before
    it forks the task's worker, so every worker that runs the module in process finds it imported; an import
    error is left for the worker to report."""
    try:
        importlib.import_module(f"ansible_collections.berth.converge.plugins.modules.{short_name}")
    except Exception:  # noqa: BLE001 pylint: disable=broad-exception-caught
        pass


class ModuleInProcessAction(ActionBase):
    """Action plugin of a berth.converge module: runs it in the worker when it would run on the controller."""

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        reason = in_process_reason(
            connection=getattr(self._connection, "transport", None),
            become=self._play_context.become,
            async_val=self._task.async_val,
            interpreter=self._templar.template(task_vars.get("ansible_python_interpreter")),
            enabled=boolean(self._templar.template(task_vars.get(IN_PROCESS_VAR, True)), strict=False),
            supported=get_module_encoder is not None,
        )
        if reason:
            display.vvv(f"berth.converge: running {self._task.action} as a module: {reason}")
            result.update(self._execute_module(task_vars=task_vars))
            return result
        display.vvv(f"berth.converge: running {self._task.action} in the worker process")
        result.update(self._run_in_process(task_vars))
        return result

    def _run_in_process(self, task_vars):
        module_name = self._task.resolved_action or self._task.action
        module_args = dict(self._task.args)
        self._update_module_args(module_name, module_args, task_vars)
        environment = {}
        self._compute_environment_string(environment)
        encoder = get_module_encoder(SERIALIZATION_PROFILE, Direction.CONTROLLER_TO_MODULE)
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": module_args}, cls=encoder)
        stdout, stderr, rc = _call_main(module_name.rsplit(".", 1)[-1], to_bytes(payload), environment)
        data = self._parse_returned_data({"rc": rc, "stdout": stdout, "stderr": stderr}, SERIALIZATION_PROFILE)
        remove_internal_keys(data)
        return data


class _FileDescriptorCapture:
    """What is written to file descriptor ``fd`` (by a child process, say) while active: a pipe drained by a
    thread, so nothing reaches the worker's own output nor any file."""

    def __init__(self, fd):
        self.fd = fd
        self.chunks = []

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = os.dup(self.fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, self.fd)
        os.close(write_end)
        self._reader = threading.Thread(target=self._drain, args=(read_end,), daemon=True)
        self._reader.start()
        return self

    def _drain(self, read_end):
        with os.fdopen(read_end, "rb") as pipe:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                self.chunks.append(chunk)

    def __exit__(self, *exc_info):
        os.dup2(self._saved, self.fd)  # closes the pipe's last write end: the reader ends
        os.close(self._saved)
        self._reader.join()

    def text(self):
        return b"".join(self.chunks).decode("utf-8", "replace")


def _call_main(short_name, payload, environment):
    """Run berth.converge's module ``short_name`` as AnsiballZ would; returns (stdout, stderr, rc). Its output,
    and that of any process it starts, is captured at the file descriptors too, as a module's would be."""
    from ansible.module_utils import basic

    os.environ.update({key: str(value) for key, value in environment.items()})  # this worker only
    basic._ANSIBLE_ARGS = payload
    basic._ANSIBLE_PROFILE = SERIALIZATION_PROFILE
    stdout, stderr, rc = io.StringIO(), io.StringIO(), 0
    with _FileDescriptorCapture(1) as fd_stdout, _FileDescriptorCapture(2) as fd_stderr:
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                importlib.import_module(f"ansible_collections.berth.converge.plugins.modules.{short_name}").main()
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: B036 - reported as the module failure AnsiballZ would report
            stderr.write(traceback.format_exc())
            rc = 1
        finally:
            basic._ANSIBLE_ARGS = None
    return fd_stdout.text() + stdout.getvalue(), fd_stderr.text() + stderr.getvalue(), rc
