# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of berth.converge.plugins.module_utils.common_args.REGISTRY_ARGS
    DOCUMENTATION = r"""
options:
  registry_username:
    description:
      - Username for the registries of the references.
      - Falls back to the E(BERTH_REGISTRY_USERNAME) environment variable.
      - Without it, credentials come from O(docker_config), then anonymous access.
    type: str
  registry_password:
    description:
      - Password or token for O(registry_username).
      - Falls back to the E(BERTH_REGISTRY_PASSWORD) environment variable. Never logged.
    type: str
  docker_config:
    description:
      - Path of a Docker C(config.json) whose C(auths), C(credHelpers) and C(credsStore) give credentials
        per registry (helpers are used when their C(docker-credential-*) program is on PATH).
      - Defaults to E(DOCKER_CONFIG_FILE), then C($DOCKER_CONFIG/config.json), then C(~/.docker/config.json).
    type: path
  ca_cert:
    description:
      - PEM file of the certificate authority that signed the registries' TLS certificates.
    type: path
  validate_certs:
    description:
      - Verify registry TLS certificates. Turn off only for testing.
    type: bool
    default: true
  insecure_registries:
    description:
      - Registry hosts (C(host:port)) that may be reached over plain HTTP.
      - Loopback registries (C(127.0.0.0/8), C(localhost), C([::1])) always may, as Docker allows.
    type: list
    elements: str
    default: []
"""
