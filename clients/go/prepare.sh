#!/usr/bin/env bash
# The one command before `go build`/`go test` here: generates the gRPC code from
# proto/credbroker/v1/broker.proto into gen/ (git-ignored, so it is never stale) and, with
# Debian's packaged Go sources (no module proxy needed), links vendor/ to them.
#   apt-get install golang-go protobuf-compiler protoc-gen-go protoc-gen-go-grpc \
#     golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
# Elsewhere, with a module proxy: CREDBROKER_GO_VENDOR=no clients/go/prepare.sh, then
# `go get google.golang.org/grpc google.golang.org/protobuf` and `go mod tidy`.
set -euo pipefail
cd "$(dirname "$0")"
proto=../../proto
gopkg="credbroker.local/client/gen/credbroker/v1;credbrokerv1"
mkdir -p gen
protoc -I "$proto" \
  --go_out=gen --go_opt=paths=source_relative --go_opt=Mcredbroker/v1/broker.proto="$gopkg" \
  --go-grpc_out=gen --go-grpc_opt=paths=source_relative --go-grpc_opt=Mcredbroker/v1/broker.proto="$gopkg" \
  credbroker/v1/broker.proto

if [ "${CREDBROKER_GO_VENDOR:-debian}" = debian ]; then
  src=/usr/share/gocode/src
  if [ ! -d "$src/google.golang.org/grpc" ]; then
    echo "prepare.sh: $src/google.golang.org/grpc is missing; install golang-google-grpc-dev" \
         "golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev" >&2
    exit 1
  fi
  mkdir -p vendor
  for d in google.golang.org github.com golang.org; do ln -sfn "$src/$d" "vendor/$d"; done
  printf '# google.golang.org/grpc v1.33.3\n## explicit\n# google.golang.org/protobuf v1.28.1\n## explicit\n' > vendor/modules.txt
fi
