#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: chart_render
short_description: Render a project's chart for a commit with werf's values
version_added: 0.1.0
description:
  - Renders the deploy templates of a project as werf does for a commit and returns the Kubernetes
    objects in apply order (CustomResourceDefinitions, Namespaces, then by the C(werf.io/weight)
    annotation, ascending and stable).
  - A Helm chart (C(Chart.yaml), C(templates/), C(crds/), subcharts in C(charts/)) is rendered with
    C(helm template). As in werf, C(Chart.yaml) may be left out; its name defaults to the project name
    and its version to C(1.0.0).
  - Jinja2 templates (C(*.j2) files anywhere under the chart directory, except partials named C(_*))
    are rendered with the same values, exposed as C(Values), C(werf) and C(Release), and the function
    C(werf_image) that takes an image name and returns its full reference. C(include) paths are relative
    to the chart directory. The filters C(to_json) and C(to_yaml) are available.
  - The chart is read from the commit, not the working tree, unless O(dev=true).
  - "Values injected as werf does: C(.Values.werf.image.NAME) (full reference), C(.Values.werf.tag.NAME),
    C(.Values.werf.repo), C(.Values.werf.commit.hash), C(.Values.werf.commit.date.human) and C(.unix),
    C(.Values.werf.env), C(.Values.werf.namespace), C(.Values.werf.name); for subcharts
    C(.Values.global.werf.images.NAME) with C(registry), C(repository), C(tag), C(digest) and C(ref),
    C(.Values.global.werf.name) and C(.Values.global.env). They take precedence over every other value,
    as in werf."
  - The named template C(werf_image) is added to every chart, so
    C({{ tuple "backend" . | include "werf_image" }}) works in the chart and its subcharts.
  - "Chart dependencies (C(dependencies) of C(Chart.yaml)) come from C(charts/) (unpacked or archived),
    C(file://) paths (read from the commit like the chart, so they must be inside the project), OCI
    registries (C(oci://)) and HTTP chart repositories. When one is missing from C(charts/), Helm's own
    C(helm dependency build) fetches them (honouring C(Chart.lock)), with a temporary Helm configuration,
    cache and registry login file: the user's Helm state is neither needed nor changed, so repository
    aliases (C(@name)) and registry logins do not apply. A failure names the dependency and gives Helm's
    message."
  - werf's C(export-values) of a dependency gives it values of the parent chart (the computed ones, werf's
    service values included), as werf does; Helm's C(import-values) and C(global) work as in Helm.
  - The main chart's C(templates/NOTES.txt) is rendered as Helm renders it and returned as RV(notes); the
    converge role prints it after a successful converge.
  - Helm hooks (objects annotated C(helm.sh/hook)) are returned among RV(manifests), unchanged;
    M(berth.converge.release_apply) recognises them by that annotation and runs them around the release.
  - werf secret values are decrypted as werf does, from the chart's C(secret-values.yaml) (read
    automatically when present) and O(secret_values_files), with the key from O(secret_key),
    E(WERF_SECRET_KEY), the project's C(.werf_secret_key), or C(global_secret_key) in werf's home
    directory (E(WERF_HOME), else C(~/.werf)), first found wins. A missing or wrong key fails before
    anything is rendered, naming the file (and the value's key path). Decrypted values are not shown in
    any message; they appear only inside the returned manifests.
  - "With O(use_cluster=true), the chart sees its release and cluster as with werf and C(helm upgrade):
    C(.Release.Revision) is the next revision (the latest recorded one + 1), C(.Release.IsUpgrade) is true
    when the release has revisions (else C(.Release.IsInstall)), and C(.Capabilities.KubeVersion) and
    C(.Capabilities.APIVersions) are the cluster's. Without it the chart renders as a first install (revision
    1) with Helm's default capabilities, as C(helm template) does. Helm's template command cannot set the
    revision, so C(.Release.Revision) is written into the templates of the chart, its C(file://)
    dependencies and unpacked subcharts as a constant; a chart from a repository archive sees 1."
extends_documentation_fragment:
  - berth.converge.attributes
  - berth.converge.attributes.INFO_MODULE
  - berth.converge.kubernetes
options:
  use_cluster:
    description:
      - Read the release history and the cluster's capabilities for C(.Release) and C(.Capabilities), with
        the Kubernetes connection options. The converge role sets it, except in render-only mode.
    type: bool
    default: false
  timeout:
    description:
      - With O(use_cluster), seconds to keep retrying while the API server is unreachable or answers with a
        transient error (connection refused or reset, 429, 502, 503, 504, etcd leader change).
    type: int
    default: 60
  project_dir:
    description:
      - Directory of the project (where C(werf.yaml) is), inside a Git work tree.
    type: path
    required: true
  config:
    description:
      - Path of the werf configuration, relative to O(project_dir). Read when present for C(project) and
        C(deploy.*); a project without it renders with werf's defaults.
    type: str
    default: werf.yaml
  chart_dir:
    description:
      - Chart directory relative to O(project_dir).
      - Defaults to C(deploy.helmChartDir) of C(werf.yaml), else C(.helm).
    type: str
  revision:
    description:
      - Git revision (commit) whose chart and values files are rendered; named as in
        M(berth.converge.image_digest) and M(berth.converge.image_build).
    type: str
    default: HEAD
    aliases: [commit]
  dev:
    description:
      - Read the chart, C(werf.yaml) and values files from the working tree (tracked and untracked files
        not ignored by C(.gitignore)) instead of the commit, like werf's C(--dev).
      - The commit values (C(.Values.werf.commit)) still describe O(revision).
    type: bool
    default: false
  images:
    description:
      - The images to inject, as returned by M(berth.converge.image_digest) (its C(images) list).
      - Each item needs C(name) and C(ref); C(repo), C(tag) and C(digest) are used when present.
    type: list
    elements: dict
    default: []
  repo:
    description:
      - Value of C(.Values.werf.repo).
      - Defaults to the repository every image was pushed under (C(REPO/NAME)), or an empty string when
        the images have no single one.
    type: str
  env:
    description:
      - Environment name, as werf's C(--env); part of the default release name and namespace and given to
        templates as C(.Values.werf.env) (an empty string when not set).
    type: str
  release:
    description:
      - Release name. Defaults to C(deploy.helmRelease) of C(werf.yaml), else C(PROJECT-ENV) (or C(PROJECT)
        without O(env)), slugified as werf does (at most 53 characters).
    type: str
  namespace:
    description:
      - Namespace of the release. Defaults to C(deploy.namespace) of C(werf.yaml), else C(PROJECT-ENV) (or
        C(PROJECT) without O(env)), slugified as werf does (at most 63 characters).
    type: str
  values_files:
    description:
      - Extra values files, relative to O(project_dir) and read from the commit (or the working tree with
        O(dev=true)); absolute paths are read from the controller's file system. Later files win.
    type: list
    elements: str
    default: []
  secret_values_files:
    description:
      - Extra werf secret values files (encrypted with C(werf helm secret values encrypt)), found like
        O(values_files).
      - Precedence as in werf, lowest first, is the chart's C(values.yaml), the chart's
        C(secret-values.yaml), O(values_files), O(secret_values_files), O(set), O(set_string).
      - Every decrypted value is a string, as in werf.
    type: list
    elements: str
    default: []
  secret_key:
    description:
      - werf secret key (hex, 16, 24 or 32 bytes) for the secret values files.
      - Defaults to E(WERF_SECRET_KEY), then the C(.werf_secret_key) file in O(project_dir), then
        C(global_secret_key) in werf's home directory (E(WERF_HOME), else C(~/.werf)). Only looked up when
        there is a secret values file.
    type: str
  set:
    description:
      - Values to set, keyed by Helm's C(--set) path syntax (C(a.b[0].c), C(\.) for a literal dot); values
        keep their type. They override O(values_files) and O(secret_values_files).
      - Keys under C(werf), C(global.werf) and C(global.env) are rejected, since chart_render sets those.
    type: dict
    default: {}
  set_string:
    description:
      - Like O(set), with every value turned into a string (booleans as C(true)/C(false)). Overrides O(set).
    type: dict
    default: {}
  allow_empty:
    description:
      - Accept a chart that renders no resources (or a missing chart directory) instead of failing.
    type: bool
    default: false
  helm_binary:
    description:
      - Helm 3 binary, a name looked up on E(PATH) or a path.
    type: str
    default: helm
  project:
    description:
      - Project name. Defaults to C(project) of C(werf.yaml).
    type: str
notes:
  - Values files reach Helm unchanged. O(set) integers go through C(--set), other O(set) values through
    C(--set-json), and O(set_string) through C(--set-string), so values are typed as with Helm's CLI.
  - C(.Values.werf.repo) and C(.Values.werf.tag.NAME) are werf's, but images are stored at C(REPO/NAME:TAG)
    rather than werf's C(REPO:TAG), so C(REPO:TAG) built from them is not an image reference; use
    C(.Values.werf.image.NAME).
  - C(.Values.global.werf.images.NAME.digest) is the content digest from M(berth.converge.image_digest)
    (also the tag), not a registry manifest digest.
  - Values files encrypted with Ansible Vault are refused with a clear error - a module does not receive
    the play's vault secrets. Decrypt them on the controller (the C(berth.converge.converge) role's
    C(converge_vault_values_files), or the C(ansible.builtin.unvault) lookup) and pass the values in O(set).
seealso:
  - module: berth.converge.image_digest
  - module: berth.converge.release_apply
requirements:
  - PyYAML >= 6.0
  - GitPython >= 3.1.30
  - Jinja2 >= 3.1
  - cryptography >= 3.1 (werf secret values)
author:
  - berth.converge contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Render the chart of the checked-out commit for production
  berth.converge.chart_render:
    project_dir: /srv/shop
    env: production
    images: "{{ digests.images }}"
    values_files:
      - .helm/values-production.yaml
    set:
      replicas: 3
      ingress.annotations.kubernetes\.io/ingress\.class: nginx
  register: rendered

- name: Render with werf secret values (.helm/secret-values.yaml is read automatically)
  berth.converge.chart_render:
    project_dir: /srv/shop
    env: production
    images: "{{ digests.images }}"
    secret_values_files:
      - .helm/secret-values-production.yaml
    secret_key: "{{ vault_werf_secret_key }}"
  register: rendered
  no_log: true  # the manifests hold the decrypted values

- name: Render the working tree while developing the chart
  berth.converge.chart_render:
    project_dir: "{{ playbook_dir }}/.."
    dev: true
    namespace: shop-dev
    images: "{{ digests.images }}"
"""

RETURN = r"""
manifests:
  description: Rendered Kubernetes objects in apply order, Helm hooks included, those of C(crds/) directories
    aside (see RV(crds)).
  returned: success
  type: list
  elements: dict
  sample:
    - apiVersion: v1
      kind: ConfigMap
      metadata:
        name: shop-settings
      data:
        env: production
release:
  description: Release name.
  returned: success
  type: str
  sample: shop-production
namespace:
  description: Namespace of the release.
  returned: success
  type: str
  sample: shop-production
crds:
  description:
    - The CustomResourceDefinitions of the C(crds/) directories of the chart and its enabled subcharts, apart
      from RV(manifests) as Helm keeps them apart; pass them to M(berth.converge.release_apply) O(berth.converge.release_apply#module:crds), which
      creates those that do not exist and never updates, owns or deletes them.
  returned: success
  type: list
  elements: dict
chart:
  description: Name, version and appVersion of the chart (werf's defaults when it has no C(Chart.yaml)), which
    M(berth.converge.release_apply) records for C(helm history) and C(helm list).
  returned: success
  type: dict
  sample: {"name": "shop", "version": "1.0.0", "appVersion": "2.3"}
notes:
  description:
    - The main chart's C(templates/NOTES.txt) rendered with the same values, as Helm prints it after an
      install or upgrade (leading and trailing white space removed); empty when the chart has none.
  returned: success
  type: str
  sample: "Visit https://shop.example.com to use your application."
commit:
  description: The rendered commit.
  returned: success
  type: dict
  contains:
    hash:
      description: Full commit hash.
      type: str
      sample: 1b28e6843a963c5bdb3579f6fc93317cc028051c
    date:
      description: Author date, ISO 8601.
      type: str
      sample: "2022-01-21T18:51:39+03:00"
    unix:
      description: Author date, seconds since the epoch.
      type: int
      sample: 1642780299
"""

from ansible_collections.berth.converge.plugins.module_utils.common_args import (
    KUBE_ARGS, KUBE_ENV_FALLBACKS, with_env_fallbacks)
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.render import RenderOptions, render_chart
from ansible_collections.berth.converge.plugins.module_utils.requirements import KUBE_LIBRARIES, check_libraries
from ansible_collections.berth.converge.plugins.module_utils.secret_data import Hidden, SecretDataModule
from ansible_collections.berth.converge.plugins.module_utils.validation import validate_module_params

ARGUMENT_SPEC = dict(
    project_dir=dict(type="path", required=True),
    config=dict(type="str", default="werf.yaml"),
    chart_dir=dict(type="str"),
    revision=dict(type="str", default="HEAD", aliases=["commit"]),
    dev=dict(type="bool", default=False),
    images=dict(type="list", elements="dict", default=[]),
    repo=dict(type="str"),
    env=dict(type="str"),
    release=dict(type="str"),
    namespace=dict(type="str"),
    values_files=dict(type="list", elements="str", default=[]),
    secret_values_files=dict(type="list", elements="str", default=[], no_log=False),
    secret_key=dict(type="str", no_log=True),
    set=dict(type="dict", default={}, no_log=True),  # may hold Ansible Vault values; never shown
    set_string=dict(type="dict", default={}, no_log=True),
    allow_empty=dict(type="bool", default=False),
    helm_binary=dict(type="str", default="helm"),
    project=dict(type="str"),
    use_cluster=dict(type="bool", default=False),
    timeout=dict(type="int", default=60),
    **with_env_fallbacks(KUBE_ARGS, KUBE_ENV_FALLBACKS),
)


def render_options(params):
    """RenderOptions from the module parameters."""
    names = ("project_dir", "config", "chart_dir", "dev", "images", "repo", "env", "release", "namespace",
             "values_files", "secret_values_files", "secret_key", "allow_empty", "helm_binary", "project")
    return RenderOptions(commit=params["revision"], set_values=params["set"], set_string_values=params["set_string"],
                         release_context=cluster_reader(params) if params["use_cluster"] else None,
                         **{name: params[name] for name in names})


def cluster_reader(params):
    """(release, namespace) -> ReleaseContext from the cluster; the Kubernetes client is imported only then."""
    from ansible_collections.berth.converge.plugins.module_utils.kube.client import api_client
    from ansible_collections.berth.converge.plugins.module_utils.render_cluster import release_context

    return lambda release, namespace: release_context(api_client(params, params["timeout"]), release, namespace)


def main():
    module = SecretDataModule(argument_spec=ARGUMENT_SPEC, secret_data={"set": Hidden, "set_string": Hidden},
                              supports_check_mode=True)
    validate_module_params(module)
    check_libraries(module, "yaml", "git", "jinja2", "cryptography",
                    *(KUBE_LIBRARIES if module.params["use_cluster"] else ()))
    try:
        result = render_chart(render_options(module.params))
    except ConvergeError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
