//! API conventions both services follow (Google AIPs): page sizes and opaque page tokens,
//! idempotent mutations keyed by `request_id`, free-text fields checked on receipt, and
//! timestamp conversion.

use std::pin::Pin;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Serialize, de::DeserializeOwned};
use tonic::Status;
use uuid::Uuid;

use crate::db::{Client, DbError, GenericClient, Transaction};

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 500;
const MAX_REQUEST_ID_LEN: usize = 128;
/// The longest `reason` a mutation takes, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// A request field that failed validation; becomes `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidArgument {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidArgument {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl From<InvalidArgument> for tonic::Status {
    fn from(error: InvalidArgument) -> Self {
        tonic::Status::invalid_argument(error.to_string())
    }
}

/// A required id that an irreversible request names twice (`field`, then `confirm_field`
/// repeating it exactly), trimmed.
pub fn confirmed<'a>(
    (field, raw): (&'static str, &'a str),
    (confirm_field, confirm): (&'static str, &str),
    max_chars: usize,
) -> Result<&'a str, InvalidArgument> {
    let value = text(field, raw, max_chars)?;
    if value.is_empty() {
        return Err(InvalidArgument::new(field, "is required"));
    }
    if confirm != raw {
        return Err(InvalidArgument::new(
            confirm_field,
            format!("must repeat {field}: this cannot be undone"),
        ));
    }
    Ok(value)
}

/// One page of a keyset-paginated listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    /// Cursor of the next page; `None` on the last page.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// A page from `limit + 1` fetched rows: the extra row, if any, says there is more.
    pub fn from_rows(mut items: Vec<T>, limit: i64, cursor: impl Fn(&T) -> C) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Self { items, next }
    }
}

/// The `next_page_token` of a page whose next cursor is `next` (empty on the last page).
pub fn next_page_token<C: Serialize>(next: &Option<C>) -> Result<String, Status> {
    next.as_ref().map_or(Ok(String::new()), page_token)
}

/// A server-streaming response, as every streaming method returns it.
pub type ResponseStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;

/// A required resource id field (a UUID, surrounding white space allowed).
pub fn id(field: &'static str, raw: &str) -> Result<Uuid, InvalidArgument> {
    Uuid::parse_str(raw.trim()).map_err(|_| InvalidArgument::new(field, "must be a UUID"))
}

/// An optional resource id field (empty: none).
pub fn optional_id(field: &'static str, raw: &str) -> Result<Option<Uuid>, InvalidArgument> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    id(field, raw).map(Some)
}

/// `page_size`: 0 means the default; negative is invalid; large values are capped.
pub fn page_size(requested: i32) -> Result<i64, InvalidArgument> {
    match i64::from(requested) {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(InvalidArgument::new("page_size", "must not be negative")),
        n => Ok(n.min(MAX_PAGE_SIZE)),
    }
}

