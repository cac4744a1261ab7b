#[netcore::service]
trait Feed {
    #[netcore(event)]
    async fn pushed(&self, value: u32) -> bool;
}

fn main() {}
