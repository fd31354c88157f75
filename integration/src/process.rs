//! Service binaries as real processes, for what only a process shows: signals, exit codes
//! and `kill -9` at any instant. A configuration file is written for the test's database
//! and keys, and the process is started on a free loopback port and waited for.

use std::{net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use stowage_shared::config::Common;
use tonic::transport::{Channel, Endpoint};

/// Path of a workspace binary next to the running test executable (`target/<profile>/`).
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("the test executable has no profile directory")?;
    let binary = profile_dir.join(name);
    if !binary.exists() {
        bail!(
            "{} is missing: build it first (`cargo build --bins`; deploy/dev/test does)",
            binary.display()
        );
    }
    Ok(binary)
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A service's configuration file: the test's database, auth secret and keys, gRPC on
/// `port`, then `extra` (more TOML sections).
pub fn config_toml(common: &Common, port: u16, extra: &str) -> Result<String> {
    let secret = common
        .auth
        .hs256_secret
        .as_ref()
        .context("the test configuration has no HS256 secret")?;
    let mut keks = String::new();
    for (id, kek) in &common.keys.keks {
        keks.push_str(&format!("{id:?} = {:?}\n", kek.expose_secret()));
    }
    Ok(format!(
        "[database]\nurl = {:?}\n[grpc]\nlisten = \"127.0.0.1:{port}\"\ndrain_timeout = 5\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n[auth]\nhs256_secret = {:?}\n\
         [keys]\nprimary = {:?}\n[keys.keks]\n{keks}{extra}",
        common.database.url.expose_secret(),
        secret.expose_secret(),
        common.keys.primary,
    ))
}

/// How a process is started beyond its configuration file.
#[derive(Debug, Default)]
pub struct Launch {
    /// Where its log lines (stderr) go; the test's own stderr when `None`.
    pub log: Option<PathBuf>,
    /// Environment set for it (`STOWAGE__SECTION__KEY` overlays the file).
    pub env: Vec<(String, String)>,
}

/// A running service binary.
pub struct ServiceProcess {
    pub addr: SocketAddr,
    endpoint: Endpoint,
    child: tokio::process::Child,
    config: PathBuf,
}

impl ServiceProcess {
    /// Starts `binary serve` with `config` and waits (up to 20 s) until it accepts calls.
    pub async fn start(binary: &str, config: &str, port: u16) -> Result<Self> {
        Self::start_with(binary, config, port, Launch::default()).await
    }

    /// [`Self::start`] with its log and environment as `launch` says.
    pub async fn start_with(binary: &str, config: &str, port: u16, launch: Launch) -> Result<Self> {
        let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?;
        Self::spawn(binary, config, port, endpoint, launch).await
    }

    /// [`Self::start`] for a server reached through `endpoint` (a TLS one, say).
    pub async fn start_reached(
        binary: &str,
        config: &str,
        port: u16,
        endpoint: Endpoint,
    ) -> Result<Self> {
        Self::spawn(binary, config, port, endpoint, Launch::default()).await
    }

    async fn spawn(
        binary: &str,
        config: &str,
        port: u16,
        endpoint: Endpoint,
        launch: Launch,
    ) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("stowage-{binary}-{port}.toml"));
        std::fs::write(&path, config)?;
        let stderr = match &launch.log {
            Some(log) => Stdio::from(std::fs::File::create(log)?),
            None => Stdio::inherit(),
        };
        let child = tokio::process::Command::new(workspace_binary(binary)?)
            .arg("--config")
            .arg(&path)
            .arg("serve")
            .envs(launch.env)
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()?;
        let mut process = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            endpoint,
            child,
            config: path,
        };
        for _ in 0..200 {
            if process.connect().await.is_ok() {
                return Ok(process);
            }
            if let Some(status) = process.child.try_wait()? {
                bail!("{binary} exited at start: {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{binary} did not start listening within 20 s")
    }

    pub async fn connect(&self) -> Result<Channel> {
        Ok(self
            .endpoint
            .clone()
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await?)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `INT`, …) with kill(1).
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.pid().context("the process has exited")?.to_string();
        let sent = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()?;
        if !sent.success() {
            bail!("kill -{signal} failed: {sent}");
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        Ok(tokio::time::timeout(timeout, self.child.wait()).await??)
    }

    /// SIGKILL: no drain, no cleanup, whatever it was doing.
    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}
