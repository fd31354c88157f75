//! PostgreSQL: the connection pool and schema migrations. Each service keeps its tables in
//! its own schema and applies its embedded migrations at start under an advisory lock, so
//! replicas starting together apply them once. Connections use TLS as the URL's `sslmode`
//! says ([`tls`]).

pub mod lock;
pub mod tls;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, PoolError, RecyclingMethod, Runtime};
use secrecy::ExposeSecret;
use tokio_postgres::error::SqlState;
use tonic::Status;

use crate::{api::Page, config::DatabaseConfig};

pub use deadpool_postgres::{GenericClient, Object as Client, Pool, Transaction};

/// The first row of a cached, prepared `sql`, mapped by `map`; `None` when there is none.
pub async fn query_opt_map<T, E>(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    map: impl Fn(&tokio_postgres::Row) -> Result<T, E>,
) -> Result<Option<T>, E>
where
    E: From<tokio_postgres::Error>,
{
    let statement = client.prepare_cached(sql).await?;
    client
        .query_opt(&statement, params)
        .await?
        .as_ref()
        .map(map)
        .transpose()
}

/// Runs a cached, prepared `sql`; the number of rows it changed.
pub async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, params).await
}

/// Whether a read row-locks what it returns for the rest of its transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLock {
    No,
    ForUpdate,
}

/// A condition on `$2` and its value, for [`OwnedRows::page`].
pub type Filter<'a> = (&'a str, &'a (dyn tokio_postgres::types::ToSql + Sync));

/// Which way a keyset page runs through ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdOrder {
    /// Lowest id first.
    Ascending,
    /// Highest id first (newest first, for UUIDv7 ids).
    Descending,
}

/// A table whose rows have a UUID `id` and belong to an owner (an organization, a tenant),
/// read one row at a time: scoped to the owner for a caller, unscoped (`None`) for the
/// service's own work.
pub struct OwnedRows<T, E> {
    /// What a row is called in a NOT_FOUND error: `run`, `job`.
    noun: &'static str,
    table: &'static str,
    columns: &'static str,
    owner_column: &'static str,
    map: fn(&tokio_postgres::Row) -> Result<T, E>,
    /// A row's `id`, the cursor of a page.
    id: fn(&T) -> uuid::Uuid,
}

impl<T, E: From<tokio_postgres::Error>> OwnedRows<T, E> {
    pub const fn new(
        noun: &'static str,
        table: &'static str,
        columns: &'static str,
        owner_column: &'static str,
        map: fn(&tokio_postgres::Row) -> Result<T, E>,
        id: fn(&T) -> uuid::Uuid,
    ) -> Self {
        Self {
            noun,
            table,
            columns,
            owner_column,
            map,
            id,
        }
    }

    /// The row `id`, if it exists and (unless `owner` is `None`) belongs to `owner`.
    pub async fn get(
        &self,
        client: &impl GenericClient,
        owner: Option<&str>,
        id: uuid::Uuid,
        lock: RowLock,
    ) -> Result<Option<T>, E> {
        let locking = match lock {
            RowLock::No => "",
            RowLock::ForUpdate => "for update",
        };
        let sql = format!(
            "select {} from {} where id = $1 and ($2::text is null or {} = $2) {locking}",
            self.columns, self.table, self.owner_column
        );
        query_opt_map(client, &sql, &[&id, &owner], self.map).await
    }

    /// [`get`](Self::get), with a missing row (or another owner's) as [`RowMissing`].
    pub async fn find(
        &self,
        client: &impl GenericClient,
        owner: Option<&str>,
        id: uuid::Uuid,
        lock: RowLock,
    ) -> Result<T, E>
    where
        E: From<RowMissing>,
    {
        let row = self.get(client, owner, id, lock).await?;
        row.ok_or_else(|| RowMissing::new(self.noun, id).into())
    }

