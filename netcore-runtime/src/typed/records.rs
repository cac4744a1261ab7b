//! Result streams (server to client): the record framing (docs/PROTOCOL.md §15, "Result
//! streams"), what a handler returns ([`Stream`], [`ByteStream`]) and what a client reads
//! ([`Incoming`], [`IncomingBytes`]).
//!
//! ```text
//! record = varint header ‖ body,  header = len << 1 | kind
//! kind 0: data, `len` bytes (one encoded item of a stream<T>, or a run of a stream<bytes>)
//! kind 1: error trailer, `len` bytes = u16le code ‖ UTF-8 message (an ERROR payload); the last record
//! ```
//!
//! The message's end right after a data record (or an empty message) is the stream's successful
//! end; a message that stops inside a record, or is cut short, is an error, never a shorter
//! complete stream.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream as FuturesStream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::codec;
use crate::endpoint::{BodyStream, CallError, ErrorCode, ErrorSource, HandlerError};

/// The kind bit of a data record.
const DATA: u64 = 0;
/// The kind bit of the error trailer.
const ERROR: u64 = 1;
/// The largest error trailer a reader accepts: a code and a 64 KiB message.
pub const MAX_TRAILER: u64 = 2 + 64 * 1024;
/// How many bytes of records an encoder gathers from items that are ready at once before it
/// hands them on, so that small items share DATA frames.
const BATCH: usize = 16 * 1024;
/// How much [`ByteStream::from_reader`] reads at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Chunks of a [`ByteStream`] up to this size are copied behind their record header; larger ones
/// are handed on as they are (zero copy).
const COPY_BELOW: usize = 1024;

/// Appends a record header: `varint (len << 1 | kind)`.
fn put_header(out: &mut BytesMut, len: u64, kind: u64) {
    let mut header = Vec::with_capacity(crate::varint::MAX_LEN);
    crate::varint::put(&mut header, len << 1 | kind);
    out.extend_from_slice(&header);
}

/// Appends a data record carrying `body`.
pub fn put_data(out: &mut BytesMut, body: &[u8]) {
    put_header(out, body.len() as u64, DATA);
    out.extend_from_slice(body);
}

/// Appends the error trailer for `err` (its message cut to fit [`MAX_TRAILER`]).
pub fn put_error(out: &mut BytesMut, err: &HandlerError) {
    let mut payload = err.to_payload();
    if payload.len() as u64 > MAX_TRAILER {
        let mut cut = MAX_TRAILER as usize;
        while cut > 2 && !err.message.is_char_boundary(cut - 2) {
            cut -= 1;
        }
        payload.truncate(cut);
    }
    put_header(out, payload.len() as u64, ERROR);
    out.extend_from_slice(&payload);
}

type Boxed<T> = Pin<Box<dyn FuturesStream<Item = Result<T, HandlerError>> + Send>>;

/// What a handler returns for a `-> stream<T>` method: items sent to the caller as they are
/// produced, each encoded on its own, under the connection's credit (a slow caller slows the
/// producer). Build it from any [`futures::Stream`](futures_util::Stream), an iterator, or a
/// [`channel`](Self::channel). An error ends the stream and reaches the caller as that error
/// ([`CallError::Remote`]); if the caller drops its end, the stream is dropped (a channel's
/// [`StreamSender`] sees [`Closed`]).
///
/// ```
/// # use netcore_runtime as netcore;
/// use netcore::typed::Stream;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let numbers: Stream<u32> = Stream::iter(0..10);
/// let (tx, readings) = Stream::<u32>::channel(8);
/// tokio::spawn(async move {
///     for n in 0.. {
///         if tx.send(n).await.is_err() {
///             break; // the caller went away
///         }
///     }
/// });
/// # drop((numbers, readings));
/// # }
/// ```
pub struct Stream<T> {
    items: Boxed<T>,
}

impl<T> std::fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Stream<T> {
    /// The items of `items`; its end is the stream's successful end.
    pub fn new<S>(items: S) -> Self
    where
        S: FuturesStream<Item = T> + Send + 'static,
    {
        use futures_util::StreamExt;
        Self { items: Box::pin(items.map(Ok)) }
    }

    /// The items of `items` until the first error, which ends the stream and reaches the caller.
    pub fn try_new<S, E>(items: S) -> Self
    where
        S: FuturesStream<Item = Result<T, E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        use futures_util::StreamExt;
        Self { items: Box::pin(items.map(|item| item.map_err(Into::into))) }
    }

    /// The items of an iterator, produced as credit allows.
    pub fn iter<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::new(futures_util::stream::iter(items))
    }

    /// A stream fed through a channel holding up to `buffer` items (at least 1): a task sends them
    /// with [`StreamSender::send`], which waits while the caller is slow.
    pub fn channel(buffer: usize) -> (StreamSender<T>, Self) {
        let (tx, mut rx) = mpsc::channel(buffer.max(1));
        let items = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        (StreamSender { tx }, Self { items: Box::pin(items) })
    }
}

