//! Streamed answers from handlers: [`Response::stream`].

use super::Response;
use crate::connection::OpenBody;

impl Response {
    /// A response whose body is produced as it is sent, of a length not known in advance (an
    /// open-length RESPONSE, docs/PROTOCOL.md §5.2, §6): downloads, subscriptions, log tails.
    /// The handler returns at once; whoever holds the body's
    /// [`OpenBodySender`](crate::OpenBodySender) keeps producing, at the pace the caller reads
    /// (the peer's credit), and sees it closed if the caller cancels.
    ///
    /// A peer that did not offer open-length messages (HELLO option OPEN) gets an ERROR
    /// UNAVAILABLE naming the reason instead.
    pub fn stream(body: OpenBody) -> Response {
        Response::body(body.into())
    }
}
