//! The backend behind the bucket gateway, from settings: `s3://bucket/prefix`,
//! `file:///path` (made durable by `durable_local`) or `memory://`.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;

use super::durable_local::DurableLocal;
use crate::tier::TierSettings;
use shale_core::error::{Error, ErrorKind, Reason};

/// Where tiered data goes: a parsed `--object-store` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// An S3-compatible bucket, with a key prefix (may be empty).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
    /// A directory on the local filesystem (the embedded default).
    File {
        /// Absolute directory.
        path: std::path::PathBuf,
    },
    /// Process memory (unit tests).
    Memory,
}

fn bad_url(url: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::Invalid,
        Reason::InvalidObjectStoreUrl,
        format!(
            "object store URL {url:?}: {why} (expected s3://bucket[/prefix], file:///absolute/path \
             or memory://)"
        ),
    )
    .with("url", url)
}

impl StoreUrl {
    /// Parses `s3://bucket/prefix`, `file:///path` or `memory://`.
    pub fn parse(url: &str) -> Result<StoreUrl, Error> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid {
                return Err(bad_url(url, "the bucket name must be 3-63 characters of a-z 0-9 . -"));
            }
            let prefix = prefix.trim_matches('/').to_string();
            if prefix.split('/').any(|p| p.is_empty() && !prefix.is_empty()) {
                return Err(bad_url(url, "the key prefix has an empty path segment"));
            }
            return Ok(StoreUrl::S3 { bucket: bucket.to_string(), prefix });
        }
        if let Some(path) = url.strip_prefix("file://") {
            let path = std::path::PathBuf::from(path);
            if !path.is_absolute() {
                return Err(bad_url(url, "the file path must be absolute (file:///...)"));
            }
            return Ok(StoreUrl::File { path });
        }
        if url == "memory://" || url == "memory:///" {
            return Ok(StoreUrl::Memory);
        }
        Err(bad_url(url, "unknown scheme"))
    }

    /// The key prefix every object of this store goes under.
    pub fn prefix(&self) -> ObjectPath {
        match self {
            StoreUrl::S3 { prefix, .. } if !prefix.is_empty() => ObjectPath::from(prefix.as_str()),
            _ => ObjectPath::default(),
        }
    }
}

/// The backend `url` names, unwrapped: the gateway ([`Bucket`](super::Bucket)) adds faults,
/// timeouts, retries and metrics.
pub(crate) fn backend(
    parsed: &StoreUrl,
    url: &str,
    tier: &TierSettings,
) -> Result<Arc<dyn ObjectStore>, Error> {
    Ok(match parsed {
        StoreUrl::S3 { bucket, .. } => Arc::new(
            s3(bucket, tier)
                .map_err(|e| bad_url(url, &format!("cannot configure the S3 client: {e}")))?,
        ),
        StoreUrl::File { path } => {
            let disk = shale_core::disk::process();
            shale_core::disk::create_dir_durable(&*disk, path).map_err(|e| {
                bad_url(url, &format!("cannot create {}: {}", path.display(), e.source))
            })?;
            Arc::new(
                DurableLocal::new(path, disk)
                    .map_err(|e| bad_url(url, &format!("cannot use {}: {e}", path.display())))?,
            )
        }
        StoreUrl::Memory => Arc::new(InMemory::new()),
    })
}

/// An S3 client: credentials from the settings when given, else the environment and the
/// instance / web-identity providers object_store supports; path-style requests unless
/// `s3_virtual_hosted`. object_store's own retries are off: the gateway retries (with a
/// per-attempt timeout) for every backend alike.
fn s3(bucket: &str, tier: &TierSettings) -> object_store::Result<object_store::aws::AmazonS3> {
    // Its HTTP client's TLS takes rustls's process default: ring, the one crypto back end.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(tier.s3_virtual_hosted)
        .with_retry(object_store::RetryConfig {
            max_retries: 0,
            retry_timeout: Duration::from_millis(tier.request_timeout_ms.max(1)),
            ..Default::default()
        })
        .with_client_options(
            object_store::ClientOptions::new()
                .with_timeout(Duration::from_millis(tier.request_timeout_ms.max(1)))
                .with_connect_timeout(Duration::from_secs(5))
                .with_allow_http(tier.s3_endpoint.starts_with("http://")),
        );
    if !tier.s3_endpoint.is_empty() {
        b = b.with_endpoint(&tier.s3_endpoint);
    }
    if !tier.s3_region.is_empty() {
        b = b.with_region(&tier.s3_region);
    }
    if !tier.s3_access_key_id.is_empty() {
        b = b
            .with_access_key_id(&tier.s3_access_key_id)
            .with_secret_access_key(&tier.s3_secret_access_key);
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_name_the_problem() {
        assert_eq!(
            StoreUrl::parse("s3://my-bucket/a/b/").unwrap(),
            StoreUrl::S3 { bucket: "my-bucket".into(), prefix: "a/b".into() }
        );
        assert_eq!(
            StoreUrl::parse("s3://my-bucket").unwrap(),
            StoreUrl::S3 { bucket: "my-bucket".into(), prefix: String::new() }
        );
        assert_eq!(
            StoreUrl::parse("file:///var/tier").unwrap(),
            StoreUrl::File { path: "/var/tier".into() }
        );
        assert_eq!(StoreUrl::parse("memory://").unwrap(), StoreUrl::Memory);
        for (bad, what) in [
            ("gs://b", "unknown scheme"),
            ("s3://B", "bucket name"),
            ("file://relative", "absolute"),
            ("s3://bucket/a//b", "empty path segment"),
        ] {
            let e = StoreUrl::parse(bad).unwrap_err();
            assert!(e.message.contains(what), "{bad}: {}", e.message);
            assert!(e.message.contains(bad), "{bad}: {}", e.message);
        }
    }
}