impl<T: Serialize + Send + 'static> Stream<T> {
    /// The records of this stream (docs/PROTOCOL.md §15), for an open-length RESPONSE: ready
    /// items are gathered into one chunk of up to 16 KiB; an item that does not encode, or whose
    /// encoding exceeds [`codec::DECODE_LIMIT`] (the caller could not decode it), ends the stream
    /// with an error naming `route` and the item's index.
    pub fn into_records(self, route: &str) -> Records {
        let route: std::sync::Arc<str> = route.into();
        let mut items = self.items;
        let mut index = 0u64;
        let encode = move |cx: &mut TaskContext<'_>, out: &mut BytesMut| -> Poll<Step> {
            match ready!(items.as_mut().poll_next(cx)) {
                Some(Ok(item)) => {
                    let encoded = codec::encode(&item).map_err(|err| {
                        HandlerError::new(
                            ErrorCode::INTERNAL,
                            format!("item {index} of {route} does not encode: {err}"),
                        )
                    });
                    match encoded {
                        Ok(body) if body.len() <= codec::DECODE_LIMIT => put_data(out, &body),
                        Ok(body) => {
                            let message = format!(
                                "item {index} of {route} is {} bytes, over the decode limit of {} bytes",
                                body.len(),
                                codec::DECODE_LIMIT
                            );
                            put_error(out, &HandlerError::new(ErrorCode::TOO_LARGE, message));
                            return Poll::Ready(Step::Last);
                        }
                        Err(err) => {
                            put_error(out, &err);
                            return Poll::Ready(Step::Last);
                        }
                    }
                    index += 1;
                    Poll::Ready(Step::More)
                }
                Some(Err(err)) => {
                    put_error(out, &err);
                    Poll::Ready(Step::Last)
                }
                None => Poll::Ready(Step::Last),
            }
        };
        Records { next: Box::new(encode), pending: None, done: false, cancel: None }
    }
}

impl<T> crate::typed::ItemsOf for Stream<T> {
    type Item = T;
}

impl<T: crate::layout::Schema> crate::layout::Schema for Stream<T> {
    /// `stream<T>`.
    fn describe(layout: &mut crate::layout::Layout) {
        layout.generic("stream", &[&T::describe]);
    }
}

/// The stream's reader went away: the caller dropped it or cancelled, or the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stream's reader went away (the caller dropped or cancelled it, or the connection closed)")]
pub struct Closed;

/// Feeds a [`Stream`] made by [`Stream::channel`]. Dropping it ends the stream successfully;
/// [`fail`](Self::fail) ends it with an error.
#[derive(Debug)]
pub struct StreamSender<T> {
    tx: mpsc::Sender<Result<T, HandlerError>>,
}

impl<T> Clone for StreamSender<T> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<T> StreamSender<T> {
    /// Sends one item, waiting while the channel is full (the caller reads slowly);
    /// [`Closed`] once the caller went away.
    pub async fn send(&self, item: T) -> Result<(), Closed> {
        self.tx.send(Ok(item)).await.map_err(|_| Closed)
    }

    /// Ends the stream with `err`, which the caller gets after the items sent before it.
    pub async fn fail(self, err: impl Into<HandlerError>) {
        let _ = self.tx.send(Err(err.into())).await;
    }

    /// Resolves once the caller went away (or the stream was dropped).
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// Whether the caller went away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// What a handler returns for a `-> stream<bytes>` method: runs of bytes sent as they are
/// produced (each chunk one data record, large ones not copied), under the connection's credit.
/// An error ends it and reaches the caller as that error.
///
/// ```
/// # use netcore_runtime as netcore;
/// use netcore::typed::ByteStream;
/// let log = ByteStream::from_bytes(bytes::Bytes::from_static(b"boot ok\n"));
/// let (tx, tail) = ByteStream::channel(4);
/// # drop((log, tx, tail));
/// ```
pub struct ByteStream {
    chunks: Boxed<Bytes>,
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteStream").finish_non_exhaustive()
    }
}

