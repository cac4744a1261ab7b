use netcore::endpoint::BodyStream;
use netcore::typed::Items;

#[netcore::service]
trait Firmware {
    // A stream goes last.
    async fn early(&self, image: BodyStream, name: String) -> u32;
    // Events carry no stream.
    #[netcore(event)]
    async fn pushed(&self, image: BodyStream);
    // Not inside another type.
    async fn nested(&self, images: Option<BodyStream>) -> u32;
    // Typed items follow the same rules.
    async fn early_items(&self, items: Items<u32>, name: String) -> u32;
    async fn nested_items(&self, items: Vec<Items<u32>>) -> u32;
    // A stream of bytes is a `BodyStream`.
    async fn bytes_items(&self, items: Items<Vec<u8>>) -> u32;
}

fn main() {}
