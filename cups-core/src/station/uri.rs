//! The station's URI check (`uri_checkHostPortUri`) and auth-token normalisation
//! (`validateAuthToken`), byte for byte.

/// Longest host name the station accepts in a URI (`MAX_HOSTNAME_LEN` 128 with the NUL).
pub const MAX_HOST_LEN: usize = 127;
/// Longest port section the station accepts in a URI (`MAX_PORT_LEN` 16 with the NUL).
pub const MAX_PORT_LEN: usize = 15;

/// Where host and port are in a checked `scheme(s)://host:port` URI.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct HostPort {
    /// `https` / `wss`.
    pub(crate) tls: bool,
    /// Start of `host:port` (the `Host` header is the URI from here on).
    pub(crate) hostport: usize,
    /// Host (without IPv6 brackets).
    pub(crate) host: (usize, usize),
    /// Port.
    pub(crate) port: (usize, usize),
}

/// `uri_checkHostPortUri(uri, scheme)`: `scheme` or `scheme` + `s` (case-insensitive scheme,
/// lowercase `s`), `://`, a non-empty host (or `[v6]`), a mandatory non-empty port, no path.
pub(crate) fn check_host_port_uri(uri: &[u8], scheme: &[u8]) -> Option<HostPort> {
    // Scheme prefix, compared case-insensitively.
    let prefix = uri.get(..scheme.len())?;
    if !prefix.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let n = scheme.len();
    let tls = uri.get(n) == Some(&b's');
    let colon = if tls { n.checked_add(1)? } else { n };
    if uri.get(colon) != Some(&b':') {
        return None;
    }
    // uri_parse: scheme up to the first ':' (which is `colon`), then "//".
    if uri.get(colon.checked_add(1)?..colon.checked_add(3)?) != Some(b"//".as_slice()) {
        return None;
    }
    let hostport = colon.checked_add(3)?;
    let at = |i: usize| uri.get(i).copied().unwrap_or(0);
    let mut pos = hostport;
    let (host, mut c);
    if at(pos) == b'[' {
        let beg = pos.checked_add(1)?;
        pos = beg;
        loop {
            let ch = at(pos);
            pos = pos.checked_add(1)?;
            if ch == 0 {
                return None;
            }
            if ch == b']' {
                // The station sets hostEnd one before the `]` (`(hostportEnd = pos-1)-1`), so
                // it drops the last character of an IPv6 literal; kept as it is.
                let end = pos.checked_sub(2)?;
                if end < beg {
                    return None;
                }
                host = (beg, end);
                break;
            }
        }
        c = at(pos);
        pos = pos.checked_add(1)?;
    } else {
        let beg = pos;
        loop {
            c = at(pos);
            if c == 0 || c == b':' || c == b'/' {
                host = (beg, pos);
                pos = pos.checked_add(1)?;
                break;
            }
            pos = pos.checked_add(1)?;
        }
    }
    if host.0 == host.1 {
        return None;
    }
    if c != b':' {
        // No port (mandatory), or a path.
        return None;
    }
    let pbeg = pos;
    loop {
        c = at(pos);
        if c == 0 || c == b'/' {
            break;
        }
        pos = pos.checked_add(1)?;
    }
    let port = (pbeg, pos);
    if port.0 == port.1 || c == b'/' {
        return None;
    }
    if host.1.checked_sub(host.0)? > MAX_HOST_LEN || port.1.checked_sub(port.0)? > MAX_PORT_LEN {
        return None;
    }
    Some(HostPort {
        tls,
        hostport,
        host,
        port,
    })
}

/// Trimmed length of a token file as the station computes it: up to the first NUL, then
/// trailing `\n` / `\r\n` removed. Feed bytes in order; `len()` is the trimmed length so far.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TokenTrim {
    /// Trimmed length of the bytes seen.
    t1: u32,
    /// Trimmed length without the last byte.
    t2: u32,
    /// Bytes seen.
    n: u32,
    /// Last byte seen.
    prev: u8,
    /// A NUL was seen: nothing after it counts.
    ended: bool,
}

impl TokenTrim {
    pub(crate) fn push(&mut self, c: u8) {
        if self.ended {
            return;
        }
        if c == 0 {
            self.ended = true;
            return;
        }
        let n = self.n.saturating_add(1);
        let t = if c != b'\n' {
            n
        } else if self.n >= 1 && self.prev == b'\r' {
            self.t2
        } else {
            self.t1
        };
        self.t2 = self.t1;
        self.t1 = t;
        self.n = n;
        self.prev = c;
    }

    pub(crate) fn len(&self) -> u32 {
        self.t1
    }
}

/// Where [`TokenNormalizer`] is in a header line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TokState {
    /// Reading a field name (`count` chars so far).
    Name { count: u32 },
    /// After `:`, a space must follow.
    Space,
    /// In the value.
    Value,
}

/// `validateAuthToken` over the trimmed bytes: every line must be `Name: value` (name of
/// `[A-Za-z0-9_-]+`); bare `\n` become `\r\n`; a final `\r\n` is appended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenNormalizer {
    state: TokState,
    prev: u8,
    any: bool,
}

