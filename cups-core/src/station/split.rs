//! Streaming credential split: the station's `sys_credComplete` rules applied to a blob as
//! its bytes arrive, so the blob never has to be held in memory.
//!
//! The station collects the whole blob in a heap buffer of `len + 1` bytes (the extra byte is
//! a NUL) and then walks it: trust at 0, client cert (or four zero bytes) after it, key (or a
//! zero byte, or a token running to the end) after that, each DER element sized by its first
//! four bytes (`30 LL` short form, or `30 8x HH LL` read as a 16-bit length whatever `x` is).
//! The only bytes that walk reads are the first four of each element, and they arrive in
//! order: the splitter keeps those four bytes of the element being sized and routes every
//! other byte straight to the trust, cert or key file at the right offset.
//!
//! Failures are reported exactly where [`crate::cred::station_split`] reports them, in the
//! same order. Where the real station would read past its buffer (undefined behaviour),
//! crash in a log line, or store bytes from beyond the blob, the splitter rejects the blob:
//! nothing is stored, which is what a gateway that survives such a blob ends up with.

use core::fmt;

/// ASN.1 SEQUENCE tag: every DER element the station walks starts with it.
pub const SEQUENCE_TAG: u8 = 0x30;
/// Bytes skipped for an absent client certificate (`00 00 00 00`).
pub const ABSENT_CERT_LEN: u32 = 4;
/// Header bytes the station reads to size an element (`30 82 HH LL`).
pub const ELEMENT_HEADER_LEN: usize = 4;
/// The station's log line reads `p[cert_off - 4]`: a trust shorter than this crashes it.
pub const LOG_LOOKBEHIND: u32 = 4;
/// Length added to a short-form length byte (tag + length byte).
const SHORT_FORM_OVERHEAD: u32 = 2;
/// Length added to a long-form 16-bit length (tag + 3 length bytes).
const LONG_FORM_OVERHEAD: u32 = 4;
/// Bit that marks a long-form length byte.
const LONG_FORM_BIT: u8 = 0x80;

/// Which credential file a byte belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CredPart {
    /// `*.trust`.
    Trust,
    /// `*.crt`.
    Cert,
    /// `*.key`.
    Key,
}

/// Where the station cut an accepted blob (offsets into the blob).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CredCuts {
    /// Trust length (the trust starts at 0).
    pub trust_len: u32,
    /// Offset of the client certificate (= trust length).
    pub cert_offset: u32,
    /// Client certificate length (0 = absent, stored as an empty file).
    pub cert_len: u32,
    /// Offset of the key or token.
    pub key_offset: u32,
    /// Key or token length (0 = absent, stored as an empty file).
    pub key_len: u32,
}

/// Why the station stores nothing for a credential blob (`Failed to parse ... credentials`).
/// Offsets are into the blob.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum CredReject {
    /// `ASN.1 SEQ expected for trust`.
    TrustNotSequence {
        /// The first byte.
        found: u8,
    },
    /// The station would read byte `at`, past the NUL after the blob (undefined behaviour).
    ReadsPastEnd {
        /// Index read.
        at: u32,
    },
    /// `ASN.1 SEQ expected for cert`.
    CertNotSequence {
        /// Cert offset.
        offset: u32,
        /// The byte found there.
        found: u8,
    },
    /// `expecting more data (key_offset=.., total_len=..)`.
    KeyOffsetBeyondEnd {
        /// Computed key offset.
        key_offset: u32,
    },
    /// A trust of 2 or 3 bytes: the station's log line reads before its buffer and crashes.
    LogReadsBeforeStart {
        /// Cert offset (below [`LOG_LOOKBEHIND`]).
        cert_offset: u32,
    },
    /// `Lengths do not align segment_len=.. parsed_len=... Ignoring.`
    LengthsDoNotAlign {
        /// `trust_len + cert_len + key_len`.
        parsed_len: u32,
    },
    /// The lengths align but the key ends past the blob (possible after an absent cert): the
    /// station would store its NUL terminator and bytes beyond its buffer.
    KeyBeyondEnd {
        /// Where the key would end.
        key_end: u32,
    },
    /// Writing a temporary credential file failed.
    Store,
}

