//! The order-independent digest of a job's rows: each row's canonical encoding (typed,
//! length-prefixed fields) hashed with SHA-256, the first 16 bytes summed modulo 2¹²⁸,
//! with the row count. It proves a restore put back exactly what was archived.

use aws_lc_rs::digest::{Context, SHA256};
use uuid::Uuid;

use super::Row;

/// A reusable buffer for a row's canonical encoding: typed, length-prefixed fields, so
/// distinct rows never encode alike.
#[derive(Debug, Default)]
pub struct Canonical(Vec<u8>);

impl Canonical {
    pub(super) fn tag(&mut self, tag: u8) {
        self.0.clear();
        self.0.push(tag);
    }

    pub(super) fn uuid(&mut self, value: &Uuid) {
        self.0.extend_from_slice(value.as_bytes());
    }

    pub(super) fn int(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    /// Whether a nullable value follows.
    pub(super) fn present(&mut self, present: bool) {
        self.0.push(u8::from(present));
    }

    pub(super) fn text(&mut self, value: &str) {
        self.0
            .extend_from_slice(&(value.len() as u64).to_be_bytes());
        self.0.extend_from_slice(value.as_bytes());
    }
}

/// Order-independent digest of a multiset of rows: the sum, modulo 2¹²⁸, of the first
/// 16 bytes of each row's SHA-256, with the row count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowsDigest {
    sum: u128,
    pub rows: u64,
}

impl RowsDigest {
    pub fn add<R: Row>(&mut self, row: &R, scratch: &mut Canonical) {
        row.canonical(scratch);
        let mut context = Context::new(&SHA256);
        context.update(&scratch.0);
        let digest = context.finish();
        let mut head = [0u8; 16];
        head.copy_from_slice(&digest.as_ref()[..16]);
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(head));
        self.rows += 1;
    }

    pub fn merge(&mut self, other: &RowsDigest) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.rows += other.rows;
    }

    /// 24 bytes: the sum, then the row count.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.sum.to_be_bytes().to_vec();
        out.extend_from_slice(&self.rows.to_be_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let sum = u128::from_be_bytes(bytes.get(..16)?.try_into().ok()?);
        let rows = u64::from_be_bytes(bytes.get(16..24)?.try_into().ok()?);
        (bytes.len() == 24).then_some(Self { sum, rows })
    }
}
