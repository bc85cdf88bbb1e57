//! Sans-IO push decoder for the response body: feed input in any split, get events that
//! borrow from the input (or from the decoder's small URI/signature buffer). Credentials and
//! the update are never buffered.
//!
//! ```
//! use cups_core::response::{Decoder, Event};
//!
//! let body = [0u8; 14]; // "nothing to do"
//! let mut dec = Decoder::new();
//! let mut rest = &body[..];
//! loop {
//!     let step = dec.decode(rest)?;
//!     rest = &rest[step.consumed..];
//!     match step.event {
//!         Some(Event::Done) => assert!(rest.is_empty()),
//!         Some(_other) => {}
//!         None => break, // all of `rest` consumed: read more from the network
//!     }
//! }
//! dec.finish()?; // at the end of the body (Content-Length reached)
//! # Ok::<(), cups_core::response::DecodeError>(())
//! ```
//!
//! ## Contract
//!
//! * [`Decoder::decode`] consumes a prefix of its input and returns at most one [`Event`].
//!   When it returns no event, it consumed the whole input; otherwise call it again with the
//!   rest (possibly empty: `CredEnd`, `UpdateEnd` and `Done` can follow a chunk without
//!   consuming anything).
//! * Length prefixes may be split anywhere. URIs (≤ [`MAX_URI_SEGMENT_LEN`] bytes) and the
//!   signature (≤ [`MAX_SIG_SEGMENT_LEN`] bytes) are delivered whole: borrowed from the input
//!   when they arrive in one piece, else gathered in one internal buffer.
//! * Credentials and the update are never copied: each `CredChunk`/`UpdateChunk` is as much
//!   of the input as belongs to the segment. Chunks are never empty. `CredStart`/`CredEnd`
//!   and `UpdateStart`/`UpdateEnd` bracket them; zero-length segments produce no event.
//! * Errors are station-compatible and carry the body offset of what was wrong. After an
//!   error every call returns the same error again.
//! * The event stream, with consecutive chunks of a segment concatenated, and the final
//!   result do not depend on how the body was split.
//!
//! ## URI bytes
//!
//! The station accepts any bytes in a URI segment (up to 255) and stores them as a C string,
//! so it keeps only what precedes the first NUL. The decoder is faithful: it delivers the raw
//! segment without checking it; [`super::station_effective_uri`] shows what the station
//! would keep, and a client should check the URI (scheme, host, port) before using it.
//!
//! The decoder never allocates, its state is a few hundred bytes (see the
//! `decoder_size` test), and every call does a bounded amount of work.

use core::fmt;

use super::{
    CredKind, KEY_CRC_LEN, MAX_SIG_SEGMENT_LEN, MAX_UPDATE_LEN, MAX_URI_SEGMENT_LEN,
    MIN_SIG_SEGMENT_LEN, Segment,
};

/// One thing the decoder found. Events come in body order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event<'a> {
    /// A new CUPS URI (non-empty).
    CupsUri(&'a [u8]),
    /// A new TC URI (non-empty).
    TcUri(&'a [u8]),
    /// A credential blob of `len` bytes starts.
    CredStart {
        /// Which category.
        kind: CredKind,
        /// Blob length (> 0).
        len: u16,
    },
    /// Part of a credential blob, at `offset` within it.
    CredChunk {
        /// Which category.
        kind: CredKind,
        /// Offset of `data` within the blob.
        offset: u16,
        /// The bytes.
        data: &'a [u8],
    },
    /// The credential blob is complete.
    CredEnd {
        /// Which category.
        kind: CredKind,
    },
    /// The signature segment (keyCRC + DER signature, unchecked DER).
    Signature {
        /// keyCRC from the segment.
        key_crc: u32,
        /// The signature bytes (segment length − 4).
        der: &'a [u8],
    },
    /// An update of `len` bytes starts.
    UpdateStart {
        /// Update length (> 0, < 2^31).
        len: u32,
    },
    /// Part of the update, at `offset` within it.
    UpdateChunk {
        /// Offset of `data` within the update.
        offset: u32,
        /// The bytes.
        data: &'a [u8],
    },
    /// The update is complete.
    UpdateEnd,
    /// The body is complete; nothing may follow.
    Done,
}

/// What one [`Decoder::decode`] call did.
#[must_use]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Step<'a> {
    /// How many bytes of the input were consumed (all of them when `event` is `None`).
    pub consumed: usize,
    /// The event found, if any.
    pub event: Option<Event<'a>>,
}

/// Where the decoder is in the body.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Reading the length prefix of a segment (partial bytes in `pre`).
    Len(Segment),
    /// Reading a URI of `len` bytes (partial bytes in `buf`).
    Uri { kind: CredKind, len: u8 },
    /// Streaming a credential blob.
    Cred { kind: CredKind, len: u16, off: u16 },
    /// The blob is complete; `CredEnd` is next.
    CredEnd(CredKind),
    /// Reading the signature segment of `len` bytes (partial bytes in `buf`).
    Sig { len: u8 },
    /// Streaming the update.
    Update { len: u32, off: u32 },
    /// The update is complete; `UpdateEnd` is next.
    UpdateEnd,
    /// The body is complete; `Done` is next.
    DoneNext,
    /// `Done` was emitted.
    Done,
}