impl ByteStream {
    /// The chunks of `chunks` until the first error (an [`io::Error`] from a file, say), which
    /// ends the stream and reaches the caller.
    pub fn new<S, E>(chunks: S) -> Self
    where
        S: FuturesStream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        use futures_util::StreamExt;
        Self { chunks: Box::pin(chunks.map(|chunk| chunk.map_err(Into::into))) }
    }

    /// The bytes of `reader` (a file, a pipe), read in chunks of up to 64 KiB as the link takes
    /// them, never whole; a read error ends the stream and reaches the caller.
    pub fn from_reader<R>(reader: R) -> Self
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
    {
        Self::new(crate::connection::reader_chunks(reader, READ_CHUNK))
    }

    /// Bytes already in memory.
    pub fn from_bytes(bytes: Bytes) -> Self {
        Self::new(futures_util::stream::iter([Ok::<_, HandlerError>(bytes)]))
    }

    /// A stream fed through a channel holding up to `buffer` chunks (at least 1).
    pub fn channel(buffer: usize) -> (StreamSender<Bytes>, Self) {
        let (tx, mut rx) = mpsc::channel(buffer.max(1));
        let chunks = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        (StreamSender { tx }, Self { chunks: Box::pin(chunks) })
    }

    /// The records of this stream (docs/PROTOCOL.md §15), for an open-length RESPONSE.
    pub fn into_records(self) -> Records {
        let mut chunks = self.chunks;
        let next = move |cx: &mut TaskContext<'_>, out: &mut BytesMut| -> Poll<Step> {
            match ready!(chunks.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) if chunk.is_empty() => Poll::Ready(Step::More),
                Some(Ok(chunk)) if chunk.len() <= COPY_BELOW => {
                    put_data(out, &chunk);
                    Poll::Ready(Step::More)
                }
                Some(Ok(chunk)) => {
                    put_header(out, chunk.len() as u64, DATA);
                    Poll::Ready(Step::Body(chunk))
                }
                Some(Err(err)) => {
                    put_error(out, &err);
                    Poll::Ready(Step::Last)
                }
                None => Poll::Ready(Step::Last),
            }
        };
        Records { next: Box::new(next), pending: None, done: false, cancel: None }
    }
}

impl crate::layout::Schema for ByteStream {
    /// `stream<bytes>`.
    fn describe(layout: &mut crate::layout::Layout) {
        layout.generic("stream", &[&<Vec<u8> as crate::layout::Schema>::describe]);
    }
}

/// What producing one record did.
enum Step {
    /// It appended a record; more may follow.
    More,
    /// It appended a data record's header, whose body is this (handed on as it is).
    Body(Bytes),
    /// It appended the last record, or there are none.
    Last,
}

type Next = Box<dyn FnMut(&mut TaskContext<'_>, &mut BytesMut) -> Poll<Step> + Send>;

/// A stream's records as chunks of bytes, for an open-length message body
/// (`OpenBody::from_stream`). Ends after the last record (the error trailer, or the last item).
pub struct Records {
    /// Appends the next record to the buffer when one is ready.
    next: Next,
    /// A chunk to hand on before gathering more.
    pending: Option<Bytes>,
    done: bool,
    /// Fired if the records are dropped before their end (see [`cancelling`](Self::cancelling)).
    cancel: Option<crate::typed::Cancellation>,
}

impl Records {
    /// Fires `cancel` if these records are dropped before their end: the exchange was called off.
    pub fn cancelling(mut self, cancel: crate::typed::Cancellation) -> Self {
        self.cancel = Some(cancel);
        self
    }
}

impl Drop for Records {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel.0.cancel();
        }
    }
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").field("done", &self.done).finish_non_exhaustive()
    }
}

impl FuturesStream for Records {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(chunk) = this.pending.take() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        let mut out = BytesMut::new();
        while !this.done && this.pending.is_none() && out.len() < BATCH {
            match (this.next)(cx, &mut out) {
                Poll::Ready(Step::More) => {}
                Poll::Ready(Step::Body(body)) => this.pending = Some(body),
                Poll::Ready(Step::Last) => this.done = true,
                Poll::Pending => break,
            }
        }
        if out.is_empty() {
            return match this.pending.take() {
                Some(body) => Poll::Ready(Some(Ok(body))),
                None if this.done => {
                    // The end: nothing was called off.
                    this.cancel = None;
                    Poll::Ready(None)
                }
                None => Poll::Pending,
            };
        }
        Poll::Ready(Some(Ok(out.freeze())))
    }
}

