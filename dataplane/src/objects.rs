//! S3-compatible object storage: where the bytes of attachments live (issue 11; ADR 0009).
//!
//! Owns the one client palaverd has for it, the presigned URLs clients upload and download
//! with, and the metric of every call. It must not decide who may read or write what (the
//! files domain does) nor touch Postgres.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{Attribute, Certificate, ClientOptions, GetOptions, GetRange, ObjectStore, PutPayload};
use reqwest::Method;

use crate::config::S3Config;
use crate::error::ApiError;
use crate::metrics::{self, ObjectOpLabel, OpLabel};

/// An object's size and the content type it was stored with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub content_type: Option<String>,
}

#[derive(Clone)]
pub struct Objects {
    client: Arc<AmazonS3>,
    /// Signs the URLs handed to clients: the same bucket and credentials, addressed by the
    /// endpoint clients reach (PALAVER_S3_PUBLIC_ENDPOINT), which the signature covers.
    signer: Arc<AmazonS3>,
}

fn builder(c: &S3Config, endpoint: &str, roots: &[Certificate]) -> AmazonS3Builder {
    let options = roots.iter().cloned().fold(ClientOptions::new(), ClientOptions::with_root_certificate);
    AmazonS3Builder::new()
        .with_client_options(options)
        .with_endpoint(endpoint)
        .with_allow_http(endpoint.starts_with("http://"))
        .with_bucket_name(&c.bucket)
        .with_region(&c.region)
        .with_access_key_id(&c.access_key_id)
        .with_secret_access_key(&c.secret_access_key)
        .with_virtual_hosted_style_request(c.virtual_hosted)
}

impl Objects {
    /// The store of the configuration, or `None` when no endpoint is configured (attachments
    /// are then refused with `unavailable`).
    pub fn from_config(c: &S3Config) -> anyhow::Result<Option<Self>> {
        let Some(endpoint) = c.endpoint.as_deref().filter(|e| !e.is_empty()) else { return Ok(None) };
        let public = c.public_endpoint.as_deref().filter(|e| !e.is_empty()).unwrap_or(endpoint);
        let roots = match &c.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).with_context(|| format!("PALAVER_S3_CA_FILE {}", path.display()))?;
                Certificate::from_pem_bundle(&pem).with_context(|| format!("PALAVER_S3_CA_FILE {}: not a PEM bundle", path.display()))?
            }
            None => Vec::new(),
        };
        let client = Arc::new(builder(c, endpoint, &roots).build()?);
        let signer = if public == endpoint { client.clone() } else { Arc::new(builder(c, public, &roots).build()?) };
        Ok(Some(Self { client, signer }))
    }

    /// A URL that lets its holder `PUT` the object at `key` for `ttl`.
    pub async fn upload_url(&self, key: &str, ttl: Duration) -> Result<String, ApiError> {
        let url = timed("sign", self.signer.signed_url(Method::PUT, &Path::from(key), ttl)).await?.ok_or_else(gone)?;
        Ok(url.to_string())
    }

    /// A URL that lets its holder `GET` the object at `key` for `ttl`.
    pub async fn download_url(&self, key: &str, ttl: Duration) -> Result<String, ApiError> {
        let url = timed("sign", self.signer.signed_url(Method::GET, &Path::from(key), ttl)).await?.ok_or_else(gone)?;
        Ok(url.to_string())
    }

    /// The object's size and content type, or `None` if there is no object at `key`.
    pub async fn stat(&self, key: &str) -> Result<Option<Stat>, ApiError> {
        let opts = GetOptions { head: true, ..Default::default() };
        let r = timed("head", self.client.get_opts(&Path::from(key), opts)).await?;
        Ok(r.map(|r| Stat { size: r.meta.size, content_type: r.attributes.get(&Attribute::ContentType).map(|v| v.to_string()) }))
    }

    /// The first `n` bytes of the object (fewer if it is shorter).
    pub async fn read_prefix(&self, key: &str, n: u64) -> Result<Bytes, ApiError> {
        let opts = GetOptions { range: Some(GetRange::Bounded(0..n)), ..Default::default() };
        let r = timed("get", self.client.get_opts(&Path::from(key), opts)).await?.ok_or_else(gone)?;
        timed("get", r.bytes()).await?.ok_or_else(gone)
    }

    /// The whole object.
    pub async fn read(&self, key: &str) -> Result<Bytes, ApiError> {
        let r = timed("get", self.client.get(&Path::from(key))).await?.ok_or_else(gone)?;
        timed("get", r.bytes()).await?.ok_or_else(gone)
    }

    pub async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), ApiError> {
        let mut attributes = object_store::Attributes::new();
        attributes.insert(Attribute::ContentType, content_type.to_string().into());
        let opts = object_store::PutOptions { attributes, ..Default::default() };
        timed("put", self.client.put_opts(&Path::from(key), PutPayload::from_bytes(bytes), opts)).await?.ok_or_else(gone)?;
        Ok(())
    }

    /// Removes the object; one that is not there counts as removed.
    pub async fn delete(&self, key: &str) -> Result<(), ApiError> {
        timed("delete", self.client.delete(&Path::from(key))).await?;
        Ok(())
    }
}

/// The object went away under a caller that had just seen it (deleted meanwhile).
fn gone() -> ApiError {
    ApiError::not_found("the uploaded object is gone")
}

/// Runs one storage call, counting it by operation and outcome and timing it. `None`: there
/// is no object at the key, the one storage answer callers act on; every other failure is the
/// store's problem, logged, and `unavailable` to the client.
async fn timed<T>(op: &'static str, f: impl std::future::Future<Output = object_store::Result<T>>) -> Result<Option<T>, ApiError> {
    let started = Instant::now();
    let r = f.await;
    let m = metrics::global();
    m.object_storage_seconds.get_or_create(&OpLabel { op }).observe(started.elapsed().as_secs_f64());
    let result = match &r {
        Ok(_) => "ok",
        Err(object_store::Error::NotFound { .. }) => "not_found",
        Err(_) => "error",
    };
    m.object_storage_requests.get_or_create(&ObjectOpLabel { op, result }).inc();
    match r {
        Ok(v) => Ok(Some(v)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, op, "object storage error");
            Err(ApiError::unavailable("file storage unavailable, retry"))
        }
    }
}
