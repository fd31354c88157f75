//! ListJobArchives: a tenant's jobs in id order, hot or archived or both, a page at a time,
//! and never another tenant's.

use std::collections::BTreeSet;

use super::*;

/// Every job `token` lists in `state`, `page_size` at a time: the ids in the order listed,
/// and how many pages it took.
async fn list_all(
    app: &stowage_integration::TestApp,
    token: &str,
    state: pb::ArchiveState,
    page_size: i32,
) -> (Vec<String>, usize) {
    let mut client = app.archive(Some(token)).await;
    let (mut ids, mut pages, mut page_token) = (Vec::new(), 0, String::new());
    while pages < 20 {
        let page = client
            .list_job_archives(pb::ListJobArchivesRequest {
                page_size,
                page_token,
                state: state.into(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.jobs.len() <= page_size as usize);
        for job in &page.jobs {
            assert_eq!(job.tenant_id, "acme", "only our own jobs");
            let archived = job.state() == pb::ArchiveState::Archived;
            assert!(state == pb::ArchiveState::Unspecified || job.state() == state);
            assert_eq!(archived, !job.blob_key.is_empty(), "{job:?}");
        }
        ids.extend(page.jobs.into_iter().map(|j| j.job_id));
        if page.next_page_token.is_empty() {
            return (ids, pages);
        }
        page_token = page.next_page_token;
    }
    panic!("more than 20 pages");
}

#[tokio::test]
async fn jobs_are_listed_a_page_at_a_time_by_state_and_only_the_callers() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let mut archived = BTreeSet::new();
    for _ in 0..3 {
        let job = archived_job(&app, &db, ("COMPLETED", 20.0), (3, 2))
            .await
            .job;
        archived.insert(job.to_string());
    }
    let mut hot = BTreeSet::new();
    for status in ["SCANNING", "COMPLETED"] {
        let job = scans::insert_job(&db, "acme", status, 1.0, 2, 1)
            .await
            .unwrap();
        hot.insert(job.to_string());
    }
    let theirs = scans::insert_job(&db, "globex", "FAILED", 30.0, 2, 2)
        .await
        .unwrap();
    stores::archive(&mut stores::admin(&app).await, theirs).await;

    let member = app.token("acme", &[Role::Member]);
    let (listed, pages) = list_all(&app, &member, pb::ArchiveState::Archived, 2).await;
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), archived);
    assert_eq!(pages, 2, "3 jobs, 2 a page");
    let (listed, _) = list_all(&app, &member, pb::ArchiveState::Hot, 1).await;
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), hot);
    let (listed, pages) = list_all(&app, &member, pb::ArchiveState::Unspecified, 2).await;
    let all: BTreeSet<_> = archived.union(&hot).cloned().collect();
    assert_eq!(listed.len(), 5, "each job once: {listed:?}");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert!(listed.is_sorted(), "in id order: {listed:?}");
    assert_eq!(pages, 3);
    app.stop().await.unwrap();
}
