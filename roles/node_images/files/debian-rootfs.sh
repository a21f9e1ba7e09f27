#!/bin/bash
# Unpack Debian packages and the shared libraries they depend on into an image's root directory,
# for images of programs that come from the distribution (redis-server) rather than a static build.
#
# usage: debian-rootfs.sh ROOTFS PACKAGE...
#
# The packages named, then every `lib*` package in their Depends/Pre-Depends, recursively (the
# shared-library closure: libc6, libssl3, libjemalloc2, ...), are fetched with `apt-get download`
# (no install, no maintainer scripts, no service started on this machine) and unpacked with
# `dpkg-deb -x`. Documentation, manuals and locales are left out. Nothing else of the host goes in.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ROOTFS PACKAGE..." >&2; exit 2; }
rootfs=$1
shift

debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
chmod 0755 "$debs"   # apt's download user (_apt) writes here

fetch() {
	(cd "$debs" && apt-get download -q "$@" 2>&1) || {
		echo "$0: apt-get download $* failed; refreshing the package lists once" >&2
		apt-get update -q >&2
		(cd "$debs" && apt-get download -q "$@")
	}
}

declare -A seen=()
todo=("$@")
while [ ${#todo[@]} -gt 0 ]; do
	fetch "${todo[@]}" >/dev/null
	for p in "${todo[@]}"; do seen[$p]=1; done
	next=()
	for deb in "$debs"/*.deb; do
		# Depends: "libc6 (>= 2.34), libssl3 (>= 3.0.0), a | b": the first of each alternative
		for dep in $(dpkg-deb -f "$deb" Depends Pre-Depends | sed -e 's/^[A-Za-z-]*: //' \
			| tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g'); do
			case $dep in
			lib*) [ -n "${seen[$dep]:-}" ] || { seen[$dep]=1; next+=("$dep"); } ;;
			esac
		done
	done
	todo=("${next[@]}")
done

mkdir -p "$rootfs"
for deb in "$debs"/*.deb; do
	dpkg-deb -x "$deb" "$rootfs"
	echo "unpacked $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"
done
rm -rf "$rootfs/usr/share/doc" "$rootfs/usr/share/man" "$rootfs/usr/share/locale" "$rootfs/usr/share/lintian"
