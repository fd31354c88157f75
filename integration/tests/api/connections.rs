//! The transport: small replies come back without Nagle/delayed-ACK stalls, a connection
//! that never sends the HTTP/2 preface is closed after the handshake timeout, and
//! connections over the limit are closed at once.

use std::time::{Duration, Instant};

use stowage_integration::{
    app::{spawn_app_with, test_common},
    db::TestDb,
    migration::{self, memory_binding},
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::Role;
use tokio::{io::AsyncReadExt, net::TcpStream};

#[tokio::test]
async fn small_unary_replies_take_no_delayed_ack_stall() {
    let (app, _, mut bindings) = migration::acme_admin().await.unwrap();
    for i in 0..8 {
        let mut request = memory_binding(&format!("binding-{i}"));
        request.display_name = format!("{i} {}", "a long display name ".repeat(8));
        migration::create(&mut bindings, request).await.unwrap();
    }
    let reply = bindings
        .list_bindings(pb::ListBindingsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let names: usize = reply.bindings.iter().map(|b| b.display_name.len()).sum();
    assert!(names > 1024, "the reply should be over 1 KiB");
    let mut took = Vec::with_capacity(200);
    for _ in 0..200 {
        let start = Instant::now();
        bindings
            .list_bindings(pb::ListBindingsRequest::default())
            .await
            .unwrap();
        took.push(start.elapsed());
    }
    took.sort();
    let p99 = took[took.len() * 99 / 100 - 1];
    assert!(
        p99 < Duration::from_millis(20),
        "p99 {p99:?}, median {:?}",
        took[took.len() / 2]
    );
    app.stop().await.unwrap();
}

/// Reads from `stream` until it closes; how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
}

#[tokio::test]
async fn a_connection_that_never_sends_the_preface_is_closed_after_the_handshake_timeout() {
    let db = TestDb::migrated().await.unwrap();
    let mut common = test_common(&db).unwrap();
    common.grpc.handshake_timeout = Duration::from_millis(500);
    let app = spawn_app_with(db, common, |_| {}).await.unwrap();
    for addr in [app.migration_addr, app.archive_addr] {
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let took = closed_within(&mut idle, Duration::from_secs(5)).await;
        assert!(took >= Duration::from_millis(400), "closed after {took:?}");
    }
    // A client that speaks HTTP/2 is not affected.
    let token = app.token("acme", &[Role::Member]);
    let mut bindings = app.bindings(Some(&token)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    bindings
        .list_bindings(pb::ListBindingsRequest::default())
        .await
        .unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_connection_over_the_limit_is_closed_at_once() {
    let db = TestDb::migrated().await.unwrap();
    let mut common = test_common(&db).unwrap();
    common.grpc.max_connections = 2;
    common.grpc.handshake_timeout = Duration::from_secs(2);
    let app = spawn_app_with(db, common, |_| {}).await.unwrap();
    let _first = TcpStream::connect(app.migration_addr).await.unwrap();
    let _second = TcpStream::connect(app.migration_addr).await.unwrap();
    let mut third = TcpStream::connect(app.migration_addr).await.unwrap();
    let took = closed_within(&mut third, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    // Once the idle two are closed by the handshake timeout, calls get through.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let token = app.token("acme", &[Role::Member]);
    app.bindings(Some(&token))
        .await
        .list_bindings(pb::ListBindingsRequest::default())
        .await
        .unwrap();
    app.stop().await.unwrap();
}