/// One step of reading records.
#[derive(Debug)]
enum Piece {
    /// Bytes of a data record; `last` when they end it.
    Data { bytes: Bytes, last: bool },
    /// The error trailer.
    Failed(HandlerError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Data { left: u64 },
    Trailer { left: u64 },
    Done,
}

/// Reads records from a message body as it arrives (docs/PROTOCOL.md §15).
struct RecordReader {
    body: Chunks,
    route: std::sync::Arc<str>,
    /// The rest of the chunk being read.
    pending: Bytes,
    /// A header or trailer split across chunks.
    partial: BytesMut,
    state: State,
    /// The largest data record accepted ([`codec::DECODE_LIMIT`] for items), if any.
    max_data: Option<u64>,
    /// Bytes of records read, named in errors.
    offset: u64,
}

/// A message body as it arrives: a [`BodyStream`] (or, in tests, any chunks).
type Chunks = Pin<Box<dyn FuturesStream<Item = io::Result<Bytes>> + Send>>;

impl std::fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader")
            .field("route", &self.route)
            .field("state", &self.state)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

fn protocol(message: String) -> CallError {
    CallError::Codec(ErrorSource::message(message))
}

impl RecordReader {
    fn new(route: &str, body: Chunks, max_data: Option<u64>) -> Self {
        Self {
            body,
            route: route.into(),
            pending: Bytes::new(),
            partial: BytesMut::new(),
            state: State::Header,
            max_data,
            offset: 0,
        }
    }

