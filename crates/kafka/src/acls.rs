//! `CreateAcls`, `DescribeAcls`, `DeleteAcls` on Shale's ACLs: the same bindings `shale
//! acl` and the gRPC API manage, so either side sees what the other wrote. Kafka's cluster
//! resource `kafka-cluster` is Shale's `cluster`. Shale's ACLs have no host part: a
//! binding is created for host `*` only, and is described with host `*`.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_acls_response::{AclCreationResult, CreateAclsResponse};
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl, DeleteAclsResponse,
};
use kafka_protocol::messages::describe_acls_response::{
    AclDescription, DescribeAclsResource, DescribeAclsResponse,
};
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use shale_broker::api::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};
use shale_core::error::Error;

/// Kafka's name of the cluster resource.
const KAFKA_CLUSTER: &str = "kafka-cluster";

/// Kafka's ANY (filters only) and MATCH (a filter selecting what applies to a name).
const ANY: i8 = 1;
const MATCH: i8 = 2;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn resource_type(code: i8) -> Result<ResourceType, Error> {
    match code {
        2 => Ok(ResourceType::Topic),
        3 => Ok(ResourceType::Group),
        4 => Ok(ResourceType::Cluster),
        5 => Ok(ResourceType::TransactionalId),
        other => Err(Error::invalid(format!(
            "ACL resource type {other} is not served: 2 (topic), 3 (group), 4 (cluster) or \
             5 (transactional id)"
        ))),
    }
}

/// Kafka's code of a resource type; none for Shale's own (schema registry subjects).
fn resource_code(t: ResourceType) -> Option<i8> {
    match t {
        ResourceType::Topic => Some(2),
        ResourceType::Group => Some(3),
        ResourceType::Cluster => Some(4),
        ResourceType::TransactionalId => Some(5),
        ResourceType::Subject => None,
    }
}

fn pattern(code: i8) -> Result<PatternType, Error> {
    match code {
        3 => Ok(PatternType::Literal),
        4 => Ok(PatternType::Prefixed),
        other => Err(Error::invalid(format!(
            "ACL pattern type {other} is invalid here: 3 (literal) or 4 (prefixed)"
        ))),
    }
}

fn pattern_code(p: PatternType) -> i8 {
    match p {
        PatternType::Literal => 3,
        PatternType::Prefixed => 4,
    }
}

const OPERATIONS: [(i8, Operation); 11] = [
    (2, Operation::All),
    (3, Operation::Read),
    (4, Operation::Write),
    (5, Operation::Create),
    (6, Operation::Delete),
    (7, Operation::Alter),
    (8, Operation::Describe),
    (9, Operation::ClusterAction),
    (10, Operation::DescribeConfigs),
    (11, Operation::AlterConfigs),
    (12, Operation::IdempotentWrite),
];

fn operation(code: i8) -> Result<Operation, Error> {
    OPERATIONS.iter().find(|(c, _)| *c == code).map(|(_, o)| *o).ok_or_else(|| {
        Error::invalid(format!(
            "ACL operation {code} is not served (2..=12: all, read, write, ...)"
        ))
    })
}

fn operation_code(o: Operation) -> i8 {
    OPERATIONS.iter().find(|(_, op)| *op == o).map_or(0, |(c, _)| *c)
}

fn permission(code: i8) -> Result<Permission, Error> {
    match code {
        2 => Ok(Permission::Deny),
        3 => Ok(Permission::Allow),
        other => {
            Err(Error::invalid(format!("ACL permission {other} is invalid: 2 (deny) or 3 (allow)")))
        }
    }
}

fn permission_code(p: Permission) -> i8 {
    match p {
        Permission::Deny => 2,
        Permission::Allow => 3,
    }
}

/// Shale's name of a resource Kafka names.
fn resource_name(kind: ResourceType, name: &str) -> String {
    match (kind, name) {
        (ResourceType::Cluster, KAFKA_CLUSTER) => "cluster".into(),
        _ => name.to_string(),
    }
}

/// Kafka's name of a resource Shale names.
fn kafka_name(b: &AclBinding) -> String {
    match b.resource_type {
        ResourceType::Cluster => KAFKA_CLUSTER.into(),
        _ => b.resource_name.clone(),
    }
}

