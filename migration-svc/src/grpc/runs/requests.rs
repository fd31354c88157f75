//! The run requests on receipt: `TryFrom<pb::…>` for each (a bad field is
//! `INVALID_ARGUMENT` naming it), into the domain's commands and queries.

use stowage_proto::migration::v1 as pb;
use stowage_shared::api::{self, InvalidArgument, RequestId};
use uuid::Uuid;

use super::scope::executes_a_plan;
use crate::domain::{
    model::runs::{ItemState, Limit, Mode, RunState, Scope},
    runs::{ListItems, ListRuns, RetryRun, StartRun},
};

/// A CancelRunRequest, checked.
#[derive(Debug)]
pub(super) struct CancelRun {
    pub id: Uuid,
    pub reason: String,
}

/// A WatchRunRequest, checked.
#[derive(Debug)]
pub(super) struct WatchRun {
    pub id: Uuid,
    pub resume_after: i64,
}

/// A required `mode`: there is no default.
pub(super) fn mode(raw: i32) -> Result<Mode, InvalidArgument> {
    match pb::MigrationMode::try_from(raw) {
        Ok(pb::MigrationMode::DryRun) => Ok(Mode::DryRun),
        Ok(pb::MigrationMode::Live) => Ok(Mode::Live),
        Ok(pb::MigrationMode::Unspecified) => Err(InvalidArgument::new(
            "mode",
            "is required: MIGRATION_MODE_DRY_RUN or MIGRATION_MODE_LIVE (there is no default)",
        )),
        Err(_) => Err(InvalidArgument::new("mode", "unknown migration mode")),
    }
}

impl TryFrom<pb::StartRunRequest> for StartRun {
    type Error = InvalidArgument;

    fn try_from(r: pb::StartRunRequest) -> Result<Self, Self::Error> {
        let mode = mode(r.mode)?;
        let from_dry_run = api::optional_id("from_dry_run_id", &r.from_dry_run_id)?;
        executes_a_plan(
            mode,
            from_dry_run.is_some(),
            r.scope.as_ref(),
            r.accept_drift,
        )?;
        let limit = r.limit.unwrap_or_default();
        if limit.bytes_per_second < 0 || limit.objects_per_second < 0 {
            return Err(InvalidArgument::new(
                "limit",
                "rates must not be negative (0 is unlimited)",
            ));
        }
        Ok(Self {
            target: api::id("target_binding_id", &r.target_binding_id)?,
            mode,
            reason: api::reason(&r.reason)?.to_owned(),
            limit: Limit {
                bytes_per_second: limit.bytes_per_second,
                objects_per_second: limit.objects_per_second,
            },
            scope: r
                .scope
                .map(Scope::try_from)
                .transpose()?
                .unwrap_or_default(),
            from_dry_run,
            accept_drift: r.accept_drift,
            request_id: RequestId::parse(&r.request_id)?,
        })
    }
}

impl TryFrom<pb::ListRunsRequest> for ListRuns {
    type Error = InvalidArgument;

    fn try_from(r: pb::ListRunsRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            state: run_state(r.state)?,
            after: api::parse_page_token(&r.page_token)?,
            limit: api::page_size(r.page_size)?,
        })
    }
}

impl TryFrom<pb::ListRunItemsRequest> for ListItems {
    type Error = InvalidArgument;

    fn try_from(r: pb::ListRunItemsRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            run_id: api::id("run_id", &r.run_id)?,
            state: item_state(r.state)?,
            after: api::parse_page_token(&r.page_token)?,
            limit: api::page_size(r.page_size)?,
        })
    }
}

impl TryFrom<pb::RetryRunRequest> for RetryRun {
    type Error = InvalidArgument;

    fn try_from(r: pb::RetryRunRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            id: api::id("id", &r.id)?,
            reason: api::optional_reason(&r.reason)?.to_owned(),
            request_id: RequestId::parse(&r.request_id)?,
        })
    }
}

impl TryFrom<pb::CancelRunRequest> for CancelRun {
    type Error = InvalidArgument;

    fn try_from(r: pb::CancelRunRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            id: api::id("id", &r.id)?,
            reason: api::optional_reason(&r.reason)?.to_owned(),
        })
    }
}

impl TryFrom<pb::WatchRunRequest> for WatchRun {
    type Error = InvalidArgument;

    fn try_from(r: pb::WatchRunRequest) -> Result<Self, Self::Error> {
        if r.resume_after < 0 {
            return Err(InvalidArgument::new("resume_after", "must not be negative"));
        }
        Ok(Self {
            id: api::id("id", &r.id)?,
            resume_after: r.resume_after,
        })
    }
}

fn run_state(raw: i32) -> Result<Option<RunState>, InvalidArgument> {
    Ok(match pb::RunState::try_from(raw) {
        Ok(pb::RunState::Unspecified) => None,
        Ok(pb::RunState::Queued) => Some(RunState::Queued),
        Ok(pb::RunState::Planning) => Some(RunState::Planning),
        Ok(pb::RunState::Running) => Some(RunState::Running),
        Ok(pb::RunState::Completed) => Some(RunState::Completed),
        Ok(pb::RunState::CompletedWithErrors) => Some(RunState::CompletedWithErrors),
        Ok(pb::RunState::Failed) => Some(RunState::Failed),
        Ok(pb::RunState::Cancelled) => Some(RunState::Cancelled),
        Err(_) => return Err(InvalidArgument::new("state", "unknown run state")),
    })
}

