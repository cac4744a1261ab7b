#[netcore::service]
unsafe trait Feed {
    unsafe fn get(&self) -> u32;
    const fn put(&self);
}

fn main() {}
