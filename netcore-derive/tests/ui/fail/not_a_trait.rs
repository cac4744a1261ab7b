#[netcore::service]
struct NotATrait;

fn main() {}
