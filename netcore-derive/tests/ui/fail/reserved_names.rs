#[netcore::service]
trait Feed {
    async fn new(&self) -> u32;
    async fn connection(&self) -> u32;
    async fn r#match(&self) -> u32;
}

fn main() {}
