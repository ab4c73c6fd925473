# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AnsibleModule for modules whose options carry data that may hold secrets (manifests, values).

Ansible keeps an option out of syslog/journald ("Invoked with ...") and out of the errors of its own argument
checks only when the option is ``no_log``. But ``no_log`` also masks every string of the value wherever it
occurs in the result, which would garble resource names and whole manifests. So such options are ``no_log``
in the argument spec, and once the arguments are valid their strings are dropped again from what Ansible
masks (the strings of real credentials stay); the result shows those options only through their mask
function (``invocation`` at -vvv), and the module masks Secret values in whatever else it returns.
"""

from __future__ import annotations

import base64

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.berth.converge.plugins.module_utils.kube.apply import LAST_APPLIED_ANNOTATION, mask_secrets

HIDDEN = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"  # what Ansible shows for a no_log option


def strings_of(value):
    """The strings Ansible masks for a no_log value (its leaves, numbers included, as text)."""
    if isinstance(value, (str, bytes)):
        return {value if isinstance(value, str) else value.decode("utf-8", "replace")} if value else set()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple, set)):
        return set().union(*(strings_of(item) for item in value))
    if value is None or isinstance(value, bool):
        return set()
    return {str(value)}


class Hidden:
    """Options shown not at all: values that may come from Ansible Vault."""

    @staticmethod
    def show(_value):
        return HIDDEN

    @staticmethod
    def secret_strings(value):
        return strings_of(value)


class Manifests:
    """Options holding Kubernetes objects: shown with the values of Secrets masked."""

    @staticmethod
    def show(value):
        if not isinstance(value, list):
            return HIDDEN
        return [mask_secrets(obj) if isinstance(obj, dict) else HIDDEN for obj in value]

    @staticmethod
    def secret_strings(value):
        """The values of the Secrets (as given and base64-decoded); all strings of what is no object."""
        if not isinstance(value, list):
            return strings_of(value)
        found = set()
        for obj in value:
            if not isinstance(obj, dict):
                found |= strings_of(obj)
            elif obj.get("kind") == "Secret":
                annotations = obj.get("metadata", {}).get("annotations") if isinstance(obj.get("metadata"), dict) else {}
                last_applied = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(annotations, dict) else None
                found |= strings_of([obj.get("data"), obj.get("stringData"), last_applied])
                found |= {_base64_text(text) for text in strings_of(obj.get("data"))} - {None}
        return found


def _base64_text(text):
    try:
        return base64.b64decode(text, validate=True).decode("utf-8") or None
    except (ValueError, UnicodeDecodeError):
        return None


class SecretDataModule(AnsibleModule):
    """AnsibleModule whose options named in ``secret_data`` (``{option: Manifests or Hidden}``, each
    ``no_log=True`` in the argument spec) never reach the logs, yet do not mask their strings in the result."""

    def __init__(self, argument_spec, secret_data, **kwargs):
        for name in secret_data:
            if not argument_spec[name].get("no_log"):
                raise ValueError(f"option {name} carries secret data and must be no_log in the argument spec")
        self._secret_data = secret_data
        self._checked = False
        super().__init__(argument_spec, **kwargs)
        self._unmask_data(keep_secrets=False)
        self._checked = True

    def _unmask_data(self, keep_secrets):
        """Drop the strings of the secret_data options from what Ansible masks, but those of credentials
        (and, with keep_secrets, the Secret values in them)."""
        data, keep = set(), set()
        for name, opts in self.argument_spec.items():
            value = self.params.get(name)
            if name in self._secret_data:
                data |= strings_of(value)
                if keep_secrets:
                    keep |= self._secret_data[name].secret_strings(value)
            elif opts.get("no_log"):
                keep |= strings_of(value)
        self.no_log_values -= data - keep

    def shown_params(self):
        """The module arguments as the result may show them (``invocation.module_args``)."""
        return {name: self._secret_data[name].show(value) if name in self._secret_data and value is not None
                else value for name, value in self.params.items()}

    def exit_json(self, **kwargs):
        kwargs.setdefault("invocation", {"module_args": self.shown_params()})
        super().exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        if not self._checked:
            # An argument error of AnsibleModule: the values may be of any type, their Secret values stay
            # masked wherever they occur; the other strings of manifests and values need not be.
            self._unmask_data(keep_secrets=True)
        kwargs.setdefault("invocation", {"module_args": self.shown_params()})
        super().fail_json(msg, **kwargs)