    /// One keyset page of `owner`'s rows (every owner's for `None`): at most `limit`, past
    /// `after` in `order` of id, narrowed by `filter`, a condition and the value it reads
    /// as `$2` (`("($2::text is null or state = $2)", &state)`).
    pub async fn page(
        &self,
        client: &impl GenericClient,
        owner: Option<&str>,
        filter: Filter<'_>,
        after: Option<uuid::Uuid>,
        limit: i64,
        order: IdOrder,
    ) -> Result<Page<T, uuid::Uuid>, E> {
        let (past, direction) = match order {
            IdOrder::Ascending => (">", "asc"),
            IdOrder::Descending => ("<", "desc"),
        };
        // Without an owner the condition on $1 holds, so the owner's index is used or
        // not by the statement, never by a value it is given.
        let owned = match owner {
            Some(_) => format!("{} = $1", self.owner_column),
            None => "$1::text is null".to_owned(),
        };
        let sql = format!(
            "select {} from {} where {owned} and {}
               and ($3::uuid is null or id {past} $3)
             order by id {direction} limit $4",
            self.columns, self.table, filter.0
        );
        // One row past the page says whether there is another.
        let past_page = limit + 1;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&owner, filter.1, &after, &past_page];
        let rows = query_map(client, &sql, &params, self.map).await?;
        Ok(Page::from_rows(rows, limit, self.id))
    }

    /// `owner`'s row `id`, read on a connection of its own (a caller's lookup).
    pub async fn owned_by(&self, pool: &Pool, owner: &str, id: uuid::Uuid) -> Result<T, E>
    where
        E: From<RowMissing> + From<PoolError>,
    {
        let client = pool.get().await?;
        self.find(&client, Some(owner), id, RowLock::No).await
    }
}

/// A record looked for by id that is not there, or not the caller's: NOT_FOUND, naming
/// the record (`run 5f0c…`), so the caller learns nothing of other owners' rows.
#[derive(Debug, thiserror::Error)]
#[error("{noun} {id}")]
pub struct RowMissing {
    noun: &'static str,
    id: String,
}

impl RowMissing {
    pub fn new(noun: &'static str, id: impl std::fmt::Display) -> Self {
        Self {
            noun,
            id: id.to_string(),
        }
    }
}

/// Every row of a cached, prepared `sql`, mapped by `map`.
pub async fn query_map<T, E>(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    map: impl Fn(&tokio_postgres::Row) -> Result<T, E>,
) -> Result<Vec<T>, E>
where
    E: From<tokio_postgres::Error>,
{
    let statement = client.prepare_cached(sql).await?;
    client
        .query(&statement, params)
        .await?
        .iter()
        .map(map)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("no database connection available: {0}")]
    Pool(#[from] PoolError),
    #[error("{}", postgres(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database TLS: {0}")]
    Tls(String),
    /// The first connection at startup failed; `tls` names a TLS failure plainly.
    #[error("cannot connect to PostgreSQL at {server} (sslmode={mode}): {}", describe(.tls, .source))]
    Connect {
        server: String,
        mode: tls::SslMode,
        tls: Option<String>,
        source: PoolError,
    },
    #[error("schema migration failed: {0}")]
    Migration(#[from] refinery::Error),
}

/// A PostgreSQL error as its SQLSTATE and message (never its detail, which may quote the
/// values of a row), or as the driver's text for one that is not the server's.
fn postgres(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("database error {}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

fn describe(tls: &Option<String>, source: &PoolError) -> String {
    match tls {
        Some(tls) => format!(
            "TLS handshake failed: {tls} (check sslmode and the root certificate: sslrootcert \
             in database.url or database.ca_file)"
        ),
        None => source.to_string(),
    }
}

impl DbError {
    /// The SQLSTATE of a server-reported error.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            DbError::Postgres(e) => e.code(),
            DbError::Pool(PoolError::Backend(e)) => e.code(),
            _ => None,
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        self.code() == Some(&SqlState::UNIQUE_VIOLATION)
    }

    /// Whether trying again may succeed: lost connections, pool timeouts, serialization
    /// failures and deadlocks.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Pool(_) | DbError::Connect { .. } => true,
            DbError::Postgres(e) if e.is_closed() => true,
            _ => matches!(
                self.code(),
                Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::ADMIN_SHUTDOWN
                    || *c == SqlState::CANNOT_CONNECT_NOW
            ),
        }
    }
}

impl From<DbError> for Status {
    fn from(error: DbError) -> Self {
        tracing::error!(?error, "database error");
        match error {
            DbError::Pool(_) | DbError::Connect { .. } => {
                Status::unavailable("the database is unavailable; try again")
            }
            DbError::Postgres(ref e) if e.is_closed() => {
                Status::unavailable("the database is unavailable; try again")
            }
            DbError::Postgres(_) | DbError::Config(_) | DbError::Tls(_) | DbError::Migration(_) => {
                Status::internal("internal database error")
            }
        }
    }
}

