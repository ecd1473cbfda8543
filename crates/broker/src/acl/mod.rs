//! Authorization in Kafka's model: access-control bindings (principal, resource type,
//! pattern, resource name, operation, allow or deny) stored one per key in the metadata
//! store, cached and watched by every broker ([`Authorizer`]).
//!
//! A request is allowed when its principal is a super-user or a broker, or when some
//! allowing binding matches it and no denying binding does: deny wins, and without a
//! matching binding the answer is no (Kafka's `allow.everyone.if.no.acl.found=false`).
//! A binding matches a principal when it names it or `User:*`; a resource when it names it
//! literally, names `*` literally, or is a prefix of its name (`prefixed`). Read, Write,
//! Delete and Alter imply Describe; AlterConfigs implies DescribeConfigs; All is every
//! operation.
//!
//! - this file: the binding, its parts and their parsing, and matching over a set.
//! - `authorizer`: the cache kept fresh by a watch, the per-request check, its settings.

mod authorizer;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use shale_core::error::Error;

pub use authorizer::{AclSettings, Authorizer};

macro_rules! named {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name used in keys, the API and the CLI.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }

            /// Parses a name (case-insensitive, `-` or `_`), naming the bad value.
            pub fn parse(s: &str) -> Result<$name, Error> {
                let norm = s.trim().to_ascii_lowercase().replace('-', "_");
                $(if norm == $wire { return Ok($name::$variant); })*
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                Err(Error::invalid(format!(
                    concat!($what, " {:?} is invalid: expected one of {}"),
                    s,
                    names.join(", ")
                )))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named!(
    /// What a binding is about.
    ResourceType, "resource type" {
        /// A topic.
        Topic = "topic",
        /// A consumer group.
        Group = "group",
        /// The cluster itself (topic creation, ACLs, inter-broker calls).
        Cluster = "cluster",
        /// A transactional id: Write to use it (begin, write and end its transactions),
        /// Describe to see its transactions.
        TransactionalId = "transactional_id",
        /// A schema registry subject: Read its schemas, Write (register) to it, Delete its
        /// versions, AlterConfigs its compatibility level and mode. Not Kafka's: Kafka's
        /// ACL requests neither show nor delete these bindings.
        Subject = "subject",
    }
);

named!(
    /// How a binding's resource name is matched.
    PatternType, "pattern type" {
        /// The name exactly, or every resource of the type when the name is `*`.
        Literal = "literal",
        /// Every resource whose name starts with it.
        Prefixed = "prefixed",
    }
);

named!(
    /// What a principal does to a resource.
    Operation, "operation" {
        /// Every operation.
        All = "all",
        /// Fetch from a topic; join a group, commit its offsets.
        Read = "read",
        /// Produce to a topic.
        Write = "write",
        /// Create a topic.
        Create = "create",
        /// Delete a topic or a group.
        Delete = "delete",
        /// Change ACLs (on the cluster); add partitions (on a topic).
        Alter = "alter",
        /// See that a topic or group exists, its partitions, offsets and members.
        Describe = "describe",
        /// Inter-broker calls (replication).
        ClusterAction = "cluster_action",
        /// Read a topic's configuration.
        DescribeConfigs = "describe_configs",
        /// Change a topic's configuration.
        AlterConfigs = "alter_configs",
        /// Produce with a producer id (on the cluster; Write on any topic also allows it).
        IdempotentWrite = "idempotent_write",
    }
);

named!(
    /// Whether a binding allows or denies.
    Permission, "permission" {
        /// Allows the operation.
        Allow = "allow",
        /// Denies it, whatever else allows it.
        Deny = "deny",
    }
);

impl Operation {
    /// Whether an allowing binding for `self` allows `asked`.
    fn allows(self, asked: Operation) -> bool {
        use Operation::*;
        self == All
            || self == asked
            || (asked == Describe && matches!(self, Read | Write | Delete | Alter))
            || (asked == DescribeConfigs && self == AlterConfigs)
    }
}

/// The name of the cluster resource (Kafka's `kafka-cluster`).
pub const CLUSTER: &str = "cluster";

/// One access-control binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    /// `Type:name`, or `User:*` for every principal.
    pub principal: String,
    /// What it is about.
    pub resource_type: ResourceType,
    /// How `resource_name` matches.
    pub pattern_type: PatternType,
    /// A name, a prefix, or `*` (literal: every resource of the type). Always `cluster`
    /// for the cluster.
    pub resource_name: String,
    /// What it allows or denies.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

impl AclBinding {
    /// Checks the binding, naming the bad field: a valid principal, a non-empty name, and
    /// for the cluster the literal name `cluster`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.principal != "User:*" {
            Principal::parse(&self.principal)?;
        }
        if self.resource_name.is_empty() {
            return Err(Error::invalid(format!(
                "ACL for {} on a {}: the resource name is empty",
                self.principal, self.resource_type
            )));
        }
        if self.resource_type == ResourceType::Cluster
            && (self.resource_name != CLUSTER || self.pattern_type != PatternType::Literal)
        {
            return Err(Error::invalid(format!(
                "cluster ACLs name the literal resource {CLUSTER:?}, not {:?} ({})",
                self.resource_name, self.pattern_type
            )));
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == "*" {
            return Err(Error::invalid(
                "a prefixed ACL on \"*\" matches only names starting with '*'; use a literal \"*\" for every resource",
            ));
        }
        Ok(())
    }

    /// The parts of its key, in key order.
    pub fn key_parts(&self) -> [&str; 6] {
        [
            self.resource_type.as_str(),
            self.pattern_type.as_str(),
            &self.resource_name,
            &self.principal,
            self.operation.as_str(),
            self.permission.as_str(),
        ]
    }

    fn matches_principal(&self, p: &str) -> bool {
        self.principal == "User:*" || self.principal == p
    }

    /// Whether the binding applies to the resource `kind` `name` (literally, by `*`, or
    /// by prefix).
    pub fn applies_to(&self, kind: ResourceType, name: &str) -> bool {
        self.matches_resource(kind, name)
    }

    fn matches_resource(&self, kind: ResourceType, name: &str) -> bool {
        self.resource_type == kind
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == name || self.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} on {} {} {:?}",
            self.permission,
            self.principal,
            self.operation,
            self.resource_type,
            self.pattern_type,
            self.resource_name
        )
    }
}