/// A malformed token (`expecting: {header: value{\r\n|\n}}*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct BadToken;

impl TokenNormalizer {
    pub(crate) const fn new() -> Self {
        Self {
            state: TokState::Name { count: 0 },
            prev: 0,
            any: false,
        }
    }

    pub(crate) fn push(&mut self, c: u8, out: &mut impl FnMut(&[u8])) -> Result<(), BadToken> {
        self.any = true;
        match self.state {
            TokState::Name { count } => {
                if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
                    out(&[c]);
                    self.state = TokState::Name {
                        count: count.saturating_add(1),
                    };
                } else if count > 0 && c == b':' {
                    out(&[c]);
                    self.state = TokState::Space;
                } else {
                    return Err(BadToken);
                }
            }
            TokState::Space => {
                if c != b' ' {
                    return Err(BadToken);
                }
                out(&[c]);
                self.state = TokState::Value;
            }
            TokState::Value => {
                if c == b'\n' {
                    if self.prev != b'\r' {
                        out(b"\r");
                    }
                    out(b"\n");
                    self.state = TokState::Name { count: 0 };
                } else {
                    out(&[c]);
                }
            }
        }
        self.prev = c;
        Ok(())
    }

    /// End of the trimmed bytes.
    pub(crate) fn finish(&mut self, out: &mut impl FnMut(&[u8])) -> Result<(), BadToken> {
        if !self.any {
            // An empty token: the station sends an uninitialised buffer; we send nothing.
            return Ok(());
        }
        match self.state {
            TokState::Name { count: 0 } | TokState::Value => {
                out(b"\r\n");
                Ok(())
            }
            TokState::Name { .. } | TokState::Space => Err(BadToken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn hp(uri: &str) -> Option<(bool, &str, &str, &str)> {
        let h = check_host_port_uri(uri.as_bytes(), b"http")?;
        Some((
            tls_of(h),
            &uri[h.hostport..],
            &uri[h.host.0..h.host.1],
            &uri[h.port.0..h.port.1],
        ))
    }

    fn tls_of(h: HostPort) -> bool {
        h.tls
    }

    #[test]
    fn uris() {
        assert_eq!(
            hp("https://localhost:16140"),
            Some((true, "localhost:16140", "localhost", "16140"))
        );
        assert_eq!(hp("HTTP://a:1"), Some((false, "a:1", "a", "1")));
        // The station's IPv6 parsing drops the last host character.
        assert_eq!(hp("http://[::1]:80"), Some((false, "[::1]:80", "::", "80")));
        assert_eq!(hp("http://[1]:80"), None);
        assert_eq!(hp("HTTPS://a:1"), None); // the `s` must be lowercase
        assert_eq!(hp("https://localhost"), None);
        assert_eq!(hp("https://localhost:"), None);
        assert_eq!(hp("https://localhost:1/"), None);
        assert_eq!(hp("https://:1"), None);
        assert_eq!(hp("https:/a:1"), None);
        assert_eq!(hp("ftp://a:1"), None);
        assert_eq!(hp("http://[::1]x:1"), None);
        assert_eq!(hp("http://[]:1"), None);
        assert_eq!(
            hp("http://a:123456789012345"),
            Some((false, "a:123456789012345", "a", "123456789012345"))
        );
        assert_eq!(hp("http://a:1234567890123456"), None);
        assert!(check_host_port_uri(b"wss://h:1", b"ws").is_some());
    }

    fn norm(s: &[u8]) -> Result<Vec<u8>, BadToken> {
        let mut trim = TokenTrim::default();
        s.iter().for_each(|&c| trim.push(c));
        let l = trim.len() as usize;
        let mut out = Vec::new();
        let mut n = TokenNormalizer::new();
        let mut sink = |b: &[u8]| out.extend_from_slice(b);
        for &c in &s[..l] {
            n.push(c, &mut sink)?;
        }
        n.finish(&mut sink)?;
        Ok(out)
    }

    #[test]
    fn tokens() {
        assert_eq!(
            norm(b"Authorization: Bearer x\r\n").unwrap(),
            b"Authorization: Bearer x\r\n"
        );
        assert_eq!(
            norm(b"Authorization: Bearer x").unwrap(),
            b"Authorization: Bearer x\r\n"
        );
        assert_eq!(
            norm(b"A: 1\nB-c_d: 2\n\n\r\n").unwrap(),
            b"A: 1\r\nB-c_d: 2\r\n"
        );
        assert_eq!(norm(b"A: 1\0junk").unwrap(), b"A: 1\r\n");
        assert_eq!(norm(b"A: 1\r").unwrap(), b"A: 1\r\r\n");
        assert_eq!(norm(b"").unwrap(), b"");
        assert_eq!(norm(b"\n\n").unwrap(), b"");
        assert!(norm(b"Bearer xyz").is_err());
        assert!(norm(b"A:1").is_err());
        assert!(norm(b": 1").is_err());
        assert!(norm(b"A: 1\r\nB").is_err());
        assert!(norm(b"A:").is_err());
        assert!(norm(b"A: 1\r\n\r\nB: 2").is_err());
    }
}
