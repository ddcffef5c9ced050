//! The writer's merging of consecutive `ReleaseKeys` / `FreeKeys`, over a
//! real loopback TCP connection.

use super::*;
use crate::wire::transport::{read_batch, split_plain};
use crate::wire::FrameLimits;

fn release(keys: &[&str]) -> FromClient {
    FromClient::ReleaseKeys {
        keys: keys.iter().map(|k| k.to_string()).collect(),
    }
}

#[test]
fn merge_joins_neighbouring_releases_only() {
    let mut first = release(&["a"]);
    assert_eq!(first.merge(release(&["b", "c"])), None);
    assert_eq!(first, release(&["a", "b", "c"]));
    // Anything else stays a message of its own, after it.
    let other = FromClient::CloseClient;
    assert_eq!(first.merge(other.clone()), Some(other));
    let mut close = FromClient::CloseClient;
    assert_eq!(close.merge(release(&["d"])), Some(release(&["d"])));
    let mut free = ToWorker::FreeKeys { keys: vec!["a".into()] };
    assert_eq!(free.merge(ToWorker::FreeKeys { keys: vec!["b".into()] }), None);
    assert_eq!(
        free,
        ToWorker::FreeKeys {
            keys: vec!["a".into(), "b".into()]
        }
    );
}

#[test]
fn merge_stops_at_the_key_bound() {
    let big: Vec<Key> = (0..MAX_MERGED_KEYS).map(|i| i.to_string()).collect();
    let mut first = FromClient::ReleaseKeys { keys: big };
    let next = release(&["one more"]);
    assert_eq!(first.merge(next.clone()), Some(next));
}

/// A release's keys count toward the queue's budget, and one of
/// `MAX_MERGED_KEYS` keys is large enough to leave in a frame of its own.
#[test]
fn releases_are_sized_by_their_keys() {
    let small = release(&["a"]).approx_bytes();
    let keys: Vec<Key> = (0..MAX_MERGED_KEYS).map(|i| format!("inc-{i:08}")).collect();
    let big = FromClient::ReleaseKeys { keys }.approx_bytes();
    assert!(small < big / 1000, "{small} vs {big}");
    assert!(big >= ALONE_BYTES, "{big}");
}

/// Queued before the writer runs, the messages leave in one frame with
/// neighbouring releases merged and the order kept.
#[test]
fn the_writer_merges_queued_releases_in_order() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let got = local.block_on(&rt, async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (_, write) = split_plain(client.unwrap());
        let (mut reader, _) = split_plain(accepted.unwrap().0);
        let sender = spawn_writer::<FromClient>(write, "test".into());
        for m in [
            release(&["a"]),
            release(&["b"]),
            FromClient::UpdateGraph {
                tasks: Vec::new(),
                wanted: vec!["a".into()],
            },
            release(&["c"]),
            release(&["d"]),
        ] {
            sender.send(m).unwrap();
        }
        tokio::time::timeout(
            Duration::from_secs(10),
            read_batch::<FromClient>(&mut reader, &FrameLimits::default()),
        )
        .await
        .expect("a frame within 10 s")
        .expect("a readable frame")
        .expect("not closed")
    });
    assert_eq!(
        got,
        vec![
            release(&["a", "b"]),
            FromClient::UpdateGraph {
                tasks: Vec::new(),
                wanted: vec!["a".into()],
            },
            release(&["c", "d"]),
        ]
    );
}
