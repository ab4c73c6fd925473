# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A project to converge: its Git revision and the werf.yaml read from that same revision."""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.berth.converge.plugins.module_utils.config import WerfConfig, decode_config, join_path
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.git import GitProject
from ansible_collections.berth.converge.plugins.module_utils.werf_template import load_werf_config


@dataclass
class Project:
    git: GitProject
    config: WerfConfig


def load_project(project_dir, config_path="werf.yaml", revision="HEAD", dev=False, env=None):
    """Open the Git project and parse its werf.yaml from the converged tree (giterminism), rendering its Go
    template first for the werf environment ``env``."""
    git = GitProject(project_dir, revision=revision, dev=dev)
    text = git.read_blob(join_path("", config_path))
    if text is None:
        where = "the working tree" if dev else f"commit {git.commit.hash[:12]}"
        raise ConvergeError(f"{config_path}: not found in {where} of {project_dir}"
                            + ("" if dev else " (is it committed?)"), file=config_path)
    config = load_werf_config(decode_config(text, config_path), config_path, git, env)
    return Project(git=git, config=config)
