//! SASL on the Kafka listener: `SaslHandshake` with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
//! and OAUTHBEARER, the mechanisms `kafka.sasl_mechanisms` enables. After a v1 handshake
//! the exchange runs in `SaslAuthenticate` requests, and a failed authentication is
//! answered with SASL_AUTHENTICATION_FAILED; after a v0 handshake the tokens travel as
//! bare size-prefixed frames, and a failure gets no answer. Either way it is audited and
//! the connection closed, as Kafka does.
//! Users' SCRAM credentials are managed with `AlterUserScramCredentials` and read with
//! `DescribeUserScramCredentials` (or `shale user`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::{
    AlterUserScramCredentialsResponse, AlterUserScramCredentialsResult,
};
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResponse, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Sasl, Session};
use crate::errors::{About, code};
use shale_broker::api::{Identity, ScramChange, ScramMechanism};
use shale_core::error::Error;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// `SaslHandshake`: agree on a mechanism.
pub(crate) fn handshake(
    kafka: &Arc<Kafka>,
    session: &mut Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: SaslHandshakeRequest = call.decode()?;
    let enabled = &kafka.settings.sasl_mechanisms;
    let mut body =
        SaslHandshakeResponse::default().with_mechanisms(enabled.iter().map(|m| text(m)).collect());
    let asked = req.mechanism.to_string();
    match (&session.sasl, enabled.iter().find(|m| m.eq_ignore_ascii_case(&asked))) {
        (Sasl::Idle, Some(m)) => {
            session.sasl = Sasl::Chosen(m.clone());
            session.bare_sasl = call.version() == 0;
        }
        (Sasl::Idle, None) => body.error_code = ResponseError::UnsupportedSaslMechanism.code(),
        _ => body.error_code = ResponseError::IllegalSaslState.code(),
    }
    Ok(call.reply(&body, Duration::ZERO))
}

/// What one round of SASL leads to.
enum Step {
    /// The mechanism goes on with these bytes for the client.
    Continue(Bytes, Sasl),
    /// The client authenticated as this identity (with these last bytes for it).
    Done(Bytes, Identity),
}

fn illegal_state() -> Error {
    Error::new(
        shale_core::error::ErrorKind::Invalid,
        shale_core::error::Reason::Other("ILLEGAL_SASL_STATE".into()),
        "SaslAuthenticate without a SaslHandshake agreeing on a mechanism first, or after the \
         exchange ended",
    )
}

/// `SaslAuthenticate`: one round of the agreed mechanism. A failure ends the connection.
pub(crate) async fn authenticate(
    kafka: &Arc<Kafka>,
    session: &mut Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: SaslAuthenticateRequest = call.decode()?;
    let state = std::mem::take(&mut session.sasl);
    let mut body = SaslAuthenticateResponse::default();
    match step(kafka, state, &req.auth_bytes).await {
        Ok(Step::Continue(bytes, next)) => {
            session.sasl = next;
            body.auth_bytes = bytes;
        }
        Ok(Step::Done(bytes, identity)) => {
            tracing::debug!(peer = %session.peer, principal = %identity.principal, "Kafka client authenticated");
            session.identity = identity;
            session.sasl = Sasl::Done;
            body.auth_bytes = bytes;
        }
        Err(e) => {
            let illegal = e.reason == shale_core::error::Reason::Other("ILLEGAL_SASL_STATE".into());
            body.error_code = match illegal {
                true => ResponseError::IllegalSaslState.code(),
                false => ResponseError::SaslAuthenticationFailed.code(),
            };
            body.error_message = Some(text(&e.message));
            kafka.api.refused("kafka SaslAuthenticate", &e);
            tracing::info!(peer = %session.peer, error = %e, "Kafka SASL authentication failed; closing the connection");
            session.close_after = true;
        }
    }
    Ok(call.reply(&body, Duration::ZERO))
}

