#!/bin/bash
# Build a single-layer OCI image archive from a directory, without a registry
# and without umoci/buildah: a hand-written OCI image layout (oci-layout,
# index.json, blobs/sha256/{layer,config,manifest}) packed as a tar that
# `ctr -n k8s.io images import` accepts. Used by the node smoke tests.
#
# usage: mk_oci_image.sh ROOTFS_DIR IMAGE_NAME OUT.tar ENTRYPOINT [ARG...]
#   IMAGE_NAME: full reference, e.g. docker.io/podmig/pause:smoke
set -euo pipefail

[ $# -ge 4 ] || { echo "usage: $0 ROOTFS_DIR IMAGE_NAME OUT.tar ENTRYPOINT [ARG...]" >&2; exit 2; }
rootfs=$1 name=$2 out=$3
shift 3

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/blobs/sha256"

json_str() { # JSON string of $1 (the names and arguments used here need no escaping beyond quotes)
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}
entry=""
for a in "$@"; do entry+="${entry:+,}$(json_str "$a")"; done

# Layer: reproducible tar of the rootfs, owned by root.
tar -C "$rootfs" --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -cf "$tmp/layer.tar" .
diff_id=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
gzip -n -c "$tmp/layer.tar" > "$tmp/layer.tar.gz"
layer=$(sha256sum "$tmp/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$tmp/layer.tar.gz")
mv "$tmp/layer.tar.gz" "$tmp/blobs/sha256/$layer"
rm "$tmp/layer.tar"

blob() { # move file $1 into blobs/, set BLOB_DIGEST and BLOB_SIZE
	BLOB_DIGEST=$(sha256sum "$1" | cut -d' ' -f1)
	BLOB_SIZE=$(stat -c %s "$1")
	mv "$1" "$tmp/blobs/sha256/$BLOB_DIGEST"
}

printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":[%s],"Env":["PATH=/"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
	"$entry" "$diff_id" > "$tmp/config.json"
blob "$tmp/config.json"
config=$BLOB_DIGEST config_size=$BLOB_SIZE
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
	"$config" "$config_size" "$layer" "$layer_size" > "$tmp/manifest.json"
blob "$tmp/manifest.json"
manifest=$BLOB_DIGEST manifest_size=$BLOB_SIZE
printf '{"imageLayoutVersion":"1.0.0"}' > "$tmp/oci-layout"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":%s,"org.opencontainers.image.ref.name":%s}}]}' \
	"$manifest" "$manifest_size" "$(json_str "$name")" "$(json_str "${name##*:}")" > "$tmp/index.json"
tar -C "$tmp" --numeric-owner --owner=0 --group=0 -cf "$out" oci-layout index.json blobs
echo "$out: $name manifest sha256:$manifest"