/// The current time at PostgreSQL's precision (microseconds), so a value returned to a
/// caller equals the one stored.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6)
}

/// A pool of connections from `[database]`, TLS as its `sslmode` says. Connects lazily;
/// [`connect`] checks the server answers.
pub fn pool(config: &DatabaseConfig) -> Result<Pool, DbError> {
    let target = tls::Target::parse(config.url.expose_secret(), config.ca_file.as_deref())?;
    build_pool(config, &target)
}

fn build_pool(config: &DatabaseConfig, target: &tls::Target) -> Result<Pool, DbError> {
    let manager = Manager::from_config(
        target.config.clone(),
        target.connector()?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size.max(1))
        .wait_timeout(Some(config.acquire_timeout))
        .create_timeout(Some(config.acquire_timeout))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}

/// A pool as [`pool`], once one connection is open: a server that cannot be reached, or
/// whose certificate is refused, is an error naming the server, the mode and the cause.
pub async fn connect(config: &DatabaseConfig) -> Result<Pool, DbError> {
    let target = tls::Target::parse(config.url.expose_secret(), config.ca_file.as_deref())?;
    let pool = build_pool(config, &target)?;
    if target.root.is_some() && matches!(target.mode, tls::SslMode::Disable | tls::SslMode::Prefer)
    {
        tracing::warn!(
            sslmode = %target.mode,
            "a root certificate is configured but sslmode {} does not check the server's \
             certificate; use sslmode=verify-full",
            target.mode
        );
    }
    match pool.get().await {
        Ok(client) => drop(client),
        Err(source) => {
            return Err(DbError::Connect {
                server: target.server(),
                mode: target.mode,
                tls: tls::tls_cause(&source),
                source,
            });
        }
    }
    tracing::info!(server = %target.server(), sslmode = %target.mode, "connected to PostgreSQL");
    Ok(pool)
}

/// Applies `migrations` to `schema`, creating it if needed. Holds a session advisory lock
/// keyed by the schema name meanwhile, so concurrent starters wait and then find nothing
/// left to do. The history table lives in the schema too.
/// A service's PostgreSQL schema and the migrations that build it.
#[derive(Clone, Copy)]
pub struct Schema {
    pub name: &'static str,
    pub migrations: fn() -> refinery::Runner,
}

/// Declares a service's `SCHEMA`: the PostgreSQL schema `name`, built by the migrations in
/// the calling crate's `migrations/` directory (embedded at compile time).
#[macro_export]
macro_rules! service_schema {
    ($name:literal) => {
        /// The PostgreSQL schema that holds every table of this service, and its migrations.
        pub const SCHEMA: $crate::db::Schema = $crate::db::Schema {
            name: $name,
            migrations: embedded::migrations::runner,
        };

        mod embedded {
            refinery::embed_migrations!("migrations");
        }
    };
}

impl Schema {
    pub fn migrations(&self) -> refinery::Runner {
        (self.migrations)()
    }

    /// Applies the migrations not yet applied (see [`migrate`]).
    pub async fn migrate(&self, pool: &Pool) -> Result<refinery::Report, DbError> {
        migrate(pool, self.name, self.migrations()).await
    }
}

pub async fn migrate(
    pool: &Pool,
    schema: &str,
    migrations: refinery::Runner,
) -> Result<refinery::Report, DbError> {
    if !schema.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(DbError::Config(format!(
            "schema name {schema:?} is not a plain identifier"
        )));
    }
    let mut lock =
        lock::AdvisoryLock::acquire(pool.get().await?, format!("stowage.migrations.{schema}"))
            .await?;
    let result = async {
        let client = lock.client();
        client
            .batch_execute(&format!("create schema if not exists {schema}"))
            .await?;
        let mut migrations = migrations.set_abort_divergent(true).set_abort_missing(true);
        let report = migrations
            .set_migration_table_name(format!("{schema}.refinery_schema_history"))
            .run_async(&mut ***client)
            .await?;
        Ok::<_, DbError>(report)
    }
    .await;
    lock.release().await;
    let report = result?;
    for migration in report.applied_migrations() {
        tracing::info!(schema, migration = %migration, "applied schema migration");
    }
    Ok(report)
}
