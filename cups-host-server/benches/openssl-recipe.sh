#!/usr/bin/env bash
# The replaced system's per-gateway credential recipe (lorawan-cups-server README,
# "Generating Client Credentials and Bundles (OpenSSL)"), run for COUNT gateways:
# ecparam genkey, req, x509 -req with the extension file, three DER conversions, cat.
#
# usage: openssl-recipe.sh WORKDIR COUNT
#   WORKDIR must hold the issuing CA as ca.crt and ca.key (PEM); each gateway's files go to
#   WORKDIR/gw-<16 hex EUI>/ and its bundle is WORKDIR/gw-<EUI>/tc_cred.bin.
# Used by `cargo bench -p cups-host-server --bench mint`; installs nothing.
set -euo pipefail

workdir=${1:?usage: openssl-recipe.sh WORKDIR COUNT}
count=${2:?usage: openssl-recipe.sh WORKDIR COUNT}
cd "$workdir"
test -f ca.crt && test -f ca.key

# Step 3 of the recipe: the extension file (written once).
cat > cert_ext.cnf <<'CNF'
[ v3_req ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
CNF

for ((i = 1; i <= count; i++)); do
    eui=$(printf '0016c0%010x' "$i")
    dir="gw-$eui"
    mkdir -p "$dir"
    # 1. key
    openssl ecparam -name prime256v1 -genkey -noout -out "$dir/client.key"
    # 2. CSR with CN = EUI
    openssl req -new -key "$dir/client.key" -out "$dir/client.csr" -subj "/CN=$eui"
    # 4. sign with the CA
    openssl x509 -req -in "$dir/client.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -out "$dir/client.crt" -days 365 -sha256 -extfile cert_ext.cnf -extensions v3_req \
        2>/dev/null
    # 5. DER conversions
    openssl x509 -in ca.crt -outform DER -out "$dir/ca.der"
    openssl x509 -in "$dir/client.crt" -outform DER -out "$dir/client.crt.der"
    openssl ec -in "$dir/client.key" -outform DER -out "$dir/client.key.der" 2>/dev/null
    # 6. bundle
    cat "$dir/ca.der" "$dir/client.crt.der" "$dir/client.key.der" > "$dir/tc_cred.bin"
done
