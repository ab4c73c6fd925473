"""Run a module's main() in this process, as Ansible would run it, and tell a clean failure from a traceback."""
import contextlib
import importlib
import io
import json
import traceback
from typing import NamedTuple, Optional

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes


class InProcessRun(NamedTuple):
    result: Optional[dict]     # the JSON the module printed, None when it printed nothing
    traceback: Optional[str]   # the unhandled exception, None when the module ended through exit/fail_json


def run_in_process(module, args, *, check_mode=False):
    """Run ``berth.converge.<module>`` with ``args``; never raises for what the module does."""
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode,
                                       "_ansible_no_log": False, "_ansible_tmpdir": None}}
    basic._ANSIBLE_ARGS = to_bytes(json.dumps(payload))
    basic._ANSIBLE_PROFILE = "legacy"
    out = io.StringIO()
    trace = None
    try:
        code = importlib.import_module(f"ansible_collections.berth.converge.plugins.modules.{module}")
        with contextlib.redirect_stdout(out):
            code.main()
    except SystemExit:
        pass
    except BaseException:  # noqa: B036 - what a user would see as a MODULE FAILURE
        trace = traceback.format_exc()
    finally:
        basic._ANSIBLE_ARGS = None
    text = out.getvalue().strip()
    result = None
    if text:
        result = json.JSONDecoder().raw_decode(text[text.index("{"):])[0]
    return InProcessRun(result, trace)
