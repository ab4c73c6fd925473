# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of berth.converge.plugins.module_utils.common_args.DOCKER_ARGS
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - Docker Engine API address, for example C(unix:///var/run/docker.sock) or C(tcp://127.0.0.1:2376).
      - Falls back to the E(DOCKER_HOST) environment variable, then the Docker default socket.
      - A TLS-protected Engine is reached with E(DOCKER_TLS_VERIFY) and E(DOCKER_CERT_PATH), as the docker CLI does.
    type: str
  docker_timeout:
    description:
      - Seconds to wait for one Docker Engine API call.
    type: int
    default: 600
requirements:
  - docker (Python SDK) >= 7.0
"""
