# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark helper: writes each task's wall time as JSON lines to $BERTH_TASK_SECONDS_FILE."""

from __future__ import annotations

DOCUMENTATION = r"""
name: task_seconds
type: aggregate
short_description: Record each task's wall time (benchmarks only)
description:
  - Appends one JSON line per task with its name and seconds to the file named by E(BERTH_TASK_SECONDS_FILE).
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_seconds"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._task = None
        self._start = None

    def _finish(self):
        path = os.environ.get("BERTH_TASK_SECONDS_FILE")
        if self._task is not None and path:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"task": self._task, "seconds": time.perf_counter() - self._start}) + "\n")
        self._task = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._finish()
        self._task = task.get_name()
        self._start = time.perf_counter()

    def v2_playbook_on_stats(self, stats):
        self._finish()
