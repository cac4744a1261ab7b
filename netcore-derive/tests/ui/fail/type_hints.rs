use std::collections::HashSet;

use netcore::HandlerError;

// Each of these is refused with what to write instead.
#[netcore::service]
trait Board {
    async fn read(&self, sensor: String) -> Result<f64, HandlerError>;
    async fn tags(&self, tags: HashSet<u8>) -> u32;
    async fn wide(&self, value: u128) -> i128;
    async fn letter(&self, c: char) -> u32;
}

fn main() {}
