//! The browser harness: the dashboard page in `integration/browser` served on a loopback
//! port, and its driver (`run.mjs`, playwright-core on Debian's Chromium) run against it,
//! returning what the page saw. `deploy/dev/test` installs what this needs.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use axum::{Router, http::header, response::IntoResponse, routing::get};
use tokio::{net::TcpListener, task::JoinHandle};

/// `integration/browser`: the page's sources, its bundle and the driver.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// The Chromium binary: `STOWAGE_TEST_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    std::env::var_os("STOWAGE_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails with what to install when the bundle, the driver's packages or Chromium are
/// missing.
pub fn check_installed() -> Result<()> {
    let dir = dir();
    let fix = "deploy/dev/test installs them (ensure_browser in deploy/dev/lib.sh); by hand: \
               apt-get install -y chromium, then `npm ci && npm run build` in integration/browser";
    if !dir.join("dist/app.js").is_file() {
        bail!("{} is missing: {fix}", dir.join("dist/app.js").display());
    }
    if !dir.join("node_modules/playwright-core").is_dir() {
        bail!(
            "playwright-core is not installed in {}: {fix}",
            dir.display()
        );
    }
    if !chromium().is_file() {
        bail!("no Chromium at {}: {fix}", chromium().display());
    }
    Ok(())
}

/// The page served on a loopback port; stops when dropped.
pub struct PageServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl PageServer {
    /// Binds now, so the origin is known before the services are configured with it.
    pub async fn start() -> Result<Self> {
        let dir = dir();
        let index = tokio::fs::read_to_string(dir.join("index.html")).await?;
        let bundle = tokio::fs::read_to_string(dir.join("dist/app.js")).await?;
        let app = Router::new()
            .route(
                "/",
                get(move || async move { ([(header::CONTENT_TYPE, "text/html")], index) }),
            )
            .route(
                "/app.js",
                get(move || async move {
                    ([(header::CONTENT_TYPE, "text/javascript")], bundle).into_response()
                }),
            );
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, task })
    }

    /// The page's origin, as a service's `grpc.cors_origins` names it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the driver printed: the browser's version, its console and the page's report.
#[derive(Debug)]
pub struct Visit {
    pub chromium: String,
    pub console: Vec<String>,
    pub report: serde_json::Value,
}

/// Opens `url` in headless Chromium and waits (at most `timeout`) for the page to finish.
pub async fn visit(url: &str, timeout: Duration) -> Result<Visit> {
    let dir = dir();
    let child = tokio::process::Command::new("node")
        .arg(dir.join("run.mjs"))
        .arg(url)
        .arg(timeout.as_millis().to_string())
        .current_dir(&dir)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting node (is node.js installed?)")?;
    let output = tokio::time::timeout(timeout + Duration::from_secs(30), child.wait_with_output())
        .await
        .context("the browser driver did not exit")??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("the browser driver failed ({}): {stderr}", output.status);
    }
    let line = String::from_utf8_lossy(&output.stdout);
    let mut printed: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("the driver printed no report: {line:?}; stderr: {stderr}"))?;
    Ok(Visit {
        chromium: printed["chromium"].as_str().unwrap_or_default().to_owned(),
        console: serde_json::from_value(printed["console"].take()).unwrap_or_default(),
        report: printed["report"].take(),
    })
}
