# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Pure helpers of the component_build role: go.mod reading, the Kubernetes wrapper module,
the replace fixes for modules copied out of the module cache, ldflags and the cache key."""

from __future__ import annotations

DOCUMENTATION = r"""
name: component_build
short_description: Helpers for building Kubernetes, etcd, containerd and CNI from Go modules
version_added: 0.1.0
author: podmig developers
description:
  - Filters used by the C(podmig.live.component_build) role. All are pure functions of their
    arguments, so the role's decisions (what a cache entry is keyed on, which C(replace)
    directives a module copied out of the module cache needs) are unit-tested without Go.
  - C(component_build_gomod) parses a go.mod text into
    C({module, go, toolchain, godebug, require, replace}).
  - C(component_build_local_replaces) lists the C(replace) directives of a go.mod whose target
    is a relative directory (C(./staging/src/k8s.io/api), C(../api)).
  - C(component_build_staging_version) maps a Kubernetes version to the tag of its published
    staging modules (C(v1.35.4) -> C(v0.35.4)).
  - C(component_build_wrapper_gomod) renders the go.mod of a wrapper module that requires a
    module whose own go.mod replaces its siblings with directories missing from its module zip
    (C(k8s.io/kubernetes)); each sibling is pointed at its directory in the work tree when that
    exists there, at its published version otherwise.
  - C(component_build_replace_edits) gives the C(go mod edit) arguments that do the same for a
    module built as the main module (etcd's C(../api)).
  - C(component_build_version_vars) and C(component_build_ldflags) expand C({version}),
    C({version_bare}), C({major}), C({minor}), C({patch}), C({commit}), C({commit_short}),
    C({build_date}), C({tree_state}), C({patch_suffix}) placeholders in ldflags templates.
  - C(component_build_cache_key) hashes everything that determines a build's output.
options:
  _input:
    description: The go.mod text, the version string, the ldflags list or the component spec.
    required: true
"""

EXAMPLES = r"""
- name: Staging modules of k8s.io/kubernetes and their published tag
  ansible.builtin.debug:
    msg: "{{ gomod_text | podmig.live.component_build_local_replaces }} at {{ 'v1.35.4' | podmig.live.component_build_staging_version }}"

- name: Cache key of a component
  ansible.builtin.set_fact:
    key: "{{ spec | podmig.live.component_build_cache_key(go=go_info, patches=patch_list) }}"
"""

RETURN = r"""
_value:
  description: Depends on the filter (dict, list, str); see the description.
  type: raw
"""

import hashlib
import json
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.podmig.live.plugins.module_utils.filters import wrap_filter

_VERSION_RE = re.compile(
    r"^v?(?P<major>0|[1-9][0-9]*)\.(?P<minor>0|[1-9][0-9]*)\.(?P<patch>0|[1-9][0-9]*)"
    r"(?P<pre>-[0-9A-Za-z.-]+)?(?P<build>\+[0-9A-Za-z.-]+)?$"
)
_PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")

# The spec fields that change what a build produces; anything else (poll delays, version checks,
# descriptions) may change without invalidating the cache.
_KEY_SPEC_FIELDS = ("version", "source", "mode", "env", "tags", "flags", "ldflags", "cgo",
                    "published_version", "commit")
_KEY_MODULE_FIELDS = ("path", "version", "sum", "subdir")
_KEY_BINARY_FIELDS = ("name", "package", "module", "cgo", "tags", "ldflags", "env", "flags")


def _strip_comment(line):
    # go.mod comments are // to end of line; module paths and versions never contain "//"
    # except inside quoted strings, which the directives parsed here do not use.
    idx = line.find("//")
    return line if idx < 0 else line[:idx]


def _unquote(token):
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"`":
        return token[1:-1]
    return token


def _directives(text):
    """Yield (verb, tokens) for every directive line of a go.mod, expanding ( ... ) blocks."""
    block = None
    for raw in str(text).splitlines():
        line = _strip_comment(raw).strip()
        if not line:
            continue
        if block is not None:
            if line == ")":
                block = None
                continue
            yield block, [_unquote(t) for t in line.split()]
            continue
        if line.endswith("(") and len(line[:-1].split()) == 1:
            # "require (" opens a block of require lines (gofmt spacing or not)
            block = line[:-1].strip()
            continue
        parts = line.split()
        yield parts[0], [_unquote(t) for t in parts[1:]]
    if block is not None:
        raise AnsibleFilterError("go.mod: unterminated %s ( block" % block)


def parse_gomod(text):
    """Parse the directives of a go.mod the role needs.

    Returns {module, go, toolchain, godebug: [k=v...], require: {path: version},
    replace: [{old, old_version, new, new_version}]}.
    """
    out = {"module": None, "go": None, "toolchain": None, "godebug": [], "require": {},
           "replace": []}
    for verb, tokens in _directives(text):
        if verb == "module" and tokens:
            out["module"] = tokens[0]
        elif verb == "go" and tokens:
            out["go"] = tokens[0]
        elif verb == "toolchain" and tokens:
            out["toolchain"] = tokens[0]
        elif verb == "godebug" and tokens:
            out["godebug"].append("".join(tokens))
        elif verb == "require" and len(tokens) >= 2:
            out["require"][tokens[0]] = tokens[1]
        elif verb == "replace":
            if "=>" not in tokens:
                raise AnsibleFilterError("go.mod: replace without =>: %s" % " ".join(tokens))
            arrow = tokens.index("=>")
            left, right = tokens[:arrow], tokens[arrow + 1:]
            if len(left) not in (1, 2) or len(right) not in (1, 2):
                raise AnsibleFilterError("go.mod: malformed replace: %s" % " ".join(tokens))
            out["replace"].append({
                "old": left[0],
                "old_version": left[1] if len(left) == 2 else None,
                "new": right[0],
                "new_version": right[1] if len(right) == 2 else None,
            })
    if not out["module"]:
        raise AnsibleFilterError("go.mod: no module directive")
    return out


def _is_local(target):
    return target.startswith("./") or target.startswith("../") or target in (".", "..")


def local_replaces(text):
    """The replace directives whose target is a directory: [{module, target}], in file order."""
    return [{"module": r["old"], "target": r["new"]}
            for r in parse_gomod(text)["replace"]
            if r["new_version"] is None and _is_local(r["new"])]


def version_vars(version, extra=None):
    """{version, version_bare, major, minor, patch, prerelease} of a semver tag, plus extra."""
    match = _VERSION_RE.match(str(version))
    if not match:
        raise AnsibleFilterError("not a semantic version: %r" % (version,))
    bare = str(version)[1:] if str(version).startswith("v") else str(version)
    out = {
        "version": "v" + bare,
        "version_bare": bare,
        "major": match.group("major"),
        "minor": match.group("minor"),
        "patch": match.group("patch"),
        "prerelease": (match.group("pre") or "")[1:],
    }
    out.update(dict(extra or {}))
    return out


def staging_version(version):
    """Kubernetes v1.M.P[-pre] -> the staging modules' tag v0.M.P[-pre]."""
    match = _VERSION_RE.match(str(version))
    if not match or match.group("major") != "1":
        raise AnsibleFilterError("not a Kubernetes v1.x version: %r" % (version,))
    return "v0.%s.%s%s" % (match.group("minor"), match.group("patch"), match.group("pre") or "")


def _rel_join(prefix, target):
    """Rebase a relative replace target of a module at `prefix` (relative to the wrapper)."""
    parts = [p for p in prefix.split("/") if p not in ("", ".")]
    for piece in target.split("/"):
        if piece in ("", "."):
            continue
        if piece == "..":
            if not parts or parts[-1] == "..":
                parts.append("..")
            else:
                parts.pop()
        else:
            parts.append(piece)
    joined = "/".join(parts)
    if not joined:
        return "."
    return joined if joined.startswith("..") else "./" + joined


def wrapper_gomod(text, version, source, published_version, present=None,
                  module="podmig.local/build"):
    """go.mod of a wrapper module that builds the module whose go.mod is `text`.

    text: the wrapped module's go.mod (its local replaces name the sibling modules).
    version: the wrapped module's version (required at it, replaced by `source`).
    source: where the (patched) copy of the wrapped module is, relative to the wrapper.
    published_version: the tag each sibling missing from the copy is replaced with.
    present: relative replace targets (as written in `text`) that exist in the copy.
    """
    parsed = parse_gomod(text)
    present = set(present or [])
    wrapped = parsed["module"]
    lines = [
        "// Generated by podmig.live.component_build: builds %s %s from %s." % (
            wrapped, version, source),
        "module %s" % module,
        "",
    ]
    if parsed["go"]:
        lines += ["go %s" % parsed["go"], ""]
    for setting in parsed["godebug"]:
        lines.append("godebug %s" % setting)
    if parsed["godebug"]:
        lines.append("")
    lines += ["require %s %s" % (wrapped, version), "", "replace ("]
    lines.append("\t%s => %s" % (wrapped, source))
    for rep in local_replaces(text):
        if rep["target"] in present:
            lines.append("\t%s => %s" % (rep["module"], _rel_join(source, rep["target"])))
        else:
            lines.append("\t%s => %s %s" % (rep["module"], rep["module"], published_version))
    lines += [")", ""]
    return "\n".join(lines)


def replace_edits(text, present=None, published_version=None):
    """`go mod edit` arguments for a module copied out of the module cache and built as the main
    module: each local replace whose directory is not in the copy is dropped when the module
    requires a real version of that sibling, pointed at published_version when it requires a
    placeholder (v0.0.0), and left alone when the module does not require it at all."""
    parsed = parse_gomod(text)
    present = set(present or [])
    edits = []
    for rep in local_replaces(text):
        if rep["target"] in present:
            continue
        required = parsed["require"].get(rep["module"])
        if required is None:
            # Not required at all (etcd's "=> ./FORBIDDEN_DEPENDENCY" guards): inert.
            continue
        if not required.startswith("v0.0.0"):
            edits.append("-dropreplace=%s" % rep["module"])
        elif published_version:
            edits.append("-replace=%s=%s@%s" % (rep["module"], rep["module"], published_version))
        else:
            raise AnsibleFilterError(
                "%s is replaced by %s, which the copy lacks, and no version is required: "
                "set published_version" % (rep["module"], rep["target"]))
    return edits


def ldflags(templates, values):
    """Expand {placeholders} in a list of ldflags templates; unknown placeholders fail."""
    values = dict(values or {})
    out = []
    for template in list(templates or []):
        def _sub(match, _template=template):
            key = match.group(1)
            if key not in values:
                raise AnsibleFilterError("ldflags %r: unknown placeholder {%s}" % (_template, key))
            return str(values[key])
        out.append(_PLACEHOLDER_RE.sub(_sub, str(template)))
    return out


def _module_dir(work, subdir):
    subdir = str(subdir or "").strip("/")
    return "%s/src/%s" % (work, subdir) if subdir else "%s/src" % work


_STEP_SETTINGS = ("dir", "cgo", "tags", "flags", "ldflags", "env")


def _steps(spec, binaries):
    """Group binaries into go build steps (by their `step`, default their own name)."""
    steps = []
    names = {b["name"] for b in binaries}
    for binary in binaries:
        step = next((s for s in steps if s["name"] == binary["step"]), None)
        if step is None:
            if binary["step"] == "deps" or (binary["step"] != binary["name"]
                                           and binary["step"] in names):
                raise AnsibleFilterError("step %r of binary %s clashes with a binary or deps"
                                         % (binary["step"], binary["name"]))
            step = {"name": binary["step"], "binaries": [], "packages": []}
            step.update({k: binary[k] for k in _STEP_SETTINGS})
            steps.append(step)
        elif any(step[k] != binary[k] for k in _STEP_SETTINGS):
            raise AnsibleFilterError("binaries of step %s need the same directory, cgo, tags, "
                                     "flags, ldflags and env (%s differs)"
                                     % (step["name"], binary["name"]))
        step["binaries"].append(binary["name"])
        step["packages"].append(binary["package"])
    for step in steps:
        if len(step["binaries"]) > 1:
            for name, package in zip(step["binaries"], step["packages"]):
                # go build -o DIR/ names each binary after the last element of its package path
                if package.rstrip("/").rsplit("/", 1)[-1] != name:
                    raise AnsibleFilterError("binary %s of step %s: a shared step names binaries "
                                             "after their package (%s)"
                                             % (name, step["name"], package))
    return steps


def build_plan(spec, work, values):
    """Resolve a component spec into the directories and `go build` arguments of its build.

    work is the component's work tree: modules are copied to <work>/src/<subdir> (the layout of
    the upstream repository, so patches apply at <work>/src); mode wrapper builds every binary in
    <work>/wrapper, mode main each binary in its module's directory. values fills the ldflags
    placeholders. Returns
      modules:  [{path, subdir, dir}]
      binaries: [{name, package, dir, cgo, tags, flags, ldflags, env}]
      deps:     [{dir, tags, packages}]   one `go list -deps` per build directory
      gofiles:  [{src, name}]             the go.mod/go.sum each build directory ends with
    """
    spec = dict(spec or {})
    work = str(work).rstrip("/")
    wrapper = spec.get("mode", "main") == "wrapper"
    modules = []
    for raw in spec.get("modules") or []:
        module = dict(raw)
        if not module.get("path"):
            raise AnsibleFilterError("a module of %s has no path" % spec.get("name"))
        modules.append({"path": module["path"], "subdir": str(module.get("subdir") or ""),
                        "dir": _module_dir(work, module.get("subdir"))})
    if not modules:
        raise AnsibleFilterError("component %s has no modules" % spec.get("name"))
    if wrapper and len(modules) != 1:
        raise AnsibleFilterError("mode wrapper builds exactly one module, %s has %d"
                                 % (spec.get("name"), len(modules)))
    dirs = {m["path"]: ("%s/wrapper" % work if wrapper else m["dir"]) for m in modules}
    binaries, deps, names = [], [], set()
    for raw in spec.get("binaries") or []:
        binary = dict(raw)
        name = binary.get("name")
        if not name or "/" in name or name in names or name == "deps":
            raise AnsibleFilterError("binary names must be unique file names (not deps): %r"
                                     % (name,))
        names.add(name)
        module = binary.get("module") or modules[0]["path"]
        if module not in dirs:
            raise AnsibleFilterError("binary %s: module %s is not one of %s"
                                     % (name, module, sorted(dirs)))
        if not binary.get("package"):
            raise AnsibleFilterError("binary %s has no package" % name)
        entry = {
            "name": name,
            "package": binary["package"],
            "dir": dirs[module],
            "cgo": bool(binary.get("cgo", spec.get("cgo", False))),
            "tags": list(spec.get("tags") or []) + list(binary.get("tags") or []),
            "flags": list(spec.get("flags") or []) + list(binary.get("flags") or []),
            "ldflags": " ".join(ldflags(list(spec.get("ldflags") or [])
                                        + list(binary.get("ldflags") or []), values)),
            "env": dict(binary.get("env") or {}),
            "step": str(binary.get("step") or spec.get("step") or name),
        }
        binaries.append(entry)
        group = next((g for g in deps if g["dir"] == entry["dir"]), None)
        if group is None:
            group = {"dir": entry["dir"], "tags": list(spec.get("tags") or []), "packages": []}
            deps.append(group)
        if entry["package"] not in group["packages"]:
            group["packages"].append(entry["package"])
    if not binaries:
        raise AnsibleFilterError("component %s has no binaries" % spec.get("name"))
    steps = _steps(spec, binaries)
    gofiles = []
    for group in deps:
        prefix = "" if len(deps) == 1 else group["dir"].rsplit("/", 1)[-1] + "."
        for name in ("go.mod", "go.sum"):
            gofiles.append({"src": "%s/%s" % (group["dir"], name), "name": prefix + name})
    return {"modules": modules, "binaries": binaries, "steps": steps, "deps": deps,
            "gofiles": gofiles}


def patch_list(stat_results):
    """ansible.builtin.stat loop results (checksum_algorithm sha256) -> [{name, path, sha256}],
    sorted by file name (the order the series is applied in)."""
    out = []
    for result in stat_results or []:
        stat = (result or {}).get("stat") or {}
        if not stat.get("exists"):
            continue
        path = stat.get("path") or result.get("item")
        if not stat.get("checksum"):
            raise AnsibleFilterError("no checksum for patch %s" % path)
        out.append({"name": path.rsplit("/", 1)[-1], "path": path, "sha256": stat["checksum"]})
    return sorted(out, key=lambda p: p["name"])


def seconds(delta):
    """A command result's delta ("H:MM:SS.ffffff") -> seconds as a float."""
    parts = str(delta).split(":")
    if len(parts) != 3:
        raise AnsibleFilterError("not a duration H:MM:SS[.f]: %r" % (delta,))
    return round(int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2]), 1)


