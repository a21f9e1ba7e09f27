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

import ipaddress

from ansible.errors import AnsibleFilterError

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


def _wrap(func, name):
    def _filter(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except AnsibleFilterError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AnsibleFilterError("podmig.live.%s: %s" % (name, exc)) from exc
    _filter.__name__ = name
    _filter.__doc__ = func.__doc__
    return _filter


class FilterModule:
    def filters(self):
        table = {
            "cluster_pki_plan": pki_plan,
            "cluster_pki_nth_ip": nth_ip,
            "cluster_pki_san": san,
            "cluster_pki_nodes": nodes,
            "cluster_pki_flags": flags,
        }
        return {name: _wrap(func, name) for name, func in table.items()}