/// One SASL token in a bare frame (after a `SaslHandshake` v0): the mechanism's answer
/// goes back the same way, and once the client authenticated the connection speaks Kafka
/// requests again. A failure closes the connection without an answer, as Kafka does.
pub(crate) async fn bare_token(kafka: &Arc<Kafka>, session: &mut Session, token: Bytes) -> Answer {
    let state = std::mem::take(&mut session.sasl);
    let (bytes, next) = match step(kafka, state, &token).await {
        Ok(Step::Continue(bytes, next)) => (bytes, next),
        Ok(Step::Done(bytes, identity)) => {
            tracing::debug!(peer = %session.peer, principal = %identity.principal, "Kafka client authenticated");
            session.identity = identity;
            session.bare_sasl = false;
            (bytes, Sasl::Done)
        }
        Err(e) => {
            kafka.api.refused("kafka SASL (handshake v0)", &e);
            tracing::info!(peer = %session.peer, error = %e, "Kafka SASL authentication failed; closing the connection");
            return Answer::Close;
        }
    };
    session.sasl = next;
    let mut framed = bytes::BytesMut::with_capacity(4 + bytes.len());
    framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    framed.extend_from_slice(&bytes);
    Answer::Ready(framed.freeze(), Duration::ZERO)
}

async fn step(kafka: &Kafka, state: Sasl, bytes: &[u8]) -> Result<Step, Error> {
    let api = &kafka.api;
    match state {
        Sasl::Chosen(m) if m == "PLAIN" => {
            let (authzid, user, password) = plain(bytes)?;
            // An authorization id other than the user itself is refused (no impersonation).
            if !authzid.is_empty() && authzid != user {
                return Err(shale_broker::api::authentication_failed("PLAIN"));
            }
            Ok(Step::Done(Bytes::new(), api.password_identity("PLAIN", user, password).await?))
        }
        Sasl::Chosen(m) if m == "OAUTHBEARER" => {
            let token = bearer(bytes)?;
            Ok(Step::Done(Bytes::new(), api.sasl_bearer(token).await?))
        }
        Sasl::Chosen(m) => {
            let mechanism = ScramMechanism::parse(&m)
                .ok_or_else(|| Error::invalid(format!("SASL mechanism {m} is not served")))?;
            let (first, exchange) = api.scram_first(mechanism, bytes).await?;
            Ok(Step::Continue(first.into(), Sasl::Scram(Box::new(exchange))))
        }
        Sasl::Scram(exchange) => {
            let (last, identity) = api.scram_final(&exchange, bytes)?;
            Ok(Step::Done(last.into(), identity))
        }
        Sasl::Idle | Sasl::Done => Err(illegal_state()),
    }
}

/// OAUTHBEARER's initial response (RFC 7628): a GS2 header, then `auth=Bearer TOKEN`
/// among key=value pairs separated by 0x01.
fn bearer(bytes: &[u8]) -> Result<&str, Error> {
    let bad = || Error::invalid("the OAUTHBEARER message carries no auth=Bearer token");
    let text = std::str::from_utf8(bytes).map_err(|_| bad())?;
    let (_gs2, pairs) = text.split_once('\u{1}').ok_or_else(bad)?;
    pairs
        .split('\u{1}')
        .find_map(|kv| kv.strip_prefix("auth=Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(bad)
}

/// PLAIN's message: `authzid NUL user NUL password`.
fn plain(bytes: &[u8]) -> Result<(&str, &str, &str), Error> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::invalid("the PLAIN message is not UTF-8"))?;
    let mut parts = text.split('\0');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(u), Some(p), None) if !u.is_empty() => Ok((a, u, p)),
        _ => Err(Error::invalid("the PLAIN message is not authzid NUL user NUL password")),
    }
}

/// Kafka's SCRAM mechanism codes.
fn mechanism(code: i8) -> Option<ScramMechanism> {
    match code {
        1 => Some(ScramMechanism::Sha256),
        2 => Some(ScramMechanism::Sha512),
        _ => None,
    }
}

fn mechanism_code(m: ScramMechanism) -> i8 {
    match m {
        ScramMechanism::Sha256 => 1,
        ScramMechanism::Sha512 => 2,
    }
}

