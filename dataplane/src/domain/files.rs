//! Files: attachments in S3-compatible object storage (issue 11; ADR 0009).
//!
//! Owns the upload flow — an upload URL for a declared file, then `complete`, which checks
//! what arrived (size, content type, and for images the bytes themselves) and makes the
//! thumbnail —, the limits (the pod's defaults, a workspace's own), who may download what,
//! and the sweeper that removes objects nothing refers to any more. Clients move the bytes
//! straight to and from the store with presigned URLs; palaverd reads them only to check and
//! preview images. It must not keep bytes in Postgres, nor hand out a URL before checking the
//! caller's access.

use std::time::Duration;

use chrono::{DateTime, Utc};
use palaver_crds::WorkspaceName;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Domain;
use crate::auth::Principal;
use crate::config::FilesConfig;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{ChannelId, FileId};
use crate::media::PreviewError;
use crate::metrics::{self, ChangeLabel, ReasonLabel};
use crate::objects::Objects;
use crate::protocol::FileRef;
use crate::store::{NewFile, Preview, Store, StoredFile};
use crate::workspaces::Workspaces;

/// Most files one message may carry whatever the configuration says (the Workspace CRD's
/// bound too), so a send frame stays small.
pub const MAX_FILES_PER_MESSAGE: usize = 100;
/// Longest file name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest content type accepted.
const MAX_CONTENT_TYPE_LEN: usize = 127;
/// Bytes read to tell an image's format, and its dimensions when it is too large to preview
/// (a JPEG's size may follow tens of kilobytes of metadata).
const SNIFF_BYTES: u64 = 64;
const HEADER_BYTES: u64 = 256 * 1024;

/// The attachment limits that apply in one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLimits {
    pub max_bytes: i64,
    pub max_per_message: i32,
    pub allowed_types: Vec<String>,
}

impl FileLimits {
    /// Whether a content type (an essence, lowercase) matches one of `allowed_types`:
    /// `type/subtype`, `type/*` or `*/*`.
    pub fn allows(&self, content_type: &str) -> bool {
        let major = content_type.split('/').next().unwrap_or_default();
        self.allowed_types.iter().any(|t| match t.strip_suffix("/*") {
            Some("*") => true,
            Some(prefix) => prefix == major,
            None => t == content_type,
        })
    }
}

/// A file a client is about to upload (`POST /v1/files`).
pub struct NewUpload {
    pub channel: ChannelId,
    pub name: String,
    pub size: i64,
    pub content_type: String,
}

/// A file as the files routes answer it.
#[derive(Debug, Serialize)]
pub struct FileInfo {
    #[serde(flatten)]
    pub file: FileRef,
    pub channel: String,
    /// `pending` (not completed yet) or `ready`.
    pub state: String,
    /// The message it is attached to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<&StoredFile> for FileInfo {
    fn from(f: &StoredFile) -> Self {
        Self {
            file: f.file_ref(),
            channel: f.channel_id.clone(),
            state: f.state.clone(),
            message: f.message_id.clone(),
            created_at: f.created_at,
        }
    }
}

/// A begun upload: the file, and where and how to upload it (a presigned `PUT` with the
/// headers it must carry, valid until `expires_at`).
#[derive(Debug, Serialize)]
pub struct Upload {
    #[serde(flatten)]
    pub file: FileInfo,
    pub upload_url: String,
    pub upload_method: &'static str,
    pub upload_headers: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

/// A short-lived URL to the bytes.
#[derive(Debug, Serialize)]
pub struct Link {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// A content type's essence, lowercase (`Image/PNG; x=y` → `image/png`), if it is one.
pub fn essence(content_type: &str) -> Option<String> {
    let e = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
    let (t, sub) = e.split_once('/')?;
    (e.len() <= MAX_CONTENT_TYPE_LEN && token(t) && token(sub)).then_some(e)
}

/// The name rules of uploads: what a file is called in messages and downloads.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(format!("name must be 1 to {MAX_NAME_CHARS} characters")));
    }
    if name.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(ApiError::bad_request("name must not contain control characters, '/' or '\\'"));
    }
    Ok(())
}

/// The attachments of a send, before any lookup: distinct and at most
/// [`MAX_FILES_PER_MESSAGE`] (the workspace's own limit is checked by [`Domain::send`]).
pub fn validate_attachments(files: &[FileId]) -> Result<(), ApiError> {
    if files.len() > MAX_FILES_PER_MESSAGE {
        return Err(ApiError::too_large(format!("a message has at most {MAX_FILES_PER_MESSAGE} files")));
    }
    for (i, f) in files.iter().enumerate() {
        if files[..i].contains(f) {
            return Err(ApiError::bad_request(format!("file {f} is listed twice")));
        }
    }
    Ok(())
}

