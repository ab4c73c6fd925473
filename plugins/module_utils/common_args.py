# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by several modules; their docs are the doc fragments of the same names."""

from __future__ import annotations

# doc fragment berth.converge.registry
REGISTRY_ARGS = dict(
    registry_username=dict(type="str"),
    registry_password=dict(type="str", no_log=True),
    docker_config=dict(type="path"),
    ca_cert=dict(type="path"),
    validate_certs=dict(type="bool", default=True),
    insecure_registries=dict(type="list", elements="str", default=[]),
)

# doc fragment berth.converge.docker
DOCKER_ARGS = dict(
    docker_host=dict(type="str"),
    docker_timeout=dict(type="int", default=600),
)

# doc fragment berth.converge.kubernetes (names and K8S_AUTH_* fallbacks as kubernetes.core)
KUBE_ARGS = dict(
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"]),
    client_cert=dict(type="path", aliases=["cert_file"]),
    client_key=dict(type="path", aliases=["key_file"], no_log=False),
    validate_certs=dict(type="bool", aliases=["verify_ssl"]),
)

# doc fragment berth.converge.readiness
READINESS_ARGS = dict(
    readiness_rules=dict(type="list", elements="dict", default=[], options=dict(
        group=dict(type="str", required=True), kind=dict(type="str", required=True),
        ready=dict(type="str"), failed=dict(type="str"))),
)

KUBE_ENV_FALLBACKS = dict(
    kubeconfig="K8S_AUTH_KUBECONFIG",
    context="K8S_AUTH_CONTEXT",
    host="K8S_AUTH_HOST",
    api_key="K8S_AUTH_API_KEY",
    ca_cert="K8S_AUTH_SSL_CA_CERT",
    client_cert="K8S_AUTH_CERT_FILE",
    client_key="K8S_AUTH_KEY_FILE",
    validate_certs="K8S_AUTH_VERIFY_SSL",
)

REGISTRY_ENV_FALLBACKS = dict(
    registry_username="BERTH_REGISTRY_USERNAME",
    registry_password="BERTH_REGISTRY_PASSWORD",
    docker_config="DOCKER_CONFIG_FILE",
)

DOCKER_ENV_FALLBACKS = dict(docker_host="DOCKER_HOST")


def with_env_fallbacks(spec, fallbacks):
    """Copy of an argument spec whose options fall back to environment variables, as kubernetes.core does."""
    from ansible.module_utils.basic import env_fallback

    out = {}
    for name, opts in spec.items():
        opts = dict(opts)
        if name in fallbacks:
            opts["fallback"] = (env_fallback, [fallbacks[name]])
        out[name] = opts
    return out