impl fmt::Display for CredReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TrustNotSequence { found } => {
                write!(f, "ASN.1 SEQ expected for trust (0x{found:02x})")
            }
            Self::ReadsPastEnd { at } => {
                write!(
                    f,
                    "the station would read byte {at}, past the blob (undefined behaviour)"
                )
            }
            Self::CertNotSequence { offset, found } => {
                write!(
                    f,
                    "ASN.1 SEQ expected for cert (0x{found:02x}) at offset {offset}"
                )
            }
            Self::KeyOffsetBeyondEnd { key_offset } => {
                write!(f, "expecting more data (key_offset={key_offset})")
            }
            Self::LogReadsBeforeStart { cert_offset } => write!(
                f,
                "trust of {cert_offset} bytes: the station's log line reads before its buffer"
            ),
            Self::LengthsDoNotAlign { parsed_len } => {
                write!(f, "Lengths do not align parsed_len={parsed_len}. Ignoring.")
            }
            Self::KeyBeyondEnd { key_end } => {
                write!(f, "the key would end at {key_end}, past the blob")
            }
            Self::Store => f.write_str("writing a temporary credential file failed"),
        }
    }
}

impl core::error::Error for CredReject {}

/// Where the splitter is in the blob.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Collecting the trust header (bytes in `hdr`).
    TrustHdr,
    /// Trust content up to `trust_len`.
    TrustBody,
    /// Collecting the cert header at `cert_offset`.
    CertHdr,
    /// Cert content up to `key_offset`.
    CertBody,
    /// The four bytes of an absent cert.
    Gap,
    /// Collecting the key header at `key_offset`.
    KeyHdr,
    /// Key content up to `key_offset + key_len`.
    KeyBody,
    /// After the key: ignored.
    Rest,
    /// Rejected (reason in `failed`).
    Failed,
}

/// The streaming splitter for one blob. Feed every byte in order with [`feed`](Self::feed),
/// then call [`finish`](Self::finish).
#[derive(Clone, Debug)]
pub struct CredSplitter {
    len: u32,
    pos: u32,
    state: State,
    hdr: [u8; ELEMENT_HEADER_LEN],
    hdr_n: u8,
    cuts: CredCuts,
    failed: Option<CredReject>,
}

/// The station's `asn1_seqlen` from (up to) the first four bytes of an element; `None` when
/// more bytes are needed.
fn seqlen(hdr: &[u8]) -> Option<u32> {
    let len_byte = *hdr.get(1)?;
    if len_byte & LONG_FORM_BIT == 0 {
        return Some(u32::from(len_byte).saturating_add(SHORT_FORM_OVERHEAD));
    }
    let hi = *hdr.get(2)?;
    let lo = *hdr.get(3)?;
    Some(u32::from(u16::from_be_bytes([hi, lo])).saturating_add(LONG_FORM_OVERHEAD))
}

impl CredSplitter {
    /// A splitter for a blob of `len` bytes.
    #[must_use]
    pub const fn new(len: u16) -> Self {
        Self {
            len: len as u32,
            pos: 0,
            state: State::TrustHdr,
            hdr: [0; ELEMENT_HEADER_LEN],
            hdr_n: 0,
            cuts: CredCuts {
                trust_len: 0,
                cert_offset: 0,
                cert_len: 0,
                key_offset: 0,
                key_len: 0,
            },
            failed: None,
        }
    }

    /// Blob bytes fed so far.
    #[must_use]
    pub const fn position(&self) -> u32 {
        self.pos
    }

    /// The rejection found so far, if any (final: later bytes cannot undo it).
    #[must_use]
    pub const fn rejected(&self) -> Option<CredReject> {
        self.failed
    }

    fn fail(&mut self, reason: CredReject) {
        self.failed = Some(reason);
        self.state = State::Failed;
    }

