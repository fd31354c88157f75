//! Hostile input over gRPC, generated from the descriptor set: every method of both
//! services gets an empty message, then its valid request with one field at a time set to
//! boundary and junk values (and wire-level junk no typed client can send), and
//! `PutArtifact` gets malformed streams. Every reply must be a client error or OK, within
//! a deadline, with both servers healthy and memory bounded at the end.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};
use stowage_shared::error::code_name;

use prost::{
    Message,
    bytes::Bytes,
    encoding::{WireType, encode_key, encode_varint},
};
use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value,
};
use stowage_integration::{
    access::{OURS, TABLE},
    raw::{Call, Shape},
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::Role;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::access::Fixture;

const MIB: usize = 1 << 20;
/// The caller whose resources the valid requests name (SUPER_ADMIN of ours).
const SLOT: usize = 7;
/// Nested messages are walked this deep (`credential.s3_access_key.secret_access_key`).
const DEPTH: usize = 3;

/// Codes that say the server, not the caller, is at fault, or that it did not answer.
fn is_server_fault(code: Code) -> bool {
    matches!(
        code,
        Code::Internal
            | Code::Unknown
            | Code::DataLoss
            | Code::Unimplemented
            | Code::DeadlineExceeded
            | Code::Unavailable
            | Code::Cancelled
    )
}

/// Boundary and junk values for one (non-list) field of `kind`.
fn junk(kind: &Kind) -> Vec<(String, Value)> {
    let strings = [
        ("empty", String::new()),
        ("1 MiB", "a".repeat(MIB)),
        ("not a UUID", "not-a-uuid".to_owned()),
        ("an unknown UUID", uuid::Uuid::new_v4().to_string()),
        ("NUL", "a\0b".to_owned()),
        ("a control character", "a\u{7}b".to_owned()),
        ("whitespace", "  \t ".to_owned()),
        ("a forged page token", "AAAAAAAAAAAAAAAAAAAAAA==".to_owned()),
        ("a page token of junk", "%%%not-base64%%%".to_owned()),
        ("1,001 characters", "é".repeat(1001)),
    ];
    match kind {
        Kind::String => strings
            .into_iter()
            .map(|(label, s)| (format!("string {label}"), Value::String(s)))
            .collect(),
        Kind::Bytes => vec![
            ("bytes empty".into(), Value::Bytes(Bytes::new())),
            ("bytes 1 MiB".into(), Value::Bytes(vec![0xa5; MIB].into())),
        ],
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => [0, -1, 1, 501, i32::MIN, i32::MAX]
            .into_iter()
            .map(|n| (format!("int32 {n}"), Value::I32(n)))
            .collect(),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => [0, -1, 1, i64::MIN, i64::MAX]
            .into_iter()
            .map(|n| (format!("int64 {n}"), Value::I64(n)))
            .collect(),
        Kind::Uint32 | Kind::Fixed32 => vec![("uint32 max".into(), Value::U32(u32::MAX))],
        Kind::Uint64 | Kind::Fixed64 => vec![("uint64 max".into(), Value::U64(u64::MAX))],
        Kind::Bool => vec![
            ("true".into(), Value::Bool(true)),
            ("false".into(), Value::Bool(false)),
        ],
        Kind::Float => vec![("NaN".into(), Value::F32(f32::NAN))],
        Kind::Double => vec![("NaN".into(), Value::F64(f64::NAN))],
        Kind::Enum(e) => e
            .values()
            .map(|v| v.number())
            .chain([-1, 9999, i32::MAX])
            .map(|n| (format!("enum {n}"), Value::EnumNumber(n)))
            .collect(),
        Kind::Message(m) => vec![(
            "an empty message".into(),
            Value::Message(DynamicMessage::new(m.clone())),
        )],
    }
}

/// `base` with one field (or one field of a nested message) changed, for every field.
fn variants(base: &DynamicMessage, depth: usize) -> Vec<(String, DynamicMessage)> {
    let mut out = Vec::new();
    for field in base.descriptor().fields() {
        let name = field.name().to_owned();
        let mut cleared = base.clone();
        cleared.clear_field(&field);
        out.push((format!("{name} unset"), cleared));
        let values = if field.is_list() {
            let element = Value::default_value(&field.kind());
            vec![(
                "10,000 elements".to_owned(),
                Value::List(vec![element; 10_000]),
            )]
        } else {
            junk(&field.kind())
        };
        for (label, value) in values {
            let mut changed = base.clone();
            changed.set_field(&field, value);
            out.push((format!("{name}: {label}"), changed));
        }
        if let (Kind::Message(nested), false) = (field.kind(), field.is_list())
            && depth < DEPTH
        {
            let inner = match base.get_field(&field).as_message() {
                Some(inner) if base.has_field(&field) => inner.clone(),
                _ => DynamicMessage::new(nested),
            };
            for (label, inner) in variants(&inner, depth + 1) {
                let mut changed = base.clone();
                changed.set_field(&field, Value::Message(inner));
                out.push((format!("{name}.{label}"), changed));
            }
        }
    }
    out
}

/// A new `request_id` unless the variant is about it, so that a variant reaches the
/// validation and the work behind the idempotency check.
fn fresh_request_id(message: &mut DynamicMessage, label: &str) {
    let descriptor = message.descriptor();
    if let Some(field) = descriptor.get_field_by_name("request_id")
        && !label.starts_with("request_id")
    {
        message.set_field(&field, Value::String(uuid::Uuid::new_v4().to_string()));
    }
}

/// Wire-level junk of one top-level field: bytes that are not UTF-8 in a string field,
/// and the field sent 10,000 times (the last one wins).
fn wire_variants(base: &DynamicMessage, depth: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for field in base.descriptor().fields() {
        let mut without = base.clone();
        without.clear_field(&field);
        let prefix = without.encode_to_vec();
        if matches!(field.kind(), Kind::String) && !field.is_list() {
            let mut bytes = prefix.clone();
            encode_key(field.number(), WireType::LengthDelimited, &mut bytes);
            encode_varint(3, &mut bytes);
            bytes.extend_from_slice(&[0xff, 0xfe, 0x80]);
            out.push((format!("{}: not UTF-8", field.name()), bytes));
        }
        // The same inside nested messages (not UTF-8, truncated, unknown fields).
        if let (Kind::Message(nested), false) = (field.kind(), field.is_list())
            && depth < DEPTH
        {
            let inner = match base.get_field(&field).as_message() {
                Some(inner) if base.has_field(&field) => inner.clone(),
                _ => DynamicMessage::new(nested),
            };
            let nested_junk = wire_variants(&inner, depth + 1)
                .into_iter()
                .filter(|(label, _)| !label.ends_with("10,000 times"));
            for (label, inner) in nested_junk {
                let mut bytes = prefix.clone();
                encode_key(field.number(), WireType::LengthDelimited, &mut bytes);
                encode_varint(inner.len() as u64, &mut bytes);
                bytes.extend_from_slice(&inner);
                out.push((format!("{}.{label}", field.name()), bytes));
            }
        }
        let mut single = DynamicMessage::new(base.descriptor());
        let value = if base.has_field(&field) {
            base.get_field(&field).into_owned()
        } else {
            match junk(&field.kind()).into_iter().nth(2) {
                Some((_, value)) => value,
                None => Value::default_value_for_field(&field),
            }
        };
        single.set_field(&field, value);
        let once = single.encode_to_vec();
        let mut bytes = prefix;
        for _ in 0..10_000 {
            bytes.extend_from_slice(&once);
        }
        out.push((format!("{} sent 10,000 times", field.name()), bytes));
    }
    let mut truncated = base.encode_to_vec();
    if truncated.pop().is_some() {
        out.push(("truncated by a byte".into(), truncated));
    }
    let mut unknown = base.encode_to_vec();
    encode_key(999, WireType::LengthDelimited, &mut unknown);
    encode_varint(4, &mut unknown);
    unknown.extend_from_slice(b"junk");
    out.push(("an unknown field".into(), unknown));
    out
}

/// Malformed upload streams: what the first (metadata) message and its chunks may not be.
fn upload_streams(valid: &[Vec<u8>]) -> Vec<(String, Vec<Vec<u8>>)> {
    use pb::put_artifact_request::Part;
    let metadata = valid.first().cloned().unwrap_or_default();
    let chunk = |len: usize| {
        pb::PutArtifactRequest {
            part: Some(Part::Chunk(vec![7; len].into())),
        }
        .encode_to_vec()
    };
    let with_digest = |digest: &str| {
        pb::PutArtifactRequest {
            part: Some(Part::Metadata(pb::ArtifactMetadata {
                expected_sha256: digest.to_owned(),
                ..stowage_integration::migration::metadata("document", "digest.bin")
            })),
        }
        .encode_to_vec()
    };
    vec![
        ("an empty stream".into(), vec![]),
        (
            "a chunk before the metadata".into(),
            vec![chunk(10), metadata.clone()],
        ),
        (
            "two metadata messages".into(),
            vec![metadata.clone(), metadata.clone(), chunk(10)],
        ),
        ("metadata alone".into(), vec![metadata.clone()]),
        (
            "a message with no part".into(),
            vec![metadata.clone(), Vec::new(), chunk(10)],
        ),
        (
            "a wrong expected digest".into(),
            vec![with_digest(&"0".repeat(64)), chunk(10)],
        ),
        (
            "an expected digest that is not hex".into(),
            vec![with_digest("zz"), chunk(10)],
        ),
        (
            "a chunk larger than a message may be".into(),
            vec![metadata.clone(), chunk(5 * MIB)],
        ),
        (
            "10,000 empty chunks".into(),
            std::iter::once(metadata.clone())
                .chain(std::iter::repeat_n(chunk(0), 10_000))
                .collect(),
        ),
        (
            "16 MiB in 1 MiB chunks".into(),
            std::iter::once(metadata)
                .chain(std::iter::repeat_n(chunk(MIB), 16))
                .collect(),
        ),
    ]
}

/// Resident memory of this process (the services run in it), from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test]
async fn junk_in_every_field_of_every_method_is_a_client_error_and_the_servers_stay_healthy() {
    let fixture = Fixture::new().await;
    let token = fixture.app.token(OURS, &[Role::SuperAdmin]);
    // A runner from here on, so the runs the walk starts (with junk limits) are run.
    let _runner = fixture
        .app
        .replica(stowage_integration::app::test_runner())
        .await
        .unwrap();
    let pool = DescriptorPool::decode(stowage_proto::FILE_DESCRIPTOR_SET).unwrap();
    let rss_before = rss_bytes();
    let started = Instant::now();
    let mut faults = Vec::new();
    let mut seen = BTreeMap::<&str, usize>::new();
    let mut calls = 0usize;
    let mut slowest = Duration::ZERO;
    let mut created = Vec::new();
    for row in TABLE
        .iter()
        .filter(|row| row.service().starts_with("stowage."))
    {
        let method = pool
            .get_service_by_name(row.service())
            .and_then(|service| service.methods().find(|m| m.name() == row.method()))
            .unwrap_or_else(|| panic!("{} is not in the descriptor set", row.path));
        let shape = Shape::of(method.is_client_streaming(), method.is_server_streaming());
        let (_, valid) = fixture.request(row, SLOT);
        let input: MessageDescriptor = method.input();
        // The message that varies: the request, or an upload's first (metadata) message.
        let mut base = DynamicMessage::decode(input, valid[0].as_slice()).unwrap();
        if let Some(target) = base.descriptor().get_field_by_name("target_binding_id") {
            // The binding the walk's ActivateBinding made active, so that runs run.
            let active = fixture.slots[SLOT].binding.clone();
            base.set_field(&target, Value::String(active));
            // LIVE, so that the junk limits reach the runner's pacing.
            if let Some(mode) = base.descriptor().get_field_by_name("mode") {
                base.set_field(&mode, Value::EnumNumber(pb::MigrationMode::Live.into()));
            }
        }
        let valid = if row.method() == "StartRun" {
            vec![base.encode_to_vec()]
        } else {
            valid
        };
        let wrap = |first: Vec<u8>| {
            let mut messages = valid.clone();
            messages[0] = first;
            messages
        };
        let mut cases: Vec<(String, Vec<Vec<u8>>)> = vec![
            ("the valid request".into(), valid.clone()),
            ("an empty message".into(), wrap(Vec::new())),
        ];
        cases.extend(variants(&base, 1).into_iter().map(|(label, mut message)| {
            fresh_request_id(&mut message, &label);
            (label, wrap(message.encode_to_vec()))
        }));
        cases.extend(
            wire_variants(&base, 1)
                .into_iter()
                .map(|(label, bytes)| (label, wrap(bytes))),
        );
        if shape == Shape::ClientStreaming {
            cases.extend(upload_streams(&valid));
        }
        let (_, channel) = fixture.channels(row).remove(0);
        for (label, messages) in cases {
            let reply = Call {
                path: row.path,
                shape,
                messages,
                token: Some(&token),
                deadline: Duration::from_secs(10),
                max_messages: 2,
            }
            .send(channel.clone())
            .await;
            calls += 1;
            slowest = slowest.max(reply.elapsed);
            *seen.entry(code_name(reply.code)).or_default() += 1;
            if std::env::var_os("STOWAGE_HOSTILE_TRACE").is_some() {
                eprintln!(
                    "TRACE {} | {label} | {} | {}",
                    row.path,
                    code_name(reply.code),
                    reply.message.chars().take(160).collect::<String>()
                );
            }
            if row.method() == "CreateBinding"
                && reply.code == Code::Ok
                && let Some(binding) = reply
                    .messages
                    .first()
                    .and_then(|m| pb::Binding::decode(m.as_slice()).ok())
            {
                created.push((label.clone(), binding.id));
            }
            if is_server_fault(reply.code) {
                faults.push(format!(
                    "{} with {label}: {} ({})",
                    row.path,
                    code_name(reply.code),
                    reply.message.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    // What the junk created is then used: every binding it made is activated (a posture
    // check against whatever the junk described).
    let (_, channel) = fixture.channels(&TABLE[0]).remove(0);
    for (label, id) in created {
        let request = pb::ActivateBindingRequest {
            id,
            request_id: uuid::Uuid::new_v4().to_string(),
        };
        let reply = Call {
            path: "/stowage.migration.v1.BindingService/ActivateBinding",
            shape: Shape::Unary,
            messages: vec![request.encode_to_vec()],
            token: Some(&token),
            deadline: Duration::from_secs(10),
            max_messages: 1,
        }
        .send(channel.clone())
        .await;
        calls += 1;
        slowest = slowest.max(reply.elapsed);
        *seen.entry(code_name(reply.code)).or_default() += 1;
        if std::env::var_os("STOWAGE_HOSTILE_TRACE").is_some() {
            eprintln!(
                "TRACE activate a binding created with {label} | {} | {}",
                code_name(reply.code),
                reply.message
            );
        }
        if is_server_fault(reply.code) {
            faults.push(format!(
                "ActivateBinding of a binding created with {label}: {} ({})",
                code_name(reply.code),
                reply.message
            ));
        }
    }
    let elapsed = started.elapsed();
    let rss_after = rss_bytes();
    eprintln!(
        "hostile input: {calls} calls in {elapsed:?} (slowest {slowest:?}), codes {seen:?}, \
         RSS {} MiB before, {} MiB after",
        rss_before >> 20,
        rss_after >> 20
    );
    assert!(
        faults.is_empty(),
        "{} of {calls} calls answered with a server fault:\n{}",
        faults.len(),
        faults.join("\n")
    );
    assert!(calls <= 5_000, "{calls} calls: keep the walk bounded");
    assert!(elapsed < Duration::from_secs(120), "took {elapsed:?}");
    assert!(
        rss_after < rss_before + 512 * MIB as u64,
        "memory grew from {rss_before} to {rss_after} bytes"
    );
    assert_no_run_failed_internally(&fixture, &token).await;
    for addr in [fixture.app.migration_addr, fixture.app.archive_addr] {
        let channel = fixture.app.channel(addr).await;
        let health = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status(), ServingStatus::Serving, "{addr}");
    }
    fixture.app.stop().await.unwrap();
}

/// The runs the walk started end (those without a throughput limit, within 30 s), and
/// none of them, nor any of their items, failed for an internal reason.
async fn assert_no_run_failed_internally(fixture: &Fixture, token: &str) {
    let mut runs = fixture.app.runs(Some(token)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = runs
                .list_runs(pb::ListRunsRequest {
                    page_size: 500,
                    page_token,
                    state: 0,
                })
                .await
                .unwrap()
                .into_inner();
            all.extend(page.runs);
            page_token = page.next_page_token;
            if page_token.is_empty() {
                break;
            }
        }
        let open = all
            .iter()
            .filter(|run| {
                let limited = run
                    .limit
                    .is_some_and(|l| l.bytes_per_second > 0 || l.objects_per_second > 0);
                !limited && !stowage_integration::migration::is_terminal(run.state())
            })
            .count();
        if open == 0 || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for run in &listed {
        assert_ne!(
            run.failure_cause(),
            pb::RunFailureCause::Internal,
            "a run failed internally: {run:?}"
        );
        let items =
            stowage_integration::migration::items(&mut runs, &run.id, pb::ItemState::Failed)
                .await
                .unwrap();
        for item in items {
            assert_ne!(item.cause(), pb::ItemCause::Internal, "{item:?}");
        }
    }
    let mut states = BTreeMap::<String, usize>::new();
    for run in &listed {
        *states
            .entry(format!("{:?}/{:?}", run.mode(), run.state()))
            .or_default() += 1;
    }
    eprintln!("hostile input: {} runs checked: {states:?}", listed.len());
}

#[tokio::test]
async fn an_upload_whose_stream_breaks_is_refused_with_the_callers_own_code() {
    use pb::put_artifact_request::Part;
    let app = stowage_integration::spawn_app().await.unwrap();
    let token = app.token(OURS, &[Role::Member]);
    let admin = app.token(OURS, &[Role::OrgAdmin]);
    stowage_integration::migration::create_active(
        &mut app.bindings(Some(&admin)).await,
        stowage_integration::migration::memory_binding("uploads"),
    )
    .await
    .unwrap();
    let metadata = pb::PutArtifactRequest {
        part: Some(Part::Metadata(stowage_integration::migration::metadata(
            "document", "a.bin",
        ))),
    }
    .encode_to_vec();
    let chunk = |len: usize| {
        pb::PutArtifactRequest {
            part: Some(Part::Chunk(vec![1; len].into())),
        }
        .encode_to_vec()
    };
    let channel = app.channel(app.migration_addr).await;
    let send = |messages: Vec<Vec<u8>>| Call {
        path: "/stowage.migration.v1.ArtifactService/PutArtifact",
        shape: Shape::ClientStreaming,
        messages,
        token: Some(&token),
        deadline: Duration::from_secs(10),
        max_messages: 1,
    };
    let twice = send(vec![metadata.clone(), chunk(10), metadata.clone()])
        .send(channel.clone())
        .await;
    assert_eq!(twice.code, Code::InvalidArgument, "{twice:?}");
    assert_eq!(
        twice.message,
        "metadata: only the first message may carry it"
    );
    let oversized = send(vec![metadata, chunk(5 * MIB)]).send(channel).await;
    assert_eq!(oversized.code, Code::OutOfRange, "{oversized:?}");
    assert!(!oversized.message.contains("code:"), "{oversized:?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn live_runs_with_extreme_throughput_limits_complete_or_cancel_promptly() {
    use stowage_integration::migration as m;
    let app = stowage_integration::spawn_app().await.unwrap();
    let admin = app.token(OURS, &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&admin)).await;
    let mut runs = app.runs(Some(&admin)).await;
    let first = m::create_active(&mut bindings, m::memory_binding("first"))
        .await
        .unwrap()
        .id;
    let mut artifacts = app.artifacts(Some(&admin)).await;
    for i in 0..5 {
        m::put(
            &mut artifacts,
            m::metadata("document", "a.bin"),
            &m::content(i, 8192),
        )
        .await
        .unwrap();
    }
    let second = m::create(&mut bindings, m::memory_binding("second"))
        .await
        .unwrap()
        .id;
    let limits = [(i64::MAX, 0), (0, i64::MAX), (i64::MAX, i64::MAX), (1, 1)];
    for (i, (bytes_per_second, objects_per_second)) in limits.into_iter().enumerate() {
        // Every run moves every artifact: to the other binding each time.
        let target = if i % 2 == 0 { &second } else { &first };
        m::activate(&mut bindings, target).await.unwrap();
        let run = runs
            .start_run(pb::StartRunRequest {
                limit: Some(pb::ThroughputLimit {
                    bytes_per_second,
                    objects_per_second,
                }),
                ..m::start_request(target, pb::MigrationMode::Live)
            })
            .await
            .unwrap()
            .into_inner();
        if bytes_per_second == 1 {
            // Hours at one byte a second: a cancel stops it within seconds.
            m::wait_for(&mut runs, &run.id, Duration::from_secs(10), |r| {
                r.state() == pb::RunState::Running
            })
            .await
            .unwrap();
            runs.cancel_run(pb::CancelRunRequest {
                id: run.id.clone(),
                reason: "too slow".into(),
            })
            .await
            .unwrap();
            let ended = m::wait_for_end(&mut runs, &run.id, Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(ended.state(), pb::RunState::Cancelled, "{ended:?}");
        } else {
            let ended = m::wait_for_end(&mut runs, &run.id, Duration::from_secs(30))
                .await
                .unwrap();
            assert_eq!(ended.state(), pb::RunState::Completed, "{ended:?}");
            assert_eq!(ended.items.unwrap().migrated, 5, "{ended:?}");
        }
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn eight_copies_of_every_call_at_once_get_no_server_fault_and_one_result_per_request_id() {
    let fixture = Fixture::new().await;
    let token = fixture.app.token(OURS, &[Role::SuperAdmin]);
    let mut wrong = Vec::new();
    for row in TABLE
        .iter()
        .filter(|row| row.service().starts_with("stowage."))
    {
        let (shape, messages) = fixture.request(row, SLOT);
        let has_request_id = DescriptorPool::decode(stowage_proto::FILE_DESCRIPTOR_SET)
            .unwrap()
            .get_service_by_name(row.service())
            .and_then(|s| s.methods().find(|m| m.name() == row.method()))
            .is_some_and(|m| m.input().get_field_by_name("request_id").is_some());
        let (_, channel) = fixture.channels(row).remove(0);
        let calls = (0..8).map(|_| {
            Call {
                path: row.path,
                shape,
                messages: messages.clone(),
                token: Some(&token),
                deadline: Duration::from_secs(10),
                max_messages: 1,
            }
            .send(channel.clone())
        });
        let replies = futures::future::join_all(calls).await;
        let ok: Vec<_> = replies.iter().filter(|r| r.code == Code::Ok).collect();
        for reply in &replies {
            if is_server_fault(reply.code) {
                wrong.push(format!(
                    "{}: {} ({})",
                    row.path,
                    code_name(reply.code),
                    reply.message
                ));
            }
        }
        if ok.is_empty() {
            wrong.push(format!("{}: no call succeeded: {:?}", row.path, replies[0]));
        } else if has_request_id && ok.iter().any(|r| r.messages != ok[0].messages) {
            let codes: Vec<_> = replies
                .iter()
                .map(|r| (code_name(r.code), r.messages.clone()))
                .collect();
            wrong.push(format!(
                "{}: the repeats answered different results: {codes:?}",
                row.path
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    fixture.app.stop().await.unwrap();
}
