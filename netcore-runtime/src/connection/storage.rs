//! The driver's storage of large incoming messages (docs/PROTOCOL.md §8.4): the session decides
//! and hands the bytes over ([`StoreOp`]); this writes them to spill files on tokio's blocking
//! threads, one writer per message, so a slow disk never stalls the connection's task.
//!
//! Bounds: a writer's queue returns its bytes' flow-control credit (`Session::consumed`) at once
//! while it holds at most [`QUEUE_AHEAD`] unwritten bytes, as the old synchronous writes did, so
//! the link runs at the disk's pace; beyond that, bytes hold their credit until written, so a
//! slow disk slows the peer down and a queue never exceeds `QUEUE_AHEAD` plus the receive window
//! (on the lossy framing, which has no window, what the link carries while the disk is behind).
//! Writers at once are at most the spill budget's files, which the session reserved.
//!
//! Cost: chunks are copied out of the connection's read buffer into a writer's batch of up to
//! [`BATCH`] bytes, and each batch goes to the disk as one write on a blocking thread. Handing
//! the chunks themselves to the writer kept each 64 KiB read buffer alive until its bytes were
//! written, so every read allocated, and faulted in, a fresh one: in `bulk_stored_mib_s`
//! (benches/compare.rs) that was about 60 000 page faults and a fifth more CPU per run than the
//! old synchronous writes. The copy lets the read buffer be reused in place, and emptied batches
//! are reused too ([`SPARE`]).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;
use tokio::sync::mpsc;

use crate::session::{Event, Exchange, Incoming, Payload, Session, StoreOp};

/// Unwritten bytes a writer may queue with their credit already returned.
pub(crate) const QUEUE_AHEAD: u64 = 1 << 20;

/// Bytes a writer gathers before they go to its blocking thread as one write (well below
/// [`QUEUE_AHEAD`], so a partly filled batch always has its credit returned and the peer can
/// send the bytes that fill it).
pub(crate) const BATCH: usize = 256 * 1024;

/// Emptied batches a connection keeps for reuse.
const SPARE: usize = 4;

/// One message's spill file, written in order (synchronous: run it where blocking is fine, a
/// blocking thread or a simulation).
pub(crate) struct SpillFile {
    file: NamedTempFile,
}

impl SpillFile {
    /// A new, empty spill file in `dir` (the system's temporary directory if `None`), deleted
    /// unless [`finish`](Self::finish)ed and kept by its owner.
    pub(crate) fn create(dir: Option<&Path>) -> std::io::Result<Self> {
        let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        Ok(Self { file: NamedTempFile::with_prefix_in(".netcore-rx-", dir)? })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.as_file_mut().write_all(bytes)
    }

    /// The complete file.
    pub(crate) fn finish(mut self) -> std::io::Result<NamedTempFile> {
        self.file.as_file_mut().flush()?;
        Ok(self.file)
    }
}

/// One message's writer: a task that waits for batches (idle, it holds no thread, and a paused
/// test clock can advance) and writes every batch queued meanwhile in one blocking call, the
/// file's flush included when the message is complete. Dropping the sender (a discard, the
/// connection's end) ends it, and its file is deleted.
async fn write(
    id: u64,
    dir: Option<PathBuf>,
    mut ops: mpsc::UnboundedReceiver<Op>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let failed = || drop(reports.send(Report::Failed { writer: id }));
    let Ok(Ok(mut file)) = tokio::task::spawn_blocking(move || SpillFile::create(dir.as_deref())).await else {
        return failed();
    };
    while let Some(op) = ops.recv().await {
        let mut batch = vec![op];
        while let Ok(op) = ops.try_recv() {
            batch.push(op);
        }
        let done = tokio::task::spawn_blocking(move || {
            let mut written = 0;
            let mut emptied = Vec::with_capacity(batch.len());
            let mut finish = false;
            for op in batch {
                match op {
                    Op::Write(mut bytes) => {
                        file.write(&bytes)?;
                        written += bytes.len() as u64;
                        bytes.clear();
                        emptied.push(bytes);
                    }
                    Op::Finish => finish = true,
                }
            }
            let file = if finish { Written::Complete(file.finish()?) } else { Written::Open(file) };
            Ok::<_, std::io::Error>((file, written, emptied))
        })
        .await;
        let Ok(Ok((file_now, bytes, emptied))) = done else { return failed() };
        let _ = reports.send(Report::Written { writer: id, bytes, emptied });
        match file_now {
            Written::Open(open) => file = open,
            Written::Complete(complete) => {
                let _ = reports.send(Report::Finished { writer: id, file: complete });
                return;
            }
        }
    }
}