/// The object keys of a workspace's file: the original keeps a readable name (the last path
/// segment is what a browser saves it as); the thumbnail sits beside it.
fn object_key(ws: &WorkspaceName, id: &str, name: &str) -> String {
    let mut safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '_' }).take(100).collect();
    if safe.trim_matches(|c| c == '.' || c == '_').is_empty() {
        safe = "file".into();
    }
    format!("{ws}/{id}/f/{safe}")
}

fn thumbnail_key(ws: &WorkspaceName, id: &str, content_type: &str) -> String {
    let ext = if content_type == "image/png" { "png" } else { "jpg" };
    format!("{ws}/{id}/t/thumbnail.{ext}")
}

/// Counts a files request by kind and outcome.
fn count<T>(kind: &'static str, r: &Result<T, ApiError>) {
    let result = match r {
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    };
    metrics::global().files.get_or_create(&ChangeLabel { kind, result }).inc();
}

fn ttl(secs: u64) -> (Duration, DateTime<Utc>) {
    let d = Duration::from_secs(secs.max(1));
    (d, Utc::now() + chrono::Duration::seconds(secs.max(1) as i64))
}

impl Domain {
    pub(super) fn objects(&self) -> Result<&Objects, ApiError> {
        self.objects.as_ref().ok_or_else(|| ApiError::unavailable("file storage is not configured on this server (PALAVER_S3_ENDPOINT)"))
    }

    /// The limits of `ws`: its Workspace's `spec.files` where set, else the pod's defaults.
    pub async fn file_limits(&self, ws: &WorkspaceName) -> Result<FileLimits, ApiError> {
        let own = self.store.file_limits(ws).await?;
        let d = &self.files;
        Ok(FileLimits {
            max_bytes: own.max_bytes.unwrap_or(d.file_max_bytes),
            max_per_message: own.max_per_message.unwrap_or(d.file_max_per_message),
            allowed_types: own.allowed_types.unwrap_or_else(|| d.file_allowed_types.clone()),
        })
    }

    /// Begins an upload: checks the declared file against the limits and the caller's right to
    /// send to the channel, records it, and returns the URL to `PUT` the bytes to.
    pub async fn create_upload(&self, p: &Principal, req: NewUpload) -> Result<Upload, ApiError> {
        let r = self.create_upload_inner(p, req).await;
        count("upload", &r);
        r
    }

