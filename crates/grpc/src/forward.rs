//! Calls that must run at a coordinator (a group's heartbeats, a transactional id's
//! transactions) may reach any broker: it forwards them once, to the broker it computes as
//! the coordinator, on behalf of the caller's principal. A forwarded call is never
//! forwarded again: a broker that does not coordinate it answers `NOT_COORDINATOR`, and the
//! client retries.

use tonic::Request;

use shale_broker::api::{Api, Identity};
use shale_core::error::{Error, ErrorKind, Reason};

/// Metadata key marking a call a broker forwarded to the coordinator it computed.
const FORWARDED: &str = "x-shale-forwarded";

/// Metadata key carrying the principal a broker forwards a call for; believed only from
/// brokers.
const ON_BEHALF_OF: &str = "x-shale-on-behalf-of";

/// Who a request acts for: its caller, or the principal a broker forwarded it for.
pub(crate) fn acting<T>(api: &Api, request: &Request<T>) -> Result<Identity, Error> {
    let caller = crate::auth_layer::identity(request);
    let claimed = match request.metadata().get(ON_BEHALF_OF) {
        None => None,
        Some(v) => {
            Some(v.to_str().map_err(|_| Error::invalid("x-shale-on-behalf-of is not text"))?)
        }
    };
    api.acting_for(caller, claimed)
}

/// Whether another broker forwarded `request`.
pub(crate) fn was_forwarded<T>(request: &Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED)
}

/// `msg` as a request forwarded by this broker for `who`.
pub(crate) fn forwarding<T>(api: &Api, who: &Identity, msg: T) -> Result<Request<T>, Error> {
    let mut forward = Request::new(msg);
    forward.metadata_mut().insert(FORWARDED, tonic::metadata::MetadataValue::from(api.broker_id()));
    let on_behalf_of = who.principal.as_str().parse().map_err(|_| {
        Error::invalid(format!("principal {} cannot travel in metadata", who.principal))
    })?;
    forward.metadata_mut().insert(ON_BEHALF_OF, on_behalf_of);
    Ok(forward)
}

/// What a coordinator coordinates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Coordinated {
    Group,
    TransactionalId,
}

impl Coordinated {
    /// Its name in messages, and its key in an error's details.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Coordinated::Group => ("group", "group"),
            Coordinated::TransactionalId => ("transactional id", "transactional_id"),
        }
    }
}

/// Where a call for `key` (a `what`) runs: here (`None`), or at the coordinator's channel
/// when this broker may forward it; `NOT_COORDINATOR` when it was forwarded here already,
/// or no live broker coordinates `key`.
pub(crate) fn route(
    api: &Api,
    (what, key): (Coordinated, &str),
    coordinator: Option<(i32, String)>,
    forwarded: bool,
) -> Result<Option<tonic::transport::Channel>, Error> {
    match coordinator {
        Some((id, _)) if id == api.broker_id() => Ok(None),
        Some((_, addr)) if !forwarded => Ok(Some(api.peer(&addr)?)),
        other => Err(not_coordinator((what, key), api.broker_id(), other)),
    }
}

fn not_coordinator(
    (what, key): (Coordinated, &str),
    id: i32,
    coordinator: Option<(i32, String)>,
) -> Error {
    let (what, detail) = what.names();
    Error::new(
        ErrorKind::Unavailable,
        Reason::NotCoordinator,
        format!(
            "broker {id} does not coordinate {what} {key:?} ({}); retry",
            coordinator.map_or("no live broker does".to_string(), |(c, a)| format!(
                "broker {c} at {a} does"
            ))
        ),
    )
    .with(detail, key)
}
