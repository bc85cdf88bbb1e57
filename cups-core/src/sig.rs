//! Update signatures: ECDSA P-256 over SHA-512(update), DER-encoded, prefixed by the CRC of
//! the signing key's raw 64-byte public key. The update is hashed as it streams; the
//! signature is then checked against every key the station holds, like the station does.
//!
//! SKELETON: API fixed, bodies to be written.

/// Length of a raw public key file `sig-N.key` (`X‖Y`).
pub const SIG_KEY_LEN: usize = 64;
/// Length of a SHA-512 digest.
pub const DIGEST_LEN: usize = 64;

/// A raw P-256 public key as the station stores it in `sig-N.key`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SigKey(pub [u8; SIG_KEY_LEN]);

impl SigKey {
    /// keyCRC = crc32 of the 64 raw bytes.
    #[must_use]
    pub fn crc(&self) -> u32 {
        crate::crc::crc32(&self.0)
    }
}

/// An ECDSA P-256 verifier over a pre-computed SHA-512 digest (truncated to 256 bits as
/// ECDSA does). Firmware can plug in a hardware engine.
pub trait EcdsaP256Verifier {
    /// Whether `der_sig` is a valid DER signature of `digest` under `key`.
    fn verify_prehash(&self, key: &SigKey, digest: &[u8; DIGEST_LEN], der_sig: &[u8]) -> bool;
}
