//! A service under benchmark: its release binary started as a server process of its own
//! (so its memory is its own), with a configuration file the benchmark writes.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use stowage_shared::config::Common;
use tonic::transport::{Channel, Endpoint};

pub struct Server {
    process: tokio::process::Child,
    pub pid: u32,
    pub channel: Channel,
    /// Where the server listens, for more connections.
    pub endpoint: Endpoint,
}

/// The `[database]`, `[grpc]`, `[auth]`, `[keys]` and `[log]` sections for `common`, on a
/// free loopback port; returns them and the port.
pub fn common_config(common: &Common, database_url: &str) -> Result<(String, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let (kek_id, kek) = common.keys.keks.iter().next().context("kek")?;
    let secret = common.auth.hs256_secret.as_ref().context("secret")?;
    let text = format!(
        "[database]\nurl = {database_url:?}\npool_size = 24\n[grpc]\nlisten = \"127.0.0.1:{port}\"\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n[auth]\nhs256_secret = {:?}\n[keys]\nprimary = {kek_id:?}\n[keys.keks]\n\
         {kek_id} = {:?}\n[log]\nfilter = \"warn\"\n",
        secret.expose_secret(),
        kek.expose_secret(),
    );
    Ok((text, port))
}

/// A fresh, empty `target/bench/{name}` directory.
pub fn fresh_root(name: &str) -> Result<PathBuf> {
    let root = std::env::current_dir()?.join("target/bench").join(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    Ok(root)
}

/// Writes `{root}/migration-svc.toml` for a benchmarked migration-svc (32 copies in flight,
/// batches of 64, new runs picked up within 20 ms); returns its path and the port it
/// listens on.
pub fn migration_config(
    common: &Common,
    database_url: &str,
    root: &Path,
) -> Result<(PathBuf, u16)> {
    let (common_toml, port) = common_config(common, database_url)?;
    let config = format!(
        "{common_toml}[migration]\nconcurrency = 32\nbatch_size = 64\npoll_interval = \"20ms\"\n"
    );
    let path = root.join("migration-svc.toml");
    std::fs::write(&path, config)?;
    Ok((path, port))
}

impl Server {
    /// Starts `target/release/{binary} --config {config} serve` and connects to `port`.
    pub async fn start(binary: &str, config: &Path, port: u16, log: &Path) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let path = exe.parent().context("binary directory")?.join(binary);
        if !path.exists() {
            bail!(
                "{} is missing: cargo build --release -p {binary}",
                path.display()
            );
        }
        let process = tokio::process::Command::new(path)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .kill_on_drop(true)
            .spawn()?;
        let pid = process.id().context("server pid")?;
        let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?;
        for _ in 0..100 {
            if let Ok(channel) = endpoint.connect().await {
                return Ok(Self {
                    process,
                    pid,
                    channel,
                    endpoint,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{binary} did not start; see {}", log.display())
    }

    /// Peak resident set size of the server so far, in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        super::peak_rss_mib(&self.pid.to_string())
    }

    /// CPU seconds the server has used so far (user + system).
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command name (which may hold spaces) start at state.
        let after = stat.rsplit_once(')').context("stat")?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields.get(11).context("utime")?.parse::<f64>()?
            + fields.get(12).context("stime")?.parse::<f64>()?;
        Ok(ticks / 100.0)
    }

    /// Resident set size of the server now, in MiB.
    pub fn rss_mib(&self) -> Result<f64> {
        super::status_mib(&self.pid.to_string(), "VmRSS:")
    }

    /// Forgets the peak so far: the next reading covers only what follows.
    pub fn reset_peak_rss(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")?;
        Ok(())
    }

    pub async fn stop(mut self) -> Result<()> {
        self.process.kill().await?;
        Ok(())
    }
}

/// Busy and total CPU time of the whole machine so far, in seconds (all cores).
pub fn machine_cpu() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("/proc/stat")?;
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    Ok(((total - idle) / 100.0, total / 100.0))
}
