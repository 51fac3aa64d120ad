#!/usr/bin/env bash
# Builds the local Docker image `credbroker-redis:7` that the Redis tests run
# through testcontainers. No image registry is reachable here, so the image is
# made from Debian's `redis-server` package: the real binary, the shared
# libraries `ldd` lists and the dynamic loader, imported as a root filesystem.
# testcontainers never pulls an image that exists locally.
#
# Idempotent: exits at once when the image already exists.
# Also makes sure `redis-cli` is on the host (tests and chaos scripts use it).
#
# Environment: REDIS_IMAGE (default credbroker-redis:7).
set -euo pipefail

IMAGE="${REDIS_IMAGE:-credbroker-redis:7}"

die() { echo "redis-image.sh: $*" >&2; exit 1; }

# apt-get install, as root or through sudo.
apt_install() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 \
            || die "need to install $* with apt-get, but not root and no sudo; install it by hand"
        sudo=(sudo)
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v docker >/dev/null 2>&1 || die "docker not found"

need=()
[ -x /usr/bin/redis-cli ] || need+=(redis-tools)
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    [ -x /usr/bin/redis-server ] || need+=(redis-server)
    build=1
else
    build=0
fi
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
[ "$build" -eq 1 ] || exit 0

# shellcheck source=lib/rootfs.sh
. "$(dirname "$0")/lib/rootfs.sh"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/rootfs"
mkdir -p "$root/usr/bin" "$root/data" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
chmod 0777 "$root/data"   # writable for `docker run --user` too (RDB, AOF dir)

# /usr/bin/redis-server is a symlink to redis-check-rdb, which picks its mode
# from argv[0]: copy the resolved file under the name redis-server.
real="$(readlink -f /usr/bin/redis-server)"
cp "$real" "$root/usr/bin/redis-server"

# Shared libraries and the loader (scripts/lib/rootfs.sh).
rootfs_add_libs "$root" "$real"

# Redis needs no config file; these keep tools like `id` or getpwuid happy.
printf 'root:x:0:0:root:/data:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"

# Smoke-test the rootfs before importing: the binary must start with only
# what we copied (chroot needs root; otherwise run the copy on the host).
if [ "$(id -u)" -eq 0 ]; then
    banner="$(chroot "$root" /usr/bin/redis-server --version)" \
        || die "redis-server does not start inside the root filesystem"
else
    banner="$("$root/usr/bin/redis-server" --version)"
fi
case "$banner" in
    "Redis server v="*) ;;
    *) die "copied binary did not run as redis-server: $banner" ;;
esac
version="$(sed -n 's/^Redis server v=\([^ ]*\).*/\1/p' <<<"$banner")"
tar -C "$root" --numeric-owner -cf "$tmp/rootfs.tar" .
docker import \
    --change 'EXPOSE 6379/tcp' \
    --change 'WORKDIR /data' \
    --change 'CMD ["/usr/bin/redis-server","--bind","0.0.0.0","--protected-mode","no"]' \
    --change "LABEL org.opencontainers.image.version=${version:-unknown} org.opencontainers.image.description=redis-server-from-debian" \
    --message "redis-server ${version:-unknown} from Debian's package" \
    "$tmp/rootfs.tar" "$IMAGE" >/dev/null
echo "redis-image.sh: built $IMAGE (redis ${version:-unknown})"
