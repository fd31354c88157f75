//! The blob backend contract on Azurite, through an account-key connection string, and
//! on SeaweedFS's S3 gateway, through an access key.

use stowage_integration::{azurite::TestContainer, seaweedfs::TestPrefix};
use stowage_shared::blob::BlobStore;

async fn azurite_store() -> BlobStore {
    let container = TestContainer::create().await.unwrap();
    container.raw_store().unwrap()
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
