//! Object stores behind bindings: configuration, Azure connection strings, the
//! [`BlobStore`] every object goes through, and the [`EncryptedStore`] that writes them
//! encrypted and verified.

pub mod azure;
pub mod config;
#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod encrypted;
mod multipart;
pub mod posture;
pub mod staging;
pub mod store;

pub use config::{Credential, Location, Provider, StoreConfig};
pub use encrypted::{EncryptedStore, ObjectError, Receipt};
pub use posture::PostureError;
pub use staging::InterruptedUpload;
pub use store::{BlobError, BlobKey, BlobRead, BlobStore, StoreOptions};

#[cfg(test)]
mod tests {
    mod memory {
        crate::blob_contract_suite!(async { crate::blob::tests::memory_store() });
    }

    mod file {
        crate::blob_contract_suite!(async { crate::blob::tests::file_store() });
    }

    use super::*;

    pub fn memory_store() -> BlobStore {
        let config = StoreConfig {
            provider: Provider::Memory,
            location: Location {
                container: "contract".into(),
                ..Location::default()
            },
            credential: Credential::None,
        };
        BlobStore::open(&config, &StoreOptions::fail_fast()).unwrap()
    }

    pub fn file_store() -> BlobStore {
        let dir = std::env::temp_dir().join("stowage-contract");
        let config = StoreConfig {
            provider: Provider::File,
            location: Location {
                container: dir.to_string_lossy().into_owned(),
                prefix: "objects".into(),
                ..Location::default()
            },
            credential: Credential::None,
        };
        BlobStore::open(&config, &StoreOptions::fail_fast()).unwrap()
    }
}