    fn poll_piece(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Piece, CallError>>> {
        loop {
            match self.state {
                State::Done => return Poll::Ready(None),
                State::Header if !self.pending.is_empty() => {
                    let before = self.partial.len();
                    let take = (crate::varint::MAX_LEN - before).min(self.pending.len());
                    self.partial.extend_from_slice(&self.pending[..take]);
                    match crate::varint::peek(&self.partial) {
                        Ok(crate::varint::Peek::Value(header, at)) => {
                            self.pending.advance(at - before);
                            self.partial.clear();
                            self.offset += at as u64;
                            let (len, kind) = (header >> 1, header & 1);
                            if kind == ERROR {
                                if len > MAX_TRAILER {
                                    return self.fail(format!(
                                        "the error trailer of {} announces {len} bytes, over {MAX_TRAILER}",
                                        self.route
                                    ));
                                }
                                self.state = State::Trailer { left: len };
                                continue;
                            }
                            if let Some(max) = self.max_data.filter(|max| len > *max) {
                                return self.fail(format!(
                                    "a record of {} at byte {} announces {len} bytes, over the decode limit of {max} bytes",
                                    self.route, self.offset
                                ));
                            }
                            if len == 0 {
                                return Poll::Ready(Some(Ok(Piece::Data { bytes: Bytes::new(), last: true })));
                            }
                            self.state = State::Data { left: len };
                            continue;
                        }
                        Ok(crate::varint::Peek::Incomplete) => self.pending.advance(take),
                        Err(_) => {
                            return self.fail(format!(
                                "a malformed record header in the stream of {} at byte {}",
                                self.route, self.offset
                            ))
                        }
                    }
                }
                State::Data { left } if !self.pending.is_empty() => {
                    let n = left.min(self.pending.len() as u64);
                    let bytes = self.pending.split_to(n as usize);
                    self.offset += n;
                    let last = n == left;
                    self.state = if last { State::Header } else { State::Data { left: left - n } };
                    return Poll::Ready(Some(Ok(Piece::Data { bytes, last })));
                }
                State::Trailer { left } if self.partial.len() as u64 == left => {
                    let err = HandlerError::from_payload(&self.partial);
                    self.state = State::Done;
                    return Poll::Ready(Some(Ok(Piece::Failed(err))));
                }
                State::Trailer { left } if !self.pending.is_empty() => {
                    let n = (left - self.partial.len() as u64).min(self.pending.len() as u64) as usize;
                    self.partial.extend_from_slice(&self.pending.split_to(n));
                    self.offset += n as u64;
                    continue;
                }
                _ => {}
            }
            // The chunk is used up: read the next one.
            match ready!(self.body.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => self.pending = chunk,
                Some(Err(err)) => {
                    self.state = State::Done;
                    let context = format!("the stream of {} stopped after {} bytes", self.route, self.offset);
                    return Poll::Ready(Some(Err(CallError::Io(ErrorSource::context(context, err)))));
                }
                None if self.state == State::Header && self.partial.is_empty() => {
                    self.state = State::Done;
                    return Poll::Ready(None);
                }
                None => {
                    return self.fail(format!(
                        "the stream of {} ends inside a record, after {} bytes: it did not complete",
                        self.route, self.offset
                    ))
                }
            }
        }
    }

    fn fail(&mut self, message: String) -> Poll<Option<Result<Piece, CallError>>> {
        self.state = State::Done;
        Poll::Ready(Some(Err(protocol(message))))
    }
}

/// What [`decode_records`] read: each data record whole, then how the stream ended.
#[cfg(any(fuzzing, feature = "testing"))]
#[derive(Debug, PartialEq)]
pub(crate) struct Decoded {
    /// The data records, in order.
    pub(crate) records: Vec<Vec<u8>>,
    /// The error trailer's code and message, if the stream ended with one.
    pub(crate) trailer: Option<(u16, String)>,
    /// Whether the stream ended malformed or short (an error that is not a trailer).
    pub(crate) broken: bool,
}

/// Reads a result stream delivered in `chunks` to its end, synchronously (the chunks are all
/// ready), as a client does (docs/PROTOCOL.md §15), with or without the items' decode limit.
#[cfg(any(fuzzing, feature = "testing"))]
pub(crate) fn decode_records(chunks: Vec<Bytes>, limited: bool) -> Decoded {
    let body: Chunks = Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
    let limit = limited.then_some(codec::DECODE_LIMIT as u64);
    let mut reader = RecordReader::new("/fuzz", body, limit);
    let mut cx = TaskContext::from_waker(std::task::Waker::noop());
    let (mut out, mut record) = (Decoded { records: Vec::new(), trailer: None, broken: false }, Vec::new());
    loop {
        match reader.poll_piece(&mut cx) {
            Poll::Ready(Some(Ok(Piece::Data { bytes, last }))) => {
                record.extend_from_slice(&bytes);
                if last {
                    out.records.push(std::mem::take(&mut record));
                }
            }
            Poll::Ready(Some(Ok(Piece::Failed(err)))) => out.trailer = Some((err.code.0, err.message)),
            Poll::Ready(Some(Err(_))) => out.broken = true,
            Poll::Ready(None) => return out,
            Poll::Pending => panic!("ready chunks left the record reader pending"),
        }
    }
}

/// What a client reads from a `-> stream<T>` method: items of type `T`, decoded one by one as
/// they arrive. Only the item being decoded is held (at most [`codec::DECODE_LIMIT`] bytes plus
/// a chunk), and each chunk's credit goes back to the server as it is read, so a slow reader
/// slows the server. An error ends it: the handler's ([`CallError::Remote`], with its code and
/// message), or a stream that stopped short or is malformed (never a shorter stream that looks
/// complete). Dropping it before the end cancels the call both ways.
///
/// ```
/// # use netcore_runtime as netcore;
/// # async fn demo(mut readings: netcore::typed::Incoming<u32>) -> Result<(), netcore::CallError> {
/// while let Some(reading) = readings.next().await {
///     println!("{}", reading?);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Incoming<T> {
    records: RecordReader,
    item: BytesMut,
    index: u64,
    done: bool,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Incoming<T> {
    /// The items in `body`, the records of a streamed answer from `route` (named in errors).
    pub fn new(route: &str, body: BodyStream) -> Self {
        Self::from_chunks(route, Box::pin(body))
    }

    fn from_chunks(route: &str, body: Chunks) -> Self {
        Self {
            records: RecordReader::new(route, body, Some(codec::DECODE_LIMIT as u64)),
            item: BytesMut::new(),
            index: 0,
            done: false,
            _item: std::marker::PhantomData,
        }
    }

    /// How many items were returned so far.
    pub fn count(&self) -> u64 {
        self.index
    }

    /// The next item, `None` after the last.
    pub async fn next(&mut self) -> Option<Result<T, CallError>> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    fn poll_item(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<T, CallError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            let piece = match ready!(self.records.poll_piece(cx)) {
                Some(Ok(piece)) => piece,
                Some(Err(err)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(err)));
                }
                None => {
                    self.done = true;
                    return Poll::Ready(None);
                }
            };
            let bytes = match piece {
                Piece::Failed(err) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(CallError::Remote(err))));
                }
                Piece::Data { bytes, last: false } => {
                    self.item.extend_from_slice(&bytes);
                    continue;
                }
                Piece::Data { bytes, last: true } if self.item.is_empty() => bytes,
                Piece::Data { bytes, last: true } => {
                    self.item.extend_from_slice(&bytes);
                    self.item.split().freeze()
                }
            };
            let index = self.index;
            self.index += 1;
            let item = codec::decode(&bytes).map_err(|err| {
                self.done = true;
                CallError::Codec(ErrorSource::context(
                    format!("item {index} of {} does not decode", self.records.route),
                    err,
                ))
            });
            return Poll::Ready(Some(item));
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> Incoming<T> {
    /// The items as a [`futures::Stream`](futures_util::Stream), to map or forward them.
    pub fn into_stream(self) -> impl FuturesStream<Item = Result<T, CallError>> + Send + 'static {
        futures_util::stream::unfold(self, |mut items| async move { items.next().await.map(|item| (item, items)) })
    }
}

