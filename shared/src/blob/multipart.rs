//! S3 multipart uploads that were begun and never completed nor aborted: what a process
//! killed mid-upload leaves in a bucket (object_store lists objects only, so these are
//! listed here with `ListMultipartUploads` and `ListParts`, signed by object_store's
//! SigV4 signer, and aborted through its `MultipartStore`). An upload's last activity is
//! its newest part's time (its start when it has none), so a sweep by age spares uploads
//! still writing.

use std::{
    sync::{Arc, OnceLock},
    time::SystemTime,
};

use object_store::{
    MultipartId,
    aws::{AmazonS3, AwsAuthorizer, AwsCredential},
    client::{ClientOptions, HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector},
    multipart::MultipartStore,
    path::Path,
};

use super::BlobError;

/// Pages of a listing read at most (1,000 entries each).
const MAX_PAGES: usize = 1000;

/// An upload in the bucket that is neither completed nor aborted.
#[derive(Clone, Debug)]
pub(super) struct Incomplete {
    pub location: Path,
    pub upload_id: String,
    pub last_activity: SystemTime,
}

/// A bucket's multipart uploads.
#[derive(Debug)]
pub(super) struct Multipart {
    store: Arc<AmazonS3>,
    options: ClientOptions,
    /// Made on the first listing: most stores are opened to read and write, never swept.
    client: OnceLock<HttpClient>,
    /// `{endpoint}/{bucket}` (path style).
    bucket_url: String,
    region: String,
}

impl Multipart {
    pub fn new(
        store: Arc<AmazonS3>,
        options: ClientOptions,
        endpoint: Option<&str>,
        bucket: &str,
        region: &str,
    ) -> Self {
        let endpoint = endpoint.map_or_else(
            || format!("https://s3.{region}.amazonaws.com"),
            |e| e.trim_end_matches('/').to_owned(),
        );
        Self {
            store,
            options,
            client: OnceLock::new(),
            bucket_url: format!("{endpoint}/{bucket}"),
            region: region.to_owned(),
        }
    }

    fn client(&self) -> Result<&HttpClient, BlobError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = ReqwestConnector::default()
            .connect(&self.options)
            .map_err(|e| BlobError::Config(e.to_string()))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The incomplete uploads of objects under `prefix` (the whole bucket for `None`).
    pub async fn incomplete(&self, prefix: Option<&Path>) -> Result<Vec<Incomplete>, BlobError> {
        let credential = self.store.credentials().get_credential().await?;
        let mut found = Vec::new();
        let mut markers: Option<(String, String)> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("uploads".to_owned(), String::new())];
            if let Some(prefix) = prefix {
                query.push(("prefix".to_owned(), format!("{prefix}/")));
            }
            if let Some((key, id)) = markers.take() {
                query.push(("key-marker".to_owned(), key));
                query.push(("upload-id-marker".to_owned(), id));
            }
            let page = self.call(&credential, "", &query).await?;
            for upload in elements(&page, "Upload") {
                let (Some(key), Some(upload_id)) = (text(upload, "Key"), text(upload, "UploadId"))
                else {
                    continue;
                };
                let started = text(upload, "Initiated").and_then(|t| time(&t));
                let location = Path::from(key.as_str());
                let last_part = self.last_part(&credential, &key, &upload_id).await?;
                let last_activity = last_part.or(started).unwrap_or(SystemTime::UNIX_EPOCH);
                found.push(Incomplete {
                    location,
                    upload_id,
                    last_activity,
                });
            }
            if text(&page, "IsTruncated").as_deref() != Some("true") {
                return Ok(found);
            }
            match (
                text(&page, "NextKeyMarker"),
                text(&page, "NextUploadIdMarker"),
            ) {
                (Some(key), Some(id)) => markers = Some((key, id)),
                _ => return Ok(found),
            }
        }
        Ok(found)
    }

    /// Aborts an upload: the store drops its parts. One already gone is aborted.
    pub async fn abort(&self, upload: &Incomplete) -> Result<(), BlobError> {
        let id: MultipartId = upload.upload_id.clone();
        match self.store.abort_multipart(&upload.location, &id).await {
            Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// When the newest part of an upload was written (`None`: no part yet).
    async fn last_part(
        &self,
        credential: &AwsCredential,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<SystemTime>, BlobError> {
        let mut newest = None;
        let mut marker = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("uploadId".to_owned(), upload_id.to_owned())];
            if let Some(marker) = marker.take() {
                query.push(("part-number-marker".to_owned(), marker));
            }
            let page = self.call(credential, key, &query).await?;
            for part in elements(&page, "Part") {
                let written = text(part, "LastModified").and_then(|t| time(&t));
                newest = newest.max(written);
            }
            match (
                text(&page, "IsTruncated").as_deref(),
                text(&page, "NextPartNumberMarker"),
            ) {
                (Some("true"), Some(next)) => marker = Some(next),
                _ => break,
            }
        }
        Ok(newest)
    }

    /// A signed GET of `key` in the bucket ("" for the bucket) with `query`; its body.
    async fn call(
        &self,
        credential: &AwsCredential,
        key: &str,
        query: &[(String, String)],
    ) -> Result<String, BlobError> {
        let query = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let path = if key.is_empty() {
            String::new()
        } else {
            format!(
                "/{}",
                key.split('/').map(encode).collect::<Vec<_>>().join("/")
            )
        };
        let url = format!("{}{path}?{query}", self.bucket_url);
        let failed = |e: &dyn std::fmt::Display| BlobError::Failed(format!("listing uploads: {e}"));
        let mut request = http::Request::builder()
            .method(http::Method::GET)
            .uri(&url)
            .body(HttpRequestBody::empty())
            .map_err(|e| failed(&e))?;
        AwsAuthorizer::new(credential, "s3", &self.region).try_authorize(&mut request, None)?;
        let response = self
            .client()?
            .execute(request)
            .await
            .map_err(|e| BlobError::Unavailable(format!("listing uploads: {e}")))?;
        let status = response.status();
        let body = response.into_body().bytes().await.map_err(|e| failed(&e))?;
        let body = String::from_utf8_lossy(&body).into_owned();
        match status.as_u16() {
            200..=299 => Ok(body),
            401 | 403 => Err(BlobError::PermissionDenied(format!(
                "listing uploads: {status}"
            ))),
            404 => Err(BlobError::NotFound(url)),
            500.. => Err(BlobError::Unavailable(format!("listing uploads: {status}"))),
            _ => Err(failed(&status)),
        }
    }
}

