# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Unit tests of the component_build filters (plugins/filter/component_build.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.podmig.live.plugins.filter import component_build as cb
from ansible_collections.podmig.live.plugins.filter.component_build import FilterModule

# Shaped like k8s.io/kubernetes v1.35.4's go.mod (shortened).
KUBERNETES_GOMOD = """\
// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.25.0

godebug default=go1.25

require (
\tgithub.com/spf13/cobra v1.10.0
\tk8s.io/api v0.0.0
\tk8s.io/apimachinery v0.0.0
\tk8s.io/kubelet v0.0.0 // indirect
)

require golang.org/x/sys v0.35.0 // indirect

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apimachinery => ./staging/src/k8s.io/apimachinery
\tk8s.io/kubelet => ./staging/src/k8s.io/kubelet
)
"""

# Shaped like go.etcd.io/etcd/server/v3 v3.6.16's go.mod (shortened).
ETCD_SERVER_GOMOD = """\
module go.etcd.io/etcd/server/v3

go 1.26.0

toolchain go1.26.10

require (
\tgo.etcd.io/etcd/api/v3 v3.6.16
\tgo.etcd.io/etcd/client/v3 v3.6.16
\tgo.uber.org/zap v1.27.0
)

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
\tgo.etcd.io/etcd/client/v3 => ../client/v3
)

// Bad imports are sometimes causing attempts to pull that code.
// This makes the error more explicit.
replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY

replace go.etcd.io/tests/v3 => ./FORBIDDEN_DEPENDENCY
"""


@pytest.fixture
def filters():
    return FilterModule().filters()


def test_filter_names(filters):
    assert set(filters) == {
        "component_build_gomod", "component_build_local_replaces",
        "component_build_staging_version", "component_build_wrapper_gomod",
        "component_build_replace_edits", "component_build_version_vars",
        "component_build_ldflags", "component_build_key_inputs", "component_build_cache_key",
        "component_build_plan", "component_build_patch_list", "component_build_seconds",
        "component_build_summary", "component_build_binaries_meta",
    }


# --- go.mod -----------------------------------------------------------------------------------

def test_parse_gomod_kubernetes():
    parsed = cb.parse_gomod(KUBERNETES_GOMOD)
    assert parsed["module"] == "k8s.io/kubernetes"
    assert parsed["go"] == "1.25.0"
    assert parsed["godebug"] == ["default=go1.25"]
    assert parsed["require"]["k8s.io/kubelet"] == "v0.0.0"
    assert parsed["require"]["golang.org/x/sys"] == "v0.35.0"
    assert parsed["replace"][0] == {"old": "k8s.io/api", "old_version": None,
                                    "new": "./staging/src/k8s.io/api", "new_version": None}


def test_parse_gomod_single_line_and_versioned_replaces():
    parsed = cb.parse_gomod(
        'module example.com/m\n'
        'replace example.com/a v1.0.0 => example.com/b v1.2.0 // pinned\n'
        'replace "example.com/q" => ../q\n')
    assert parsed["replace"] == [
        {"old": "example.com/a", "old_version": "v1.0.0", "new": "example.com/b",
         "new_version": "v1.2.0"},
        {"old": "example.com/q", "old_version": None, "new": "../q", "new_version": None},
    ]
    assert parsed["toolchain"] is None


@pytest.mark.parametrize("text, message", [
    ("go 1.22\n", "no module directive"),
    ("module m\nrequire (\n a v1\n", "unterminated require"),
    ("module m\nreplace a b\n", "replace without =>"),
    ("module m\nreplace a v1 v2 => b\n", "malformed replace"),
])
def test_parse_gomod_errors(text, message):
    with pytest.raises(AnsibleFilterError, match=message):
        cb.parse_gomod(text)


def test_local_replaces_lists_directory_targets_only():
    text = KUBERNETES_GOMOD + "replace example.com/x => example.com/y v1.0.0\n"
    assert cb.local_replaces(text) == [
        {"module": "k8s.io/api", "target": "./staging/src/k8s.io/api"},
        {"module": "k8s.io/apimachinery", "target": "./staging/src/k8s.io/apimachinery"},
        {"module": "k8s.io/kubelet", "target": "./staging/src/k8s.io/kubelet"},
    ]


