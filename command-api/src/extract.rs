//! Request extractors that answer bad input with the contract's errors.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use domain::{UserId, Username};
use event_store::EventMetadata;
use serde::de::DeserializeOwned;

use crate::{ApiError, AppState};

/// JSON bodies: malformed JSON is 400, the wrong shape 422, the wrong content type 415, a body
/// over the limit 413 — each with the contract's error body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Unprocessable(
                "invalid_body",
                e.body_text().replace(
                    "Failed to deserialize the JSON body into the target type: ",
                    "",
                ),
            )),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::MalformedJson(format!(
                "the body is not valid JSON: {}",
                e.body_text()
                    .replace("Failed to parse the request body as JSON: ", "")
            ))),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "send the body as Content-Type: application/json".into(),
            )),
            Err(JsonRejection::BytesRejection(_)) => {
                Err(ApiError::PayloadTooLarge(state.config.max_json_bytes))
            }
            Err(other) => Err(ApiError::BadRequest("bad_request", other.body_text())),
        }
    }
}

/// Who is calling, from where: copied into every event the request appends.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub correlation_id: String,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl RequestContext {
    /// `actor`: the username acting (signed in, or signing up or in): their key seals the
    /// client IP and user agent.
    pub fn metadata(&self, actor: Option<String>) -> EventMetadata {
        let actor_id = actor
            .as_deref()
            .and_then(|name| Username::parse(name).ok())
            .map(|name| UserId::for_username(&name).to_string());
        EventMetadata {
            correlation_id: self.correlation_id.clone(),
            causation_id: None,
            actor,
            actor_id,
            client_ip: self.client_ip.map(|ip| ip.to_string()),
            user_agent: self.user_agent.clone(),
        }
    }
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let correlation_id = header(&parts.headers, "x-request-id")
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        let forwarded = state
            .config
            .trust_forwarded_for
            .then(|| forwarded_client(&parts.headers))
            .flatten();
        Ok(RequestContext {
            correlation_id,
            client_ip: forwarded.or(peer),
            user_agent: header(&parts.headers, "user-agent")
                .map(|agent| agent.chars().take(256).collect()),
        })
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// The client as the load balancer saw it: the last address in X-Forwarded-For, which the
/// balancer appends (earlier entries come from the client and prove nothing).
fn forwarded_client(headers: &HeaderMap) -> Option<IpAddr> {
    header(headers, "x-forwarded-for")?
        .rsplit(',')
        .next()
        .and_then(|last| last.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusts_only_the_address_the_balancer_appended() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 10.0.0.7".parse().unwrap());
        assert_eq!(
            forwarded_client(&headers),
            Some("10.0.0.7".parse().unwrap())
        );
        headers.insert("x-forwarded-for", "not an ip".parse().unwrap());
        assert_eq!(forwarded_client(&headers), None);
    }
}
