#[netcore::service]
trait Store {
    async fn get<T>(&self, id: T) -> u32;
}

fn main() {}
