//! What a column's Rust type is in PostgreSQL's binary COPY and in the rows digest's
//! canonical encoding, so a row type's fields say everything about its columns.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::Canonical;

/// A column of a per-file table, by its Rust type.
pub trait Column: ToSql + Sync {
    /// Its type in binary COPY.
    const TYPE: Type;

    /// Feeds its canonical encoding to `out`.
    fn encode(&self, out: &mut Canonical);
}

impl Column for Uuid {
    const TYPE: Type = Type::UUID;

    fn encode(&self, out: &mut Canonical) {
        out.uuid(self);
    }
}

impl Column for i64 {
    const TYPE: Type = Type::INT8;

    fn encode(&self, out: &mut Canonical) {
        out.int(*self);
    }
}

impl Column for i32 {
    const TYPE: Type = Type::INT4;

    fn encode(&self, out: &mut Canonical) {
        out.int(i64::from(*self));
    }
}

impl Column for String {
    const TYPE: Type = Type::TEXT;

    fn encode(&self, out: &mut Canonical) {
        out.text(self);
    }
}

/// Microseconds since the epoch, PostgreSQL's precision.
impl Column for DateTime<Utc> {
    const TYPE: Type = Type::TIMESTAMPTZ;

    fn encode(&self, out: &mut Canonical) {
        out.int(self.timestamp_micros());
    }
}

/// A nullable column: a presence byte, then the value if present.
impl<T: Column> Column for Option<T> {
    const TYPE: Type = T::TYPE;

    fn encode(&self, out: &mut Canonical) {
        out.present(self.is_some());
        if let Some(value) = self {
            value.encode(out);
        }
    }
}
