use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, netcore::Schema)]
pub struct Reading {
    pub sensor: String,
    pub value: f64,
}

/// A device.
#[netcore::service(prefix = "/dev")]
pub trait Device {
    /// Reads a sensor.
    #[netcore(priority = 6, timeout_ms = 500)]
    async fn read(&self, sensor: String) -> Reading;
    async fn read_many(&self, sensors: Vec<String>, limit: Option<u32>) -> std::collections::HashMap<String, f64>;
    async fn flash(&self, offset: u32, block: Vec<u8>) -> u32;
    async fn reboot(&self);
    #[netcore(event)]
    async fn pushed(&self, reading: Reading);
}

struct Board;

impl Device for Board {
    async fn read(&self, sensor: String) -> Result<Reading, netcore::HandlerError> {
        Ok(Reading { sensor, value: 1.0 })
    }
    async fn read_many(
        &self,
        _sensors: Vec<String>,
        _limit: Option<u32>,
    ) -> Result<std::collections::HashMap<String, f64>, netcore::HandlerError> {
        Ok(Default::default())
    }
    async fn flash(&self, offset: u32, _block: Vec<u8>) -> Result<u32, netcore::HandlerError> {
        Ok(offset)
    }
    async fn reboot(&self) -> Result<(), netcore::HandlerError> {
        Ok(())
    }
    async fn pushed(&self, _reading: Reading) -> Result<(), netcore::HandlerError> {
        Ok(())
    }
}

fn main() {
    let _blueprint: netcore::Blueprint = DeviceServer::blueprint(Board);
    let _fingerprint: u64 = DeviceClient::fingerprint();
    assert_eq!(DeviceServer::PREFIX, "/dev");
}
