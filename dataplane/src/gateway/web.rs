//! The web app (clients/web, issue 10), served at `/` from files compiled into the binary, so
//! one container image serves both the API and the app and the Helm chart needs nothing else.
//!
//! Owns which files are served, their content types, caching and the security headers of the
//! app's pages. It must not know the app's routes (the app is one page) nor serve anything under
//! `/v1`. A build without the app (no Node, `cargo build` alone) serves a page saying so.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

use crate::config::S3Config;
use crate::error::ApiError;
use crate::gateway::Shared;

/// Vite's output (`npm run build` in clients/; the Makefile runs it before cargo). Missing at
/// compile time: no files, and [`index`] answers the not-built page.
#[derive(Embed)]
#[folder = "../clients/web/dist"]
#[allow_missing = true]
struct Assets;

/// `GET /` (and `/index.html`): the app's one page.
pub async fn index(State(st): State<Shared>, headers: HeaderMap) -> Response {
    match Assets::get("index.html") {
        Some(file) => serve(&st, "index.html", file, &headers),
        None => not_built(),
    }
}

/// `GET /assets/{file}`: the scripts, styles and images the page loads. Vite writes every file
/// of the build but the page to that one flat directory (the app has no `public/` files), which
/// is also all the Ingress routes besides the page.
pub async fn asset(State(st): State<Shared>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let path = format!("assets/{name}");
    match Assets::get(&path) {
        Some(file) => serve(&st, &path, file, &headers),
        None => ApiError::not_found("no such route").into_response(),
    }
}

fn serve(st: &Shared, path: &str, file: rust_embed::EmbeddedFile, headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let mut resp = if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type(path))], file.data.into_owned()).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex is a valid header value"));
    // Vite names what assets/ holds by content hash: a name never changes meaning. The page
    // itself is revalidated every time so a new release is picked up at the next load.
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if path == "index.html" {
        page_headers(h, &st.cfg.s3);
    }
    resp
}

/// The headers of the app's page: a Content-Security-Policy that lets it load only its own
/// files and talk only to palaverd and the object storage (presigned uploads, previews), no
/// framing, and no Referer (tokens travel in `?token=` on WebSocket and download URLs).
fn page_headers(h: &mut HeaderMap, s3: &S3Config) {
    let storage = storage_origin(s3).map(|o| format!(" {o}")).unwrap_or_default();
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:{storage}; \
         connect-src 'self' ws: wss:{storage}; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    );
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_str(&csp).expect("origins are valid header text"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The origin browsers upload to and download from: the public S3 endpoint (or the endpoint),
/// with the bucket in the host name for virtual-hosted-style URLs.
fn storage_origin(s3: &S3Config) -> Option<String> {
    let endpoint = s3.public_endpoint.as_deref().filter(|e| !e.is_empty()).or(s3.endpoint.as_deref().filter(|e| !e.is_empty()))?;
    let url = reqwest::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    let host = if s3.virtual_hosted { format!("{}.{host}", s3.bucket) } else { host.to_string() };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("{}://{host}{port}", url.scheme()))
}

fn not_built() -> Response {
    const PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Palaver</title></head>\
        <body><h1>The web client was not built</h1>\
        <p>This palaverd was compiled without the web app. Build it with <code>make build</code> \
        (needs Node.js 20.19 or later: it runs <code>npm ci</code> and <code>npm run build</code> in \
        <code>clients/</code> before <code>cargo build</code>).</p>\
        <p>The WebSocket and REST API at <code>/v1</code> work as usual (docs/protocol.md).</p></body></html>";
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], PAGE).into_response()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: Option<&str>, public: Option<&str>, virtual_hosted: bool) -> S3Config {
        S3Config {
            endpoint: endpoint.map(Into::into),
            public_endpoint: public.map(Into::into),
            bucket: "files".into(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            ca_file: None,
            virtual_hosted,
        }
    }

    #[test]
    fn the_page_may_talk_to_the_storage_browsers_see() {
        assert_eq!(storage_origin(&s3(Some("http://127.0.0.1:7070"), None, false)).as_deref(), Some("http://127.0.0.1:7070"));
        assert_eq!(
            storage_origin(&s3(Some("http://minio:9000"), Some("https://files.example.com/"), false)).as_deref(),
            Some("https://files.example.com"),
            "the public endpoint is what browsers reach"
        );
        assert_eq!(
            storage_origin(&s3(Some("https://s3.eu-west-1.amazonaws.com"), None, true)).as_deref(),
            Some("https://files.s3.eu-west-1.amazonaws.com")
        );
        assert_eq!(storage_origin(&s3(None, None, false)), None);
    }

    #[test]
    fn files_get_their_content_types() {
        assert_eq!(content_type("assets/index-3f2a.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
