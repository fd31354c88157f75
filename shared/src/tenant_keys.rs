//! Per-tenant key-encryption keys, for crypto-shredding. A tenant's objects are written
//! with a ring whose primary is the tenant's own key (32 random bytes, sealed by the
//! service's key ring in a table of the service's schema), lying over the service's ring,
//! so objects written before the tenant had a key stay readable without a rewrite.
//! Destroying a tenant's keys erases their sealed material: every object wrapped by them
//! is unreadable from then on, wherever a copy of it survives, and nothing else changes.
//! The next write of the tenant creates a fresh key. See `FORMAT.md` ("Keys").

use uuid::Uuid;

use crate::{
    db::{DbError, GenericClient},
    keyring::{KEY_LEN, Kek, KeyError, KeyRing, random_array},
};

/// How every tenant key id begins, so a reader can tell a destroyed tenant key from a
/// service key the ring lost.
pub const TENANT_KEY_PREFIX: &str = "tenant-key/";

#[derive(Debug, thiserror::Error)]
pub enum TenantKeyError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl From<tokio_postgres::Error> for TenantKeyError {
    fn from(error: tokio_postgres::Error) -> Self {
        TenantKeyError::Db(error.into())
    }
}

/// The table of a service's tenant keys (its schema migration): `sealed` is the key sealed
/// by the service's key ring, erased (with `destroyed_at` set) when the key is destroyed;
/// one live key per tenant.
pub fn table_ddl(table: &str) -> String {
    let index = table.replace('.', "_");
    format!(
        "create table {table} (
             id           text primary key,
             tenant_id    text not null,
             sealed       bytea,
             created_at   timestamptz not null default now(),
             destroyed_at timestamptz,
             check ((sealed is null) = (destroyed_at is not null))
         );
         create unique index {index}_one_live on {table} (tenant_id)
             where destroyed_at is null;"
    )
}

/// Whether `kek_id` (an object header's) names a tenant key.
pub fn is_tenant_key(kek_id: &str) -> bool {
    kek_id.starts_with(TENANT_KEY_PREFIX)
}

/// A service's table of objects a tenant key may wrap: the table, its tenant and KEK id
/// columns, and which of its rows count (e.g. the live ones).
#[derive(Clone, Copy, Debug)]
pub struct Wrapped<'a> {
    pub table: &'a str,
    pub tenant_column: &'a str,
    pub kek_column: &'a str,
    pub only: &'a str,
}

/// The tenant keys of one service, in `table` (columns `id`, `tenant_id`, `sealed`,
/// `created_at`, `destroyed_at`; one live key per tenant).
#[derive(Clone, Debug)]
pub struct TenantKeys {
    table: &'static str,
    keys: KeyRing,
}

impl TenantKeys {
    pub fn new(table: &'static str, keys: KeyRing) -> Self {
        Self { table, keys }
    }

    /// The ring a tenant's objects are written with: its live key as primary (created if
    /// it has none), over the service's ring.
    pub async fn for_writing(
        &self,
        client: &impl GenericClient,
        tenant: &str,
    ) -> Result<KeyRing, TenantKeyError> {
        if let Some(ring) = self.live(client, tenant).await? {
            return Ok(ring);
        }
        let id = format!("{TENANT_KEY_PREFIX}{}", Uuid::now_v7().simple());
        let material = random_array::<KEY_LEN>()?;
        let sealed = self.keys.seal(id.as_bytes(), &material)?;
        // Two writers may race to create it: one key wins, both use it.
        let insert = format!(
            "insert into {} (id, tenant_id, sealed) values ($1, $2, $3)
             on conflict (tenant_id) where destroyed_at is null do nothing",
            self.table
        );
        client.execute(&insert, &[&id, &tenant, &sealed]).await?;
        self.live(client, tenant)
            .await?
            .ok_or_else(|| KeyError::UnknownKek(id).into())
    }

    /// The ring a tenant's objects are read with: its live key, if any, over the
    /// service's ring (objects of destroyed keys find none).
    pub async fn for_reading(
        &self,
        client: &impl GenericClient,
        tenant: &str,
    ) -> Result<KeyRing, TenantKeyError> {
        Ok(self
            .live(client, tenant)
            .await?
            .unwrap_or_else(|| self.keys.clone()))
    }

    async fn live(
        &self,
        client: &impl GenericClient,
        tenant: &str,
    ) -> Result<Option<KeyRing>, TenantKeyError> {
        let select = format!(
            "select id, sealed from {} where tenant_id = $1 and destroyed_at is null",
            self.table
        );
        let Some(row) = client.query_opt(&select, &[&tenant]).await? else {
            return Ok(None);
        };
        let (id, sealed): (String, Vec<u8>) = (row.try_get(0)?, row.try_get(1)?);
        let material = self.keys.unseal(id.as_bytes(), &sealed)?;
        let kek = Kek::new(id.clone(), &material)?;
        Ok(Some(self.keys.over(vec![kek], &id)?))
    }

    /// Whether the key `kek_id` can still unwrap what it wrapped (a service key always
    /// can), holding its row (`FOR SHARE`) to the end of `client`'s transaction, so that a
    /// write that counts on it commits before any destruction of it, or not at all.
    pub async fn hold_live(
        &self,
        client: &impl GenericClient,
        kek_id: &str,
    ) -> Result<bool, TenantKeyError> {
        if !is_tenant_key(kek_id) {
            return Ok(true);
        }
        let hold = format!(
            "select 1 from {} where id = $1 and destroyed_at is null for share",
            self.table
        );
        Ok(client.query_opt(&hold, &[&kek_id]).await?.is_some())
    }

    /// How many of the tenant's rows in `objects` are wrapped by one of its live keys.
    pub async fn wrapped(
        &self,
        client: &impl GenericClient,
        tenant: &str,
        objects: &Wrapped<'_>,
    ) -> Result<i64, TenantKeyError> {
        let Wrapped {
            table,
            tenant_column,
            kek_column,
            only,
        } = objects;
        let count = format!(
            "select count(*) from {table} o
             where o.{tenant_column} = $1 and ({only})
               and o.{kek_column} in (select id from {keys}
                                      where tenant_id = $1 and destroyed_at is null)",
            keys = self.table
        );
        Ok(client.query_one(&count, &[&tenant]).await?.try_get(0)?)
    }

    /// Destroys the tenant's keys (in `client`'s transaction): their sealed material is
    /// erased, so nothing they wrapped can be read again. How many were destroyed.
    pub async fn destroy(
        &self,
        client: &impl GenericClient,
        tenant: &str,
    ) -> Result<u64, TenantKeyError> {
        let update = format!(
            "update {} set sealed = null, destroyed_at = now()
             where tenant_id = $1 and destroyed_at is null",
            self.table
        );
        Ok(client.execute(&update, &[&tenant]).await?)
    }
}
