//! Markdown tables for TensorBoard's text plugin (configuration and logged tables).

use crate::backend::Table;
use crate::config::flatten;

/// The flattened configuration as a two-column table (`model.depth | 6`).
pub fn config_table(config: &serde_json::Value) -> String {
    let rows: Vec<Vec<String>> = flatten(config, ".")
        .into_iter()
        .map(|(k, v)| vec![k, v])
        .collect();
    if rows.is_empty() {
        return "*empty configuration*".into();
    }
    table(&["key", "value"], &rows)
}

/// A logged table; rows shorter than the header are padded, longer ones cut.
pub fn logged_table(t: &Table) -> String {
    if t.columns.is_empty() {
        return "*empty table*".into();
    }
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|row| row.iter().map(ToString::to_string).collect())
        .collect();
    table(&t.columns, &rows)
}

fn table<S: AsRef<str>>(header: &[S], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    push_row(&mut out, header.iter().map(AsRef::as_ref), header.len());
    push_row(&mut out, header.iter().map(|_| "---"), header.len());
    for row in rows {
        push_row(&mut out, row.iter().map(String::as_str), header.len());
    }
    out
}

fn push_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>, width: usize) {
    let mut n = 0;
    out.push('|');
    for cell in cells.take(width) {
        out.push(' ');
        push_cell(out, cell);
        out.push_str(" |");
        n += 1;
    }
    for _ in n..width {
        out.push_str("  |");
    }
    out.push('\n');
}

/// A cell's text with the characters that would break the table escaped.
fn push_cell(out: &mut String, cell: &str) {
    for c in cell.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    #[test]
    fn config_is_a_key_value_table_of_dotted_keys() {
        let md =
            config_table(&serde_json::json!({"lr": 0.001, "model": {"depth": 6, "name": "vit"}}));
        assert_eq!(
            md,
            "| key | value |\n| --- | --- |\n| lr | 0.001 |\n| model.depth | 6 |\n| model.name | vit |\n"
        );
        assert_eq!(
            config_table(&serde_json::json!({})),
            "*empty configuration*"
        );
    }

    #[test]
    fn tables_pad_cut_and_escape_cells() {
        let t = Table {
            key: "t".into(),
            columns: vec!["id".into(), "text".into()],
            rows: vec![
                vec![Value::I64(1), Value::from("a|b\nc")],
                vec![Value::I64(2)],
                vec![Value::I64(3), Value::from("x"), Value::from("extra")],
            ],
            step: 0,
        };
        assert_eq!(
            logged_table(&t),
            "| id | text |\n| --- | --- |\n| 1 | a\\|b<br>c |\n| 2 |  |\n| 3 | x |\n"
        );
    }
}
