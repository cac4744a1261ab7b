// Generated code names everything by absolute path, so it compiles without the prelude.
#![no_implicit_prelude]

#[::netcore::service]
pub trait Echo {
    async fn echo(&self, text: ::std::string::String) -> ::std::string::String;
    async fn who(&self, cx: &::netcore::Context) -> u64;
    #[netcore(event)]
    async fn ping(&self);
}

fn main() {}
