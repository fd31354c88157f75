//! A private PostgreSQL cluster for one test, started with the system's `initdb` and
//! `pg_ctl` in a temporary directory on a free loopback port (as `deploy/dev/lib.sh` does
//! under `target/`), optionally with `ssl = on` and a certificate the test made; stopped
//! and removed when dropped.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

/// The newest `initdb` and its `pg_ctl`: PATH first, then Debian's `/usr/lib/postgresql`.
pub fn find_tools() -> Option<(PathBuf, PathBuf)> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    // newest major version first
    debian.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    dirs.extend(debian);
    dirs.into_iter().find_map(|dir| {
        let (initdb, pg_ctl) = (dir.join("initdb"), dir.join("pg_ctl"));
        (initdb.is_file() && pg_ctl.is_file()).then_some((initdb, pg_ctl))
    })
}

/// Server TLS material in PEM.
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A running private cluster; trust authentication for user `postgres`.
pub struct PgCluster {
    pub port: u16,
    dir: PathBuf,
    pg_ctl: PathBuf,
    owner: Option<String>,
}

impl PgCluster {
    /// Starts a cluster, or `None` when no `initdb` is installed.
    pub fn start(tls: Option<&ServerTls>) -> Result<Option<Self>> {
        Self::start_with(tls, "")
    }

    /// Like [`PgCluster::start`], with `settings` (lines of `postgresql.conf`) added.
    pub fn start_with(tls: Option<&ServerTls>, settings: &str) -> Result<Option<Self>> {
        let Some((initdb, pg_ctl)) = find_tools() else {
            return Ok(None);
        };
        // initdb and pg_ctl refuse to run as root
        let owner = is_root().then(|| {
            std::env::var("STOWAGE_DEV_PG_USER").unwrap_or_else(|_| "postgres".to_owned())
        });
        let dir = std::env::temp_dir().join(format!("stowage-pg-{}", uuid::Uuid::new_v4()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir)?;
        let cluster = Self {
            port: crate::process::free_port()?,
            dir,
            pg_ctl,
            owner,
        };
        cluster.chown(&cluster.dir)?;
        cluster.run(
            &initdb,
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-locale".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            cluster.port,
            cluster.dir.display()
        );
        if let Some(tls) = tls {
            let (cert, key) = (data.join("server.crt"), data.join("server.key"));
            std::fs::write(&cert, &tls.cert_pem)?;
            std::fs::write(&key, &tls.key_pem)?;
            set_private(&key)?;
            cluster.chown(&cert)?;
            cluster.chown(&key)?;
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        conf.push_str(settings);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))?;
        std::io::Write::write_all(&mut file, conf.as_bytes())?;
        let log = cluster.dir.join("pg.log");
        // the log file must be the owner's to write
        std::fs::write(&log, "")?;
        cluster.chown(&log)?;
        let started = cluster.run(
            &cluster.pg_ctl,
            &[
                "start".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
            ],
        );
        if let Err(error) = started {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("{error:#}\n{log}");
        }
        Ok(Some(cluster))
    }

    /// Writes `contents` to `name` in the cluster's directory (removed with it).
    pub fn write_file(&self, name: &str, contents: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, contents)?;
        Ok(path)
    }

    /// A URL for database `postgres` on this cluster at `host`, with `query` appended.
    pub fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }

    fn chown(&self, path: &Path) -> Result<()> {
        if let Some(owner) = &self.owner {
            let status = Command::new("chown").arg(owner).arg(path).status()?;
            if !status.success() {
                bail!("chown {owner} {} failed", path.display());
            }
        }
        Ok(())
    }

    /// Runs `program` as the cluster's owner.
    fn run(&self, program: &Path, args: &[&OsStr]) -> Result<()> {
        let mut command = match &self.owner {
            Some(owner) => {
                let mut command = Command::new("runuser");
                command.args(["-u", owner, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        let output = command
            .args(args)
            .current_dir("/")
            .output()
            .with_context(|| format!("running {}", program.display()))?;
        if !output.status.success() {
            bail!(
                "{} failed: {}{}",
                program.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.run(
            &self.pg_ctl,
            &[
                "stop".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn set_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}
