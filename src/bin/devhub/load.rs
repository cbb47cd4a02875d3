//! Input files to Event Hubs message bodies.
//!
//! The rule, per input (framing as signin-radar reads it: NDJSON, or one document when the
//! first non-blank line is not a complete JSON value):
//!
//! - NDJSON, each non-blank line (its line end, `\n` or `\r\n`, removed):
//!   - an envelope `{"records":[...]}` is one message, its bytes as given;
//!   - a record (any other JSON object) is grouped with the consecutive record lines around
//!     it into `{"records":[line,line,...]}`, up to `records_per_message` records and about
//!     `max_message_bytes` a message;
//!   - a Graph page `{"value":[...]}` or a JSON array: its items, grouped into envelopes;
//!   - anything else (not JSON, truncated, a scalar) is one message as is: devhub checks JSON
//!     only as far as it needs the framing, and the consumer must count and skip these.
//! - One document: a JSON array, a page or an envelope gives its items, grouped into
//!   envelopes; any other object is one record. A document that does not parse is read as
//!   lines after all (by the rules above).
//!
//! Items are copied byte for byte (never re-serialized). Message order follows the inputs.

use std::io::Read;

use anyhow::Context;
use signin_radar::decode::{self, Framing};
use signin_radar::source::file::{self, InputSpec, Opened};

#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    pub records_per_message: usize,
    pub max_message_bytes: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            records_per_message: 50,
            max_message_bytes: 1 << 20,
        }
    }
}

/// Reads every input (files, directories, `-` for stdin; gzip or plain) into message bodies.
pub fn load_inputs(inputs: &[String], opts: LoadOptions) -> anyhow::Result<Vec<Vec<u8>>> {
    let specs: Vec<InputSpec> = inputs.iter().map(|s| InputSpec::parse(s)).collect();
    let specs = file::expand(&specs)?;
    let mut out = Vec::new();
    for spec in &specs {
        let before = out.len();
        match file::open(spec)? {
            Opened::Mapped(bytes) => messages_from_bytes(&bytes, opts, &mut out),
            Opened::Stream(mut r) => {
                let mut data = Vec::new();
                r.read_to_end(&mut data)
                    .with_context(|| format!("cannot read {}", spec.name()))?;
                messages_from_bytes(&data, opts, &mut out);
            }
        }
        tracing::info!(input = %spec.name(), messages = out.len() - before, "loaded");
    }
    Ok(out)
}

/// Cuts one whole input into message bodies (see the module documentation).
pub fn messages_from_bytes(data: &[u8], opts: LoadOptions, out: &mut Vec<Vec<u8>>) {
    let data = decode::strip_bom(data);
    let mut batch = Batcher::new(opts, out);
    if decode::detect_framing(data) == Framing::Document {
        match shape(data) {
            Shape::Envelope(items) | Shape::Items(items) => {
                for it in items {
                    batch.record(&data[it]);
                }
                batch.flush();
                return;
            }
            Shape::Record => {
                batch.record(trim(data));
                batch.flush();
                return;
            }
            Shape::Other => {} // read as lines below
        }
    }
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match shape(line) {
            Shape::Envelope(_) | Shape::Other => batch.raw(line),
            Shape::Record => batch.record(trim(line)),
            Shape::Items(items) => {
                for it in items {
                    batch.record(&line[it]);
                }
            }
        }
    }
    batch.flush();
}

/// Groups records into envelopes.
struct Batcher<'o> {
    opts: LoadOptions,
    out: &'o mut Vec<Vec<u8>>,
    cur: Vec<u8>,
    n: usize,
}

impl<'o> Batcher<'o> {
    fn new(opts: LoadOptions, out: &'o mut Vec<Vec<u8>>) -> Self {
        Batcher {
            opts,
            out,
            cur: Vec::new(),
            n: 0,
        }
    }

    fn record(&mut self, item: &[u8]) {
        if self.n > 0
            && (self.n >= self.opts.records_per_message.max(1)
                || self.cur.len() + item.len() + 3 > self.opts.max_message_bytes)
        {
            self.flush();
        }
        if self.n == 0 {
            self.cur.extend_from_slice(b"{\"records\":[");
        } else {
            self.cur.push(b',');
        }
        self.cur.extend_from_slice(item);
        self.n += 1;
    }

    /// A message as is; the records grouped so far go first.
    fn raw(&mut self, msg: &[u8]) {
        self.flush();
        self.out.push(msg.to_vec());
    }

    fn flush(&mut self) {
        if self.n > 0 {
            self.cur.extend_from_slice(b"]}");
            self.out.push(std::mem::take(&mut self.cur));
            self.n = 0;
        }
    }
}

type Span = std::ops::Range<usize>;

enum Shape {
    /// `{"records":[...]}`: the ranges of the records.
    Envelope(Vec<Span>),
    /// A page `{"value":[...]}` or an array: the ranges of the items.
    Items(Vec<Span>),
    /// Any other object.
    Record,
    /// Not JSON, or a scalar.
    Other,
}