# --- versions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("version, expected", [
    ("v1.35.4", "v0.35.4"),
    ("1.35.4", "v0.35.4"),
    ("v1.36.0-beta.0", "v0.36.0-beta.0"),
])
def test_staging_version(version, expected):
    assert cb.staging_version(version) == expected


@pytest.mark.parametrize("version", ["v2.2.9", "v1.35", "latest"])
def test_staging_version_rejects_non_kubernetes(version):
    with pytest.raises(AnsibleFilterError):
        cb.staging_version(version)


def test_version_vars():
    assert cb.version_vars("v3.6.16", {"commit": "abc"}) == {
        "version": "v3.6.16", "version_bare": "3.6.16", "major": "3", "minor": "6",
        "patch": "16", "prerelease": "", "commit": "abc"}
    assert cb.version_vars("1.36.0-rc.1")["version"] == "v1.36.0-rc.1"
    assert cb.version_vars("1.36.0-rc.1")["prerelease"] == "rc.1"


def test_ldflags_placeholders():
    values = cb.version_vars("v1.35.4", {"build_date": "2026-04-15T18:01:22Z"})
    assert cb.ldflags(["-s", "-X k8s.io/component-base/version.gitVersion={version}",
                       "-X x.gitMinor={minor}", "-X x.buildDate={build_date}"], values) == [
        "-s", "-X k8s.io/component-base/version.gitVersion=v1.35.4", "-X x.gitMinor=35",
        "-X x.buildDate=2026-04-15T18:01:22Z"]


def test_ldflags_unknown_placeholder_fails():
    with pytest.raises(AnsibleFilterError, match=r"unknown placeholder \{commit\}"):
        cb.ldflags(["-X a.b={commit}"], {"version": "v1"})


# --- the Kubernetes wrapper module --------------------------------------------------------------

def test_wrapper_gomod_replaces_staging_with_published_tags():
    text = cb.wrapper_gomod(KUBERNETES_GOMOD, "v1.35.4", "../src", "v0.35.4",
                            module="podmig.local/build/kubernetes")
    assert "module podmig.local/build/kubernetes\n" in text
    assert "\ngo 1.25.0\n" in text
    assert "\ngodebug default=go1.25\n" in text
    assert "\nrequire k8s.io/kubernetes v1.35.4\n" in text
    assert "\tk8s.io/kubernetes => ../src\n" in text
    assert "\tk8s.io/api => k8s.io/api v0.35.4\n" in text
    assert "\tk8s.io/kubelet => k8s.io/kubelet v0.35.4\n" in text
    # The result is itself a go.mod this parser (and go) reads.
    parsed = cb.parse_gomod(text)
    assert parsed["require"] == {"k8s.io/kubernetes": "v1.35.4"}
    assert len(parsed["replace"]) == 4


def test_wrapper_gomod_uses_staging_directories_a_checkout_has():
    text = cb.wrapper_gomod(KUBERNETES_GOMOD, "v1.35.4", "../src", "v0.35.4",
                            present=["./staging/src/k8s.io/api"])
    assert "\tk8s.io/api => ../src/staging/src/k8s.io/api\n" in text
    assert "\tk8s.io/apimachinery => k8s.io/apimachinery v0.35.4\n" in text


@pytest.mark.parametrize("prefix, target, expected", [
    ("../src", "./staging/src/k8s.io/api", "../src/staging/src/k8s.io/api"),
    ("../src/server", "../api", "../src/api"),
    ("./a", "../../b", "../b"),
    ("..", ".", ".."),
    ("sub", "..", "."),
])
def test_rel_join(prefix, target, expected):
    assert cb._rel_join(prefix, target) == expected


# --- modules built as the main module -----------------------------------------------------------

def test_replace_edits_drop_missing_siblings_and_keep_inert_guards():
    assert cb.replace_edits(ETCD_SERVER_GOMOD) == [
        "-dropreplace=go.etcd.io/etcd/api/v3", "-dropreplace=go.etcd.io/etcd/client/v3"]