fn item_state(raw: i32) -> Result<Option<ItemState>, InvalidArgument> {
    Ok(match pb::ItemState::try_from(raw) {
        Ok(pb::ItemState::Unspecified) => None,
        Ok(pb::ItemState::Queued) => Some(ItemState::Queued),
        Ok(pb::ItemState::Running) => Some(ItemState::Running),
        Ok(pb::ItemState::Migrated) => Some(ItemState::Migrated),
        Ok(pb::ItemState::Skipped) => Some(ItemState::Skipped),
        Ok(pb::ItemState::Failed) => Some(ItemState::Failed),
        Err(_) => return Err(InvalidArgument::new("state", "unknown item state")),
    })
}

#[cfg(test)]
mod tests {
    use super::{
        super::{super::refused, a_start_request as start},
        *,
    };

    #[test]
    fn a_start_request_is_taken_with_its_mode_reason_and_no_limit_by_default() {
        let command = StartRun::try_from(start()).expect("valid");
        assert_eq!(
            (command.mode, command.reason.as_str()),
            (Mode::Live, "new bucket")
        );
        assert_eq!(command.limit, Limit::default());
    }

    #[test]
    fn a_start_request_without_a_known_mode_is_refused_naming_the_mode() {
        for mode in [pb::MigrationMode::Unspecified as i32, 99] {
            let request = pb::StartRunRequest { mode, ..start() };
            assert_eq!(refused(StartRun::try_from(request)), "mode");
        }
    }

    #[test]
    fn each_malformed_start_field_is_named() {
        let negative = pb::ThroughputLimit {
            bytes_per_second: -1,
            objects_per_second: 0,
        };
        let cases = [
            (
                pb::StartRunRequest {
                    limit: Some(negative),
                    ..start()
                },
                "limit",
            ),
            (
                pb::StartRunRequest {
                    target_binding_id: "b".into(),
                    ..start()
                },
                "target_binding_id",
            ),
            (
                pb::StartRunRequest {
                    reason: " ".into(),
                    ..start()
                },
                "reason",
            ),
            (
                pb::StartRunRequest {
                    request_id: "a b".into(),
                    ..start()
                },
                "request_id",
            ),
        ];
        for (request, field) in cases {
            assert_eq!(refused(StartRun::try_from(request)), field);
        }
    }

    #[test]
    fn a_state_filter_left_unspecified_lists_all_and_an_unknown_one_is_refused() {
        assert_eq!(run_state(pb::RunState::Unspecified as i32).ok(), Some(None));
        assert_eq!(
            run_state(pb::RunState::Failed as i32).ok(),
            Some(Some(RunState::Failed))
        );
        assert_eq!(refused(run_state(99)), "state");
        assert_eq!(
            item_state(pb::ItemState::Skipped as i32).ok(),
            Some(Some(ItemState::Skipped))
        );
        assert_eq!(refused(item_state(-1)), "state");
    }

    #[test]
    fn a_listing_names_its_malformed_field() {
        let runs = pb::ListRunsRequest {
            page_size: -1,
            ..Default::default()
        };
        assert_eq!(refused(ListRuns::try_from(runs)), "page_size");
        let runs = pb::ListRunsRequest {
            page_token: "!".into(),
            ..Default::default()
        };
        assert_eq!(refused(ListRuns::try_from(runs)), "page_token");
        let items = pb::ListRunItemsRequest {
            run_id: "r".into(),
            ..Default::default()
        };
        assert_eq!(refused(ListItems::try_from(items)), "run_id");
        let items = pb::ListRunItemsRequest {
            run_id: Uuid::now_v7().to_string(),
            state: 99,
            ..Default::default()
        };
        assert_eq!(refused(ListItems::try_from(items)), "state");
    }

    #[test]
    fn retry_cancel_and_watch_take_a_run_id_and_name_what_is_malformed() {
        let id = Uuid::now_v7().to_string();
        let retry = pb::RetryRunRequest {
            id: id.clone(),
            reason: String::new(),
            request_id: "a b".into(),
        };
        assert_eq!(refused(RetryRun::try_from(retry)), "request_id");
        let cancel = pb::CancelRunRequest {
            id: id.clone(),
            reason: "\u{7}".into(),
        };
        assert_eq!(refused(CancelRun::try_from(cancel)), "reason");
        let cancel = pb::CancelRunRequest {
            id: "x".into(),
            reason: String::new(),
        };
        assert_eq!(refused(CancelRun::try_from(cancel)), "id");
        let watch = |resume_after| pb::WatchRunRequest {
            id: id.clone(),
            resume_after,
        };
        assert_eq!(refused(WatchRun::try_from(watch(-1))), "resume_after");
        let resumed = WatchRun::try_from(watch(7)).expect("valid");
        assert_eq!((resumed.id.to_string(), resumed.resume_after), (id, 7));
    }
}