/// A filter from Kafka's parts; `MATCH` selects by name afterwards (`match_name`).
struct KafkaFilter {
    filter: AclFilter,
    match_name: Option<(ResourceType, String)>,
    any_host: bool,
}

impl KafkaFilter {
    #[allow(clippy::too_many_arguments)]
    fn new(
        resource: i8,
        name: &Option<StrBytes>,
        pattern_type: i8,
        principal: &Option<StrBytes>,
        host: &Option<StrBytes>,
        op: i8,
        perm: i8,
    ) -> Result<KafkaFilter, Error> {
        let kind = (resource != ANY).then(|| resource_type(resource)).transpose()?;
        let name = name.as_ref().map(|n| resource_name(kind.unwrap_or(ResourceType::Topic), n));
        let mut filter = AclFilter {
            principal: principal.as_ref().map(|p| p.to_string()),
            resource_type: kind,
            operation: (op != ANY).then(|| operation(op)).transpose()?,
            permission: (perm != ANY).then(|| permission(perm)).transpose()?,
            ..Default::default()
        };
        let mut match_name = None;
        match pattern_type {
            ANY => filter.resource_name = name,
            MATCH => match (kind, name) {
                (Some(k), Some(n)) => match_name = Some((k, n)),
                (_, n) => filter.resource_name = n,
            },
            p => {
                filter.pattern_type = Some(pattern(p)?);
                filter.resource_name = name;
            }
        }
        let any_host = host.as_ref().is_none_or(|h| h.as_str() == "*");
        Ok(KafkaFilter { filter, match_name, any_host })
    }

    /// Whether a binding the filter found is one to show or delete: on a Kafka resource
    /// type, and matching what the filter selects afterwards.
    fn keeps(&self, b: &AclBinding) -> bool {
        resource_code(b.resource_type).is_some()
            && self.any_host
            && self.match_name.as_ref().is_none_or(|(k, n)| b.applies_to(*k, n))
    }

    /// Whether the store's own filter deletes exactly what Kafka's asks for (else each
    /// binding the filter keeps is deleted alone).
    fn deletes_exactly(&self) -> bool {
        self.match_name.is_none() && self.any_host && self.filter.resource_type.is_some()
    }
}

/// `CreateAcls`.
pub(crate) fn create(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: CreateAclsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut results = Vec::with_capacity(req.creations.len());
        for c in &req.creations {
            let binding = (|| -> Result<AclBinding, Error> {
                if c.host.as_str() != "*" {
                    return Err(Error::invalid(format!(
                        "host {:?}: Shale's ACLs do not restrict by host; use \"*\"",
                        c.host.as_str()
                    )));
                }
                let kind = resource_type(c.resource_type)?;
                Ok(AclBinding {
                    principal: c.principal.to_string(),
                    resource_type: kind,
                    pattern_type: pattern(c.resource_pattern_type)?,
                    resource_name: resource_name(kind, &c.resource_name),
                    operation: operation(c.operation)?,
                    permission: permission(c.permission_type)?,
                })
            })();
            let created = match binding {
                Ok(b) => kafka.api.create_acls(&who, &[b]).await,
                Err(e) => Err(e),
            };
            results.push(match created {
                Ok(()) => AclCreationResult::default(),
                Err(e) => AclCreationResult::default()
                    .with_error_code(code(&e, About::Partition))
                    .with_error_message(Some(text(&e.message))),
            });
        }
        let body = CreateAclsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_results(results);
        replier.later(&body, Duration::ZERO)
    }))
}