    async fn create_upload_inner(&self, p: &Principal, req: NewUpload) -> Result<Upload, ApiError> {
        validate_name(&req.name)?;
        let content_type = essence(&req.content_type)
            .ok_or_else(|| ApiError::bad_request(format!("content_type {:?} is not a MIME type (type/subtype)", req.content_type)))?;
        if req.size < 0 {
            return Err(ApiError::bad_request("size must not be negative"));
        }
        let objects = self.objects()?;
        let limits = self.file_limits(&p.workspace).await?;
        if req.size > limits.max_bytes {
            return Err(ApiError::too_large(format!("the file has {} bytes; the limit is {}", req.size, limits.max_bytes)));
        }
        if !limits.allows(&content_type) {
            return Err(ApiError::bad_request(format!(
                "files of type {content_type} may not be uploaded here (allowed: {})",
                limits.allowed_types.join(", ")
            ))
            .with_status(axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        let id = crate::store::new_id("f");
        let key = object_key(&p.workspace, &id, &req.name);
        let new = NewFile {
            id: &id,
            channel: &req.channel,
            uploader: &p.user,
            name: &req.name,
            content_type: &content_type,
            size: req.size,
            object_key: &key,
        };
        let stored = self.store.create_file(&p.workspace, &new).await?;
        let (valid_for, expires_at) = ttl(self.files.file_upload_url_secs);
        let url = objects.upload_url(&key, valid_for).await?;
        Ok(Upload {
            file: FileInfo::from(&stored),
            upload_url: url,
            upload_method: "PUT",
            upload_headers: serde_json::json!({ "content-type": content_type }),
            expires_at,
        })
    }

    /// Completes an upload: the object must be there with the declared size and content type
    /// (an image must really be one); images get their dimensions and a thumbnail. Completing
    /// again answers the same. On a mismatch nothing changes: the client may upload again to
    /// the same URL while it is valid, then complete.
    pub async fn complete_upload(&self, p: &Principal, id: &FileId) -> Result<FileInfo, ApiError> {
        let r = self.complete_inner(p, id).await;
        count("complete", &r);
        r
    }

    async fn complete_inner(&self, p: &Principal, id: &FileId) -> Result<FileInfo, ApiError> {
        let objects = self.objects()?;
        let ws = &p.workspace;
        let f = self.store.file(ws, id).await?.filter(|f| f.uploader == p.user && f.state != "deleted");
        let f = f.ok_or_else(|| ApiError::not_found(format!("no file {id}")))?;
        if f.state == "ready" {
            return Ok(FileInfo::from(&f));
        }
        let stat = objects
            .stat(&f.object_key)
            .await?
            .ok_or_else(|| ApiError::conflict(format!("nothing was uploaded for file {id} yet: PUT it to its upload URL first")))?;
        if stat.size != f.size as u64 {
            return Err(ApiError::bad_request(format!("{} bytes were uploaded; the upload declared {}", stat.size, f.size)));
        }
        let stored_type = stat.content_type.as_deref().and_then(essence);
        if stored_type.as_deref() != Some(f.content_type.as_str()) {
            let got = stat.content_type.as_deref().unwrap_or("no content type");
            return Err(ApiError::bad_request(format!("the file was uploaded as {got}; the upload declared {}", f.content_type)));
        }
        let preview = if crate::media::previewable(&f.content_type) { self.preview(objects, ws, &f).await? } else { Preview::default() };
        let Some(done) = self.store.complete_file(ws, id, &preview).await? else {
            // Completed by a concurrent request, or swept meanwhile.
            let now = self.store.file(ws, id).await?.filter(|f| f.state == "ready");
            return now.map(|f| FileInfo::from(&f)).ok_or_else(|| ApiError::not_found(format!("no file {id}")));
        };
        metrics::global().file_bytes.inc_by(f.size as u64);
        Ok(FileInfo::from(&done))
    }

    /// Checks that an image upload's bytes are the declared format, and makes its preview
    /// when it is small enough; an image that cannot be previewed is attached without one.
    async fn preview(&self, objects: &Objects, ws: &WorkspaceName, f: &StoredFile) -> Result<Preview, ApiError> {
        let head = objects.read_prefix(&f.object_key, SNIFF_BYTES).await?;
        if crate::media::sniff(&head) != Some(f.content_type.as_str()) {
            return Err(ApiError::bad_request(format!("the uploaded bytes are not a {} image", f.content_type)));
        }
        let cfg = &self.files;
        let whole = f.size as u64 <= cfg.thumbnail_max_bytes;
        let bytes = if whole { objects.read(&f.object_key).await? } else { objects.read_prefix(&f.object_key, HEADER_BYTES).await? };
        let (size, max_pixels) = (cfg.thumbnail_size.max(16), cfg.thumbnail_max_pixels);
        // A thumbnail of an image small enough to decode; else its dimensions from its header.
        let made = tokio::task::spawn_blocking(move || {
            if whole {
                crate::media::thumbnail(&bytes, size, max_pixels).map(Ok)
            } else {
                crate::media::dimensions(&bytes).map(Err)
            }
        })
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("thumbnail task failed: {e}")))?;
        let dims = |w: u32, h: u32| Preview { width: Some(w as i32), height: Some(h as i32), thumbnail_key: None };
        match made {
            Ok(Ok(t)) => {
                let key = thumbnail_key(ws, &f.id, t.content_type);
                objects.put(&key, t.bytes.into(), t.content_type).await?;
                Ok(Preview { thumbnail_key: Some(key), ..dims(t.width, t.height) })
            }
            Ok(Err((w, h))) | Err(PreviewError::TooManyPixels(w, h, _)) => Ok(dims(w, h)),
            Err(e) => {
                tracing::info!(file = %f.id, error = %e, "image attached without a preview");
                Ok(Preview::default())
            }
        }
    }

    /// A short-lived URL to a file (or its thumbnail), for whoever may read it: the channel's
    /// readers once it is attached to a message, only its uploader before.
    pub async fn file_link(&self, p: &Principal, id: &FileId, thumbnail: bool) -> Result<Link, ApiError> {
        let r = self.file_link_inner(p, id, thumbnail).await;
        count(if thumbnail { "thumbnail" } else { "download" }, &r);
        r
    }

    async fn file_link_inner(&self, p: &Principal, id: &FileId, thumbnail: bool) -> Result<Link, ApiError> {
        let objects = self.objects()?;
        let not_found = || ApiError::not_found(format!("no file {id}"));
        let f = self.store.file(&p.workspace, id).await?.filter(|f| f.state == "ready").ok_or_else(not_found)?;
        match &f.message_id {
            // A channel the caller may not read: the file does not exist for them either.
            Some(_) => match self.store.can_read(&p.workspace, &f.channel_id, &p.user).await {
                Err(e) if e.code == ErrorCode::NotFound => return Err(not_found()),
                r => r?,
            },
            None if f.uploader == p.user => {}
            None => return Err(not_found()),
        }
        let key = if thumbnail {
            f.thumbnail_key.as_deref().ok_or_else(|| ApiError::not_found(format!("file {id} has no thumbnail")))?
        } else {
            &f.object_key
        };
        let (valid_for, expires_at) = ttl(self.files.file_download_url_secs);
        Ok(Link { url: objects.download_url(key, valid_for).await?, expires_at })
    }
}

/// Removes the objects and rows of files nothing refers to any more — those of deleted
/// messages, and uploads not attached within PALAVER_FILE_ABANDON_SECS — in every workspace,
/// every `cfg.file_sweep_interval_ms`, until `stop`. Pods share the work (rows are claimed
/// with SKIP LOCKED); a row whose objects could not be removed stays for the next round.
pub async fn run_sweeper(store: Store, objects: Objects, workspaces: Workspaces, cfg: FilesConfig, stop: CancellationToken) {
    let every = Duration::from_millis(cfg.file_sweep_interval_ms.max(10));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let cutoff = Utc::now() - chrono::Duration::seconds(cfg.file_abandon_secs as i64);
        for ws in workspaces.list() {
            let objects = &objects;
            let swept = store
                .sweep_files(&ws, cutoff, 100, |files| async move {
                    let mut removed = Vec::new();
                    for f in files {
                        if remove_objects(objects, &f).await {
                            let reason = if f.state == "deleted" { "deleted" } else { "abandoned" };
                            metrics::global().files_swept.get_or_create(&ReasonLabel { reason }).inc();
                            removed.push(f.id);
                        }
                    }
                    removed
                })
                .await;
            if let Err(e) = swept {
                tracing::warn!(workspace = %ws, error = %e, "file sweep failed");
            }
        }
    }
}