/// Selects bindings: each part set must equal the binding's (`None` matches anything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    /// The principal, exactly as the binding names it.
    pub principal: Option<String>,
    /// The resource type.
    pub resource_type: Option<ResourceType>,
    /// The pattern type.
    pub pattern_type: Option<PatternType>,
    /// The resource name, exactly as the binding names it.
    pub resource_name: Option<String>,
    /// The operation.
    pub operation: Option<Operation>,
    /// The permission.
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// Whether `b` is selected.
    pub fn selects(&self, b: &AclBinding) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.resource_type.is_none_or(|t| t == b.resource_type)
            && self.pattern_type.is_none_or(|t| t == b.pattern_type)
            && self.resource_name.as_ref().is_none_or(|n| *n == b.resource_name)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

/// A set of bindings, indexed by resource type.
#[derive(Debug, Clone, Default)]
pub struct Acls {
    by_type: [Vec<AclBinding>; 5],
}

fn slot(t: ResourceType) -> usize {
    match t {
        ResourceType::Topic => 0,
        ResourceType::Group => 1,
        ResourceType::Cluster => 2,
        ResourceType::TransactionalId => 3,
        ResourceType::Subject => 4,
    }
}

impl Acls {
    /// The set of `bindings`.
    pub fn new(bindings: impl IntoIterator<Item = AclBinding>) -> Acls {
        let mut acls = Acls::default();
        for b in bindings {
            acls.by_type[slot(b.resource_type)].push(b);
        }
        acls
    }

    /// Every binding.
    pub fn iter(&self) -> impl Iterator<Item = &AclBinding> {
        self.by_type.iter().flatten()
    }

    /// Whether bindings allow `principal` to do `op` on the resource: some allowing binding
    /// matches and no denying one does.
    pub fn allows(&self, principal: &str, op: Operation, kind: ResourceType, name: &str) -> bool {
        let mut allowed = false;
        for b in &self.by_type[slot(kind)] {
            if !b.matches_principal(principal) || !b.matches_resource(kind, name) {
                continue;
            }
            match b.permission {
                Permission::Deny if b.operation == op || b.operation == Operation::All => {
                    return false;
                }
                Permission::Deny => {}
                Permission::Allow => allowed |= b.operation.allows(op),
            }
        }
        allowed
    }