def binaries_meta(plan, stat_results, version_results):
    """The binaries part of a cache entry's build.json: name, size, sha256, the first line the
    binary printed for its version check, and whether it was linked with cgo."""
    stats = {}
    for result in stat_results or []:
        stat = (result or {}).get("stat") or {}
        if stat.get("exists"):
            stats[stat["path"].rsplit("/", 1)[-1]] = stat
    versions = {}
    for result in version_results or []:
        lines = [ln.strip() for ln in (str(result.get("stdout", "")) + "\n"
                                       + str(result.get("stderr", ""))).splitlines()
                 if ln.strip()]
        versions[result.get("item")] = lines[0] if lines else ""
    out = []
    for binary in (plan or {}).get("binaries") or []:
        name = binary["name"]
        if name not in stats:
            raise AnsibleFilterError("binary %s was not built" % name)
        out.append({"name": name, "size": stats[name].get("size"),
                    "sha256": stats[name].get("checksum"),
                    "version_output": versions.get(name, ""), "cgo": bool(binary.get("cgo"))})
    return out


def _size(num):
    return "%.1f MiB" % (num / 1048576.0)


def summary(results):
    """component_build_results -> report lines: one per component, then one per binary."""
    lines = []
    for name in sorted(results or {}):
        res = dict(results[name])
        if res.get("check_mode"):
            how = "would be built"
        elif res.get("cached"):
            how = "cached"
        elif res.get("source") == "prebuilt":
            how = "copied into the cache"
        else:
            how = "built in %s s" % res.get("build_seconds", "?")
        lines.append("%s %s (%s, %s): %s" % (name, res.get("version"), res.get("source"), how,
                                             res.get("bin_dir")))
        binaries = list(res.get("binaries") or [])
        names = [b for b in binaries if not isinstance(b, dict)]
        if names:
            lines.append("  binaries: %s" % ", ".join(str(n) for n in names))
        for binary in binaries:
            if isinstance(binary, dict):
                size = _size(binary["size"]) if binary.get("size") is not None else "?"
                version = binary.get("version_output", "")
                lines.append("  %-24s %10s  %s" % (binary.get("name"), size, version))
    return lines


