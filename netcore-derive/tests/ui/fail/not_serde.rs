pub struct NotOnTheWire {
    pub handle: std::fs::File,
}

#[netcore::service]
trait Files {
    async fn open(&self, path: String) -> NotOnTheWire;
}

fn main() {}
