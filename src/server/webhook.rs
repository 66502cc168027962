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
use serde::Deserialize;
use serde_json::{Value, json};
use std::borrow::Cow;
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

/// The fields of a delivery the intake stores beside the payload. Parsing only these (and
/// skipping the rest, which is still checked to be JSON) costs a fraction of building the whole
/// document as a `Value`. A field of an unexpected type reads as absent, as it did when these
/// were looked up in a `Value`; only a body that is not a JSON object is refused.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    action: Lenient<Cow<'a, str>>,
    #[serde(default)]
    installation: Lenient<Installation>,
    #[serde(default, borrow)]
    repository: Lenient<Repository<'a>>,
}

impl<'a> Envelope<'a> {
    /// `None` unless `body` is one JSON object.
    fn parse(body: &'a str) -> Option<Self> {
        // A derived struct would also take an array (its fields by position).
        if !body.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
            return None;
        }
        serde_json::from_str(body).ok()
    }
}

#[derive(Deserialize)]
struct Installation {
    #[serde(default)]
    id: Lenient<i64>,
}

#[derive(Deserialize)]
struct Repository<'a> {
    #[serde(default, borrow)]
    full_name: Lenient<Cow<'a, str>>,
}

/// A value of type `T`, or `None` when the JSON there is of another type (or null).
struct Lenient<T>(Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Buffering the value as a borrowed `RawValue` keeps the skip cheap; a value that is not
        // a `T` is simply absent.
        let raw: &'de serde_json::value::RawValue = Deserialize::deserialize(deserializer)?;
        Ok(Lenient(serde_json::from_str(raw.get()).ok()))
    }
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
    // Only the envelope fields are read here (the rest is checked to be JSON and skipped); the
    // typed parse happens in the dispatcher.
    let text = std::str::from_utf8(&body).ok();
    let (Some(text), Some(envelope)) = (text, text.and_then(Envelope::parse)) else {
        tracing::warn!(delivery, event, "webhook refused: body is not a JSON object");
        crate::metrics::global().webhook_rejected("malformed");
        return reply(StatusCode::BAD_REQUEST, json!({ "error": "the body must be a JSON object" }));
    };
    let action = envelope.action.0.map(Cow::into_owned);
    let record = NewEvent {
        delivery_id: delivery.to_string(),
        event: event.to_string(),
        action: action.clone(),
        installation_id: envelope.installation.0.and_then(|i| i.id.0),
        repository: envelope.repository.0.and_then(|r| r.full_name.0).map(Cow::into_owned),
        payload: text.to_owned(),
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
    fn the_envelope_reads_its_fields_and_takes_odd_types_as_absent() {
        let e = Envelope::parse(
            r#"{"zen":[1,{"a":"}"}],"action":"opened","installation":{"id":42,"node_id":"x"},
                "repository":{"id":1,"full_name":"acme/connectors","owner":{"login":"acme"}}}"#,
        )
        .unwrap();
        assert_eq!(e.action.0.as_deref(), Some("opened"));
        assert_eq!(e.installation.0.and_then(|i| i.id.0), Some(42));
        assert_eq!(e.repository.0.and_then(|r| r.full_name.0).as_deref(), Some("acme/connectors"));

        // Escapes are decoded; wrong types, nulls and missing fields are absent, not errors.
        let e = Envelope::parse(r#"{"action":"re\u006fpened","installation":{"id":"42"},"repository":"acme/x"}"#).unwrap();
        assert_eq!(e.action.0.as_deref(), Some("reopened"));
        assert!(e.installation.0.unwrap().id.0.is_none());
        assert!(e.repository.0.is_none());
        let e = Envelope::parse(r#" {"action":7,"installation":null}"#).unwrap();
        assert!(e.action.0.is_none() && e.installation.0.is_none() && e.repository.0.is_none());

        for bad in ["", "[]", r#"["opened"]"#, "\"x\"", "7", "null", r#"{"action":"opened""#, r#"{"a":1} {}"#, r#"{"a":tru}"#] {
            assert!(Envelope::parse(bad).is_none(), "{bad:?} was taken as an object");
        }
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