/// `DescribeAcls`: bindings grouped by resource.
pub(crate) fn describe(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DescribeAclsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut body = DescribeAclsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO));
        let filter = KafkaFilter::new(
            req.resource_type_filter,
            &req.resource_name_filter,
            req.pattern_type_filter,
            &req.principal_filter,
            &req.host_filter,
            req.operation,
            req.permission_type,
        );
        let found = match filter {
            Ok(f) => kafka
                .api
                .describe_acls(&who, &f.filter)
                .await
                .map(|bs| bs.into_iter().filter(|b| f.keeps(b)).collect::<Vec<_>>()),
            Err(e) => Err(e),
        };
        match found {
            Ok(bindings) => {
                let mut resources: Vec<DescribeAclsResource> = Vec::new();
                for b in bindings {
                    let Some(kind) = resource_code(b.resource_type) else { continue };
                    let acl = AclDescription::default()
                        .with_principal(text(&b.principal))
                        .with_host(text("*"))
                        .with_operation(operation_code(b.operation))
                        .with_permission_type(permission_code(b.permission));
                    let (name, pat) = (kafka_name(&b), pattern_code(b.pattern_type));
                    match resources.iter_mut().find(|r| {
                        r.resource_type == kind
                            && r.resource_name.as_str() == name
                            && r.pattern_type == pat
                    }) {
                        Some(r) => r.acls.push(acl),
                        None => resources.push(
                            DescribeAclsResource::default()
                                .with_resource_type(kind)
                                .with_resource_name(text(&name))
                                .with_pattern_type(pat)
                                .with_acls(vec![acl]),
                        ),
                    }
                }
                body.resources = resources;
            }
            Err(e) => {
                body.error_code = code(&e, About::Partition);
                body.error_message = Some(text(&e.message));
            }
        }
        replier.later(&body, Duration::ZERO)
    }))
}

/// `DeleteAcls`: per filter, the bindings deleted.
pub(crate) fn delete(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DeleteAclsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut results = Vec::with_capacity(req.filters.len());
        for f in &req.filters {
            let filter = KafkaFilter::new(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            );
            let deleted = match filter {
                Ok(kf) if !kf.deletes_exactly() => delete_matching(&kafka, &who, &kf).await,
                Ok(kf) => kafka.api.delete_acls(&who, &kf.filter).await,
                Err(e) => Err(e),
            };
            results.push(match deleted {
                Ok(bindings) => DeleteAclsFilterResult::default().with_matching_acls(
                    bindings
                        .iter()
                        .filter_map(|b| Some((b, resource_code(b.resource_type)?)))
                        .map(|(b, kind)| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(kind)
                                .with_resource_name(text(&kafka_name(b)))
                                .with_pattern_type(pattern_code(b.pattern_type))
                                .with_principal(text(&b.principal))
                                .with_host(text("*"))
                                .with_operation(operation_code(b.operation))
                                .with_permission_type(permission_code(b.permission))
                        })
                        .collect(),
                ),
                Err(e) => DeleteAclsFilterResult::default()
                    .with_error_code(code(&e, About::Partition))
                    .with_error_message(Some(text(&e.message))),
            });
        }
        let body = DeleteAclsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_filter_results(results);
        replier.later(&body, Duration::ZERO)
    }))
}
/// Deletes exactly the bindings a `MATCH` (or host) filter keeps: found first, then each
/// by itself.
async fn delete_matching(
    kafka: &Kafka,
    who: &shale_broker::api::Identity,
    kf: &KafkaFilter,
) -> Result<Vec<AclBinding>, Error> {
    let found = kafka.api.describe_acls(who, &kf.filter).await?;
    let mut gone = Vec::new();
    for b in found.into_iter().filter(|b| kf.keeps(b)) {
        let exact = AclFilter {
            principal: Some(b.principal.clone()),
            resource_type: Some(b.resource_type),
            pattern_type: Some(b.pattern_type),
            resource_name: Some(b.resource_name.clone()),
            operation: Some(b.operation),
            permission: Some(b.permission),
        };
        gone.extend(kafka.api.delete_acls(who, &exact).await?);
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(kind: ResourceType) -> AclBinding {
        AclBinding {
            principal: "User:a".into(),
            resource_type: kind,
            pattern_type: PatternType::Literal,
            resource_name: "x".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    /// Schema registry subjects have no Kafka resource type: Kafka's ACL requests neither
    /// list them nor delete them, even with a filter for every type.
    #[test]
    fn kafka_acl_requests_leave_subject_bindings_alone() {
        let any = KafkaFilter::new(ANY, &None, ANY, &None, &None, ANY, ANY).unwrap();
        assert!(any.keeps(&binding(ResourceType::Topic)));
        assert!(!any.keeps(&binding(ResourceType::Subject)));
        assert!(!any.deletes_exactly(), "deleted binding by binding, so subjects stay");
        let topics = KafkaFilter::new(2, &None, ANY, &None, &None, ANY, ANY).unwrap();
        assert!(topics.deletes_exactly());
        assert_eq!(resource_code(ResourceType::Subject), None);
    }
}
