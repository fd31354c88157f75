//! The encrypted object format (specified in `shared/FORMAT.md`): a header naming the
//! key-encryption key and carrying the wrapped per-object data key, then the plaintext
//! sealed in fixed-size segments with AES-256-GCM under the STREAM construction, so
//! truncation, reordering, swapped segments, appended bytes and header edits all fail.
//!
//! [`Encryptor`] and [`Decryptor`] are incremental and pure (no I/O): memory stays at
//! about one segment whatever the object size.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::keyring::{self, KEY_LEN, Kek, KeyError, KeyRing};

pub const MAGIC: [u8; 4] = *b"STWG";
pub const VERSION: u8 = 1;
/// AEAD identifier of AES-256-GCM in the header.
pub const AEAD_AES_256_GCM: u8 = 1;
pub const DEFAULT_SEGMENT_SIZE: u32 = 1 << 20;
pub const MIN_SEGMENT_SIZE: u32 = 16;
pub const MAX_SEGMENT_SIZE: u32 = 16 << 20;
pub const TAG_LEN: usize = 16;
pub const NONCE_PREFIX_LEN: usize = 7;
const WRAPPED_KEY_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;
/// How many appended bytes after a short final segment are recognised as trailing data
/// (more are still an error, reported as a corrupt segment).
const TRAILING_PROBE: usize = 64;
/// Bytes of the header before the KEK id.
const FIXED_PREFIX_LEN: usize = 11;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a stowage encrypted object (bad magic)")]
    NotEncrypted,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    #[error("unsupported AEAD algorithm {0}")]
    UnsupportedAead(u8),
    #[error("invalid segment size {0}")]
    InvalidSegmentSize(u32),
    #[error("invalid key id in header")]
    InvalidKekId,
    #[error("object was encrypted with key {0:?}, which is not in the key ring")]
    UnknownKek(String),
    #[error("header does not authenticate under key {0:?}: wrong key material or corrupt header")]
    HeaderUnauthentic(String),
    #[error("segment {0} does not authenticate: corrupt, reordered or swapped data")]
    CorruptSegment(u32),
    #[error("object is truncated")]
    Truncated,
    #[error("object has data after its final segment")]
    TrailingData,
    #[error("object exceeds the format's maximum number of segments")]
    TooLarge,
    #[error("encryption failed: {0}")]
    Crypto(&'static str),
}

impl FormatError {
    fn from_key(error: KeyError) -> Self {
        match error {
            KeyError::UnknownKek(id) => FormatError::UnknownKek(id),
            KeyError::Random => FormatError::Crypto("random generator"),
            _ => FormatError::Crypto("key"),
        }
    }
}

fn check_segment_size(size: u32) -> Result<usize, FormatError> {
    if (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size) {
        Ok(size as usize)
    } else {
        Err(FormatError::InvalidSegmentSize(size))
    }
}

