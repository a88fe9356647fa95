//! Errors of the Dapr-compatible API: an HTTP status and a body
//! `{"errorCode": …, "message": …}` with Dapr's codes and message shapes
//! (dapr/dapr `pkg/messages`), built from the store's [`StateError`].

use hyper::StatusCode;
use serde_json::json;

use crate::store::StateError;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Dapr's error code (`ERR_STATE_SAVE`…).
    pub code: &'static str,
    /// What happened and what to do.
    pub message: String,
    /// Dapr's `ErrorInfo` reason and metadata, for the errors Dapr details.
    pub reason: Option<(&'static str, serde_json::Value)>,
    /// The methods the path takes, for the `Allow` header of a `405`.
    pub allow: Option<&'static str>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            reason: None,
            allow: None,
        }
    }

    /// The JSON body (with Dapr's `details` when the error has a reason).
    pub fn body(&self) -> String {
        let mut body = json!({ "errorCode": self.code, "message": self.message });
        if let Some((reason, metadata)) = &self.reason {
            body["details"] = json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "domain": "dapr.io",
                "metadata": metadata,
                "reason": reason,
            }]);
        }
        body.to_string()
    }

    /// The same error with Dapr's `ErrorInfo` reason (and its metadata).
    pub fn with_reason(mut self, reason: &'static str, metadata: serde_json::Value) -> ApiError {
        self.reason = Some((reason, metadata));
        self
    }

    /// The same error with an `Allow` header listing `methods`.
    pub fn with_allow(mut self, methods: &'static str) -> ApiError {
        self.allow = Some(methods);
        self
    }

    /// `400 ERR_MALFORMED_REQUEST`: the body or a parameter is not what the
    /// API takes.
    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST", message)
    }

    /// `400 ERR_MALFORMED_REQUEST` for a body that is not the JSON expected.
    pub fn bad_body(e: impl std::fmt::Display) -> ApiError {
        ApiError::malformed(format!("failed deserializing HTTP body: {e}"))
    }

    /// `400 ERR_STATE_STORE_NOT_FOUND`.
    pub fn store_not_found(store: &str, known: &[&str], app_id: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ERR_STATE_STORE_NOT_FOUND",
            format!(
                "state store {store} is not found; the stores here are: {}",
                known.join(", ")
            ),
        )
        .with_reason("DAPR_STATE_NOT_FOUND", json!({ "appID": app_id }))
    }

    /// The status and message for a store error of operation `code`
    /// (`ERR_STATE_SAVE`, `ERR_STATE_DELETE`, …): an etag mismatch is `409`
    /// (also for a well-formed etag the store has not issued: it is not the
    /// key's version either, and Dapr's stores answer an etag that parses
    /// but does not match so), a malformed etag and every other mistake of
    /// the request `400`, an unreachable backend `503`, anything else `500`.
    /// `wrap` turns the store's message into Dapr's message for the
    /// operation.
    pub fn from_state(
        code: &'static str,
        e: &StateError,
        wrap: impl FnOnce(&str) -> String,
    ) -> ApiError {
        let root = e.root();
        let (status, what) = match root {
            StateError::EtagMismatch | StateError::AlreadyExists => (
                StatusCode::CONFLICT,
                "possible etag mismatch. error from state store: ".to_string() + &root.to_string(),
            ),
            StateError::InvalidEtag(etag) if well_formed_etag(etag) => (
                StatusCode::CONFLICT,
                "possible etag mismatch. error from state store: ".to_string()
                    + &StateError::EtagMismatch.to_string(),
            ),
            StateError::InvalidEtag(_) => (
                StatusCode::BAD_REQUEST,
                "invalid etag value: ".to_string() + &root.to_string(),
            ),
            StateError::WrongType { .. } => (StatusCode::CONFLICT, root.to_string()),
            StateError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, root.to_string()),
            StateError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, root.to_string()),
            StateError::QuotaExceeded { .. } => {
                (StatusCode::INSUFFICIENT_STORAGE, root.to_string())
            }
            _ => (StatusCode::BAD_REQUEST, root.to_string()),
        };
        let message = match e {
            StateError::Aborted { index, .. } => wrap(&format!("operation {index}: {what}")),
            _ => wrap(&what),
        };
        ApiError::new(status, code, message)
    }
}

/// Is this an etag as the stores write them (16 lower-case hex digits)?
fn well_formed_etag(etag: &str) -> bool {
    etag.len() == 16 && etag.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}
