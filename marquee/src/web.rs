//! The web UI and the security headers of every response.
//!
//! The UI is plain ES modules and CSS under `marquee/web/`, embedded at build time (`build.rs`)
//! and served from `/assets/VERSION/…`, VERSION being a hash of every asset: those answers may be
//! cached for a year, since a change makes a new URL. `/` answers `index.html` (never cached)
//! with the current VERSION filled in. The UI is a client of the public command API and GraphQL
//! only; it lives in this crate because `serve` is where the routers meet.

use std::sync::{Arc, OnceLock};

use axum::extract::{Path, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use command_api::ApiError;
use sha2::{Digest, Sha256};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

pub use embedded::ASSETS;

/// Where assets are served: `/assets/VERSION/PATH`.
pub const ASSET_PREFIX: &str = "/assets";
/// Stands for `/assets/VERSION` in `index.html`.
const BASE_PLACEHOLDER: &str = "@ASSETS@";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";
/// The one path whose page needs inline script and style: GraphQL's query page.
const QUERY_PAGE_PATH: &str = "/graphql";

struct Built {
    version: String,
    index: String,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut hash = Sha256::new();
        for (path, bytes) in ASSETS {
            hash.update((path.len() as u64).to_le_bytes());
            hash.update(path.as_bytes());
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        }
        let version = hex::encode(&hash.finalize()[..8]);
        let index = std::str::from_utf8(asset("index.html").expect("web/index.html exists"))
            .expect("index.html is UTF-8")
            .replace(BASE_PLACEHOLDER, &format!("{ASSET_PREFIX}/{version}"));
        Built { version, index }
    })
}

/// The version in asset URLs: a hash of every embedded file.
pub fn version() -> &'static str {
    &built().version
}

/// An embedded file by its path below `web/`.
pub fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

/// The content type an asset is served with, from its extension; `None` for a kind the UI does
/// not use (such a file is not served).
pub fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        _ => return None,
    })
}

/// `GET /` and `GET /assets/VERSION/PATH`.
pub fn router() -> Router {
    Router::new().route("/", get(index)).route(
        &format!("{ASSET_PREFIX}/{{version}}/{{*path}}"),
        get(serve_asset),
    )
}

async fn index() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static(NO_CACHE)),
        ],
        built().index.clone(),
    )
        .into_response()
}

async fn serve_asset(Path((version, path)): Path<(String, String)>) -> Response {
    let found = (path != "index.html")
        .then(|| asset(&path).zip(content_type(&path)))
        .flatten();
    let Some((bytes, content_type)) = found else {
        return ApiError::NotFound(format!("{ASSET_PREFIX}/{version}/{path}")).into_response();
    };
    // A page loaded before an upgrade may ask for the old version: it gets today's file, uncached.
    let cache = if version == built().version {
        IMMUTABLE
    } else {
        NO_CACHE
    };
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        bytes,
    )
        .into_response()
}

/// The headers every answer carries: a Content-Security-Policy without inline script, no
/// sniffing, no framing, no referrer to other sites.
#[derive(Clone)]
pub struct SecurityHeaders {
    policy: HeaderValue,
    query_page_policy: HeaderValue,
}

impl SecurityHeaders {
    /// `public_origin` as browsers reach the site, `poster_url` any URL a poster is loaded from
    /// (S3 or a CDN may be another origin).
    pub fn new(public_origin: &str, poster_url: &str) -> Self {
        let mut images = vec!["'self'", "data:", "blob:"];
        let poster_origin = origin(poster_url);
        images.extend(poster_origin);
        let sockets = websocket_origin(public_origin);
        let mut connect = vec!["'self'"];
        connect.extend(sockets.as_deref());
        let policy = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src {}; \
             connect-src {}; font-src 'self'; object-src 'none'; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'self'",
            images.join(" "),
            connect.join(" ")
        );
        // query-api's page keeps its script and style inline; everything else about it holds.
        let query_page_policy = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
             style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
        Self {
            policy: HeaderValue::from_str(&policy).expect("origins were validated at start-up"),
            query_page_policy: HeaderValue::from_static(query_page_policy),
        }
    }
}

/// Middleware: adds [`SecurityHeaders`] to every response (a policy a handler set itself stays).
pub async fn security_headers(
    State(headers): State<Arc<SecurityHeaders>>,
    request: Request,
    next: Next,
) -> Response {
    let query_page = request.uri().path() == QUERY_PAGE_PATH;
    let mut response = next.run(request).await;
    let out = response.headers_mut();
    let policy = if query_page {
        &headers.query_page_policy
    } else {
        &headers.policy
    };
    out.entry(CONTENT_SECURITY_POLICY)
        .or_insert_with(|| policy.clone());
    out.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    out.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    out.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `scheme://host[:port]` of a validated `http(s)` URL.
fn origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    Some(&url[..scheme.len() + 3 + host.len()])
}

