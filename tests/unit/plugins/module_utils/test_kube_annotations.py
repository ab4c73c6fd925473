# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of werf's deploy annotations: parsing and validation (kube/annotations.py) and what apply.py
makes of them (order of writes and deletes, diff masking)."""

from __future__ import annotations

import pytest

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube import annotations as wa
from ansible_collections.berth.converge.plugins.module_utils.kube import apply


def manifest(kind="Deployment", name="web", annotations=None, api_version="apps/v1", **fields):
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": "shop", "annotations": annotations or {}},
            "spec": {"template": {}}, **fields}


def parse(**annotations):
    return wa.parse(manifest(annotations=annotations))


# --- validation ---------------------------------------------------------------------------------

def test_unknown_werf_annotation_is_a_warning_naming_it_and_the_object():
    lifecycle = wa.parse(manifest(annotations={"werf.io/deploy-policy": "x", "example.com/free": "y",
                                               "werf.io/log-regex": ".*"}))
    assert lifecycle.warnings[1] == ("Deployment shop/web: annotation werf.io/log-regex has no effect in "
                                     "berth.converge (it controls werf's log output while tracking)")
    assert "Deployment shop/web: unknown annotation werf.io/deploy-policy is ignored" in lifecycle.warnings[0]
    assert len(lifecycle.warnings) == 2


@pytest.mark.parametrize("key, value, expected", [
    ("werf.io/fail-mode", "Sometimes", "Deployment shop/web: annotation werf.io/fail-mode is 'Sometimes'"),
    ("werf.io/failures-allowed-per-replica", "many", "annotation werf.io/failures-allowed-per-replica is 'many'"),
    ("werf.io/no-activity-timeout", "soon", "Deployment shop/web: annotation werf.io/no-activity-timeout"),
    ("berth.converge/ready-when", "status.[ready", "Deployment/shop/web: annotation berth.converge/ready-when"),
])
def test_bad_tracking_and_readiness_annotations_fail_when_parsed_before_any_write(key, value, expected):
    with pytest.raises(ConvergeError) as caught:
        parse(**{key: value})
    assert expected in str(caught.value)


def test_known_annotations_give_no_warning():
    lifecycle = parse(**{"werf.io/weight": "1", "werf.io/fail-mode": "HopeUntilEndOfDeployProcess",
                         "werf.io/version": "v2", "werf.io/sensitive": "true"})
    assert lifecycle.warnings == ()


@pytest.mark.parametrize("key, value, message", [
    ("werf.io/delete-policy", "before-creation,sometimes", "has sometimes; allowed: before-creation"),
    ("werf.io/delete-policy", "succeeded,", "has an empty item"),
    ("werf.io/delete-propagation", "foreground", "is not one of Foreground, Background, Orphan"),
    ("werf.io/ownership", "nobody", "is not one of release, anyone"),
    ("werf.io/resource-policy", "skip-create,forever", "has forever"),
    ("helm.sh/resource-policy", "skip-delete", "is not one of keep"),
    ("werf.io/replicas-on-creation", "-1", "is not a whole number"),
    ("werf.io/replicas-on-creation", "two", "is not a whole number"),
    ("werf.io/deploy-on", "install,sometime", "has sometime"),
    ("werf.io/deploy-on", "pre-install", "supports only the main stages"),
    ("werf.io/deploy-dependency-db", "kind=StatefulSet,name=db", "lacks the state property"),
    ("werf.io/deploy-dependency-db", "state=absent,name=db", "has state=absent; allowed: present, ready"),
    ("werf.io/deploy-dependency-db", "state=ready", "names no target"),
    ("werf.io/deploy-dependency-db", "state=ready,colour=red", "has unknown properties colour"),
    ("werf.io/deploy-dependency-db", "state=ready,name", "expected comma-separated key=value"),
    ("werf.io/delete-dependency-db", "state=ready,name=db", "has state=ready; allowed: absent"),
    ("db.external-dependency.werf.io/resource", "secret", "is not <type>[.<version>.<group>]/<name>"),
    ("db.external-dependency.werf.io/resource", "deployments.v1/app", "is not <type>"),
    ("db.external-dependency.werf.io/resource", "all/app", "names type all"),
    ("werf.io/sensitive-paths", "$..password", "only dotted paths"),
    ("werf.io/sensitive", "maybe", "is not true or false"),
])
def test_bad_values_are_errors_naming_object_and_annotation(key, value, message):
    with pytest.raises(ConvergeError) as error:
        parse(**{key: value})
    assert str(error.value).startswith(f"Deployment shop/web: annotation {key}: {value!r} ")
    assert message in str(error.value)


def test_values_parsed():
    lifecycle = parse(**{
        "werf.io/deploy-dependency-db": "state=ready,kind=StatefulSet,name=postgres",
        "werf.io/delete-dependency-app": "state=absent,kind=Deployment,group=apps,version=v1,name=app",
        "cfg.external-dependency.werf.io/resource": "deployments.v1.apps/app",
        "cfg.external-dependency.werf.io/namespace": "other",
        "werf.io/delete-policy": "before-creation, succeeded",
        "werf.io/delete-propagation": "Orphan",
        "werf.io/ownership": "anyone",
        "werf.io/deploy-on": "install,rollback",
        "werf.io/resource-policy": "skip-update,keep",
        "werf.io/replicas-on-creation": "3",
        "werf.io/sensitive-paths": r"$.spec.template.spec.containers[*].env[*].value, $.data.a\,b",
    })
    assert lifecycle.deploy_dependencies == (wa.Dependency("db", "ready", kind="StatefulSet", name="postgres"),)
    assert lifecycle.delete_dependencies[0].matches("apps/v1", "Deployment", "shop", "app")
    assert not lifecycle.delete_dependencies[0].matches("apps/v1", "StatefulSet", "shop", "app")
    assert lifecycle.external_dependencies == (wa.ExternalDependency("cfg", "deployments", "v1", "apps", "app",
                                                                     "other"),)
    assert lifecycle.delete_policies == ("before-creation", "succeeded")
    assert (lifecycle.delete_propagation, lifecycle.ownership, lifecycle.deploy_on) == (
        "Orphan", "anyone", ("install", "rollback"))
    assert lifecycle.unowned and lifecycle.skip_delete
    assert lifecycle.replicas_on_creation == 3
    assert lifecycle.sensitive_paths == ("$.spec.template.spec.containers[*].env[*].value", "$.data.a,b")


def test_helm_keep_and_werf_policy_precedence():
    assert parse(**{"helm.sh/resource-policy": "keep"}).skip_delete
    assert not parse(**{"helm.sh/resource-policy": "keep", "werf.io/resource-policy": "skip-update"}).skip_delete


def test_external_dependency_in_werf_2_form():
    lifecycle = parse(**{"app.external-dependency.werf.io": "apps/v1:Deployment:other:app",
                         "cfg.external-dependency.werf.io": "v1:ConfigMap:cfg"})
    assert set(lifecycle.external_dependencies) == {
        wa.ExternalDependency("app", "deployment", "v1", "apps", "app", "other"),
        wa.ExternalDependency("cfg", "configmap", "v1", None, "cfg")}
    with pytest.raises(ConvergeError, match="is not <apiVersion>:<kind>"):
        parse(**{"app.external-dependency.werf.io": "Deployment/app"})


def test_external_dependency_core_type_and_lone_namespace_warning():
    lifecycle = parse(**{"s.external-dependency.werf.io/resource": "Secret/config",
                         "x.external-dependency.werf.io/namespace": "other"})
    assert lifecycle.external_dependencies == (wa.ExternalDependency("s", "secret", None, None, "config"),)
    assert "x.external-dependency.werf.io/namespace has no x.external-dependency.werf.io/resource" in \
        lifecycle.warnings[0]


# --- sensitive paths ----------------------------------------------------------------------------

def test_path_segments():
    assert wa.path_segments("$.data.*") == ["data", "*"]
    assert wa.path_segments("spec.containers[0].env[*].value") == ["spec", "containers", 0, "env", "*", "value"]
    assert wa.path_segments("$.data['tls.key']") == ["data", "tls.key"]
    assert wa.path_segments("$..x") is None
    assert wa.path_segments("$.items[?(@.a)]") is None


def test_diff_view_masks_sensitive_paths_keeping_changes_visible():
    obj = manifest(annotations={"werf.io/sensitive-paths": "$.spec.template.spec.containers[*].env[*].value"})
    obj["spec"] = {"template": {"spec": {"containers": [{"name": "app", "env": [
        {"name": "TOKEN", "value": "s3cr3t-token"}, {"name": "MODE", "value": "fast"}]}]}}}
    paths = wa.parse(obj).sensitive_paths
    view = apply.diff_view(obj, paths)
    env = view["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0]["name"] == "TOKEN" and env[0]["value"].startswith("<hidden:")
    assert env[1]["value"] == apply.mask_value("fast")
    assert "s3cr3t-token" not in repr(view)
    assert obj["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "s3cr3t-token"  # input intact
    assert apply.diff_view(obj)["spec"] == obj["spec"]


# --- order of writes and deletes ----------------------------------------------------------------

class FakeMapper:
    def find(self, api_version, kind):
        return None


def planned(name, kind="Deployment", weight=None, **annotations):
    if weight is not None:
        annotations["werf.io/weight"] = str(weight)
    obj = manifest(kind=kind, name=name, annotations=annotations,
                   api_version="apps/v1" if kind in ("Deployment", "StatefulSet") else "v1")
    item = apply.prepare([obj], "rel", "shop", FakeMapper())[0]
    return apply.Planned(item.rid, item.api_version, apply.CREATE, desired=item)


def names(steps):
    return [[p.rid.name for p in step.planned] for step in steps]


def test_deploy_dependency_goes_after_its_dependency_whatever_the_weight():
    db = planned("db", "StatefulSet", weight=5)
    web = planned("web", weight=-10, **{"werf.io/deploy-dependency-db": "state=ready,kind=StatefulSet,name=db"})
    cache = planned("cache", **{"werf.io/deploy-dependency-web": "state=present,name=web"})
    other = planned("other")
    warnings = []
    steps = apply.deploy_steps([web, db, cache, other], warnings)
    assert names(steps) == [["other"], ["db"], ["web"], ["cache"]]
    assert [step.weight_group for step in steps] == [True, True, False, False]
    assert steps[2].ready == [db] and steps[3].ready == []  # state=present waits for nothing
    assert warnings == []


def test_unmatched_dependency_warns_and_cycle_fails():
    lone = planned("web", **{"werf.io/deploy-dependency-x": "state=ready,name=nothing"})
    warnings = []
    assert names(apply.deploy_steps([lone], warnings)) == [["web"]]
    assert "werf.io/deploy-dependency-x (name=nothing) matches no resource of the release" in warnings[0]
    a = planned("a", **{"werf.io/deploy-dependency-b": "state=present,name=b"})
    b = planned("b", **{"werf.io/deploy-dependency-a": "state=present,name=a"})
    with pytest.raises(ConvergeError, match="werf.io dependencies form a cycle: Deployment shop/a -> "
                                            "Deployment shop/b -> Deployment shop/a"):
        apply.deploy_steps([a, b])


def test_delete_dependency_orders_deletes():
    def delete(name, **annotations):
        live = manifest(name=name, annotations=annotations)
        return apply.Planned(apply.ResourceId.of(live), "apps/v1", apply.DELETE, live=live)

    app = delete("app", **{"werf.io/delete-dependency-db": "state=absent,name=db"})
    db = delete("db")
    steps = apply.delete_steps([app, db])
    assert [[p.rid.name for p in members] for members, _awaited in steps] == [["db"], ["app"]]
    assert steps[1][1] == [db]


def test_ownership_anyone_gets_no_helm_metadata_and_before_creation_recreates():
    item = apply.prepare([manifest(annotations={"werf.io/ownership": "anyone",
                                                "werf.io/delete-policy": "before-creation"})],
                         "rel", "shop", FakeMapper())[0]
    assert "meta.helm.sh/release-name" not in item.obj["metadata"]["annotations"]
    assert item.recreate
    skip = apply.prepare([manifest(annotations={"werf.io/delete-policy": "before-creation",
                                                "werf.io/resource-policy": "skip-recreate"})],
                         "rel", "shop", FakeMapper())[0]
    assert not skip.recreate


def test_deployed_on_filters_by_stage_with_a_warning():
    only_install = manifest(name="seed", annotations={"werf.io/deploy-on": "install"})
    warnings = []
    assert apply.deployed_on([only_install, manifest()], "upgrade", warnings) == [manifest()]
    assert warnings == ["Deployment shop/seed is not deployed on upgrade (werf.io/deploy-on: install)"]
    assert apply.deployed_on([only_install], "install", []) == [only_install]
