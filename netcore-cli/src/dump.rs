//! `netcore dump`: a capture decoded frame by frame: a `netcore tap --capture` file (both
//! directions, timed, every connection), or raw link bytes, one file per direction.

use std::collections::BTreeMap;
use std::path::PathBuf;

use netcore_runtime::frame::Framing;
use serde_json::{json, Value};

use crate::capture::{self, Event};
use crate::inspect::{self, Catalog, Counts, Link};
use crate::{print_json, Failure};

/// `netcore dump FILE [FILE]`
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// A `netcore tap --capture` file, or raw bytes one side wrote to the link (a second raw file:
    /// the other direction).
    #[arg(required = true, num_args = 1..=2)]
    files: Vec<PathBuf>,
    /// Raw captures are of a byte-lossy link (COBS framing) rather than a stream.
    #[arg(long)]
    lossy: bool,
    /// A label for each raw file's direction (e.g. host→board), shown on every frame.
    #[arg(long)]
    direction: Vec<String>,
    /// Resolve route ids to method names, and decode messages to JSON, from this schema.
    #[arg(long)]
    schema: Option<PathBuf>,
}

/// Prints records as text lines or JSON lines.
pub struct Printer {
    json: bool,
}

impl Printer {
    /// Text unless `json`.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// One record.
    pub fn print(&self, record: &Value) {
        if self.json {
            print_json(record);
        } else {
            say!("{}", inspect::line(record));
        }
    }

    /// The closing summary.
    pub fn summary(&self, counts: Counts, tail: u64, extra: Value) {
        let mut summary = json!({
            "frames": counts.frames,
            "damaged": counts.damaged,
            "messages": counts.messages,
            "retransmissions": counts.retransmissions,
            "incomplete_tail_bytes": tail,
        });
        if let (Some(summary), Some(extra)) = (summary.as_object_mut(), extra.as_object()) {
            summary.extend(extra.clone());
        }
        if self.json {
            print_json(&json!({ "summary": summary }));
        } else {
            say!(
                "{} frames, {} damaged, {} messages, {} retransmissions, {tail} bytes of an incomplete frame at the end",
                counts.frames, counts.damaged, counts.messages, counts.retransmissions
            );
        }
    }
}

/// The framing a connection record names.
pub fn framing_of(info: &Value) -> Framing {
    if info["framing"] == "lossy" {
        Framing::Lossy
    } else {
        Framing::Stream
    }
}

/// `netcore dump`
pub fn dump(args: DumpArgs, json: bool) -> Result<(), Failure> {
    let catalog = Catalog::load(args.schema.as_deref())?;
    let printer = Printer::new(json);
    let mut contents = Vec::new();
    for file in &args.files {
        contents.push(capture::read_file(file).map_err(|e| Failure::failed(format!("{}: {e}", file.display())))?);
    }
    if contents[0].starts_with(capture::MAGIC) {
        if contents.len() > 1 {
            return Err(Failure::usage("a tap capture holds both directions: give it alone"));
        }
        return dump_capture(&args.files[0], &contents[0], &catalog, &printer);
    }
    if let Some(i) = contents.iter().position(|c| c.starts_with(capture::MAGIC)) {
        return Err(Failure::usage(format!("{} is a tap capture: give it alone", args.files[i].display())));
    }

    let framing = if args.lossy { Framing::Lossy } else { Framing::Stream };
    let label = |i: usize| {
        let file = args.files.get(i).map_or_else(|| "(no file)".to_owned(), |f| f.display().to_string());
        args.direction.get(i).cloned().unwrap_or(file)
    };
    let mut link = Link::new(&catalog, framing, [label(0), label(1)]);
    let mut records = Vec::new();
    for (dir, bytes) in contents.iter().enumerate() {
        link.feed(dir, None, bytes, &mut records);
    }
    for record in &records {
        printer.print(record);
    }
    let bytes: usize = contents.iter().map(Vec::len).sum();
    printer.summary(link.counts, link.tails(), json!({ "bytes": bytes }));
    match link.stopped() {
        Some(why) => Err(Failure::failed(why)),
        None => Ok(()),
    }
}

fn dump_capture(path: &std::path::Path, data: &[u8], catalog: &Catalog, printer: &Printer) -> Result<(), Failure> {
    let (records, truncated) =
        capture::read_all(data).map_err(|e| Failure::failed(format!("{}: {e}", path.display())))?;
    let mut links: BTreeMap<u32, Link<'_>> = BTreeMap::new();
    let mut totals = Counts::default();
    let mut tail = 0;
    let mut out = Vec::new();
    for record in records {
        let time = record.micros as f64 / 1e6;
        match record.event {
            Event::Open(info) => {
                let direction = |i: usize| info["directions"][i].as_str().unwrap_or(["A→B", "B→A"][i]).to_owned();
                links.insert(record.conn, Link::new(catalog, framing_of(&info), [direction(0), direction(1)]));
                out.push(json!({ "time": time, "conn": record.conn, "type": "OPEN", "label": info["label"], "framing": info["framing"] }));
            }
            Event::Bytes(side, bytes) => {
                let link = links
                    .entry(record.conn)
                    .or_insert_with(|| Link::new(catalog, Framing::Stream, ["A→B".to_owned(), "B→A".to_owned()]));
                let start = out.len();
                link.feed(usize::from(side), Some(time), &bytes, &mut out);
                for r in &mut out[start..] {
                    r["conn"] = json!(record.conn);
                }
            }
            Event::Close(reason) => {
                if let Some(link) = links.remove(&record.conn) {
                    totals.add(link.counts);
                    tail += link.tails();
                }
                out.push(json!({ "time": time, "conn": record.conn, "type": "CLOSE", "reason": reason }));
            }
        }
        for r in out.drain(..) {
            printer.print(&r);
        }
    }
    for link in links.values() {
        totals.add(link.counts);
        tail += link.tails();
    }
    printer.summary(totals, tail, json!({ "bytes": data.len(), "truncated_record_bytes": truncated }));
    Ok(())
}
