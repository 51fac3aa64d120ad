#!/usr/bin/env bash
# Builds every image deploy/compose.yaml needs, on a machine without an image registry, so
#   scripts/fleet-images.sh && docker compose -f deploy/compose.yaml --profile demo up
# runs here. (Where images can be pulled, `docker compose ... up --build` builds the same
# services from deploy/Dockerfile and deploy/*/Dockerfile instead.)
#
#   scripts/fleet-images.sh [BINARY_DIR]     default BINARY_DIR: target/release
#
# Images (each name overridable by the environment variable compose.yaml reads too):
#   CREDBROKER_IMAGE     credbroker:local                 scripts/credbroker-image.sh
#   FAKE_UPSTREAM_IMAGE  credbroker-fake-upstream:local   the fake providers (demo profile)
#   NGINX_IMAGE          credbroker-nginx:local           Debian's nginx, the gRPC balancer
#   REDIS_IMAGE          credbroker-redis:7               scripts/redis-image.sh
# and the replicas' shared encryption key, deploy/secrets/encryption-key, when it is missing
# (CREDBROKER_KEY_FILE names another file; compose.yaml reads that variable too).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/rootfs.sh
. scripts/lib/rootfs.sh

bin_dir="${1:-target/release}"
fake_image="${FAKE_UPSTREAM_IMAGE:-credbroker-fake-upstream:local}"
nginx_image="${NGINX_IMAGE:-credbroker-nginx:local}"
key_file="${CREDBROKER_KEY_FILE:-deploy/secrets/encryption-key}"

[ -x "$bin_dir/credbroker" ] && [ -x "$bin_dir/fake-upstream" ] \
    || rootfs_die "$bin_dir/credbroker and $bin_dir/fake-upstream are needed: cargo build --release --workspace"

scripts/credbroker-image.sh "$bin_dir/credbroker"
REDIS_IMAGE="${REDIS_IMAGE:-credbroker-redis:7}" scripts/redis-image.sh

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# The fake providers. The binary waits for Ctrl-C only, hence STOPSIGNAL SIGINT.
fake_root="$tmp/fake/rootfs"
rootfs_init "$fake_root"
rootfs_add_binary "$fake_root" "$bin_dir/fake-upstream" /usr/local/bin/fake-upstream
rootfs_smoke "$fake_root" /usr/local/bin/fake-upstream --version >/dev/null \
    || rootfs_die "fake-upstream does not start inside the root filesystem"
# Keep in step with the fake-upstream stage of deploy/Dockerfile.
rootfs_build "$fake_root" "$fake_image" \
    'USER 65532:65532' 'EXPOSE 8080/tcp' 'STOPSIGNAL SIGINT' \
    'ENTRYPOINT ["/usr/local/bin/fake-upstream"]' 'CMD ["--listen", "0.0.0.0:8080"]'
echo "fleet-images.sh: built $fake_image"

# The balancer: Debian's nginx (grpc_pass is built in). Its configuration is mounted by
# compose (deploy/nginx/nginx.conf), which keeps every writable path under /tmp.
if ! [ -x /usr/sbin/nginx ]; then
    [ "$(id -u)" -eq 0 ] || rootfs_die "nginx is not installed: apt-get install nginx"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi
nginx_root="$tmp/nginx/rootfs"
rootfs_init "$nginx_root"
rootfs_add_binary "$nginx_root" /usr/sbin/nginx /usr/sbin/nginx
mkdir -p "$nginx_root/etc/nginx"
nginx_version="$(rootfs_smoke "$nginx_root" /usr/sbin/nginx -v 2>&1)" \
    || rootfs_die "nginx does not start inside the root filesystem"
# Keep in step with deploy/nginx/Dockerfile. SIGQUIT: nginx's graceful shutdown.
rootfs_build "$nginx_root" "$nginx_image" \
    'USER 65532:65532' 'EXPOSE 50051/tcp' 'STOPSIGNAL SIGQUIT' \
    'CMD ["/usr/sbin/nginx", "-g", "daemon off;"]' \
    "LABEL org.opencontainers.image.description=\"$nginx_version from Debian's package\""
echo "fleet-images.sh: built $nginx_image ($nginx_version)"

if [ ! -s "$key_file" ]; then
    mkdir -p "$(dirname "$key_file")"
    (umask 077 && head -c 32 /dev/urandom | base64 >"$key_file")
    # Compose without Swarm bind-mounts secret files as they are: the replicas run as 65532.
    if [ "$(id -u)" -eq 0 ]; then chown 65532:65532 "$key_file"; else chmod 0644 "$key_file"; fi
    echo "fleet-images.sh: wrote a new encryption key to $key_file (the replicas share it)"
fi
