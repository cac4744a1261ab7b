#[netcore::service]
trait Feed {
    const LIMIT: u32;
    type Item;
    async fn get(&self) -> u32;
}

fn main() {}
