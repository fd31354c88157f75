//! One replica, runs of several organizations: they share its copy slots, so a large run
//! of one organization never holds another's at 0%.

use std::time::{Duration, Instant};

use stowage_integration::{migration, spawn_app};
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::Role;

use super::WAIT;

#[tokio::test]
async fn runs_of_two_organizations_started_together_both_make_progress_within_a_second() {
    // The test runner copies 4 items at once; each copy here takes a few hundred ms (its
    // target answers in 100 ms), so one run alone would hold every slot for seconds.
    let app = spawn_app().await.unwrap();
    let mut prepared = Vec::new();
    for org in ["acme", "globex"] {
        let token = app.token(org, &[Role::OrgAdmin]);
        let (_, _, target_store, target) =
            migration::memory_source_and_proxied_target(&app, &token, &[1024; 24])
                .await
                .unwrap();
        target_store.proxy.slow(Duration::from_millis(50), None);
        prepared.push((token, target_store, target));
    }
    let mut started = Vec::new();
    for (token, _, target) in &prepared {
        let mut runs = app.runs(Some(token)).await;
        let request = migration::start_request(&target.id, pb::MigrationMode::Live);
        let run = runs.start_run(request).await.unwrap().into_inner();
        started.push((runs, run.id));
    }
    let start = Instant::now();
    let mut first_progress = [None, None];
    while first_progress.iter().any(Option::is_none) && start.elapsed() < Duration::from_secs(1) {
        for (i, (runs, id)) in started.iter_mut().enumerate() {
            let run = runs
                .get_run(pb::GetRunRequest { id: id.clone() })
                .await
                .unwrap()
                .into_inner();
            if first_progress[i].is_none() && run.items.is_some_and(|c| c.migrated > 0) {
                first_progress[i] = Some(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("fair runner: first item migrated after {first_progress:?}");
    assert!(
        first_progress.iter().all(Option::is_some),
        "both runs make progress within the first second: {first_progress:?}"
    );
    for (runs, id) in &mut started {
        let run = migration::wait_for_end(runs, id, WAIT).await.unwrap();
        assert_eq!(run.state(), pb::RunState::Completed, "{run:?}");
        assert_eq!(run.items.unwrap().migrated, 24);
    }
    app.stop().await.unwrap();
}
