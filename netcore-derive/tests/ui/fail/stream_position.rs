use netcore::endpoint::BodyStream;

#[netcore::service]
trait Firmware {
    // A stream goes last.
    async fn early(&self, image: BodyStream, name: String) -> u32;
    // Events carry no stream.
    #[netcore(event)]
    async fn pushed(&self, image: BodyStream);
    // Not as the result (yet), nor inside another type.
    async fn download(&self, name: String) -> BodyStream;
    async fn nested(&self, images: Option<BodyStream>) -> u32;
}

fn main() {}
