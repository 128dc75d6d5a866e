//! Accepted rows, kept as JSON lines, one file per stream or log type.

use super::*;

/// One row of a request, kept as sent: fields are read without copying their values.
pub(super) struct Row<'a> {
    pub(super) raw: &'a serde_json::value::RawValue,
    pub(super) fields: std::collections::BTreeMap<&'a str, &'a serde_json::value::RawValue>,
    /// Fields were dropped: store `fields`, not `raw`.
    pub(super) changed: bool,
    /// The `TimeGenerated` the service put in place of the row's (outside its window).
    pub(super) time_generated: Option<String>,
}

pub(super) fn parse_rows(body: &[u8]) -> Result<Vec<Row<'_>>, String> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
        .map_err(|e| format!("The request body is not a valid JSON array: {e}"))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let fields = serde_json::from_str(raw.get())
                .map_err(|e| format!("Item {i} of the array is not a flat JSON object: {e}"))?;
            Ok(Row {
                raw,
                fields,
                changed: false,
                time_generated: None,
            })
        })
        .collect()
}

/// Appends accepted rows, cutting values at the service's limit as it would.
pub(super) fn store(state: &State, table: &str, rows: Vec<Row<'_>>, max_value: usize) {
    if state.settings.count_only {
        count(state, table, rows.len() as u64);
        return;
    }
    let mut out = Vec::with_capacity(rows.iter().map(|r| r.raw.get().len() + 1).sum());
    let n = rows.len() as u64;
    for row in rows {
        let as_map = |row: &Row<'_>| -> serde_json::Map<String, Value> {
            row.fields
                .iter()
                .map(|(k, v)| {
                    let value = serde_json::from_str(v.get()).unwrap_or(Value::Null);
                    (k.to_string(), value)
                })
                .collect()
        };
        if let Some(time) = &row.time_generated {
            let mut map = as_map(&row);
            map.insert("TimeGenerated".into(), Value::String(time.clone()));
            serde_json::to_writer(&mut out, &map).expect("writing to memory");
        } else if row.raw.get().len() > max_value {
            // Long enough to hold a long value: cut it through a map.
            let mut map = as_map(&row);
            for v in map.values_mut() {
                if let Value::String(s) = v
                    && s.len() > max_value
                {
                    let mut cut = max_value;
                    while !s.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    s.truncate(cut);
                }
            }
            serde_json::to_writer(&mut out, &map).expect("writing to memory");
        } else if row.changed {
            serde_json::to_writer(&mut out, &row.fields).expect("writing to memory");
        } else {
            out.extend_from_slice(row.raw.get().as_bytes());
        }
        out.push(b'\n');
    }
    let mut files = state.files.lock().expect("files");
    let file = files.entry(table.to_string()).or_insert_with(|| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.settings.data_dir.join(format!("{table}.ndjson")))
            .expect("the data folder is writable")
    });
    if let Err(e) = file.write_all(&out) {
        tracing::error!("emulate: cannot store rows for {table}: {e}");
    }
    count(state, table, n);
}

fn count(state: &State, table: &str, n: u64) {
    *state
        .counts
        .lock()
        .expect("counts")
        .rows
        .entry(table.to_string())
        .or_default() += n;
}
