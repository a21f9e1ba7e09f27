# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Pure helpers of the cluster_pki and control_plane roles: which keys, certificates and
kubeconfigs a cluster needs, and the command-line flags of its services."""

from __future__ import annotations

DOCUMENTATION = r"""
name: cluster_pki
short_description: The certificate plan of a Kubernetes cluster, and service flags
version_added: 0.1.0
author: podmig developers
description:
  - Filters used by the C(podmig.live.cluster_pki) and C(podmig.live.control_plane) roles. All are
    pure functions of their arguments, so what each certificate says (subject, SANs, usages, its
    CA) is unit-tested without OpenSSL.
  - C(cluster_pki_plan) takes the control-plane nodes and the workers (lists of C({name, ip}))
    and returns C({dirs, private_keys, certs, kubeconfigs, service_ip, apiserver_url}).
    C(certs) lists the CAs first, then the certificates they sign, each with C(name), C(path)
    (relative to the PKI directory, no extension), C(ca) and C(ca_path) (its CA, null for a
    CA), C(common_name), C(organization), C(sans) (C(DNS:x) / C(IP:x)), C(key_usage),
    C(extended_key_usage) and C(is_ca). C(private_keys) lists every key (C(name), C(path)), the
    service-account key C(pki/sa) included. C(kubeconfigs) lists C(name), C(path), C(user),
    C(server), C(cert), C(cert_path), C(ca), C(ca_path).
  - C(cluster_pki_nth_ip) gives the n-th address of a network (C(10.96.0.0/12) -> C(10.96.0.1)).
  - C(cluster_pki_nodes) builds the C({name, ip}) list from inventory host names and hostvars.
  - C(cluster_pki_flags) renders a dict of flags as C(--name=value) strings, sorted, leaving out
    flags whose value is null (so an override can drop a default flag).
  - C(cluster_pki_status) reads the files of a plan in a PKI directory (with the cryptography
    library, on the controller) and returns C({todo, renew, reasons}): C(todo) names the
    certificates (with their keys) that are not provably what the plan asks for, so that the
    community.crypto modules run only for those (they make the final decision and do the work);
    C(renew) those among them that expire within C(renew_before) (a time spec such as C(+30d)).
    A certificate is up to date when its key exists with the right type, size and mode (0600),
    and the certificate has mode 0644, the key's public key, the plan's subject, SANs, key usages,
    extended key usages and basic constraints, is signed by its CA's current certificate (or by
    itself for a CA), and is valid beyond now + C(renew_before).
  - C(cluster_pki_stale_files) compares files to install (C([{src, dest, mode}])) with
    C(sha256sum) output of their sources (C(<sha256>  <src>), or C(missing <src>)) and a listing
    of their destinations (C(<octal mode> <sha256> <dest>), or C(absent <dest>)); returns
    C({outdated, missing, absent}): destinations whose content or mode differ, sources that do not
    exist, destinations that do not exist.
  - C(cluster_pki_file_specs) turns file names into C([{name, src, dest, mode}]) under a source
    and a destination directory (C(key_mode) for names ending in C(.key)).
  - C(cluster_pki_seconds) converts a relative time spec (C(+30d), C(+1w2d3h), C(-10m)) to seconds.
options:
  _input:
    description: The control-plane node list, a network, host names or a flag dict.
    required: true
"""

EXAMPLES = r"""
- name: What the cluster needs
  ansible.builtin.set_fact:
    plan: >-
      {{ [{'name': 'cp', 'ip': '10.0.0.10'}] | podmig.live.cluster_pki_plan(
           [{'name': 'w1', 'ip': '10.0.0.11'}], service_cidr='10.96.0.0/12',
           apiserver_url='https://10.0.0.10:6443') }}

- name: The kubernetes service address
  ansible.builtin.debug:
    msg: "{{ '10.96.0.0/12' | podmig.live.cluster_pki_nth_ip(1) }}"
"""

RETURN = r"""
_value:
  description: Depends on the filter (dict, list, str); see the description.
  type: raw
