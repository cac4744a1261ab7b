//! `stream<T>` arguments (client to server): the item framing (docs/PROTOCOL.md §15, "Typed item
//! streams"), what a handler reads ([`Items`]) and where a client's items come from
//! ([`ItemSource`]: a repeatable iterator, or [`from_stream`] for an async stream of unknown
//! length).

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{check_method, encode_args, merge, Answer, MethodSpec, StreamArg};
use crate::codec;
use crate::connection::{CallOptions, Connection, OpenBody};
use crate::endpoint::{BodyStream, CallError, HandlerError};
use crate::session::Body;

/// The item type of a `stream<T>` argument type ([`Items<T>`]): what its client method takes.
pub trait ItemsOf {
    /// `T`.
    type Item;
}

impl<T> ItemsOf for Items<T> {
    type Item = T;
}

/// A `stream<T>` argument as its handler reads it: items of type `T`, decoded one by one as the
/// payload arrives (docs/PROTOCOL.md §15, "Typed item streams"), each `varint item_len ‖ item`.
/// Only the item being decoded is held (at most [`codec::DECODE_LIMIT`] bytes plus one chunk),
/// and each chunk's credit goes back to the peer as it is read, as for a [`BodyStream`].
///
/// ```
/// # use netcore_runtime as netcore;
/// # async fn demo(mut items: netcore::typed::Items<u32>) -> Result<u64, netcore::HandlerError> {
/// let mut sum = 0u64;
/// while let Some(item) = items.next().await {
///     sum += u64::from(item?);
/// }
/// # Ok(sum) }
/// ```
#[derive(Debug)]
pub struct Items<T> {
    body: BodyStream,
    route: String,
    buf: BytesMut,
    /// The index of the next item, named in errors.
    index: u64,
    done: bool,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Items<T> {
    /// Items read from `body`, the stream part of a request to `route` (named in errors).
    pub fn new(route: impl Into<String>, body: BodyStream) -> Self {
        Self { body, route: route.into(), buf: BytesMut::new(), index: 0, done: false, _item: std::marker::PhantomData }
    }

    /// Items already in memory: `bytes` framed as on the wire (docs/PROTOCOL.md §15).
    pub fn from_bytes(route: impl Into<String>, bytes: Bytes) -> Self {
        Self::new(route, BodyStream::from_bytes(bytes))
    }

    /// How many items were returned so far.
    pub fn count(&self) -> u64 {
        self.index
    }

    /// The next item, `None` after the last. An error ends the stream: an item length over
    /// [`codec::DECODE_LIMIT`] (TOO_LARGE), a malformed length, an item that does not decode, a
    /// payload that ends inside an item (BAD_REQUEST), or a payload that stopped short (the
    /// peer cancelled, the connection closed); each names the route and the item's index.
    pub async fn next(&mut self) -> Option<Result<T, HandlerError>> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    fn poll_item(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Result<T, HandlerError>>> {
        if self.done {
            return std::task::Poll::Ready(None);
        }
        let item = std::task::ready!(self.poll_read(cx));
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        std::task::Poll::Ready(item)
    }

    fn poll_read(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Result<T, HandlerError>>> {
        use bytes::Buf;
        use std::task::Poll;
        let (route, index) = (&self.route, self.index);
        loop {
            match crate::varint::peek(&self.buf) {
                Ok(crate::varint::Peek::Value(len, _)) if len > codec::DECODE_LIMIT as u64 => {
                    return Poll::Ready(Some(Err(HandlerError::new(
                        crate::endpoint::ErrorCode::TOO_LARGE,
                        format!(
                            "item {index} of {route} announces {len} bytes, over the decode limit of {} bytes",
                            codec::DECODE_LIMIT
                        ),
                    ))))
                }
                Ok(crate::varint::Peek::Value(len, at)) if self.buf.len() >= at + len as usize => {
                    let end = at + len as usize;
                    let item = codec::decode(&self.buf[at..end]).map_err(|err| {
                        HandlerError::bad_request(format!("item {index} of {route} does not decode: {err}"))
                    });
                    self.buf.advance(end);
                    self.index += 1;
                    return Poll::Ready(Some(item));
                }
                Ok(_) => {}
                Err(_) => {
                    return Poll::Ready(Some(Err(HandlerError::bad_request(format!(
                        "item {index} of {route}: bad item length"
                    )))))
                }
            }
            match std::task::ready!(futures_util::Stream::poll_next(std::pin::Pin::new(&mut self.body), cx)) {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                None if self.buf.is_empty() => return Poll::Ready(None),
                None => {
                    return Poll::Ready(Some(Err(HandlerError::bad_request(format!(
                        "the payload of {route} ends inside item {index}, after {} of its bytes",
                        self.buf.len()
                    )))))
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
            }
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> Items<T> {
    /// The items as a [`futures::Stream`](futures_util::Stream), to map or forward them (a
    /// bidirectional method's answer: `Stream::try_new(items.into_stream().map(…))`).
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<T, HandlerError>> + Send + 'static {
        futures_util::stream::unfold(self, |mut items| async move { items.next().await.map(|item| (item, items)) })
    }
}

impl<T: DeserializeOwned + Send + 'static> StreamArg for Items<T> {
    fn from_body(route: &str, body: BodyStream) -> Self {
        Self::new(route, body)
    }
}

impl<T: crate::layout::Schema + DeserializeOwned> crate::layout::Schema for Items<T> {
    /// `stream<T>`.
    fn describe(layout: &mut crate::layout::Layout) {
        layout.generic("stream", &[&T::describe]);
    }
}

/// Encodes items one at a time as they are read, each `varint item_len ‖ item`
/// (docs/PROTOCOL.md §15): a [`Body::reader`] source that never holds more than one item.
pub(super) struct ItemReader<I> {
    items: I,
    pending: Vec<u8>,
    at: usize,
    /// Bytes still to yield, as counted by the first pass.
    left: u64,
}

impl<I, T> std::io::Read for ItemReader<I>
where
    I: Iterator<Item = T>,
    T: Serialize,
{
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut written = 0;
        while written < out.len() {
            if self.at == self.pending.len() {
                let Some(item) = self.items.next() else { break };
                self.pending.clear();
                self.at = 0;
                let encoded = codec::encode(&item).map_err(std::io::Error::other)?;
                crate::varint::put(&mut self.pending, encoded.len() as u64);
                self.pending.extend_from_slice(&encoded);
                if self.pending.len() as u64 > self.left {
                    return Err(std::io::Error::other(
                        "the items differ from those counted before sending (the iterator is not repeatable)",
                    ));
                }
                self.left -= self.pending.len() as u64;
            }
            let n = (self.pending.len() - self.at).min(out.len() - written);
            out[written..written + n].copy_from_slice(&self.pending[self.at..self.at + n]);
            self.at += n;
            written += n;
        }
        Ok(written)
    }
}

/// The varint length of `value`.
pub(super) fn varint_len(value: u64) -> u64 {
    u64::from((64 - value.max(1).leading_zeros()).div_ceil(7))
}

/// Where a client's `stream<T>` argument comes from (docs/PROTOCOL.md §15, "Typed item streams").
///
/// A repeatable iterator (a `Vec`, a range, `iter().cloned()` of a slice, any `IntoIterator`
/// whose iterator is `Clone`) is walked twice: once to count the payload's length (each item is
/// encoded and dropped; an item over [`codec::DECODE_LIMIT`] is [`CallError::TooLarge`] before
/// anything is sent), then again as the message is sent, chunk by chunk as credit allows, so the
/// items are never held all at once. An iterator that yields other items the second time
/// cancels the message.
pub trait ItemSource<T> {
    /// The request body: `header` (the other arguments, framed) then the items, framed.
    fn into_body(self, method: &MethodSpec, header: Vec<u8>) -> Result<Body, CallError>;
}

impl<I, T> ItemSource<T> for I
where
    I: IntoIterator<Item = T>,
    I::IntoIter: Clone + Send + 'static,
    T: Serialize,
{
    fn into_body(self, method: &MethodSpec, header: Vec<u8>) -> Result<Body, CallError> {
        let items = self.into_iter();
        let mut total = 0u64;
        for item in items.clone() {
            let size = codec::encode(&item)?.len() as u64;
            if size > codec::DECODE_LIMIT as u64 {
                return Err(CallError::TooLarge {
                    method: method.name.to_owned(),
                    size,
                    limit: codec::DECODE_LIMIT as u64,
                });
            }
            total += varint_len(size) + size;
        }
        let reader = ItemReader { items, pending: Vec::new(), at: 0, left: total };
        let len = header.len() as u64 + total;
        Ok(Body::reader(std::io::Read::chain(std::io::Cursor::new(header), reader), len))
    }
}

/// A `stream<T>` argument from an async stream whose count is not known up front (a channel, a
/// sensor): sent as an open-length message (docs/PROTOCOL.md §15, "Open-length item streams"),
/// each item encoded as it comes, as the link takes them; the stream's end is the message's end.
/// Needs a peer that offered open-length messages (HELLO option OPEN).
///
/// ```
/// # use netcore_runtime as netcore;
/// let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
/// let items = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
/// let source = netcore::typed::from_stream(items);
/// # drop((tx, source));
/// ```
pub fn from_stream<S>(items: S) -> FromStream<S>
where
    S: futures_util::Stream + Send + 'static,
{
    FromStream(items)
}

/// An [`ItemSource`] of unknown length: see [`from_stream`].
#[derive(Debug)]
pub struct FromStream<S>(S);

impl<S, T> ItemSource<T> for FromStream<S>
where
    S: futures_util::Stream<Item = T> + Send + 'static,
    T: Serialize,
{
    fn into_body(self, method: &MethodSpec, header: Vec<u8>) -> Result<Body, CallError> {
        use futures_util::StreamExt;
        let name = method.name;
        let mut index = 0u64;
        let items = self.0.map(move |item| {
            let encoded = codec::encode(&item).map_err(std::io::Error::other)?;
            if encoded.len() > codec::DECODE_LIMIT {
                let message = format!(
                    "item {index} of {name} is {} bytes, over the decode limit of {} bytes",
                    encoded.len(),
                    codec::DECODE_LIMIT
                );
                return Err(std::io::Error::other(message));
            }
            index += 1;
            let mut framed = Vec::with_capacity(encoded.len() + crate::varint::MAX_LEN);
            crate::varint::put(&mut framed, encoded.len() as u64);
            framed.extend_from_slice(&encoded);
            Ok(Bytes::from(framed))
        });
        let body = futures_util::stream::iter([Ok(Bytes::from(header))]).chain(items);
        Ok(OpenBody::from_stream(body).into())
    }
}

/// `varint len ‖ arguments`, the start of a payload with a stream last (docs/PROTOCOL.md §15).
pub(super) fn stream_header<A: Serialize + ?Sized>(method: &MethodSpec, args: &A) -> Result<Vec<u8>, CallError> {
    let encoded = encode_args(method, args)?;
    let mut header = Vec::with_capacity(encoded.len() + crate::varint::MAX_LEN);
    crate::varint::put(&mut header, encoded.len() as u64);
    header.extend_from_slice(&encoded);
    Ok(header)
}

/// Calls `method`, whose last argument is a `stream<T>`, with the other arguments `args` and the
/// items `items` ([`ItemSource`]).
pub async fn call_items<A, T, S, R>(
    connection: &Connection,
    method: MethodSpec,
    opts: &CallOptions,
    args: &A,
    items: S,
) -> Result<R, CallError>
where
    A: Serialize + ?Sized,
    S: ItemSource<T>,
    R: Answer,
{
    let opts = merge(&method, opts);
    check_method(connection, method.route, method.name, method.hash, opts.timeout).await?;
    let body = items.into_body(&method, stream_header(&method, args)?)?;
    R::receive(connection, &method, body, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes an [`ItemReader`] yields for `items`, read `step` bytes at a time.
    fn framed<T: Serialize>(items: Vec<T>, step: usize) -> Vec<u8> {
        let total = items.iter().map(|i| codec::encode(i).unwrap().len() as u64).map(|n| varint_len(n) + n).sum();
        let mut reader = ItemReader { items: items.into_iter(), pending: Vec::new(), at: 0, left: total };
        let (mut out, mut buf) = (Vec::new(), vec![0; step]);
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out.len() as u64, total);
        out
    }

    #[cfg(not(feature = "bincode"))]
    #[test]
    fn items_are_framed_as_the_protocol_says() {
        // docs/PROTOCOL.md §15, "Typed item streams": the items 1 and 300 of a `stream<u32>`.
        assert_eq!(framed(vec![1u32, 300], 1), [0x01, 0x01, 0x02, 0xac, 0x02]);
        assert_eq!(framed(Vec::<u32>::new(), 8), Vec::<u8>::new());
        for value in [0u64, 1, 127, 128, 300, 1 << 40, u64::MAX] {
            let mut v = Vec::new();
            crate::varint::put(&mut v, value);
            assert_eq!(varint_len(value), v.len() as u64, "{value}");
        }
    }

    #[tokio::test]
    async fn items_split_across_chunks_decode_whole() {
        let want: Vec<(u32, String)> = (0..300u32).map(|i| (i * 1000, "x".repeat(i as usize % 150))).collect();
        let bytes = framed(want.clone(), 7);
        // Every chunk size from 1 byte up: items and their lengths split at every place.
        for size in [1, 2, 3, 5, 64, 1000, bytes.len()] {
            let chunks = bytes.chunks(size).map(Bytes::copy_from_slice).collect();
            let mut items = Items::<(u32, String)>::new("/t/rec", BodyStream::from_chunks(chunks));
            let mut got = Vec::new();
            while let Some(item) = items.next().await {
                got.push(item.unwrap());
            }
            assert_eq!(got, want, "chunks of {size}");
            assert_eq!(items.count(), want.len() as u64);
        }
    }

    #[tokio::test]
    async fn a_truncated_last_item_is_an_error_not_an_end() {
        let bytes = framed(vec![7u32, 100_000, 9], 4);
        // Where items 0 and 1 end.
        let first = framed(vec![7u32], 1).len();
        let ends = [first, first + framed(vec![100_000u32], 1).len()];
        for cut in 1..bytes.len() {
            let whole = ends.contains(&cut);
            let chunks = bytes[..cut].chunks(2).map(Bytes::copy_from_slice).collect();
            let mut items = Items::<u32>::new("/t/rec", BodyStream::from_chunks(chunks));
            let mut last = None;
            while let Some(item) = items.next().await {
                last = Some(item);
            }
            match last {
                Some(Err(err)) => {
                    assert!(!whole, "cut {cut}: {err:?}");
                    assert_eq!(err.code, crate::endpoint::ErrorCode::BAD_REQUEST);
                    assert!(err.message.contains("/t/rec ends inside item"), "{}", err.message);
                }
                other => assert!(whole, "cut {cut} ended without an error: {other:?}"),
            }
            assert!(items.next().await.is_none(), "nothing after the end");
        }
    }

    #[test]
    fn a_changed_iterator_cancels_instead_of_overrunning() {
        let mut reader = ItemReader { items: vec![1u32, 2, 3].into_iter(), pending: Vec::new(), at: 0, left: 4 };
        let mut buf = [0u8; 16];
        let err = std::io::Read::read(&mut reader, &mut buf).unwrap_err();
        assert!(err.to_string().contains("not repeatable"), "{err}");
    }
}
