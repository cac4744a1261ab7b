#[netcore::service]
trait Store {
    async fn by_name(&self, name: &str) -> u32;
    async fn by_slice(&self, ids: &[u32]) -> u32;
    async fn array(&self, ids: [u32; 4]) -> u32;
}

fn main() {}
