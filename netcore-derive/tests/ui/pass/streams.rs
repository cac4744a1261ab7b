// Stream results and bidirectional methods: a handler builds its stream from an iterator, a
// channel or another stream; a client reads items or bytes, and sends a repeatable iterator or an
// async stream of unknown length.
use netcore::endpoint::BodyStream;
use netcore::typed::{Incoming, IncomingBytes, Items};
use netcore::{ByteStream, HandlerError, Stream};

#[netcore::service(prefix = "/board")]
trait Board {
    async fn readings(&self, count: u64) -> Stream<u32>;
    async fn log(&self, name: String) -> ByteStream;
    async fn scale(&self, factor: u32, items: Items<u32>) -> Stream<u32>;
    async fn mirror(&self, data: BodyStream) -> ByteStream;
}

struct Impl;

impl Board for Impl {
    async fn readings(&self, count: u64) -> Result<Stream<u32>, HandlerError> {
        Ok(Stream::iter(0..count as u32))
    }
    async fn log(&self, _name: String) -> Result<ByteStream, HandlerError> {
        let (tx, log) = ByteStream::channel(2);
        tokio::spawn(async move {
            let _ = tx.send(bytes::Bytes::from_static(b"boot ok\n")).await;
        });
        Ok(log)
    }
    async fn scale(&self, factor: u32, items: Items<u32>) -> Result<Stream<u32>, HandlerError> {
        use futures::StreamExt;
        Ok(Stream::try_new(items.into_stream().map(move |item| item.map(|n| n * factor))))
    }
    async fn mirror(&self, data: BodyStream) -> Result<ByteStream, HandlerError> {
        Ok(ByteStream::new(data))
    }
}

#[allow(dead_code)]
async fn client(board: BoardClient) -> Result<(), netcore::CallError> {
    let _: Incoming<u32> = board.readings(3).await?;
    let _: IncomingBytes = board.log("boot".into()).await?;
    let _: Incoming<u32> = board.scale(2, vec![1, 2, 3]).await?;
    let (_tx, rx) = tokio::sync::mpsc::channel::<u32>(4);
    let unknown = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|n| (n, rx)) });
    let _: Incoming<u32> = board.scale(2, netcore::typed::from_stream(unknown)).await?;
    let _: IncomingBytes = board.mirror(vec![1u8, 2, 3]).await?;
    Ok(())
}

fn main() {
    let _ = BoardServer::blueprint(Impl);
}