/// Upper bound of loop iterations in one `decode` call: every iteration but the last
/// consumes a length prefix, and there are six.
const MAX_STEPS_PER_CALL: usize = 2 * Segment::ALL.len() + 2;

/// The decoder. See the module docs.
#[derive(Clone, Debug)]
pub struct Decoder {
    state: State,
    /// Body bytes consumed so far.
    offset: u64,
    /// Sticky error.
    error: Option<DecodeError>,
    /// Length prefix accumulator (little-endian, zero-padded).
    pre: [u8; 4],
    /// Bytes of the current prefix in `pre`.
    pre_n: u8,
    /// Bytes of the current URI / signature in `buf`.
    buf_n: u8,
    /// URI / signature accumulator, used only when one arrives split.
    buf: [u8; MAX_URI_SEGMENT_LEN],
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder at the start of a body.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: State::Len(Segment::CupsUri),
            offset: 0,
            error: None,
            pre: [0; 4],
            pre_n: 0,
            buf_n: 0,
            buf: [0; MAX_URI_SEGMENT_LEN],
        }
    }

    /// Consume a prefix of `input`; returns how many bytes were consumed and at most one event.
    /// Call again with the rest until consumed == input.len() and no event.
    pub fn decode<'a>(&'a mut self, input: &'a [u8]) -> Result<Step<'a>, DecodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        // Hot path: the update streams through here, one call per input chunk.
        if let State::Update { len, off } = self.state {
            return Ok(self.update_chunk(len, off, input));
        }
        self.decode_slow(input)
    }

    /// End of body: Ok if Done was reached, else the Truncated error describing what was missing.
    ///
    /// "Reached" means every byte of the body was consumed: `Ok` even if the caller has not
    /// yet drained the final `UpdateEnd`/`Done` events. After an error, that error.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let uri_seg = |kind| match kind {
            CredKind::Cups => Segment::CupsUri,
            CredKind::Tc => Segment::TcUri,
        };
        // (field, bytes it needs, bytes of it that arrived)
        let (what, needed, have) = match self.state {
            State::UpdateEnd | State::DoneNext | State::Done => return Ok(()),
            State::Len(seg) => (
                Field::Length(seg),
                seg.len_field_size() as u32,
                self.pre_n.into(),
            ),
            State::Uri { kind, len } => {
                (Field::Content(uri_seg(kind)), len.into(), self.buf_n.into())
            }
            State::Cred { kind, len, off } => {
                (Field::Content(kind.segment()), len.into(), off.into())
            }
            State::CredEnd(kind) => {
                let next = kind.segment().next().unwrap_or(Segment::Sig);
                (Field::Length(next), next.len_field_size() as u32, 0)
            }
            State::Sig { len } => (Field::Content(Segment::Sig), len.into(), self.buf_n.into()),
            State::Update { len, off } => (Field::Content(Segment::Update), len, off),
        };
        Err(DecodeError::Truncated {
            at: self.offset.saturating_sub(u64::from(have)),
            what,
            needed,
            have,
        })
    }

    /// Whether the `Done` event has been emitted.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes consumed so far.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Record a (sticky) error.
    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.error = Some(e);
        e
    }

    /// Deliver as much of the update as `input` holds.
    #[inline]
    fn update_chunk<'a>(&mut self, len: u32, off: u32, input: &'a [u8]) -> Step<'a> {
        let left = usize::try_from(len.wrapping_sub(off)).unwrap_or(usize::MAX);
        let data = input.get(..left).unwrap_or(input);
        if data.is_empty() {
            return Step {
                consumed: 0,
                event: None,
            };
        }
        // `data.len() <= len - off`, so this neither truncates nor overflows.
        let off_end = off.wrapping_add(data.len() as u32);
        self.state = if off_end == len {
            State::UpdateEnd
        } else {
            State::Update { len, off: off_end }
        };
        self.offset = self.offset.wrapping_add(data.len() as u64);
        Step {
            consumed: data.len(),
            event: Some(Event::UpdateChunk { offset: off, data }),
        }
    }

    /// Deliver as much of a credential blob as `input` holds.
    fn cred_chunk<'a>(&mut self, kind: CredKind, len: u16, off: u16, input: &'a [u8]) -> Step<'a> {
        let left = usize::from(len.wrapping_sub(off));
        let data = input.get(..left).unwrap_or(input);
        if data.is_empty() {
            return Step {
                consumed: 0,
                event: None,
            };
        }
        let off_end = off.wrapping_add(data.len() as u16);
        self.state = if off_end == len {
            State::CredEnd(kind)
        } else {
            State::Cred {
                kind,
                len,
                off: off_end,
            }
        };
        self.offset = self.offset.wrapping_add(data.len() as u64);
        Step {
            consumed: data.len(),
            event: Some(Event::CredChunk {
                kind,
                offset: off,
                data,
            }),
        }
    }

    /// Collect a whole `len`-byte URI or signature segment: borrowed from `rest` when it is
    /// all there (and nothing was gathered yet), else through `buf`. On completion the state
    /// becomes `next`. Returns the bytes of `rest` used and the segment once complete (when
    /// it is not, all of `rest` was used).
    fn gather<'a>(
        &'a mut self,
        rest: &'a [u8],
        len: usize,
        next: State,
    ) -> (usize, Option<&'a [u8]>) {
        if self.buf_n == 0
            && let Some(whole) = rest.get(..len)
        {
            self.state = next;
            self.offset = self.offset.wrapping_add(len as u64);
            return (len, Some(whole));
        }
        let used = self.fill(rest, len);
        if usize::from(self.buf_n) < len {
            return (used, None);
        }
        self.state = next;
        self.buf_n = 0;
        (used, self.buf.get(..len))
    }

    /// Append up to `total - buf_n` bytes of `rest` to `buf`; the number taken.
    fn fill(&mut self, rest: &[u8], total: usize) -> usize {
        let have = usize::from(self.buf_n);
        let src = rest.get(..total.saturating_sub(have)).unwrap_or(rest);
        let end = have.saturating_add(src.len());
        if let Some(dst) = self.buf.get_mut(have..end) {
            dst.copy_from_slice(src);
        }
        self.buf_n = u8::try_from(end).unwrap_or(u8::MAX);
        self.offset = self.offset.wrapping_add(src.len() as u64);
        src.len()
    }

    /// Everything except the update hot path.
    fn decode_slow<'a>(&'a mut self, input: &'a [u8]) -> Result<Step<'a>, DecodeError> {
        let mut pos = 0usize;
        for _ in 0..MAX_STEPS_PER_CALL {
            let rest = input.get(pos..).unwrap_or_default();
            match self.state {
                State::Len(seg) => {
                    let size = seg.len_field_size();
                    let have = usize::from(self.pre_n);
                    let want = size.saturating_sub(have);
                    let src = rest.get(..want).unwrap_or(rest);
                    let end = have.saturating_add(src.len());
                    if let Some(dst) = self.pre.get_mut(have..end) {
                        dst.copy_from_slice(src);
                    }
                    pos = pos.saturating_add(src.len());
                    self.offset = self.offset.wrapping_add(src.len() as u64);
                    if src.len() < want {
                        self.pre_n = u8::try_from(end).unwrap_or(u8::MAX);
                        return Ok(Step {
                            consumed: pos,
                            event: None,
                        });
                    }
                    let value = u32::from_le_bytes(self.pre);
                    self.pre = [0; 4];
                    self.pre_n = 0;
                    let at = self.offset.wrapping_sub(size as u64);
                    if let Some(event) = self.start_segment(seg, value, at)? {
                        return Ok(Step {
                            consumed: pos,
                            event: Some(event),
                        });
                    }
                }
                State::Uri { kind, len } => {
                    let next = State::Len(match kind {
                        CredKind::Cups => Segment::TcUri,
                        CredKind::Tc => Segment::CupsCred,
                    });
                    let (used, whole) = self.gather(rest, usize::from(len), next);
                    let event = whole.map(|uri| match kind {
                        CredKind::Cups => Event::CupsUri(uri),
                        CredKind::Tc => Event::TcUri(uri),
                    });
                    return Ok(Step {
                        consumed: pos.saturating_add(used),
                        event,
                    });
                }
                State::Sig { len } => {
                    let next = State::Len(Segment::Update);
                    let (used, whole) = self.gather(rest, usize::from(len), next);
                    let event = whole.map(sig_event);
                    return Ok(Step {
                        consumed: pos.saturating_add(used),
                        event,
                    });
                }
                State::Cred { kind, len, off } => {
                    let step = self.cred_chunk(kind, len, off, rest);
                    return Ok(Step {
                        consumed: pos.saturating_add(step.consumed),
                        event: step.event,
                    });
                }
                State::CredEnd(kind) => {
                    self.state = State::Len(kind.segment().next().unwrap_or(Segment::Sig));
                    return Ok(Step {
                        consumed: pos,
                        event: Some(Event::CredEnd { kind }),
                    });
                }
                State::Update { len, off } => {
                    let step = self.update_chunk(len, off, rest);
                    return Ok(Step {
                        consumed: pos.saturating_add(step.consumed),
                        event: step.event,
                    });
                }
                State::UpdateEnd => {
                    self.state = State::DoneNext;
                    return Ok(Step {
                        consumed: pos,
                        event: Some(Event::UpdateEnd),
                    });
                }
                State::DoneNext => {
                    self.state = State::Done;
                    return Ok(Step {
                        consumed: pos,
                        event: Some(Event::Done),
                    });
                }
                State::Done => {
                    if rest.is_empty() {
                        return Ok(Step {
                            consumed: pos,
                            event: None,
                        });
                    }
                    return Err(self.fail(DecodeError::TrailingBytes { at: self.offset }));
                }
            }
        }
        // Not reached (see MAX_STEPS_PER_CALL); the caller would simply call again.
        Ok(Step {
            consumed: pos,
            event: None,
        })
    }

    /// A length prefix was read: enter the segment. Zero-length URI/cred/sig segments move
    /// straight to the next prefix (no event).
    fn start_segment(
        &mut self,
        seg: Segment,
        value: u32,
        at: u64,
    ) -> Result<Option<Event<'static>>, DecodeError> {
        let next = State::Len(seg.next().unwrap_or(Segment::Update));
        match seg {
            Segment::CupsUri | Segment::TcUri => {
                let kind = if seg == Segment::CupsUri {
                    CredKind::Cups
                } else {
                    CredKind::Tc
                };
                // A u8 prefix: always fits.
                self.state = match u8::try_from(value) {
                    Ok(0) | Err(_) => next,
                    Ok(len) => State::Uri { kind, len },
                };
                self.buf_n = 0;
                Ok(None)
            }
            Segment::CupsCred | Segment::TcCred => {
                let kind = if seg == Segment::CupsCred {
                    CredKind::Cups
                } else {
                    CredKind::Tc
                };
                match u16::try_from(value) {
                    Ok(0) | Err(_) => {
                        self.state = next;
                        Ok(None)
                    }
                    Ok(len) => {
                        self.state = State::Cred { kind, len, off: 0 };
                        Ok(Some(Event::CredStart { kind, len }))
                    }
                }
            }
            Segment::Sig => {
                if value == 0 {
                    self.state = next;
                    return Ok(None);
                }
                match u8::try_from(value) {
                    Ok(len) if (MIN_SIG_SEGMENT_LEN..=MAX_SIG_SEGMENT_LEN).contains(&value) => {
                        self.state = State::Sig { len };
                        self.buf_n = 0;
                        Ok(None)
                    }
                    _ => Err(self.fail(DecodeError::SigLength { len: value, at })),
                }
            }
            Segment::Update => {
                if value == 0 {
                    self.state = State::Done;
                    Ok(Some(Event::Done))
                } else if value > MAX_UPDATE_LEN {
                    Err(self.fail(DecodeError::UpdateTooLong { len: value, at }))
                } else {
                    self.state = State::Update { len: value, off: 0 };
                    Ok(Some(Event::UpdateStart { len: value }))
                }
            }
        }
    }
}