/// A spill file after a blocking call: still being written, or complete.
enum Written {
    Open(SpillFile),
    Complete(NamedTempFile),
}

/// What a writer did.
pub(crate) enum Report {
    /// `bytes` more were written: their credit can go back; the emptied batches, for reuse.
    Written { writer: u64, bytes: u64, emptied: Vec<Vec<u8>> },
    /// The message's file is complete.
    Finished { writer: u64, file: NamedTempFile },
    /// The file could not be created, written or flushed (the peer hears CANCEL IO, which
    /// carries no text: the error goes no further).
    Failed { writer: u64 },
}

enum Op {
    Write(Vec<u8>),
    Finish,
}

struct Writer {
    id: u64,
    exchange: Exchange,
    ops: mpsc::UnboundedSender<Op>,
    /// Bytes gathered for the next write, not yet sent to the writer (below [`BATCH`]).
    batch: Vec<u8>,
    /// Bytes of the message still to come: a small message's batch is no larger than it.
    left: u64,
    /// Bytes given to the writer (those in `batch` included) and not reported written.
    queued: u64,
    /// Those of them whose credit the session still counts.
    held: u64,
}

impl Writer {
    /// Sends the gathered bytes to the writer. If it has ended, it failed and its report says
    /// so: the bytes are dropped then, their credit going back with the failure.
    fn send_batch(&mut self) {
        if !self.batch.is_empty() {
            let _ = self.ops.send(Op::Write(std::mem::take(&mut self.batch)));
        }
    }

    /// Returns the credit of held bytes while the unwritten bytes already returned stay within
    /// [`QUEUE_AHEAD`].
    fn release(&mut self, session: &mut Session) {
        let returned = self.queued - self.held;
        let release = self.held.min(QUEUE_AHEAD.saturating_sub(returned));
        if release > 0 {
            self.held -= release;
            session.consumed(release);
        }
    }
}

/// The spill files being written for one connection, and those complete until their message is
/// handed on.
pub(crate) struct Storage {
    dir: Option<PathBuf>,
    writers: HashMap<Exchange, Writer>,
    /// Complete files whose `Event::Message` (with `Payload::Stored`) is on its way.
    finished: HashMap<Exchange, NamedTempFile>,
    next_writer: u64,
    /// Emptied batches, at most [`SPARE`].
    spare: Vec<Vec<u8>>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
}

