//! `DescribeConfigs`, `AlterConfigs` and `IncrementalAlterConfigs`: topic configs by
//! their Kafka names, validated as the gRPC API validates them (an unknown key or a bad
//! value is INVALID_CONFIG naming it); a group's configs (KIP-848's GROUP resource:
//! `consumer.session.timeout.ms`, `consumer.heartbeat.interval.ms`); a broker's own
//! settings, read-only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::alter_configs_response::{
    AlterConfigsResourceResponse, AlterConfigsResponse,
};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response as incremental;
use kafka_protocol::messages::{
    AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use shale_broker::api::GROUP_CONFIG_KEYS as GROUP_KEYS;
use shale_broker::api::Identity;
use shale_core::error::Error;
use shale_core::topic_config::KEYS;

/// Kafka's config resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;

/// Kafka's config sources.
const TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const GROUP_CONFIG: i8 = 8;

/// Kafka's config types (DescribeConfigs v3+).
fn config_type(key: &str) -> i8 {
    const BOOLEAN: i8 = 1;
    const STRING: i8 = 2;
    const INT: i8 = 3;
    const LONG: i8 = 5;
    const DOUBLE: i8 = 6;
    const LIST: i8 = 7;
    match key {
        "remote.storage.enable" | "unclean.leader.election.enable" => BOOLEAN,
        "min.insync.replicas" | "max.message.bytes" => INT,
        "cleanup.policy" => LIST,
        "min.cleanable.dirty.ratio" => DOUBLE,
        "flush.policy" => STRING,
        _ => LONG,
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Whether a broker setting's value is withheld (credentials and the files holding them).
fn sensitive(key: &str) -> bool {
    key.contains("password") || key.contains("key_file") || key.contains("token")
}

/// `DescribeConfigs`: topics (DescribeConfigs on each) and this broker (on the cluster).
pub(crate) fn describe(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DescribeConfigsRequest = call.decode()?;
    let version = call.version();
    let (kafka, session, replier) = (kafka.clone(), session.clone(), call.replier);
    Ok(Answer::later(async move {
        let kafka = &kafka;
        let mut results = Vec::with_capacity(req.resources.len());
        for r in &req.resources {
            let name = r.resource_name.to_string();
            let wanted = |k: &str| {
                r.configuration_keys.as_ref().is_none_or(|ks| ks.iter().any(|w| w.as_str() == k))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let configs: Result<Vec<DescribeConfigsResourceResult>, Error> = match r.resource_type {
                TOPIC => kafka.api.topic_configs(&session.identity, &name).map(|entry| {
                    entry
                        .config
                        .entries(&entry.record.configs)
                        .into_iter()
                        .filter(|(k, _, _)| wanted(k))
                        .map(|(k, v, source)| {
                            let source =
                                if source == "topic" { TOPIC_CONFIG } else { DEFAULT_CONFIG };
                            let doc = KEYS.iter().find(|d| d.name == k).map(|d| d.doc);
                            let c = DescribeConfigsResourceResult::default()
                                .with_name(text(&k))
                                .with_value(Some(text(&v)))
                                .with_config_source(source);
                            match version {
                                0..=2 => c,
                                _ => c.with_config_type(config_type(&k)).with_documentation(
                                    doc.filter(|_| req.include_documentation).map(text),
                                ),
                            }
                        })
                        .collect()
                }),
                BROKER => broker(kafka, &session.identity, &name).map(|settings| {
                    settings
                        .into_iter()
                        .filter(|(k, _)| wanted(k))
                        .map(|(k, v)| {
                            let hidden = sensitive(&k);
                            DescribeConfigsResourceResult::default()
                                .with_name(text(&k))
                                .with_value((!hidden).then(|| text(&v)))
                                .with_read_only(true)
                                .with_is_sensitive(hidden)
                                .with_config_source(STATIC_BROKER_CONFIG)
                        })
                        .collect()
                }),
                GROUP => {
                    let configs = kafka.api.group_configs(&session.identity, &name).await;
                    configs.map(|configs| {
                        configs
                            .into_iter()
                            .filter(|c| wanted(&c.name))
                            .map(|c| {
                                let source =
                                    if c.overridden { GROUP_CONFIG } else { DEFAULT_CONFIG };
                                let d = DescribeConfigsResourceResult::default()
                                    .with_name(text(&c.name))
                                    .with_value(Some(text(&c.value)))
                                    .with_config_source(source);
                                match version {
                                    0..=2 => d,
                                    _ => d.with_config_type(3).with_documentation(
                                        Some(c.doc).filter(|_| req.include_documentation).map(text),
                                    ),
                                }
                            })
                            .collect()
                    })
                }
                other => Err(Error::invalid(format!(
                    "config resource type {other} is not served: 2 (topic), 4 (broker) or 32 (group)"
                ))),
            };
            results.push(match configs {
                Ok(configs) => result.with_configs(configs),
                Err(e) => result
                    .with_error_code(code(&e, About::Partition))
                    .with_error_message(Some(text(&e.message))),
            });
        }
        let body = DescribeConfigsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_results(results);
        replier.later(&body, Duration::ZERO)
    }))
}

/// This broker's settings and this listener's (`kafka.*`), when `name` is its id (or
/// empty: the default broker config).
fn broker(kafka: &Kafka, who: &Identity, name: &str) -> Result<Vec<(String, String)>, Error> {
    let me = kafka.api.broker_id().to_string();
    if !name.is_empty() && name != me {
        return Err(Error::invalid(format!(
            "broker {name}'s configs are described by broker {name} itself; this is broker {me}"
        )));
    }
    kafka.api.broker_configs(who, ("kafka", &kafka.settings))
}

fn read_only_broker(name: &str) -> Error {
    Error::invalid(format!(
        "broker {name:?}'s configs are read-only here: set them in its settings file and restart it"
    ))
}

/// `AlterConfigs`: each topic's overrides become exactly those given (the rest revert to
/// the broker's defaults).
pub(crate) fn alter(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: AlterConfigsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut responses = Vec::with_capacity(req.resources.len());
        for r in &req.resources {
            let name = r.resource_name.to_string();
            let outcome = match r.resource_type {
                TOPIC => {
                    let set: BTreeMap<String, String> = r
                        .configs
                        .iter()
                        .filter_map(|c| {
                            c.value.as_ref().map(|v| (c.name.to_string(), v.to_string()))
                        })
                        .collect();
                    let current = kafka.api.topic_configs(&who, &name).map(|e| e.record.configs);
                    match current {
                        Ok(current) => {
                            let delete: Vec<String> =
                                current.keys().filter(|k| !set.contains_key(*k)).cloned().collect();
                            kafka
                                .api
                                .alter_topic_config(&who, &name, &set, &delete, req.validate_only)
                                .await
                                .map(|_| ())
                        }
                        Err(e) => Err(e),
                    }
                }
                BROKER => Err(read_only_broker(&name)),
                GROUP => {
                    // The group's overrides become exactly those given.
                    let set: BTreeMap<String, String> = r
                        .configs
                        .iter()
                        .filter_map(|c| {
                            c.value.as_ref().map(|v| (c.name.to_string(), v.to_string()))
                        })
                        .collect();
                    let delete: Vec<String> = GROUP_KEYS
                        .iter()
                        .map(|(k, _)| k.to_string())
                        .filter(|k| !set.contains_key(k))
                        .collect();
                    kafka
                        .api
                        .alter_group_configs(&who, &name, &set, &delete, req.validate_only)
                        .await
                }
                other => Err(Error::invalid(format!("config resource type {other} is not served"))),
            };
            let resp = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            responses.push(match outcome {
                Ok(()) => resp,
                Err(e) => resp
                    .with_error_code(code(&e, About::Partition))
                    .with_error_message(Some(text(&e.message))),
            });
        }
        let body = AlterConfigsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_responses(responses);
        replier.later(&body, Duration::ZERO)
    }))
}

/// Kafka's incremental operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// `IncrementalAlterConfigs`: set, delete, or append to / subtract from a list value.
pub(crate) fn incremental_alter(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: IncrementalAlterConfigsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut responses = Vec::with_capacity(req.resources.len());
        for r in &req.resources {
            let name = r.resource_name.to_string();
            let outcome = match r.resource_type {
                TOPIC => alter_incrementally(&kafka, &who, &name, r, req.validate_only).await,
                GROUP => alter_group_incrementally(&kafka, &who, &name, r, req.validate_only).await,
                BROKER => Err(read_only_broker(&name)),
                other => Err(Error::invalid(format!("config resource type {other} is not served"))),
            };
            let resp = incremental::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            responses.push(match outcome {
                Ok(()) => resp,
                Err(e) => resp
                    .with_error_code(code(&e, About::Partition))
                    .with_error_message(Some(text(&e.message))),
            });
        }
        let body = incremental::IncrementalAlterConfigsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_responses(responses);
        replier.later(&body, Duration::ZERO)
    }))
}

