// A user type's fields are refused the types the schema language does not have, as method
// signatures are.
#[derive(serde::Serialize, serde::Deserialize, netcore::Schema)]
struct Reading {
    serial: u128,
    history: Vec<i128>,
}

#[derive(serde::Serialize, serde::Deserialize, netcore::Schema)]
enum Key {
    Letter(char),
    Code(u32),
}

fn main() {}