/// `AlterUserScramCredentials`: upsertions (salted passwords) and deletions; one result
/// per user.
pub(crate) fn alter_credentials(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: AlterUserScramCredentialsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut changes = Vec::new();
        let mut refused: Vec<(String, Error)> = Vec::new();
        for d in &req.deletions {
            match mechanism(d.mechanism) {
                Some(m) => changes.push((d.name.to_string(), m, ScramChange::Delete)),
                None => refused.push((d.name.to_string(), unknown_mechanism(d.mechanism))),
            }
        }
        for u in &req.upsertions {
            let iterations = u32::try_from(u.iterations).unwrap_or(0);
            match mechanism(u.mechanism) {
                Some(m) => changes.push((
                    u.name.to_string(),
                    m,
                    ScramChange::Salted {
                        salt: u.salt.to_vec(),
                        salted_password: u.salted_password.to_vec(),
                        iterations,
                    },
                )),
                None => refused.push((u.name.to_string(), unknown_mechanism(u.mechanism))),
            }
        }
        let users: Vec<String> = changes.iter().map(|(u, _, _)| u.clone()).collect();
        let mut results: Vec<(String, Option<Error>)> =
            match kafka.api.alter_scram(&who, changes).await {
                Ok(outcomes) => {
                    users.into_iter().zip(outcomes).map(|(u, r)| (u, r.err())).collect()
                }
                Err(e) => users.into_iter().map(|u| (u, Some(e.clone()))).collect(),
            };
        results.extend(refused.into_iter().map(|(u, e)| (u, Some(e))));
        // One result per user: its first error, if any.
        let mut merged: Vec<(String, Option<Error>)> = Vec::new();
        for (user, err) in results {
            match merged.iter_mut().find(|(u, _)| *u == user) {
                Some((_, e)) if e.is_none() => *e = err,
                Some(_) => {}
                None => merged.push((user, err)),
            }
        }
        let body = AlterUserScramCredentialsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_results(
                merged
                    .into_iter()
                    .map(|(user, err)| {
                        let r = AlterUserScramCredentialsResult::default().with_user(text(&user));
                        match err {
                            None => r,
                            Some(e) => r
                                .with_error_code(scram_code(&e))
                                .with_error_message(Some(text(&e.message))),
                        }
                    })
                    .collect(),
            );
        replier.later(&body, Duration::ZERO)
    }))
}

fn unknown_mechanism(code: i8) -> Error {
    Error::new(
        shale_core::error::ErrorKind::Invalid,
        shale_core::error::Reason::Other("UNSUPPORTED_SASL_MECHANISM".into()),
        format!("SCRAM mechanism {code} is unknown: 1 (SCRAM-SHA-256) or 2 (SCRAM-SHA-512)"),
    )
}

/// Credential errors in Kafka's terms.
fn scram_code(e: &Error) -> i16 {
    match &*e.reason {
        "RESOURCE_NOT_FOUND" => ResponseError::ResourceNotFound.code(),
        "UNSUPPORTED_SASL_MECHANISM" => ResponseError::UnsupportedSaslMechanism.code(),
        "INVALID_ARGUMENT" => ResponseError::UnacceptableCredential.code(),
        _ => code(e, About::Partition),
    }
}

/// `DescribeUserScramCredentials`: all users, or those named.
pub(crate) fn describe_credentials(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DescribeUserScramCredentialsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let names: Option<Vec<String>> =
            req.users.as_ref().map(|us| us.iter().map(|u| u.name.to_string()).collect());
        let mut body = DescribeUserScramCredentialsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO));
        match kafka.api.describe_scram(&who, names.as_deref()).await {
            Err(e) => {
                body.error_code = code(&e, About::Partition);
                body.error_message = Some(text(&e.message));
            }
            Ok(users) => {
                body.results = users
                    .into_iter()
                    .map(|(user, found)| {
                        let r =
                            DescribeUserScramCredentialsResult::default().with_user(text(&user));
                        match found {
                            Ok(ms) => r.with_credential_infos(
                                ms.into_iter()
                                    .map(|(m, i)| {
                                        CredentialInfo::default()
                                            .with_mechanism(mechanism_code(m))
                                            .with_iterations(i32::try_from(i).unwrap_or(i32::MAX))
                                    })
                                    .collect(),
                            ),
                            Err(e) => r
                                .with_error_code(scram_code(&e))
                                .with_error_message(Some(text(&e.message))),
                        }
                    })
                    .collect();
            }
        }
        replier.later(&body, Duration::ZERO)
    }))
}