/// The `Signature` event of a whole signature segment (at least 8 bytes).
fn sig_event(seg: &[u8]) -> Event<'_> {
    let (crc, der) = seg.split_at_checked(KEY_CRC_LEN).unwrap_or((&[], seg));
    let key_crc = <[u8; KEY_CRC_LEN]>::try_from(crc)
        .map(u32::from_le_bytes)
        .unwrap_or(0);
    Event::Signature { key_crc, der }
}

/// A part of the body, for [`DecodeError::Truncated`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Field {
    /// The length prefix of a segment.
    Length(Segment),
    /// The content of a segment.
    Content(Segment),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length(seg) => write!(f, "{seg} length field"),
            Self::Content(seg) => write!(f, "{seg} segment"),
        }
    }
}

/// Why a body was refused. Each error carries the body offset where the offending field
/// starts; the `Display` texts match the golden vectors' `decode_error`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body ended early (reported by [`Decoder::finish`]).
    Truncated {
        /// Body offset where the incomplete field starts.
        at: u64,
        /// The incomplete field.
        what: Field,
        /// Bytes the field needs.
        needed: u32,
        /// Bytes of it that arrived.
        have: u32,
    },
    /// Signature segment length outside
    /// [`MIN_SIG_SEGMENT_LEN`]..=[`MAX_SIG_SEGMENT_LEN`] (the station refuses it).
    SigLength {
        /// The length found.
        len: u32,
        /// Body offset of the length field.
        at: u64,
    },
    /// Update length ≥ 2^31 (above [`MAX_UPDATE_LEN`]; the station refuses it).
    UpdateTooLong {
        /// The length found.
        len: u32,
        /// Body offset of the length field.
        at: u64,
    },
    /// Bytes follow the end of the body (the station fails on them too).
    TrailingBytes {
        /// Body offset of the first extra byte.
        at: u64,
    },
}

