//! `POST /webhook`: GitHub's deliveries come in here.
//!
//! In order: the body-size cap (a layer, before anything reads the body), the HMAC-SHA256
//! signature over the raw bytes, the event and delivery headers, a JSON check, then the delivery
//! goes to the intake writer ([`super::intake`]), which records the delivery id and the event in
//! one transaction with whatever else arrived at the same time. The answer (202) goes out once
//! that transaction has committed; deciding what the event means happens in the dispatcher.
//!
//! Nothing here logs the secret, the signature or the payload.

use super::AppState;
use crate::store::{Intake, NewEvent};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
pub const EVENT_HEADER: &str = "x-github-event";
pub const DELIVERY_HEADER: &str = "x-github-delivery";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("sha1 signatures are refused; GitHub sends sha256 in X-Hub-Signature-256")]
    Sha1,
    #[error("X-Hub-Signature-256 is not of the form sha256=<hex>")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// The header value GitHub would send for `body`: `sha256=<hex>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// Checks an `X-Hub-Signature-256` value against the raw body, comparing in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(SignatureError::Missing)?;
    let (algorithm, digest) = header.split_once('=').ok_or(SignatureError::Malformed)?;
    match algorithm.to_ascii_lowercase().as_str() {
        "sha256" => {}
        "sha1" => return Err(SignatureError::Sha1),
        _ => return Err(SignatureError::Malformed),
    }
    let expected = hex::decode(digest).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut m = mac(secret);
    m.update(body);
    m.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Delivery ids are GUIDs; anything long or odd is refused rather than stored as a key.
fn valid_delivery_id(id: &str) -> bool {
    id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(err) =
        verify_signature(state.webhook_secret.expose().as_bytes(), &body, header(&headers, SIGNATURE_HEADER))
    {
        tracing::warn!(reason = %err, bytes = body.len(), "webhook refused: bad signature");
        crate::metrics::global().webhook_rejected("signature");
        return reply(StatusCode::UNAUTHORIZED, json!({ "error": err.to_string() }));
    }
    let (Some(event), Some(delivery)) = (header(&headers, EVENT_HEADER), header(&headers, DELIVERY_HEADER)) else {
        tracing::warn!("webhook refused: X-GitHub-Event or X-GitHub-Delivery missing");
        crate::metrics::global().webhook_rejected("headers");
        return reply(
            StatusCode::BAD_REQUEST,
            json!({ "error": "X-GitHub-Event and X-GitHub-Delivery headers are required" }),
        );
    };
    if !valid_delivery_id(delivery) || event.len() > 64 {
        crate::metrics::global().webhook_rejected("headers");
        return reply(StatusCode::BAD_REQUEST, json!({ "error": "malformed X-GitHub-Event or X-GitHub-Delivery" }));
    }
    // Only the envelope fields are read here; the typed parse happens in the dispatcher.
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            tracing::warn!(delivery, event, "webhook refused: body is not a JSON object");
            crate::metrics::global().webhook_rejected("malformed");
            return reply(StatusCode::BAD_REQUEST, json!({ "error": "the body must be a JSON object" }));
        }
    };
    let action = payload.get("action").and_then(Value::as_str).map(str::to_string);
    let record = NewEvent {
        delivery_id: delivery.to_string(),
        event: event.to_string(),
        action: action.clone(),
        installation_id: payload.pointer("/installation/id").and_then(Value::as_i64),
        repository: payload.pointer("/repository/full_name").and_then(Value::as_str).map(str::to_string),
        // Verified UTF-8 JSON: serde_json checked it above.
        payload: String::from_utf8_lossy(&body).into_owned(),
        received_at: chrono::Utc::now(),
    };
    match state.writer.record(record).await {
        Ok(Intake::Recorded(id)) => {
            tracing::info!(delivery, event, action = action.as_deref().unwrap_or(""), event_id = %id, "webhook accepted");
            crate::metrics::global().webhook_received(event);
            reply(StatusCode::ACCEPTED, json!({ "status": "accepted", "delivery": delivery }))
        }
        Ok(Intake::Duplicate) => {
            tracing::info!(delivery, event, "webhook redelivered: already handled");
            crate::metrics::global().webhook_rejected("duplicate");
            reply(StatusCode::OK, json!({ "status": "duplicate", "delivery": delivery }))
        }
        Err(err) => {
            // GitHub shows the failure and the delivery can be redelivered once the store is back.
            tracing::error!(delivery, event, "persisting the webhook failed: {err:#}");
            crate::metrics::global().webhook_rejected("store_unavailable");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "could not persist the delivery; redeliver later" }),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let body = br#"{"zen":"hi"}"#;
        let good = sign(b"s3cret", body);
        assert_eq!(verify_signature(b"s3cret", body, Some(&good)), Ok(()));
        assert_eq!(verify_signature(b"other", body, Some(&good)), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(b"s3cret", b"{}", Some(&good)), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(b"s3cret", body, None), Err(SignatureError::Missing));
        assert_eq!(verify_signature(b"s3cret", body, Some("sha1=abcd")), Err(SignatureError::Sha1));
        assert_eq!(verify_signature(b"s3cret", body, Some("sha256=zz")), Err(SignatureError::Malformed));
        assert_eq!(verify_signature(b"s3cret", body, Some("sha256=abcd")), Err(SignatureError::Malformed));
        assert_eq!(verify_signature(b"s3cret", body, Some(&good.to_uppercase().replace("SHA256", "sha256"))), Ok(()));
    }

    #[test]
    fn known_vector() {
        // The example from GitHub's "Validating webhook deliveries" page.
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
