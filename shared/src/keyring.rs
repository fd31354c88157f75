//! The key ring: key-encryption keys (KEKs) by id, one of them primary. New secrets and
//! data keys are sealed under the primary; any KEK still in the ring opens what it sealed,
//! so rotating the primary needs no rewrite.

use std::{collections::BTreeMap, fmt, sync::Arc};

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use secrecy::ExposeSecret;

use crate::config::KeysConfig;

/// Length of a KEK and of every data key: AES-256.
pub const KEY_LEN: usize = 32;
/// Version byte of the sealed-secret layout.
const SEALED_V1: u8 = 1;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the key ring is empty: configure at least one key under [keys.keks]")]
    Empty,
    #[error("primary key {0:?} is not in the key ring")]
    MissingPrimary(String),
    #[error("key {id:?} is not valid: {reason}")]
    InvalidKey { id: String, reason: String },
    #[error("key id {0:?} must be 1 to 255 bytes of printable ASCII")]
    InvalidKeyId(String),
    #[error("sealed data was made with key {0:?}, which is not in the key ring")]
    UnknownKek(String),
    #[error("sealed data is malformed: {0}")]
    Malformed(&'static str),
    #[error("sealed data does not authenticate: wrong key, wrong context or tampered bytes")]
    Unauthentic,
    #[error("the system random generator failed")]
    Random,
}

