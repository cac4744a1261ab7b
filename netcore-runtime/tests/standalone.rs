//! A connection without an endpoint (`Connection::open`): it calls, and answers NOT_FOUND.

use netcore_runtime::session::Config;
use netcore_runtime::{CallError, Connection, Endpoint, ErrorCode, Response};

#[tokio::test]
async fn a_connection_without_an_endpoint_calls_and_answers_not_found() {
    let server = Endpoint::builder()
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .build()
        .expect("valid routes");
    let (a, b) = tokio::io::duplex(64 * 1024);
    let served = server.connect(a, "server");
    let client = Connection::open(b, Config::default(), "client");

    let reply = client.call("/echo", b"ping".to_vec()).await.expect("the endpoint answers");
    assert_eq!(reply.bytes().expect("in memory").as_ref(), b"ping");

    match served.call("/anything", Vec::new()).await {
        Err(CallError::Remote(err)) => {
            assert_eq!(err.code, ErrorCode::NOT_FOUND);
            assert!(err.message.contains("/anything"), "{}", err.message);
        }
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
}
