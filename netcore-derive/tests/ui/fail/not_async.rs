#[netcore::service]
trait Sync1 {
    fn get(&self, id: u32) -> u32;
}

fn main() {}
