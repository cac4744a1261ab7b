use netcore::endpoint::BodyStream;
use netcore::typed::{Items, Stream};
use netcore::ByteStream;

#[netcore::service]
trait Board {
    // An event returns nothing, a stream least of all.
    #[netcore(event)]
    async fn pushes(&self) -> Stream<u32>;
    // A handler reads its stream argument, and sends its stream result.
    async fn download(&self, name: String) -> BodyStream;
    async fn items_back(&self) -> Items<u32>;
    async fn upload(&self, image: ByteStream) -> u32;
    async fn record(&self, items: Stream<u32>) -> u32;
    // A stream of bytes is a `ByteStream`; a stream is the result itself, not inside a type.
    async fn raw(&self) -> Stream<Vec<u8>>;
    async fn streams(&self) -> Stream<Stream<u32>>;
    async fn wrapped(&self) -> Option<Stream<u32>>;
}

fn main() {}
