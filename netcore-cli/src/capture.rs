//! The capture file `netcore tap --capture` writes and `netcore dump` reads.
//!
//! ```text
//! file    = magic record*
//! magic   = "NCCAP01\n"                                   8 bytes
//! record  = micros:u64le conn:u32le kind:u8 len:u32le bytes[len]
//! kind    0 bytes link side A wrote (tcp: the client), 1 bytes side B wrote (tcp: the server),
//!         2 a connection opened: bytes = JSON {"label", "framing": "stream"|"lossy", "directions": [A→B, B→A]},
//!         3 the connection closed: bytes = the reason as UTF-8 text
//! micros  time since the tap started
//! ```
//!
//! Bytes are recorded as they were read, before they are forwarded, so the file holds exactly what
//! each side wrote. A file without the magic is raw link bytes of one direction (what a logic
//! analyser or `cat /dev/ttyUSB0 > file` gives), which `dump` also reads.

use std::io::{self, Read, Write};

/// The first bytes of a capture file.
pub const MAGIC: &[u8; 8] = b"NCCAP01\n";

/// Records longer than this are refused on reading: a corrupt length, not a read of 4 GiB.
const MAX_RECORD: u32 = 16 << 20;

/// What a record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes written by side 0 (A) or 1 (B).
    Bytes(u8, Vec<u8>),
    /// A connection opened: its label, framing and direction names.
    Open(serde_json::Value),
    /// The connection closed, and why.
    Close(String),
}

/// One record of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Microseconds since the capture started.
    pub micros: u64,
    /// Which connection of the capture (a tap may see several, one after another or at once).
    pub conn: u32,
    /// What happened.
    pub event: Event,
}

/// Writes records; each is flushed at once so a killed tap leaves a readable file.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// Starts a capture (writes the magic).
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        out.flush()?;
        Ok(Self { out })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        let (kind, bytes): (u8, std::borrow::Cow<'_, [u8]>) = match &record.event {
            Event::Bytes(side, bytes) => (*side, bytes.as_slice().into()),
            Event::Open(info) => (2, info.to_string().into_bytes().into()),
            Event::Close(reason) => (3, reason.as_bytes().into()),
        };
        let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("capture record over 4 GiB"))?;
        let mut head = [0u8; 17];
        head[..8].copy_from_slice(&record.micros.to_le_bytes());
        head[8..12].copy_from_slice(&record.conn.to_le_bytes());
        head[12] = kind;
        head[13..].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(&bytes)?;
        self.out.flush()
    }
}

/// Reads the records of a capture whose magic has been checked; stops at a truncated last record
/// (a tap killed mid-write) and reports it as the second value.
pub fn read_all(mut data: &[u8]) -> Result<(Vec<Record>, usize), String> {
    data = data.strip_prefix(MAGIC.as_slice()).ok_or("not a netcore capture (no NCCAP01 magic)")?;
    let mut records = Vec::new();
    let mut at = MAGIC.len();
    while data.len() >= 17 {
        let micros = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        let conn = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
        let kind = data[12];
        let len = u32::from_le_bytes(data[13..17].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            return Err(format!("record at byte {at} claims {len} bytes, more than the {MAX_RECORD} a tap writes"));
        }
        let Some(bytes) = data.get(17..17 + len as usize) else { break };
        let event = match kind {
            0 | 1 => Event::Bytes(kind, bytes.to_vec()),
            2 => Event::Open(
                serde_json::from_slice(bytes)
                    .map_err(|e| format!("record at byte {at}: connection description is not JSON: {e}"))?,
            ),
            3 => Event::Close(String::from_utf8_lossy(bytes).into_owned()),
            other => return Err(format!("record at byte {at} has unknown kind {other}")),
        };
        records.push(Record { micros, conn, event });
        data = &data[17 + len as usize..];
        at += 17 + len as usize;
    }
    Ok((records, data.len()))
}

/// Reads a whole file.
pub fn read_file(path: &std::path::Path) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_truncated_tail_is_left() {
        let records = vec![
            Record { micros: 0, conn: 1, event: Event::Open(serde_json::json!({"label": "x"})) },
            Record { micros: 5, conn: 1, event: Event::Bytes(0, b"abc".to_vec()) },
            Record { micros: 9, conn: 1, event: Event::Bytes(1, vec![]) },
            Record { micros: 10, conn: 1, event: Event::Close("eof".into()) },
        ];
        let mut writer = Writer::new(Vec::new()).unwrap();
        for record in &records {
            writer.write(record).unwrap();
        }
        let mut bytes = writer.out;
        assert_eq!(read_all(&bytes).unwrap(), (records.clone(), 0));
        bytes.extend_from_slice(&[1, 2, 3]);
        assert_eq!(read_all(&bytes).unwrap(), (records, 3));
        assert!(read_all(b"raw bytes").is_err());
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[0; 13]);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_all(&huge).unwrap_err().contains("claims"));
    }
}
