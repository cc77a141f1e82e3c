//! The operator-facing docs list exactly what the binary reads and exports.

use std::collections::BTreeSet;

fn doc(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../docs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn every_env_var_is_documented() {
    let src = std::fs::read_to_string(format!("{}/src/config.rs", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let vars: BTreeSet<&str> = src.split("env = \"").skip(1).filter_map(|s| s.split('"').next()).collect();
    assert!(vars.len() > 20, "parsed too few variables: {vars:?}");
    let docs = doc("configuration.md");
    let missing: Vec<_> = vars.iter().filter(|v| !docs.contains(&format!("`{v}`"))).collect();
    assert!(missing.is_empty(), "undocumented in docs/configuration.md: {missing:?}");
}

#[test]
fn every_metric_is_documented() {
    let m = palaver_dataplane::metrics::global();
    // Touch labelled families so they appear in the output.
    m.sends.get_or_create(&palaver_dataplane::metrics::ResultLabel { result: "ok" }).inc();
    let text = m.encode();
    let names: BTreeSet<String> = text
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
    assert!(names.contains("palaver_delivery_latency_seconds"), "{names:?}");
    let docs = doc("observability.md");
    let missing: Vec<_> = names.iter().filter(|n| !docs.contains(&format!("`{n}`"))).collect();
    assert!(missing.is_empty(), "undocumented in docs/observability.md: {missing:?}");
}

#[test]
fn every_route_is_in_the_openapi_file() {
    let src = std::fs::read_to_string(format!("{}/src/gateway/mod.rs", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let routes: BTreeSet<&str> = src.split(".route(\"").skip(1).filter_map(|s| s.split('"').next()).collect();
    assert!(routes.len() >= 10, "parsed too few routes: {routes:?}");
    let api = doc("openapi.yaml");
    let missing: Vec<_> = routes.iter().filter(|r| !api.contains(&format!("  {r}:"))).collect();
    assert!(missing.is_empty(), "routes missing from docs/openapi.yaml: {missing:?}");
}
