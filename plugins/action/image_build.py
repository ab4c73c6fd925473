# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs berth.converge.image_build in the worker process when it would run on the controller (see plugin_utils/in_process)."""

from __future__ import annotations

from ansible_collections.berth.converge.plugins.plugin_utils.in_process import ModuleInProcessAction, preload

preload("image_build")


class ActionModule(ModuleInProcessAction):
    pass
