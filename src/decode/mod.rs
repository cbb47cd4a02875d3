//! Bytes to records: framing (NDJSON or one document), document shapes, invalid units.
//!
//! Decode never does I/O and never fails: what does not decode is counted as an invalid unit
//! by reason, and everything valid around it is kept. A unit (a line or a document) is
//! all-or-nothing: its records are handed on only when the whole unit scanned.

pub mod json;
pub mod record;

use json::{JsonError, Kind, Scanner};
pub use record::{Fields, Shape};

/// Longest NDJSON line accepted, in bytes. (Documents are bounded by their source: a mapped
/// file costs no memory of its own, a stream is held up to `source::MAX_STREAM_DOCUMENT`.)
pub const MAX_LINE_BYTES: usize = 256 << 20;

/// Why a unit was skipped. A closed set: its names are metric label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invalid {
    NotUtf8,
    NotJson,
    Truncated,
    TooDeep,
    TooLarge,
    ScalarDocument,
    NotARecord,
    BadTime,
}

impl Invalid {
    pub const COUNT: usize = 8;
    pub const ALL: [Invalid; Invalid::COUNT] = [
        Invalid::NotUtf8,
        Invalid::NotJson,
        Invalid::Truncated,
        Invalid::TooDeep,
        Invalid::TooLarge,
        Invalid::ScalarDocument,
        Invalid::NotARecord,
        Invalid::BadTime,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invalid::NotUtf8 => "not_utf8",
            Invalid::NotJson => "not_json",
            Invalid::Truncated => "truncated",
            Invalid::TooDeep => "too_deep",
            Invalid::TooLarge => "too_large",
            Invalid::ScalarDocument => "scalar_document",
            Invalid::NotARecord => "not_a_record",
            Invalid::BadTime => "bad_time",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    fn from_json(e: JsonError) -> Invalid {
        match e {
            JsonError::Truncated => Invalid::Truncated,
            JsonError::Syntax => Invalid::NotJson,
            JsonError::TooDeep => Invalid::TooDeep,
        }
    }
}

/// Counts of invalid units, indexed by [`Invalid::index`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvalidCounts(pub [u64; Invalid::COUNT]);

impl InvalidCounts {
    #[inline]
    pub fn add(&mut self, why: Invalid) {
        self.0[why.index()] += 1;
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    pub fn merge(&mut self, o: &InvalidCounts) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a += b;
        }
    }
    pub fn get(&self, why: Invalid) -> u64 {
        self.0[why.index()]
    }
}

/// Records of the units decoded so far, and the units that were not.
#[derive(Default)]
pub struct Decoded<'a> {
    pub records: Vec<Fields<'a>>,
    pub invalid: InvalidCounts,
}

impl<'a> Decoded<'a> {
    pub fn with_invalid(invalid: InvalidCounts) -> Self {
        Decoded {
            invalid,
            ..Decoded::default()
        }
    }
}

impl Decoded<'_> {
    pub fn clear(&mut self) {
        self.records.clear();
        self.invalid = InvalidCounts::default();
    }
}

/// How an input is cut into units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// NDJSON: every non-blank line is a document.
    Lines,
    /// One document spanning several lines (pretty-printed download).
    Document,
}

/// Skips a leading UTF-8 byte order mark.
pub fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data)
}

fn is_blank(line: &[u8]) -> bool {
    line.iter()
        .all(|&b| b == b' ' || b == b'\t' || b == b'\r' || b == b'\n')
}

/// The first non-blank line of `data`, if it is complete (ends in `\n`) or `data` ends.
fn first_line(data: &[u8]) -> Option<&[u8]> {
    let mut rest = data;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        if !is_blank(line) {
            return Some(line);
        }
        rest = &rest[(end + 1).min(rest.len())..];
    }
    None
}

/// Scans one unit completely (a value followed by nothing but whitespace).
fn scans_whole(unit: &str) -> Result<Kind, JsonError> {
    let mut s = Scanner::new(unit);
    let kind = s.peek_kind()?;
    s.skip(0)?;
    s.finish()?;
    Ok(kind)
}

