//! The station's CRC-32 (zlib / CRC-32/ISO-HDLC) and the credential-set CRC it reports.
//!
//! The station reports `cupsCredCrc`/`tcCredCrc` as `crc32(trust ‖ cert ‖ key)` over the
//! *contents of the files it stores*, where a missing or empty file counts as the four bytes
//! `00 00 00 00`. After it stores a blob that CUPS sent, the next CRC it reports equals
//! `crc32(blob)`, for all three blob forms; so a server sends credentials iff the reported CRC
//! differs from `crc32(intended blob)`.

/// The CRC algorithm: reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF.
pub const ALGORITHM: ::crc::Crc<u32> = ::crc::Crc::<u32>::new(&::crc::CRC_32_ISO_HDLC);

/// What an empty or missing credential file contributes to the credential CRC.
pub const EMPTY_FILE: [u8; 4] = [0; 4];

/// CRC of an empty credential set, `crc32([0u8; 12])` (what a station with no credentials
/// reports): 2077607535 = 0x7BD5C66F.
pub const EMPTY_SET_CRC: u32 = 2_077_607_535;

/// `crc32(bytes)`.
#[must_use]
pub fn crc32(bytes: &[u8]) -> u32 {
    ALGORITHM.checksum(bytes)
}

/// Streaming CRC-32: feed any split of the input, get the same value as [`crc32`].
#[derive(Clone)]
pub struct Crc32 {
    digest: ::crc::Digest<'static, u32>,
}

impl core::fmt::Debug for Crc32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Crc32").finish_non_exhaustive()
    }
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A CRC over nothing yet.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            digest: ALGORITHM.digest(),
        }
    }

    /// Feed more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
    }

    /// Feed one credential file's contents with the station's rule (empty = four zero bytes).
    pub fn update_file(&mut self, contents: &[u8]) {
        if contents.is_empty() {
            self.digest.update(&EMPTY_FILE);
        } else {
            self.digest.update(contents);
        }
    }

    /// The CRC of everything fed so far.
    #[must_use]
    pub fn finish(self) -> u32 {
        self.digest.finalize()
    }
}

/// The credential CRC the station reports for stored files `trust`, `cert`, `key`
/// (each possibly empty = missing).
#[must_use]
pub fn cred_set_crc(trust: &[u8], cert: &[u8], key: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update_file(trust);
    c.update_file(cert);
    c.update_file(key);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn empty_set() {
        assert_eq!(crc32(&[0u8; 12]), EMPTY_SET_CRC);
        assert_eq!(cred_set_crc(&[], &[], &[]), EMPTY_SET_CRC);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: std::vec::Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for split in [0, 1, 7, 500, 999, 1000] {
            let (a, b) = data.split_at(split);
            let mut c = Crc32::new();
            c.update(a);
            c.update(b);
            assert_eq!(c.finish(), crc32(&data));
        }
    }

    #[test]
    fn stored_blob_slices_give_blob_crc() {
        // A station that stored the three slices of a blob reports crc32(blob).
        let blob = [0x30u8, 0x01, 0xAA, 0x30, 0x02, 0xBB, 0xCC, 0x30, 0x00];
        let (t, rest) = blob.split_at(3);
        let (c, k) = rest.split_at(4);
        assert_eq!(cred_set_crc(t, c, k), crc32(&blob));
    }
}
