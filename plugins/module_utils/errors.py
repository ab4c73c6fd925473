# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type domain code raises for problems the user can act on."""

from __future__ import annotations


class ConvergeError(Exception):
    """A failure the user can act on. The message names the file, field, image or resource at fault.

    ``details`` carries structured context for the module result (never secrets).
    """

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details
