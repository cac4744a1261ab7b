#[netcore::service]
trait Store {
    async fn get(&self, (a, b): (u32, u32)) -> u32;
}

fn main() {}
