//! PostgreSQL advisory locks, one way: a named lock held by a pooled connection's session
//! for as long as the guard lives. Releasing it unlocks; a guard dropped without release,
//! or whose unlock fails, closes its connection instead of returning it to the pool, so
//! the lock can never outlive its holder (and a crashed replica's locks die with it).

use deadpool_postgres::Object;

use super::DbError;

/// A held advisory lock and the connection that holds it.
pub struct AdvisoryLock {
    client: Option<Object>,
    name: String,
}

impl std::fmt::Debug for AdvisoryLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdvisoryLock")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AdvisoryLock {
    /// Waits for the lock `name`.
    pub async fn acquire(client: Object, name: impl Into<String>) -> Result<Self, DbError> {
        let name = name.into();
        client
            .execute("select pg_advisory_lock(hashtext($1))", &[&name])
            .await?;
        Ok(Self {
            client: Some(client),
            name,
        })
    }

    /// Takes the lock `name` if no one holds it; `None` if someone does.
    pub async fn try_acquire(
        client: Object,
        name: impl Into<String>,
    ) -> Result<Option<Self>, DbError> {
        let name = name.into();
        let locked: bool = client
            .query_one("select pg_try_advisory_lock(hashtext($1))", &[&name])
            .await?
            .try_get(0)?;
        Ok(locked.then(|| Self {
            client: Some(client),
            name,
        }))
    }

    /// The connection that holds the lock, for work done under it.
    pub fn client(&mut self) -> &mut Object {
        self.client
            .as_mut()
            .unwrap_or_else(|| unreachable!("the client is only taken by release or drop"))
    }

    /// Unlocks, and returns the connection to the pool.
    pub async fn release(mut self) {
        if let Some(client) = self.client.take() {
            let unlocked = client
                .execute("select pg_advisory_unlock(hashtext($1))", &[&self.name])
                .await;
            if unlocked.is_err() {
                drop(Object::take(client));
            }
        }
    }
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        // Not released (an error or a cancelled future on the way): the session may still
        // hold the lock, so it must not go back to the pool.
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

/// Takes the lock `name` for the rest of the transaction `client` is in, if no one holds
/// it (a session holding it counts).
pub async fn try_lock_for_transaction(
    client: &impl deadpool_postgres::GenericClient,
    name: &str,
) -> Result<bool, DbError> {
    let row = client
        .query_one("select pg_try_advisory_xact_lock(hashtext($1))", &[&name])
        .await?;
    Ok(row.try_get(0)?)
}
