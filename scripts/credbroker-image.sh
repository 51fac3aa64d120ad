#!/usr/bin/env bash
# Builds the credbroker runtime image on a machine without an image registry, from a built
# binary: the same image deploy/Dockerfile's last stage makes (same paths, user, ports,
# entrypoint), assembled from the binary, the shared libraries `ldd` lists, the loader and
# the host's CA bundle (as scripts/redis-image.sh does for Redis), built `FROM scratch`.
#
#   scripts/credbroker-image.sh [BINARY]     default BINARY: target/release/credbroker
#
# Tests pass the test-profile binary (target/debug/credbroker), so CI needs no release
# build; the copy in the image is stripped either way.
#
# Environment: CREDBROKER_IMAGE (default credbroker:local).
# Run it:  docker run --rm --read-only --cap-drop ALL -p 127.0.0.1:50051:50051 \
#            -e CREDBROKER__SERVER__LISTEN=0.0.0.0:50051 credbroker:local
#          (see docs/deployment.md for the configuration a non-loopback listener needs)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/rootfs.sh
. scripts/lib/rootfs.sh

binary="${1:-target/release/credbroker}"
image="${CREDBROKER_IMAGE:-credbroker:local}"
[ -x "$binary" ] || rootfs_die "no binary at $binary: run 'cargo build --release' or pass its path"
command -v docker >/dev/null 2>&1 || rootfs_die "docker not found"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/credbroker/rootfs"
rootfs_init "$root"
rootfs_add_binary "$root" "$binary" /usr/local/bin/credbroker
rootfs_add_ca_certs "$root"
# Where the configuration and the key are mounted (read-only): owned by nobody in particular,
# present so a mount point exists even on runtimes that do not create one.
mkdir -p "$root/etc/credbroker" "$root/run/secrets"

banner="$(rootfs_smoke "$root" /usr/local/bin/credbroker --version)" \
    || rootfs_die "credbroker does not start inside the root filesystem"
version="${banner#credbroker }"

# Keep in step with the runtime stage of deploy/Dockerfile (tests/api/deploy/image.rs
# compares the two).
rootfs_build "$root" "$image" \
    'USER 65532:65532' \
    'WORKDIR /' \
    'EXPOSE 50051/tcp 9464/tcp' \
    'ENTRYPOINT ["/usr/local/bin/credbroker"]' \
    'CMD ["serve"]' \
    "LABEL org.opencontainers.image.title=credbroker org.opencontainers.image.version=$version"
echo "credbroker-image.sh: built $image (credbroker $version, $(du -sh "$root" | cut -f1) unpacked)"