def test_replace_edits_keep_siblings_present_in_a_checkout():
    assert cb.replace_edits(ETCD_SERVER_GOMOD, present=["../api"]) == [
        "-dropreplace=go.etcd.io/etcd/client/v3"]


def test_replace_edits_placeholder_requirement_needs_a_published_version():
    assert cb.replace_edits(KUBERNETES_GOMOD, present=["./staging/src/k8s.io/api"],
                            published_version="v0.35.4") == [
        "-replace=k8s.io/apimachinery=k8s.io/apimachinery@v0.35.4",
        "-replace=k8s.io/kubelet=k8s.io/kubelet@v0.35.4"]
    with pytest.raises(AnsibleFilterError, match="set published_version"):
        cb.replace_edits(KUBERNETES_GOMOD)


def test_replace_edits_nothing_to_do():
    assert cb.replace_edits("module github.com/containerd/containerd/v2\ngo 1.25.0\n") == []


# --- plan -----------------------------------------------------------------------------------------

ETCD_SPEC = {
    "name": "etcd", "version": "v3.6.16", "source": "module", "mode": "main",
    "modules": [{"path": "go.etcd.io/etcd/server/v3", "subdir": "server", "sum": "h1:a"},
                {"path": "go.etcd.io/etcd/etcdctl/v3", "subdir": "etcdctl", "sum": "h1:b"}],
    "flags": ["-trimpath"], "tags": [], "ldflags": ["-X v.GitSHA={commit_short}"],
    "binaries": [
        {"name": "etcd", "package": "go.etcd.io/etcd/server/v3",
         "module": "go.etcd.io/etcd/server/v3"},
        {"name": "etcdctl", "package": "go.etcd.io/etcd/etcdctl/v3",
         "module": "go.etcd.io/etcd/etcdctl/v3", "cgo": True, "tags": ["x"],
         "env": {"A": "1"}},
    ],
}

KUBERNETES_SPEC = {
    "name": "kubernetes", "version": "v1.35.4", "source": "module", "mode": "wrapper",
    "modules": [{"path": "k8s.io/kubernetes", "subdir": "", "sum": "h1:k"}],
    "flags": ["-trimpath"], "tags": ["selinux", "notest"],
    "ldflags": ["-s", "-w", "-X k8s.io/component-base/version.gitVersion={version}"],
    "binaries": [
        {"name": "kubelet", "package": "k8s.io/kubernetes/cmd/kubelet", "cgo": True},
        {"name": "kubectl", "package": "k8s.io/kubernetes/cmd/kubectl", "cgo": False},
    ],
}


def test_plan_main_mode_builds_each_binary_in_its_module():
    plan = cb.build_plan(ETCD_SPEC, "/w/", {"commit_short": "abc1234"})
    assert plan["modules"] == [
        {"path": "go.etcd.io/etcd/server/v3", "subdir": "server", "dir": "/w/src/server"},
        {"path": "go.etcd.io/etcd/etcdctl/v3", "subdir": "etcdctl", "dir": "/w/src/etcdctl"}]
    etcd, etcdctl = plan["binaries"]
    assert etcd == {"name": "etcd", "package": "go.etcd.io/etcd/server/v3",
                    "dir": "/w/src/server", "cgo": False, "tags": [], "flags": ["-trimpath"],
                    "ldflags": "-X v.GitSHA=abc1234", "env": {}, "step": "etcd"}
    assert etcdctl["dir"] == "/w/src/etcdctl"
    assert etcdctl["cgo"] is True and etcdctl["tags"] == ["x"] and etcdctl["env"] == {"A": "1"}
    assert plan["deps"] == [
        {"dir": "/w/src/server", "tags": [], "packages": ["go.etcd.io/etcd/server/v3"]},
        {"dir": "/w/src/etcdctl", "tags": [], "packages": ["go.etcd.io/etcd/etcdctl/v3"]}]
    assert plan["gofiles"] == [
        {"src": "/w/src/server/go.mod", "name": "server.go.mod"},
        {"src": "/w/src/server/go.sum", "name": "server.go.sum"},
        {"src": "/w/src/etcdctl/go.mod", "name": "etcdctl.go.mod"},
        {"src": "/w/src/etcdctl/go.sum", "name": "etcdctl.go.sum"}]


