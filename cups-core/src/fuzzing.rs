//! Fuzz entry points, shared by `fuzz/` (cargo-fuzz builds with `--cfg fuzzing`) and the unit
//! tests, which run each of them over the golden vectors and random inputs. Every function
//! returns without panicking for any input, except where it asserts a round-trip invariant:
//! such an assertion failing is a real bug.

/// EUI parsing: any text; whatever parses re-parses from both renderings to the same EUI.
pub fn eui(data: &[u8]) {
    crate::eui::fuzz_eui_parse(data);
}

/// Request JSON decoding; whatever decodes re-encodes and decodes to an equal request.
pub fn request_decode(data: &[u8]) {
    crate::request::fuzz_request_decode(data);
}

/// Response decoding of the whole input, then of the same input in splits derived from its
/// first bytes: events and result must agree.
pub fn response_decode(data: &[u8]) {
    crate::response::decoder::fuzz_response_decode(data);
}

/// Response decoding with split points (the same body as [`response_decode`], which checks
/// splits too; a separate target so each has its own corpus and time budget).
pub fn response_split(data: &[u8]) {
    crate::response::decoder::fuzz_response_decode(data);
}

/// Response parts derived from the bytes, encoded, decoded: the parts come back.
pub fn roundtrip(data: &[u8]) {
    crate::response::encoder::fuzz_response_roundtrip(data);
}

/// Credential blobs: station split and station-safety check agree; accepted blobs rebuild.
pub fn cred(data: &[u8]) {
    crate::cred::fuzz_cred(data);
}

/// Signature DER parsing and verification on arbitrary bytes.
pub fn sig_der(data: &[u8]) {
    crate::sig::fuzz_sig_der(data);
}

/// A station (in-memory store) fed a response body derived from the bytes, whole and in
/// splits: same files and events either way.
#[cfg(feature = "alloc")]
pub fn station(data: &[u8]) {
    crate::station::fuzz_station(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors_dir() -> std::path::PathBuf {
        std::env::var_os("CUPS_VECTORS").map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
            std::path::PathBuf::from,
        )
    }

    /// Every fuzz entry over every vector file and some pseudo-random inputs.
    #[test]
    fn entries_accept_vectors_and_noise() {
        let mut inputs: std::vec::Vec<std::vec::Vec<u8>> = std::vec::Vec::new();
        for sub in ["requests", "responses"] {
            let dir = vectors_dir().join(sub);
            for entry in std::fs::read_dir(&dir).expect("vectors present") {
                inputs.push(std::fs::read(entry.expect("entry").path()).expect("readable"));
            }
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..300usize {
            let v = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x.to_le_bytes()[0]
                })
                .collect();
            inputs.push(v);
        }
        for data in &inputs {
            eui(data);
            request_decode(data);
            response_decode(data);
            response_split(data);
            roundtrip(data);
            cred(data);
            sig_der(data);
            station(data);
        }
    }
}
