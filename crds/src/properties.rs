//! Kafka client properties as the ChatCluster's `kafka.secretRef` holds them: one `name=value`
//! per line (librdkafka names, e.g. `security.protocol`, `sasl.username`); blank lines and lines
//! starting with `#` are skipped. The operator reads them to provision topics and palaverd reads
//! the same text from `PALAVER_KAFKA_PROPERTIES_FILE`.

/// Parses the text; an error names the first line that is not `name=value`.
pub fn parse_kafka_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("Kafka properties: expected name=value, got {l:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_garbage() {
        let p = parse_kafka_properties("# creds\nsecurity.protocol=SASL_SSL\n\nsasl.password = a=b\n").unwrap();
        assert_eq!(p, vec![("security.protocol".into(), "SASL_SSL".into()), ("sasl.password".into(), "a=b".into())]);
        assert!(parse_kafka_properties("oops").unwrap_err().contains("oops"));
        assert!(parse_kafka_properties("=x").is_err());
    }
}
