//! Extractors whose rejections are the API's JSON errors, where axum's own answer with
//! plain text.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::{ApiError, payload_too_large};
use crate::web::auth::{CurrentUser, Role};
use crate::web::error::WebError;

/// A JSON body: malformed JSON is 400, JSON of the wrong shape 422 (naming the field
/// when serde does), a body over the limit 413, all in the API's error shape.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// Why a JSON body was refused.
#[derive(Debug)]
pub enum JsonRejection {
    /// Larger than [`super::MAX_BODY_BYTES`].
    TooLarge,
    /// Not JSON, unreadable, or the wrong shape.
    Error(ApiError),
}

impl IntoResponse for JsonRejection {
    fn into_response(self) -> Response {
        match self {
            Self::TooLarge => payload_too_large(),
            Self::Error(error) => error.into_response(),
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = JsonRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    JsonRejection::TooLarge
                } else {
                    JsonRejection::Error(ApiError(WebError::BadRequest(
                        "the request body could not be read".into(),
                    )))
                }
            })?;
        parse_json(&bytes).map(Self).map_err(JsonRejection::Error)
    }
}

/// `bytes` as a `T`: a syntax error is 400, a shape error 422.
///
/// # Errors
/// As described.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError(WebError::BadRequest(format!(
            "the request body is not valid JSON: {error}"
        )))
    })?;
    serde_json::from_value(value).map_err(|error| {
        let message = error.to_string();
        let field = named_field(&message).unwrap_or("body").to_owned();
        ApiError(WebError::Invalid {
            error: format!("the request body does not have the expected shape: {message}"),
            fields: BTreeMap::from([(field, message)]),
        })
    })
}

/// The field a serde message names (`unknown field `x``, `missing field `x``).
fn named_field(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let end = message[start..].find('`')? + start;
    Some(&message[start..end])
}

/// Path parameters; a malformed one (`/runs/abc`) is a JSON 400.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection| {
                ApiError(WebError::BadRequest(format!(
                    "the path is malformed: {}",
                    rejection.body_text()
                )))
            })
    }
}

/// Query parameters; a malformed one (`?limit=many`) is a JSON 422 on `query`.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| {
                let message = rejection.body_text();
                ApiError(WebError::Invalid {
                    error: format!("the query is invalid: {message}"),
                    fields: BTreeMap::from([("query".to_owned(), message)]),
                })
            })
    }
}

/// A signed-in user whose role may change things (operator or admin): a viewer gets a
/// JSON 403. Put it before a body extractor, so a viewer is refused whatever they send.
#[derive(Debug, Clone)]
pub struct ApiOperator(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for ApiOperator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiUser(user) = ApiUser::from_request_parts(parts, state).await?;
        user.require(Role::Operator)?;
        Ok(Self(user))
    }
}

/// A signed-in admin: anyone else gets a JSON 403, before a body extractor reads the
/// body.
#[derive(Debug, Clone)]
pub struct ApiAdmin(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for ApiAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiUser(user) = ApiUser::from_request_parts(parts, state).await?;
        user.require(Role::Admin)?;
        Ok(Self(user))
    }
}

/// The signed-in user; without one, a JSON 401 (the guard answers first in practice).
#[derive(Debug, Clone)]
pub struct ApiUser(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        CurrentUser::from_request_parts(parts, state)
            .await
            .map(Self)
            .map_err(ApiError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_is_a_bad_request_and_a_wrong_shape_names_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            version: i64,
        }
        let syntax = parse_json::<Body>(b"{\"version\":").expect_err("malformed");
        assert_eq!(syntax.0.status(), StatusCode::BAD_REQUEST);
        match parse_json::<Body>(b"{\"version\": 1, \"colour\": 2}") {
            Err(ApiError(WebError::Invalid { fields, .. })) => {
                assert!(fields.contains_key("colour"), "{fields:?}");
            }
            other => panic!("expected a 422, got {other:?}"),
        }
    }
}