/// What a client reads from a `-> stream<bytes>` method: the bytes as they arrive, in chunks
/// that are not copied (a record's body, or the part of it in one frame). Errors and
/// cancellation as for [`Incoming`].
#[derive(Debug)]
pub struct IncomingBytes {
    records: RecordReader,
    received: u64,
}

impl IncomingBytes {
    /// The bytes in `body`, the records of a streamed answer from `route` (named in errors).
    pub fn new(route: &str, body: BodyStream) -> Self {
        Self::from_chunks(route, Box::pin(body))
    }

    fn from_chunks(route: &str, body: Chunks) -> Self {
        Self { records: RecordReader::new(route, body, None), received: 0 }
    }

    /// Bytes returned so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next chunk, `None` after the last.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, CallError> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await.transpose()
    }

    /// Reads the rest into memory.
    pub async fn bytes(mut self) -> Result<Bytes, CallError> {
        let mut all = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }

    fn poll_chunk(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Bytes, CallError>>> {
        loop {
            return match ready!(self.records.poll_piece(cx)) {
                Some(Ok(Piece::Data { bytes, .. })) if bytes.is_empty() => continue,
                Some(Ok(Piece::Data { bytes, .. })) => {
                    self.received += bytes.len() as u64;
                    Poll::Ready(Some(Ok(bytes)))
                }
                Some(Ok(Piece::Failed(err))) => Poll::Ready(Some(Err(CallError::Remote(err)))),
                Some(Err(err)) => Poll::Ready(Some(Err(err))),
                None => Poll::Ready(None),
            };
        }
    }
}

impl FuturesStream for IncomingBytes {
    type Item = Result<Bytes, CallError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// The chunks `records` yields, its items all ready.
    fn collect(mut records: Records) -> Vec<Bytes> {
        let mut cx = TaskContext::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        loop {
            match Pin::new(&mut records).poll_next(&mut cx) {
                Poll::Ready(Some(chunk)) => out.push(chunk.unwrap()),
                Poll::Ready(None) => return out,
                Poll::Pending => panic!("the items were ready"),
            }
        }
    }

    fn flat(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    /// `bytes` in chunks of `size`, then `end` (a clean end, or the error of a message cut short).
    fn chunks(bytes: &[u8], size: usize, end: Option<io::Error>) -> Chunks {
        let mut list: Vec<io::Result<Bytes>> =
            bytes.chunks(size.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        list.extend(end.map(Err));
        Box::pin(futures_util::stream::iter(list))
    }

    fn cut() -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, "the peer cancelled the message")
    }

    async fn read_all<T: DeserializeOwned>(mut items: Incoming<T>) -> (Vec<T>, Option<CallError>) {
        let mut got = Vec::new();
        while let Some(item) = items.next().await {
            match item {
                Ok(item) => got.push(item),
                Err(err) => {
                    assert!(items.next().await.is_none(), "nothing after an error");
                    return (got, Some(err));
                }
            }
        }
        (got, None)
    }

    #[cfg(not(feature = "bincode"))]
    #[test]
    fn records_are_framed_as_the_protocol_says() {
        // docs/PROTOCOL.md §15, "Result streams": the items 1 and 300 of a `stream<u32>`, then an
        // error trailer with code 3 and message "x".
        let items = futures_util::stream::iter([Ok(1u32), Ok(300), Err(HandlerError::new(ErrorCode(3), "x"))]);
        let records = flat(&collect(Stream::try_new(items).into_records("/t/sub")));
        assert_eq!(records, [0x02, 0x01, 0x04, 0xac, 0x02, 0x07, 0x03, 0x00, b'x']);
        assert!(collect(Stream::<u32>::iter([]).into_records("/t/sub")).is_empty(), "no items: an empty message");
        let bytes = flat(&collect(ByteStream::from_bytes(Bytes::from_static(b"ab")).into_records()));
        assert_eq!(bytes, [0x04, b'a', b'b']);
    }

    #[tokio::test]
    async fn items_round_trip_across_every_split() {
        let want: Vec<(u32, String)> = (0..200u32).map(|i| (i, "y".repeat(i as usize % 90))).collect();
        let records = flat(&collect(Stream::iter(want.clone()).into_records("/t/sub")));
        for size in [1, 2, 3, 7, 64, 1000, records.len()] {
            let (got, err) =
                read_all(Incoming::<(u32, String)>::from_chunks("/t/sub", chunks(&records, size, None))).await;
            assert!(err.is_none(), "chunks of {size}: {err:?}");
            assert_eq!(got, want, "chunks of {size}");
        }
    }

