//! docs/observability.md lists every metric the operator exports.

use std::time::Duration;

use palaver_operator::metrics::Metrics;

#[test]
fn every_operator_metric_is_documented() {
    let m = Metrics::new();
    // Give every labelled family a series so it appears in the output.
    m.observe("Workspace", Duration::from_millis(1), Some("PostgresUnavailable"));
    m.set_ready("Workspace", "ns", "ws", true);
    let names: Vec<String> = m
        .encode()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut it = l.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            }
        })
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/observability.md")).unwrap();
    let missing: Vec<_> = names.iter().filter(|n| !docs.contains(&format!("`{n}`"))).collect();
    assert!(missing.is_empty(), "undocumented in docs/observability.md: {missing:?}");
}