"""

import datetime
import ipaddress
import os
import re
import stat

from ansible.errors import AnsibleFilterError
from ansible_collections.podmig.live.plugins.module_utils.filters import wrap_filter

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - the controller's venv has it (requirements.txt)
    HAS_CRYPTOGRAPHY = False

SERVER = ["serverAuth"]
CLIENT = ["clientAuth"]
BOTH = ["serverAuth", "clientAuth"]
LEAF_USAGE = ["digitalSignature", "keyEncipherment"]
CA_USAGE = ["digitalSignature", "keyEncipherment", "keyCertSign", "cRLSign"]


def nth_ip(network, index=1):
    """The index-th address of network (negative: from the end)."""
    net = ipaddress.ip_network(str(network), strict=False)
    index = int(index)
    if not -net.num_addresses <= index < net.num_addresses:
        raise ValueError("%s has no address number %d" % (net, index))
    return str(net[index])


def san(value):
    """'IP:x' for an address, 'DNS:x' for a name; values already prefixed are kept."""
    value = str(value).strip()
    if not value:
        raise ValueError("empty subject alternative name")
    if value.startswith(("DNS:", "IP:")):
        return value
    try:
        return "IP:" + str(ipaddress.ip_address(value))
    except ValueError:
        return "DNS:" + value


def _sans(values):
    out = []
    for value in values:
        entry = san(value)
        if entry not in out:
            out.append(entry)
    return out


def _node_list(nodes, what):
    if not isinstance(nodes, (list, tuple)):
        raise TypeError("%s must be a list of {name, ip}, not %r" % (what, nodes))
    out = []
    for node in nodes:
        if not isinstance(node, dict) or not node.get("name") or not node.get("ip"):
            raise ValueError("each of %s needs a name and an ip, got %r" % (what, node))
        ipaddress.ip_address(str(node["ip"]))
        out.append({"name": str(node["name"]), "ip": str(node["ip"])})
    names = [n["name"] for n in out]
    if len(set(names)) != len(names):
        raise ValueError("%s has duplicate names: %s" % (what, ", ".join(names)))
    return out


def _ca(name, path, common_name):
    return {"name": name, "path": path, "ca": None, "common_name": common_name, "organization": None,
            "sans": [], "key_usage": list(CA_USAGE), "extended_key_usage": [], "is_ca": True}


def _leaf(name, path, ca, common_name, eku, sans=(), organization=None):
    return {"name": name, "path": path, "ca": ca, "common_name": common_name, "organization": organization,
            "sans": _sans(sans), "key_usage": list(LEAF_USAGE), "extended_key_usage": list(eku),
            "is_ca": False}


def pki_plan(control_plane, workers=None, apiserver_url=None, service_cidr="10.96.0.0/12",
             domain="cluster.local", apiserver_extra_sans=None, etcd_extra_sans=None):
    """Everything a cluster with these control-plane nodes and workers needs (see DOCUMENTATION)."""
    control_plane = _node_list(control_plane, "control_plane")
    workers = _node_list(workers or [], "workers")
    if not control_plane:
        raise ValueError("the cluster needs at least one control-plane node")
    clash = set(n["name"] for n in control_plane) & set(n["name"] for n in workers)
    if clash:
        raise ValueError("hosts both control plane and worker: %s" % ", ".join(sorted(clash)))
    domain = str(domain).strip(".")
    if not apiserver_url:
        apiserver_url = "https://%s:6443" % control_plane[0]["ip"]

    cp_names = [n["name"] for n in control_plane]
    cp_ips = [n["ip"] for n in control_plane]
    service_ip = nth_ip(service_cidr, 1)
    apiserver_sans = (cp_names + ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                  "kubernetes.default.svc." + domain, "localhost"]
                      + cp_ips + [service_ip, "127.0.0.1"] + list(apiserver_extra_sans or []))
    etcd_sans = cp_names + ["localhost"] + cp_ips + ["127.0.0.1", "::1"] + list(etcd_extra_sans or [])

    certs = [
        _ca("ca", "pki/ca", "kubernetes"),
        _ca("etcd-ca", "pki/etcd/ca", "etcd-ca"),
        _ca("front-proxy-ca", "pki/front-proxy-ca", "front-proxy-ca"),
        _leaf("apiserver", "pki/apiserver", "ca", "kube-apiserver", SERVER, apiserver_sans),
        _leaf("apiserver-kubelet-client", "pki/apiserver-kubelet-client", "ca",
              "kube-apiserver-kubelet-client", CLIENT),
        _leaf("controller-manager", "pki/controller-manager", "ca", "system:kube-controller-manager", CLIENT),
        _leaf("scheduler", "pki/scheduler", "ca", "system:kube-scheduler", CLIENT),
        _leaf("admin", "pki/admin", "ca", "kubernetes-admin", CLIENT, organization="system:masters"),
        _leaf("etcd-server", "pki/etcd/server", "etcd-ca", "kube-etcd", BOTH, etcd_sans),
        _leaf("etcd-peer", "pki/etcd/peer", "etcd-ca", "kube-etcd-peer", BOTH, etcd_sans),
        _leaf("etcd-healthcheck-client", "pki/etcd/healthcheck-client", "etcd-ca",
              "kube-etcd-healthcheck-client", CLIENT),
        _leaf("apiserver-etcd-client", "pki/apiserver-etcd-client", "etcd-ca", "kube-apiserver-etcd-client",
              CLIENT),
        _leaf("front-proxy-client", "pki/front-proxy-client", "front-proxy-ca", "front-proxy-client", CLIENT),
    ]
    kubeconfigs = [
        {"name": "admin", "path": "admin.conf", "user": "kubernetes-admin", "cert": "admin"},
        {"name": "controller-manager", "path": "controller-manager.conf", "user": "system:kube-controller-manager",
         "cert": "controller-manager"},
        {"name": "scheduler", "path": "scheduler.conf", "user": "system:kube-scheduler", "cert": "scheduler"},
    ]
    dirs = ["pki", "pki/etcd", "nodes"]
    for node in workers:
        base = "nodes/" + node["name"]
        dirs.append(base)
        user = "system:node:" + node["name"]
        certs.append(_leaf("kubelet-client:" + node["name"], base + "/kubelet-client", "ca", user, CLIENT,
                           organization="system:nodes"))
        certs.append(_leaf("kubelet:" + node["name"], base + "/kubelet", "ca", user, SERVER,
                           [node["name"], node["ip"]], organization="system:nodes"))
        kubeconfigs.append({"name": "kubelet:" + node["name"], "path": base + "/kubelet.conf", "user": user,
                            "cert": "kubelet-client:" + node["name"]})
    for conf in kubeconfigs:
        conf["server"] = apiserver_url
        conf["ca"] = "ca"

    by_name = {c["name"]: c for c in certs}
    for conf in kubeconfigs:
        conf["cert_path"] = by_name[conf["cert"]]["path"]
        conf["ca_path"] = by_name[conf["ca"]]["path"]
    keys = [{"name": c["name"], "path": c["path"]} for c in certs] + [{"name": "sa", "path": "pki/sa"}]
    for cert in certs:
        cert["ca_path"] = by_name[cert["ca"]]["path"] if cert["ca"] else None
    return {"dirs": dirs, "private_keys": keys, "certs": certs, "kubeconfigs": kubeconfigs,
            "service_ip": service_ip, "apiserver_url": apiserver_url}


def nodes(hosts, hostvars, ip_var="cluster_node_ip", name_var=None):
    """[{name, ip}] of inventory hosts: ip from hostvars[h][ip_var], else ansible_host, else h."""
    out = []
    for host in hosts or []:
        hvars = hostvars[host]
        ip = None
        for key in (ip_var, "ansible_host"):
            try:
                ip = hvars[key]
            except (KeyError, TypeError):
                ip = None
            if ip:
                break
        name = hvars.get(name_var) if name_var else None
        out.append({"name": str(name or host), "ip": str(ip or host)})
    return out


def flags(values, prefix="--"):
    """{'a': 1, 'b': True, 'c': None, 'd': [x, y]} -> ['--a=1', '--b=true', '--d=x,y'] (sorted)."""
    if not isinstance(values, dict):
        raise TypeError("flags must be a dict, not %r" % (values,))
    out = []
    for key in sorted(values):
        value = values[key]
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out.append("%s%s=%s" % (prefix, key, value))
    return out


TIMESPEC = re.compile(r"^([+-])((?:\d+[wdhms])+)$")
TIMESPEC_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def seconds(spec):
    """'+30d' -> 2592000; '+1w2d3h4m5s'; '-10m' -> -600; a plain number is seconds."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return int(spec)
    text = str(spec).strip()
    if re.match(r"^[+-]?\d+$", text):
        return int(text)
    match = TIMESPEC.match(text)
    if not match:
        raise ValueError("%r is not a relative time spec such as +30d or +1w2d3h" % (spec,))
    total = sum(int(num) * TIMESPEC_UNITS[unit] for num, unit in re.findall(r"(\d+)([wdhms])", match.group(2)))
    return -total if match.group(1) == "-" else total


