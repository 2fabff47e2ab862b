//! What differs between runs' configurations.

/// `{"a": {"b": 1}}` → `a.b = 1`.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Entries of `configs` (one per run) whose values are not all the same.
pub(crate) fn config_diff(
    configs: &[Option<serde_json::Value>],
) -> Vec<(String, Vec<Option<String>>)> {
    let flat: Vec<Vec<(String, String)>> = configs
        .iter()
        .map(|c| {
            let mut out = Vec::new();
            if let Some(c) = c {
                flatten("", c, &mut out);
            }
            out
        })
        .collect();
    let mut keys: Vec<&str> = Vec::new();
    for f in &flat {
        for (k, _) in f {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
    }
    keys.into_iter()
        .filter_map(|k| {
            let values: Vec<Option<String>> = flat
                .iter()
                .map(|f| f.iter().find(|(fk, _)| fk == k).map(|(_, v)| v.clone()))
                .collect();
            let same = values.windows(2).all(|w| w[0] == w[1]);
            (!same).then(|| (k.to_string(), values))
        })
        .collect()
}