def test_plan_wrapper_mode_builds_in_the_wrapper():
    plan = cb.build_plan(KUBERNETES_SPEC, "/w", cb.version_vars("v1.35.4"))
    assert plan["modules"][0]["dir"] == "/w/src"
    assert {b["dir"] for b in plan["binaries"]} == {"/w/wrapper"}
    assert plan["binaries"][0]["ldflags"] == (
        "-s -w -X k8s.io/component-base/version.gitVersion=v1.35.4")
    assert [b["cgo"] for b in plan["binaries"]] == [True, False]
    assert plan["deps"] == [{"dir": "/w/wrapper", "tags": ["selinux", "notest"],
                             "packages": ["k8s.io/kubernetes/cmd/kubelet",
                                          "k8s.io/kubernetes/cmd/kubectl"]}]
    assert [g["name"] for g in plan["gofiles"]] == ["go.mod", "go.sum"]


def test_plan_one_step_per_binary_by_default():
    plan = cb.build_plan(KUBERNETES_SPEC, "/w", cb.version_vars("v1.35.4"))
    assert [(s["name"], s["binaries"], s["packages"]) for s in plan["steps"]] == [
        ("kubelet", ["kubelet"], ["k8s.io/kubernetes/cmd/kubelet"]),
        ("kubectl", ["kubectl"], ["k8s.io/kubernetes/cmd/kubectl"])]
    assert plan["steps"][0]["cgo"] is True and plan["steps"][0]["dir"] == "/w/wrapper"


CNI_SPEC = {
    "name": "cni_plugins", "version": "v1.9.0", "mode": "main", "step": "plugins",
    "modules": [{"path": "github.com/containernetworking/plugins"}],
    "ldflags": ["-X b.BuildVersion={version}"],
    "binaries": [
        {"name": "bridge", "package": "github.com/containernetworking/plugins/plugins/main/bridge"},
        {"name": "host-local",
         "package": "github.com/containernetworking/plugins/plugins/ipam/host-local"},
    ],
}


def test_plan_shared_step_builds_several_binaries_at_once():
    plan = cb.build_plan(CNI_SPEC, "/w", cb.version_vars("v1.9.0"))
    assert len(plan["steps"]) == 1
    step = plan["steps"][0]
    assert step["name"] == "plugins"
    assert step["binaries"] == ["bridge", "host-local"]
    assert step["ldflags"] == "-X b.BuildVersion=v1.9.0"
    assert [b["step"] for b in plan["binaries"]] == ["plugins", "plugins"]


@pytest.mark.parametrize("binaries, message", [
    ([{"name": "bridge", "package": "x/bridge"}, {"name": "br2", "package": "x/bridge2"}],
     "names binaries after their package"),
    ([{"name": "bridge", "package": "x/bridge"}, {"name": "vlan", "package": "x/vlan", "cgo": True}],
     "vlan differs"),
    ([{"name": "bridge", "package": "x/bridge", "step": "vlan"}, {"name": "vlan", "package": "x/vlan"}],
     "clashes"),
    ([{"name": "bridge", "package": "x/bridge", "step": "deps"}], "clashes"),
])
def test_plan_rejects_bad_shared_steps(binaries, message):
    spec = dict(CNI_SPEC, binaries=binaries)
    spec.pop("step")
    if all("step" not in b for b in binaries):
        spec["step"] = "plugins"
    with pytest.raises(AnsibleFilterError, match=message):
        cb.build_plan(spec, "/w", cb.version_vars("v1.9.0"))


@pytest.mark.parametrize("change, message", [
    ({"binaries": []}, "has no binaries"),
    ({"modules": []}, "has no modules"),
    ({"binaries": [{"name": "a", "package": "p"}, {"name": "a", "package": "q"}]}, "unique"),
    ({"binaries": [{"name": "deps", "package": "p"}]}, "not deps"),
    ({"binaries": [{"name": "a"}]}, "has no package"),
    ({"binaries": [{"name": "a", "package": "p", "module": "other"}]}, "is not one of"),
])
def test_plan_rejects_bad_specs(change, message):
    with pytest.raises(AnsibleFilterError, match=message):
        cb.build_plan(dict(ETCD_SPEC, **change), "/w", {"commit_short": "x"})


