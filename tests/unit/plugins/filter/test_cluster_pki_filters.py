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
                            "cluster_pki_flags", "cluster_pki_status", "cluster_pki_seconds",
                            "cluster_pki_stale_files", "cluster_pki_file_specs"}
    with pytest.raises(AnsibleFilterError, match="podmig.live.cluster_pki_plan"):
        filters["cluster_pki_plan"]([])
    assert filters["cluster_pki_nth_ip"]("10.96.0.0/12", 10) == "10.96.0.10"


# ---- cluster_pki_status: what the community.crypto modules must look at ------------------------

import datetime  # noqa: E402
import os  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.timezone.utc)
EKU = {"serverAuth": ExtendedKeyUsageOID.SERVER_AUTH, "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH}


def write_key(path, key=None, mode=0o600):
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    os.chmod(path, mode)
    return key


def issue(entry, key, ca_cert=None, ca_key=None, days=365, sans=None, subject_cn=None):
    """A certificate for a plan entry, shaped like community.crypto's (KU and BC critical, SKI, AKI)."""
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, subject_cn or entry["common_name"])]
    if entry["organization"]:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, entry["organization"]))
    subject = x509.Name(attrs)
    usage = set(entry["key_usage"])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(ca_cert.subject if ca_cert is not None else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=1))
               .not_valid_after(NOW + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=entry["is_ca"], path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature="digitalSignature" in usage, content_commitment=False,
                                            key_encipherment="keyEncipherment" in usage, data_encipherment=False,
                                            key_agreement=False, key_cert_sign="keyCertSign" in usage,
                                            crl_sign="cRLSign" in usage, encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if entry["extended_key_usage"]:
        builder = builder.add_extension(x509.ExtendedKeyUsage([EKU[u] for u in entry["extended_key_usage"]]),
                                        critical=False)
    names = []
    for san in (entry["sans"] if sans is None else sans):
        kind, value = san.split(":", 1)
        names.append(x509.DNSName(value) if kind == "DNS" else x509.IPAddress(cp.ipaddress.ip_address(value)))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    signer = ca_key if ca_key is not None else key
    if ca_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    return builder.sign(signer, hashes.SHA256())


def write_cert(path, cert, mode=0o644):
    with open(path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(path, mode)


@pytest.fixture(scope="module")
def small_plan():
    return cp.pki_plan(CONTROL_PLANE, WORKERS[:1])


@pytest.fixture(scope="module")
def key_pool(small_plan):
    """RSA keys are slow to generate: one per certificate of small_plan for the whole module."""
    return {entry["name"]: rsa.generate_private_key(public_exponent=65537, key_size=2048)
            for entry in small_plan["certs"]}


@pytest.fixture
def pki(tmp_path, small_plan, key_pool):
    """Every certificate of small_plan issued as community.crypto would; returns (dir, keys, certs)."""
    keys, certs = {}, {}
    for entry in small_plan["certs"]:
        base = os.path.join(str(tmp_path), entry["path"])
        keys[entry["name"]] = write_key(base + ".key", key_pool[entry["name"]])
        if entry["is_ca"]:
            certs[entry["name"]] = issue(entry, keys[entry["name"]], days=3650)
        else:
            certs[entry["name"]] = issue(entry, keys[entry["name"]], certs[entry["ca"]], keys[entry["ca"]])
        write_cert(base + ".crt", certs[entry["name"]])
    return str(tmp_path), keys, certs


def entry_of(plan, name):
    return next(c for c in plan["certs"] if c["name"] == name)


def test_seconds():
    assert cp.seconds("+30d") == 30 * 86400
    assert cp.seconds("+1w2d3h4m5s") == 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5
    assert cp.seconds("-10m") == -600
    assert cp.seconds("3600") == 3600
    assert cp.seconds(7) == 7
    for bad in ("30d", "+30x", "20271129115235Z", ""):
        with pytest.raises(ValueError):
            cp.seconds(bad)


def test_status_of_an_empty_directory_lists_everything(tmp_path, small_plan):
    status = cp.pki_status(small_plan, str(tmp_path), now=NOW)
    assert status["todo"] == [c["name"] for c in small_plan["certs"]]
    assert status["renew"] == []
    assert set(status["reasons"].values()) == {"no key"}


def test_status_of_an_up_to_date_pki_is_empty(pki, small_plan):
    status = cp.pki_status(small_plan, pki[0], now=NOW)
    assert status == {"todo": [], "renew": [], "reasons": {}}


def test_a_changed_san_list_is_looked_at(pki):
    plan = cp.pki_plan(CONTROL_PLANE, WORKERS[:1], apiserver_extra_sans=["api.example"])
    status = cp.pki_status(plan, pki[0], now=NOW)
    assert status["todo"] == ["apiserver"] and status["reasons"]["apiserver"] == "SANs differ"


def test_expiring_certificates_are_renewed(pki, small_plan):
    status = cp.pki_status(small_plan, pki[0], now=NOW, renew_before="+400d")
    leaves = [c["name"] for c in small_plan["certs"] if not c["is_ca"]]
    assert status["todo"] == leaves and status["renew"] == leaves
    assert cp.pki_status(small_plan, pki[0], now=NOW + datetime.timedelta(days=340))["renew"] == leaves


def test_a_re_keyed_ca_sends_its_leaves_to_the_modules(pki, small_plan):
    directory, keys, _certs = pki
    entry = entry_of(small_plan, "etcd-ca")
    base = os.path.join(directory, entry["path"])
    key = write_key(base + ".key", keys["admin"])
    write_cert(base + ".crt", issue(entry, key, days=3650))
    status = cp.pki_status(small_plan, directory, now=NOW)
    etcd = [c["name"] for c in small_plan["certs"] if c["ca"] == "etcd-ca"]
    assert status["todo"] == etcd
    for name in etcd:
        assert status["reasons"][name] == "not signed by its CA"


def test_a_ca_under_examination_sends_its_leaves_too(pki, small_plan):
    directory = pki[0]
    os.chmod(os.path.join(directory, "pki", "front-proxy-ca.crt"), 0o600)
    status = cp.pki_status(small_plan, directory, now=NOW)
    assert status["todo"] == ["front-proxy-ca", "front-proxy-client"]
    assert status["reasons"] == {"front-proxy-ca": "certificate mode 600", "front-proxy-client": "its CA is re-examined"}


@pytest.mark.parametrize("damage,reason", [
    ("key-mode", "key mode 644"),
    ("key-size", "key is not RSA 2048"),  # a 1024-bit key (quick to generate)
    ("key-garbage", "unreadable key"),
    ("other-key", "not for its key"),
    ("no-cert", "no certificate"),
    ("cert-garbage", "unreadable certificate"),
    ("subject", "subject differs"),
    ("wrong-ca", "not signed by its CA"),
])
def test_damage_is_noticed(pki, small_plan, damage, reason):
    directory, keys, certs = pki
    entry = entry_of(small_plan, "kubelet:podmig-w1")
    base = os.path.join(directory, entry["path"])
    ca = entry_of(small_plan, "ca")
    if damage == "key-mode":
        os.chmod(base + ".key", 0o644)
    elif damage == "key-size":
        write_key(base + ".key", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    elif damage == "key-garbage":
        with open(base + ".key", "w", encoding="ascii") as handle:
            handle.write("garbage")
    elif damage == "other-key":
        write_key(base + ".key", keys["admin"])
    elif damage == "no-cert":
        os.unlink(base + ".crt")
    elif damage == "cert-garbage":
        with open(base + ".crt", "w", encoding="ascii") as handle:
            handle.write("garbage")
    elif damage == "subject":
        write_cert(base + ".crt", issue(entry, keys[entry["name"]], certs["ca"], keys["ca"], subject_cn="someone"))
    elif damage == "wrong-ca":
        write_cert(base + ".crt", issue(entry, keys[entry["name"]], certs["ca"], keys["etcd-ca"]))
    assert ca["name"] == "ca"
    status = cp.pki_status(small_plan, directory, now=NOW)
    assert status["todo"] == [entry["name"]]
    assert status["reasons"] == {entry["name"]: reason}


def test_ecc_keys(tmp_path):
    plan = cp.pki_plan(CONTROL_PLANE)
    entry = plan["certs"][0]
    base = os.path.join(str(tmp_path), entry["path"])
    key = write_key(base + ".key", ec.generate_private_key(ec.SECP256R1()))
    write_cert(base + ".crt", issue(entry, key, days=3650))
    status = cp.pki_status(plan, str(tmp_path), key_type="ECC", key_curve="secp256r1", now=NOW)
    assert "ca" not in status["todo"]
    assert cp.pki_status(plan, str(tmp_path), key_type="ECC", key_curve="secp384r1", now=NOW)["reasons"]["ca"] \
        == "key is not ECC secp384r1"
    assert cp.pki_status(plan, str(tmp_path), now=NOW)["reasons"]["ca"] == "key is not RSA 2048"


# ---- cluster_pki_stale_files: which installed files differ from the controller's -------------

FILES = [
    {"src": "/build/bin/etcd", "dest": "/usr/local/bin/etcd", "mode": "0755"},
    {"src": "/pki/ca.key", "dest": "/etc/kubernetes/pki/ca.key", "mode": "0600"},
    {"src": "/pki/ca.crt", "dest": "/etc/kubernetes/pki/ca.crt", "mode": "0644"},
    {"src": "/pki/my dir/x.crt", "dest": "/etc/kubernetes/pki/x y.crt", "mode": "0644"},
]


def test_stale_files_all_in_place():
    local = ["aaa  /build/bin/etcd", "bbb  /pki/ca.key", "ccc  /pki/ca.crt", "ddd  /pki/my dir/x.crt"]
    remote = ["755 aaa /usr/local/bin/etcd", "600 bbb /etc/kubernetes/pki/ca.key", "644 ccc /etc/kubernetes/pki/ca.crt",
              "644 ddd /etc/kubernetes/pki/x y.crt"]
    assert cp.stale_files(FILES, local, remote) == {"outdated": [], "missing": [], "absent": []}


def test_stale_files_content_mode_absent_missing():
    # sha256sum -b marks binary mode with '*'.
    local = ["aaa  /build/bin/etcd", "bbb  /pki/ca.key", "missing /pki/ca.crt", "ddd */pki/my dir/x.crt"]
    remote = ["755 OLD /usr/local/bin/etcd", "644 bbb /etc/kubernetes/pki/ca.key", "absent /etc/kubernetes/pki/ca.crt",
              "absent /etc/kubernetes/pki/x y.crt", ""]
    assert cp.stale_files(FILES, local, remote) == {
        "outdated": ["/usr/local/bin/etcd", "/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/x y.crt"],
        "missing": ["/pki/ca.crt"],
        "absent": ["/etc/kubernetes/pki/x y.crt"],
    }


def test_stale_files_refuses_garbage():
    with pytest.raises(ValueError):
        cp.stale_files(FILES, ["justonefield"], [])


def test_file_specs():
    assert cp.file_specs(["ca.crt", "etcd/ca.key"], "/src/pki/", "/etc/kubernetes/pki", "0644", key_mode="0600") == [
        {"name": "ca.crt", "src": "/src/pki/ca.crt", "dest": "/etc/kubernetes/pki/ca.crt", "mode": "0644"},
        {"name": "etcd/ca.key", "src": "/src/pki/etcd/ca.key", "dest": "/etc/kubernetes/pki/etcd/ca.key", "mode": "0600"},
    ]
    assert cp.file_specs(["etcd"], "/b", "/usr/local/bin", "0755")[0]["mode"] == "0755"
    assert cp.file_specs(["x.key"], "/a", "/b", "0600")[0]["mode"] == "0600"
