//! The retention schedule: each status's window, the tick's limit and order, activity
//! restarting the clock, and the schedule agreeing with each job's eligible time.

use super::*;

#[tokio::test]
async fn each_terminal_status_archives_on_day_n_and_not_on_day_n_minus_one() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let mut due = Vec::new();
    let mut not_due = Vec::new();
    for (status, days) in [
        ("CANCELLED", 1.0),
        ("FAILED", 7.0),
        ("SCAN_COMPLETE", 14.0),
        ("COMPLETED", 14.0),
    ] {
        // A day short of the window (by a minute) and just past it.
        not_due.push(
            scans::insert_job(&db, "acme", status, days - 1.0, 3, 2)
                .await
                .unwrap(),
        );
        not_due.push(
            scans::insert_job(&db, "acme", status, days - 0.001, 3, 2)
                .await
                .unwrap(),
        );
        due.push(
            scans::insert_job(&db, "acme", status, days + 0.001, 3, 2)
                .await
                .unwrap(),
        );
    }
    for status in ["SCANNING", "READY_TO_TRANSFER", "TRANSFERRING", "PAUSED"] {
        not_due.push(
            scans::insert_job(&db, "acme", status, 365.0, 3, 2)
                .await
                .unwrap(),
        );
    }
    let outcomes = archive_due(&app, 100).await;
    let archived: Vec<uuid::Uuid> = outcomes
        .iter()
        .filter(|o| o.archived)
        .map(|o| o.job_id.parse().unwrap())
        .collect();
    assert!(outcomes.iter().all(|o| o.archived), "{outcomes:?}");
    let mut expected = due.clone();
    expected.sort();
    let mut got = archived.clone();
    got.sort();
    assert_eq!(got, expected);
    for job in not_due {
        assert_eq!(
            scans::table_digest(&db, job).await.unwrap().1,
            3,
            "job {job} stays hot"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_tick_takes_at_most_its_limit_oldest_terminal_first() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let mut jobs = Vec::new();
    for age in [30.0, 50.0, 20.0, 40.0, 60.0] {
        jobs.push((
            age,
            scans::insert_job(&db, "acme", "COMPLETED", age, 2, 1)
                .await
                .unwrap(),
        ));
    }
    let outcomes = archive_due(&app, 3).await;
    let order: Vec<uuid::Uuid> = outcomes.iter().map(|o| o.job_id.parse().unwrap()).collect();
    jobs.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
    let oldest: Vec<uuid::Uuid> = jobs.iter().take(3).map(|(_, id)| *id).collect();
    assert_eq!(order, oldest);
    let audited = count(
        &db,
        "select count(*) from archive.audit_log
             where action = 'archive' and reason = 'catch up' and outcome = 'ok'
               and actor = 'test-user' and tenant_id = 'acme'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(audited, 3, "every archived job is audited");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn activity_resets_the_retention_clock() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 15.0, 3, 2)
        .await
        .unwrap();
    let user = app.token("acme", &[Role::Member]);
    let touched = app
        .archive(Some(&user))
        .await
        .touch_job(pb::TouchJobRequest {
            job_id: job.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_clock_restarted(&app, &touched).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_schedule_archives_exactly_the_jobs_whose_eligible_time_has_passed() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let mut jobs = Vec::new();
    for (status, idle_days) in [
        ("COMPLETED", 15.0),
        ("COMPLETED", 13.0),
        ("SCAN_COMPLETE", 14.5),
        ("CANCELLED", 2.0),
        ("CANCELLED", 0.5),
        ("FAILED", 8.0),
        ("FAILED", 6.0),
        ("SCANNING", 400.0),
        ("PAUSED", 400.0),
    ] {
        jobs.push(
            scans::insert_job(&db, "acme", status, idle_days, 2, 2)
                .await
                .unwrap(),
        );
    }
    // A terminal job the scanner gave no terminal timestamp: idle since its last activity.
    let untimed = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 2, 2)
        .await
        .unwrap();
    db.execute(
        "update archive.scan_jobs set terminal_at = null where id = $1",
        &[&untimed],
    )
    .await
    .unwrap();
    // Terminal long ago, but touched yesterday.
    let touched = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 2, 2)
        .await
        .unwrap();
    db.execute(
        "update archive.scan_jobs set last_activity_at = now() - interval '1 day' where id = $1",
        &[&touched],
    )
    .await
    .unwrap();
    jobs.extend([untimed, touched]);

    let user = app.token("acme", &[Role::Member]);
    let mut client = app.archive(Some(&user)).await;
    let now = std::time::SystemTime::now();
    let mut due = std::collections::BTreeSet::new();
    for job in &jobs {
        let state = client
            .get_job_archive(pb::GetJobArchiveRequest {
                job_id: job.to_string(),
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(at) = state.eligible_time {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.seconds as u64);
            if at <= now {
                due.insert(job.to_string());
            }
        }
    }
    assert!(
        due.contains(&untimed.to_string()),
        "due from its last activity"
    );
    assert!(
        !due.contains(&touched.to_string()),
        "activity restarts the clock"
    );
    assert_eq!(due.len(), 5);
    let archived: std::collections::BTreeSet<String> = archive_due(&app, 100)
        .await
        .into_iter()
        .filter(|outcome| outcome.archived)
        .map(|outcome| outcome.job_id)
        .collect();
    assert_eq!(archived, due, "the schedule's SQL and the rule agree");
    app.stop().await.unwrap();
}