KEY_USAGE_ATTRS = {
    "digitalSignature": "digital_signature",
    "keyEncipherment": "key_encipherment",
    "keyCertSign": "key_cert_sign",
    "cRLSign": "crl_sign",
}


def _eku_oids():
    return {"serverAuth": ExtendedKeyUsageOID.SERVER_AUTH, "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH}


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _key_problem(path, key_type, key_size, key_curve):
    data = _read(path)
    if data is None:
        return "no key"
    if _mode(path) != 0o600:
        return "key mode %o" % _mode(path)
    try:
        # Only its public half and size are compared here (nothing is signed with it): skip the
        # slow RSA consistency check.
        key = serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        return "unreadable key"
    if key_type == "RSA":
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != int(key_size):
            return "key is not RSA %s" % key_size
    elif key_type == "ECC":
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != key_curve:
            return "key is not ECC %s" % key_curve
    else:
        return "key type %s is not checked here" % key_type
    return key


def _name_pairs(name):
    return sorted((attr.oid.dotted_string, attr.value) for attr in name)


def _expected_subject(cert):
    pairs = [(NameOID.COMMON_NAME.dotted_string, cert["common_name"])]
    if cert.get("organization"):
        pairs.append((NameOID.ORGANIZATION_NAME.dotted_string, cert["organization"]))
    return sorted(pairs)


def _ext(certificate, cls):
    try:
        return certificate.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def _sans_of(certificate):
    ext = _ext(certificate, x509.SubjectAlternativeName)
    if ext is None:
        return set(), False
    out = set("DNS:" + v for v in ext.value.get_values_for_type(x509.DNSName))
    out |= set("IP:" + str(v) for v in ext.value.get_values_for_type(x509.IPAddress))
    return out, ext.critical


def _cert_problem(cert, certificate, key, ca_certificate, renew_at):
    """Why certificate is not what cert (a plan entry) asks for, or None."""
    if certificate.public_key().public_numbers() != key.public_key().public_numbers():
        return "not for its key"
    if _name_pairs(certificate.subject) != _expected_subject(cert):
        return "subject differs"
    sans, critical = _sans_of(certificate)
    wanted = set("IP:" + str(ipaddress.ip_address(v[3:])) if v.startswith("IP:") else v for v in cert["sans"])
    if sans != wanted or critical:
        return "SANs differ"
    ku = _ext(certificate, x509.KeyUsage)
    if ku is None or not ku.critical:
        return "no critical key usage"
    for name, attr in KEY_USAGE_ATTRS.items():
        if getattr(ku.value, attr) != (name in cert["key_usage"]):
            return "key usage differs"
    for attr in ("content_commitment", "data_encipherment", "key_agreement"):
        if getattr(ku.value, attr):
            return "key usage differs"
    eku = _ext(certificate, x509.ExtendedKeyUsage)
    oids = _eku_oids()
    wanted_eku = set(oids[name] for name in cert["extended_key_usage"])
    if (set(eku.value) if eku else set()) != wanted_eku or (eku is not None and eku.critical):
        return "extended key usage differs"
    bc = _ext(certificate, x509.BasicConstraints)
    if bc is None or not bc.critical or bc.value.ca != bool(cert["is_ca"]) or bc.value.path_length is not None:
        return "basic constraints differ"
    issuer = certificate if cert["is_ca"] else ca_certificate
    if certificate.issuer != issuer.subject:
        return "issuer differs"
    try:
        certificate.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, ValueError, TypeError: any doubt goes to the modules
        return "not signed by its CA"
    if certificate.not_valid_after_utc <= renew_at:
        return "expires"
    return None


def pki_status(plan, pki_dir, key_type="RSA", key_size=2048, key_curve="secp256r1", renew_before="+30d",
               now=None):
    """{todo, renew, reasons} of plan's certificates in pki_dir (see DOCUMENTATION)."""
    if not HAS_CRYPTOGRAPHY:
        raise AnsibleFilterError("podmig.live.cluster_pki_status needs the cryptography library on the controller")
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)
    renew_at = now + datetime.timedelta(seconds=seconds(renew_before))
    loaded, reasons, renew = {}, {}, []
    for cert in plan["certs"]:
        base = os.path.join(str(pki_dir), cert["path"])
        key = _key_problem(base + ".key", key_type, key_size, key_curve)
        if isinstance(key, str):
            reasons[cert["name"]] = key
            continue
        data = _read(base + ".crt")
        if data is None:
            reasons[cert["name"]] = "no certificate"
            continue
        if _mode(base + ".crt") != 0o644:
            reasons[cert["name"]] = "certificate mode %o" % _mode(base + ".crt")
            continue
        try:
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError:
            reasons[cert["name"]] = "unreadable certificate"
            continue
        if cert["ca"] and cert["ca"] not in loaded:
            reasons[cert["name"]] = "its CA is re-examined"
            continue
        problem = _cert_problem(cert, certificate, key, loaded.get(cert["ca"]), renew_at)
        if problem:
            reasons[cert["name"]] = problem
            if problem == "expires":
                renew.append(cert["name"])
            continue
        if cert["is_ca"]:
            loaded[cert["name"]] = certificate
    todo = [c["name"] for c in plan["certs"] if c["name"] in reasons]
    return {"todo": todo, "renew": renew, "reasons": reasons}


