//! The transaction every audited, idempotent command of a caller runs in: its request id
//! claimed first (a repeat answers with the first response and changes nothing), then
//! the work, its audit entry and its response, committed together or not at all
//! ([`Call::run`](stowage_shared::api::Call::run) with the audit entry added).

use serde::{Serialize, de::DeserializeOwned};
use stowage_shared::{
    api::{Ran, RequestId},
    auth::Principal,
};

use super::{IDEMPOTENCY, evidence, model::evidence::AuditEntry};
use crate::error::Result;

/// A caller's request that changes something: what it is called in the audit trail and
/// the request log, and the id a caller repeats it under.
pub trait Command: Serialize {
    /// The RPC's name, the audit entry's action.
    const METHOD: &'static str;

    fn request_id(&self) -> &RequestId;
}

/// Makes each `type => "Method"` a [`Command`] whose request id is its `request_id` field.
macro_rules! commands {
    ($($command:ty => $method:literal),* $(,)?) => {$(
        impl $crate::domain::command::Command for $command {
            const METHOD: &'static str = $method;

            fn request_id(&self) -> &stowage_shared::api::RequestId {
                &self.request_id
            }
        }
    )*};
}
pub(crate) use commands;

/// Runs `work` in one transaction of `pool`. `work` gets the transaction and the audit
/// entry begun (actor, action); it returns its result with the entry completed, which is
/// recorded with the response before the commit.
pub async fn run<C: Command, T: Serialize + DeserializeOwned>(
    pool: &deadpool_postgres::Pool,
    caller: &Principal,
    command: &C,
    work: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>, AuditEntry) -> Result<(T, AuditEntry)>,
) -> Result<Ran<T>> {
    let mut client = pool.get().await?;
    let call = IDEMPOTENCY.call(&caller.organization, C::METHOD, command.request_id());
    call.run(&mut client, command, async |tx| {
        let (done, entry) = work(tx, AuditEntry::new(caller, C::METHOD)).await?;
        evidence::audit(tx, &entry).await?;
        Ok(done)
    })
    .await
}