/// RFC 3986 percent-encoding, as Signature Version 4 canonicalizes it.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char);
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The contents of every `<name>…</name>` element in `xml`, in order.
fn elements<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        found.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    found
}

/// The text of the first `<name>` element in `xml`, unescaped.
fn text(xml: &str, name: &str) -> Option<String> {
    let raw = elements(xml, name).into_iter().next()?;
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

fn time(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "<?xml version=\"1.0\"?><ListMultipartUploadsResult>\
        <Bucket>b</Bucket><IsTruncated>true</IsTruncated>\
        <NextKeyMarker>p/b&amp;c</NextKeyMarker><NextUploadIdMarker>2</NextUploadIdMarker>\
        <Upload><Key>p/a</Key><UploadId>1</UploadId><Initiated>2026-12-03T05:00:00.000Z</Initiated></Upload>\
        <Upload><Key>p/b&amp;c</Key><UploadId>2</UploadId><Initiated>2026-12-03T06:00:00Z</Initiated></Upload>\
        </ListMultipartUploadsResult>";

    #[test]
    fn a_listing_yields_each_upload_with_its_key_unescaped() {
        let uploads = elements(LISTING, "Upload");
        assert_eq!(uploads.len(), 2);
        assert_eq!(text(uploads[1], "Key").as_deref(), Some("p/b&c"));
        assert_eq!(text(uploads[0], "UploadId").as_deref(), Some("1"));
        assert_eq!(text(LISTING, "IsTruncated").as_deref(), Some("true"));
        assert_eq!(text(LISTING, "NextKeyMarker").as_deref(), Some("p/b&c"));
        let started = time(&text(uploads[0], "Initiated").unwrap()).unwrap();
        let later = time(&text(uploads[1], "Initiated").unwrap()).unwrap();
        assert_eq!(later.duration_since(started).unwrap().as_secs(), 3600);
    }

    #[test]
    fn query_values_are_encoded_as_sigv4_canonicalizes_them() {
        assert_eq!(encode("p/x y~_.-"), "p%2Fx%20y~_.-");
        assert_eq!(encode(""), "");
    }

    #[test]
    fn a_missing_element_or_a_bad_time_is_none() {
        assert!(text("<a>1</a>", "b").is_none());
        assert!(time("yesterday").is_none());
        assert!(elements("<Upload>unclosed", "Upload").is_empty());
    }
}
