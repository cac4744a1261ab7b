#[netcore::service]
trait Named: Clone {
    async fn name(&self) -> String;
}

fn main() {}
