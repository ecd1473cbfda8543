//! Where a tiering test's broker tiers: the embedded filesystem bucket under its data
//! directory, or a private S3 server (moto on 127.0.0.1), with a config that uploads and
//! runs retention often. A test file includes it beside `common/s3.rs` as `s3_server`.

// Each test file that includes it uses part of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use crate::s3_server::{self, S3Server};
use shale::settings::TierSettings;
use shale::tier::Bucket;

/// A broker config that runs retention and uploads often, plus S3 settings if given.
pub(crate) fn config_file(s3_endpoint: Option<&str>) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "[log]\nretention_check_interval_ms = 200").unwrap();
    writeln!(f, "[tier]\nupload_interval_ms = 200\nrequest_timeout_ms = 10000").unwrap();
    if let Some(endpoint) = s3_endpoint {
        write!(f, "{}", s3_server::reach_toml(endpoint)).unwrap();
    }
    f
}

/// Where a test broker tiers: the embedded filesystem bucket under its data dir, or a
/// private S3 server (moto on 127.0.0.1). The tests that are not about one kind of store
/// run on both.
pub(crate) struct Target {
    s3: Option<S3Server>,
}

impl Target {
    pub(crate) fn filesystem() -> Target {
        Target { s3: None }
    }

    pub(crate) fn s3(bucket: &str) -> Target {
        Target { s3: Some(S3Server::start(bucket)) }
    }

    pub(crate) fn url(&self, data_dir: &Path) -> String {
        match &self.s3 {
            Some(s3) => format!("s3://{}/shale", s3.bucket()),
            None => format!("file://{}", data_dir.canonicalize().unwrap().join("bucket").display()),
        }
    }

    /// A broker config for this target (see [`config_file`]).
    pub(crate) fn config(&self) -> tempfile::NamedTempFile {
        config_file(self.s3.as_ref().map(S3Server::endpoint).as_deref())
    }

    /// `--config` and, for S3, `--object-store`.
    pub(crate) fn args(&self, config: &tempfile::NamedTempFile, data_dir: &Path) -> Vec<String> {
        let mut args = vec!["--config".to_string(), config.path().to_string_lossy().to_string()];
        if self.s3.is_some() {
            args.extend(["--object-store".to_string(), self.url(data_dir)]);
        }
        args
    }

    /// The bucket, opened the way the broker opens it.
    pub(crate) fn bucket(&self, data_dir: &Path) -> Bucket {
        let mut t = TierSettings::default();
        if let Some(s3) = &self.s3 {
            s3_server::reach(&mut t, &s3.endpoint());
        }
        Bucket::open(&self.url(data_dir), &t).unwrap()
    }
}

pub(crate) fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
