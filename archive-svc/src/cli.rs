//! Client subcommands: restore a job (a progress bar on a terminal) and archive one now
//! (admins). Each ends with a summary line (or, with `--output json`, one JSON object) on
//! stdout, whether or not stdout is a terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use stowage_proto::archive::v1::{
    self as pb, archive_admin_service_client::ArchiveAdminServiceClient,
    archive_service_client::ArchiveServiceClient,
};
use stowage_shared::{
    auth::Role,
    cli::{ClientArgs, authorized, connect},
};

use crate::config::Config;

/// A bar drawn on a terminal only (hidden for scripts and `--output json`).
fn progress(client: &ClientArgs, style: Option<&str>) -> anyhow::Result<ProgressBar> {
    if !client.output.progress() {
        return Ok(ProgressBar::hidden());
    }
    let bar = match style {
        Some(template) => ProgressBar::new(0)
            .with_style(ProgressStyle::with_template(template)?.progress_chars("=> ")),
        None => ProgressBar::new_spinner(),
    };
    bar.enable_steady_tick(Duration::from_millis(120));
    Ok(bar)
}

/// `archive-svc restore --job ID`: restores and shows progress until done.
pub async fn restore(config: &Config, client: &ClientArgs, job: &str) -> anyhow::Result<()> {
    let (channel, authorization) = connect(client, &config.common, Role::Member).await?;
    let request = pb::RestoreJobRequest {
        job_id: job.to_owned(),
        trigger: pb::RestoreTrigger::User.into(),
    };
    let mut stream = ArchiveServiceClient::new(channel)
        .restore_job(authorized(request, &authorization)?)
        .await?
        .into_inner();
    let bar = progress(
        client,
        Some("{spinner} {msg:10} [{bar:40}] {pos}/{len} rows {elapsed}"),
    )?;
    let mut last = pb::RestoreProgress::default();
    while let Some(progress) = stream.message().await? {
        bar.set_length(progress.rows_total.max(0) as u64);
        bar.set_position(progress.rows_done.max(0) as u64);
        bar.set_message(format!("{:?}", progress.phase()).to_lowercase());
        let hot = progress.already_hot;
        last = progress;
        if hot {
            break;
        }
    }
    bar.finish_and_clear();
    let summary = if last.already_hot {
        format!("job {job} is already hot; nothing restored")
    } else {
        format!(
            "restored job {job}: {} rows, {} bytes read",
            last.rows_done, last.bytes_read
        )
    };
    client.output.finish(
        &summary,
        &json!({
            "job_id": job,
            "restored": !last.already_hot,
            "already_hot": last.already_hot,
            "rows": last.rows_done,
            "bytes_read": last.bytes_read,
        }),
    );
    Ok(())
}

/// `archive-svc archive --job ID --reason …`: archives one job now (SUPER_ADMIN).
pub async fn archive(
    config: &Config,
    client: &ClientArgs,
    job: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let (channel, authorization) = connect(client, &config.common, Role::SuperAdmin).await?;
    let spinner = progress(client, None)?.with_message(format!("archiving {job}"));
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
    spinner.finish_and_clear();
    client.output.finish(
        &format!(
            "archived job {job}: {} rows to {} ({} bytes)",
            archived.scan_items + archived.file_records,
            archived.blob_key,
            archived.stored_bytes
        ),
        &json!({
            "job_id": archived.job_id,
            "blob_key": archived.blob_key,
            "format": archived.format,
            "scan_items": archived.scan_items,
            "file_records": archived.file_records,
            "stored_bytes": archived.stored_bytes,
            "plaintext_bytes": archived.plaintext_bytes,
        }),
    );
    Ok(())
}
