//! `shale acl add|list|remove`: the cluster's access-control bindings (Kafka's model).

use clap::{Args, Subcommand};

use super::{BrokerArg, Format};
use crate::proto::pb;

/// ACL commands.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Allow (or with --deny, deny) principals operations on a resource.
    Add(AddArgs),
    /// List bindings, all or those matching the options given.
    List(ListArgs),
    /// Remove the bindings matching the options given (at least one, or --all).
    Remove(RemoveArgs),
}

/// The resource a binding is about: exactly one of topic, group, subject or cluster.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ResourceArg {
    /// A topic name, `*` for every topic, or a prefix with --prefixed.
    #[arg(long)]
    pub topic: Option<String>,
    /// A consumer group name, `*`, or a prefix with --prefixed.
    #[arg(long)]
    pub group: Option<String>,
    /// A schema registry subject, `*`, or a prefix with --prefixed.
    #[arg(long)]
    pub subject: Option<String>,
    /// The cluster (topic creation, ACLs, describing the cluster).
    #[arg(long)]
    pub cluster: bool,
}

impl ResourceArg {
    fn parts(&self) -> Option<(&'static str, String)> {
        match (&self.topic, &self.group, &self.subject, self.cluster) {
            (Some(t), ..) => Some(("topic", t.clone())),
            (_, Some(g), ..) => Some(("group", g.clone())),
            (_, _, Some(s), _) => Some(("subject", s.clone())),
            (.., true) => Some(("cluster", "cluster".to_string())),
            _ => None,
        }
    }
}

/// `acl add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Principal (`User:alice`, or `User:*` for everyone); repeatable.
    #[arg(long = "principal", required = true)]
    pub principals: Vec<String>,
    /// Operation: all, read, write, create, delete, alter, describe, cluster-action,
    /// describe-configs, alter-configs, idempotent-write; repeatable.
    #[arg(long = "operation", required = true)]
    pub operations: Vec<String>,
    #[command(flatten)]
    pub resource: ResourceArg,
    /// Match every resource whose name starts with the given name.
    #[arg(long)]
    pub prefixed: bool,
    /// Deny instead of allow (deny wins over any allow).
    #[arg(long)]
    pub deny: bool,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// Options that select bindings (`list`, `remove`).
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only bindings naming this principal exactly.
    #[arg(long)]
    pub principal: Option<String>,
    /// Only bindings for this operation.
    #[arg(long)]
    pub operation: Option<String>,
    #[command(flatten)]
    pub resource: ResourceArg,
    /// Only prefixed bindings (default: both kinds).
    #[arg(long, conflicts_with = "literal")]
    pub prefixed: bool,
    /// Only literal bindings.
    #[arg(long)]
    pub literal: bool,
    /// Only denying bindings.
    #[arg(long, conflicts_with = "allow")]
    pub deny: bool,
    /// Only allowing bindings.
    #[arg(long)]
    pub allow: bool,
}

impl FilterArgs {
    fn filter(&self) -> pb::AclFilter {
        let (resource_type, resource_name) = self.resource.parts().unzip();
        let pick = |yes: bool, no: bool, a: &str, b: &str| match (yes, no) {
            (true, _) => a.to_string(),
            (_, true) => b.to_string(),
            _ => String::new(),
        };
        pb::AclFilter {
            principal: self.principal.clone().unwrap_or_default(),
            resource_type: resource_type.unwrap_or_default().to_string(),
            pattern_type: pick(self.prefixed, self.literal, "prefixed", "literal"),
            resource_name: resource_name.unwrap_or_default(),
            operation: self.operation.clone().unwrap_or_default(),
            permission: pick(self.deny, self.allow, "deny", "allow"),
        }
    }
}

/// `acl list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `acl remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Remove every binding (when no other option is given).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub broker: BrokerArg,
}

pub(super) async fn run(cmd: AclCommand) -> anyhow::Result<()> {
    match cmd {
        AclCommand::Add(a) => {
            let Some((resource_type, resource_name)) = a.resource.parts() else {
                anyhow::bail!(
                    "say which resource: --topic NAME, --group NAME, --subject NAME or --cluster"
                );
            };
            let mut bindings = Vec::new();
            for principal in &a.principals {
                for operation in &a.operations {
                    bindings.push(pb::AclBinding {
                        principal: principal.clone(),
                        resource_type: resource_type.to_string(),
                        pattern_type: if a.prefixed { "prefixed" } else { "literal" }.to_string(),
                        resource_name: resource_name.clone(),
                        operation: operation.clone(),
                        permission: if a.deny { "deny" } else { "allow" }.to_string(),
                    });
                }
            }
            a.broker.client()?.admin().create_acls(bindings.clone()).await?;
            for b in &bindings {
                println!("added {}", text(b));
            }
        }
        AclCommand::List(a) => {
            let bindings = a.broker.client()?.admin().describe_acls(a.filter.filter()).await?;
            match a.format {
                Format::Json => {
                    let v: Vec<_> = bindings.iter().map(json).collect();
                    println!("{}", serde_json::Value::Array(v));
                }
                Format::Text => {
                    println!("permission\tprincipal\toperation\tresource_type\tpattern\tresource");
                    for b in &bindings {
                        println!(
                            "{}\t{}\t{}\t{}\t{}\t{}",
                            b.permission,
                            b.principal,
                            b.operation,
                            b.resource_type,
                            b.pattern_type,
                            b.resource_name
                        );
                    }
                }
            }
        }
        AclCommand::Remove(a) => {
            let filter = a.filter.filter();
            if filter == pb::AclFilter::default() && !a.all {
                anyhow::bail!(
                    "acl remove without options would remove every binding: pass --all to mean it"
                );
            }
            let removed = a.broker.client()?.admin().delete_acls(filter).await?;
            for b in &removed {
                println!("removed {}", text(b));
            }
            println!("{} binding(s) removed", removed.len());
        }
    }
    Ok(())
}

fn text(b: &pb::AclBinding) -> String {
    format!(
        "{} {} {} on {} {} {:?}",
        b.permission, b.principal, b.operation, b.resource_type, b.pattern_type, b.resource_name
    )
}

fn json(b: &pb::AclBinding) -> serde_json::Value {
    serde_json::json!({
        "principal": b.principal,
        "resource_type": b.resource_type,
        "pattern_type": b.pattern_type,
        "resource_name": b.resource_name,
        "operation": b.operation,
        "permission": b.permission,
    })
}
