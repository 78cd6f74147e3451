//! The names of the topics and subjects sluice writes to: one place, for `run` and the CLI.

/// The topic of table `schema.table`: `<prefix>.<schema>.<table>`.
pub fn table_topic(prefix: &str, schema: &str, table: &str) -> String {
    format!("{prefix}.{schema}.{table}")
}

/// The topic of the logical decoding messages sluice captures.
pub fn messages_topic(prefix: &str) -> String {
    format!("{prefix}.message")
}

/// The topic of transaction metadata (BEGIN and END records).
pub fn transactions_topic(prefix: &str) -> String {
    format!("{prefix}.transaction")
}

/// sluice's own state topic: whether a slot's snapshot completed.
pub fn state_topic(prefix: &str) -> String {
    format!("{prefix}._sluice_state")
}

/// The registry subject of a topic's keys.
pub fn key_subject(topic: &str) -> String {
    format!("{topic}-key")
}

/// The registry subject of a topic's values.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_debeziums_conventions() {
        assert_eq!(
            table_topic("shop", "public", "orders"),
            "shop.public.orders"
        );
        assert_eq!(messages_topic("shop"), "shop.message");
        assert_eq!(transactions_topic("shop"), "shop.transaction");
        assert_eq!(state_topic("shop"), "shop._sluice_state");
        assert_eq!(key_subject("shop.public.orders"), "shop.public.orders-key");
        assert_eq!(
            value_subject("shop.public.orders"),
            "shop.public.orders-value"
        );
    }
}
