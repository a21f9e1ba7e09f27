#!/bin/bash
# Build a single-layer OCI image archive from a directory with umoci (no registry, no daemon),
# named so that `ctr images import` files it under NAME without --base-name.
#
# usage: podmig-oci-image.sh [-e ENTRYPOINT_ARG]... [-c CMD_ARG]... [-E KEY=VALUE]... NAME ROOTFS OUT.tar
#   NAME    full reference, e.g. localhost/podmig/pause:3.10
#   ROOTFS  directory whose contents become the image's only layer (owned by root in the layer)
#   OUT.tar written atomically (OUT.tar.tmp, then renamed); then OUT.tar.digest, the manifest digest
#
# umoci's `unpack` + `repack` is used rather than `umoci insert`: umoci 0.4.7's insert writes a
# layer tar without its end-of-archive blocks (GNU tar: "Unexpected EOF in archive").
# umoci names the manifest with org.opencontainers.image.ref.name = the tag only ("3.10");
# containerd's importer would prefix such a bare tag with "import-<date>", so the index entry also
# gets io.containerd.image.name = NAME and its platform, which umoci leaves out of the index (the
# architecture is the build host's: the image's binaries are compiled there).
set -euo pipefail

entry=() cmd=() env=()
while getopts 'e:c:E:' opt; do
	case $opt in
	e) entry+=(--config.entrypoint "$OPTARG") ;;
	c) cmd+=(--config.cmd "$OPTARG") ;;
	E) env+=(--config.env "$OPTARG") ;;
	*) echo "usage: $0 [-e ARG]... [-c ARG]... [-E K=V]... NAME ROOTFS OUT.tar" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 3 ] || { echo "usage: $0 [-e ARG]... [-c ARG]... [-E K=V]... NAME ROOTFS OUT.tar" >&2; exit 2; }
name=$1 rootfs=$2 out=$3
tag=${name##*:}
[ "$tag" != "$name" ] && [[ $tag != */* ]] || { echo "$0: NAME needs a :tag ($name)" >&2; exit 2; }

case $(uname -m) in
x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;;
esac
rootless=()
[ "$(id -u)" = 0 ] || rootless=(--rootless)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
layout=$tmp/layout bundle=$tmp/bundle

umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack "${rootless[@]}" --image "$layout:$tag" "$bundle"
cp -a "$rootfs/." "$bundle/rootfs/"
[ ${#rootless[@]} -gt 0 ] || chown -R 0:0 "$bundle/rootfs"
umoci repack --image "$layout:$tag" "$bundle"
umoci config --image "$layout:$tag" --os linux --architecture "$arch" --config.workingdir / \
	--author podmig.live.node_images "${entry[@]}" "${cmd[@]}" "${env[@]}"
umoci gc --layout "$layout"

jq --arg name "$name" --arg tag "$tag" --arg arch "$arch" '.manifests |= map(
	if .annotations["org.opencontainers.image.ref.name"] == $tag
	then .annotations["io.containerd.image.name"] = $name
	     | .platform = {"architecture": $arch, "os": "linux"}
	else . end)' "$layout/index.json" > "$tmp/index.json"
mv "$tmp/index.json" "$layout/index.json"
digest=$(jq -r --arg name "$name" \
	'.manifests[] | select(.annotations["io.containerd.image.name"] == $name) | .digest' "$layout/index.json")
[ -n "$digest" ] || { echo "$0: no manifest for $name in the index" >&2; exit 1; }

tar -C "$layout" --numeric-owner --owner=0 --group=0 -cf "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
# written last: its presence says the archive is complete (the role's build cache checks it)
printf '%s\n' "$digest" > "$out.digest.tmp"
mv "$out.digest.tmp" "$out.digest"
echo "$out: $name $digest"