/// The per-object segment key and nonce prefix.
struct SegmentKey {
    key: LessSafeKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl SegmentKey {
    /// STREAM nonce: prefix ‖ segment index (u32 BE) ‖ final flag.
    fn nonce(&self, index: u32, last: bool) -> Nonce {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[NONCE_PREFIX_LEN..NONCE_LEN - 1].copy_from_slice(&index.to_be_bytes());
        nonce[NONCE_LEN - 1] = u8::from(last);
        Nonce::assume_unique_for_key(nonce)
    }

    /// Appends `plaintext` sealed as segment `index` to `out`.
    fn seal(
        &self,
        index: u32,
        last: bool,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FormatError> {
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(index, last), Aad::empty(), &mut out[start..])
            .map_err(|_| FormatError::Crypto("seal"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Appends the plaintext of sealed segment `index` to `out`, or nothing on failure.
    fn open(&self, index: u32, last: bool, sealed: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        out.extend_from_slice(sealed);
        match self
            .key
            .open_in_place(self.nonce(index, last), Aad::empty(), &mut out[start..])
        {
            Ok(plaintext) => {
                let len = plaintext.len();
                out.truncate(start + len);
                true
            }
            Err(_) => {
                out.truncate(start);
                false
            }
        }
    }
}

/// The random values of one object: its data key, STREAM nonce prefix and key-wrap nonce.
#[derive(Clone)]
pub struct KeyMaterial {
    pub data_key: [u8; KEY_LEN],
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub wrap_nonce: [u8; NONCE_LEN],
}

/// Seals plaintext into the format, incrementally.
pub struct Encryptor {
    key: SegmentKey,
    segment_size: usize,
    index: u32,
    pending: Vec<u8>,
    kek_id: String,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("kek_id", &self.kek_id)
            .field("segment_size", &self.segment_size)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// A fresh data key wrapped by the ring's primary KEK; returns the encryptor and the
    /// header, which must be written first.
    pub fn new(keys: &KeyRing, segment_size: u32) -> Result<(Self, Vec<u8>), FormatError> {
        let random = |e| FormatError::from_key(e);
        let material = KeyMaterial {
            data_key: keyring::random_array().map_err(random)?,
            nonce_prefix: keyring::random_array().map_err(random)?,
            wrap_nonce: keyring::random_array().map_err(random)?,
        };
        Self::with_material(keys.primary(), segment_size, &material)
    }

    /// Deterministic construction from given key material: test vectors only. Reusing
    /// material across objects breaks confidentiality.
    pub fn with_material(
        kek: &Kek,
        segment_size: u32,
        material: &KeyMaterial,
    ) -> Result<(Self, Vec<u8>), FormatError> {
        let size = check_segment_size(segment_size)?;
        let mut header = Vec::with_capacity(FIXED_PREFIX_LEN + kek.id().len() + 67);
        header.extend_from_slice(&MAGIC);
        header.push(VERSION);
        header.push(AEAD_AES_256_GCM);
        header.extend_from_slice(&segment_size.to_be_bytes());
        header.push(kek.id().len() as u8);
        header.extend_from_slice(kek.id().as_bytes());
        header.extend_from_slice(&material.nonce_prefix);
        let mut wrapped = material.data_key.to_vec();
        kek.seal_in_place(material.wrap_nonce, &header, &mut wrapped)
            .map_err(FormatError::from_key)?;
        header.extend_from_slice(&material.wrap_nonce);
        header.extend_from_slice(&wrapped);

        let key = UnboundKey::new(&AES_256_GCM, &material.data_key)
            .map_err(|_| FormatError::Crypto("key"))?;
        let encryptor = Self {
            key: SegmentKey {
                key: LessSafeKey::new(key),
                nonce_prefix: material.nonce_prefix,
            },
            segment_size: size,
            index: 0,
            pending: Vec::new(),
            kek_id: kek.id().to_owned(),
        };
        Ok((encryptor, header))
    }

    pub fn kek_id(&self) -> &str {
        &self.kek_id
    }

    /// Size of the sealed form of `plaintext_len` bytes, header excluded.
    pub fn sealed_len(plaintext_len: u64, segment_size: u32) -> u64 {
        let segments = plaintext_len.div_ceil(u64::from(segment_size)).max(1);
        plaintext_len + segments * TAG_LEN as u64
    }

    /// Seals what it can of `plaintext` into `out`. A full segment stays buffered until
    /// more input shows it is not the last.
    pub fn update(&mut self, mut plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        while !plaintext.is_empty() {
            if self.pending.len() == self.segment_size {
                self.seal_next(false, out, None)?;
            }
            if self.pending.is_empty() && plaintext.len() > self.segment_size {
                // Whole segments straight from the input, with one byte of lookahead.
                let (segment, rest) = plaintext.split_at(self.segment_size);
                self.seal_next(false, out, Some(segment))?;
                plaintext = rest;
                continue;
            }
            let take = (self.segment_size - self.pending.len()).min(plaintext.len());
            self.pending.extend_from_slice(&plaintext[..take]);
            plaintext = &plaintext[take..];
        }
        Ok(())
    }

    /// Seals the final segment (possibly empty).
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        self.seal_next(true, out, None)
    }

    fn seal_next(
        &mut self,
        last: bool,
        out: &mut Vec<u8>,
        direct: Option<&[u8]>,
    ) -> Result<(), FormatError> {
        match direct {
            Some(segment) => self.key.seal(self.index, last, segment, out)?,
            None => {
                self.key.seal(self.index, last, &self.pending, out)?;
                self.pending.clear();
            }
        }
        if !last {
            self.index = self.index.checked_add(1).ok_or(FormatError::TooLarge)?;
        }
        Ok(())
    }
}

/// Opens the format incrementally, emitting only authenticated plaintext.
pub struct Decryptor {
    keys: KeyRing,
    state: State,
    buf: Vec<u8>,
}

enum State {
    Header,
    Body {
        key: SegmentKey,
        segment_size: usize,
        index: u32,
        kek_id: String,
    },
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("kek_id", &self.kek_id())
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    pub fn new(keys: KeyRing) -> Self {
        Self {
            keys,
            state: State::Header,
            buf: Vec::new(),
        }
    }

    /// The KEK named by the header, once it has been read.
    pub fn kek_id(&self) -> Option<&str> {
        match &self.state {
            State::Header => None,
            State::Body { kek_id, .. } => Some(kek_id),
        }
    }

    /// Consumes `input`, appending the plaintext of every segment that is known not to be
    /// the last and authenticates.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        if matches!(self.state, State::Header) {
            let consumed = self.read_header(input)?;
            input = &input[consumed..];
            if matches!(self.state, State::Header) {
                return Ok(());
            }
        }
        let State::Body {
            key,
            segment_size,
            index,
            ..
        } = &mut self.state
        else {
            return Ok(());
        };
        let sealed_len = *segment_size + TAG_LEN;
        loop {
            if !self.buf.is_empty() {
                // Top the buffer up to one segment plus one byte of lookahead.
                let take = (sealed_len + 1 - self.buf.len()).min(input.len());
                self.buf.extend_from_slice(&input[..take]);
                input = &input[take..];
                if self.buf.len() <= sealed_len {
                    return Ok(());
                }
                open_inner(key, index, &self.buf[..sealed_len], out)?;
                self.buf.drain(..sealed_len);
            } else if input.len() > sealed_len {
                open_inner(key, index, &input[..sealed_len], out)?;
                input = &input[sealed_len..];
            } else {
                self.buf.extend_from_slice(input);
                return Ok(());
            }
        }
    }

    /// Opens the final segment; fails if the object ended early or not at all.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        let State::Body { key, index, .. } = &self.state else {
            return Err(FormatError::Truncated);
        };
        if self.buf.len() < TAG_LEN {
            return Err(FormatError::Truncated);
        }
        if key.open(*index, true, &self.buf, out) {
            return Ok(());
        }
        // A valid non-final segment here means the rest of the object is missing.
        let mut scratch = Vec::new();
        if key.open(*index, false, &self.buf, &mut scratch) {
            return Err(FormatError::Truncated);
        }
        // A short final segment followed by a few appended bytes: name it as such. Only
        // the error path pays for these attempts, and they are bounded.
        let shortest = self.buf.len().saturating_sub(TRAILING_PROBE).max(TAG_LEN);
        for len in (shortest..self.buf.len()).rev() {
            if key.open(*index, true, &self.buf[..len], &mut scratch) {
                return Err(FormatError::TrailingData);
            }
        }
        Err(FormatError::CorruptSegment(*index))
    }

    /// Buffers header bytes; parses the header once complete. Returns bytes consumed.
    fn read_header(&mut self, input: &[u8]) -> Result<usize, FormatError> {
        let mut consumed = 0;
        loop {
            let want = if self.buf.len() < FIXED_PREFIX_LEN {
                FIXED_PREFIX_LEN
            } else {
                header_len(&self.buf)
            };
            let take = (want - self.buf.len()).min(input.len() - consumed);
            self.buf
                .extend_from_slice(&input[consumed..consumed + take]);
            consumed += take;
            let magic_len = self.buf.len().min(MAGIC.len());
            if self.buf[..magic_len] != MAGIC[..magic_len] {
                return Err(FormatError::NotEncrypted);
            }
            if let Some(&version) = self.buf.get(4)
                && version != VERSION
            {
                return Err(FormatError::UnsupportedVersion(version));
            }
            if let Some(&aead) = self.buf.get(5)
                && aead != AEAD_AES_256_GCM
            {
                return Err(FormatError::UnsupportedAead(aead));
            }
            if self.buf.len() < want {
                return Ok(consumed);
            }
            if want > FIXED_PREFIX_LEN {
                self.parse_header()?;
                return Ok(consumed);
            }
        }
    }

    fn parse_header(&mut self) -> Result<(), FormatError> {
        let header = std::mem::take(&mut self.buf);
        let segment_size = u32::from_be_bytes(
            header[6..10]
                .try_into()
                .map_err(|_| FormatError::Truncated)?,
        );
        let segment_size = check_segment_size(segment_size)?;
        let id_len = usize::from(header[10]);
        let id = std::str::from_utf8(&header[FIXED_PREFIX_LEN..FIXED_PREFIX_LEN + id_len])
            .map_err(|_| FormatError::InvalidKekId)?;
        if id.is_empty() {
            return Err(FormatError::InvalidKekId);
        }
        let kek = self.keys.get(id).map_err(FormatError::from_key)?;
        let prefix_end = FIXED_PREFIX_LEN + id_len + NONCE_PREFIX_LEN;
        let nonce_prefix: [u8; NONCE_PREFIX_LEN] = header[FIXED_PREFIX_LEN + id_len..prefix_end]
            .try_into()
            .map_err(|_| FormatError::Truncated)?;
        let wrap_nonce: [u8; NONCE_LEN] = header[prefix_end..prefix_end + NONCE_LEN]
            .try_into()
            .map_err(|_| FormatError::Truncated)?;
        let mut wrapped = header[prefix_end + NONCE_LEN..].to_vec();
        let data_key = kek
            .open_in_place(wrap_nonce, &header[..prefix_end], &mut wrapped)
            .map_err(|_| FormatError::HeaderUnauthentic(id.to_owned()))?;
        let key =
            UnboundKey::new(&AES_256_GCM, data_key).map_err(|_| FormatError::Crypto("key"))?;
        self.state = State::Body {
            key: SegmentKey {
                key: LessSafeKey::new(key),
                nonce_prefix,
            },
            segment_size,
            index: 0,
            kek_id: id.to_owned(),
        };
        Ok(())
    }
}

