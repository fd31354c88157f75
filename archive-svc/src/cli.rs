//! Client subcommands: restore a job with a live progress bar, archive one now (admins),
//! and seed demo data.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use stowage_proto::archive::v1::{
    self as pb, archive_admin_service_client::ArchiveAdminServiceClient,
    archive_service_client::ArchiveServiceClient,
};
use stowage_shared::{
    auth::Role,
    cli::{ClientArgs, authorized, connect, local_server},
};

use crate::config::Config;

fn default_server(config: &Config) -> String {
    local_server(&config.common.grpc)
}

/// `archive-svc restore --job ID`: restores and shows progress until done.
pub async fn restore(config: &Config, client: &ClientArgs, job: &str) -> anyhow::Result<()> {
    let (channel, authorization) = connect(
        client,
        &default_server(config),
        &config.common.auth,
        Role::Member,
    )
    .await?;
    let request = pb::RestoreJobRequest {
        job_id: job.to_owned(),
        trigger: pb::RestoreTrigger::User.into(),
    };
    let mut stream = ArchiveServiceClient::new(channel)
        .restore_job(authorized(request, &authorization)?)
        .await?
        .into_inner();
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} {msg:10} [{bar:40}] {pos}/{len} rows {elapsed}")?
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    while let Some(progress) = stream.message().await? {
        bar.set_length(progress.rows_total.max(0) as u64);
        bar.set_position(progress.rows_done.max(0) as u64);
        bar.set_message(format!("{:?}", progress.phase()).to_lowercase());
        if progress.already_hot {
            bar.finish_with_message("job is already hot; nothing to restore");
            return Ok(());
        }
    }
    bar.finish_with_message("restored");
    Ok(())
}

/// `archive-svc archive --job ID --reason …`: archives one job now (SUPER_ADMIN).
pub async fn archive(
    config: &Config,
    client: &ClientArgs,
    job: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let (channel, authorization) = connect(
        client,
        &default_server(config),
        &config.common.auth,
        Role::SuperAdmin,
    )
    .await?;
    let spinner = ProgressBar::new_spinner().with_message(format!("archiving {job}"));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let request = pb::ArchiveJobRequest {
        job_id: job.to_owned(),
        reason: reason.to_owned(),
        compression: pb::Compression::Zstd.into(),
        request_id: String::new(),
    };
    let archived = ArchiveAdminServiceClient::new(channel)
        .archive_job(authorized(request, &authorization)?)
        .await?
        .into_inner();
    spinner.finish_with_message(format!(
        "archived {} rows to {} ({} bytes)",
        archived.scan_items + archived.file_records,
        archived.blob_key,
        archived.stored_bytes
    ));
    Ok(())
}
