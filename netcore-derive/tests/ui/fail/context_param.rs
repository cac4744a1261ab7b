use netcore::Context;

#[netcore::service]
trait Store {
    // The context goes right after `&self`.
    async fn late(&self, id: u32, cx: &Context) -> u32;
    // It is borrowed, not owned or mutable.
    async fn owned(&self, cx: netcore::Context) -> u32;
    async fn mutable(&self, cx: &mut Context) -> u32;
    // Only once.
    async fn twice(&self, cx: &Context, again: &Context) -> u32;
}

fn main() {}
