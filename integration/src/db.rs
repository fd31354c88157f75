//! Per-test databases. The first test to need one creates a template database with both
//! services' migrations applied, named after their checksums; every test then clones it
//! (`CREATE DATABASE … TEMPLATE`), which takes milliseconds. Databases are dropped when
//! the [`TestDb`] is.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    net::SocketAddr,
};

use anyhow::{Context, Result, bail};
use secrecy::SecretString;
use stowage_shared::config::DatabaseConfig;
use tokio_postgres::NoTls;

/// The `count(*)` (or any bigint) that `sql` selects.
pub async fn count(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<i64> {
    Ok(client.query_one(sql, params).await?.try_get(0)?)
}

/// The admin URL tests connect with.
pub fn admin_url() -> Result<String> {
    std::env::var("DATABASE_URL").context(
        "DATABASE_URL is not set: run the tests through deploy/dev/test, or point DATABASE_URL \
         at a PostgreSQL server where you may create databases",
    )
}

/// `admin` with its database replaced by `database`.
pub fn url_for(admin: &str, database: &str) -> Result<String> {
    let (user, host, rest) = split_url(admin)?;
    let query = rest.split_once('?').map(|(_, query)| format!("?{query}"));
    Ok(format!(
        "{user}{host}/{database}{}",
        query.unwrap_or_default()
    ))
}

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| "connecting to PostgreSQL")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin: String,
}

impl TestDb {
    /// A fresh database with both schemas migrated.
    pub async fn migrated() -> Result<Self> {
        Self::migrated_on(&admin_url()?).await
    }

    /// A fresh database with both schemas migrated, on the server of `admin` (a URL of
    /// its database `postgres`).
    pub async fn migrated_on(admin: &str) -> Result<Self> {
        let template = ensure_template(admin).await?;
        Self::create(admin, Some(&template)).await
    }

    /// A fresh, empty database.
    pub async fn empty() -> Result<Self> {
        let admin = admin_url()?;
        Self::create(&admin, None).await
    }

    async fn create(admin: &str, template: Option<&str>) -> Result<Self> {
        let name = format!("stowage_test_{}", uuid::Uuid::new_v4().simple());
        let client = connect(admin).await?;
        let template = template
            .map(|t| format!(" template {t}"))
            .unwrap_or_default();
        client
            .batch_execute(&format!("create database {name}{template}"))
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(Self {
            url: url_for(admin, &name)?,
            name,
            admin: admin.to_owned(),
        })
    }

    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: SecretString::from(self.url.clone()),
            ..DatabaseConfig::default()
        }
    }

    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        connect(&self.url).await
    }

    /// The TCP address of the PostgreSQL server this database lives on (to put a fault
    /// relay in front of it).
    pub async fn server(&self) -> Result<SocketAddr> {
        let (_, authority, _) = split_url(&self.url)?;
        if authority.is_empty() || authority.starts_with('[') {
            bail!("the database URL names no plain TCP host");
        }
        let host_port = match authority.rsplit_once(':') {
            Some((_, port)) if port.parse::<u16>().is_ok() => authority.to_owned(),
            _ => format!("{authority}:5432"),
        };
        tokio::net::lookup_host(&host_port)
            .await?
            .next()
            .with_context(|| format!("{host_port} resolves to no address"))
    }

    /// [`TestDb::config`], reached through `relay` (a [`crate::proxy::TcpProxy`] in front
    /// of [`TestDb::server`]).
    pub fn config_through(&self, relay: SocketAddr) -> Result<DatabaseConfig> {
        let (scheme_and_user, _, rest) = split_url(&self.url)?;
        Ok(DatabaseConfig {
            url: SecretString::from(format!("{scheme_and_user}{relay}{rest}")),
            ..DatabaseConfig::default()
        })
    }
}

/// `postgres://user@host:port/db?q` as (`postgres://user@`, `host:port`, `/db?q`); the
/// host is empty when the URL names none (a socket given in the query).
fn split_url(url: &str) -> Result<(&str, &str, &str)> {
    let scheme_end = url.find("://").context("the database URL has no scheme")? + 3;
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |i| scheme_end + i);
    let host_start = url[scheme_end..authority_end]
        .rfind('@')
        .map_or(scheme_end, |i| scheme_end + i + 1);
    Ok((
        &url[..host_start],
        &url[host_start..authority_end],
        &url[authority_end..],
    ))
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop can't await; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(client) = connect(&admin).await {
                        let _ = client
                            .batch_execute(&format!("drop database if exists {name} with (force)"))
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// Both services' schemas, as the template database holds them.
const SCHEMAS: [stowage_shared::db::Schema; 2] =
    [migration_svc::db::SCHEMA, archive_svc::db::SCHEMA];

/// Creates the migrated template once per set of migrations; safe to race.
async fn ensure_template(admin: &str) -> Result<String> {
    let mut hasher = DefaultHasher::new();
    for schema in SCHEMAS {
        for migration in schema.migrations().get_migrations() {
            (migration.name(), migration.checksum()).hash(&mut hasher);
        }
    }
    let template = format!("stowage_template_{:016x}", hasher.finish());
    let client = connect(admin).await?;
    client
        .execute(
            "select pg_advisory_lock(hashtext('stowage.test.template'))",
            &[],
        )
        .await?;
    let exists = client
        .query_opt("select 1 from pg_database where datname = $1", &[&template])
        .await?
        .is_some();
    if !exists {
        let building = format!("{template}_building");
        client
            .batch_execute(&format!("drop database if exists {building} with (force)"))
            .await?;
        client
            .batch_execute(&format!("create database {building}"))
            .await?;
        let config = DatabaseConfig {
            url: SecretString::from(url_for(admin, &building)?),
            ..DatabaseConfig::default()
        };
        let pool = stowage_shared::db::pool(&config)?;
        for schema in SCHEMAS {
            schema.migrate(&pool).await?;
        }
        pool.close();
        drop(pool);
        // Closed connections leave the server a moment later; renaming needs them gone.
        let rename = format!("alter database {building} rename to {template}");
        let mut attempts = 0;
        while let Err(error) = client.batch_execute(&rename).await {
            attempts += 1;
            anyhow::ensure!(attempts < 100, "renaming the template database: {error}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    client
        .execute(
            "select pg_advisory_unlock(hashtext('stowage.test.template'))",
            &[],
        )
        .await?;
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            url_for("postgres://u@h:5432/postgres", "x").unwrap(),
            "postgres://u@h:5432/x"
        );
        assert_eq!(url_for("postgres://u@h", "x").unwrap(), "postgres://u@h/x");
        assert_eq!(
            url_for("postgres://u@h/db?sslmode=disable", "x").unwrap(),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