/// A free-text field, trimmed: at most `max_chars` characters and no NUL or other control
/// character (PostgreSQL text and jsonb refuse NUL, and no field needs the others). Empty
/// is allowed; a required field checks that itself. The error names the field and never
/// quotes the value.
pub fn text<'a>(
    field: &'static str,
    raw: &'a str,
    max_chars: usize,
) -> Result<&'a str, InvalidArgument> {
    let text = raw.trim();
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(InvalidArgument::new(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    if text.chars().count() > max_chars {
        return Err(InvalidArgument::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(text)
}

/// A required free-text field: [`text`], and not empty once trimmed.
pub fn required_text<'a>(
    field: &'static str,
    raw: &'a str,
    max_chars: usize,
) -> Result<&'a str, InvalidArgument> {
    let text = text(field, raw, max_chars)?;
    if text.is_empty() {
        return Err(InvalidArgument::new(
            field,
            format!("is required, 1 to {max_chars} characters"),
        ));
    }
    Ok(text)
}

/// The `reason` of an audited mutation: required, trimmed, 1 to [`MAX_REASON_CHARS`]
/// characters, no control characters.
pub fn reason(raw: &str) -> Result<&str, InvalidArgument> {
    required_text("reason", raw, MAX_REASON_CHARS)
}

/// An optional `reason` (empty allowed), bounded like [`reason`].
pub fn optional_reason(raw: &str) -> Result<&str, InvalidArgument> {
    text("reason", raw, MAX_REASON_CHARS)
}

/// Encodes a keyset cursor as an opaque page token: an error, never the empty token that
/// would tell the caller the listing has ended.
pub fn page_token<C: Serialize>(cursor: &C) -> Result<String, Status> {
    let json = serde_json::to_vec(cursor)
        .map_err(|e| Status::internal(format!("page cursor does not serialize: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Decodes a page token made by [`page_token`]; empty means the first page.
pub fn parse_page_token<C: DeserializeOwned>(token: &str) -> Result<Option<C>, InvalidArgument> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || InvalidArgument::new("page_token", "not a token this server issued");
    let json = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|_| invalid())
}

/// A validated `request_id`; empty means the caller did not ask for idempotency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Option<String>);

impl RequestId {
    pub fn parse(raw: &str) -> Result<Self, InvalidArgument> {
        if raw.is_empty() {
            return Ok(Self(None));
        }
        if raw.len() > MAX_REQUEST_ID_LEN || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidArgument::new(
                "request_id",
                format!("must be 1 to {MAX_REQUEST_ID_LEN} printable ASCII characters"),
            ));
        }
        Ok(Self(Some(raw.to_owned())))
    }

    pub fn none() -> Self {
        Self(None)
    }

    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("request_id {0:?} was already used for a different request")]
    Mismatch(String),
    #[error("stored response for request_id {0:?} cannot be decoded")]
    Corrupt(String),
    /// The request (to be compared with the stored one) or the response (to be stored)
    /// does not serialize; never a digest of nothing, which would make every such request
    /// a replay of the first.
    #[error("request or response for request_id {0:?} does not serialize")]
    Unserializable(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for IdempotencyError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Db(error.into())
    }
}

/// Idempotent mutations. [`Call::run`] does the operation in a transaction that first claims
/// `(scope, method, request_id)`; a repeat gets the first response back. A
/// concurrent repeat waits on the claim's row lock and then sees the committed response;
/// a failed operation rolls its claim back, so the id can be used again.
///
/// The table (one per service schema) is
/// `request_log (scope text, method text, request_id text, request_digest bytea,
/// response jsonb, created_at timestamptz, primary key (scope, method, request_id))`.
#[derive(Debug, Clone, Copy)]
pub struct Idempotency {
    pub table: &'static str,
}

/// One idempotent call, named once (scope, method, request id) for both its claim at the
/// start of its transaction and its response at the end.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    log: Idempotency,
    scope: &'a str,
    method: &'static str,
    request_id: &'a RequestId,
}

/// How [`Call::run`] ended: the work done now, or a repeat answered with the response
/// the first call recorded.
#[derive(Debug)]
pub enum Ran<T> {
    Now(T),
    Before(T),
}

impl<T> Ran<T> {
    /// The response, either way.
    pub fn response(self) -> T {
        match self {
            Ran::Now(response) | Ran::Before(response) => response,
        }
    }

    /// The response if the work was done now: what only a real change is followed by
    /// (its log line, a wake-up).
    pub fn now(&self) -> Option<&T> {
        match self {
            Ran::Now(response) => Some(response),
            Ran::Before(_) => None,
        }
    }
}

/// What a claim found.
#[derive(Debug)]
enum Claim<M> {
    /// First time: do the work, then record its response.
    Fresh,
    /// A repeat: return this response without doing anything.
    Replay(M),
}

/// What a request is compared by: the SHA-256 of its JSON.
fn request_digest(id: &str, request: &impl Serialize) -> Result<[u8; 32], IdempotencyError> {
    let json =
        serde_json::to_vec(request).map_err(|_| IdempotencyError::Unserializable(id.to_owned()))?;
    Ok(sha256(&json))
}

impl Idempotency {
    /// The call `method` of `scope` (an organization, a tenant) with `request_id`.
    pub fn call<'a>(
        self,
        scope: &'a str,
        method: &'static str,
        request_id: &'a RequestId,
    ) -> Call<'a> {
        Call {
            log: self,
            scope,
            method,
            request_id,
        }
    }
}

