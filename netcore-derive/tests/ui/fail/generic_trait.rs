#[netcore::service]
trait Store<T> {
    async fn get(&self, id: u32) -> u32;
}

fn main() {}