/// Chooses the framing from the start of an input: a document when its first non-blank line is
/// not a complete JSON value by itself.
pub fn detect_framing(data: &[u8]) -> Framing {
    match first_line(strip_bom(data)) {
        Some(line) if std::str::from_utf8(line).is_ok_and(|l| scans_whole(l).is_err()) => {
            Framing::Document
        }
        _ => Framing::Lines,
    }
}

/// Decodes one document (a line or a whole input) into `out`, all or nothing.
pub fn decode_unit<'a>(unit: &'a [u8], out: &mut Decoded<'a>) {
    match simdutf8::basic::from_utf8(unit) {
        Ok(text) => decode_utf8_unit(text, out),
        Err(_) => out.invalid.add(Invalid::NotUtf8),
    }
}

/// [`decode_unit`] for a unit already known to be valid UTF-8.
fn decode_utf8_unit<'a>(unit: &'a str, out: &mut Decoded<'a>) {
    let mark = out.records.len();
    let mut staged = InvalidCounts::default();
    let res = scan_document(unit, &mut out.records, &mut staged);
    match res {
        Ok(()) => out.invalid.merge(&staged),
        Err(e) => {
            out.records.truncate(mark);
            out.invalid.add(e);
        }
    }
}

fn scan_document<'a>(
    unit: &'a str,
    records: &mut Vec<Fields<'a>>,
    invalid: &mut InvalidCounts,
) -> Result<(), Invalid> {
    if unit.len() > u32::MAX as usize {
        return Err(Invalid::TooLarge);
    }
    let mut s = Scanner::new(unit);
    let kind = s.peek_kind().map_err(Invalid::from_json)?;
    let mut take = |it: record::Item<'a>| match it {
        record::Item::Record(f) => records.push(f),
        _ => invalid.add(Invalid::NotARecord),
    };
    match kind {
        Kind::Object => {
            let it = record::item(&mut s, 0, true, &mut take).map_err(Invalid::from_json)?;
            if !matches!(it, record::Item::Container) {
                take(it);
            }
        }
        Kind::Array => {
            s.array(0, |s, d| {
                let it = record::item(s, d, false, &mut |_| {})?;
                take(it);
                Ok(())
            })
            .map_err(Invalid::from_json)?;
        }
        _ => {
            s.skip(0).map_err(Invalid::from_json)?;
            s.finish().map_err(Invalid::from_json)?;
            return Err(Invalid::ScalarDocument);
        }
    }
    s.finish().map_err(Invalid::from_json)
}

/// Decodes NDJSON: each non-blank line is one unit. `data` should hold whole lines.
pub fn decode_lines<'a>(data: &'a [u8], out: &mut Decoded<'a>) {
    // Each line is checked for UTF-8 right before it is scanned, while it is in cache.
    let mut rest = data;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = &rest[(end + 1).min(rest.len())..];
        if is_blank_fast(line) {
            continue;
        }
        if line.len() > MAX_LINE_BYTES {
            out.invalid.add(Invalid::TooLarge);
        } else {
            decode_unit(line, out);
        }
    }
}

#[inline]
fn is_blank_fast(line: &[u8]) -> bool {
    // Records start with `{` at once; only short or odd lines need the full check.
    match line.first() {
        Some(b'{') | Some(b'[') => false,
        _ => is_blank(line),
    }
}

/// Decodes a whole input held in memory, choosing the framing.
///
/// A document that fails to scan falls back to lines when at least one line is an object by
/// itself (NDJSON whose first line is broken); otherwise it counts as one invalid unit (a
/// truncated or broken pretty-printed download).
pub fn decode_input<'a>(data: &'a [u8], out: &mut Decoded<'a>) {
    let data = strip_bom(data);
    match detect_framing(data) {
        Framing::Lines => decode_lines(data, out),
        Framing::Document => decode_document_or_lines(data, out),
    }
}

