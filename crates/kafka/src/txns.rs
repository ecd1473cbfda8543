//! `ListTransactions` (v0–1) and `DescribeTransactions` (KIP-664, what
//! `kafka-transactions.sh list` and `describe` ask): each broker answers for the
//! transactional ids it coordinates; the admin client asks every broker for a list and the
//! coordinator for a description.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::describe_transactions_response::{
    DescribeTransactionsResponse, TopicData, TransactionState as Described,
};
use kafka_protocol::messages::list_transactions_response::{
    ListTransactionsResponse, TransactionState as Listed,
};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, ListTransactionsRequest, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use shale_broker::api::TxnFilter;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// `ListTransactions`.
pub(crate) fn list_transactions(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ListTransactionsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    let filter = TxnFilter {
        states: req.state_filters.iter().map(|s| s.to_string()).collect(),
        producer_ids: req.producer_id_filters.iter().map(|p| p.0).collect(),
        // v1 (KIP-994): -1 is no filter.
        open_longer_than_ms: Some(req.duration_filter).filter(|d| *d >= 0),
    };
    Ok(Answer::later(async move {
        let mut body = ListTransactionsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO));
        match kafka.api.list_transactions(&who, &filter).await {
            Ok((listed, unknown)) => {
                body.unknown_state_filters = unknown.iter().map(|s| text(s)).collect();
                body.transaction_states = listed
                    .into_iter()
                    .map(|(id, r)| {
                        Listed::default()
                            .with_transactional_id(TransactionalId(text(&id)))
                            .with_producer_id(ProducerId(r.producer_id))
                            .with_transaction_state(text(r.state.name()))
                    })
                    .collect();
            }
            Err(e) => body.error_code = code(&e, About::Group),
        }
        replier.later(&body, Duration::ZERO)
    }))
}

/// `DescribeTransactions`.
pub(crate) fn describe_transactions(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DescribeTransactionsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut states = Vec::with_capacity(req.transactional_ids.len());
        for id in req.transactional_ids {
            let name = id.0.to_string();
            let state = Described::default()
                .with_transactional_id(id)
                .with_transaction_start_time_ms(-1)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let found = match name.is_empty() {
                true => Err(shale_core::error::Error::invalid("an empty transactional id")),
                false => kafka.api.describe_transaction(&who, &name).await,
            };
            states.push(match found {
                Ok(r) => state
                    .with_transaction_state(text(r.state.name()))
                    .with_transaction_timeout_ms(r.timeout_ms)
                    .with_transaction_start_time_ms(r.started_ms)
                    .with_producer_id(ProducerId(r.producer_id))
                    .with_producer_epoch(r.producer_epoch)
                    .with_topics(
                        r.partitions
                            .iter()
                            .map(|(t, ps)| {
                                TopicData::default()
                                    .with_topic(TopicName(text(t)))
                                    .with_partitions(ps.iter().map(|p| *p as i32).collect())
                            })
                            .collect(),
                    ),
                Err(e) => state.with_error_code(code(&e, About::Group)),
            });
        }
        let body = DescribeTransactionsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_transaction_states(states);
        replier.later(&body, Duration::ZERO)
    }))
}