impl DecodeError {
    /// Body offset of the offending field.
    #[must_use]
    pub const fn at(&self) -> u64 {
        match *self {
            Self::Truncated { at, .. }
            | Self::SigLength { at, .. }
            | Self::UpdateTooLong { at, .. }
            | Self::TrailingBytes { at } => at,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated {
                at,
                what,
                needed,
                have,
            } => write!(
                f,
                "unexpected end of data: {what} at offset {at} needs {needed} bytes, {have} left"
            ),
            Self::SigLength { len, at } => write!(
                f,
                "illegal signature segment length {len} at offset {at} (must be {MIN_SIG_SEGMENT_LEN}..{MAX_SIG_SEGMENT_LEN})"
            ),
            Self::UpdateTooLong { len, at } => {
                write!(
                    f,
                    "illegal update length {len} at offset {at} (must be < 2^31)"
                )
            }
            Self::TrailingBytes { at } => write!(
                f,
                "unexpected data after the end of the body at offset {at}"
            ),
        }
    }
}

impl core::error::Error for DecodeError {}

const _: () = assert!(MAX_SIG_SEGMENT_LEN as usize <= MAX_URI_SEGMENT_LEN);
const _: () = assert!(core::mem::size_of::<Decoder>() <= 512);

/// Fuzz body: decode `data` as a whole body, then again with split points derived from its
/// first bytes and byte by byte; the normalized event streams (chunks merged per segment),
/// offsets and final results must agree, and the decoder's contract must hold (no event ⇒
/// all input consumed, chunks contiguous and non-empty, errors sticky). If the body decodes
/// and its parts are encodable, re-encoding gives back exactly `data`.
#[cfg(any(fuzzing, test))]
pub fn fuzz_response_decode(data: &[u8]) {
    let whole = fuzz_run(data, &[usize::MAX]);
    let mut sizes = [1usize; 8];
    for (s, b) in sizes.iter_mut().zip(data.iter()) {
        *s = usize::from(*b % 37).saturating_add(1);
    }
    assert_eq!(fuzz_run(data, &sizes), whole, "derived splits");
    if data.len() <= 4096 {
        assert_eq!(fuzz_run(data, &[1]), whole, "byte by byte");
    }
    if whole.result.is_ok() {
        fuzz_reencode(data);
    }
}

