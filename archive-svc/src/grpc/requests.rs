//! Requests on receipt: `TryFrom<pb::…>` for each (a bad field is `INVALID_ARGUMENT`
//! naming it), into the domain's commands and queries.

use stowage_proto::archive::v1 as pb;
use stowage_shared::{
    api::{self, InvalidArgument, RequestId},
    sweep::Sampling,
};

use crate::domain::{
    payload::Compression,
    relocate::MoveMode,
    requests::{
        ArchiveDue, ArchiveNow, DeleteJob, DestroyTenantKeys, ListJobs, MigrateArchives,
        RestoreJob, SetStore, UpdateStoreCredential,
    },
    service::Trigger,
    stores::StoreSetting,
    verify::VerifyArchives,
};

/// Longest tenant id a request names.
const MAX_TENANT_CHARS: usize = 128;

/// Longest connection string or container name a store setting takes.
const MAX_SETTING_CHARS: usize = 4096;

fn reason(raw: &str) -> Result<String, InvalidArgument> {
    Ok(api::reason(raw)?.to_owned())
}

/// A store setting's text fields: bounded, no control characters (the message never
/// quotes the value: a connection string carries a secret).
fn store_setting(
    connection_string: String,
    container: String,
) -> Result<StoreSetting, InvalidArgument> {
    api::text("connection_string", &connection_string, MAX_SETTING_CHARS)?;
    api::text("container", &container, MAX_SETTING_CHARS)?;
    Ok(StoreSetting {
        connection_string,
        container,
    })
}

fn limit<T: TryFrom<i32>>(raw: i32) -> Result<T, InvalidArgument> {
    T::try_from(raw).map_err(|_| InvalidArgument::new("limit", "must not be negative"))
}

impl TryFrom<pb::ArchiveJobRequest> for ArchiveNow {
    type Error = InvalidArgument;

    fn try_from(request: pb::ArchiveJobRequest) -> Result<Self, InvalidArgument> {
        let compression = match pb::Compression::try_from(request.compression) {
            Ok(pb::Compression::Unspecified | pb::Compression::Zstd) => Compression::Zstd,
            Ok(pb::Compression::Gzip) => Compression::Gzip,
            Err(_) => return Err(InvalidArgument::new("compression", "unknown value")),
        };
        Ok(Self {
            job_id: api::id("job_id", &request.job_id)?,
            reason: reason(&request.reason)?,
            compression,
            request_id: RequestId::parse(&request.request_id)?,
        })
    }
}

impl TryFrom<pb::DeleteJobRequest> for DeleteJob {
    type Error = InvalidArgument;

    fn try_from(request: pb::DeleteJobRequest) -> Result<Self, InvalidArgument> {
        Ok(Self {
            job_id: api::id("job_id", &request.job_id)?,
            reason: reason(&request.reason)?,
            request_id: RequestId::parse(&request.request_id)?,
        })
    }
}

impl TryFrom<pb::RestoreJobRequest> for RestoreJob {
    type Error = InvalidArgument;

    fn try_from(request: pb::RestoreJobRequest) -> Result<Self, InvalidArgument> {
        let trigger = match pb::RestoreTrigger::try_from(request.trigger) {
            Ok(pb::RestoreTrigger::User) => Trigger::User,
            Ok(pb::RestoreTrigger::Resume) => Trigger::Resume,
            Ok(pb::RestoreTrigger::Retry) => Trigger::Retry,
            Ok(pb::RestoreTrigger::Admin) => Trigger::Admin,
            Ok(pb::RestoreTrigger::Unspecified) | Err(_) => {
                return Err(InvalidArgument::new(
                    "trigger",
                    "is required (USER, RESUME, RETRY or ADMIN)",
                ));
            }
        };
        Ok(Self {
            job_id: api::id("job_id", &request.job_id)?,
            trigger,
        })
    }
}

impl TryFrom<pb::ListJobArchivesRequest> for ListJobs {
    type Error = InvalidArgument;

    fn try_from(request: pb::ListJobArchivesRequest) -> Result<Self, InvalidArgument> {
        let archived = match pb::ArchiveState::try_from(request.state) {
            Ok(pb::ArchiveState::Unspecified) => None,
            Ok(pb::ArchiveState::Hot) => Some(false),
            Ok(pb::ArchiveState::Archived) => Some(true),
            Err(_) => return Err(InvalidArgument::new("state", "unknown archive state")),
        };
        Ok(Self {
            archived,
            after: api::parse_page_token(&request.page_token)?,
            limit: api::page_size(request.page_size)?,
        })
    }
}

impl TryFrom<pb::ArchiveEligibleJobsRequest> for ArchiveDue {
    type Error = InvalidArgument;

    fn try_from(request: pb::ArchiveEligibleJobsRequest) -> Result<Self, InvalidArgument> {
        Ok(Self {
            reason: reason(&request.reason)?,
            limit: limit(request.limit)?,
        })
    }
}

impl TryFrom<pb::SetArchiveStoreRequest> for SetStore {
    type Error = InvalidArgument;

    fn try_from(request: pb::SetArchiveStoreRequest) -> Result<Self, InvalidArgument> {
        Ok(Self {
            reason: reason(&request.reason)?,
            request_id: RequestId::parse(&request.request_id)?,
            setting: store_setting(request.connection_string, request.container)?,
        })
    }
}

impl TryFrom<pb::UpdateArchiveStoreCredentialRequest> for UpdateStoreCredential {
    type Error = InvalidArgument;

