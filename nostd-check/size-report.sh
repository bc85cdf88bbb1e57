#!/usr/bin/env bash
# Code size of cups-core's firmware parts in the freestanding, opt-level "z", LTO build of
# this crate for the host (x86_64: no embedded targets are installed here, so these are
# x86_64 numbers; Thumb-2 code is typically smaller).
#
# Two builds: the default sha2 backend selection (on x86_64 that links the unrolled software
# SHA-512 *and* the AVX2 one with runtime detection), and the firmware setting
#   RUSTFLAGS='--cfg sha2_backend="soft" --cfg sha2_backend_soft="compact"'
# (one compact software SHA-512, what a microcontroller build should use).
# Each number is .text of the binary minus .text of `baseline` (the C runtime glue alone).
set -euo pipefail
cd "$(dirname "$0")"
COMPACT='--cfg sha2_backend="soft" --cfg sha2_backend_soft="compact"'
cargo build --locked --release --quiet
RUSTFLAGS="$COMPACT" cargo build --locked --release --quiet --target-dir target/compact
text() { size -A "$1" | awk '$1==".text"{print $2}'; }
printf '%-46s %12s %12s\n' "part (text bytes, minus baseline)" "default" "compact-sha"
for b in only_decode only_sha only_verify only_request parts; do
    d=$(( $(text target/release/$b) - $(text target/release/baseline) ))
    c=$(( $(text target/compact/release/$b) - $(text target/compact/release/baseline) ))
    case $b in
        only_decode) what="response decoder";;
        only_sha) what="SHA-512 + DER + key loop (no ECDSA backend)";;
        only_verify) what="verifier with RustCrypto P-256";;
        only_request) what="request decode + encode";;
        parts) what="decoder + verifier + request codec";;
    esac
    printf '%-46s %12d %12d\n' "$what" "$d" "$c"
done
echo
echo "state sizes (host, from cups-core's unit tests):"
cargo test --locked --quiet --manifest-path ../Cargo.toml -p cups-core --lib -- --nocapture size 2>/dev/null \
    | grep '^size_of' | sed 's/^/  /'