/// Summary of one decode run: everything that must not depend on the split.
#[cfg(any(fuzzing, test))]
#[derive(PartialEq, Eq, Debug)]
struct FuzzSummary {
    digest: [u8; 32],
    result: Result<(), DecodeError>,
    offset: u64,
    events: usize,
}

/// Decode `data` fed in pieces whose sizes cycle through `sizes`.
#[cfg(any(fuzzing, test))]
fn fuzz_run(data: &[u8], sizes: &[usize]) -> FuzzSummary {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut dec = Decoder::new();
    let mut events = 0usize;
    let mut seg_off = 0usize;
    let mut pos = 0usize;
    let mut result = Ok(());
    let mut i = 0usize;
    'feed: while pos < data.len() || i == 0 {
        let size = sizes
            .get(i.checked_rem(sizes.len()).unwrap_or(0))
            .copied()
            .unwrap_or(1)
            .max(1);
        i = i.wrapping_add(1);
        let end = pos.saturating_add(size).min(data.len());
        let mut rest = data.get(pos..end).unwrap_or_default();
        pos = end;
        // Bounded: each iteration consumes input or emits one of the few zero-length events.
        let mut expect_offset = dec.offset();
        for _ in 0..rest.len().saturating_mul(2).saturating_add(16) {
            assert_eq!(dec.offset(), expect_offset);
            match dec.decode(rest) {
                Err(e) => {
                    assert_eq!(dec.decode(rest), Err(e), "sticky");
                    assert_eq!(dec.decode(&[]), Err(e), "sticky");
                    assert_eq!(dec.finish(), Err(e));
                    result = Err(e);
                    break 'feed;
                }
                Ok(step) => {
                    assert!(step.consumed <= rest.len());
                    expect_offset = expect_offset.saturating_add(step.consumed as u64);
                    rest = rest.get(step.consumed..).unwrap_or_default();
                    let Some(ev) = step.event else {
                        assert!(rest.is_empty(), "no event but input left");
                        assert_eq!(dec.offset(), expect_offset);
                        continue 'feed;
                    };
                    events = events.saturating_add(1);
                    match ev {
                        Event::CredChunk { offset, data, .. } => {
                            assert_eq!(usize::from(offset), seg_off);
                            assert!(!data.is_empty());
                            seg_off = seg_off.saturating_add(data.len());
                            events = events.saturating_sub(1); // chunk count depends on the split
                            h.update(data);
                        }
                        Event::UpdateChunk { offset, data } => {
                            assert_eq!(offset as usize, seg_off);
                            assert!(!data.is_empty());
                            seg_off = seg_off.saturating_add(data.len());
                            events = events.saturating_sub(1);
                            h.update(data);
                        }
                        Event::CredStart { kind, len } => {
                            seg_off = 0;
                            h.update([1, kind as u8]);
                            h.update(len.to_le_bytes());
                        }
                        Event::CredEnd { kind } => h.update([2, kind as u8]),
                        Event::UpdateStart { len } => {
                            seg_off = 0;
                            h.update([3]);
                            h.update(len.to_le_bytes());
                        }
                        Event::UpdateEnd => h.update([4]),
                        Event::Done => h.update([5]),
                        Event::CupsUri(u) | Event::TcUri(u) => {
                            assert!(!u.is_empty());
                            h.update([6, u8::from(matches!(ev, Event::TcUri(_)))]);
                            h.update((u.len() as u32).to_le_bytes());
                            h.update(u);
                        }
                        Event::Signature { key_crc, der } => {
                            assert!(der.len() >= 4 && der.len() <= 128);
                            h.update([7]);
                            h.update(key_crc.to_le_bytes());
                            h.update((der.len() as u32).to_le_bytes());
                            h.update(der);
                        }
                    }
                }
            }
        }
        unreachable!("decode made no progress");
    }
    if result.is_ok() {
        result = dec.finish();
    }
    FuzzSummary {
        digest: h.finalize().into(),
        result,
        offset: dec.offset(),
        events,
    }
}