impl Storage {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        let (reports_tx, reports) = mpsc::unbounded_channel();
        Self {
            dir,
            writers: HashMap::new(),
            finished: HashMap::new(),
            next_writer: 0,
            spare: Vec::new(),
            reports_tx,
            reports,
        }
    }

    /// Carries out every storage operation the session has queued.
    pub(crate) fn pump(&mut self, session: &mut Session) {
        while let Some(op) = session.poll_store() {
            match op {
                StoreOp::Begin { exchange, total } => self.begin(exchange, total),
                StoreOp::Write { exchange, bytes } => {
                    let len = bytes.len() as u64;
                    match self.writers.get_mut(&exchange) {
                        // Its writer failed and reported it (or will): the bytes are dropped.
                        Some(writer) if writer.ops.is_closed() => session.consumed(len),
                        Some(writer) => {
                            // Copied, so the read buffer `bytes` came from is free again.
                            if writer.batch.len() + bytes.len() > BATCH {
                                writer.send_batch();
                            }
                            if writer.batch.capacity() == 0 {
                                let size = (writer.left.min(BATCH as u64) as usize).max(bytes.len());
                                writer.batch = match self.spare.pop() {
                                    Some(spare) => spare,
                                    None => Vec::with_capacity(size),
                                };
                            }
                            writer.batch.extend_from_slice(&bytes);
                            writer.left = writer.left.saturating_sub(len);
                            writer.queued += len;
                            writer.held += len;
                            writer.release(session);
                            if writer.batch.len() >= BATCH {
                                writer.send_batch();
                            }
                        }
                        None => session.consumed(len),
                    }
                }
                StoreOp::Finish { exchange } => {
                    if let Some(writer) = self.writers.get_mut(&exchange) {
                        writer.send_batch();
                        let _ = writer.ops.send(Op::Finish);
                    }
                }
                StoreOp::Discard { exchange } => self.discard(exchange, session),
            }
        }
    }

    fn begin(&mut self, exchange: Exchange, total: u64) {
        let id = self.next_writer;
        self.next_writer += 1;
        let (ops, rx) = mpsc::unbounded_channel();
        tokio::spawn(write(id, self.dir.clone(), rx, self.reports_tx.clone()));
        let writer = Writer { id, exchange, ops, batch: Vec::new(), left: total, queued: 0, held: 0 };
        self.writers.insert(exchange, writer);
    }

    /// Drops a message's storage; its unwritten bytes' credit goes back at once.
    pub(crate) fn discard(&mut self, exchange: Exchange, session: &mut Session) {
        self.finished.remove(&exchange);
        if let Some(writer) = self.writers.remove(&exchange) {
            session.consumed(writer.held);
        }
    }

    /// The next writer report.
    pub(crate) async fn report(&mut self) -> Report {
        // `Storage` holds a sender itself: the channel never closes.
        self.reports.recv().await.expect("the storage holds a sender")
    }

    /// Acts on a writer's report.
    pub(crate) fn apply(&mut self, report: Report, session: &mut Session) {
        let id = match &report {
            Report::Written { writer, .. } | Report::Finished { writer, .. } | Report::Failed { writer } => *writer,
        };
        // A report of a writer discarded meanwhile is void (its credit went back then).
        let Some(exchange) = self.writers.values().find(|w| w.id == id).map(|w| w.exchange) else { return };
        match report {
            Report::Written { bytes, emptied, .. } => {
                for batch in emptied {
                    if self.spare.len() < SPARE && batch.capacity() >= BATCH {
                        self.spare.push(batch);
                    }
                }
                let writer = self.writers.get_mut(&exchange).expect("found above");
                // Bytes are written in order: the oldest, whose credit went back first.
                let written_held = bytes.saturating_sub(writer.queued - writer.held);
                writer.held -= written_held;
                session.consumed(written_held);
                writer.queued -= bytes;
                writer.release(session);
            }
            Report::Finished { file, .. } => {
                self.writers.remove(&exchange);
                if session.store_finished(exchange) {
                    self.finished.insert(exchange, file);
                }
            }
            Report::Failed { .. } => {
                let writer = self.writers.remove(&exchange).expect("found above");
                session.consumed(writer.held);
                // §8.4: the session drops the message and tells the peer (CANCEL IO).
                session.store_failed(exchange);
            }
        }
    }

    /// A stored message as the application gets it: with its file. Other events pass as they are.
    pub(crate) fn fill(&mut self, event: Event) -> Event {
        match event {
            Event::Message(message @ Incoming { payload: Payload::Stored { .. }, .. }) => {
                match self.finished.remove(&message.exchange) {
                    Some(file) => Event::Message(Incoming { payload: Payload::File(file), ..message }),
                    None => Event::Message(message),
                }
            }
            event => event,
        }
    }

    /// Drops every storage (the session ended).
    pub(crate) fn clear(&mut self) {
        self.writers.clear();
        self.finished.clear();
    }
}

