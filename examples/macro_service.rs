//! A typed service declared with `#[netcore::service]` on a Rust trait, served over TCP on
//! localhost and called through the generated client.
//!
//! ```text
//! cargo run --example macro_service
//! ```

use std::sync::Mutex;

use netcore::session::Config;
use netcore::{Endpoint, HandlerError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, netcore::Schema)]
pub struct Note {
    pub id: u32,
    pub text: String,
}

/// A notebook.
#[netcore::service(prefix = "/notes")]
pub trait Notebook {
    /// Adds a note; returns its id.
    async fn add(&self, text: String) -> u32;
    /// All notes containing `needle`.
    async fn find(&self, needle: String) -> Vec<Note>;
    /// Forgets everything (urgent).
    #[netcore(priority = 7, timeout_ms = 1000)]
    async fn clear(&self) -> u32;
}

#[derive(Default)]
struct Notes(Mutex<Vec<Note>>);

impl Notebook for Notes {
    async fn add(&self, text: String) -> Result<u32, HandlerError> {
        if text.trim().is_empty() {
            return Err(HandlerError::bad_request("empty note"));
        }
        let mut notes = self.0.lock().unwrap();
        let id = notes.len() as u32 + 1;
        notes.push(Note { id, text });
        Ok(id)
    }

    async fn find(&self, needle: String) -> Result<Vec<Note>, HandlerError> {
        Ok(self.0.lock().unwrap().iter().filter(|n| n.text.contains(&needle)).cloned().collect())
    }

    async fn clear(&self) -> Result<u32, HandlerError> {
        let mut notes = self.0.lock().unwrap();
        let n = notes.len() as u32;
        notes.clear();
        Ok(n)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Each method is checked against the server's METHODS table (docs/TYPED.md); no fingerprint.
    let config = Config::stream();
    let server =
        Endpoint::builder().config(config.clone()).blueprint(NotebookServer::blueprint(Notes::default())).build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn({
        let server = server.clone();
        async move { server.serve_tcp(listener).await }
    });

    let client = Endpoint::builder().config(config).build()?;
    let notes = NotebookClient::new(client.connect_tcp(addr).await?);
    notes.add("buy solder".into()).await?;
    notes.add("flash the board".into()).await?;
    println!("found: {:?}", notes.find("board".into()).await?);
    match notes.add("   ".into()).await {
        Err(err) => println!("as expected: {err}"),
        Ok(id) => println!("unexpected id {id}"),
    }
    // `clear` has a 1 s timeout: on a busy machine it may be late, which is no failure of the demo.
    match notes.clear().await {
        Ok(n) => println!("cleared {n} notes"),
        Err(err) if err.is_timeout() => println!("clear was late: {err}"),
        Err(err) => return Err(err.into()),
    }
    server.shutdown().await;
    Ok(())
}
