//! Evidence: every audited action records its entry in its own transaction, so an action
//! whose entry cannot be recorded does not happen.

use stowage_integration::{
    migration::{self, start_request},
    spawn_app_configured,
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::Role;

async fn audited(db: &tokio_postgres::Client) -> i64 {
    db.query_one("select count(*) from migration.audit_log", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn an_action_whose_audit_entry_cannot_be_recorded_does_not_happen() {
    // No runner: queued runs stay queued.
    let app = spawn_app_configured(|c| c.migration.migration.enabled = false)
        .await
        .unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    let mut runs = app.runs(Some(&token)).await;
    let target = migration::create_active(&mut bindings, migration::memory_binding("t"))
        .await
        .unwrap();
    let pending = migration::create(&mut bindings, migration::memory_binding("p"))
        .await
        .unwrap();
    let queued = runs
        .start_run(start_request(&target.id, pb::MigrationMode::DryRun))
        .await
        .unwrap()
        .into_inner();
    let failed = runs
        .start_run(start_request(&target.id, pb::MigrationMode::DryRun))
        .await
        .unwrap()
        .into_inner();
    let db = app.db.client().await.unwrap();
    db.execute(
        "update migration.runs set state = 'failed', end_time = now() where id = $1",
        &[&uuid::Uuid::parse_str(&failed.id).unwrap()],
    )
    .await
    .unwrap();
    let entries_before = audited(&db).await;
    // From here on the audit log refuses every entry.
    db.batch_execute(
        "alter table migration.audit_log add constraint refuse_all check (false) not valid",
    )
    .await
    .unwrap();

    assert!(
        bindings
            .create_binding(migration::memory_binding("n"))
            .await
            .is_err()
    );
    assert!(
        bindings
            .update_binding_credential(pb::UpdateBindingCredentialRequest {
                id: pending.id.clone(),
                credential: migration::memory_binding("p").credential,
                request_id: String::new(),
            })
            .await
            .is_err()
    );
    assert!(
        migration::activate(&mut bindings, &pending.id)
            .await
            .is_err()
    );
    assert!(
        runs.start_run(start_request(&target.id, pb::MigrationMode::DryRun))
            .await
            .is_err()
    );
    assert!(
        runs.retry_run(pb::RetryRunRequest {
            id: failed.id.clone(),
            reason: "again".into(),
            request_id: String::new(),
        })
        .await
        .is_err()
    );
    assert!(
        runs.cancel_run(pb::CancelRunRequest {
            id: queued.id.clone(),
            reason: "wrong window".into(),
        })
        .await
        .is_err()
    );

    // Nothing happened.
    let listed = bindings
        .list_bindings(pb::ListBindingsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .bindings;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let still_pending = listed.iter().find(|b| b.id == pending.id).unwrap();
    assert_eq!(still_pending.state(), pb::BindingState::Pending);
    assert_eq!(
        still_pending.credential_update_time,
        pending.credential_update_time
    );
    let all_runs = runs
        .list_runs(pb::ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(all_runs.len(), 2, "{all_runs:?}");
    let queued_now = all_runs.iter().find(|r| r.id == queued.id).unwrap();
    assert_eq!(queued_now.state(), pb::RunState::Queued);
    assert!(!queued_now.cancel_requested);

    // With the audit log writable again, the same actions happen and are audited.
    db.batch_execute("alter table migration.audit_log drop constraint refuse_all")
        .await
        .unwrap();
    assert_eq!(audited(&db).await, entries_before);
    runs.cancel_run(pb::CancelRunRequest {
        id: queued.id.clone(),
        reason: "wrong window".into(),
    })
    .await
    .unwrap();
    assert_eq!(audited(&db).await, entries_before + 1);
    app.stop().await.unwrap();
}