/// The document branch of [`decode_input`], also used by streaming readers once they hold the
/// whole document.
pub fn decode_document_or_lines<'a>(data: &'a [u8], out: &mut Decoded<'a>) {
    let mut doc = Decoded::default();
    decode_unit(data, &mut doc);
    let failed = doc.records.is_empty() && doc.invalid.total() == 1 && {
        let why = Invalid::ALL
            .into_iter()
            .find(|w| doc.invalid.get(*w) == 1)
            .unwrap_or(Invalid::NotJson);
        matches!(
            why,
            Invalid::NotUtf8
                | Invalid::NotJson
                | Invalid::Truncated
                | Invalid::TooDeep
                | Invalid::TooLarge
        )
    };
    if failed && any_line_is_object(data) {
        decode_lines(data, out);
        return;
    }
    out.records.append(&mut doc.records);
    out.invalid.merge(&doc.invalid);
}

fn any_line_is_object(data: &[u8]) -> bool {
    data.split(|&b| b == b'\n').any(|line| {
        let t = line.trim_ascii_start();
        t.first() == Some(&b'{')
            && std::str::from_utf8(line).is_ok_and(|l| scans_whole(l) == Ok(Kind::Object))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> (usize, Vec<(&'static str, u64)>) {
        let mut out = Decoded::default();
        decode_input(input.as_bytes(), &mut out);
        let inv = Invalid::ALL
            .into_iter()
            .filter(|w| out.invalid.get(*w) > 0)
            .map(|w| (w.name(), out.invalid.get(w)))
            .collect();
        (out.records.len(), inv)
    }

    const REC: &str = r#"{"time":"2026-01-01T00:00:00Z","properties":{"id":"a","createdDateTime":"2026-01-01T00:00:00+00:00","clientAppUsed":"IMAP4"}}"#;

    #[test]
    fn units_table() {
        let env = format!(r#"{{"records":[{REC},{REC}]}}"#);
        let graph = r#"{"@odata.context":"x","value":[{"id":"g","createdDateTime":"2026-01-01T00:00:00Z"}]}"#;
        let la = r#"{"Id":"l","CreatedDateTime":"2026-01-01T00:00:00Z","Type":"SigninLogs"}"#;
        let pretty = format!("[\n  {REC},\n  {REC}\n]\n");
        type Case = (String, usize, Vec<(&'static str, u64)>);
        let cases: Vec<Case> = vec![
            (REC.to_string(), 1, vec![]),
            (format!("{REC}\n{REC}\n"), 2, vec![]),
            (format!("{REC}\r\n\r\n  \n{REC}"), 2, vec![]),
            (format!("\u{feff}{REC}"), 1, vec![]),
            (env.clone(), 2, vec![]),
            (graph.to_string(), 1, vec![]),
            (la.to_string(), 1, vec![]),
            (pretty.clone(), 2, vec![]),
            (
                format!("[{REC}, 1, {{}}, [], \"x\"]"),
                1,
                vec![("not_a_record", 4)],
            ),
            (
                r#"{"records":[{"properties":5}]}"#.into(),
                0,
                vec![("not_a_record", 1)],
            ),
            ("{}".into(), 0, vec![("not_a_record", 1)]),
            (
                format!("{REC}\n42\n\"s\"\nnull\n{REC}"),
                2,
                vec![("scalar_document", 3)],
            ),
            (
                format!("{REC}\n{{\"records\":[{REC},\n{REC}"),
                2,
                vec![("truncated", 1)],
            ),
            (format!("{REC}\nnot json\n{REC}"), 2, vec![("not_json", 1)]),
            (format!("garbage\n{REC}\n"), 1, vec![("not_json", 1)]),
            (
                pretty[..pretty.len() - 4].to_string(),
                0,
                vec![("truncated", 1)],
            ),
            (
                format!("{}\n{REC}", "[".repeat(200_000)),
                1,
                vec![("too_deep", 1)],
            ),
            (
                format!("{REC}\n{{\"a\":\"\u{0}\"}}\n"),
                1,
                vec![("not_json", 1)],
            ),
            ("[]".into(), 0, vec![]),
            (r#"{"records":[]}"#.into(), 0, vec![]),
            ("\n\n  \r\n".into(), 0, vec![]),
        ];
        for (input, recs, inv) in cases {
            let (r, i) = run(&input);
            let shown: String = input.chars().take(80).collect();
            assert_eq!((r, i), (recs, inv), "input {shown:?}");
        }
    }

    /// Random damage to a real-shaped record never panics, and a damaged line is one unit:
    /// either it still decodes (records or item-level invalids) or it counts once.
    #[test]
    fn damaged_records_never_panic_and_count_once() {
        use rand::{Rng, SeedableRng};
        let base = format!(
            r#"{{"records":[{REC},{{"time":"2026-01-01T00:00:00Z","properties":{{"id":"b","createdDateTime":"2026-01-01T00:00:01Z","userPrincipalName":"a\u0040b.com","appliedConditionalAccessPolicies":[{{"id":"p","enforcedGrantControls":["Mfa"],"result":"success"}},{{"x":[1,2.5e3,true,null,"\"]"]}}],"status":{{"errorCode":"50126"}}}}}}]}}"#
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
        let alphabet = b"{}[]:,\"\\ 0aZ\x00\x1f\xff\n";
        for _ in 0..20_000 {
            let mut bytes = base.clone().into_bytes();
            for _ in 0..rng.gen_range(1..4) {
                if bytes.is_empty() {
                    break;
                }
                let i = rng.gen_range(0..bytes.len());
                match rng.gen_range(0..3) {
                    0 => bytes[i] = alphabet[rng.gen_range(0..alphabet.len())],
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes.truncate(i.max(1)),
                }
            }
            // One line: drop any newline the damage made.
            bytes.retain(|&b| b != b'\n');
            let mut out = Decoded::default();
            decode_lines(&bytes, &mut out);
            let items = out.records.len() as u64
                + out.invalid.get(Invalid::NotARecord)
                + out.invalid.get(Invalid::BadTime);
            let unit_errors = out.invalid.total()
                - out.invalid.get(Invalid::NotARecord)
                - out.invalid.get(Invalid::BadTime);
            assert!(
                (unit_errors == 1 && items == 0) || (unit_errors == 0 && items <= 2),
                "{:?}: {} records, {:?}",
                String::from_utf8_lossy(&bytes),
                out.records.len(),
                out.invalid
            );
        }
    }

    #[test]
    fn not_utf8_line_is_one_unit() {
        let mut data = Vec::new();
        data.extend_from_slice(REC.as_bytes());
        data.extend_from_slice(b"\n{\"a\":\"\xff\xfe\"}\n");
        data.extend_from_slice(REC.as_bytes());
        let mut out = Decoded::default();
        decode_input(&data, &mut out);
        assert_eq!(out.records.len(), 2);
        assert_eq!(out.invalid.get(Invalid::NotUtf8), 1);
    }

    #[test]
    fn fields_come_from_the_right_level() {
        let line = r#"{"time":"T","category":"SignInLogs","resultType":"50126","callerIpAddress":"1.2.3.4","properties":{"id":"x","userPrincipalName":"A\u0040B.com","status":{"errorCode":"0"},"clientAppUsed":" imap4 ","ipAddress":"5.6.7.8","createdDateTime":"C"}}"#;
        let mut out = Decoded::default();
        decode_input(line.as_bytes(), &mut out);
        let f = out.records[0];
        assert_eq!(f.shape, Shape::Diagnostic);
        assert_eq!(f.upn.unwrap().value(), "A@B.com");
        assert_eq!(f.status_code, Some(0));
        assert_eq!(f.result_type, Some(50126));
        assert_eq!(f.time.unwrap().value(), "T");
        assert_eq!(f.created.unwrap().value(), "C");
        assert_eq!(f.caller_ip.unwrap().value(), "1.2.3.4");
        assert_eq!(f.ip.unwrap().value(), "5.6.7.8");
        assert_eq!(f.category.unwrap().value(), "SignInLogs");

        let la = r#"{"CreatedDateTime":"C","Type":"AADNonInteractiveUserSignInLogs","Status":"{\"errorCode\":50126}","ResultType":"50126","IPAddress":"::1"}"#;
        let mut out = Decoded::default();
        decode_input(la.as_bytes(), &mut out);
        let f = out.records[0];
        assert_eq!(f.shape, Shape::LogAnalytics);
        assert_eq!(f.status_code, Some(50126));
        assert_eq!(
            f.la_type.unwrap().value(),
            "AADNonInteractiveUserSignInLogs"
        );
        assert_eq!(f.ip.unwrap().value(), "::1");
    }
}
