// Generated code names everything by absolute path, so it compiles without the prelude.
#![no_implicit_prelude]

#[::netcore::service]
pub trait Echo {
    async fn echo(&self, text: ::std::string::String) -> ::std::string::String;
    async fn who(&self, cx: &::netcore::Context) -> u64;
    #[netcore(event)]
    async fn ping(&self);
    // Streams both ways, and as results.
    async fn up(&self, items: ::netcore::typed::Items<u32>) -> u64;
    async fn down(&self, n: u64) -> ::netcore::Stream<u32>;
    async fn log(&self) -> ::netcore::ByteStream;
    async fn echo_items(&self, cx: &::netcore::Context, items: ::netcore::typed::Items<u32>) -> ::netcore::Stream<u32>;
    async fn mirror(&self, data: ::netcore::endpoint::BodyStream) -> ::netcore::ByteStream;
}

fn main() {}