async fn remove_objects(objects: &Objects, f: &StoredFile) -> bool {
    for key in std::iter::once(&f.object_key).chain(f.thumbnail_key.as_ref()) {
        if objects.delete(key).await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_compared_by_essence() {
        assert_eq!(essence("Image/PNG").as_deref(), Some("image/png"));
        assert_eq!(essence("text/plain; charset=utf-8").as_deref(), Some("text/plain"));
        assert_eq!(
            essence("application/vnd.openxmlformats-officedocument.wordprocessingml.document").as_deref(),
            Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        );
        for bad in ["", "png", "image/", "/png", "image/p ng", "a/b/c", &format!("a/{}", "b".repeat(200))] {
            assert_eq!(essence(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn allowed_types_match_exactly_by_major_type_or_anything() {
        let l = |t: &[&str]| FileLimits { max_bytes: 1, max_per_message: 1, allowed_types: t.iter().map(|s| s.to_string()).collect() };
        assert!(l(&["*/*"]).allows("application/x-anything"));
        assert!(l(&["image/*"]).allows("image/png") && !l(&["image/*"]).allows("text/plain"));
        assert!(l(&["image/*", "application/pdf"]).allows("application/pdf"));
        assert!(!l(&["application/pdf"]).allows("application/pdfx"));
        assert!(!l(&[]).allows("image/png"));
    }

    #[test]
    fn names_and_attachment_lists_are_checked_at_the_edge() {
        assert!(validate_name("report Q3 (final).pdf").is_ok() && validate_name("übersicht.png").is_ok());
        for bad in ["", "  ", "a/b", "a\\b", "a\u{0}b", &"x".repeat(MAX_NAME_CHARS + 1)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        let id = |s: &str| FileId::new(s).unwrap();
        assert!(validate_attachments(&[id("f_1"), id("f_2")]).is_ok());
        assert!(validate_attachments(&[id("f_1"), id("f_1")]).unwrap_err().message.contains("twice"));
        let many: Vec<FileId> = (0..=MAX_FILES_PER_MESSAGE).map(|i| id(&format!("f_{i}"))).collect();
        assert_eq!(validate_attachments(&many).unwrap_err().code, crate::error::ErrorCode::TooLarge);
    }

    #[test]
    fn object_keys_keep_a_readable_last_segment() {
        let ws = WorkspaceName::new("acme").unwrap();
        assert_eq!(object_key(&ws, "f_1", "Q3 report.pdf"), "acme/f_1/f/Q3_report.pdf");
        assert_eq!(object_key(&ws, "f_1", "..."), "acme/f_1/f/file");
        assert_eq!(object_key(&ws, "f_1", "日本.png"), "acme/f_1/f/__.png");
        assert_eq!(thumbnail_key(&ws, "f_1", "image/png"), "acme/f_1/t/thumbnail.png");
    }
}
