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

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tempfile::NamedTempFile;
use tokio::sync::mpsc;

use crate::session::{Event, Exchange, Incoming, Payload, Session, StoreOp};

/// Unwritten bytes a writer may queue with their credit already returned.
pub(crate) const QUEUE_AHEAD: u64 = 1 << 20;

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

/// One message's writer: a task that waits for operations (idle, it holds no thread, and a
/// paused test clock can advance) and runs each batch of them on a blocking thread. Dropping the
/// sender (a discard, the connection's end) ends it, and its file is deleted.
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
        // Every write queued meanwhile goes in the same blocking call.
        let mut batch = vec![op];
        while let Ok(op) = ops.try_recv() {
            batch.push(op);
        }
        let finish = matches!(batch.last(), Some(Op::Finish));
        let done = tokio::task::spawn_blocking(move || {
            let mut written = 0;
            for op in batch {
                if let Op::Write(bytes) = op {
                    file.write(&bytes)?;
                    written += bytes.len() as u64;
                }
            }
            Ok::<_, std::io::Error>((file, written))
        })
        .await;
        let Ok(Ok((back, written))) = done else { return failed() };
        file = back;
        let _ = reports.send(Report::Written { writer: id, bytes: written });
        if finish {
            let finished = tokio::task::spawn_blocking(move || file.finish()).await;
            let Ok(Ok(file)) = finished else { return failed() };
            let _ = reports.send(Report::Finished { writer: id, file });
            return;
        }
    }
}

/// What a writer did.
pub(crate) enum Report {
    /// `bytes` more were written: their credit can go back.
    Written { writer: u64, bytes: u64 },
    /// The message's file is complete.
    Finished { writer: u64, file: NamedTempFile },
    /// The file could not be created, written or flushed (the peer hears CANCEL IO, which
    /// carries no text: the error goes no further).
    Failed { writer: u64 },
}

enum Op {
    Write(Bytes),
    Finish,
}

struct Writer {
    id: u64,
    exchange: Exchange,
    ops: mpsc::UnboundedSender<Op>,
    /// Bytes sent to the writer and not reported written.
    queued: u64,
    /// Those of them whose credit the session still counts.
    held: u64,
}

impl Writer {
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
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
}

impl Storage {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        let (reports_tx, reports) = mpsc::unbounded_channel();
        Self { dir, writers: HashMap::new(), finished: HashMap::new(), next_writer: 0, reports_tx, reports }
    }

    /// Carries out every storage operation the session has queued.
    pub(crate) fn pump(&mut self, session: &mut Session) {
        while let Some(op) = session.poll_store() {
            match op {
                StoreOp::Begin { exchange, .. } => self.begin(exchange),
                StoreOp::Write { exchange, bytes } => {
                    let len = bytes.len() as u64;
                    match self.writers.get_mut(&exchange) {
                        Some(writer) if writer.ops.send(Op::Write(bytes)).is_ok() => {
                            writer.queued += len;
                            writer.held += len;
                            writer.release(session);
                        }
                        // Its writer failed and reported it (or will): the bytes are dropped.
                        _ => session.consumed(len),
                    }
                }
                StoreOp::Finish { exchange } => {
                    if let Some(writer) = self.writers.get(&exchange) {
                        let _ = writer.ops.send(Op::Finish);
                    }
                }
                StoreOp::Discard { exchange } => self.discard(exchange, session),
            }
        }
    }

    fn begin(&mut self, exchange: Exchange) {
        let id = self.next_writer;
        self.next_writer += 1;
        let (ops, rx) = mpsc::unbounded_channel();
        tokio::spawn(write(id, self.dir.clone(), rx, self.reports_tx.clone()));
        let writer = Writer { id, exchange, ops, queued: 0, held: 0 };
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
            Report::Written { bytes, .. } => {
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