/// IncrementalAlterConfigs on a group: set or delete (its configs are numbers, not lists).
async fn alter_group_incrementally(
    kafka: &Kafka,
    who: &Identity,
    group: &str,
    r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Error> {
    let (mut set, mut delete) = (BTreeMap::new(), Vec::new());
    for c in &r.configs {
        let key = c.name.to_string();
        match c.config_operation {
            SET => {
                set.insert(key, c.value.as_ref().map(|v| v.to_string()).unwrap_or_default());
            }
            DELETE => delete.push(key),
            op => {
                return Err(Error::new(
                    shale_core::error::ErrorKind::Invalid,
                    shale_core::error::Reason::InvalidConfig,
                    format!(
                        "config operation {op} for group config {key} is not served: group \
                         configs are numbers (0 set, 1 delete)"
                    ),
                ));
            }
        }
    }
    kafka.api.alter_group_configs(who, group, &set, &delete, validate_only).await
}

async fn alter_incrementally(
    kafka: &Kafka,
    who: &Identity,
    topic: &str,
    r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Error> {
    let entry = kafka.api.topic_configs(who, topic)?;
    let (mut set, mut delete) = (BTreeMap::new(), Vec::new());
    for c in &r.configs {
        let key = c.name.to_string();
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        let current = entry.config.get(&key).unwrap_or_default();
        let list = |s: &str| {
            s.split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        };
        match c.config_operation {
            SET => {
                set.insert(key, value);
            }
            DELETE => delete.push(key),
            APPEND => {
                let mut items = list(&current);
                for v in list(&value) {
                    if !items.contains(&v) {
                        items.push(v);
                    }
                }
                set.insert(key, items.join(","));
            }
            SUBTRACT => {
                let drop = list(&value);
                let items: Vec<String> =
                    list(&current).into_iter().filter(|v| !drop.contains(v)).collect();
                set.insert(key, items.join(","));
            }
            op => {
                return Err(Error::invalid(format!(
                    "config operation {op} for {key} is unknown: 0 set, 1 delete, 2 append, 3 subtract"
                )));
            }
        }
    }
    kafka.api.alter_topic_config(who, topic, &set, &delete, validate_only).await.map(|_| ())
}
