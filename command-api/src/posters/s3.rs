//! Posters in an S3 bucket (the aws profile), loaded by browsers straight from S3 or a CDN.

use aws_config::SdkConfig;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use axum::body::Bytes;

use super::{ImageKind, PosterStorage, IMMUTABLE};
use crate::ApiError;

#[derive(Debug, thiserror::Error)]
#[error("no AWS region is configured for the poster bucket: set AWS_REGION")]
pub struct NoRegion;

pub struct S3Posters {
    client: Client,
    bucket: String,
    base_url: String,
}

impl S3Posters {
    /// `config` brings region, credentials and any endpoint override; an override (an emulator)
    /// gets path-style addressing, which emulators need. Browsers load posters from `base_url`
    /// (a CDN) when given, else from the endpoint or the bucket's own S3 address.
    pub fn new(
        config: &SdkConfig,
        bucket: String,
        base_url: Option<String>,
    ) -> Result<Self, NoRegion> {
        let region = config.region().ok_or(NoRegion)?;
        let endpoint = config.endpoint_url();
        let client = Client::from_conf(
            aws_sdk_s3::config::Builder::from(config)
                .force_path_style(endpoint.is_some())
                .build(),
        );
        let base_url = match (base_url, endpoint) {
            (Some(base_url), _) => base_url,
            (None, Some(endpoint)) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            // A dotted name does not match the wildcard certificate of virtual-hosted addresses.
            (None, None) if bucket.contains('.') => {
                format!("https://s3.{region}.amazonaws.com/{bucket}")
            }
            (None, None) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        Ok(Self {
            client,
            bucket,
            base_url,
        })
    }
}

#[async_trait::async_trait]
impl PosterStorage for S3Posters {
    async fn put(&self, key: &str, bytes: Bytes, kind: ImageKind) -> Result<(), ApiError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(kind.content_type())
            .cache_control(IMMUTABLE)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| {
                ApiError::Unavailable(format!(
                    "storing s3://{}/{key}: {}",
                    self.bucket,
                    DisplayErrorContext(&e)
                ))
            })?;
        Ok(())
    }

    fn public_url(&self, key: &str) -> String {
        format!("{}/{key}", self.base_url)
    }
}