/// The WebSocket origin of the site (`ws://` for `http://`): CSP's `'self'` covers it in current
/// browsers, older ones need it named.
fn websocket_origin(public_origin: &str) -> Option<String> {
    let origin = origin(public_origin)?;
    if let Some(rest) = origin.strip_prefix("https://") {
        Some(format!("wss://{rest}"))
    } else {
        origin
            .strip_prefix("http://")
            .map(|rest| format!("ws://{rest}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_content_type_and_index_its_placeholder() {
        for (path, _) in ASSETS {
            assert!(content_type(path).is_some(), "{path} has no content type");
        }
        let index = std::str::from_utf8(asset("index.html").unwrap()).unwrap();
        assert!(index.contains(BASE_PLACEHOLDER));
        assert!(!built().index.contains(BASE_PLACEHOLDER));
    }

    fn text_of(path: &str) -> &'static str {
        std::str::from_utf8(asset(path).unwrap()).unwrap()
    }

    fn scripts() -> impl Iterator<Item = (&'static str, &'static str)> {
        ASSETS
            .iter()
            .filter(|(path, _)| path.ends_with(".js"))
            .map(|(path, _)| (*path, text_of(path)))
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let index = text_of("index.html");
        let lower = index.to_ascii_lowercase();
        for (at, _) in lower.match_indices("<script") {
            let tag = &lower[at..at + lower[at..].find('>').unwrap()];
            assert!(tag.contains(" src="), "inline script: {tag}");
        }
        assert!(!lower.contains("<style"), "inline style element");
        assert!(!lower.contains(" style="), "style attribute");
        let handler = lower
            .split(|c: char| c.is_whitespace())
            .find(|word| word.starts_with("on") && word.contains('='));
        assert_eq!(handler, None, "event-handler attribute");
    }

    #[test]
    fn scripts_never_build_markup_from_strings() {
        for (path, source) in scripts() {
            for sink in [
                ".innerHTML",
                ".outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "createContextualFragment",
                "DOMParser",
            ] {
                assert!(!source.contains(sink), "{path} uses {sink}");
            }
        }
    }

    #[test]
    fn nothing_is_loaded_from_elsewhere() {
        for (path, bytes) in ASSETS {
            let text = std::str::from_utf8(bytes).unwrap();
            for scheme in ["http://", "https://", "url(//", "src=\"//", "href=\"//"] {
                assert!(!text.contains(scheme), "{path} names {scheme}");
            }
        }
    }

    #[test]
    fn every_module_import_is_embedded() {
        let mut imports = 0;
        for (path, source) in scripts() {
            let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
            let specifiers = ["from '", "import('"].into_iter().flat_map(|marker| {
                source
                    .match_indices(marker)
                    .map(move |(at, _)| &source[at + marker.len()..])
            });
            for rest in specifiers {
                let quoted = &rest[..rest.find('\'').unwrap()];
                assert!(
                    quoted.starts_with("./") || quoted.starts_with("../"),
                    "{path} imports {quoted}: only relative imports stay under the versioned URL"
                );
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for part in quoted.split('/') {
                    match part {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        name => parts.push(name),
                    }
                }
                let target = parts.join("/");
                assert!(
                    asset(&target).is_some(),
                    "{path} imports {quoted}: {target} is not embedded"
                );
                imports += 1;
            }
        }
        assert!(imports > 20, "only {imports} imports found");
    }

    #[test]
    fn origins_of_urls() {
        assert_eq!(
            origin("https://b.s3.us-east-1.amazonaws.com/x/y"),
            Some("https://b.s3.us-east-1.amazonaws.com")
        );
        assert_eq!(
            origin("http://localhost:8080"),
            Some("http://localhost:8080")
        );
        assert_eq!(
            websocket_origin("https://marquee.example.com").as_deref(),
            Some("wss://marquee.example.com")
        );
        assert_eq!(
            websocket_origin("http://127.0.0.1:8080").as_deref(),
            Some("ws://127.0.0.1:8080")
        );
    }

    #[test]
    fn the_policy_names_the_poster_origin() {
        let headers = SecurityHeaders::new(
            "https://marquee.example.com",
            "https://posters.s3.eu-west-1.amazonaws.com/",
        );
        let policy = headers.policy.to_str().unwrap();
        assert!(policy
            .contains("img-src 'self' data: blob: https://posters.s3.eu-west-1.amazonaws.com;"));
        assert!(policy.contains("connect-src 'self' wss://marquee.example.com;"));
        assert!(!policy.contains("unsafe-inline"));
    }
}
