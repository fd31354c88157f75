//! Queries over `migration.bindings`. Every read is scoped to an organization, but for
//! [`of_providers`], which the service's own upkeep uses.

use stowage_shared::{
    api::Page,
    blob::{Location, Provider},
    db::{self, Filter, GenericClient, IdOrder, OwnedRows},
};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{
    domain::model::bindings::{Binding, BindingState},
    error::{Error, Result},
};

const COLUMNS: &str = "id, organization_id, display_name, provider, container, prefix, endpoint,
    account, region, state, credential_kind, credential_update_time, create_time, update_time,
    activate_time, disable_time";

fn binding(row: &Row) -> Result<Binding> {
    let provider: &str = row.get("provider");
    let state: &str = row.get("state");
    Ok(Binding {
        id: row.get("id"),
        organization_id: row.get("organization_id"),
        display_name: row.get("display_name"),
        provider: Provider::parse(provider)
            .ok_or_else(|| Error::Corrupt(format!("binding provider {provider:?}")))?,
        location: Location {
            container: row.get("container"),
            prefix: row.get("prefix"),
            endpoint: row.get("endpoint"),
            account: row.get("account"),
            region: row.get("region"),
        },
        state: BindingState::parse(state)
            .ok_or_else(|| Error::Corrupt(format!("binding state {state:?}")))?,
        credential_kind: row.get("credential_kind"),
        credential_update_time: row.get("credential_update_time"),
        create_time: row.get("create_time"),
        update_time: row.get("update_time"),
        activate_time: row.get("activate_time"),
        disable_time: row.get("disable_time"),
    })
}

pub async fn insert(client: &impl GenericClient, b: &Binding, sealed: &[u8]) -> Result<()> {
    db::execute(
        client,
        &format!(
            "insert into migration.bindings ({COLUMNS}, credential_sealed)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ),
        &[
            &b.id,
            &b.organization_id,
            &b.display_name,
            &b.provider.as_str(),
            &b.location.container,
            &b.location.prefix,
            &b.location.endpoint,
            &b.location.account,
            &b.location.region,
            &b.state.as_str(),
            &b.credential_kind,
            &b.credential_update_time,
            &b.create_time,
            &b.update_time,
            &b.activate_time,
            &b.disable_time,
            &sealed,
        ],
    )
    .await?;
    Ok(())
}

/// Bindings by id, scoped to an organization; activations row-lock them
/// (`RowLock::ForUpdate`).
pub const BINDINGS: OwnedRows<Binding, Error> = OwnedRows::new(
    "binding",
    "migration.bindings",
    COLUMNS,
    "organization_id",
    binding,
    |b| b.id,
);

/// The binding and its sealed credential.
pub async fn get_with_secret(
    client: &impl GenericClient,
    org: &str,
    id: Uuid,
) -> Result<Option<(Binding, Vec<u8>)>> {
    let statement = client
        .prepare_cached(&format!(
            "select {COLUMNS}, credential_sealed from migration.bindings
             where organization_id = $1 and id = $2"
        ))
        .await?;
    let Some(row) = client.query_opt(&statement, &[&org, &id]).await? else {
        return Ok(None);
    };
    Ok(Some((binding(&row)?, row.get("credential_sealed"))))
}

pub async fn list(
    client: &impl GenericClient,
    org: &str,
    state: Option<BindingState>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Page<Binding, Uuid>> {
    let state = state.map(BindingState::as_str);
    let state_is: Filter = ("($2::text is null or state = $2)", &state);
    BINDINGS
        .page(
            client,
            Some(org),
            state_is,
            after,
            limit,
            IdOrder::Ascending,
        )
        .await
}

pub async fn update_credential(
    client: &impl GenericClient,
    id: Uuid,
    kind: &str,
    sealed: &[u8],
) -> Result<Binding> {
    let statement = client
        .prepare_cached(&format!(
            "update migration.bindings
             set credential_kind = $2, credential_sealed = $3,
                 credential_update_time = now(), update_time = now()
             where id = $1 returning {COLUMNS}"
        ))
        .await?;
    binding(&client.query_one(&statement, &[&id, &kind, &sealed]).await?)
}

/// Row-locks every binding of the organization, in id order (so concurrent activations
/// queue instead of deadlocking).
pub async fn lock_organization(client: &impl GenericClient, org: &str) -> Result<Vec<Binding>> {
    let sql = format!(
        "select {COLUMNS} from migration.bindings where organization_id = $1
         order by id for update"
    );
    db::query_map(client, &sql, &[&org], binding).await
}

/// Moves a binding to `state`, stamping when it was activated or disabled.
pub async fn set_state(
    client: &impl GenericClient,
    id: Uuid,
    state: BindingState,
) -> Result<Binding> {
    let statement = client
        .prepare_cached(&format!(
            "update migration.bindings
             set state = $2, update_time = now(),
                 activate_time = case when $2 = 'active' then now() else activate_time end,
                 disable_time = case when $2 = 'disabled' then now() else disable_time end
             where id = $1 returning {COLUMNS}"
        ))
        .await?;
    binding(
        &client
            .query_one(&statement, &[&id, &state.as_str()])
            .await?,
    )
}

/// The organization's active binding, if any.
pub async fn active(client: &impl GenericClient, org: &str) -> Result<Option<Binding>> {
    let sql = format!(
        "select {COLUMNS} from migration.bindings
         where organization_id = $1 and state = 'active'"
    );
    db::query_opt_map(client, &sql, &[&org], binding).await
}

/// The state of a binding, share-locked until the transaction ends, so an activation
/// cannot disable it in between.
pub async fn state_for_share(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<BindingState>> {
    let statement = client
        .prepare_cached("select state from migration.bindings where id = $1 for share")
        .await?;
    let Some(row) = client.query_opt(&statement, &[&id]).await? else {
        return Ok(None);
    };
    let state: &str = row.get(0);
    BindingState::parse(state)
        .map(Some)
        .ok_or_else(|| Error::Corrupt(format!("binding state {state:?}")))
}

/// Every binding on `provider`, of every organization: `(organization, id)`.
pub async fn of_providers(
    client: &impl GenericClient,
    providers: &[Provider],
) -> Result<Vec<(String, Uuid)>> {
    let providers: Vec<&str> = providers.iter().map(|p| p.as_str()).collect();
    let rows = client
        .query(
            "select organization_id, id from migration.bindings where provider = any($1)",
            &[&providers],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}
