#[netcore::service(prefix = "user/")]
trait Users {
    async fn get(&self, id: u32) -> u32;
}

fn main() {}