def test_plan_wrapper_needs_exactly_one_module():
    spec = dict(KUBERNETES_SPEC, modules=KUBERNETES_SPEC["modules"] * 2)
    with pytest.raises(AnsibleFilterError, match="exactly one module"):
        cb.build_plan(spec, "/w", cb.version_vars("v1.35.4"))


# --- cache key ----------------------------------------------------------------------------------

GO = {"version": "go1.26.8", "os": "linux", "arch": "amd64"}
PATCHES = [{"name": "0001-restore.patch", "path": "/r/0001-restore.patch", "sha256": "aa"}]


def key(spec=None, **kwargs):
    args = {"go": GO, "patches": PATCHES}
    args.update(kwargs)
    return cb.cache_key(spec or KUBERNETES_SPEC, **args)


def test_cache_key_is_stable_and_12_hex():
    assert key() == key()
    assert len(key()) == 12 and all(c in "0123456789abcdef" for c in key())
    assert len(cb.cache_key(KUBERNETES_SPEC, GO, PATCHES, length=64)) == 64


@pytest.mark.parametrize("change", [
    {"version": "v1.35.5"},
    {"tags": ["selinux"]},
    {"ldflags": ["-s"]},
    {"modules": [{"path": "k8s.io/kubernetes", "subdir": "", "sum": "h1:other"}]},
    {"binaries": KUBERNETES_SPEC["binaries"][:1]},
    {"binaries": [dict(KUBERNETES_SPEC["binaries"][0], cgo=False)] + KUBERNETES_SPEC["binaries"][1:]},
    {"binaries": [dict(KUBERNETES_SPEC["binaries"][0], package="k8s.io/kubernetes/cmd/kubeadm")]
     + KUBERNETES_SPEC["binaries"][1:]},
])
def test_cache_key_changes_with_build_inputs(change):
    assert key(dict(KUBERNETES_SPEC, **change)) != key()


def test_cache_key_changes_with_go_and_patches():
    assert key(go=dict(GO, version="go1.26.9")) != key()
    assert key(patches=[dict(PATCHES[0], sha256="bb")]) != key()
    assert key(patches=[]) != key()


def test_cache_key_ignores_what_does_not_change_the_output():
    spec = dict(KUBERNETES_SPEC, poll_delay=99, path="/ignored/for/modules",
                version_expect="{version}", step="all")
    spec["binaries"] = [dict(b, version_args=["version"], step="x") for b in spec["binaries"]]
    assert key(spec) == key()
    # Where a patch file sits does not matter, only its name and bytes.
    assert key(patches=[dict(PATCHES[0], path="/elsewhere/0001-restore.patch")]) == key()


def test_cache_key_of_local_sources_needs_a_digest():
    spec = dict(ETCD_SPEC, source="dir", path="/src/etcd")
    with pytest.raises(AnsibleFilterError, match="needs a source_digest"):
        key(spec)
    assert key(spec, source_digest="d1") != key(spec, source_digest="d2")
    # The checkout's digest stands for the modules: their pinned sums do not matter.
    other = dict(spec, modules=[dict(m, sum="") for m in spec["modules"]])
    assert key(other, source_digest="d1") == key(spec, source_digest="d1")


def test_cache_key_of_prebuilt_binaries_is_their_names_and_bytes():
    spec = dict(ETCD_SPEC, source="prebuilt", path="/opt/etcd")
    inputs = cb.key_inputs(spec, go=GO, patches=PATCHES, source_digest="d1")
    assert inputs == {"schema": 1, "component": "etcd", "source_digest": "d1",
                      "spec": {"version": "v3.6.16", "source": "prebuilt"},
                      "binaries": ["etcd", "etcdctl"]}
    # Neither the Go version nor build flags matter for binaries nobody compiles here.
    assert key(spec, source_digest="d1", go={}) == key(dict(spec, tags=["x"]), source_digest="d1")


# --- patches, durations, metadata, summary ------------------------------------------------------

