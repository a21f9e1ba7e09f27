# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the cluster_pki filters (plugins/filter/cluster_pki.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.podmig.live.plugins.filter import cluster_pki as cp
from ansible_collections.podmig.live.plugins.filter.cluster_pki import FilterModule

CONTROL_PLANE = [{"name": "podmig-cp", "ip": "10.89.7.10"}]
WORKERS = [{"name": "podmig-w1", "ip": "10.89.7.11"}, {"name": "podmig-w2", "ip": "10.89.7.12"}]


@pytest.fixture
def plan():
    return cp.pki_plan(CONTROL_PLANE, WORKERS, apiserver_url="https://10.89.7.10:6443")


def certs(plan):
    return {c["name"]: c for c in plan["certs"]}


def test_nth_ip():
    assert cp.nth_ip("10.96.0.0/12", 1) == "10.96.0.1"
    assert cp.nth_ip("10.96.0.0/12", 10) == "10.96.0.10"
    assert cp.nth_ip("10.96.0.5/12") == "10.96.0.1"  # host bits are ignored
    assert cp.nth_ip("fd00::/108", 1) == "fd00::1"
    with pytest.raises(ValueError):
        cp.nth_ip("10.0.0.0/30", 4)


@pytest.mark.parametrize("value,expected", [
    ("10.0.0.1", "IP:10.0.0.1"),
    ("::1", "IP:::1"),
    ("kubernetes.default", "DNS:kubernetes.default"),
    ("DNS:x", "DNS:x"),
    ("IP:1.2.3.4", "IP:1.2.3.4"),
])
def test_san(value, expected):
    assert cp.san(value) == expected


def test_san_refuses_empty():
    with pytest.raises(ValueError):
        cp.san(" ")


def test_cas_come_first_and_every_leaf_names_an_existing_ca(plan):
    names = [c["name"] for c in plan["certs"]]
    assert names[:3] == ["ca", "etcd-ca", "front-proxy-ca"]
    by_name = certs(plan)
    for cert in plan["certs"]:
        if cert["is_ca"]:
            assert cert["ca"] is None and cert["ca_path"] is None
            assert "keyCertSign" in cert["key_usage"]
        else:
            ca = by_name[cert["ca"]]
            assert ca["is_ca"] and names.index(ca["name"]) < names.index(cert["name"])
            assert cert["ca_path"] == ca["path"]
            assert "keyCertSign" not in cert["key_usage"]


def test_apiserver_serving_cert(plan):
    api = certs(plan)["apiserver"]
    assert api["ca"] == "ca" and api["extended_key_usage"] == ["serverAuth"]
    for san in ("IP:10.89.7.10", "DNS:podmig-cp", "IP:10.96.0.1", "DNS:kubernetes", "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local", "DNS:localhost",
                "IP:127.0.0.1"):
        assert san in api["sans"]
    assert len(api["sans"]) == len(set(api["sans"]))
    assert plan["service_ip"] == "10.96.0.1"


def test_apiserver_extra_sans_and_domain():
    plan = cp.pki_plan(CONTROL_PLANE, [], service_cidr="10.100.0.0/16", domain="lab.example.",
                       apiserver_extra_sans=["api.lab.example", "192.0.2.7", "localhost"])
    sans = certs(plan)["apiserver"]["sans"]
    assert "DNS:kubernetes.default.svc.lab.example" in sans
    assert "IP:10.100.0.1" in sans and "IP:10.96.0.1" not in sans
    assert "DNS:api.lab.example" in sans and "IP:192.0.2.7" in sans
    assert sans.count("DNS:localhost") == 1


def test_client_identities(plan):
    by_name = certs(plan)
    assert by_name["admin"]["common_name"] == "kubernetes-admin"
    assert by_name["admin"]["organization"] == "system:masters"
    assert by_name["controller-manager"]["common_name"] == "system:kube-controller-manager"
    assert by_name["scheduler"]["common_name"] == "system:kube-scheduler"
    kubelet_client = by_name["apiserver-kubelet-client"]
    assert kubelet_client["common_name"] == "kube-apiserver-kubelet-client"
    # Not system:masters: the control_plane role binds system:kubelet-api-admin to this user.
    assert kubelet_client["organization"] is None
    for name in ("admin", "controller-manager", "scheduler", "apiserver-kubelet-client", "apiserver-etcd-client",
                 "front-proxy-client", "etcd-healthcheck-client"):
        assert by_name[name]["extended_key_usage"] == ["clientAuth"]
        assert by_name[name]["sans"] == []


def test_etcd_certs_are_signed_by_the_etcd_ca(plan):
    by_name = certs(plan)
    for name in ("etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client"):
        assert by_name[name]["ca"] == "etcd-ca"
    for name in ("etcd-server", "etcd-peer"):
        assert by_name[name]["extended_key_usage"] == ["serverAuth", "clientAuth"]
        assert {"IP:10.89.7.10", "DNS:podmig-cp", "IP:127.0.0.1", "DNS:localhost"} <= set(by_name[name]["sans"])
    assert by_name["front-proxy-client"]["ca"] == "front-proxy-ca"