    /// Record one header byte; returns the header collected so far.
    fn push_hdr(&mut self, b: u8) -> &[u8] {
        if let Some(slot) = self.hdr.get_mut(usize::from(self.hdr_n)) {
            *slot = b;
            self.hdr_n = self.hdr_n.saturating_add(1);
        }
        self.hdr.get(..usize::from(self.hdr_n)).unwrap_or_default()
    }

    fn hdr_bytes(&self) -> ([u8; ELEMENT_HEADER_LEN], usize) {
        (self.hdr, usize::from(self.hdr_n))
    }

    /// The state after the cert (or its absence) ends at `key_offset`.
    fn after_cert(&mut self) {
        self.hdr_n = 0;
        if self.cuts.key_offset > self.len {
            self.fail(CredReject::KeyOffsetBeyondEnd {
                key_offset: self.cuts.key_offset,
            });
        } else if self.pos == self.cuts.key_offset {
            self.state = State::KeyHdr;
        } else if self.cuts.cert_len == 0 {
            self.state = State::Gap;
        } else {
            self.state = State::CertBody;
        }
    }

    fn after_key_len(&mut self) {
        self.hdr_n = 0;
        let end = self.cuts.key_offset.saturating_add(self.cuts.key_len);
        self.state = if self.pos >= end {
            State::Rest
        } else {
            State::KeyBody
        };
    }

