#[netcore::service]
trait Store {
    async fn tuple(&self, pair: (u32, u32)) -> u32;
    async fn opaque(&self) -> impl Clone;
    async fn object(&self, value: Box<dyn std::any::Any>) -> u32;
    async fn generic_user_type(&self, value: Wrapper<u32>) -> u32;
    async fn function(&self, f: fn(u32) -> u32) -> u32;
}

fn main() {}