/// `data` decoded completely: rebuild its parts (slices of `data`, found through the body
/// offsets) and, if the encoder accepts them, the encoding must be `data` itself.
#[cfg(any(fuzzing, test))]
fn fuzz_reencode(data: &[u8]) {
    use super::encoder::{ResponseParts, SigRef, encode_full};
    let mut dec = Decoder::new();
    let mut parts = ResponseParts::default();
    let mut update: &[u8] = &[];
    let mut rest = data;
    let mut cred_start = 0usize;
    let mut upd_start = 0usize;
    for _ in 0..32 {
        let at = dec.offset() as usize;
        let Ok(step) = dec.decode(rest) else { return };
        let consumed = step.consumed;
        let after = at.saturating_add(consumed);
        match step.event {
            None => break,
            Some(Event::CupsUri(u)) => {
                // The encoder takes `&str`: a non-UTF-8 URI (which the decoder passes
                // through, like the station) cannot be re-encoded, so there is nothing to check.
                let Ok(uri) = core::str::from_utf8(
                    data.get(after.saturating_sub(u.len())..after)
                        .unwrap_or_default(),
                ) else {
                    return;
                };
                parts.cups_uri = Some(uri);
            }
            Some(Event::TcUri(u)) => {
                // The encoder takes `&str`: a non-UTF-8 URI (which the decoder passes
                // through, like the station) cannot be re-encoded, so there is nothing to check.
                let Ok(uri) = core::str::from_utf8(
                    data.get(after.saturating_sub(u.len())..after)
                        .unwrap_or_default(),
                ) else {
                    return;
                };
                parts.tc_uri = Some(uri);
            }
            Some(Event::CredStart { .. }) => cred_start = after,
            Some(Event::CredChunk { .. }) => {}
            Some(Event::CredEnd { kind }) => {
                let blob = data.get(cred_start..at);
                match kind {
                    CredKind::Cups => parts.cups_cred = blob,
                    CredKind::Tc => parts.tc_cred = blob,
                }
            }
            Some(Event::Signature { key_crc, der }) => {
                let der = data
                    .get(after.saturating_sub(der.len())..after)
                    .unwrap_or_default();
                parts.sig = Some(SigRef { key_crc, der });
            }
            Some(Event::UpdateStart { len }) => {
                upd_start = after;
                parts.update_len = len;
            }
            Some(Event::UpdateChunk { .. }) => {}
            Some(Event::UpdateEnd) => update = data.get(upd_start..at).unwrap_or_default(),
            Some(Event::Done) => {}
        }
        rest = rest.get(consumed..).unwrap_or_default();
    }
    let mut out = [0u8; 4096];
    if data.len() > out.len() {
        return;
    }
    if let Ok(n) = encode_full(&parts, update, &mut out) {
        assert_eq!(out.get(..n), Some(data), "re-encoding differs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{format, string::String, vec::Vec};

    /// Regression (found by the `response_decode` fuzz target): a non-UTF-8 URI is passed
    /// through like the station does, and the re-encoding check must not assume UTF-8.
    #[test]
    fn fuzz_body_accepts_non_utf8_uri() {
        let mut body = std::vec![0u8, 3, b'w', 0xE2, b's'];
        body.extend_from_slice(&[0u8; 12]);
        let mut dec = Decoder::new();
        let step = dec.decode(&body).expect("decodes");
        assert_eq!(step.event, Some(Event::TcUri(&[b'w', 0xE2, b's'])));
        fuzz_response_decode(&body);
    }

    /// Decode `body` fed in pieces of `chunk` bytes; events rendered with chunks merged.
    fn run(body: &[u8], chunk: usize) -> (Vec<String>, Result<(), DecodeError>) {
        let mut dec = Decoder::new();
        let mut out: Vec<String> = Vec::new();
        let mut merged: Vec<u8> = Vec::new();
        for piece in body.chunks(chunk.max(1)) {
            let mut rest = piece;
            loop {
                match dec.decode(rest) {
                    Err(e) => {
                        assert_eq!(dec.decode(rest), Err(e), "sticky");
                        assert_eq!(dec.finish(), Err(e));
                        return (out, Err(e));
                    }
                    Ok(step) => {
                        rest = &rest[step.consumed..];
                        match step.event {
                            None => {
                                assert!(rest.is_empty());
                                break;
                            }
                            Some(
                                Event::CredChunk { data, .. } | Event::UpdateChunk { data, .. },
                            ) => {
                                assert!(!data.is_empty());
                                merged.extend_from_slice(data);
                            }
                            Some(ev) => {
                                if !merged.is_empty() {
                                    out.push(format!("data {:02x?}", merged));
                                    merged.clear();
                                }
                                out.push(format!("{ev:?}"));
                            }
                        }
                    }
                }
            }
        }
        (out, dec.finish())
    }

    #[test]
    fn decoder_size() {
        let size = core::mem::size_of::<Decoder>();
        std::println!("size_of::<Decoder>() = {size}");
        assert!(size <= 512, "{size}");
    }

    #[test]
    fn nochange() {
        let (ev, r) = run(&[0; 14], 14);
        assert_eq!(ev, ["Done"]);
        assert_eq!(r, Ok(()));
        let mut dec = Decoder::new();
        let step = dec.decode(&[0; 20]).unwrap();
        assert_eq!(
            step,
            Step {
                consumed: 14,
                event: Some(Event::Done)
            }
        );
        assert!(dec.is_done());
        assert_eq!(
            dec.decode(&[]).unwrap(),
            Step {
                consumed: 0,
                event: None
            }
        );
        assert_eq!(
            dec.decode(&[0; 6]),
            Err(DecodeError::TrailingBytes { at: 14 })
        );
        assert_eq!(dec.decode(&[]), Err(DecodeError::TrailingBytes { at: 14 }));
        assert_eq!(dec.finish(), Err(DecodeError::TrailingBytes { at: 14 }));
    }

    fn body(uri: &[u8], cred: &[u8], sig: &[u8], update: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.push(uri.len() as u8);
        b.extend_from_slice(uri);
        b.push(0);
        b.extend_from_slice(&(cred.len() as u16).to_le_bytes());
        b.extend_from_slice(cred);
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&(sig.len() as u32).to_le_bytes());
        b.extend_from_slice(sig);
        b.extend_from_slice(&(update.len() as u32).to_le_bytes());
        b.extend_from_slice(update);
        b
    }

    #[test]
    fn all_splits_agree() {
        let sig: Vec<u8> = (0..76u8).collect();
        let b = body(b"https://h:1", &[7; 300], &sig, &[9; 1000]);
        let whole = run(&b, usize::MAX);
        assert_eq!(whole.1, Ok(()));
        assert_eq!(whole.0.len(), 9, "{:?}", whole.0);
        for chunk in 1..40 {
            assert_eq!(run(&b, chunk), whole, "chunk {chunk}");
        }
        for cut in 0..b.len() {
            let (ev, r) = run(&b[..cut], 1);
            assert!(
                matches!(r, Err(DecodeError::Truncated { .. })),
                "{cut}: {r:?}"
            );
            assert!(whole.0.starts_with(&ev[..ev.len().saturating_sub(1)]));
            assert_eq!(run(&b[..cut], usize::MAX).1, r);
        }
    }

    #[test]
    fn signature_split_is_buffered() {
        let sig: Vec<u8> = (0..132u8).collect();
        let b = body(b"", &[], &sig, &[1]);
        let mut dec = Decoder::new();
        // Feed up to the middle of the signature.
        let mid = 6 + 4 + 50;
        let s = dec.decode(&b[..mid]).unwrap();
        assert_eq!(
            s,
            Step {
                consumed: mid,
                event: None
            }
        );
        let s = dec.decode(&b[mid..]).unwrap();
        assert_eq!(s.consumed, 82);
        let expect_crc = u32::from_le_bytes([0, 1, 2, 3]);
        assert_eq!(
            s.event,
            Some(Event::Signature {
                key_crc: expect_crc,
                der: &sig[4..]
            })
        );
    }

    #[test]
    fn sig_limits() {
        for (len, ok) in [
            (1u32, false),
            (7, false),
            (8, true),
            (9, true),
            (131, true),
            (132, true),
            (133, false),
            (0x8000_0000, false),
            (u32::MAX, false),
        ] {
            let mut b = std::vec![0u8; 6];
            b.extend_from_slice(&len.to_le_bytes());
            let n = (len as usize).min(200);
            b.extend(std::iter::repeat_n(0x30, n));
            b.extend_from_slice(&[1, 0, 0, 0, 0xAB]);
            let (ev, r) = run(&b, usize::MAX);
            if ok {
                assert_eq!(r, Ok(()), "{len}");
                assert!(ev[0].starts_with("Signature"), "{ev:?}");
            } else {
                assert_eq!(r, Err(DecodeError::SigLength { len, at: 6 }));
                assert!(ev.is_empty());
            }
        }
        assert_eq!(
            format!("{}", DecodeError::SigLength { len: 133, at: 6 }),
            "illegal signature segment length 133 at offset 6 (must be 8..132)"
        );
    }

    #[test]
    fn update_limits() {
        for (len, ok) in [
            (MAX_UPDATE_LEN - 1, true),
            (MAX_UPDATE_LEN, true),
            (MAX_UPDATE_LEN + 1, false),
            (u32::MAX, false),
        ] {
            let mut b = std::vec![0u8; 10];
            b.extend_from_slice(&len.to_le_bytes());
            let mut dec = Decoder::new();
            let r = dec.decode(&b);
            if ok {
                assert_eq!(
                    r.unwrap(),
                    Step {
                        consumed: 14,
                        event: Some(Event::UpdateStart { len })
                    }
                );
                assert_eq!(
                    dec.finish(),
                    Err(DecodeError::Truncated {
                        at: 14,
                        what: Field::Content(Segment::Update),
                        needed: len,
                        have: 0
                    })
                );
            } else {
                assert_eq!(r, Err(DecodeError::UpdateTooLong { len, at: 10 }));
            }
        }
    }

    #[test]
    fn truncation_texts() {
        let (_, r) = run(&[0; 10], usize::MAX);
        let e = r.unwrap_err();
        assert_eq!(e.at(), 10);
        assert_eq!(
            format!("{e}"),
            "unexpected end of data: update length field at offset 10 needs 4 bytes, 0 left"
        );
        let (_, r) = run(&[0, 0, 5, 0, 1, 2], 1);
        assert_eq!(
            format!("{}", r.unwrap_err()),
            "unexpected end of data: cupsCred segment at offset 4 needs 5 bytes, 2 left"
        );
        let (_, r) = run(&[0, 0, 0, 0, 0, 0, 8], 1);
        assert_eq!(
            format!("{}", r.unwrap_err()),
            "unexpected end of data: sig length field at offset 6 needs 4 bytes, 1 left"
        );
        let (_, r) = run(&[3, b'a'], 1);
        assert_eq!(
            format!("{}", r.unwrap_err()),
            "unexpected end of data: cupsUri segment at offset 1 needs 3 bytes, 1 left"
        );
        let (_, r) = run(&[], 1);
        assert_eq!(
            r,
            Err(DecodeError::Truncated {
                at: 0,
                what: Field::Length(Segment::CupsUri),
                needed: 1,
                have: 0
            })
        );
    }

    #[test]
    fn uris_are_raw_up_to_255() {
        let uri = [b'x'; 255];
        let mut b = std::vec![255u8];
        b.extend_from_slice(&uri);
        b.push(3);
        b.extend_from_slice(b"a\0b");
        b.extend_from_slice(&[0; 12]);
        let (ev, r) = run(&b, 100);
        assert_eq!(r, Ok(()));
        assert_eq!(ev[0], format!("CupsUri({:?})", &uri[..]));
        assert_eq!(ev[1], format!("TcUri({:?})", b"a\0b"));
        assert_eq!(crate::response::station_effective_uri(b"a\0b"), b"a");
    }

    #[test]
    fn hot_path_delivers_whole_chunks() {
        let update = std::vec![0x5Au8; 1 << 20];
        let b = body(b"", &[], &[], &update);
        let mut dec = Decoder::new();
        let step = dec.decode(&b[..14]).unwrap();
        assert_eq!(step.event, Some(Event::UpdateStart { len: 1 << 20 }));
        let mut calls = 0;
        for piece in b[14..].chunks(64 * 1024) {
            let step = dec.decode(piece).unwrap();
            assert_eq!(step.consumed, piece.len());
            assert!(
                matches!(step.event, Some(Event::UpdateChunk { data, .. }) if data.len() == piece.len())
            );
            calls += 1;
        }
        assert_eq!(calls, 16);
        assert_eq!(dec.finish(), Ok(()));
        assert!(!dec.is_done());
        assert_eq!(dec.decode(&[]).unwrap().event, Some(Event::UpdateEnd));
        assert_eq!(dec.decode(&[]).unwrap().event, Some(Event::Done));
        assert!(dec.is_done());
        assert_eq!(dec.offset(), b.len() as u64);
    }

    fn vectors_dir() -> std::path::PathBuf {
        match std::env::var("CUPS_VECTORS") {
            Ok(d) => d.into(),
            Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into(),
        }
    }

    fn response_vectors() -> Vec<(String, Vec<u8>)> {
        let dir = vectors_dir().join("responses");
        let mut v: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("vectors at {}: {e} (set CUPS_VECTORS)", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        v.sort();
        assert!(
            v.len() >= 12,
            "expected the response vectors in {}",
            dir.display()
        );
        v
    }

    #[test]
    fn fuzz_decode_over_vectors_and_random() {
        for (_, bytes) in response_vectors() {
            fuzz_response_decode(&bytes);
            crate::response::encoder::fuzz_response_roundtrip(&bytes);
            for cut in [1, 7, 13, 100] {
                fuzz_response_decode(
                    bytes
                        .get(..bytes.len().saturating_sub(cut))
                        .unwrap_or_default(),
                );
            }
        }
        fuzz_response_decode(&[]);
        let mut x = 0x9E37_79B9u32;
        for len in 0..600usize {
            let mut data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 8) as u8
                })
                .collect();
            fuzz_response_decode(&data);
            // Mostly-zero bodies reach deeper states.
            for b in data.iter_mut().skip(1).step_by(2) {
                *b = 0;
            }
            fuzz_response_decode(&data);
        }
    }
}
