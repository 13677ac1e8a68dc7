//! Posters on local disk (the embedded profile), served by the app itself.

use std::path::{Path as FsPath, PathBuf};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use super::{parse_key, ImageKind, PosterStorage, IMMUTABLE};
use crate::{ApiError, AppState};

/// Where the app serves stored posters: `{ROUTE}/{key}`.
pub const ROUTE: &str = "/posters";

/// Files under one directory (`MARQUEE_DATA_DIR/posters`), one per key.
pub struct DiskPosters {
    dir: PathBuf,
    base_url: String,
}

impl DiskPosters {
    /// `base_url` is where browsers find the posters; by default the app's own `/posters`.
    pub fn new(dir: PathBuf, base_url: Option<String>, public_origin: &str) -> Self {
        Self {
            dir,
            base_url: base_url.unwrap_or_else(|| format!("{public_origin}{ROUTE}")),
        }
    }
}

#[async_trait::async_trait]
impl PosterStorage for DiskPosters {
    async fn put(&self, key: &str, bytes: Bytes, _kind: ImageKind) -> Result<(), ApiError> {
        if parse_key(key).is_none() {
            return Err(ApiError::internal(format!("not a poster key: {key:?}")));
        }
        let path = self.dir.join(key);
        let dir = path.parent().unwrap_or(&self.dir);
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
        // Written aside and renamed, so a reader never sees half a file.
        let partial = path.with_extension(format!("{}.partial", uuid::Uuid::new_v4().simple()));
        let written = match tokio::fs::write(&partial, &bytes).await {
            Ok(()) => tokio::fs::rename(&partial, &path).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(ApiError::internal(format!(
                "writing {}: {e}",
                path.display()
            )));
        }
        Ok(())
    }

    fn public_url(&self, key: &str) -> String {
        format!("{}/{key}", self.base_url)
    }

    fn local_dir(&self) -> Option<&FsPath> {
        Some(&self.dir)
    }
}

/// `GET /posters/{*key}`: a stored poster with its type, never sniffed by the browser.
#[utoipa::path(
    get,
    path = "/posters/{key}",
    tag = "movies",
    description = "A stored poster or thumbnail (`{movie id}/{sha256}.{ext}`), served by the app \
                   itself only when posters are kept on local disk (the embedded profile).",
    params(("key" = String, Path, description = "The poster's key, slash included")),
    responses(
        (status = 200, description = "The image, cacheable forever",
            content((inline(crate::openapi::ImageBytes) = "image/png"), (inline(crate::openapi::ImageBytes) = "image/jpeg"), (inline(crate::openapi::ImageBytes) = "image/webp"))),
        (status = 404, description = "No such poster (`not_found`)", body = crate::openapi::ErrorBody),
    )
)]
pub async fn serve(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("poster".into());
    let dir = state.posters.local_dir().ok_or_else(not_found)?;
    let kind = parse_key(&key).ok_or_else(not_found)?;
    let bytes = match tokio::fs::read(dir.join(&key)).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(ApiError::internal(format!("reading poster {key}: {e}"))),
    };
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(kind.content_type())),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
    ];
    Ok((headers, bytes).into_response())
}
