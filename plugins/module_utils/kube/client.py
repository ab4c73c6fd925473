# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes API client from the shared connection options (common_args.KUBE_ARGS), as kubernetes.core does."""

from __future__ import annotations

import os

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException
except ImportError as exc:  # reported by the module through missing_required_lib
    KUBERNETES_IMPORT_ERROR = exc
else:
    KUBERNETES_IMPORT_ERROR = None

# Enough connections for concurrent applies and watches against one API server.
POOL_SIZE = 32


def api_client(params):
    """An ApiClient for the module parameters of KUBE_ARGS.

    Order: host + api_key; else kubeconfig (option, KUBECONFIG, ~/.kube/config) with context;
    else the in-cluster service account.
    """
    if KUBERNETES_IMPORT_ERROR:
        raise ConvergeError(f"the kubernetes Python library is required: {KUBERNETES_IMPORT_ERROR}")
    configuration = k8s_client.Configuration()
    kubeconfig = params.get("kubeconfig") or os.environ.get("KUBECONFIG")
    try:
        if params.get("host") and params.get("api_key"):
            configuration.host = params["host"]
            configuration.api_key = {"authorization": "Bearer " + params["api_key"]}
        elif kubeconfig or os.path.exists(os.path.expanduser("~/.kube/config")):
            k8s_config.load_kube_config(config_file=kubeconfig, context=params.get("context"),
                                        client_configuration=configuration, persist_config=False)
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        raise ConvergeError(f"cannot load Kubernetes configuration from {kubeconfig or 'the cluster'}: {exc}")
    if params.get("host"):
        configuration.host = params["host"]
    if params.get("ca_cert"):
        configuration.ssl_ca_cert = params["ca_cert"]
    if params.get("client_cert"):
        configuration.cert_file = params["client_cert"]
    if params.get("client_key"):
        configuration.key_file = params["client_key"]
    if params.get("validate_certs") is not None:
        configuration.verify_ssl = params["validate_certs"]
    configuration.connection_pool_maxsize = POOL_SIZE
    return k8s_client.ApiClient(configuration)
