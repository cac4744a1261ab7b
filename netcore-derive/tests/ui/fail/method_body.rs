#[netcore::service]
trait Store {
    async fn get(&self, id: u32) -> u32 {
        id
    }
}

fn main() {}