    fn try_from(request: pb::UpdateArchiveStoreCredentialRequest) -> Result<Self, InvalidArgument> {
        if request.version < 1 {
            return Err(InvalidArgument::new(
                "version",
                "must be a store version (1 or more)",
            ));
        }
        Ok(Self {
            version: request.version,
            reason: reason(&request.reason)?,
            setting: store_setting(request.connection_string, request.container)?,
        })
    }
}

impl TryFrom<pb::MigrateArchivesRequest> for MigrateArchives {
    type Error = InvalidArgument;

    fn try_from(request: pb::MigrateArchivesRequest) -> Result<Self, InvalidArgument> {
        let mode = match pb::MoveMode::try_from(request.mode) {
            Ok(pb::MoveMode::DryRun) => MoveMode::DryRun,
            Ok(pb::MoveMode::Live) => MoveMode::Live,
            Ok(pb::MoveMode::Unspecified) | Err(_) => {
                return Err(InvalidArgument::new(
                    "mode",
                    "is required (MOVE_MODE_DRY_RUN or MOVE_MODE_LIVE)",
                ));
            }
        };
        let limit: u64 = limit(request.limit)?;
        Ok(Self {
            mode,
            reason: reason(&request.reason)?,
            limit: (limit > 0).then_some(limit),
        })
    }
}

impl TryFrom<pb::DestroyTenantKeysRequest> for DestroyTenantKeys {
    type Error = InvalidArgument;

    fn try_from(request: pb::DestroyTenantKeysRequest) -> Result<Self, InvalidArgument> {
        let tenant_id = api::confirmed(
            ("tenant_id", &request.tenant_id),
            ("confirm_tenant_id", &request.confirm_tenant_id),
            MAX_TENANT_CHARS,
        )?;
        Ok(Self {
            tenant_id: tenant_id.to_owned(),
            reason: reason(&request.reason)?,
        })
    }
}

impl TryFrom<pb::VerifyArchivesRequest> for VerifyArchives {
    type Error = InvalidArgument;

    fn try_from(request: pb::VerifyArchivesRequest) -> Result<Self, InvalidArgument> {
        let store_version = match request.store_version {
            0 => None,
            n if n > 0 => Some(n),
            _ => {
                return Err(InvalidArgument::new(
                    "store_version",
                    "must not be negative (0 sweeps every version)",
                ));
            }
        };
        Ok(Self {
            store_version,
            sampling: Sampling::parse(request.sample_percent, request.byte_budget)?,
            reason: reason(&request.reason)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn field_of<T: std::fmt::Debug>(result: Result<T, InvalidArgument>) -> &'static str {
        result.expect_err("refused").field
    }

    #[test]
    fn an_archive_request_names_the_field_it_refuses() {
        let job = Uuid::nil().to_string();
        let archive = |edit: fn(&mut pb::ArchiveJobRequest)| {
            let mut request = pb::ArchiveJobRequest {
                job_id: job.clone(),
                reason: "now".into(),
                ..Default::default()
            };
            edit(&mut request);
            ArchiveNow::try_from(request)
        };
        assert!(archive(|_| {}).is_ok());
        assert_eq!(field_of(archive(|r| r.job_id = "job-1".into())), "job_id");
        assert_eq!(field_of(archive(|r| r.reason = " ".into())), "reason");
        assert_eq!(field_of(archive(|r| r.reason = "a\u{0}b".into())), "reason");
        assert_eq!(field_of(archive(|r| r.compression = 9)), "compression");
        assert_eq!(
            field_of(archive(|r| r.request_id = "has space".into())),
            "request_id"
        );
    }

    #[test]
    fn each_other_request_names_the_field_it_refuses() {
        let restore = RestoreJob::try_from(pb::RestoreJobRequest {
            job_id: Uuid::nil().to_string(),
            trigger: 0,
        });
        assert_eq!(field_of(restore), "trigger");
        let list = ListJobs::try_from(pb::ListJobArchivesRequest {
            state: 7,
            ..Default::default()
        });
        assert_eq!(field_of(list), "state");
        let forged = ListJobs::try_from(pb::ListJobArchivesRequest {
            page_token: "forged".into(),
            ..Default::default()
        });
        assert_eq!(field_of(forged), "page_token");
        let due = ArchiveDue::try_from(pb::ArchiveEligibleJobsRequest {
            limit: -1,
            reason: "catch up".into(),
        });
        assert_eq!(field_of(due), "limit");
        let migrate = MigrateArchives::try_from(pb::MigrateArchivesRequest {
            mode: 0,
            reason: "one store".into(),
            limit: 0,
        });
        assert_eq!(field_of(migrate), "mode");
        let update = UpdateStoreCredential::try_from(pb::UpdateArchiveStoreCredentialRequest {
            version: 0,
            connection_string: "memory://x".into(),
            container: String::new(),
            reason: "rotate".into(),
        });
        assert_eq!(field_of(update), "version");
        let store = SetStore::try_from(pb::SetArchiveStoreRequest {
            connection_string: "memory://x".into(),
            container: "a\u{0}".into(),
            reason: "new".into(),
            request_id: String::new(),
        });
        assert_eq!(field_of(store), "container");
    }

    #[test]
    fn a_live_move_without_a_limit_moves_everything() {
        let migrate = MigrateArchives::try_from(pb::MigrateArchivesRequest {
            mode: pb::MoveMode::Live.into(),
            reason: "one store".into(),
            limit: 0,
        })
        .unwrap();
        assert_eq!((migrate.mode, migrate.limit), (MoveMode::Live, None));
    }
}
