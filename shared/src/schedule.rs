//! Work on a cron schedule, as both services run it (the archive tick, integrity sweeps):
//! expressions of five fields (minute first) or six (second first), in UTC, a loop that
//! runs a tick at every occurrence until the drain starts, and the advisory lock that lets
//! one replica of all those ticking do an occurrence's work.

use std::{
    fmt::{Debug, Display},
    future::Future,
};

use chrono::Utc;
use croner::{
    Cron,
    parser::{CronParser, Seconds},
};

use crate::{
    db::{DbError, Pool, lock::AdvisoryLock},
    shutdown::Drain,
};

/// Parses `text`, the value of the setting `setting` (named in the error).
pub fn parse_cron(setting: &str, text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(text)
        .map_err(|e| format!("{setting} {text:?}: {e}"))
}

/// Runs `tick` at every occurrence of `cron` until the drain starts, and logs what each
/// occurrence did (`None`: another replica ran it, see [`exclusively`]); `what` names the
/// work in the logs.
pub async fn on_schedule<F, Fut, T, E>(cron: &Cron, what: &str, drain: &Drain, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
    T: Debug,
    E: Display,
{
    loop {
        let Some(next) = cron.find_next_occurrence(&Utc::now(), false).ok() else {
            tracing::error!(what, "the schedule has no next occurrence; stopping it");
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tracing::info!(%next, what, "next occurrence");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = drain.draining() => return,
        }
        log_occurrence(what, tick().await);
    }
}

/// Runs `work` on one replica of all that try at once: holding the advisory lock `lock`
/// (on a connection of `pool`, so it dies with a crashed replica); `None` when another
/// replica holds it.
pub async fn exclusively<T, E, Fut>(
    pool: &Pool,
    lock: &str,
    work: impl FnOnce() -> Fut,
) -> Result<Option<T>, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: From<DbError>,
{
    let client = pool.get().await.map_err(DbError::from)?;
    let Some(held) = AdvisoryLock::try_acquire(client, lock).await? else {
        return Ok(None);
    };
    let done = work().await;
    held.release().await;
    done.map(Some)
}

/// Logs what one occurrence of the scheduled `what` did ([`exclusively`]'s outcome).
fn log_occurrence<T: Debug, E: Display>(what: &str, outcome: Result<Option<T>, E>) {
    match outcome {
        Ok(Some(done)) => tracing::info!(what, ?done, "scheduled work done"),
        Ok(None) => tracing::info!(what, "another replica ran this occurrence"),
        Err(error) => tracing::error!(what, %error, "scheduled work failed"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    #[test]
    fn five_fields_start_at_the_minute_and_six_at_the_second() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let daily = parse_cron("schedule", "0 3 * * *").unwrap();
        let next = daily.find_next_occurrence(&at("2026-11-23T02:59:59Z"), false);
        assert_eq!(next.unwrap(), at("2026-11-23T03:00:00Z"));
        let every_ten = parse_cron("schedule", "*/10 * * * * *").unwrap();
        let next = every_ten.find_next_occurrence(&at("2026-11-23T02:59:51Z"), false);
        assert_eq!(next.unwrap(), at("2026-11-23T03:00:00Z"));
        let error = parse_cron("archive.schedule", "soon").unwrap_err();
        assert!(error.starts_with("archive.schedule \"soon\""), "{error}");
    }
}
