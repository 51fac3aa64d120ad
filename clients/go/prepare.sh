#!/usr/bin/env bash
# The one command before `go build`/`go test`: generates the gRPC code from
# proto/credbroker/v1/broker.proto into gen/ (git-ignored, so it is never stale) and, with
# Debian's packaged Go sources (no module proxy needed), links vendor/ to them.
#   apt-get install golang-go protobuf-compiler protoc-gen-go protoc-gen-go-grpc \
#     golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
#
#   clients/go/prepare.sh                 this module (the client, its tests and example)
#   clients/go/prepare.sh --module DIR    also your module in DIR: requires the client (a
#                                         replace to this directory, by `go mod edit`) and
#                                         vendors it with grpc and protobuf (vendor/ of links)
#
# Elsewhere, with a module proxy: CREDBROKER_GO_VENDOR=no clients/go/prepare.sh, then
# `go get google.golang.org/grpc google.golang.org/protobuf` and `go mod tidy`.
set -euo pipefail
module=""
if [ "${1:-}" = --module ]; then
  module=$(cd "${2:?--module needs the directory of your module (with its go.mod)}" && pwd)
fi
cd "$(dirname "$0")"
client=$PWD
proto=../../proto
gopkg="credbroker.local/client/gen/credbroker/v1;credbrokerv1"
grpc_version=v1.33.3 protobuf_version=v1.28.1   # Debian bookworm's golang-google-grpc-dev and -protobuf-dev
src=/usr/share/gocode/src

mkdir -p gen
protoc -I "$proto" \
  --go_out=gen --go_opt=paths=source_relative --go_opt=Mcredbroker/v1/broker.proto="$gopkg" \
  --go-grpc_out=gen --go-grpc_opt=paths=source_relative --go-grpc_opt=Mcredbroker/v1/broker.proto="$gopkg" \
  credbroker/v1/broker.proto

# vendor/ of DIR: links to Debian's sources, and modules.txt naming what go.mod requires (Go
# checks the two agree; packages not listed still resolve through the links).
vendor_debian() { # DIR [extra modules.txt lines]
  local dir=$1
  if [ ! -d "$src/google.golang.org/grpc" ]; then
    echo "prepare.sh: $src/google.golang.org/grpc is missing; install golang-google-grpc-dev" \
         "golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev" >&2
    exit 1
  fi
  mkdir -p "$dir/vendor"
  for d in google.golang.org github.com golang.org; do ln -sfn "$src/$d" "$dir/vendor/$d"; done
  printf '# google.golang.org/grpc %s\n## explicit\n# google.golang.org/protobuf %s\n## explicit\n%s' \
    "$grpc_version" "$protobuf_version" "${2:-}" > "$dir/vendor/modules.txt"
}

if [ "${CREDBROKER_GO_VENDOR:-debian}" = debian ]; then
  vendor_debian .
fi

if [ -n "$module" ]; then
  dir=$module
  [ -f "$dir/go.mod" ] || { echo "prepare.sh: no go.mod in $dir (go mod init first)" >&2; exit 1; }
  (cd "$dir" && go mod edit -require=credbroker.local/client@v0.0.0 -replace=credbroker.local/client="$client" \
    -require=google.golang.org/grpc@"$grpc_version" -require=google.golang.org/protobuf@"$protobuf_version")
  vendor_debian "$dir" "$(printf '# credbroker.local/client v0.0.0 => %s\n## explicit\n# credbroker.local/client => %s\n' "$client" "$client")"
  mkdir -p "$dir/vendor/credbroker.local"
  ln -sfn "$client" "$dir/vendor/credbroker.local/client"
fi