fn shape(unit: &[u8]) -> Shape {
    // Validate first (no allocation); the walk below relies on valid JSON.
    if serde_json::from_slice::<serde::de::IgnoredAny>(unit).is_err() {
        return Shape::Other;
    }
    let i = skip_ws(unit, 0);
    match unit.get(i) {
        Some(b'[') => Shape::Items(array_items(unit, i)),
        Some(b'{') => {
            for (key, value) in object_members(unit, i) {
                let key = &unit[key];
                if unit.get(value.start) != Some(&b'[') {
                    continue;
                }
                if key.eq_ignore_ascii_case(b"records") {
                    return Shape::Envelope(array_items(unit, value.start));
                }
                if key.eq_ignore_ascii_case(b"value") {
                    return Shape::Items(array_items(unit, value.start));
                }
            }
            Shape::Record
        }
        _ => Shape::Other,
    }
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// From an opening quote to just past the closing one.
fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Past one value starting at `i` (valid JSON); containers by bracket counting, no recursion.
fn skip_value(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'"') => skip_string(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            b.len()
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
            {
                j += 1;
            }
            j
        }
    }
}

/// The items of the array whose `[` is at `i`.
fn array_items(b: &[u8], i: usize) -> Vec<Span> {
    let mut items = Vec::new();
    let mut j = skip_ws(b, i + 1);
    if b.get(j) == Some(&b']') {
        return items;
    }
    while j < b.len() {
        let end = skip_value(b, j);
        items.push(j..end);
        j = skip_ws(b, end);
        match b.get(j) {
            Some(b',') => j = skip_ws(b, j + 1),
            _ => break,
        }
    }
    items
}

/// (key without quotes, value) of the members of the object whose `{` is at `i`.
fn object_members(b: &[u8], i: usize) -> Vec<(Span, Span)> {
    let mut members = Vec::new();
    let mut j = skip_ws(b, i + 1);
    while b.get(j) == Some(&b'"') {
        let key_end = skip_string(b, j);
        let key = j + 1..key_end.saturating_sub(1);
        j = skip_ws(b, key_end);
        if b.get(j) != Some(&b':') {
            break;
        }
        j = skip_ws(b, j + 1);
        let end = skip_value(b, j);
        members.push((key, j..end));
        j = skip_ws(b, end);
        match b.get(j) {
            Some(b',') => j = skip_ws(b, j + 1),
            _ => break,
        }
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, per: usize) -> Vec<String> {
        let mut out = Vec::new();
        messages_from_bytes(
            text.as_bytes(),
            LoadOptions {
                records_per_message: per,
                max_message_bytes: 1 << 20,
            },
            &mut out,
        );
        out.into_iter()
            .map(|m| String::from_utf8(m).unwrap())
            .collect()
    }

    #[test]
    fn envelope_lines_are_messages_as_given() {
        let text = "{\"records\": [ {\"a\":1} ,{\"b\":2}]}\r\n\n{\"records\":[]}\n";
        assert_eq!(
            load(text, 50),
            vec!["{\"records\": [ {\"a\":1} ,{\"b\":2}]}", "{\"records\":[]}"]
        );
    }

    #[test]
    fn record_lines_are_grouped_and_broken_lines_kept_in_order() {
        let text = "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\nnot json\n{\"id\":4}\n{\"id\":5\n";
        assert_eq!(
            load(text, 2),
            vec![
                "{\"records\":[{\"id\":1},{\"id\":2}]}",
                "{\"records\":[{\"id\":3}]}",
                "not json",
                "{\"records\":[{\"id\":4}]}",
                "{\"id\":5",
            ]
        );
    }

    #[test]
    fn pages_arrays_and_documents_are_wrapped() {
        let page = "{\"@odata.context\":\"x\",\"value\":[{\"id\":\"a\"},{\"id\":\"b,]}\"}]}\n";
        assert_eq!(
            load(page, 50),
            vec!["{\"records\":[{\"id\":\"a\"},{\"id\":\"b,]}\"}]}"]
        );
        let portal = "[\n  {\"id\": 1,\n   \"x\": [1, {\"y\": \"\\\"]\"}]},\n  {\"id\": 2}\n]\n";
        assert_eq!(
            load(portal, 50),
            vec!["{\"records\":[{\"id\": 1,\n   \"x\": [1, {\"y\": \"\\\"]\"}]},{\"id\": 2}]}"]
        );
        let pretty_envelope =
            "{\n \"records\": [\n  {\"id\": 1},\n  {\"id\": 2},\n  {\"id\": 3}\n ]\n}";
        assert_eq!(
            load(pretty_envelope, 2),
            vec![
                "{\"records\":[{\"id\": 1},{\"id\": 2}]}",
                "{\"records\":[{\"id\": 3}]}"
            ]
        );
        let single = "{\n \"id\": 7\n}\n";
        assert_eq!(load(single, 50), vec!["{\"records\":[{\n \"id\": 7\n}]}"]);
    }

    #[test]
    fn a_broken_document_is_read_as_lines() {
        let text = "[\n{\"id\":1}\n";
        assert_eq!(load(text, 50), vec!["[", "{\"records\":[{\"id\":1}]}"]);
        assert!(load("", 50).is_empty());
        assert_eq!(
            load("\u{feff}{\"id\":1}\n", 50),
            vec!["{\"records\":[{\"id\":1}]}"]
        );
    }

    #[test]
    fn message_size_is_bounded() {
        let mut out = Vec::new();
        let line = format!("{{\"p\":\"{}\"}}\n", "x".repeat(100));
        messages_from_bytes(
            line.repeat(10).as_bytes(),
            LoadOptions {
                records_per_message: 50,
                max_message_bytes: 350,
            },
            &mut out,
        );
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|m| m.len() <= 350));
    }
}
