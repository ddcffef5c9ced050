//! Tests of the peer pool's bounds on a peer that accepts a request and
//! never answers (a worker cut off by the network, or stopped).

use super::*;
use tokio::net::TcpListener;

#[test]
fn a_peer_that_never_replies_fails_the_request_within_its_bound() {
    actix::System::new().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = format!("tcp://{}", listener.local_addr().expect("address"));
        // Completes the handshake, reads the request, and then says nothing.
        tokio::task::spawn_local(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (_hello, mut reader, _writer) = transport::accept(stream, &[Role::Peer], &Security::default())
                .await
                .expect("handshake");
            let _ = transport::read_batch::<ToPeer>(&mut reader, &FrameLimits::default()).await;
            std::future::pending::<()>().await;
        });
        let pool = PeerPool::new("test", FrameLimits::default()).with_reply_timeouts(ReadTimeouts {
            idle: Some(Duration::from_millis(300)),
            stall: Some(Duration::from_millis(300)),
        });
        let started = std::time::Instant::now();
        let err = pool.get_data(&address, vec!["x".into()]).await.expect_err("no reply");
        let waited = started.elapsed();
        assert!(matches!(err, WireError::Timeout(_)), "{err}");
        assert!(err.to_string().contains("sent no reply"), "{err}");
        assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    });
}
