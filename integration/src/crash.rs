//! The crash matrix's dice and tally: how many SIGKILLs to inject
//! (`STOWAGE_CRASH_INJECTIONS`, a handful in `deploy/dev/test`, hundreds from
//! `deploy/dev/crash`), a seeded generator for when each one lands (`STOWAGE_CRASH_SEED`
//! replays a run), and a table of where they landed and what was checked after each.

use std::{collections::BTreeMap, path::Path, time::Duration};

use stowage_shared::blob::staging::staged_name;

/// Kills to inject and where each lands.
pub struct Injections {
    pub count: usize,
    pub seed: u64,
    state: u64,
    /// Kills by the phase they landed in.
    landed: BTreeMap<String, usize>,
}

impl Injections {
    /// `STOWAGE_CRASH_INJECTIONS` kills (else `default`), seeded by `STOWAGE_CRASH_SEED`
    /// (else the clock; the seed is printed so a failure can be replayed).
    pub fn from_env(default: usize) -> Self {
        let count = std::env::var("STOWAGE_CRASH_INJECTIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default);
        let seed = std::env::var("STOWAGE_CRASH_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("crash matrix: {count} injections, STOWAGE_CRASH_SEED={seed}");
        Self {
            count,
            seed,
            state: seed | 1,
            landed: BTreeMap::new(),
        }
    }

    /// A number below `bound` (xorshift64*).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound.max(1)
    }

    /// A delay up to `most`.
    pub fn delay(&mut self, most: Duration) -> Duration {
        Duration::from_millis(self.below(most.as_millis() as u64 + 1))
    }

    /// Records that a kill landed in `phase`.
    pub fn landed(&mut self, phase: impl Into<String>) {
        *self.landed.entry(phase.into()).or_default() += 1;
    }

    pub fn injected(&self) -> usize {
        self.landed.values().sum()
    }

    /// The table of where the kills landed, with `checks` (what was verified after them).
    pub fn report(&self, service: &str, checks: &[(&str, String)]) -> String {
        let mut table = format!(
            "crash matrix, {service} (seed {}): {} kills\n| where the kill landed | kills |\n|---|---|\n",
            self.seed,
            self.injected()
        );
        for (phase, kills) in &self.landed {
            table.push_str(&format!("| {phase} | {kills} |\n"));
        }
        table.push_str("| what was checked after the kills | result |\n|---|---|\n");
        for (check, result) in checks {
            table.push_str(&format!("| {check} | {result} |\n"));
        }
        table
    }
}

/// Files under `dir` (at any depth) that a `file` store's interrupted upload left: its
/// staging files are named `<object>#<n>`.
pub fn staging_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                staging_files(&path)
            } else {
                let name = entry.file_name().to_string_lossy().into_owned();
                usize::from(staged_name(&name).is_some())
            }
        })
        .sum()
}

/// Waits up to `patience` for `count` to reach 0 (a sweep at work); what it is at the end.
pub async fn swept_to(count: impl Fn() -> usize, patience: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let left = count();
        if left == 0 || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
