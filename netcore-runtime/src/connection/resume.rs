//! The sender's side of resumable uploads and downloads (docs/PROTOCOL.md §17): the token, the
//! body that can be sent again from any offset, and the header and route names of the convention.
//! [`Connection::upload`](super::Connection::upload) and
//! [`Connection::download`](super::Connection::download) use them; the receiver's side (the
//! partial files of a resumable route) is the endpoint's.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

/// The route a sender asks for the offset the receiver holds (§17.2).
pub const RESUME_QUERY_ROUTE: &str = "/_netcore/resume";
/// Header naming the upload's resume token (§17.1).
pub const HEADER_TOKEN: &str = "nc-resume";
/// Header giving the offset of the payload's first byte in the whole body (§17.1).
pub const HEADER_OFFSET: &str = "nc-offset";
/// Header giving the whole body's length (§17.1).
pub const HEADER_TOTAL: &str = "nc-total";
/// Header of a download request: the most bytes the answer may carry (§17.6).
pub const HEADER_LENGTH: &str = "nc-length";

/// The bytes [`Connection::download`](crate::Connection::download) asks for in one request
/// (§17.6): what a cut link can cost it, at most, and 64 KiB is 0.1 % of header overhead.
pub const DOWNLOAD_WINDOW: u64 = 64 * 1024;

/// Names one upload across attempts: 16 random bytes, written as 32 lowercase hex digits (§17.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResumeToken(pub [u8; 16]);

impl ResumeToken {
    /// A new token from the operating system's random source (through std's `RandomState`).
    pub fn random() -> Self {
        let (a, b) = (super::draw_nonce(), super::draw_nonce());
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
        Self(bytes)
    }
}

impl fmt::Display for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A resume token that is not 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resume token {0:?} is not 32 lowercase hex digits")]
pub struct BadResumeToken(pub String);

impl FromStr for ResumeToken {
    type Err = BadResumeToken;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadResumeToken(text.chars().take(40).collect());
        let digits = text.as_bytes();
        if digits.len() != 32 || !digits.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let mut bytes = [0u8; 16];
        for (i, pair) in digits.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            bytes[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(bytes))
    }
}

/// A §17.1 decimal: ASCII digits, no leading zero, at most 2^64−1.
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty() && (text == "0" || !text.starts_with('0'));
    let digits = text.bytes().all(|c| c.is_ascii_digit());
    (canonical && digits).then(|| text.parse().ok()).flatten()
}

type OpenAt = dyn Fn(u64) -> std::io::Result<Box<dyn Read + Send>> + Send + Sync;

/// A body that can be sent again from any offset, named by a [`ResumeToken`]: upload it with
/// [`Connection::upload`](crate::Connection::upload) and, after an interruption
/// ([`CallError::Interrupted`](super::CallError::Interrupted)), upload the same value again (on any
/// connection to the same endpoint, a new one after a replug) to send only what the receiver lacks.
#[derive(Clone)]
pub struct Resumable {
    token: ResumeToken,
    len: u64,
    open: Arc<OpenAt>,
    /// Whether the receiver may hold part of it: ask before sending.
    tried: Arc<AtomicBool>,
    /// The offset the last attempt started from.
    offset: Arc<AtomicU64>,
}

impl fmt::Debug for Resumable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resumable").field("token", &self.token).field("len", &self.len).finish_non_exhaustive()
    }
}

impl Resumable {
    /// The file at `path`, reopened and positioned at each attempt's offset.
    pub fn file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_owned();
        let len = std::fs::metadata(&path)?.len();
        Ok(Self::reader_at(len, move |offset| {
            let mut file = std::fs::File::open(&path)?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(std::io::BufReader::with_capacity(64 * 1024, file))
        }))
    }

    /// Bytes in memory.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes: Bytes = bytes.into();
        let len = bytes.len() as u64;
        Self::reader_at(len, move |offset| Ok(std::io::Cursor::new(bytes.slice(offset as usize..))))
    }

    /// A `len`-byte body that `open(offset)` yields from `offset` to its end.
    pub fn reader_at<R, F>(len: u64, open: F) -> Self
    where
        R: Read + Send + 'static,
        F: Fn(u64) -> std::io::Result<R> + Send + Sync + 'static,
    {
        let open: Arc<OpenAt> = Arc::new(move |offset| Ok(Box::new(open(offset)?) as Box<dyn Read + Send>));
        let (tried, offset) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        Self { token: ResumeToken::random(), len, open, tried, offset }
    }

    /// Continues an upload started under `token`, for instance by a previous run of this program.
    pub fn with_token(mut self, token: ResumeToken) -> Self {
        self.token = token;
        self.tried = Arc::new(AtomicBool::new(true));
        self
    }

    /// The upload's token.
    pub fn token(&self) -> ResumeToken {
        self.token
    }

    /// The body's whole length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The offset the last attempt started from: what the receiver held then.
    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// Whether an attempt may have left part of it with the receiver; marks it so.
    pub(crate) fn start_attempt(&self, offset: u64) -> bool {
        self.offset.store(offset, Ordering::Relaxed);
        self.tried.swap(true, Ordering::Relaxed)
    }

    pub(crate) fn was_tried(&self) -> bool {
        self.tried.load(Ordering::Relaxed)
    }

    pub(crate) fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        (self.open)(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_lowercase_hex_digits() {
        let token = ResumeToken(*b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff");
        assert_eq!(token.to_string(), "00112233445566778899aabbccddeeff");
        assert_eq!("00112233445566778899aabbccddeeff".parse::<ResumeToken>(), Ok(token));
        for bad in [
            "",
            "00112233445566778899AABBCCDDEEFF",
            "00112233445566778899aabbccddeef",
            "+0112233445566778899aabbccddeeff",
        ] {
            assert!(bad.parse::<ResumeToken>().is_err(), "{bad}");
        }
        assert_ne!(ResumeToken::random(), ResumeToken::random());
    }

    #[test]
    fn decimals_are_canonical() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("16777216"), Some(16 << 20));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "01", "+1", "-1", "1 ", "18446744073709551616", "0x10"] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
    }
}
