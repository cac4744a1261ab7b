// A type that crosses the wire (serde) but has no layout for the fingerprint.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Reading {
    pub value: f64,
}

#[netcore::service]
trait Sensor {
    async fn read(&self, channel: u8) -> Reading;
}

fn main() {}
