#!/bin/sh
# Builds the testnet's Prometheus image, darkchat-prometheus:local, for the
# compose file's metrics profile (docker compose --profile metrics up),
# from Prometheus's Go module: no registry is needed and nothing is pulled
# but Go modules.
#
# The image is FROM scratch and holds
#   - prometheus, built from github.com/prometheus/prometheus/cmd/prometheus
#     at $PROMETHEUS_VERSION (CGO_ENABLED=0, static), without the cloud
#     service discoveries (tag remove_all_sd: the testnet's targets are
#     static) and without the web UI, whose assets need npm: the HTTP API
#     (/api/v1/...) is what Grafana and the tests use;
#   - docker/prometheus.yml, which scrapes every node's metrics listener;
#   - darkchatd, a static one, for its `health` probe (the healthcheck asks
#     Prometheus's /-/ready).
#
# Building Prometheus takes minutes, so the binary is kept in
# ${XDG_CACHE_HOME:-~/.cache}/darkchat/prometheus/, under a directory
# named after the version, tags and platform, and reused by every later
# build (DARKCHAT_CACHE_DIR moves it). Delete that directory to rebuild.
#
# Needs: go, docker.
#
# Usage: docker/build-prometheus.sh [image-tag]   (default darkchat-prometheus:local)
set -eu

tag=${1:-darkchat-prometheus:local}
version=${PROMETHEUS_VERSION:-v0.316.0} # Prometheus 3's Go module versions are v0.3xx.y
tags=remove_all_sd
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

need() {
	command -v "$1" >/dev/null 2>&1 || { echo "build-prometheus.sh: $1 not found ($2)" >&2; exit 1; }
}
need go "install Go 1.26 or later"
need docker "install Docker"

cache=${DARKCHAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/darkchat}/prometheus/$version-$tags-$(go env GOOS)_$(go env GOARCH)
bin=$cache/prometheus
if [ -x "$bin" ]; then
	echo "build-prometheus.sh: using the cached $bin"
else
	echo "build-prometheus.sh: building prometheus $version (a few minutes, once; cached in $cache)"
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/build.XXXXXX")
	# Outside any module, so that go install takes Prometheus's own go.mod.
	if ! (cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS= GOWORK=off \
		go install -trimpath -tags "$tags" \
		-ldflags "-s -w -X github.com/prometheus/common/version.Version=$version -X github.com/prometheus/common/version.Branch=module" \
		"github.com/prometheus/prometheus/cmd/prometheus@$version"); then
		rm -rf "$tmp"
		exit 1
	fi
	mv "$tmp/prometheus" "$bin" # atomic: a concurrent build finds a whole binary or none
	rm -rf "$tmp"
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/darkchat-prometheus.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
fs=$ctx/rootfs
mkdir -p "$fs/bin" "$fs/etc/prometheus" "$fs/prometheus" "$fs/tmp"
chmod 1777 "$fs/tmp"
cp "$bin" "$fs/bin/prometheus"
cp "$here/prometheus.yml" "$fs/etc/prometheus/prometheus.yml"
echo "build-prometheus.sh: building a static darkchatd for the healthcheck"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$fs/bin/darkchatd" ./cmd/darkchatd)

cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.listen-address=0.0.0.0:9090"]
DOCKERFILE
echo "build-prometheus.sh: building image $tag"
docker build --quiet --tag "$tag" "$ctx" >/dev/null
echo "build-prometheus.sh: built $tag ($(docker image inspect --format '{{.Size}}' "$tag") bytes)"
