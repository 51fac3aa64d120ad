# Sourced, not run. Builds a container root filesystem from binaries on this host and
# imports it as a Docker image: there is no image registry here, so images are made the way
# scripts/redis-image.sh makes the Redis test image (a binary, the shared libraries `ldd`
# lists, the dynamic loader, a few files in /etc), never pulled. The root filesystem is
# copied into an image `FROM scratch`, which needs no registry either.
#
# Used by redis-image.sh (libraries only), credbroker-image.sh and fleet-images.sh.

rootfs_die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# rootfs_init ROOT: an empty tree with /tmp, the root user and the conventional unprivileged
# user 65532 ("nonroot", as in distroless images, so both image kinds run as the same uid).
rootfs_init() {
    local root=$1
    mkdir -p "$root/etc" "$root/tmp"
    chmod 1777 "$root/tmp"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
    # glibc's resolver reads this; files first so /etc/hosts entries Docker writes win.
    printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
}

# rootfs_add_libs ROOT BINARY: every shared library BINARY needs, at the path ldd prints
# (symlinks resolved), and the loader at the path the binary asks for (PT_INTERP).
rootfs_add_libs() {
    local root=$1 binary=$2 lib
    command -v ldd >/dev/null 2>&1 || rootfs_die "ldd not found"
    while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
}

# rootfs_add_binary ROOT SOURCE DEST: SOURCE copied to ROOT/DEST, stripped of symbols and
# debug info (a test-profile binary is ~200 MB with them), plus its libraries.
rootfs_add_binary() {
    local root=$1 source=$2 dest=$3
    [ -x "$source" ] || rootfs_die "no executable at $source"
    mkdir -p "$root$(dirname "$dest")"
    cp -L "$source" "$root$dest"
    strip "$root$dest" || rootfs_die "strip failed on $source (binutils missing?)"
    rootfs_add_libs "$root" "$source"
}

# rootfs_add_ca_certs ROOT: the host's CA bundle, where rustls' platform verifier (and
# OpenSSL) look for it. Upstream providers are reached over HTTPS.
rootfs_add_ca_certs() {
    local root=$1 bundle=/etc/ssl/certs/ca-certificates.crt
    [ -f "$bundle" ] || rootfs_die "$bundle missing (apt-get install ca-certificates)"
    mkdir -p "$root/etc/ssl/certs"
    cp -L "$bundle" "$root/etc/ssl/certs/"
}

# rootfs_smoke ROOT COMMAND...: runs COMMAND inside ROOT (chroot needs root; otherwise the
# copied files run on the host), so a missing library fails here, not in the container.
rootfs_smoke() {
    local root=$1
    shift
    if [ "$(id -u)" -eq 0 ]; then
        chroot "$root" "$@"
    else
        "$root$1" "${@:2}"
    fi
}

# rootfs_build ROOT IMAGE [DOCKERFILE-LINE...]: builds IMAGE from ROOT with a Dockerfile that
# starts `FROM scratch` (no registry needed) and copies ROOT in; the lines add the rest
# (USER, EXPOSE, STOPSIGNAL, ENTRYPOINT, CMD, LABEL - all of them, unlike `docker import
# --change`). The build context is ROOT's parent folder: give each image its own.
rootfs_build() {
    local root=$1 image=$2 line
    shift 2
    local context dockerfile
    context="$(dirname "$root")"
    dockerfile="$context/Dockerfile"
    printf 'FROM scratch\nCOPY %s/ /\n' "$(basename "$root")" >"$dockerfile"
    for line in "$@"; do
        printf '%s\n' "$line" >>"$dockerfile"
    done
    local previous
    previous="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
    # The builder's chatter (e.g. "legacy builder is deprecated") only matters on failure.
    docker build --quiet --tag "$image" --file "$dockerfile" "$context" >/dev/null 2>"$context/build.log" \
        || { cat "$context/build.log" >&2; rootfs_die "docker build of $image failed"; }
    # A rebuild moves the tag; drop the image it leaves behind unless a container uses it.
    if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
        docker rmi "$previous" >/dev/null 2>&1 || true
    fi
}