    #[tokio::test]
    async fn an_error_mid_stream_arrives_typed_after_the_items_before_it() {
        let items = futures_util::stream::iter([
            Ok(1u32),
            Ok(2),
            Err(HandlerError::new(ErrorCode::UNAVAILABLE, "sensor 4 went away")),
            Ok(3),
        ]);
        let records = flat(&collect(Stream::try_new(items).into_records("/t/sub")));
        for size in [1, 3, records.len()] {
            let (got, err) = read_all(Incoming::<u32>::from_chunks("/t/sub", chunks(&records, size, None))).await;
            assert_eq!(got, [1, 2]);
            match err {
                Some(CallError::Remote(err)) => {
                    assert_eq!((err.code, err.message.as_str()), (ErrorCode::UNAVAILABLE, "sensor 4 went away"))
                }
                other => panic!("expected the handler's error, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_stream_that_stops_short_is_an_error_never_a_shorter_stream() {
        let records = flat(&collect(Stream::iter([7u32, 100_000, 9]).into_records("/t/sub")));
        let boundaries = [0, 2, 2 + 4, records.len()];
        for at in 0..=records.len() {
            // Cut short (the peer cancelled, the link closed): always an error.
            let (_, err) =
                read_all(Incoming::<u32>::from_chunks("/t/sub", chunks(&records[..at], 2, Some(cut())))).await;
            match err {
                Some(CallError::Io(source)) => assert!(source.to_string().contains("/t/sub"), "{source}"),
                other => panic!("cut at {at}: expected an i/o error, got {other:?}"),
            }
            // Ended cleanly: complete only at a record boundary.
            let (got, err) = read_all(Incoming::<u32>::from_chunks("/t/sub", chunks(&records[..at], 2, None))).await;
            if boundaries.contains(&at) {
                assert!(err.is_none(), "at {at}: {err:?}");
                assert_eq!(got.len(), boundaries.iter().position(|b| *b == at).unwrap());
            } else {
                match err {
                    Some(CallError::Codec(source)) => {
                        assert!(source.to_string().contains("ends inside a record"), "{source}")
                    }
                    other => panic!("cut at {at}: expected an incomplete record, got {other:?}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn oversized_and_malformed_records_are_refused_naming_the_route() {
        let mut over = BytesMut::new();
        put_header(&mut over, codec::DECODE_LIMIT as u64 + 1, DATA);
        let (_, err) = read_all(Incoming::<u32>::from_chunks("/t/sub", chunks(&over, 16, None))).await;
        let text = err.expect("refused").to_string();
        assert!(text.contains("/t/sub") && text.contains("over the decode limit"), "{text}");
        let mut trailer = BytesMut::new();
        put_header(&mut trailer, MAX_TRAILER + 1, ERROR);
        let (_, err) = read_all(Incoming::<u32>::from_chunks("/t/sub", chunks(&trailer, 16, None))).await;
        assert!(err.expect("refused").to_string().contains("error trailer"));
        let bad = [0xffu8; 11];
        let (_, err) = read_all(Incoming::<u32>::from_chunks("/t/sub", chunks(&bad, 3, None))).await;
        assert!(err.expect("refused").to_string().contains("malformed record header"));
        // An item that does not decode as the item type.
        let mut wrong = BytesMut::new();
        put_data(&mut wrong, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        let (_, err) = read_all(Incoming::<u32>::from_chunks("/t/sub", chunks(&wrong, 16, None))).await;
        assert!(err.expect("refused").to_string().contains("item 0 of /t/sub does not decode"));
    }

    #[tokio::test]
    async fn bytes_round_trip_and_large_chunks_are_not_copied() {
        let big = Bytes::from(vec![5u8; 100_000]);
        let parts = [Bytes::from_static(b"small"), big.clone(), Bytes::new(), Bytes::from_static(b"tail")];
        let stream = ByteStream::new(futures_util::stream::iter(parts.clone().map(Ok::<_, HandlerError>)));
        let records = collect(stream.into_records());
        assert!(records.iter().any(|c| c.as_ptr() == big.as_ptr() && c.len() == big.len()), "the big chunk as it was");
        let want: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let bytes = flat(&records);
        for size in [1, 1000, bytes.len()] {
            let mut incoming = IncomingBytes::from_chunks("/t/log", chunks(&bytes, size, None));
            let mut got = Vec::new();
            while let Some(chunk) = incoming.chunk().await.unwrap() {
                got.extend_from_slice(&chunk);
            }
            assert_eq!(got, want, "chunks of {size}");
            assert_eq!(incoming.received(), want.len() as u64);
        }
        // An error after some bytes: the bytes, then the error.
        let failing = futures_util::stream::iter([Ok(Bytes::from_static(b"abc")), Err(io::Error::other("disk gone"))]);
        let bytes = flat(&collect(ByteStream::new(failing).into_records()));
        let mut incoming = IncomingBytes::from_chunks("/t/log", chunks(&bytes, 2, None));
        let mut got = Vec::new();
        let err = loop {
            match incoming.chunk().await {
                Ok(Some(chunk)) => got.extend_from_slice(&chunk),
                Ok(None) => panic!("ended without the error"),
                Err(err) => break err,
            }
        };
        assert_eq!(got, b"abc");
        assert!(matches!(&err, CallError::Remote(e) if e.message.contains("disk gone")), "{err:?}");
    }

    #[tokio::test]
    async fn a_reader_streams_in_chunks_and_its_error_reaches_the_caller() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        let records = ByteStream::from_reader(std::io::Cursor::new(data.clone())).into_records();
        let bytes = flat(
            &futures_util::StreamExt::collect::<Vec<_>>(records)
                .await
                .into_iter()
                .map(|c| c.unwrap())
                .collect::<Vec<_>>(),
        );
        let got = IncomingBytes::from_chunks("/t/file", chunks(&bytes, 5000, None)).bytes().await.unwrap();
        assert_eq!(got, data);
        /// A reader failing after its first bytes.
        struct Failing(bool);
        impl tokio::io::AsyncRead for Failing {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _: &mut TaskContext<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                if std::mem::replace(&mut self.0, true) {
                    return Poll::Ready(Err(io::Error::other("flash read error at sector 9")));
                }
                buf.put_slice(b"first");
                Poll::Ready(Ok(()))
            }
        }
        let records = ByteStream::from_reader(Failing(false)).into_records();
        let bytes = flat(
            &futures_util::StreamExt::collect::<Vec<_>>(records)
                .await
                .into_iter()
                .map(|c| c.unwrap())
                .collect::<Vec<_>>(),
        );
        let err = IncomingBytes::from_chunks("/t/file", chunks(&bytes, 3, None)).bytes().await.unwrap_err();
        assert!(matches!(&err, CallError::Remote(e) if e.message.contains("sector 9")), "{err:?}");
    }

    #[tokio::test]
    async fn ready_items_share_chunks_and_a_slow_producer_is_waited_for() {
        let records = collect(Stream::iter(0..10_000u32).into_records("/t/sub"));
        assert!(records.len() < 10, "{} chunks for 10 000 small items", records.len());
        assert!(records.iter().all(|c| c.len() <= BATCH + 16));
        let (tx, stream) = Stream::<u32>::channel(2);
        let mut records = stream.into_records("/t/sub");
        tx.send(1).await.unwrap();
        assert_eq!(
            records.next().await.unwrap().unwrap(),
            Bytes::from(flat(&collect(Stream::iter([1u32]).into_records("/"))))
        );
        drop(tx);
        assert!(records.next().await.is_none(), "the sender dropped: the end");
    }

    #[test]
    fn records_dropped_before_their_end_fire_the_cancellation() {
        let cancel = crate::typed::Cancellation::default();
        let records = Stream::iter([1u32, 2]).into_records("/t/sub").cancelling(cancel.clone());
        assert_eq!(collect(records).len(), 1);
        assert!(!cancel.is_cancelled(), "run to the end: nothing was called off");
        let cancel = crate::typed::Cancellation::default();
        let (_tx, stream) = Stream::<u32>::channel(1);
        drop(stream.into_records("/t/sub").cancelling(cancel.clone()));
        assert!(cancel.is_cancelled(), "dropped before the end");
    }

    #[tokio::test]
    async fn dropping_the_stream_tells_the_sender() {
        let (tx, stream) = Stream::<u32>::channel(1);
        assert!(!tx.is_closed());
        let records = stream.into_records("/t/sub");
        drop(records);
        tx.closed().await;
        assert_eq!(tx.send(1).await, Err(Closed));
        let (tx, stream) = Stream::<u32>::channel(4);
        tx.send(5).await.unwrap();
        tx.fail(HandlerError::new(ErrorCode::INTERNAL, "stopped")).await;
        let records = flat(&collect(stream.into_records("/t/sub")));
        let (got, err) = read_all(Incoming::<u32>::from_chunks("/t/sub", chunks(&records, 4, None))).await;
        assert_eq!(got, [5]);
        assert!(matches!(err, Some(CallError::Remote(e)) if e.message == "stopped"));
    }
}
