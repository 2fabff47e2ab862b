//! Configuration helpers shared by backends: merging and flattening JSON.

use serde_json::{Map, Value};

/// Merges `update` into `base`: objects merge key by key (recursively), anything else replaces.
pub fn merge_json(base: &mut Value, update: &Value) {
    match (base, update) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                merge_json(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, u) => *b = u.clone(),
    }
}

/// Flattens nested objects into dotted keys with text values (`{"a":{"b":1}}` → `a.b = "1"`),
/// in document order. Arrays and scalars are written as compact JSON (strings unquoted).
pub fn flatten(config: &Value, sep: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten_into(config, "", sep, &mut out);
    out
}

fn flatten_into(v: &Value, prefix: &str, sep: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
            for (k, child) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}{sep}{k}")
                };
                flatten_into(child, &key, sep, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Null if prefix.is_empty() => {}
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Wraps a non-object configuration as `{"config": value}` so every backend gets an object.
pub fn as_object(config: Value) -> Value {
    match config {
        Value::Object(_) => config,
        Value::Null => Value::Object(Map::new()),
        other => {
            let mut m = Map::new();
            m.insert("config".into(), other);
            Value::Object(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_is_recursive() {
        let mut base = json!({"a": 1, "m": {"x": 1, "y": 2}});
        merge_json(&mut base, &json!({"b": 2, "m": {"y": 3}}));
        assert_eq!(base, json!({"a": 1, "b": 2, "m": {"x": 1, "y": 3}}));
    }

    #[test]
    fn flatten_dots_nested_keys() {
        let flat = flatten(
            &json!({"model": {"hidden": 256, "layers": 4}, "name": "vit", "ks": [1, 2]}),
            ".",
        );
        assert_eq!(
            flat,
            vec![
                ("model.hidden".to_string(), "256".to_string()),
                ("model.layers".to_string(), "4".to_string()),
                ("name".to_string(), "vit".to_string()),
                ("ks".to_string(), "[1,2]".to_string()),
            ]
        );
    }
}
