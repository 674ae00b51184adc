#!/bin/sh
# Builds the darkchat testnet image, darkchat-testnet:local, from what is on
# this machine: no registry is needed and nothing is pulled.
#
# The image is FROM scratch and holds
#   - darkchatd and darkchat, static Go binaries (CGO_ENABLED=0);
#   - /bin/sh, ip (iproute2), iptables and sleep with their shared libraries
#     and iptables' extensions, copied from this machine, for the NAT router
#     containers and for nodes that route through them;
#   - docker/node.sh and docker/router.sh, the containers' entry points.
#
# Needs: go, docker, and the host's iproute2 and iptables
# (Debian: apt-get install iproute2 iptables).
#
# Usage: docker/build.sh [image-tag]     (default darkchat-testnet:local)
set -eu

tag=${1:-darkchat-testnet:local}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

need() {
	command -v "$1" >/dev/null 2>&1 || { echo "build.sh: $1 not found ($2)" >&2; exit 1; }
}
need go "install Go 1.26 or later"
need docker "install Docker"
need ldd "part of libc-bin"
need ip "apt-get install iproute2"
need iptables "apt-get install iptables"

ctx=$(mktemp -d "${TMPDIR:-/tmp}/darkchat-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
fs=$ctx/rootfs
mkdir -p "$fs/usr/local/bin" "$fs/bin" "$fs/usr/sbin" "$fs/usr/bin" "$fs/etc" \
	"$fs/data" "$fs/run" "$fs/tmp" "$fs/docker"
chmod 1777 "$fs/tmp"

echo "build.sh: building static darkchatd and darkchat"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$fs/usr/local/bin/" ./cmd/darkchatd ./cmd/darkchat)

# copy_with_libs FILE DEST: copies FILE (symlinks resolved) to DEST inside
# the image, and every shared library it loads to the same path it has here.
copy_with_libs() {
	mkdir -p "$fs$(dirname "$2")"
	cp -L "$1" "$fs$2"
	ldd "$1" 2>/dev/null | while read -r a b c _; do
		case "$b" in
		"=>") lib=$c ;;
		*) lib=$a ;;
		esac
		case "$lib" in
		/*) [ -e "$fs$lib" ] || { mkdir -p "$fs$(dirname "$lib")" && cp -L "$lib" "$fs$lib"; } ;;
		esac
	done
}

echo "build.sh: copying sh, ip, iptables and sleep from this machine"
copy_with_libs "$(command -v dash || command -v sh)" /bin/sh
copy_with_libs "$(command -v ip)" /usr/sbin/ip
copy_with_libs "$(command -v sleep)" /usr/bin/sleep
# iptables is one multi-call binary (xtables-nft-multi or
# xtables-legacy-multi) that picks its personality from its name.
multi=$(readlink -f "$(command -v iptables)")
copy_with_libs "$multi" "/usr/sbin/$(basename "$multi")"
ln -s "$(basename "$multi")" "$fs/usr/sbin/iptables"
# Its match and target extensions (MASQUERADE, DNAT, conntrack, ...).
xt=""
for d in /usr/lib/x86_64-linux-gnu/xtables /usr/lib/aarch64-linux-gnu/xtables /usr/lib/xtables /usr/lib64/xtables /lib/xtables; do
	if [ -e "$d/libxt_conntrack.so" ]; then xt=$d; break; fi
done
[ -n "$xt" ] || { echo "build.sh: iptables extensions (libxt_conntrack.so) not found" >&2; exit 1; }
for so in "$xt"/*.so; do copy_with_libs "$so" "$so"; done
for f in /etc/protocols /etc/services /etc/ethertypes; do
	[ -e "$f" ] && cp -L "$f" "$fs$f"
done
cp "$here/node.sh" "$here/router.sh" "$fs/docker/"
chmod 755 "$fs/docker/node.sh" "$fs/docker/router.sh"

cp "$here/Dockerfile" "$ctx/Dockerfile"
echo "build.sh: building image $tag"
docker build --quiet --tag "$tag" "$ctx" >/dev/null
echo "build.sh: built $tag ($(docker image inspect --format '{{.Size}}' "$tag") bytes)"