impl Call<'_> {
    /// Claims the call in `client`'s transaction: `Fresh` the first time, the recorded
    /// response on a repeat of the same request, an error on a different one.
    async fn begin<T: DeserializeOwned>(
        &self,
        client: &impl GenericClient,
        request: &impl Serialize,
    ) -> Result<Claim<T>, IdempotencyError> {
        let (scope, method) = (self.scope, self.method);
        let Some(id) = self.request_id.as_deref() else {
            return Ok(Claim::Fresh);
        };
        let digest = request_digest(id, request)?;
        let insert = client
            .prepare_cached(&format!(
                "insert into {} (scope, method, request_id, request_digest, created_at)
                 values ($1, $2, $3, $4, now()) on conflict do nothing",
                self.log.table
            ))
            .await?;
        if client
            .execute(&insert, &[&scope, &method, &id, &digest.as_slice()])
            .await?
            == 1
        {
            return Ok(Claim::Fresh);
        }
        let select = client
            .prepare_cached(&format!(
                "select request_digest, response from {}
                 where scope = $1 and method = $2 and request_id = $3",
                self.log.table
            ))
            .await?;
        let row = client.query_one(&select, &[&scope, &method, &id]).await?;
        let stored_digest: Vec<u8> = row.get(0);
        if stored_digest != digest {
            return Err(IdempotencyError::Mismatch(id.to_owned()));
        }
        let response: Option<serde_json::Value> = row.get(1);
        let response = response.ok_or_else(|| IdempotencyError::Corrupt(id.to_owned()))?;
        serde_json::from_value(response)
            .map(Claim::Replay)
            .map_err(|_| IdempotencyError::Corrupt(id.to_owned()))
    }

    /// The whole call in one transaction of `client`: claimed, then `work` done and its
    /// response recorded, committed together; a repeat commits nothing new and returns the
    /// first response without running `work`. An error from `work` rolls it all back.
    pub async fn run<T, E>(
        &self,
        client: &mut Client,
        request: &impl Serialize,
        work: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<Ran<T>, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<IdempotencyError> + From<tokio_postgres::Error>,
    {
        let tx = client.transaction().await?;
        let done = match self.begin(&tx, request).await? {
            Claim::Replay(done) => Ran::Before(done),
            Claim::Fresh => {
                let done = work(&tx).await?;
                self.finish(&tx, &done).await?;
                Ran::Now(done)
            }
        };
        tx.commit().await?;
        Ok(done)
    }

    /// Records the call's response, in the transaction that did its work.
    async fn finish(
        &self,
        client: &impl GenericClient,
        response: &impl Serialize,
    ) -> Result<(), IdempotencyError> {
        let (scope, method) = (self.scope, self.method);
        let Some(id) = self.request_id.as_deref() else {
            return Ok(());
        };
        let response = serde_json::to_value(response)
            .map_err(|_| IdempotencyError::Unserializable(id.to_owned()))?;
        let update = client
            .prepare_cached(&format!(
                "update {} set response = $4 where scope = $1 and method = $2 and request_id = $3",
                self.log.table
            ))
            .await?;
        client
            .execute(&update, &[&scope, &method, &id, &response])
            .await?;
        Ok(())
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The wire's timestamp (`google.protobuf.Timestamp`).
pub use prost_types::Timestamp;

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn optional_timestamp(at: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    at.map(timestamp)
}

/// A wire timestamp as a time; `field` is named if it is not a valid one.
pub fn datetime(
    field: &'static str,
    at: &prost_types::Timestamp,
) -> Result<DateTime<Utc>, InvalidArgument> {
    u32::try_from(at.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(at.seconds, nanos))
        .ok_or_else(|| InvalidArgument::new(field, "is not a valid time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_times_round_trip_and_invalid_ones_name_their_field() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_000).unwrap();
        assert_eq!(datetime("t", &timestamp(at)), Ok(at));
        let negative = prost_types::Timestamp {
            seconds: 1,
            nanos: -1,
        };
        assert_eq!(datetime("t", &negative).unwrap_err().field, "t");
    }

    #[test]
    fn an_id_must_be_a_uuid_and_may_be_padded() {
        let uuid = Uuid::now_v7();
        assert_eq!(id("id", &format!(" {uuid} ")), Ok(uuid));
        assert_eq!(id("run_id", "run-1").unwrap_err().field, "run_id");
        assert_eq!(id("id", "").unwrap_err().field, "id");
    }

    #[test]
    fn an_optional_id_left_empty_is_none() {
        assert_eq!(optional_id("binding_id", "  "), Ok(None));
        assert_eq!(
            optional_id("binding_id", "x").unwrap_err().field,
            "binding_id"
        );
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_an_extra_row_was_fetched() {
        let full = Page::from_rows(vec![1, 2, 3], 2, |n| n * 10);
        assert_eq!((full.items, full.next), (vec![1, 2], Some(20)));
        let last = Page::from_rows(vec![1, 2], 2, |n| n * 10);
        assert_eq!((last.items, last.next), (vec![1, 2], None));
    }

    #[test]
    fn page_sizes_default_cap_and_reject_negatives() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(10_000), Ok(MAX_PAGE_SIZE));
        assert_eq!(page_size(7), Ok(7));
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_reject_forgeries() {
        let token = page_token(&("2026-01-01", 42)).unwrap();
        let cursor: Option<(String, i32)> = parse_page_token(&token).unwrap();
        assert_eq!(cursor, Some(("2026-01-01".to_owned(), 42)));
        assert!(parse_page_token::<(String, i32)>("!!!").is_err());
        assert_eq!(next_page_token(&Some(("2026-01-01", 42))).unwrap(), token);
        assert_eq!(next_page_token::<i64>(&None).unwrap(), "");
        let other = page_token(&"x").unwrap();
        assert!(parse_page_token::<(String, i32)>(&other).is_err());
        assert_eq!(parse_page_token::<String>("").unwrap(), None);
    }

    #[test]
    fn a_cursor_that_cannot_be_serialized_is_an_error_not_the_last_page() {
        let keyed_by_pairs = std::collections::HashMap::from([((1u8, 2u8), 3u8)]);
        let status = next_page_token(&Some(keyed_by_pairs)).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
    }

    #[test]
    fn text_refuses_nul_and_control_characters_naming_the_field() {
        for raw in [
            "a\0b",
            "\0",
            "line\u{1b}[31m",
            "x\u{7f}",
            "x\u{85}y",
            "tab\there",
        ] {
            let error = text("name", raw, 100).unwrap_err();
            assert_eq!(error.field, "name");
            assert!(error.reason.contains("control characters"), "{error}");
        }
        assert_eq!(text("name", "  fine  ", 100), Ok("fine"));
        assert_eq!(text("name", "", 100), Ok(""));
        assert_eq!(text("name", "ünïcödé 文字", 10), Ok("ünïcödé 文字"));
        assert!(text("name", &"é".repeat(11), 10).is_err());
    }

    #[test]
    fn reasons_are_required_bounded_and_printable() {
        assert_eq!(reason("  move it  "), Ok("move it"));
        assert_eq!(reason("   ").unwrap_err().field, "reason");
        assert!(reason(&"x".repeat(MAX_REASON_CHARS)).is_ok());
        assert!(reason(&"x".repeat(MAX_REASON_CHARS + 1)).is_err());
        assert!(reason("nul\0byte").is_err());
        assert_eq!(optional_reason(""), Ok(""));
        assert!(optional_reason(&"x".repeat(MAX_REASON_CHARS + 1)).is_err());
    }

    #[test]
    fn request_ids_are_bounded_printable_ascii() {
        assert_eq!(RequestId::parse("").unwrap().as_deref(), None);
        assert_eq!(RequestId::parse("abc-1").unwrap().as_deref(), Some("abc-1"));
        assert!(RequestId::parse("has space").is_err());
        assert!(RequestId::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn a_request_that_cannot_be_serialized_is_an_error_not_an_empty_digest() {
        let keyed_by_pairs = std::collections::HashMap::from([((1u8, 2u8), 3u8)]);
        let error = request_digest("r-1", &keyed_by_pairs).unwrap_err();
        assert!(matches!(error, IdempotencyError::Unserializable(ref id) if id == "r-1"));
        assert_eq!(request_digest("r-1", &"same").unwrap(), sha256(b"\"same\""));
    }
}
