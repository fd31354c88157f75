//! WatchRun: a snapshot, then every outcome once, for late watchers and for watchers
//! rejoining with a cursor.

use std::collections::HashSet;

use stowage_integration::{migration, spawn_app};
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::Role;

use super::WAIT;

/// Reads a watch stream until it ends or `outcomes` outcomes arrived.
async fn follow(
    runs: &mut pb::migration_service_client::MigrationServiceClient<
        stowage_integration::app::Bearer,
    >,
    run_id: &str,
    resume_after: i64,
    outcomes: usize,
) -> (Vec<pb::RunEvent>, bool) {
    let mut stream = runs
        .watch_run(pb::WatchRunRequest {
            id: run_id.to_owned(),
            resume_after,
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    let mut seen = 0;
    while let Some(event) = tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
    {
        if matches!(event.event, Some(pb::run_event::Event::Outcome(_))) {
            seen += 1;
        }
        events.push(event);
        if seen == outcomes {
            return (events, false);
        }
    }
    (events, true)
}

fn outcome_ids(events: &[pb::RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::run_event::Event::Outcome(item)) => Some(item.artifact_id.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn watchers_joining_late_or_rejoining_with_a_cursor_see_every_outcome_once() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, uploaded, target) = migration::memory_source_and_target(&app, &token, &[512; 30])
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(migration::limited_request(&target.id, 15))
        .await
        .unwrap()
        .into_inner();

    let (first, ended) = follow(&mut runs, &run.id, 0, 10).await;
    assert!(!ended);
    assert!(matches!(
        first[0].event,
        Some(pb::run_event::Event::Snapshot(_))
    ));
    let cursor = first.last().unwrap().cursor;
    let (rest, ended) = follow(&mut runs, &run.id, cursor, usize::MAX).await;
    assert!(ended, "the stream ends when the run does");
    assert!(matches!(
        rest[0].event,
        Some(pb::run_event::Event::Snapshot(_))
    ));
    let last_run = rest
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            Some(pb::run_event::Event::Update(run)) => Some(run.as_ref().clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_run.state(), pb::RunState::Completed);
    assert!(rest.iter().any(|e| matches!(&e.event,
        Some(pb::run_event::Event::Update(r)) if r.state() == pb::RunState::Running)));

    let mut seen = outcome_ids(&first);
    seen.extend(outcome_ids(&rest));
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), unique.len(), "no outcome twice");
    let all: HashSet<_> = uploaded.iter().map(|(a, _)| a.id.clone()).collect();
    assert_eq!(unique, all, "every outcome once");
    let cursors: Vec<i64> = first.iter().chain(&rest).map(|e| e.cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] <= w[1] || w[1] == cursor));

    // A watcher that joins after the end replays everything, then ends.
    let (late, ended) = follow(&mut runs, &run.id, 0, usize::MAX).await;
    assert!(ended);
    assert_eq!(outcome_ids(&late).len(), 30);
    app.stop().await.unwrap();
}
