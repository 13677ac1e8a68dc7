//! Posters: `PUT /api/movies/{id}/poster` takes image bytes, trusts only what decoding them shows,
//! stores the original and a thumbnail, and records their keys and hash (never the bytes) in
//! `PosterAttached`.

pub(crate) mod disk;
mod s3;

use std::io::Cursor;
use std::path::Path as FsPath;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::Json;
use chrono::Utc;
use cqrs_es::Aggregate;
use domain::{Movie, MovieCommand, MovieId, Poster, Role};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::auth::SignedIn;
use crate::extract::RequestContext;
use crate::movies::{execute, if_match, parse_movie_id};
use crate::{ApiError, AppState};

pub use disk::{serve, DiskPosters, ROUTE as DISK_ROUTE};
pub use s3::{NoRegion, S3Posters};

/// Larger images cost too much memory to decode and serve no poster.
const MAX_PIXELS: u64 = 40_000_000;
/// What a decoder may allocate: 40 megapixels at 16-bit RGBA take 320 MB.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;
const THUMBNAIL_WIDTH: u32 = 320;
/// Keeps the thumbnail of a very tall image small: such images get a narrower thumbnail.
const THUMBNAIL_MAX_HEIGHT: u32 = 3 * THUMBNAIL_WIDTH;
const THUMBNAIL_JPEG_QUALITY: u8 = 85;
const THUMBNAIL_SUFFIX: &str = "-thumb";
/// Keys name their content, so a stored poster never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Where poster images are kept, chosen once at start-up: on local disk (embedded) or in S3 (aws).
#[async_trait::async_trait]
pub trait PosterStorage: Send + Sync {
    /// Stores `bytes` under `key`. Keys name their content, so storing one again is harmless.
    async fn put(&self, key: &str, bytes: Bytes, kind: ImageKind) -> Result<(), ApiError>;

    /// The URL a browser loads `key` from.
    fn public_url(&self, key: &str) -> String;

    /// The directory the app serves posters from, when it serves them itself.
    fn local_dir(&self) -> Option<&FsPath> {
        None
    }
}

/// The image formats a poster may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    WebP,
}

impl ImageKind {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::WebP => "image/webp",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpg",
            ImageKind::WebP => "webp",
        }
    }

    fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next()?.trim();
        [ImageKind::Png, ImageKind::Jpeg, ImageKind::WebP]
            .into_iter()
            .find(|kind| kind.content_type().eq_ignore_ascii_case(essence))
    }

    fn from_extension(extension: &str) -> Option<Self> {
        [ImageKind::Png, ImageKind::Jpeg, ImageKind::WebP]
            .into_iter()
            .find(|kind| kind.extension() == extension)
    }

    fn from_format(format: ImageFormat) -> Option<Self> {
        match format {
            ImageFormat::Png => Some(ImageKind::Png),
            ImageFormat::Jpeg => Some(ImageKind::Jpeg),
            ImageFormat::WebP => Some(ImageKind::WebP),
            _ => None,
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            ImageKind::Png => ImageFormat::Png,
            ImageKind::Jpeg => ImageFormat::Jpeg,
            ImageKind::WebP => ImageFormat::WebP,
        }
    }
}

/// `{movie id}/{sha256}.{ext}` for the original, `{movie id}/{sha256}-thumb.{ext}` for its
/// thumbnail.
fn key(movie: MovieId, hash: &str, suffix: &str, kind: ImageKind) -> String {
    format!("{movie}/{hash}{suffix}.{}", kind.extension())
}

/// The kind of image a key names, or `None` when the key is not one this module makes: only a
/// canonical UUID, a slash and a lowercase hex SHA-256 pass, so no key can leave its directory.
fn parse_key(key: &str) -> Option<ImageKind> {
    let (movie, file) = key.split_once('/')?;
    let uuid = uuid::Uuid::parse_str(movie).ok()?;
    let (stem, extension) = file.split_once('.')?;
    let hash = stem.strip_suffix(THUMBNAIL_SUFFIX).unwrap_or(stem);
    let hex_sha256 =
        hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (uuid.hyphenated().to_string() == movie && hex_sha256)
        .then(|| ImageKind::from_extension(extension))
        .flatten()
}

/// A validated upload, ready to store.
struct Prepared {
    kind: ImageKind,
    original: Bytes,
    thumbnail_kind: ImageKind,
    thumbnail: Bytes,
    hash: String,
    width: u32,
    height: u32,
}

