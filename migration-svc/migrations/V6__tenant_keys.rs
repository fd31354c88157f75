// Per-organization key-encryption keys (crypto-shredding), as stowage_shared::tenant_keys
// defines the table for every service.
pub fn migration() -> String {
    stowage_shared::tenant_keys::table_ddl("migration.tenant_keys")
}