#[cfg(test)]
mod tests {
    //! The storage driven by hand against a real session (no driver): what reaches the file, and
    //! that batching never strands the peer without credit.
    use bytes::BytesMut;

    use super::*;
    use crate::session::{Config, SendOptions};
    use crate::sim::Pair;
    use crate::{Limits, Route};

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect()
    }

    /// Sends `body` from `a` to `b` (whose storage is `storage`) until `b` has the message;
    /// returns its file's bytes.
    async fn store_through(mut pair: Pair, storage: &mut Storage, body: Vec<u8>) -> Vec<u8> {
        pair.a.send_oneway(Route::Name("/store".into()), body, SendOptions::default()).unwrap();
        let mut out = BytesMut::new();
        for _ in 0..100_000 {
            let mut moved = false;
            while pair.a.poll_transmit(pair.now, &mut out) {}
            moved |= !out.is_empty();
            pair.b.handle_input(pair.now, &out);
            out.clear();
            while pair.b.poll_transmit(pair.now, &mut out) {}
            moved |= !out.is_empty();
            pair.a.handle_input(pair.now, &out);
            out.clear();
            storage.pump(&mut pair.b);
            while let Some(event) = pair.b.poll_event() {
                if let Event::Message(Incoming { payload: Payload::File(file), .. }) = storage.fill(event) {
                    return std::fs::read(file.path()).unwrap();
                }
            }
            if !moved {
                // Nothing can move until a writer reports (credit, or the finished file).
                let report = storage.report().await;
                storage.apply(report, &mut pair.b);
            }
        }
        panic!("the message never arrived: stalled");
    }

    #[tokio::test]
    async fn a_message_of_several_batches_reaches_its_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits { inline_limit: 64 * 1024, ..Limits::default() };
        let pair = Pair::connected(Config::stream(), Config::stream().with_limits(limits));
        let mut storage = Storage::new(Some(dir.path().to_owned()));
        // Not a multiple of the chunk or of the batch: the last batch is a partial one.
        let body = pattern(3 * BATCH + 12_345);
        assert_eq!(store_through(pair, &mut storage, body.clone()).await, body);
        assert!(storage.writers.is_empty() && storage.finished.is_empty());
        assert!(!storage.spare.is_empty() && storage.spare.len() <= SPARE, "emptied batches are kept for reuse");
    }

    #[tokio::test]
    async fn chunks_larger_than_a_batch_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits { inline_limit: 64 * 1024, max_frame: 1 << 20, ..Limits::default() };
        let config = Config::stream().with_limits(limits);
        let pair = Pair::connected(config.clone().with_chunk_size(BATCH + 1000), config);
        let mut storage = Storage::new(Some(dir.path().to_owned()));
        let body = pattern(2 * BATCH + 3000);
        assert_eq!(store_through(pair, &mut storage, body.clone()).await, body);
    }

    #[tokio::test]
    async fn a_small_window_still_completes_with_a_partial_batch_waiting() {
        // A window of four chunks (its least: the inline limit), far below a batch: a batch fills only because the
        // credit of the bytes gathered so far went back before they were written.
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits { inline_limit: 64 * 1024, window: 64 * 1024, ..Limits::default() };
        let config = Config::stream().with_limits(limits);
        let pair = Pair::connected(config.clone().with_chunk_size(16 * 1024), config);
        let mut storage = Storage::new(Some(dir.path().to_owned()));
        let body = pattern(BATCH + 5 * 16 * 1024 + 17);
        assert_eq!(store_through(pair, &mut storage, body.clone()).await, body);
    }
}
