//! Names users choose, checked the same way by the client and the broker.

use crate::error::{Error, ErrorKind, Reason};

/// Checks a topic name like Kafka does: 1-249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), Error> {
    let invalid = |why: &str| {
        Error::new(
            ErrorKind::Invalid,
            Reason::InvalidTopicName,
            format!("invalid topic name {name:?}: {why}"),
        )
        .with("topic", name)
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > 249 {
        return Err(invalid("longer than 249 characters"));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are reserved"));
    }
    if let Some(c) =
        name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_' || *c == '-'))
    {
        return Err(invalid(&format!("character {c:?} is not allowed; use a-z A-Z 0-9 . _ -")));
    }
    Ok(())
}

/// Longest group name (bytes).
pub const MAX_GROUP_NAME: usize = 249;

/// Checks a group name: 1 to 249 bytes, no control characters.
pub fn validate_group(group: &str) -> Result<(), Error> {
    if group.is_empty() || group.len() > MAX_GROUP_NAME || group.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorKind::Invalid,
            Reason::InvalidGroup,
            format!(
                "group name {group:?} is invalid: use 1 to {MAX_GROUP_NAME} bytes without \
                 control characters"
            ),
        )
        .with("group", group));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn group_names_are_checked() {
        assert!(validate_group("orders-etl").is_ok());
        for bad in ["", "a\nb", &"x".repeat(250)] {
            let e = validate_group(bad).unwrap_err();
            assert_eq!(e.reason, "INVALID_GROUP");
        }
    }
}
