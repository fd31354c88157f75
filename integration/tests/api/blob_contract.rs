//! The blob backend contract on Azurite, through an account-key connection string, and
//! on SeaweedFS's S3 gateway, through an access key.

use stowage_integration::{azurite::TestContainer, seaweedfs::TestPrefix};
use stowage_shared::blob::{BlobStore, Credential, Location, Provider, StoreConfig, StoreOptions};

async fn azurite_store() -> BlobStore {
    let container = TestContainer::create().await.unwrap();
    let config = StoreConfig {
        provider: Provider::Azure,
        location: Location {
            container: container.container.clone(),
            ..Location::default()
        },
        credential: Credential::AzureConnectionString {
            connection_string: container.connection_string(),
        },
    }
    .validated()
    .unwrap();
    BlobStore::open(&config, &StoreOptions::fail_fast()).unwrap()
}

async fn seaweedfs_store() -> BlobStore {
    TestPrefix::create().unwrap().raw_store().unwrap()
}

mod azurite {
    use super::*;
    stowage_shared::blob_contract_suite!(azurite_store());
}

mod seaweedfs {
    use super::*;
    stowage_shared::blob_contract_suite!(seaweedfs_store());
}
