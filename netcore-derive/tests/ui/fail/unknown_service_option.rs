#[netcore::service(prefx = "/a")]
trait A {
    async fn a(&self);
}

fn main() {}