/// Checks that the bytes are the declared kind of image and small enough to decode, decodes them
/// and makes the thumbnail. CPU-bound: run it off the async threads.
fn prepare(original: Bytes, declared: ImageKind) -> Result<Prepared, ApiError> {
    let kind = image::guess_format(&original)
        .ok()
        .and_then(ImageKind::from_format)
        .ok_or_else(|| {
            ApiError::UnsupportedMediaType("the body is not a PNG, JPEG or WebP image".into())
        })?;
    if kind != declared {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body is {} but Content-Type says {}",
            kind.content_type(),
            declared.content_type()
        )));
    }
    let reader = || ImageReader::with_format(Cursor::new(&original[..]), kind.format());
    // The header alone tells the size, so a decompression bomb is refused before any decoding.
    let (width, height) = reader().into_dimensions().map_err(undecodable)?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ApiError::Unprocessable(
            "image_too_large",
            format!(
                "the image is {width}×{height} pixels; at most {} megapixels are accepted",
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut decoder = reader();
    decoder.limits(limits);
    let image = decoder.decode().map_err(undecodable)?;
    let (thumbnail_kind, thumbnail) = thumbnail(&image)?;
    Ok(Prepared {
        kind,
        hash: hex::encode(Sha256::digest(&original)),
        original,
        thumbnail_kind,
        thumbnail,
        width,
        height,
    })
}

fn undecodable(error: image::ImageError) -> ApiError {
    ApiError::Unprocessable(
        "undecodable_image",
        format!("the image cannot be decoded: {error}"),
    )
}

/// 320 pixels wide keeping the aspect ratio: PNG when the image has transparency, JPEG otherwise.
fn thumbnail(image: &DynamicImage) -> Result<(ImageKind, Bytes), ApiError> {
    let small = image.resize(THUMBNAIL_WIDTH, THUMBNAIL_MAX_HEIGHT, FilterType::Triangle);
    let mut out = Vec::new();
    let kind = if image.color().has_alpha() {
        DynamicImage::ImageRgba8(small.to_rgba8())
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .map_err(ApiError::internal)?;
        ImageKind::Png
    } else {
        DynamicImage::ImageRgb8(small.to_rgb8())
            .write_with_encoder(JpegEncoder::new_with_quality(
                &mut out,
                THUMBNAIL_JPEG_QUALITY,
            ))
            .map_err(ApiError::internal)?;
        ImageKind::Jpeg
    };
    Ok((kind, Bytes::from(out)))
}

/// The image kind the client declared; anything but the three accepted types is refused.
fn declared_kind(headers: &HeaderMap) -> Result<ImageKind, ApiError> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(ImageKind::from_content_type)
        .ok_or_else(|| {
            ApiError::UnsupportedMediaType(
                "send the image as Content-Type: image/png, image/jpeg or image/webp".into(),
            )
        })
}