def _pick(mapping, fields):
    return {k: mapping[k] for k in fields if k in mapping and mapping[k] not in (None, "", [], {})}


def key_inputs(spec, go=None, patches=None, source_digest=None):
    """The canonical dict a cache key is computed from (returned for the build metadata)."""
    spec = dict(spec or {})
    source = spec.get("source", "module")
    out = {
        "schema": 1,
        "component": spec.get("name"),
        "spec": _pick(spec, _KEY_SPEC_FIELDS),
        "binaries": [_pick(dict(b), _KEY_BINARY_FIELDS) for b in spec.get("binaries") or []],
        "go": dict(go or {}),
        "patches": [{"name": p["name"], "sha256": p["sha256"]} for p in patches or []],
    }
    if source == "module":
        out["modules"] = [_pick(dict(m), _KEY_MODULE_FIELDS) for m in spec.get("modules") or []]
    else:
        # A local checkout or a directory of binaries: what is in it, not where it is.
        if not source_digest:
            raise AnsibleFilterError("source %s needs a source_digest" % source)
        out["source_digest"] = source_digest
        if source == "prebuilt":
            # Nothing is compiled: only the binaries' names and bytes matter.
            out = {k: out[k] for k in ("schema", "component", "source_digest")}
            out["spec"] = {"version": spec.get("version"), "source": source}
            out["binaries"] = sorted(b.get("name") for b in spec.get("binaries") or [])
    return out


def cache_key(spec, go=None, patches=None, source_digest=None, length=12):
    """sha256 over key_inputs(...), as hex, cut to `length` characters."""
    blob = json.dumps(key_inputs(spec, go, patches, source_digest), sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[: int(length)]


class FilterModule:
    def filters(self):
        table = {
            "component_build_gomod": parse_gomod,
            "component_build_local_replaces": local_replaces,
            "component_build_staging_version": staging_version,
            "component_build_wrapper_gomod": wrapper_gomod,
            "component_build_replace_edits": replace_edits,
            "component_build_version_vars": version_vars,
            "component_build_ldflags": ldflags,
            "component_build_key_inputs": key_inputs,
            "component_build_cache_key": cache_key,
            "component_build_plan": build_plan,
            "component_build_patch_list": patch_list,
            "component_build_seconds": seconds,
            "component_build_summary": summary,
            "component_build_binaries_meta": binaries_meta,
        }
        return {name: wrap_filter(func, name) for name, func in table.items()}