def test_per_worker_kubelet_certs_and_kubeconfigs(plan):
    by_name = certs(plan)
    for node in WORKERS:
        client = by_name["kubelet-client:" + node["name"]]
        assert client["common_name"] == "system:node:" + node["name"]
        assert client["organization"] == "system:nodes"
        assert client["extended_key_usage"] == ["clientAuth"]
        assert client["path"] == "nodes/%s/kubelet-client" % node["name"]
        serving = by_name["kubelet:" + node["name"]]
        assert serving["sans"] == ["DNS:" + node["name"], "IP:" + node["ip"]]
        assert serving["extended_key_usage"] == ["serverAuth"]
        assert serving["path"] == "nodes/%s/kubelet" % node["name"]
        assert "nodes/" + node["name"] in plan["dirs"]
    confs = {k["name"]: k for k in plan["kubeconfigs"]}
    assert set(confs) == {"admin", "controller-manager", "scheduler", "kubelet:podmig-w1", "kubelet:podmig-w2"}
    w1 = confs["kubelet:podmig-w1"]
    assert w1["path"] == "nodes/podmig-w1/kubelet.conf"
    assert w1["user"] == "system:node:podmig-w1"
    assert w1["cert_path"] == "nodes/podmig-w1/kubelet-client"
    assert w1["ca_path"] == "pki/ca"
    assert all(k["server"] == "https://10.89.7.10:6443" for k in plan["kubeconfigs"])
    assert confs["admin"]["cert_path"] == "pki/admin"


def test_every_cert_has_a_key_and_the_service_account_key_is_there(plan):
    keys = [k["path"] for k in plan["private_keys"]]
    assert sorted(keys) == sorted([c["path"] for c in plan["certs"]] + ["pki/sa"])
    assert len(keys) == len(set(keys))
    for key in keys:
        parent = key.rsplit("/", 1)[0]
        assert parent in plan["dirs"]


def test_default_apiserver_url_is_the_first_control_plane_node():
    plan = cp.pki_plan(CONTROL_PLANE)
    assert plan["apiserver_url"] == "https://10.89.7.10:6443"
    assert [c for c in plan["certs"] if c["name"].startswith("kubelet")] == []


def test_several_control_plane_nodes_share_the_serving_certs():
    plan = cp.pki_plan(CONTROL_PLANE + [{"name": "cp2", "ip": "10.89.7.20"}], WORKERS)
    sans = certs(plan)["apiserver"]["sans"]
    assert {"DNS:podmig-cp", "DNS:cp2", "IP:10.89.7.10", "IP:10.89.7.20"} <= set(sans)
    assert {"DNS:cp2", "IP:10.89.7.20"} <= set(certs(plan)["etcd-peer"]["sans"])


@pytest.mark.parametrize("control_plane,workers,message", [
    ([], [], "at least one control-plane node"),
    ([{"name": "cp"}], [], "needs a name and an ip"),
    ([{"name": "cp", "ip": "not-an-ip"}], [], "does not appear to be an IPv4 or IPv6 address"),
    (CONTROL_PLANE, [{"name": "podmig-cp", "ip": "10.89.7.11"}], "both control plane and worker"),
    (CONTROL_PLANE, [WORKERS[0], WORKERS[0]], "duplicate names"),
])
def test_bad_inputs(control_plane, workers, message):
    with pytest.raises(ValueError, match=message):
        cp.pki_plan(control_plane, workers)


def test_nodes_from_hostvars():
    hostvars = {
        "podmig-cp": {"cluster_node_ip": "10.89.7.10", "ansible_host": "ignored", "cluster_node_name": "cp"},
        "w1": {"ansible_host": "10.89.7.11"},
        "w2": {},
    }
    assert cp.nodes(["podmig-cp", "w1", "w2"], hostvars, name_var="cluster_node_name") == [
        {"name": "cp", "ip": "10.89.7.10"},
        {"name": "w1", "ip": "10.89.7.11"},
        {"name": "w2", "ip": "w2"},
    ]
    assert cp.nodes(None, hostvars) == []


def test_flags():
    assert cp.flags({"b": True, "a": 1, "c": None, "d": ["x", "y"], "e": False, "f": "s"}) == [
        "--a=1", "--b=true", "--d=x,y", "--e=false", "--f=s"]
    assert cp.flags({}) == []
    with pytest.raises(TypeError):
        cp.flags(["--a"])


def test_filter_module_wraps_errors():
    filters = FilterModule().filters()
    assert set(filters) == {"cluster_pki_plan", "cluster_pki_nth_ip", "cluster_pki_san", "cluster_pki_nodes",
                            "cluster_pki_flags"}
    with pytest.raises(AnsibleFilterError, match="podmig.live.cluster_pki_plan"):
        filters["cluster_pki_plan"]([])
    assert filters["cluster_pki_nth_ip"]("10.96.0.0/12", 10) == "10.96.0.10"