    /// Whether some binding allows `principal` `op` on at least one resource of `kind`
    /// (Kafka's "Write on any topic" for idempotent producers).
    pub fn allows_any(&self, principal: &str, op: Operation, kind: ResourceType) -> bool {
        self.by_type[slot(kind)].iter().any(|b| {
            b.permission == Permission::Allow
                && b.matches_principal(principal)
                && b.operation.allows(op)
                && self.allows(principal, op, kind, &b.resource_name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(
        p: &str,
        t: ResourceType,
        pat: PatternType,
        name: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            principal: p.into(),
            resource_type: t,
            pattern_type: pat,
            resource_name: name.into(),
            operation: op,
            permission: perm,
        }
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn deny_wins_and_nothing_is_allowed_without_a_binding() {
        let acls = Acls::new([
            b("User:alice", Topic, Prefixed, "orders.", Write, Allow),
            b("User:*", Topic, Literal, "orders.secret", All, Deny),
            b("User:bob", Topic, Literal, "*", Read, Allow),
        ]);
        assert!(acls.allows("User:alice", Write, Topic, "orders.eu"));
        assert!(acls.allows("User:alice", Describe, Topic, "orders.eu"), "Write implies Describe");
        assert!(!acls.allows("User:alice", Read, Topic, "orders.eu"));
        assert!(!acls.allows("User:alice", Write, Topic, "orders.secret"), "deny wins");
        assert!(!acls.allows("User:alice", Write, Topic, "payments"));
        assert!(acls.allows("User:bob", Read, Topic, "anything"));
        assert!(!acls.allows("User:bob", Read, Topic, "orders.secret"));
        assert!(!acls.allows("User:bob", Read, Group, "anything"), "types do not mix");
        assert!(!acls.allows("User:carol", Describe, Topic, "orders.eu"));
        assert!(acls.allows_any("User:alice", Write, Topic));
        assert!(!acls.allows_any("User:bob", Write, Topic));
    }

    /// Transactional ids are a resource of their own (Kafka's TRANSACTIONAL_ID): Write on
    /// them implies Describe, and a topic's ACL says nothing about an id of the same name.
    #[test]
    fn transactional_ids_are_a_resource_type_of_their_own() {
        let acls = Acls::new([
            b("User:app", TransactionalId, Prefixed, "etl-", Write, Allow),
            b("User:app", Topic, Literal, "etl-1", Write, Allow),
        ]);
        assert!(acls.allows("User:app", Write, TransactionalId, "etl-1"));
        assert!(acls.allows("User:app", Describe, TransactionalId, "etl-7"));
        assert!(!acls.allows("User:app", Write, TransactionalId, "billing"));
        assert!(!acls.allows("User:other", Write, TransactionalId, "etl-1"));
        let only_topic = Acls::new([b("User:app", Topic, Literal, "etl-1", Write, Allow)]);
        assert!(!only_topic.allows("User:app", Write, TransactionalId, "etl-1"));
        assert_eq!(ResourceType::parse("Transactional-Id").unwrap(), TransactionalId);
    }

    #[test]
    fn a_literal_name_is_not_a_prefix_and_alter_configs_implies_describe_configs() {
        let acls = Acls::new([b("User:a", Topic, Literal, "logs", AlterConfigs, Allow)]);
        assert!(acls.allows("User:a", DescribeConfigs, Topic, "logs"));
        assert!(!acls.allows("User:a", DescribeConfigs, Topic, "logs2"));
        assert!(!acls.allows("User:a", Describe, Topic, "logs"));
    }

    #[test]
    fn names_parse_in_any_case_and_bad_ones_are_named() {
        assert_eq!(Operation::parse("Cluster-Action").unwrap(), ClusterAction);
        let e = Operation::parse("wirte").unwrap_err();
        assert!(e.message.contains("\"wirte\"") && e.message.contains("write"), "{}", e.message);
        let bad = b("alice", Topic, Literal, "t", Read, Allow);
        assert!(bad.validate().unwrap_err().message.contains("alice"));
        let cluster = b("User:a", Cluster, Literal, "x", Alter, Allow);
        assert!(cluster.validate().is_err());
    }
}
