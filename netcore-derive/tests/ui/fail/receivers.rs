#[netcore::service]
trait Store {
    async fn no_self(id: u32) -> u32;
    async fn by_value(self, id: u32) -> u32;
    async fn by_mut(&mut self, id: u32) -> u32;
}

fn main() {}
