//! The HTTP/1.1 response side of a CUPS interaction, with the station's rules
//! (`src/net.c`, `http_read`, `readData`, `http_statusCode`, `http_findContentLength`):
//!
//! * the head ends at the first `\r\n\r\n` and must fit the station's buffer ([`MAX_HEAD_LEN`]);
//! * the status is read from `HTTP/1.x NNN` (only the `/1.` and the space are checked, like
//!   the station; anything else reads as status 0, which the station treats like any non-200:
//!   rejected);
//! * the body is exactly `Content-Length` bytes (header name matched case-insensitively, first
//!   occurrence wins); **no `Content-Length` means no body** (chunked encoding is not
//!   understood, like on the station);
//! * bytes beyond `Content-Length` that arrive together with the end of the body break the read
//!   ([`HttpError::ExcessBody`]); bytes after a completed body are ignored (the station has
//!   stopped reading by then).
//!
//! [`ResponseParser`] is a push parser: feed it plaintext in any split.

use std::fmt;

/// Longest response head (status line + headers + blank line) the station can hold: its CUPS
/// connection buffer (`CUPS_BUFSZ`, 8 KiB); a longer head fails the read.
pub const MAX_HEAD_LEN: usize = 8 * 1024;
/// Largest `Content-Length` the station can represent (a C `int`).
pub const MAX_CONTENT_LENGTH: u64 = i32::MAX as u64;
/// The end of a response head.
const HEAD_END: &[u8] = b"\r\n\r\n";
/// The header that sizes the body (compared in lower case).
const CONTENT_LENGTH: &[u8] = b"content-length";
/// Length of `HTTP/1.x ` before the status digits.
const STATUS_OFFSET: usize = 9;

/// Something the parser found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HttpEvent<'a> {
    /// The head was complete.
    Head {
        /// The status (0 when the status line is not `HTTP/1.x NNN`).
        status: u16,
        /// The body length (0 when there is no `Content-Length`).
        content_length: u64,
    },
    /// Body bytes.
    Body(&'a [u8]),
    /// The body is complete.
    End,
}