/// One key-encryption key.
pub struct Kek {
    id: String,
    key: LessSafeKey,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    pub fn new(id: impl Into<String>, key: &[u8]) -> Result<Self, KeyError> {
        let id = id.into();
        if id.is_empty() || id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyError::InvalidKeyId(id));
        }
        if key.len() != KEY_LEN {
            return Err(KeyError::InvalidKey {
                id,
                reason: format!("expected {KEY_LEN} bytes, got {}", key.len()),
            });
        }
        let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| KeyError::InvalidKey {
            id: id.clone(),
            reason: "rejected".into(),
        })?;
        Ok(Self {
            id,
            key: LessSafeKey::new(unbound),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext` in place (appending the tag) under a caller-chosen unique nonce.
    pub fn seal_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut Vec<u8>,
    ) -> Result<(), KeyError> {
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map_err(|_| KeyError::Unauthentic)
    }

    /// Opens `ciphertext || tag` in place and returns the plaintext slice.
    pub fn open_in_place<'a>(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &'a mut [u8],
    ) -> Result<&'a mut [u8], KeyError> {
        self.key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map_err(|_| KeyError::Unauthentic)
    }
}

/// KEKs by id plus the id of the primary. Cheap to clone.
#[derive(Clone, Debug)]
pub struct KeyRing {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    keks: BTreeMap<String, Kek>,
    primary: String,
    /// The ring this one lies over: its KEKs are found too (a tenant's ring over the
    /// service's, so objects written before the tenant had a key stay readable).
    base: Option<Arc<Inner>>,
}

impl Inner {
    fn find(&self, id: &str) -> Option<&Kek> {
        self.keks
            .get(id)
            .or_else(|| self.base.as_deref().and_then(|base| base.find(id)))
    }
}

impl KeyRing {
    pub fn new(keks: Vec<Kek>, primary: &str) -> Result<Self, KeyError> {
        if keks.is_empty() {
            return Err(KeyError::Empty);
        }
        let keks: BTreeMap<_, _> = keks.into_iter().map(|k| (k.id.clone(), k)).collect();
        if !keks.contains_key(primary) {
            return Err(KeyError::MissingPrimary(primary.to_owned()));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                keks,
                primary: primary.to_owned(),
                base: None,
            }),
        })
    }

    /// A ring of `keks` with `primary` among them, over this one: it seals with its own
    /// primary and finds this ring's KEKs as well as its own.
    pub fn over(&self, keks: Vec<Kek>, primary: &str) -> Result<Self, KeyError> {
        let own = Self::new(keks, primary)?;
        let inner = Arc::into_inner(own.inner).ok_or(KeyError::Empty)?;
        Ok(Self {
            inner: Arc::new(Inner {
                base: Some(self.inner.clone()),
                ..inner
            }),
        })
    }

    /// Builds the ring from `[keys]`: each KEK is 32 bytes in standard base64.
    pub fn from_config(config: &KeysConfig) -> Result<Self, KeyError> {
        let keks = config
            .keks
            .iter()
            .map(|(id, encoded)| {
                let raw = STANDARD
                    .decode(encoded.expose_secret().trim())
                    .map_err(|e| KeyError::InvalidKey {
                        id: id.clone(),
                        reason: format!("not base64: {e}"),
                    })?;
                Kek::new(id.clone(), &raw)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keks, &config.primary)
    }

    pub fn primary(&self) -> &Kek {
        &self.inner.keks[&self.inner.primary]
    }

    pub fn get(&self, id: &str) -> Result<&Kek, KeyError> {
        self.inner
            .find(id)
            .ok_or_else(|| KeyError::UnknownKek(id.to_owned()))
    }

    /// Seals a small secret (a credential, a connection string) under the primary KEK.
    /// `context` is authenticated, not stored: the same context must be given to
    /// [`KeyRing::unseal`], which binds a sealed value to its owner (e.g. one binding row).
    ///
    /// Layout: `0x01 | len(kek id) | kek id | nonce (12) | ciphertext | tag (16)`.
    pub fn seal(&self, context: &[u8], secret: &[u8]) -> Result<Vec<u8>, KeyError> {
        let kek = self.primary();
        let nonce = random_array::<NONCE_LEN>()?;
        let header_len = 2 + kek.id.len();
        let mut out = Vec::with_capacity(header_len + NONCE_LEN + secret.len() + TAG_LEN);
        out.push(SEALED_V1);
        out.push(kek.id.len() as u8);
        out.extend_from_slice(kek.id.as_bytes());
        let aad = [&out[..header_len], context].concat();
        out.extend_from_slice(&nonce);
        let mut body = secret.to_vec();
        kek.seal_in_place(nonce, &aad, &mut body)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens what [`KeyRing::seal`] produced, with any KEK still in the ring.
    pub fn unseal(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (&version, rest) = sealed.split_first().ok_or(KeyError::Malformed("empty"))?;
        if version != SEALED_V1 {
            return Err(KeyError::Malformed("unknown version"));
        }
        let (&id_len, rest) = rest.split_first().ok_or(KeyError::Malformed("truncated"))?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + NONCE_LEN + TAG_LEN {
            return Err(KeyError::Malformed("truncated"));
        }
        let (id, rest) = rest.split_at(id_len);
        let id = std::str::from_utf8(id).map_err(|_| KeyError::Malformed("key id"))?;
        let kek = self.get(id)?;
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let aad = [&sealed[..2 + id_len], context].concat();
        let mut body = body.to_vec();
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KeyError::Malformed("nonce"))?;
        let plaintext = kek.open_in_place(nonce, &aad, &mut body)?;
        Ok(plaintext.to_vec())
    }

    /// The id of the KEK that sealed `sealed`, without opening it.
    pub fn sealed_with(sealed: &[u8]) -> Option<&str> {
        let id_len = usize::from(*sealed.get(1)?);
        std::str::from_utf8(sealed.get(2..2 + id_len)?).ok()
    }
}

/// Fills an array from the system CSPRNG.
pub fn random_array<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| KeyError::Random)?;
    Ok(out)
}

/// A fresh random key, base64-encoded, as `[keys.keks]` expects.
pub fn generate_kek_base64() -> Result<String, KeyError> {
    Ok(STANDARD.encode(random_array::<KEY_LEN>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[&str], primary: &str) -> KeyRing {
        let keks = ids
            .iter()
            .map(|id| Kek::new(*id, &[id.as_bytes()[0]; KEY_LEN]).unwrap());
        KeyRing::new(keks.collect(), primary).unwrap()
    }

    #[test]
    fn a_ring_over_another_seals_with_its_own_primary_and_finds_both() {
        let service = ring(&["k1"], "k1");
        let old = service.seal(b"c", b"before").unwrap();
        let tenant = service
            .over(
                vec![Kek::new("tenant-key/t", &[9u8; KEY_LEN]).unwrap()],
                "tenant-key/t",
            )
            .unwrap();
        let new = tenant.seal(b"c", b"after").unwrap();
        assert_eq!(KeyRing::sealed_with(&new), Some("tenant-key/t"));
        assert_eq!(tenant.unseal(b"c", &old).unwrap(), b"before");
        assert_eq!(tenant.unseal(b"c", &new).unwrap(), b"after");
        assert!(matches!(
            service.unseal(b"c", &new),
            Err(KeyError::UnknownKek(_))
        ));
    }

    #[test]
    fn seal_round_trips_and_names_the_primary() {
        let ring = ring(&["k1"], "k1");
        let sealed = ring.seal(b"binding/1", b"AccountKey=secret").unwrap();
        assert_eq!(KeyRing::sealed_with(&sealed), Some("k1"));
        assert_eq!(
            ring.unseal(b"binding/1", &sealed).unwrap(),
            b"AccountKey=secret"
        );
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn rotation_keeps_old_secrets_readable() {
        let old = ring(&["k1"], "k1");
        let sealed = old.seal(b"c", b"v").unwrap();
        let rotated = ring(&["k1", "k2"], "k2");
        assert_eq!(rotated.unseal(b"c", &sealed).unwrap(), b"v");
        assert_eq!(
            KeyRing::sealed_with(&rotated.seal(b"c", b"v").unwrap()),
            Some("k2")
        );
        let without_k1 = ring(&["k2"], "k2");
        assert_eq!(
            without_k1.unseal(b"c", &sealed),
            Err(KeyError::UnknownKek("k1".into()))
        );
    }

    #[test]
    fn wrong_context_or_any_flipped_bit_fails() {
        let ring = ring(&["k1"], "k1");
        let sealed = ring.seal(b"binding/1", b"secret").unwrap();
        assert_eq!(
            ring.unseal(b"binding/2", &sealed),
            Err(KeyError::Unauthentic)
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                ring.unseal(b"binding/1", &bad).is_err(),
                "bit flip at {i} accepted"
            );
        }
        for len in 0..sealed.len() {
            assert!(ring.unseal(b"binding/1", &sealed[..len]).is_err());
        }
    }

    #[test]
    fn config_errors_are_explicit() {
        assert_eq!(KeyRing::new(vec![], "k").unwrap_err(), KeyError::Empty);
        assert!(matches!(
            Kek::new("k", &[0; 16]),
            Err(KeyError::InvalidKey { .. })
        ));
        assert!(matches!(
            Kek::new("has space", &[0; 32]),
            Err(KeyError::InvalidKeyId(_))
        ));
        assert!(matches!(
            KeyRing::new(vec![Kek::new("a", &[0; 32]).unwrap()], "b"),
            Err(KeyError::MissingPrimary(_))
        ));
    }
}
