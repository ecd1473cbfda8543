//! Client errors say where they happened: the broker the client talked to and the topic
//! and partition concerned, both as details (`broker`, `topic`, `partition`) and as a
//! message prefix, e.g. `broker 127.0.0.1:9292: topic orders partition 3: ...`.
//!
//! Any layer may add what it knows; the prefix is always rebuilt from the details, so an
//! error located twice carries one prefix, and the innermost broker (the one that failed)
//! wins.

use std::collections::BTreeMap;

use shale_core::error::Error;

fn prefix(details: &BTreeMap<String, String>) -> String {
    let mut p = String::new();
    if let Some(b) = details.get("broker") {
        p += &format!("broker {b}: ");
    }
    match (details.get("topic"), details.get("partition")) {
        (Some(t), Some(n)) => p += &format!("topic {t} partition {n}: "),
        (Some(t), None) => p += &format!("topic {t}: "),
        _ => {}
    }
    p
}

/// Splits an error's message into its scope prefix and the rest.
fn unprefixed(e: &Error) -> &str {
    e.message.strip_prefix(&prefix(&e.details)).unwrap_or(&e.message)
}

/// Adds the broker, topic and partition an error concerns (keeping any it names already).
pub(crate) fn locate(
    mut e: Error,
    broker: &str,
    topic: Option<&str>,
    partition: Option<u32>,
) -> Error {
    let message = unprefixed(&e).to_string();
    let mut put = |key: &str, value: String| {
        e.details.entry(key.to_string()).or_insert(value);
    };
    put("broker", broker.to_string());
    if let Some(t) = topic {
        put("topic", t.to_string());
    }
    if let Some(p) = partition {
        put("partition", p.to_string());
    }
    e.message = format!("{}{message}", prefix(&e.details));
    e
}

/// Rewrites an error's message behind its scope prefix.
pub(crate) fn reword(mut e: Error, f: impl FnOnce(&str) -> String) -> Error {
    let message = f(unprefixed(&e));
    e.message = format!("{}{message}", prefix(&e.details));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_located_twice_has_one_prefix_naming_the_inner_broker() {
        let e = Error::unavailable("tcp connect error: connection refused");
        let e = locate(e, "10.0.0.1:9292", None, None);
        assert_eq!(e.message, "broker 10.0.0.1:9292: tcp connect error: connection refused");
        let e = locate(e, "10.0.0.2:9292", Some("orders"), Some(3));
        assert_eq!(
            e.message,
            "broker 10.0.0.1:9292: topic orders partition 3: tcp connect error: connection refused"
        );
        assert_eq!(e.details["partition"], "3");
        let e = reword(e, |m| format!("gave up ({m})"));
        assert_eq!(
            e.message,
            "broker 10.0.0.1:9292: topic orders partition 3: gave up (tcp connect error: \
             connection refused)"
        );
    }

    #[test]
    fn a_server_error_with_topic_details_gets_the_whole_prefix() {
        let e = Error::unavailable("partition orders-3 has no live in-sync replica")
            .with("topic", "orders")
            .with("partition", 3);
        let e = locate(e, "10.0.0.1:9292", Some("orders"), Some(3));
        assert_eq!(
            e.message,
            "broker 10.0.0.1:9292: topic orders partition 3: partition orders-3 has no live \
             in-sync replica"
        );
    }
}