/// Full header length given at least the fixed prefix.
fn header_len(prefix: &[u8]) -> usize {
    FIXED_PREFIX_LEN + usize::from(prefix[10]) + NONCE_PREFIX_LEN + WRAPPED_KEY_LEN
}

/// Opens a segment known not to be the last and advances the index.
fn open_inner(
    key: &SegmentKey,
    index: &mut u32,
    sealed: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    if key.open(*index, false, sealed, out) {
        *index = index.checked_add(1).ok_or(FormatError::TooLarge)?;
        return Ok(());
    }
    let mut scratch = Vec::new();
    if key.open(*index, true, sealed, &mut scratch) {
        Err(FormatError::TrailingData)
    } else {
        Err(FormatError::CorruptSegment(*index))
    }
}

/// Seals a whole buffer (tests, small objects).
pub fn seal(keys: &KeyRing, segment_size: u32, plaintext: &[u8]) -> Result<Vec<u8>, FormatError> {
    let (mut encryptor, mut out) = Encryptor::new(keys, segment_size)?;
    out.reserve(Encryptor::sealed_len(plaintext.len() as u64, segment_size) as usize);
    encryptor.update(plaintext, &mut out)?;
    encryptor.finish(&mut out)?;
    Ok(out)
}

/// Opens a whole buffer (tests, small objects).
pub fn open(keys: &KeyRing, sealed: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut decryptor = Decryptor::new(keys.clone());
    let mut out = Vec::with_capacity(sealed.len());
    decryptor.update(sealed, &mut out)?;
    decryptor.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