/// Why a response could not be read (the station closes the connection for each of these).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// No `\r\n\r\n` within [`MAX_HEAD_LEN`] bytes.
    HeadTooLong {
        /// Bytes of head seen.
        len: usize,
    },
    /// `Content-Length` above [`MAX_CONTENT_LENGTH`].
    ContentLengthTooLarge {
        /// The value.
        value: u64,
    },
    /// Bytes beyond `Content-Length` arrived together with the end of the body.
    ExcessBody {
        /// How many.
        extra: usize,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeadTooLong { len } => {
                write!(
                    f,
                    "response head longer than {MAX_HEAD_LEN} bytes ({len} seen)"
                )
            }
            Self::ContentLengthTooLarge { value } => {
                write!(f, "Content-Length {value} above {MAX_CONTENT_LENGTH}")
            }
            Self::ExcessBody { extra } => {
                write!(f, "{extra} bytes beyond Content-Length")
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// Where the parser is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Head,
    Body { remaining: u64 },
    Done,
}

/// A push parser for one response.
#[derive(Clone, Debug)]
pub struct ResponseParser {
    state: State,
    head: Vec<u8>,
    body_bytes: u64,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    /// A parser waiting for the head.
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            body_bytes: 0,
        }
    }

    /// Whether the head was seen.
    #[must_use]
    pub fn head_done(&self) -> bool {
        self.state != State::Head
    }

    /// Whether the whole body was seen.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes delivered so far.
    #[must_use]
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Feed plaintext; `on` gets the events in order. After [`HttpEvent::End`] further input is
    /// ignored.
    ///
    /// # Errors
    /// An [`HttpError`]; the parser must not be fed again.
    pub fn push(
        &mut self,
        mut data: &[u8],
        on: &mut dyn FnMut(HttpEvent<'_>),
    ) -> Result<(), HttpError> {
        while !data.is_empty() {
            match self.state {
                State::Done => return Ok(()),
                State::Head => {
                    // Search from just before the old end, in case the marker straddles.
                    let from = self.head.len().saturating_sub(HEAD_END.len() - 1);
                    let room = MAX_HEAD_LEN.saturating_sub(self.head.len());
                    let take = data.len().min(room);
                    let (now, _) = data.split_at(take);
                    self.head.extend_from_slice(now);
                    let Some(pos) = find(self.head.get(from..).unwrap_or_default(), HEAD_END)
                    else {
                        if self.head.len() >= MAX_HEAD_LEN {
                            return Err(HttpError::HeadTooLong {
                                len: self.head.len(),
                            });
                        }
                        return Ok(());
                    };
                    let end = from + pos + HEAD_END.len();
                    // Bytes of `data` that belong to the body.
                    let consumed = take - (self.head.len() - end);
                    self.head.truncate(end);
                    data = data.get(consumed..).unwrap_or_default();
                    let status = status_code(&self.head);
                    let content_length = content_length(&self.head).unwrap_or(0);
                    if content_length > MAX_CONTENT_LENGTH {
                        return Err(HttpError::ContentLengthTooLarge {
                            value: content_length,
                        });
                    }
                    self.head = Vec::new();
                    on(HttpEvent::Head {
                        status,
                        content_length,
                    });
                    self.state = State::Body {
                        remaining: content_length,
                    };
                    if content_length == 0 {
                        return self.finish(data.len(), on);
                    }
                }
                State::Body { remaining } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    let (body, rest) = data.split_at(n);
                    on(HttpEvent::Body(body));
                    self.body_bytes += n as u64;
                    let remaining = remaining - n as u64;
                    self.state = State::Body { remaining };
                    if remaining == 0 {
                        return self.finish(rest.len(), on);
                    }
                    data = rest;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, extra: usize, on: &mut dyn FnMut(HttpEvent<'_>)) -> Result<(), HttpError> {
        if extra > 0 {
            return Err(HttpError::ExcessBody { extra });
        }
        self.state = State::Done;
        on(HttpEvent::End);
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `http_statusCode`: `HTTP/1.x NNN` → NNN, else 0.
fn status_code(head: &[u8]) -> u16 {
    let ok = head.get(4) == Some(&b'/')
        && head.get(5) == Some(&b'1')
        && head.get(6) == Some(&b'.')
        && head.get(8) == Some(&b' ');
    if !ok {
        return 0;
    }
    read_dec(head.get(STATUS_OFFSET..).unwrap_or_default())
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(0)
}

/// `http_findContentLength`: the first `content-length:` header line (any case), its decimal
/// value after optional blanks; `None` when absent or without digits.
fn content_length(head: &[u8]) -> Option<u64> {
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(name) = line.get(..CONTENT_LENGTH.len()) else {
            continue;
        };
        if name.eq_ignore_ascii_case(CONTENT_LENGTH)
            && line.get(CONTENT_LENGTH.len()) == Some(&b':')
        {
            let value = line.get(CONTENT_LENGTH.len() + 1..).unwrap_or_default();
            let start = value
                .iter()
                .position(|&b| b != b' ' && b != b'\t')
                .unwrap_or(value.len());
            return read_dec(value.get(start..).unwrap_or_default());
        }
    }
    None
}

/// Leading decimal digits (saturating), `None` without any.
fn read_dec(s: &[u8]) -> Option<u64> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    Some(
        s.get(..digits)
            .unwrap_or_default()
            .iter()
            .fold(0u64, |v, &d| {
                v.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            }),
    )
}

/// Fuzz entry: feed `data` whole and split at a point chosen by its first byte; where both
/// reads succeed they must see the same status, body and end.
pub fn fuzz_response(data: &[u8]) {
    fn run(parts: &[&[u8]]) -> Option<(Option<u16>, Vec<u8>, bool)> {
        let mut p = ResponseParser::new();
        let (mut status, mut body, mut end) = (None, Vec::new(), false);
        for part in parts {
            p.push(part, &mut |ev| match ev {
                HttpEvent::Head { status: s, .. } => status = Some(s),
                HttpEvent::Body(b) => body.extend_from_slice(b),
                HttpEvent::End => end = true,
            })
            .ok()?;
        }
        Some((status, body, end))
    }
    let at = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(at);
    if let (Some(x), Some(y)) = (run(&[data]), run(&[a, b])) {
        assert_eq!(x.0, y.0);
        if x.2 && y.2 {
            assert_eq!(x.1, y.1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Ev {
        Head(u16, u64),
        Body(Vec<u8>),
        End,
    }

    fn run(chunks: &[&[u8]]) -> (Vec<Ev>, Result<(), HttpError>) {
        let mut p = ResponseParser::new();
        let mut evs = Vec::new();
        let mut res = Ok(());
        for c in chunks {
            res = p.push(c, &mut |e| {
                evs.push(match e {
                    HttpEvent::Head {
                        status,
                        content_length,
                    } => Ev::Head(status, content_length),
                    HttpEvent::Body(b) => Ev::Body(b.to_vec()),
                    HttpEvent::End => Ev::End,
                });
            });
            if res.is_err() {
                break;
            }
        }
        // Merge body chunks for comparison.
        let mut merged: Vec<Ev> = Vec::new();
        for e in evs {
            match (merged.last_mut(), e) {
                (Some(Ev::Body(a)), Ev::Body(b)) => a.extend(b),
                (_, e) => merged.push(e),
            }
        }
        (merged, res)
    }

    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn any_split_gives_the_same_events() {
        let (whole, r) = run(&[RESP]);
        assert!(r.is_ok());
        assert_eq!(
            whole,
            vec![Ev::Head(200, 5), Ev::Body(b"hello".to_vec()), Ev::End]
        );
        for cut in 0..RESP.len() {
            let (a, b) = RESP.split_at(cut);
            assert_eq!(run(&[a, b]).0, whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = RESP.chunks(1).collect();
        assert_eq!(run(&bytes).0, whole);
    }

    #[test]
    fn lower_case_header_and_status_variants() {
        let (e, _) = run(&[b"HTTP/1.0 403 Forbidden\r\ncontent-length:2\r\n\r\nno"]);
        assert_eq!(e, vec![Ev::Head(403, 2), Ev::Body(b"no".to_vec()), Ev::End]);
        // Like the station, only `?/1.? ` is checked before the digits.
        let (e, _) = run(&[b"HTTX/1.1 200 OK\r\n\r\n"]);
        assert_eq!(e, vec![Ev::Head(200, 0), Ev::End]);
        let (e, _) = run(&[b"HTTP/2 200 OK\r\n\r\n"]);
        assert_eq!(e, vec![Ev::Head(0, 0), Ev::End]);
    }

    #[test]
    fn no_content_length_means_no_body() {
        let (e, r) = run(&[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]);
        assert!(r.is_ok());
        assert_eq!(e, vec![Ev::Head(200, 0), Ev::End]);
    }

    #[test]
    fn excess_with_the_end_of_the_body_breaks_the_read() {
        let (_, r) = run(&[b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab"]);
        assert_eq!(r, Err(HttpError::ExcessBody { extra: 1 }));
        // Arriving after the end: ignored.
        let (e, r) = run(&[b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", b"b"]);
        assert!(r.is_ok());
        assert_eq!(e.last(), Some(&Ev::End));
    }

    #[test]
    fn head_limit_at_below_above() {
        let head = |len: usize| {
            let mut h = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
            h.resize(len - 4, b'a');
            h.extend_from_slice(b"\r\n\r\n");
            h
        };
        assert!(run(&[&head(MAX_HEAD_LEN - 1)]).1.is_ok());
        assert!(run(&[&head(MAX_HEAD_LEN)]).1.is_ok());
        assert_eq!(
            run(&[&head(MAX_HEAD_LEN + 1)]).1,
            Err(HttpError::HeadTooLong { len: MAX_HEAD_LEN })
        );
    }

    #[test]
    fn content_length_limit_at_and_above() {
        let h = format!("HTTP/1.1 200 OK\r\nContent-Length: {MAX_CONTENT_LENGTH}\r\n\r\n");
        assert!(run(&[h.as_bytes()]).1.is_ok());
        let h = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_CONTENT_LENGTH + 1
        );
        assert_eq!(
            run(&[h.as_bytes()]).1,
            Err(HttpError::ContentLengthTooLarge {
                value: MAX_CONTENT_LENGTH + 1
            })
        );
    }
}