def test_patch_list_sorts_and_skips_missing():
    results = [
        {"item": "/p/0002-b.patch", "stat": {"exists": True, "path": "/p/0002-b.patch",
                                             "checksum": "bb"}},
        {"item": "/p/0001-a.patch", "stat": {"exists": True, "path": "/p/0001-a.patch",
                                             "checksum": "aa"}},
        {"item": "/p/gone.patch", "stat": {"exists": False}},
        {"skipped": True},
    ]
    assert cb.patch_list(results) == [
        {"name": "0001-a.patch", "path": "/p/0001-a.patch", "sha256": "aa"},
        {"name": "0002-b.patch", "path": "/p/0002-b.patch", "sha256": "bb"}]
    assert cb.patch_list(None) == []


def test_patch_list_without_checksum_fails():
    with pytest.raises(AnsibleFilterError, match="no checksum"):
        cb.patch_list([{"stat": {"exists": True, "path": "/p/x.patch"}}])


@pytest.mark.parametrize("delta, expected", [
    ("0:00:09.123456", 9.1), ("0:03:18.640000", 198.6), ("1:00:00", 3600.0)])
def test_seconds(delta, expected):
    assert cb.seconds(delta) == expected


def test_seconds_rejects_garbage():
    with pytest.raises(AnsibleFilterError):
        cb.seconds("12s")


def test_binaries_meta():
    plan = {"binaries": [{"name": "kubelet", "cgo": True}, {"name": "kubectl", "cgo": False}]}
    stats = [{"stat": {"exists": True, "path": "/c/bin/kubelet", "size": 10, "checksum": "k1"}},
             {"stat": {"exists": True, "path": "/c/bin/kubectl", "size": 20, "checksum": "k2"}}]
    versions = [{"item": "kubelet", "stdout": "Kubernetes v1.35.4\n", "stderr": ""},
                {"item": "kubectl", "stdout": "", "stderr": "\nClient Version: v1.35.4\n"}]
    assert cb.binaries_meta(plan, stats, versions) == [
        {"name": "kubelet", "size": 10, "sha256": "k1", "version_output": "Kubernetes v1.35.4",
         "cgo": True},
        {"name": "kubectl", "size": 20, "sha256": "k2",
         "version_output": "Client Version: v1.35.4", "cgo": False}]
    with pytest.raises(AnsibleFilterError, match="kubectl was not built"):
        cb.binaries_meta(plan, stats[:1], versions)


def test_summary():
    results = {
        "etcd": {"version": "v3.6.16", "source": "module", "cached": False, "build_seconds": 80.5,
                 "bin_dir": "/c/etcd/bin",
                 "binaries": [{"name": "etcd", "size": 3 * 1048576, "version_output": "etcd Version: 3.6.16"}]},
        "crictl": {"version": "v1.34.0", "source": "module", "cached": True, "bin_dir": "/c/cr/bin",
                   "binaries": [{"name": "crictl", "size": None}]},
        "containerd": {"version": "v2.2.9", "source": "module", "check_mode": True,
                       "bin_dir": "/c/ctd/bin", "binaries": ["containerd", "ctr"]},
    }
    lines = cb.summary(results)
    assert lines[0] == "containerd v2.2.9 (module, would be built): /c/ctd/bin"
    assert lines[1] == "  binaries: containerd, ctr"
    assert lines[2] == "crictl v1.34.0 (module, cached): /c/cr/bin"
    assert lines[3].split() == ["crictl", "?"]
    assert lines[4] == "etcd v3.6.16 (module, built in 80.5 s): /c/etcd/bin"
    assert lines[5].split() == ["etcd", "3.0", "MiB", "etcd", "Version:", "3.6.16"]
    prebuilt = {"k": {"version": "v1", "source": "prebuilt", "cached": False, "bin_dir": "/b"}}
    assert cb.summary(prebuilt) == ["k v1 (prebuilt, copied into the cache): /b"]


def test_filters_wrap_unexpected_errors(filters):
    with pytest.raises(AnsibleFilterError, match="podmig.live.component_build_seconds"):
        filters["component_build_seconds"]("a:b:c")