def _listing(lines, fields):
    """{path: fields} of `<f1> .. <fn> <path>` lines (paths may hold spaces); 'missing'/'absent' -> None."""
    out = {}
    for line in lines or []:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.startswith(("missing ", "absent ")):
            out[line.split(" ", 1)[1]] = None
            continue
        parts = line.split(None, fields)
        if len(parts) != fields + 1:
            raise ValueError("cannot read %r" % line)
        out[parts[fields].lstrip("*")] = parts[:fields]
    return out


def file_specs(names, src_dir, dest_dir, mode="0644", key_mode=None):
    """[{name, src, dest, mode}] of names (relative paths) under src_dir and dest_dir."""
    out = []
    for name in names:
        name = str(name).strip("/")
        out.append({"name": name, "src": "%s/%s" % (str(src_dir).rstrip("/"), name),
                    "dest": "%s/%s" % (str(dest_dir).rstrip("/"), name),
                    "mode": key_mode if key_mode and name.endswith(".key") else mode})
    return out


def stale_files(files, local_lines, remote_lines):
    """{outdated, missing, absent} (see DOCUMENTATION)."""
    local = _listing(local_lines, 1)
    remote = _listing(remote_lines, 2)
    out = {"outdated": [], "missing": [], "absent": []}
    for item in files:
        src, dest, mode = item["src"], item["dest"], int(str(item["mode"]), 8)
        if local.get(src) is None:
            out["missing"].append(src)
            continue
        there = remote.get(dest)
        if there is None:
            out["absent"].append(dest)
            out["outdated"].append(dest)
        elif int(there[0], 8) != mode or there[1] != local[src][0]:
            out["outdated"].append(dest)
    return out


class FilterModule:
    def filters(self):
        table = {
            "cluster_pki_plan": pki_plan,
            "cluster_pki_nth_ip": nth_ip,
            "cluster_pki_san": san,
            "cluster_pki_nodes": nodes,
            "cluster_pki_flags": flags,
            "cluster_pki_status": pki_status,
            "cluster_pki_seconds": seconds,
            "cluster_pki_stale_files": stale_files,
            "cluster_pki_file_specs": file_specs,
        }
        return {name: wrap_filter(func, name) for name, func in table.items()}
