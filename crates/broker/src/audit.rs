//! The audit trail: one structured event per refused request and per admin mutation, on
//! its own tracing target, `shale_audit`, so operators can route it apart from the rest
//! (`SHALE_LOG_JSON=true` makes each event one JSON line; `SHALE_LOG=shale_audit=info`
//! keeps only these). Each event names who (`principal`, and how it was established:
//! `via`), what (`action`), on which resource (`resource_type`, `resource`), the
//! `decision` (`allow` or `deny`) and the `outcome` (`ok`, or the error's reason).

use shale_core::error::Error;

use crate::auth::Identity;

/// The tracing target of audit events.
pub const TARGET: &str = "shale_audit";

/// What an admin mutation acts on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Resource<'a> {
    /// A topic, by name.
    Topic(&'a str),
    /// A consumer group, by name.
    Group(&'a str),
    /// An access-control binding, as it reads.
    Acl(&'a str),
    /// A principal's quotas.
    Quota(&'a str),
    /// A partition, as `topic/partition`.
    Partition(&'a str),
    /// A broker, by id.
    Broker(&'a str),
    /// A user's credential, as `user mechanism`.
    User(&'a str),
    /// A schema registry subject (or `*` for the registry's global settings).
    Subject(&'a str),
    /// The cluster as a whole.
    Cluster,
}

impl Resource<'_> {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Resource::Topic(name) => ("topic", name),
            Resource::Group(name) => ("group", name),
            Resource::Acl(binding) => ("acl", binding),
            Resource::Quota(principal) => ("quota", principal),
            Resource::Partition(name) => ("partition", name),
            Resource::Broker(id) => ("broker", id),
            Resource::User(user) => ("user", user),
            Resource::Subject(name) => ("subject", name),
            Resource::Cluster => ("cluster", "cluster"),
        }
    }
}

/// An admin mutation that authorization allowed, with how it ended.
pub(crate) fn mutation<T>(
    who: &Identity,
    action: &str,
    resource: Resource<'_>,
    result: &Result<T, Error>,
) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.reason.as_str(),
    };
    mutation_ended(who, action, resource, outcome);
}

/// [`mutation`], its outcome named by the caller (`ok`, or why it failed).
pub(crate) fn mutation_ended(who: &Identity, action: &str, resource: Resource<'_>, outcome: &str) {
    let (resource_type, resource) = resource.parts();
    tracing::info!(
        target: TARGET,
        principal = %who.principal,
        via = who.via.as_str(),
        action,
        resource_type,
        resource,
        decision = "allow",
        outcome,
        "admin mutation"
    );
}

/// A request refused before any service saw it (not authenticated).
pub(crate) fn refused(method: &str, why: &Error) {
    deny("unknown", "none", method, "rpc", method, why);
}

/// A request an authenticated caller was not allowed to make (ACLs, broker-only calls,
/// producer ids issued to someone else).
pub(crate) fn denied(
    who: &Identity,
    action: &str,
    resource_type: &str,
    resource: &str,
    why: &Error,
) {
    deny(who.principal.as_str(), who.via.as_str(), action, resource_type, resource, why);
}

fn deny(
    principal: &str,
    via: &str,
    action: &str,
    resource_type: &str,
    resource: &str,
    why: &Error,
) {
    tracing::info!(
        target: TARGET,
        principal,
        via,
        action,
        resource_type,
        resource,
        decision = "deny",
        outcome = why.reason.as_str(),
        reason = %why.message,
        "request denied"
    );
}
