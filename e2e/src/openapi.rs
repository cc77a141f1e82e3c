//! docs/openapi.yaml as a test oracle: every REST response the e2e suite receives through
//! [`crate::Rest`] is checked against the schema the spec gives for its route, method and status
//! (issue 9: the spec is tested, not just present).
//!
//! OpenAPI 3.0 schemas become JSON Schema by turning `nullable` into a `null` alternative; the
//! `#/components/...` references resolve inside the spec document itself.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// The spec as JSON, with nullable schemas rewritten.
fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("docs/openapi.yaml");
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("docs/openapi.yaml parses");
        let mut v = serde_json::to_value(yaml).expect("yaml to json");
        rewrite_nullable(&mut v);
        v
    })
}

/// `{type: T, nullable: true}` → `{type: [T, "null"]}`; other nullable schemas → `anyOf` with null.
fn rewrite_nullable(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for child in m.values_mut() {
                rewrite_nullable(child);
            }
            if m.remove("nullable") == Some(Value::Bool(true)) {
                match m.get("type").cloned() {
                    Some(Value::String(t)) => {
                        m.insert("type".into(), json!([t, "null"]));
                        if let Some(Value::Array(e)) = m.get_mut("enum") {
                            e.push(Value::Null);
                        }
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(m));
                        m.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_nullable),
        _ => {}
    }
}

/// The spec's path template that `path` (no query) matches: literal segments must be equal,
/// `{param}` segments match any non-empty one. The most literal match wins.
fn template(path: &str) -> Option<&'static str> {
    let segs: Vec<&str> = path.split('/').collect();
    let paths = spec()["paths"].as_object()?;
    paths
        .keys()
        .filter_map(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            let fits = ts.len() == segs.len() && ts.iter().zip(&segs).all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s);
            fits.then(|| (ts.iter().filter(|t| !t.starts_with('{')).count(), t.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, t)| t)
}

/// Follows a `$ref` into the spec.
fn resolve(v: &'static Value) -> &'static Value {
    match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => spec().pointer(pointer).unwrap_or(&Value::Null),
        None => v,
    }
}

/// The JSON schema of the response the spec documents for this call, if it documents a JSON
/// body: the route's operation, then the status (or `default`). An unknown route or method is
/// answered with the error body.
fn response_schema(method: &str, path: &str, status: u16) -> Option<&'static Value> {
    let error = &spec()["components"]["schemas"]["Error"];
    let Some(t) = template(path) else { return Some(error) };
    let Some(op) = spec()["paths"][t].get(method.to_ascii_lowercase()) else { return Some(error) };
    let responses = &op["responses"];
    let resp = responses.get(status.to_string()).or_else(|| responses.get("default"))?;
    resolve(resp).pointer("/content/application~1json/schema")
}

/// Checks one response against the spec; the error says what does not match.
pub fn check(method: &str, path_and_query: &str, status: u16, body: &Value) -> Result<(), String> {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let Some(schema) = response_schema(method, path, status) else { return Ok(()) };
    // The schema with the spec's components beside it, so `#/components/...` references resolve.
    let mut root = match schema {
        Value::Object(m) => m.clone(),
        other => Map::from_iter([("allOf".to_string(), json!([other]))]),
    };
    root.insert("components".into(), spec()["components"].clone());
    let validator = jsonschema::validator_for(&Value::Object(root)).map_err(|e| format!("schema for {method} {path} {status}: {e}"))?;
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{method} {path} → {status} does not match docs/openapi.yaml: {}; body: {body}", errors.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_to_their_templates() {
        assert_eq!(template("/v1/channels/c_1/messages/m_1/edits"), Some("/v1/channels/{id}/messages/{msg}/edits"));
        assert_eq!(template("/v1/channels/c_1/events"), Some("/v1/channels/{id}/events"));
        assert_eq!(template("/v1/channels"), Some("/v1/channels"));
        assert_eq!(template("/v1/nope"), None);
    }

    #[test]
    fn mismatches_are_reported() {
        assert!(check("GET", "/v1/channels", 200, &json!({"channels": []})).is_ok());
        assert!(check("GET", "/v1/channels", 200, &json!({"channels": [{"id": 1}]})).is_err());
        assert!(check("GET", "/v1/channels/c/events", 400, &json!({"code": "bad_request", "message": "x"})).is_ok());
        assert!(check("GET", "/v1/channels/c/events", 400, &json!({"code": "nonsense", "message": "x"})).is_err());
        assert!(check("PUT", "/v1/channels", 405, &Value::Null).is_err(), "a 405 must have the error body");
        let ev = json!({"channel": "c", "seq": 1, "kind": "message", "id": "m", "user": "u", "ts": "2026-12-02T00:00:00Z", "text": null, "thread": null});
        assert!(check("GET", "/v1/channels/c/events?after=0", 200, &json!({"events": [ev], "has_more": false})).is_ok());
    }
}
