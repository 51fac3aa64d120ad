#!/usr/bin/env bash
# Test-only certificates for the clients' TLS/mTLS tests (never use them anywhere else):
# a CA, a server certificate for 127.0.0.1/localhost, and a client certificate whose URI SAN
# is a SPIFFE id. Valid for 100 years so the suites do not rot; regenerate with this script.
set -euo pipefail
cd "$(dirname "$0")"
days=36500
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -sha256 -days $days -subj "/CN=credbroker test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
issue() { # name, subject, extensions
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days $days \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm "$1.csr" "$1.ext"
}
issue server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
issue client "/CN=credbroker-test-client" "subjectAltName=URI:spiffe://credbroker.test/client
extendedKeyUsage=clientAuth"
rm -f ca.srl
