//! The etcd figures `groups` reports: the store revision (every write moves it by one) and
//! the keys one group holds. They are read over etcd's HTTP API (the JSON gateway of etcd
//! 3.4+: `POST /v3/kv/range` with `count_only`), so the benchmark needs no etcd client and
//! no access to the metadata crate; the key prefixes are those of `shale_meta::keys`
//! (DESIGN.md, "etcd keys").

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one request to etcd may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A cluster's metadata in etcd, read over HTTP.
#[derive(Debug)]
pub(crate) struct Etcd {
    /// `host:port` of each endpoint, tried in order.
    endpoints: Vec<String>,
    /// `/shale/{cluster}/`.
    root: String,
}

impl Etcd {
    /// Reads cluster `cluster` from `endpoints` (comma-separated `host:port` or
    /// `http://host:port`); fails now if none of them answers.
    pub(crate) async fn connect(endpoints: &str, cluster: &str) -> anyhow::Result<Etcd> {
        if cluster.is_empty() || !cluster.bytes().all(is_plain) {
            bail!("cluster name {cluster:?} is invalid: use 1 or more of [A-Za-z0-9._-]");
        }
        let endpoints = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| match e.strip_prefix("http://") {
                Some(host) => Ok(host.trim_end_matches('/').to_string()),
                None if e.contains("://") => {
                    Err(anyhow!("etcd endpoint {e:?}: only plain http:// endpoints are supported"))
                }
                None => Ok(e.to_string()),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            bail!("no etcd endpoints given; name at least one host:port");
        }
        let etcd = Etcd { endpoints, root: format!("/shale/{cluster}/") };
        etcd.revision().await?;
        Ok(etcd)
    }

    /// The store revision.
    pub(crate) async fn revision(&self) -> anyhow::Result<i64> {
        Ok(self.count(&self.root).await?.0)
    }

    /// The keys of `group`: under `groups/{group}/` (state and members) and under
    /// `offsets/{group}/` (committed offsets).
    pub(crate) async fn group_keys(&self, group: &str) -> anyhow::Result<(u64, u64)> {
        let group = escape(group);
        let (_, state_and_members) = self.count(&format!("{}groups/{group}/", self.root)).await?;
        let (_, offsets) = self.count(&format!("{}offsets/{group}/", self.root)).await?;
        Ok((state_and_members, offsets))
    }

    /// The revision, and the number of keys under `prefix`.
    async fn count(&self, prefix: &str) -> anyhow::Result<(i64, u64)> {
        let mut end = prefix.as_bytes().to_vec();
        // Every prefix ends in '/', so the range end is the prefix with its last byte + 1.
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let request = serde_json::json!({
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(&end),
            "count_only": true,
        });
        let response = self.post("/v3/kv/range", &request.to_string()).await?;
        // int64 fields come as JSON strings, and a zero count is left out.
        let number = |v: &serde_json::Value| -> Option<i64> { v.as_str()?.parse().ok() };
        let revision = number(&response["header"]["revision"])
            .with_context(|| format!("etcd's range answer has no revision: {response}"))?;
        let count = number(&response["count"]).unwrap_or(0);
        Ok((revision, count.try_into().unwrap_or(0)))
    }

    /// POSTs `body` to `path` at the first endpoint that answers.
    async fn post(&self, path: &str, body: &str) -> anyhow::Result<serde_json::Value> {
        let mut last_error = None;
        for endpoint in &self.endpoints {
            match post(endpoint, path, body).await {
                Ok(answer) => return Ok(answer),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("no etcd endpoints")))
    }
}

/// One HTTP/1.0 exchange: the server closes the connection after its answer, so the body
/// is everything after the head.
async fn post(endpoint: &str, path: &str, body: &str) -> anyhow::Result<serde_json::Value> {
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: {endpoint}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut conn = TcpStream::connect(endpoint).await?;
        conn.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        conn.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("etcd at {endpoint} did not answer within {TIMEOUT:?}"))?
        .with_context(|| format!("etcd at {endpoint}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("etcd at {endpoint} answered POST {path} with {status:?}: {}", body.trim());
    }
    serde_json::from_str(body)
        .with_context(|| format!("etcd at {endpoint} answered POST {path} with no JSON"))
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// A name as one key component, as `shale_meta::keys` writes it: `%XX` for every byte
/// outside `[A-Za-z0-9._-]`.
fn escape(name: &str) -> String {
    name.bytes()
        .map(|b| if is_plain(b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_escape_as_the_metadata_keys_do() {
        assert_eq!(escape("bench-groups.v1_a"), "bench-groups.v1_a");
        assert_eq!(escape("a/b c"), "a%2Fb%20c");
        assert_eq!(escape("é"), "%C3%A9");
    }
}