    /// Feed the next bytes of the blob. `sink(part, offset_in_file, bytes)` receives every
    /// byte that goes into a file, in file order; it may be called before the blob is known to
    /// be acceptable (delete the files if [`finish`](Self::finish) rejects it).
    pub fn feed(&mut self, data: &[u8], sink: &mut impl FnMut(CredPart, u32, &[u8])) {
        let mut rest = data;
        // Never accept more than the blob length.
        let room = usize::try_from(self.len.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        if rest.len() > room {
            rest = rest.get(..room).unwrap_or_default();
        }
        while let Some((&b, tail)) = rest.split_first() {
            match self.state {
                State::TrustHdr => {
                    rest = tail;
                    self.pos = self.pos.saturating_add(1);
                    if self.hdr_n == 0 && b != SEQUENCE_TAG {
                        self.fail(CredReject::TrustNotSequence { found: b });
                        continue;
                    }
                    if let Some(tl) = seqlen(self.push_hdr(b)) {
                        self.cuts.trust_len = tl;
                        self.cuts.cert_offset = tl;
                        let (hdr, n) = self.hdr_bytes();
                        sink(CredPart::Trust, 0, hdr.get(..n).unwrap_or_default());
                        self.hdr_n = 0;
                        self.state = if self.pos >= tl {
                            State::CertHdr
                        } else {
                            State::TrustBody
                        };
                    }
                }
                State::CertHdr => {
                    rest = tail;
                    self.pos = self.pos.saturating_add(1);
                    if self.hdr_n == 0 {
                        if b == 0 {
                            self.cuts.cert_len = 0;
                            self.cuts.key_offset =
                                self.cuts.cert_offset.saturating_add(ABSENT_CERT_LEN);
                            self.after_cert();
                            continue;
                        }
                        if b != SEQUENCE_TAG {
                            let offset = self.cuts.cert_offset;
                            self.fail(CredReject::CertNotSequence { offset, found: b });
                            continue;
                        }
                    }
                    if let Some(cl) = seqlen(self.push_hdr(b)) {
                        self.cuts.cert_len = cl;
                        self.cuts.key_offset = self.cuts.cert_offset.saturating_add(cl);
                        let (hdr, n) = self.hdr_bytes();
                        sink(CredPart::Cert, 0, hdr.get(..n).unwrap_or_default());
                        self.after_cert();
                    }
                }
                State::KeyHdr => {
                    rest = tail;
                    self.pos = self.pos.saturating_add(1);
                    if self.hdr_n == 0 && b != SEQUENCE_TAG {
                        self.cuts.key_len = if b == 0 {
                            0
                        } else {
                            sink(CredPart::Key, 0, &[b]);
                            self.len.saturating_sub(self.cuts.key_offset)
                        };
                        self.after_key_len();
                        continue;
                    }
                    if let Some(kl) = seqlen(self.push_hdr(b)) {
                        self.cuts.key_len = kl;
                        let (hdr, n) = self.hdr_bytes();
                        let keep = n.min(usize::try_from(kl).unwrap_or(usize::MAX));
                        sink(CredPart::Key, 0, hdr.get(..keep).unwrap_or_default());
                        self.after_key_len();
                    }
                }
                State::TrustBody | State::CertBody | State::Gap | State::KeyBody => {
                    let (part, start, end) = match self.state {
                        State::TrustBody => (Some(CredPart::Trust), 0, self.cuts.trust_len),
                        State::CertBody => (
                            Some(CredPart::Cert),
                            self.cuts.cert_offset,
                            self.cuts.key_offset,
                        ),
                        State::Gap => (None, self.cuts.cert_offset, self.cuts.key_offset),
                        _ => (
                            Some(CredPart::Key),
                            self.cuts.key_offset,
                            self.cuts.key_offset.saturating_add(self.cuts.key_len),
                        ),
                    };
                    let want = usize::try_from(end.saturating_sub(self.pos)).unwrap_or(usize::MAX);
                    let n = want.min(rest.len());
                    let (chunk, tail) = rest.split_at(n);
                    if let Some(part) = part {
                        sink(part, self.pos.saturating_sub(start), chunk);
                    }
                    rest = tail;
                    self.pos = self
                        .pos
                        .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
                    if self.pos >= end {
                        self.state = match self.state {
                            State::TrustBody => State::CertHdr,
                            State::CertBody | State::Gap => State::KeyHdr,
                            _ => State::Rest,
                        };
                    }
                }
                State::Rest | State::Failed => {
                    self.pos = self
                        .pos
                        .saturating_add(u32::try_from(rest.len()).unwrap_or(u32::MAX));
                    rest = &[];
                }
            }
        }
    }

    /// `pendData[at]` at the end of the blob, for header bytes of the pending element.
    fn byte_at(&self, elem_offset: u32, at: u32) -> Result<u8, CredReject> {
        if at < self.len {
            let idx = usize::try_from(at.saturating_sub(elem_offset)).unwrap_or(usize::MAX);
            if idx < usize::from(self.hdr_n) {
                return Ok(self.hdr.get(idx).copied().unwrap_or(0));
            }
            // Not reachable: a pending element's header bytes below `len` are all in `hdr`.
            return Ok(0);
        }
        if at == self.len {
            Ok(0)
        } else {
            Err(CredReject::ReadsPastEnd { at })
        }
    }

    /// `asn1_seqlen` of the pending element at `off`, reading past the blob like the station.
    fn pending_seqlen(&self, off: u32) -> Result<u32, CredReject> {
        let len_byte = self.byte_at(off, off.saturating_add(1))?;
        if len_byte & LONG_FORM_BIT == 0 {
            return Ok(u32::from(len_byte).saturating_add(SHORT_FORM_OVERHEAD));
        }
        let hi = self.byte_at(off, off.saturating_add(2))?;
        let lo = self.byte_at(off, off.saturating_add(3))?;
        Ok(u32::from(u16::from_be_bytes([hi, lo])).saturating_add(LONG_FORM_OVERHEAD))
    }

    /// The blob is complete (call after all `len` bytes were fed): the cuts, or why the
    /// station stores nothing. Key bytes still held back are passed to `sink`.
    pub fn finish(
        &mut self,
        sink: &mut impl FnMut(CredPart, u32, &[u8]),
    ) -> Result<CredCuts, CredReject> {
        if let Some(r) = self.failed {
            return Err(r);
        }
        if self.pos < self.len {
            // Not all bytes arrived: the station never gets here; treat like a cut-off blob.
            let r = CredReject::ReadsPastEnd { at: self.len };
            self.fail(r);
            return Err(r);
        }
        let r = self.resolve(sink);
        if let Err(e) = r {
            self.fail(e);
        }
        r
    }

    fn resolve(
        &mut self,
        sink: &mut impl FnMut(CredPart, u32, &[u8]),
    ) -> Result<CredCuts, CredReject> {
        let len = self.len;
        // Trust.
        if self.state == State::TrustHdr {
            if self.hdr_n == 0 {
                // Only for an empty blob, which the station never splits.
                return Err(CredReject::TrustNotSequence { found: 0 });
            }
            let tl = self.pending_seqlen(0)?;
            self.cuts.trust_len = tl;
            self.cuts.cert_offset = tl;
            self.state = State::TrustBody;
        }
        // Client certificate.
        if matches!(self.state, State::TrustBody | State::CertHdr) {
            let co = self.cuts.cert_offset;
            if self.state == State::TrustBody {
                // The trust ran past the end: nothing of the cert arrived.
                self.hdr_n = 0;
            }
            match self.byte_at(co, co)? {
                0 => {
                    self.cuts.cert_len = 0;
                    self.cuts.key_offset = co.saturating_add(ABSENT_CERT_LEN);
                }
                SEQUENCE_TAG => {
                    let cl = self.pending_seqlen(co)?;
                    self.cuts.cert_len = cl;
                    self.cuts.key_offset = co.saturating_add(cl);
                }
                found => return Err(CredReject::CertNotSequence { offset: co, found }),
            }
            self.state = State::CertBody;
        }
        if self.cuts.key_offset > len {
            return Err(CredReject::KeyOffsetBeyondEnd {
                key_offset: self.cuts.key_offset,
            });
        }
        // Key (only the header can still be pending: the cert ended inside the blob).
        let mut held_key = false;
        if self.state == State::KeyHdr {
            let ko = self.cuts.key_offset;
            self.cuts.key_len = match self.byte_at(ko, ko)? {
                SEQUENCE_TAG => self.pending_seqlen(ko)?,
                0 => 0,
                // A token is decided by its first byte while streaming.
                _ => len.saturating_sub(ko),
            };
            held_key = true;
        }
        let cuts = self.cuts;
        if cuts.cert_offset < LOG_LOOKBEHIND {
            return Err(CredReject::LogReadsBeforeStart {
                cert_offset: cuts.cert_offset,
            });
        }
        let parsed_len = cuts
            .trust_len
            .saturating_add(cuts.cert_len)
            .saturating_add(cuts.key_len);
        if parsed_len > len {
            return Err(CredReject::LengthsDoNotAlign { parsed_len });
        }
        let key_end = cuts.key_offset.saturating_add(cuts.key_len);
        if key_end > len {
            return Err(CredReject::KeyBeyondEnd { key_end });
        }
        if held_key {
            // key_end <= len: every key byte is among the held header bytes.
            let (hdr, n) = self.hdr_bytes();
            let keep = n.min(usize::try_from(cuts.key_len).unwrap_or(usize::MAX));
            if keep > 0 {
                sink(CredPart::Key, 0, hdr.get(..keep).unwrap_or_default());
            }
        }
        self.state = State::Rest;
        Ok(cuts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Split whole, collecting the three files.
    fn split(blob: &[u8], chunk: usize) -> (Result<CredCuts, CredReject>, [Vec<u8>; 3]) {
        let mut files: [Vec<u8>; 3] = Default::default();
        let mut sink = |part: CredPart, off: u32, data: &[u8]| {
            let f = &mut files[part as usize];
            assert_eq!(f.len(), off as usize, "writes are sequential");
            f.extend_from_slice(data);
        };
        let mut s = CredSplitter::new(u16::try_from(blob.len()).unwrap());
        for c in blob.chunks(chunk.max(1)) {
            s.feed(c, &mut sink);
        }
        let r = s.finish(&mut sink);
        (r, files)
    }

    fn der(len: usize, fill: u8) -> Vec<u8> {
        let mut v = Vec::new();
        v.push(0x30);
        if len < 128 {
            v.push(len as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(len as u16).to_be_bytes());
        }
        v.extend(std::iter::repeat_n(fill, len));
        v
    }

    #[test]
    fn mtls_token_server_auth() {
        let trust = der(300, 1);
        let cert = der(200, 2);
        let key = der(119, 3);
        let blob = [trust.clone(), cert.clone(), key.clone()].concat();
        for chunk in [1, 2, 3, 5, 64, 10_000] {
            let (r, files) = split(&blob, chunk);
            let c = r.unwrap();
            assert_eq!(c.trust_len as usize, trust.len());
            assert_eq!(files, [trust.clone(), cert.clone(), key.clone()]);
        }
        let token = b"Authorization: Bearer x\r\n";
        let blob = [trust.clone(), vec![0; 4], token.to_vec()].concat();
        for chunk in [1, 4, 1000] {
            let (r, files) = split(&blob, chunk);
            assert!(r.is_ok());
            assert_eq!(files, [trust.clone(), vec![], token.to_vec()]);
        }
        let blob = [trust.clone(), vec![0; 8]].concat();
        let (r, files) = split(&blob, 3);
        assert!(r.is_ok());
        assert_eq!(files, [trust, vec![], vec![]]);
    }

    #[test]
    fn pkcs8_key_misread() {
        let trust = der(434, 1);
        let cert = der(459, 2);
        let mut key = vec![0x30, 0x81, 0x87];
        key.extend(std::iter::repeat_n(7u8, 0x87));
        let blob = [trust, cert, key].concat();
        let (r, _) = split(&blob, 7);
        let parsed = 438 + 463 + ((0x87 << 8 | 0x07) + 4);
        assert_eq!(r, Err(CredReject::LengthsDoNotAlign { parsed_len: parsed }));
    }

    #[test]
    fn failures() {
        assert_eq!(
            split(&[0x31, 0], 1).0,
            Err(CredReject::TrustNotSequence { found: 0x31 })
        );
        // Trust claims more than the blob.
        assert_eq!(
            split(&[0x30, 0x10, 0], 1).0,
            Err(CredReject::ReadsPastEnd { at: 0x12 })
        );
        // Trust exactly the blob: cert byte is the NUL, key offset past the end.
        assert_eq!(
            split(&der(10, 1), 1).0,
            Err(CredReject::KeyOffsetBeyondEnd { key_offset: 16 })
        );
        let mut b = der(10, 1);
        b.push(0x55);
        assert_eq!(
            split(&b, 2).0,
            Err(CredReject::CertNotSequence {
                offset: 12,
                found: 0x55
            })
        );
        // Short trust: log line crash.
        let blob = [vec![0x30, 0x00], vec![0; 4]].concat();
        assert_eq!(
            split(&blob, 1).0,
            Err(CredReject::LogReadsBeforeStart { cert_offset: 2 })
        );
        // LOG_LOOKBEHIND: a 3-byte trust crashes the station's log line, a 4-byte one is fine.
        let blob = [vec![0x30, 0x01, 9], vec![0; 4]].concat();
        assert_eq!(
            split(&blob, 1).0,
            Err(CredReject::LogReadsBeforeStart { cert_offset: 3 })
        );
        let blob = [vec![0x30, 0x02, 9, 9], vec![0; 4]].concat();
        let (r, files) = split(&blob, 1);
        assert_eq!(r.map(|c| c.cert_offset), Ok(LOG_LOOKBEHIND));
        assert_eq!(files, [vec![0x30, 2, 9, 9], vec![], vec![]]);
        // Absent cert, DER key running 2 bytes past the end: KeyBeyondEnd.
        let blob = [der(10, 1), vec![0; 4], vec![0x30, 0x04, 1, 2]].concat();
        assert_eq!(
            split(&blob, 1).0,
            Err(CredReject::KeyBeyondEnd { key_end: 22 })
        );
        // Key header cut at the end: reads past the NUL.
        let blob = [der(10, 1), vec![0; 4], vec![0x30, 0x82]].concat();
        assert_eq!(split(&blob, 1).0, Err(CredReject::ReadsPastEnd { at: 19 }));
    }
}