/// `PUT /api/movies/{id}/poster`: nothing is stored, no event appended, unless every check passes.
#[utoipa::path(
    put,
    path = "/api/movies/{id}/poster",
    tag = "movies",
    params(("id" = String, Path, description = "The movie id (a UUID)"), ("If-Match" = Option<String>, Header, description = "The version edited, as `\"3\"`"), crate::openapi::IdempotencyKey),
    request_body(
        description = "The image bytes, at most 5 MiB by default; the content must be the declared type",
        content((inline(crate::openapi::ImageBytes) = "image/png"), (inline(crate::openapi::ImageBytes) = "image/jpeg"), (inline(crate::openapi::ImageBytes) = "image/webp")),
    ),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Stored and attached", body = crate::openapi::PosterAttached),
        (status = 400, description = "A bad `If-Match`, `Idempotency-Key` or an unreadable body", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "No `user` role (`forbidden`) or a cross-site cookie request (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such movie (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "The movie changed since that version (`version_conflict`) or was removed (`movie_removed`), or a request with this `Idempotency-Key` is still running", body = crate::openapi::ErrorBody),
        (status = 413, description = "The image is larger than the upload limit (`payload_too_large`)", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not a PNG, JPEG or WebP image, or not the type `Content-Type` declares (`unsupported_media_type`)", body = crate::openapi::ErrorBody),
        (status = 422, description = "Too many pixels (`image_too_large`), undecodable (`undecodable_image`), or a reused `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database or the poster storage is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    context: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    session.require(Role::User)?;
    let id = parse_movie_id(&id)?;
    let expected_version = if_match(&headers)?;
    let declared = declared_kind(&headers)?;
    let limit = state.config.max_upload_bytes;
    let body = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::PayloadTooLarge(limit)
        }
        other => ApiError::BadRequest("unreadable_body", other.body_text()),
    })?;
    let prepared = tokio::task::spawn_blocking(move || prepare(body, declared))
        .await
        .map_err(ApiError::internal)??;

    let original_key = key(id, &prepared.hash, "", prepared.kind);
    let thumbnail_key = key(
        id,
        &prepared.hash,
        THUMBNAIL_SUFFIX,
        prepared.thumbnail_kind,
    );
    let command = MovieCommand::AttachPoster {
        poster: Poster {
            original_key: original_key.clone(),
            thumbnail_key: thumbnail_key.clone(),
            content_hash: prepared.hash,
            content_type: prepared.kind.content_type().to_string(),
            width: prepared.width,
            height: prepared.height,
            bytes: prepared.original.len() as u64,
        },
        expected_version,
        by: session.user_id,
        at: Utc::now(),
    };
    // The movie's own rules first, so an unknown or removed movie leaves no objects behind.
    let (movie, _) = state.store.load::<Movie>(&id.to_string()).await?;
    movie.handle(command.clone(), &()).await?;
    state
        .posters
        .put(&original_key, prepared.original, prepared.kind)
        .await?;
    state
        .posters
        .put(&thumbnail_key, prepared.thumbnail, prepared.thumbnail_kind)
        .await?;
    let executed = execute(&state, &session, id, command, &context).await?;
    Ok(Json(json!({
        "posterUrl": state.posters.public_url(&original_key),
        "thumbnailUrl": state.posters.public_url(&thumbnail_key),
        "position": executed.position(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, alpha: bool) -> Bytes {
        let image = if alpha {
            DynamicImage::new_rgba8(width, height)
        } else {
            DynamicImage::new_rgb8(width, height)
        };
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        Bytes::from(out)
    }

    #[test]
    fn content_types_are_matched_without_parameters_or_case() {
        assert_eq!(
            ImageKind::from_content_type("Image/PNG; charset=binary"),
            Some(ImageKind::Png)
        );
        assert_eq!(ImageKind::from_content_type("image/jpg"), None);
        assert_eq!(ImageKind::from_content_type("image/svg+xml"), None);
    }

    #[test]
    fn only_keys_this_module_makes_parse() {
        let movie = MovieId::from(uuid::Uuid::new_v4());
        let hash = "ab".repeat(32);
        let original = key(movie, &hash, "", ImageKind::WebP);
        let thumbnail = key(movie, &hash, THUMBNAIL_SUFFIX, ImageKind::Jpeg);
        assert_eq!(parse_key(&original), Some(ImageKind::WebP));
        assert_eq!(parse_key(&thumbnail), Some(ImageKind::Jpeg));
        for bad in [
            format!("{movie}/../{hash}.png"),
            format!("../{movie}/{hash}.png"),
            format!("{movie}/{hash}.png/../x.png"),
            format!("{}/{hash}.png", movie.to_string().to_uppercase()),
            format!("{movie}/{}.png", hash.to_uppercase()),
            format!("{movie}/{hash}.gif"),
            format!("{movie}/{hash}"),
            format!("/{movie}/{hash}.png"),
            format!("{movie}\\{hash}.png"),
        ] {
            assert_eq!(parse_key(&bad), None, "{bad}");
        }
    }

    #[test]
    fn thumbnails_are_320_wide_and_keep_transparency() {
        let opaque = prepare(png(640, 960, false), ImageKind::Png).unwrap();
        let thumbnail = image::load_from_memory(&opaque.thumbnail).unwrap();
        assert_eq!(opaque.thumbnail_kind, ImageKind::Jpeg);
        assert_eq!((thumbnail.width(), thumbnail.height()), (320, 480));
        assert_eq!((opaque.width, opaque.height), (640, 960));

        let transparent = prepare(png(100, 50, true), ImageKind::Png).unwrap();
        assert_eq!(transparent.thumbnail_kind, ImageKind::Png);
        let thumbnail = image::load_from_memory(&transparent.thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (320, 160));

        let tall = prepare(png(10, 100, false), ImageKind::Png).unwrap();
        let thumbnail = image::load_from_memory(&tall.thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (96, 960));
    }

    #[test]
    fn the_content_decides_not_the_header() {
        let error = prepare(png(4, 4, false), ImageKind::Jpeg).err().unwrap();
        assert!(matches!(error, ApiError::UnsupportedMediaType(_)));
        let text = prepare(Bytes::from_static(b"hello"), ImageKind::Png)
            .err()
            .unwrap();
        assert!(matches!(text, ApiError::UnsupportedMediaType(_)));
        let truncated = png(64, 64, false).slice(..40);
        assert!(matches!(
            prepare(truncated, ImageKind::Png),
            Err(ApiError::Unprocessable("undecodable_image", _))
        ));
    }
}
