//! Reference model of the `signin-radar.report.v1` report, and the tests that hold the binary to it.
//!
//! The model is written straight from the rules (issue 2 and "How input is read and counted"):
//! slow, allocation-happy, no shared code with `src/`. It has its own strict JSON parser (so the
//! invalid reasons and the 256-level limit are under its control; serde_json stops at 128 levels)
//! and builds `serde_json::Value`s.
//!
//! DECISIONS where the rules are silent or ambiguous (listed for the engine to align with):
//!
//! D1  Framing, as amended in the README. An input is NDJSON when its first non-blank line
//!     (after gunzip and a leading BOM) is not valid UTF-8, or is a syntactically complete JSON
//!     value by itself (the depth limit does not take part in this decision); otherwise the
//!     whole input is ONE document. A document that fails to parse (not_utf8, not_json,
//!     truncated, too_deep) is read as lines after all when at least one line is, by itself, a
//!     JSON object: NDJSON whose first line is broken keeps its valid lines. Otherwise it is one
//!     invalid unit (a truncated pretty-printed download).
//! D26 Skimmed containers (README, "How input is read"): in the document's own object, in an
//!     item and in an item's `properties`, a container value of a key the engine does not read
//!     is skimmed: strings are checked (escapes, control characters, termination), brackets must
//!     balance and match in kind, nesting is capped at 256; the order of commas, colons and
//!     scalars inside is not checked. Everything else is parsed strictly.
//! D2  A blank line holds only spaces, tabs and CR. Only LF ends a line. The BOM is skipped only at
//!     the very start of each input; a BOM anywhere else is a syntax error (not_json).
//! D3  One reason per invalid unit, in this order: too_large (> 256 MiB), not_utf8 (the whole unit
//!     is validated before parsing), then the first problem a strict left-to-right parse meets:
//!     a byte that cannot continue the value -> not_json; the unit ends while a value is open
//!     (`{"a":1`, `"abc`, `tru`, `1.`) -> truncated; opening a 257th nested container -> too_deep.
//!     Anything but whitespace after the value -> not_json (`{} {}` on one line is not_json).
//! D4  Depth: the outermost container is level 1; 256 levels are accepted, 257 are too_deep.
//! D5  An unpaired surrogate escape (`"\uD800"`) is valid JSON grammar (RFC 8259 section 8.2): the
//!     unit is valid and the escape reads as U+FFFD. A high surrogate pairs only with an
//!     immediately following `\uDC00`-`\uDFFF`.
//! D6  Documents: an object with an array `records` is an envelope; else with an array `value` a
//!     Graph page (keys case-insensitive); else the object is a single item; an array's elements
//!     are items; a scalar is scalar_document. No recursive unwrapping: an envelope or an array
//!     inside an array is a not_a_record item. An empty envelope/page/array adds nothing.
//! D7  Record test: an object with an object `properties` (diagnostic shape) or with a
//!     `createdDateTime` key of any type (flat shape: Graph, portal, Log Analytics; fields come from
//!     the item itself). Key lookups are ASCII case-insensitive everywhere.
//! D8  Diagnostic shape: signIn fields (id, createdDateTime, userPrincipalName, userId, ipAddress,
//!     clientAppUsed, userAgent, status, signInEventTypes, isInteractive) come from `properties`
//!     only; record fields (time, TimeGenerated, category, Type, resultType, callerIpAddress) from
//!     the top level only.
//! D9  Event time: the first USABLE of createdDateTime, time, TimeGenerated (an unparseable
//!     createdDateTime falls back to time). ISO: `YYYY-MM-DDTHH:MM:SS`, optional `.` + 1..9
//!     digits, optional `Z` or `+HH:MM`/`-HH:MM` (none = UTC), calendar-checked (Feb 30 is not
//!     usable). US: `M/D/YYYY h:mm:ss AM|PM` (1-2 digit month, day, hour 1..12; 12 AM = 00h), UTC.
//! D10 Checks per item, in order: not_a_record, bad_time, duplicate. A bad_time record is an
//!     invalid unit only: not in input.records, never a duplicate, its id is not remembered.
//! D11 id: a non-empty string; any other type or "" means no id (never a duplicate). Duplicates
//!     are expected to be identical; when they are not, the first in input order (argument order,
//!     then position in the input) is the one counted.
//! D12 Category: `category` string -> mapped (unknown value -> Other); else `Type` string ->
//!     mapped; else the first string of the `signInEventTypes` array; else `isInteractive` bool;
//!     else Other. Values trimmed, ASCII case-insensitive, an optional `AAD` prefix ignored
//!     (`SigninLogs`, `AADNonInteractiveUserSignInLogs`, ...). Keys are the model's category names.
//! D13 Error code: `status` (an object, or a string holding the JSON text of one) `.errorCode`,
//!     else `resultType`; each an integer number or a string of an optional `-` and digits
//!     (trimmed). Floats and other types count as missing. No code -> failure.
//! D14 User: userPrincipalName trimmed, if that is empty userId trimmed; lower-cased with Unicode
//!     rules. IP: ipAddress trimmed, if empty callerIpAddress; parsed as an IP address it is
//!     written in canonical form, otherwise kept as the trimmed text.
//! D15 Client: userAgent as is (not trimmed), cut to at most 256 bytes at a char boundary.
//! D16 Protocol: clientAppUsed trimmed (Unicode whitespace), ASCII case-insensitive.
//! D17 The empty string is an ordinary value: a sign-in without user, IP or userAgent has user,
//!     IP or client "" (as the field rules say), which counts as one distinct user / IP and is
//!     listed in the top lists like any other value.
//! D18 `input.by_category` and `input.invalid_by_reason` list non-zero entries only (the
//!     comparison tolerates zero entries from the binary).
//! D19 `time.first` / `time.last`: over every unique valid record (modern included), RFC 3339 in
//!     UTC; `null` when there is none. Compared as instants (fraction digits may differ).
//! D20 `top_users[].protocols`: canonical names, by the user's count on each descending, then
//!     name ascending. Every name/key ordering is byte-wise ascending.
//! D21 `--retention D`: D is `<integer><s|m|h|d>`; only legacy sign-ins with event time >=
//!     (latest event time of any unique record) - D feed `legacy`; `input` and `time` still
//!     describe the whole input. Tests keep records at least 2 minutes from the cut-off
//!     (the store has 1-minute buckets).
//! D22 `--top` defaults to 10 and limits the three top lists, not `protocols`.
//! D23 Fields beyond the contract are welcome and ignored by the comparison; contract fields must
//!     be equal.
//! D24 `replay` without `--format` prints the table.
//! D25 A FILE that cannot be opened (missing, a path through a regular file, a dangling link) is
//!     exit 2 with the path named on stderr, even among good files. (The binary also reads
//!     directories, beyond the contract: not tested here.)

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::support::{self, temp_file};

// =============================================================================================
// The model
// =============================================================================================

pub const MAX_DEPTH: usize = 256;
pub const MAX_UNIT_BYTES: usize = 256 << 20;
pub const CLIENT_MAX_BYTES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(clippy::enum_variant_names)]
pub enum Bad {
    NotUtf8,
    NotJson,
    Truncated,
    TooDeep,
    TooLarge,
    ScalarDocument,
    NotARecord,
    BadTime,
}

impl Bad {
    pub fn name(self) -> &'static str {
        match self {
            Bad::NotUtf8 => "not_utf8",
            Bad::NotJson => "not_json",
            Bad::Truncated => "truncated",
            Bad::TooDeep => "too_deep",
            Bad::TooLarge => "too_large",
            Bad::ScalarDocument => "scalar_document",
            Bad::NotARecord => "not_a_record",
            Bad::BadTime => "bad_time",
        }
    }
}

// ---- a strict JSON parser (RFC 8259), iterative, with a depth limit -------------------------

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Consumes `c`, or fails: truncated at the end of input, not_json on any other byte.
    fn expect(&mut self, c: u8) -> Result<(), Bad> {
        match self.peek() {
            None => Err(Bad::Truncated),
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            Some(_) => Err(Bad::NotJson),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), Bad> {
        for &c in lit {
            self.expect(c)?;
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, Bad> {
        let mut n = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                None => return Err(Bad::Truncated),
                Some(c) => (c as char).to_digit(16).ok_or(Bad::NotJson)?,
            };
            self.i += 1;
            n = n * 16 + d;
        }
        Ok(n)
    }

    /// A string, starting at its opening quote.
    fn string(&mut self) -> Result<String, Bad> {
        self.expect(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.peek().ok_or(Bad::Truncated)?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or(Bad::Truncated)?;
                    self.i += 1;
                    let ch: char = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            // A high surrogate pairs with an immediately following `\uDC00`-
                            // `\uDFFF`; anything else leaves it unpaired. Unpaired surrogates
                            // are valid JSON grammar (RFC 8259 section 8.2) and read as U+FFFD.
                            let lo = (|| {
                                let rest = self.b.get(self.i..self.i + 6)?;
                                if rest[0] != b'\\' || rest[1] != b'u' {
                                    return None;
                                }
                                let lo =
                                    u32::from_str_radix(std::str::from_utf8(&rest[2..]).ok()?, 16)
                                        .ok()?;
                                (0xDC00..0xE000).contains(&lo).then_some(lo)
                            })();
                            match (hi, lo) {
                                (0xD800..=0xDBFF, Some(lo)) => {
                                    self.i += 6;
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                        .unwrap()
                                }
                                _ => char::from_u32(hi).unwrap_or('\u{FFFD}'),
                            }
                        }
                        _ => return Err(Bad::NotJson),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1f => return Err(Bad::NotJson),
                other => out.push(other),
            }
        }
        // The input was valid UTF-8 and only whole characters were copied.
        Ok(String::from_utf8(out).expect("utf-8 preserved"))
    }

    fn digits(&mut self) -> Result<(), Bad> {
        match self.peek() {
            None => return Err(Bad::Truncated),
            Some(b'0'..=b'9') => {}
            Some(_) => return Err(Bad::NotJson),
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        Ok(())
    }

    fn number(&mut self) -> Result<Value, Bad> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            None => return Err(Bad::Truncated),
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits()?,
            Some(_) => return Err(Bad::NotJson),
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            float = true;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            float = true;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.digits()?;
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).unwrap();
        if !float {
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Value::from(n));
            }
            if let Ok(n) = text.parse::<u64>() {
                return Ok(Value::from(n));
            }
        }
        // Huge or fractional: a float (an infinite one has no JSON value; Null stands in, and no
        // rule reads such a field).
        let f: f64 = text.parse().unwrap();
        Ok(serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null))
    }

    /// `"key"` then `:`.
    fn key(&mut self) -> Result<String, Bad> {
        self.ws();
        let k = self.string()?;
        self.ws();
        self.expect(b':')?;
        Ok(k)
    }
}

enum Frame {
    Arr(Vec<Value>),
    Obj(Map<String, Value>, String, Walk),
}

/// How the engine reads an object (D26): the document's own object, an item, or an item's
/// `properties` are walked member by member; container values of keys it does not read are only
/// skimmed there. Every other object is parsed strictly.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    No,
    Doc,
    Item,
    Props,
}

/// Keys the engine reads in a walked object (ASCII case-insensitive).
const READ_KEYS: &[&str] = &[
    "id",
    "time",
    "type",
    "status",
    "userId",
    "category",
    "userAgent",
    "ipAddress",
    "resultType",
    "clientAppUsed",
    "isInteractive",
    "TimeGenerated",
    "appDisplayName",
    "createdDateTime",
    "callerIpAddress",
    "signInEventTypes",
    "userPrincipalName",
];

/// Whether the value of `key` in an object walked as `walk` is skimmed when it is a container.
fn skimmed(walk: Walk, key: &str, next: u8) -> bool {
    let read = READ_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
        || (matches!(walk, Walk::Doc | Walk::Item) && key.eq_ignore_ascii_case("properties"))
        || (walk == Walk::Doc
            && next == b'['
            && (key.eq_ignore_ascii_case("records") || key.eq_ignore_ascii_case("value")));
    walk != Walk::No && !read
}

/// How an object about to be pushed on `stack` is read.
fn walk_of(stack: &[Frame]) -> Walk {
    match stack {
        [] => Walk::Doc,
        [Frame::Arr(_)] => Walk::Item,
        [Frame::Obj(_, k, Walk::Doc), Frame::Arr(_)]
            if k.eq_ignore_ascii_case("records") || k.eq_ignore_ascii_case("value") =>
        {
            Walk::Item
        }
        [.., Frame::Obj(_, k, Walk::Doc | Walk::Item)] if k.eq_ignore_ascii_case("properties") => {
            Walk::Props
        }
        _ => Walk::No,
    }
}

/// Parses one JSON text. `build: false` only validates (values are not kept: deep inputs stay
/// cheap). Duplicate keys: the first occurrence is kept.
pub fn parse_json(text: &str, max_depth: usize, build: bool) -> Result<Value, Bad> {
    parse_json_mode(text, max_depth, build, false)
}

/// A unit as the engine reads it: strict, but for the skimmed containers of D26.
pub fn parse_unit(text: &str) -> Result<Value, Bad> {
    parse_json_mode(text, MAX_DEPTH, true, true)
}

/// Passes over a container nobody reads (D26): strings are checked as everywhere, brackets
/// must balance and match in kind, nesting is capped; nothing else is looked at.
fn skim(p: &mut Cursor, level0: usize, max_depth: usize) -> Result<(), Bad> {
    let mut open: Vec<u8> = Vec::new();
    loop {
        match p.peek() {
            None => return Err(Bad::Truncated),
            Some(b'"') => {
                p.string()?;
            }
            Some(c @ (b'{' | b'[')) => {
                if level0 + open.len() + 1 > max_depth {
                    return Err(Bad::TooDeep);
                }
                open.push(c);
                p.i += 1;
            }
            Some(c @ (b'}' | b']')) => {
                let want = if c == b'}' { b'{' } else { b'[' };
                if open.pop() != Some(want) {
                    return Err(Bad::NotJson);
                }
                p.i += 1;
                if open.is_empty() {
                    return Ok(());
                }
            }
            Some(_) => p.i += 1,
        }
    }
}

fn parse_json_mode(text: &str, max_depth: usize, build: bool, lenient: bool) -> Result<Value, Bad> {
    let mut p = Cursor {
        b: text.as_bytes(),
        i: 0,
    };
    let mut stack: Vec<Frame> = Vec::new();
    'value: loop {
        p.ws();
        if lenient {
            if let (Some(Frame::Obj(_, key, walk)), Some(next @ (b'{' | b'['))) =
                (stack.last(), p.peek())
            {
                if skimmed(*walk, key, next) {
                    skim(&mut p, stack.len(), max_depth)?;
                    // Nobody reads the value: a placeholder keeps the key.
                    let v = Value::Null;
                    if let Some(Frame::Obj(map, key, _)) = stack.last_mut() {
                        if build && !map.contains_key(key.as_str()) {
                            map.insert(std::mem::take(key), v);
                        }
                    }
                    match after_member(&mut p, &mut stack)? {
                        true => continue 'value,
                        false => {
                            // The object closed: continue with the normal closing loop.
                            let v = match stack.pop().unwrap() {
                                Frame::Arr(items) => Value::Array(items),
                                Frame::Obj(map, _, _) => Value::Object(map),
                            };
                            match close_up(&mut p, &mut stack, v, build)? {
                                Some(done) => return Ok(done),
                                None => continue 'value,
                            }
                        }
                    }
                }
            }
        }
        let mut v = match p.peek() {
            None => return Err(Bad::Truncated),
            Some(open @ (b'{' | b'[')) => {
                p.i += 1;
                if stack.len() + 1 > max_depth {
                    return Err(Bad::TooDeep);
                }
                p.ws();
                let close = if open == b'{' { b'}' } else { b']' };
                if p.peek() == Some(close) {
                    p.i += 1;
                    if open == b'{' {
                        Value::Object(Map::new())
                    } else {
                        Value::Array(Vec::new())
                    }
                } else if open == b'{' {
                    let k = p.key()?;
                    let walk = walk_of(&stack);
                    stack.push(Frame::Obj(Map::new(), k, walk));
                    continue 'value;
                } else {
                    stack.push(Frame::Arr(Vec::new()));
                    continue 'value;
                }
            }
            Some(b'"') => Value::String(p.string()?),
            Some(b'-' | b'0'..=b'9') => p.number()?,
            Some(b't') => {
                p.literal(b"true")?;
                Value::Bool(true)
            }
            Some(b'f') => {
                p.literal(b"false")?;
                Value::Bool(false)
            }
            Some(b'n') => {
                p.literal(b"null")?;
                Value::Null
            }
            Some(_) => return Err(Bad::NotJson),
        };
        // A value is complete: hand it to its container, closing containers as they end.
        loop {
            let closed = match stack.last_mut() {
                None => {
                    p.ws();
                    return if p.peek().is_some() {
                        Err(Bad::NotJson)
                    } else {
                        Ok(v)
                    };
                }
                Some(Frame::Arr(items)) => {
                    if build {
                        items.push(v);
                    }
                    p.ws();
                    match p.peek() {
                        None => return Err(Bad::Truncated),
                        Some(b',') => {
                            p.i += 1;
                            continue 'value;
                        }
                        Some(b']') => {
                            p.i += 1;
                            true
                        }
                        Some(_) => return Err(Bad::NotJson),
                    }
                }
                Some(Frame::Obj(map, key, _)) => {
                    if build && !map.contains_key(key.as_str()) {
                        map.insert(std::mem::take(key), v);
                    }
                    p.ws();
                    match p.peek() {
                        None => return Err(Bad::Truncated),
                        Some(b',') => {
                            p.i += 1;
                            *key = p.key()?;
                            continue 'value;
                        }
                        Some(b'}') => {
                            p.i += 1;
                            true
                        }
                        Some(_) => return Err(Bad::NotJson),
                    }
                }
            };
            debug_assert!(closed);
            v = match stack.pop().unwrap() {
                Frame::Arr(items) => Value::Array(items),
                Frame::Obj(map, _, _) => Value::Object(map),
            };
        }
    }
}

/// After a skimmed member: `true` when another member follows (its key read), `false` when the
/// object closed (its `}` consumed).
fn after_member(p: &mut Cursor, stack: &mut [Frame]) -> Result<bool, Bad> {
    p.ws();
    match p.peek() {
        None => Err(Bad::Truncated),
        Some(b',') => {
            p.i += 1;
            let k = p.key()?;
            if let Some(Frame::Obj(_, key, _)) = stack.last_mut() {
                *key = k;
            }
            Ok(true)
        }
        Some(b'}') => {
            p.i += 1;
            Ok(false)
        }
        Some(_) => Err(Bad::NotJson),
    }
}

/// Hands a finished value to the containers above it, closing those that end, as the main
/// loop does: `Some(document)` when the top level is done, `None` when a new value is due.
fn close_up(
    p: &mut Cursor,
    stack: &mut Vec<Frame>,
    mut v: Value,
    build: bool,
) -> Result<Option<Value>, Bad> {
    loop {
        match stack.last_mut() {
            None => {
                p.ws();
                return if p.peek().is_some() {
                    Err(Bad::NotJson)
                } else {
                    Ok(Some(v))
                };
            }
            Some(Frame::Arr(items)) => {
                if build {
                    items.push(v);
                }
                p.ws();
                match p.peek() {
                    None => return Err(Bad::Truncated),
                    Some(b',') => {
                        p.i += 1;
                        return Ok(None);
                    }
                    Some(b']') => p.i += 1,
                    Some(_) => return Err(Bad::NotJson),
                }
            }
            Some(Frame::Obj(map, key, _)) => {
                if build && !map.contains_key(key.as_str()) {
                    map.insert(std::mem::take(key), v);
                }
                p.ws();
                match p.peek() {
                    None => return Err(Bad::Truncated),
                    Some(b',') => {
                        p.i += 1;
                        *key = p.key()?;
                        return Ok(None);
                    }
                    Some(b'}') => p.i += 1,
                    Some(_) => return Err(Bad::NotJson),
                }
            }
        }
        v = match stack.pop().unwrap() {
            Frame::Arr(items) => Value::Array(items),
            Frame::Obj(map, _, _) => Value::Object(map),
        };
    }
}

// ---- time -----------------------------------------------------------------------------------

const NANOS: i128 = 1_000_000_000;

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    // Howard Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn num(s: &str, min_len: usize, max_len: usize) -> Option<i64> {
    if s.len() < min_len || s.len() > max_len || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn instant(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, nanos: i64) -> Option<i128> {
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..60).contains(&s) {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    Some(secs as i128 * NANOS + nanos as i128)
}

/// ISO 8601 as the rules allow it; `need_offset` for RFC 3339 (the report's own times).
fn parse_iso(s: &str, need_offset: bool) -> Option<i128> {
    if !s.is_ascii() || s.len() < 19 {
        return None;
    }
    let b = s.as_bytes();
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let y = num(&s[0..4], 4, 4)?;
    let mo = num(&s[5..7], 2, 2)?;
    let d = num(&s[8..10], 2, 2)?;
    let h = num(&s[11..13], 2, 2)?;
    let mi = num(&s[14..16], 2, 2)?;
    let sec = num(&s[17..19], 2, 2)?;
    let mut rest = &s[19..];
    let mut nanos = 0i64;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = num(&r[..n], 1, 9)? * 10i64.pow(9 - n as u32);
        rest = &r[n..];
    }
    let offset_secs = match rest {
        "" if !need_offset => 0,
        "Z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = &rest[1..];
            if r.len() != 5 || r.as_bytes()[2] != b':' {
                return None;
            }
            let oh = num(&r[0..2], 2, 2)?;
            let om = num(&r[3..5], 2, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(instant(y, mo, d, h, mi, sec, nanos)? - offset_secs as i128 * NANOS)
}

/// `11/14/2025 1:48:53 AM` (UTC).
fn parse_us(s: &str) -> Option<i128> {
    let parts: Vec<&str> = s.split(' ').collect();
    if parts.len() != 3 {
        return None;
    }
    let date: Vec<&str> = parts[0].split('/').collect();
    let time: Vec<&str> = parts[1].split(':').collect();
    if date.len() != 3 || time.len() != 3 {
        return None;
    }
    let mo = num(date[0], 1, 2)?;
    let d = num(date[1], 1, 2)?;
    let y = num(date[2], 4, 4)?;
    let h12 = num(time[0], 1, 2)?;
    let mi = num(time[1], 2, 2)?;
    let sec = num(time[2], 2, 2)?;
    if !(1..=12).contains(&h12) {
        return None;
    }
    let pm = if parts[2].eq_ignore_ascii_case("AM") {
        false
    } else if parts[2].eq_ignore_ascii_case("PM") {
        true
    } else {
        return None;
    };
    let h = h12 % 12 + if pm { 12 } else { 0 };
    instant(y, mo, d, h, mi, sec, 0)
}

/// An event time as the rules accept it, in nanoseconds since the Unix epoch (UTC).
pub fn parse_time(s: &str) -> Option<i128> {
    parse_iso(s, false).or_else(|| parse_us(s))
}

/// A report time: RFC 3339 (an offset is required).
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    parse_iso(s, true)
}

/// Canonical rendering: UTC, `Z`, fraction digits without trailing zeros.
pub fn format_time(t: i128) -> String {
    let secs = t.div_euclid(NANOS) as i64;
    let nanos = t.rem_euclid(NANOS) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if nanos != 0 {
        let f = format!("{nanos:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

// ---- fields ---------------------------------------------------------------------------------

fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn str_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    get_ci(m, key)?.as_str()
}

pub const LEGACY: [(&str, &str); 14] = [
    ("authenticated smtp", "Authenticated SMTP"),
    ("autodiscover", "Autodiscover"),
    ("exchange activesync", "Exchange ActiveSync"),
    ("exchange online powershell", "Exchange Online PowerShell"),
    ("exchange web services", "Exchange Web Services"),
    ("imap4", "IMAP4"),
    ("mapi over http", "MAPI Over HTTP"),
    ("offline address book", "Offline Address Book"),
    (
        "outlook anywhere (rpc over http)",
        "Outlook Anywhere (RPC over HTTP)",
    ),
    ("pop3", "POP3"),
    ("reporting web services", "Reporting Web Services"),
    ("universal outlook", "Universal Outlook"),
    ("outlook service", "Universal Outlook"),
    ("other clients", "Other clients"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Legacy(&'static str),
    Modern,
    Unclassified,
}

pub fn classify(client_app_used: Option<&str>) -> Class {
    let Some(s) = client_app_used else {
        return Class::Unclassified;
    };
    let t = s.trim();
    if let Some((_, canon)) = LEGACY.iter().find(|(k, _)| t.eq_ignore_ascii_case(k)) {
        return Class::Legacy(canon);
    }
    if t.eq_ignore_ascii_case("browser")
        || t.eq_ignore_ascii_case("mobile apps and desktop clients")
    {
        return Class::Modern;
    }
    Class::Unclassified
}

fn map_category(s: &str) -> &'static str {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_prefix("aad").unwrap_or(&t);
    match t {
        "signinlogs" => "SignInLogs",
        "noninteractiveusersigninlogs" => "NonInteractiveUserSignInLogs",
        "serviceprincipalsigninlogs" => "ServicePrincipalSignInLogs",
        "managedidentitysigninlogs" => "ManagedIdentitySignInLogs",
        "microsoftserviceprincipalsigninlogs" => "MicrosoftServicePrincipalSignInLogs",
        "adfssigninlogs" => "ADFSSignInLogs",
        _ => "Other",
    }
}

fn map_event_type(s: &str) -> &'static str {
    match s.trim().to_ascii_lowercase().as_str() {
        "interactiveuser" => "SignInLogs",
        "noninteractiveuser" => "NonInteractiveUserSignInLogs",
        "serviceprincipal" => "ServicePrincipalSignInLogs",
        "managedidentity" => "ManagedIdentitySignInLogs",
        _ => "Other",
    }
}

pub fn is_workload(category: &str) -> bool {
    matches!(
        category,
        "ServicePrincipalSignInLogs"
            | "ManagedIdentitySignInLogs"
            | "MicrosoftServicePrincipalSignInLogs"
    )
}

fn code_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix('-').unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        }
        _ => None,
    }
}

fn canonical_ip(t: &str) -> String {
    t.parse::<std::net::IpAddr>()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn cut_client(s: &str) -> String {
    let mut end = s.len().min(CLIENT_MAX_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// One record as the report sees it.
#[derive(Clone, Debug)]
pub struct Rec {
    pub id: Option<String>,
    pub t: i128,
    pub category: &'static str,
    pub code: Option<i64>,
    pub user: String,
    pub ip: String,
    pub client: String,
    pub class: Class,
}

impl Rec {
    pub fn outcome(&self) -> &'static str {
        match self.code {
            Some(0) => "success",
            Some(53003) => "blocked",
            _ => "failure",
        }
    }

    pub fn legacy(&self) -> Option<&'static str> {
        match self.class {
            Class::Legacy(p) if !is_workload(self.category) => Some(p),
            _ => None,
        }
    }
}

/// Reads one item: a record, or why it is not one.
pub fn record(item: &Value) -> Result<Rec, Bad> {
    let Value::Object(top) = item else {
        return Err(Bad::NotARecord);
    };
    // `s`: where the signIn fields live; `top`: the record level.
    let s: &Map<String, Value> = match get_ci(top, "properties") {
        Some(Value::Object(p)) => p,
        _ if get_ci(top, "createdDateTime").is_some() => top,
        _ => return Err(Bad::NotARecord),
    };

    let t = [
        str_ci(s, "createdDateTime"),
        str_ci(top, "time"),
        str_ci(top, "TimeGenerated"),
    ]
    .into_iter()
    .flatten()
    .find_map(parse_time)
    .ok_or(Bad::BadTime)?;

    let category = if let Some(c) = str_ci(top, "category") {
        map_category(c)
    } else if let Some(c) = str_ci(top, "Type") {
        map_category(c)
    } else if let Some(first) = get_ci(s, "signInEventTypes")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find_map(Value::as_str))
    {
        map_event_type(first)
    } else if let Some(b) = get_ci(s, "isInteractive").and_then(Value::as_bool) {
        if b {
            "SignInLogs"
        } else {
            "NonInteractiveUserSignInLogs"
        }
    } else {
        "Other"
    };

    let status: Option<Map<String, Value>> = match get_ci(s, "status") {
        Some(Value::Object(m)) => Some(m.clone()),
        Some(Value::String(text)) => match parse_json(text, MAX_DEPTH, true) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        },
        _ => None,
    };
    let code = status
        .as_ref()
        .and_then(|m| code_of(get_ci(m, "errorCode")))
        .or_else(|| code_of(get_ci(top, "resultType")));

    let nonempty = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
    };
    let user = nonempty(str_ci(s, "userPrincipalName"))
        .or_else(|| nonempty(str_ci(s, "userId")))
        .map(|u| u.to_lowercase())
        .unwrap_or_default();
    let ip = nonempty(str_ci(s, "ipAddress"))
        .or_else(|| nonempty(str_ci(top, "callerIpAddress")))
        .map(|i| canonical_ip(&i))
        .unwrap_or_default();
    let client = str_ci(s, "userAgent").map(cut_client).unwrap_or_default();
    let id = str_ci(s, "id")
        .filter(|x| !x.is_empty())
        .map(str::to_string);
    let class = classify(str_ci(s, "clientAppUsed"));

    Ok(Rec {
        id,
        t,
        category,
        code,
        user,
        ip,
        client,
        class,
    })
}

/// What one input yields, in order: records and invalid units.
pub fn read_input(raw: &[u8]) -> Vec<Result<Rec, Bad>> {
    let mut decompressed = Vec::new();
    let mut data: &[u8] = raw;
    if raw.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(raw)
            .read_to_end(&mut decompressed)
            .expect("the reference models valid gzip only");
        data = &decompressed;
    }
    let data = data
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(data);

    let blank = |l: &[u8]| l.iter().all(|c| matches!(c, b' ' | b'\t' | b'\r'));
    let lines: Vec<&[u8]> = data.split(|&c| c == b'\n').filter(|l| !blank(l)).collect();
    let Some(first) = lines.first() else {
        return Vec::new();
    };
    // D1: NDJSON when the first non-blank line is not UTF-8 or is a complete value by itself.
    let one_document = std::str::from_utf8(first)
        .map(|t| parse_json(t, usize::MAX, false).is_err())
        .unwrap_or(false);
    // A document that does not parse falls back to lines when some line is an object by itself.
    let document_fails = || {
        std::str::from_utf8(data)
            .map_err(|_| Bad::NotUtf8)
            .and_then(|t| parse_unit(t).map(|_| ()))
            .is_err()
    };
    let some_line_is_an_object = || {
        lines.iter().any(|l| {
            std::str::from_utf8(l)
                .ok()
                .and_then(|t| parse_json(t, MAX_DEPTH, true).ok())
                .is_some_and(|v| v.is_object())
        })
    };
    let units: Vec<&[u8]> = if one_document && !(document_fails() && some_line_is_an_object()) {
        vec![data]
    } else {
        lines
    };

    let mut out = Vec::new();
    for unit in units {
        if unit.len() > MAX_UNIT_BYTES {
            out.push(Err(Bad::TooLarge));
            continue;
        }
        let Ok(text) = std::str::from_utf8(unit) else {
            out.push(Err(Bad::NotUtf8));
            continue;
        };
        let doc = match parse_unit(text) {
            Ok(v) => v,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let items: Vec<Value> = match doc {
            Value::Object(m) => {
                if let Some(Value::Array(a)) = get_ci(&m, "records") {
                    a.clone()
                } else if let Some(Value::Array(a)) = get_ci(&m, "value") {
                    a.clone()
                } else {
                    vec![Value::Object(m)]
                }
            }
            Value::Array(a) => a,
            _ => {
                out.push(Err(Bad::ScalarDocument));
                continue;
            }
        };
        out.extend(items.iter().map(record));
    }
    out
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub top: Option<usize>,
    /// `--retention`, in nanoseconds.
    pub retention: Option<i128>,
}

#[derive(Default)]
struct Tally {
    total: u64,
    success: u64,
    blocked: u64,
    failure: u64,
    users: BTreeSet<String>,
    ips: BTreeSet<String>,
    protocols: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn add(&mut self, r: &Rec, protocol: &'static str) {
        self.total += 1;
        match r.outcome() {
            "success" => self.success += 1,
            "blocked" => self.blocked += 1,
            _ => self.failure += 1,
        }
        self.users.insert(r.user.clone());
        self.ips.insert(r.ip.clone());
        *self.protocols.entry(protocol).or_default() += 1;
    }
}

/// Sorted by total descending, then key ascending (byte-wise).
fn ranked(m: &BTreeMap<String, Tally>) -> Vec<(&String, &Tally)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| b.1.total.cmp(&a.1.total).then_with(|| a.0.cmp(b.0)));
    v
}

/// The report the rules call for, for these inputs in this order.
pub fn reference_report(inputs: &[&[u8]], opts: &Options) -> Value {
    let top = opts.top.unwrap_or(10);
    let mut records = 0u64;
    let mut duplicates = 0u64;
    let mut invalid: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut unique: Vec<Rec> = Vec::new();
    for input in inputs {
        for r in read_input(input) {
            match r {
                Err(why) => *invalid.entry(why.name()).or_default() += 1,
                Ok(rec) => {
                    records += 1;
                    if let Some(id) = &rec.id {
                        if !seen.insert(id.clone()) {
                            duplicates += 1;
                            continue;
                        }
                    }
                    unique.push(rec);
                }
            }
        }
    }

    let mut by_category: BTreeMap<&'static str, u64> = BTreeMap::new();
    for r in &unique {
        *by_category.entry(r.category).or_default() += 1;
    }
    let first = unique.iter().map(|r| r.t).min();
    let last = unique.iter().map(|r| r.t).max();
    let cutoff = match (opts.retention, last) {
        (Some(d), Some(last)) => Some(last - d),
        _ => None,
    };

    let mut all = Tally::default();
    let mut protocols: BTreeMap<String, Tally> = BTreeMap::new();
    let mut users: BTreeMap<String, Tally> = BTreeMap::new();
    let mut ips: BTreeMap<String, Tally> = BTreeMap::new();
    let mut clients: BTreeMap<String, Tally> = BTreeMap::new();
    for r in &unique {
        let Some(p) = r.legacy() else { continue };
        if cutoff.is_some_and(|c| r.t < c) {
            continue;
        }
        all.add(r, p);
        protocols.entry(p.to_string()).or_default().add(r, p);
        users.entry(r.user.clone()).or_default().add(r, p);
        ips.entry(r.ip.clone()).or_default().add(r, p);
        clients.entry(r.client.clone()).or_default().add(r, p);
    }

    let protocols_json: Vec<Value> = ranked(&protocols)
        .into_iter()
        .map(|(name, t)| {
            json!({"protocol": name, "total": t.total, "success": t.success, "blocked": t.blocked,
                   "failure": t.failure, "users": t.users.len(), "ips": t.ips.len()})
        })
        .collect();
    let top_users: Vec<Value> = ranked(&users)
        .into_iter()
        .take(top)
        .map(|(user, t)| {
            let mut ps: Vec<(&&str, &u64)> = t.protocols.iter().collect();
            ps.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
            let ps: Vec<&str> = ps.into_iter().map(|(p, _)| *p).collect();
            json!({"user": user, "total": t.total, "success": t.success, "blocked": t.blocked,
                   "failure": t.failure, "protocols": ps})
        })
        .collect();
    let top_ips: Vec<Value> = ranked(&ips)
        .into_iter()
        .take(top)
        .map(|(ip, t)| {
            json!({"ip": ip, "total": t.total, "users": t.users.len(), "success": t.success,
                   "blocked": t.blocked, "failure": t.failure})
        })
        .collect();
    let top_clients: Vec<Value> = ranked(&clients)
        .into_iter()
        .take(top)
        .map(|(client, t)| json!({"client": client, "total": t.total}))
        .collect();

    json!({
        "schema": "signin-radar.report.v1",
        "input": {
            "records": records,
            "duplicates": duplicates,
            "invalid": invalid.values().sum::<u64>(),
            "invalid_by_reason": invalid,
            "by_category": by_category,
        },
        "time": {
            "first": first.map(format_time),
            "last": last.map(format_time),
        },
        "legacy": {
            "total": all.total, "success": all.success, "blocked": all.blocked, "failure": all.failure,
            "users": all.users.len(), "ips": all.ips.len(),
            "protocols": protocols_json,
            "top_users": top_users,
            "top_ips": top_ips,
            "top_clients": top_clients,
        },
        "findings": [],
    })
}

pub fn reference_of(inputs: &[&[u8]]) -> Value {
    reference_report(inputs, &Options::default())
}

// =============================================================================================
// Record builders for hand-made data (used by the other modules too)
// =============================================================================================

/// A compact diagnostic (Event Hubs / archive) record line.
#[derive(Clone, Debug)]
pub struct Diag {
    pub id: String,
    pub time: String,
    pub category: String,
    pub upn: String,
    pub ip: String,
    pub app: String,
    pub ua: Option<String>,
    pub code: i64,
}

impl Diag {
    pub fn new(id: &str) -> Diag {
        Diag {
            id: id.into(),
            time: "2024-05-01T10:00:00.0000000+00:00".into(),
            category: "SignInLogs".into(),
            upn: "alice@contoso.com".into(),
            ip: "203.0.113.10".into(),
            app: "Browser".into(),
            ua: Some("Mozilla/5.0".into()),
            code: 0,
        }
    }
    pub fn time(mut self, t: &str) -> Self {
        self.time = t.into();
        self
    }
    pub fn category(mut self, c: &str) -> Self {
        self.category = c.into();
        self
    }
    pub fn upn(mut self, u: &str) -> Self {
        self.upn = u.into();
        self
    }
    pub fn ip(mut self, i: &str) -> Self {
        self.ip = i.into();
        self
    }
    pub fn app(mut self, a: &str) -> Self {
        self.app = a.into();
        self
    }
    pub fn ua(mut self, u: Option<&str>) -> Self {
        self.ua = u.map(str::to_string);
        self
    }
    pub fn code(mut self, c: i64) -> Self {
        self.code = c;
        self
    }
    pub fn value(&self) -> Value {
        let mut props = json!({
            "id": self.id, "createdDateTime": self.time, "userPrincipalName": self.upn,
            "userId": "00000000-0000-0000-0000-000000000001", "ipAddress": self.ip,
            "clientAppUsed": self.app, "status": {"errorCode": self.code},
            "appDisplayName": "Office 365 Exchange Online",
        });
        if let Some(ua) = &self.ua {
            props["userAgent"] = json!(ua);
        }
        json!({
            "time": "2024-05-01T10:00:00.0000000Z", "category": self.category,
            "operationName": "Sign-in activity", "resultType": self.code.to_string(),
            "callerIpAddress": self.ip, "Level": 4, "properties": props,
        })
    }
    pub fn line(&self) -> String {
        self.value().to_string()
    }
}

pub fn ndjson(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out.into_bytes()
}

// =============================================================================================
// Tests: the binary against the model
// =============================================================================================

fn compare_files(inputs: &[Vec<u8>], extra: &[&str], opts: &Options, ctx: &str) -> Value {
    let files: Vec<_> = inputs.iter().map(|b| temp_file(b)).collect();
    let paths: Vec<&Path> = files.iter().map(|f| f.path()).collect();
    let actual = support::replay_files(&paths, extra, ctx);
    let refs: Vec<&[u8]> = inputs.iter().map(|b| b.as_slice()).collect();
    let expected = reference_report(&refs, opts);
    support::assert_report(&actual, &expected, ctx);
    expected
}

#[test]
fn every_corpus_file_matches_the_reference() {
    let mut failures = Vec::new();
    for name in support::CORPUS_FILES {
        let actual = support::replay_files(&[&support::corpus_path(name)], &[], name);
        let expected = reference_of(&[&support::corpus_bytes(name)]);
        if let Err(e) = support::compare_report(&actual, &expected, name) {
            failures.push(e);
        }
    }
    // All five together, in this order (the envelope repeats the 2rec + 3rec records).
    let paths: Vec<_> = support::CORPUS_FILES
        .iter()
        .map(|n| support::corpus_path(n))
        .collect();
    let path_refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let actual = support::replay_files(&path_refs, &[], "all corpus files");
    let bytes: Vec<Vec<u8>> = support::CORPUS_FILES
        .iter()
        .map(|n| support::corpus_bytes(n))
        .collect();
    let refs: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
    if let Err(e) = support::compare_report(&actual, &reference_of(&refs), "all corpus files") {
        failures.push(e);
    }
    support::assert_no_failures("corpus vs reference", &failures);
}

pub const SYNTH_FORMATS: [&str; 5] = ["ndjson", "envelope", "graph", "portal", "log-analytics"];
pub const SYNTH_RECORDS: usize = 3000;
pub const SYNTH_USERS: usize = 500;

#[test]
fn synth_output_in_every_format_matches_the_reference() {
    let mut failures = Vec::new();
    for (i, format) in SYNTH_FORMATS.iter().enumerate() {
        let data = support::synth(format, SYNTH_RECORDS, SYNTH_USERS, 7 + i as u64);
        let expected = reference_of(&[&data]);
        // The data must exercise the report, or the comparison proves little.
        let recs = support::u64_at(&expected, "/input/records");
        assert!(
            recs >= SYNTH_RECORDS as u64 / 2,
            "synth --format {format}: the reference reads only {recs} records \
             (invalid: {}): the generator or the reference misreads this shape",
            expected["input"]["invalid_by_reason"]
        );
        assert!(
            support::u64_at(&expected, "/legacy/total") > 0,
            "synth --format {format} has no legacy sign-in: {}",
            expected["legacy"]
        );
        let f = temp_file(&data);
        let actual = support::replay_files(&[f.path()], &[], format);
        if let Err(e) =
            support::compare_report(&actual, &expected, &format!("synth --format {format}"))
        {
            failures.push(e);
        }
    }
    support::assert_no_failures("synth vs reference", &failures);
}

#[test]
fn split_over_two_files_in_either_order_and_shuffled_gives_one_report() {
    let data = support::synth("ndjson", SYNTH_RECORDS, SYNTH_USERS, 11);
    let lines = support::lines(&data);
    let (a, b) = lines.split_at(lines.len() * 2 / 5);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let mut sa = a.to_vec();
    let mut sb = b.to_vec();
    sa.shuffle(&mut rng);
    sb.shuffle(&mut rng);
    let (a, b) = (support::join_lines(a), support::join_lines(b));
    let (sa, sb) = (support::join_lines(&sa), support::join_lines(&sb));

    let whole = reference_of(&[&data]);
    let orders: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("A then B", vec![a.clone(), b.clone()]),
        ("B then A", vec![b.clone(), a.clone()]),
        ("shuffled A then shuffled B", vec![sa.clone(), sb.clone()]),
        ("shuffled B then shuffled A", vec![sb.clone(), sa.clone()]),
    ];
    let mut failures = Vec::new();
    for (name, inputs) in &orders {
        let refs: Vec<&[u8]> = inputs.iter().map(|x| x.as_slice()).collect();
        // The model itself must be order-free on this data (synth duplicates are exact copies).
        let expected = reference_of(&refs);
        assert_eq!(
            expected, whole,
            "{name}: the reference depends on order: synth emitted duplicates that differ"
        );
        let files: Vec<_> = inputs.iter().map(|x| temp_file(x)).collect();
        let paths: Vec<&Path> = files.iter().map(|f| f.path()).collect();
        for threads in ["1", "2"] {
            let actual = support::replay_files(&paths, &["--threads", threads], name);
            if let Err(e) =
                support::compare_report(&actual, &whole, &format!("{name}, --threads {threads}"))
            {
                failures.push(e);
            }
        }
    }
    support::assert_no_failures("order independence", &failures);
}

#[test]
fn gzip_input_is_recognised_by_its_magic_bytes() {
    let mut failures = Vec::new();
    // Small inputs: gzip in an unoptimised test build is slow, and volume is not the point here.
    for format in ["ndjson", "portal", "envelope"] {
        let plain = support::synth(format, 500, 100, 21);
        let gz = support::gzip(&plain);
        let expected = reference_of(&[&plain]);
        // A name that does not say gzip: the magic bytes decide.
        let f = temp_file(&gz);
        let ctx = format!("gzip {format} (file)");
        if let Err(e) = support::compare_report(
            &support::replay_files(&[f.path()], &[], &ctx),
            &expected,
            &ctx,
        ) {
            failures.push(e);
        }
        let ctx = format!("gzip {format} (stdin)");
        if let Err(e) =
            support::compare_report(&support::replay_stdin(&gz, &[], &ctx), &expected, &ctx)
        {
            failures.push(e);
        }
    }
    // The model reads gzip too (checked on a small input: gzip is slow in a debug build).
    let small = support::corpus_bytes(support::CORPUS_FILES[4]);
    assert_eq!(
        reference_of(&[&support::gzip(&small)]),
        reference_of(&[&small])
    );
    support::assert_no_failures("gzip", &failures);
}

/// One NDJSON file whose lines are every document shape, plus a file per synth shape, in one run.
#[test]
fn a_mix_of_shapes_in_one_run_matches_the_reference() {
    let data = support::synth("ndjson", 1200, 300, 31);
    let recs: Vec<Value> = support::lines(&data)
        .iter()
        .map(|l| serde_json::from_slice(l).expect("synth ndjson line is JSON"))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < recs.len() {
        let n = rng.gen_range(1..=4).min(recs.len() - i);
        let chunk = &recs[i..i + n];
        i += n;
        let graph = |r: &Value| r.get("properties").cloned().unwrap_or_else(|| r.clone());
        let line = match rng.gen_range(0..6) {
            0 => chunk
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            1 => json!({"records": chunk}).to_string(),
            2 => {
                json!({"@odata.context": "x", "value": chunk.iter().map(graph).collect::<Vec<_>>()})
                    .to_string()
            }
            3 => Value::Array(chunk.to_vec()).to_string(),
            4 => Value::Array(chunk.iter().map(graph).collect()).to_string(),
            _ => chunk
                .iter()
                .map(|r| r.to_string() + "\r")
                .collect::<Vec<_>>()
                .join("\n"),
        };
        out.push(line);
        if rng.gen_ratio(1, 25) {
            out.push(
                [
                    "{\"records\":[",
                    "42",
                    "{}",
                    "[1,2]",
                    "nope",
                    "{\"a\":\"\u{1}\"}",
                ][rng.gen_range(0..6)]
                .into(),
            );
        }
    }
    let mixed = ndjson(&out);
    let mut inputs = vec![mixed];
    for (k, format) in SYNTH_FORMATS.iter().enumerate() {
        inputs.push(support::synth(format, 600, 150, 40 + k as u64));
    }
    let expected = compare_files(&inputs, &[], &Options::default(), "mixed shapes");
    assert!(support::u64_at(&expected, "/input/invalid") > 0);
}

#[test]
fn stdin_and_a_file_together_match_the_reference() {
    let a = support::synth("envelope", 800, 200, 51);
    let b = support::synth("graph", 800, 200, 52);
    let f = temp_file(&b);
    let args: [&std::ffi::OsStr; 5] = [
        "replay".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "-".as_ref(),
        f.path().as_os_str(),
    ];
    let r = support::run(&args, &a);
    let actual = support::report_of(&r, "stdin + file");
    support::assert_report(&actual, &reference_of(&[&a, &b]), "stdin + file");
}

// ---- rules as tables: classification, outcome, field sources --------------------------------

/// clientAppUsed -> legacy protocol (or None), for a user sign-in.
const CLASSIFICATION: &[(&str, Option<&str>)] = &[
    ("Authenticated SMTP", Some("Authenticated SMTP")),
    ("Autodiscover", Some("Autodiscover")),
    ("AutoDiscover", Some("Autodiscover")),
    ("Exchange ActiveSync", Some("Exchange ActiveSync")),
    (
        "Exchange Online PowerShell",
        Some("Exchange Online PowerShell"),
    ),
    ("Exchange Web Services", Some("Exchange Web Services")),
    ("IMAP4", Some("IMAP4")),
    ("imap4", Some("IMAP4")),
    ("  IMAP4\t", Some("IMAP4")),
    ("MAPI Over HTTP", Some("MAPI Over HTTP")),
    ("MAPI over HTTP", Some("MAPI Over HTTP")),
    ("Offline Address Book", Some("Offline Address Book")),
    (
        "Outlook Anywhere (RPC over HTTP)",
        Some("Outlook Anywhere (RPC over HTTP)"),
    ),
    ("POP3", Some("POP3")),
    ("pop3 ", Some("POP3")),
    ("Reporting Web Services", Some("Reporting Web Services")),
    ("Universal Outlook", Some("Universal Outlook")),
    ("Outlook Service", Some("Universal Outlook")),
    ("Other clients", Some("Other clients")),
    ("OTHER CLIENTS", Some("Other clients")),
    ("Browser", None),
    ("Mobile Apps and Desktop clients", None),
    ("Unknown", None),
    ("", None),
    ("   ", None),
    ("IMAP", None),
    ("SMTP", None),
    ("Exchange", None),
];

#[test]
fn classification_table() {
    let mut failures = Vec::new();
    for (i, (app, want)) in CLASSIFICATION.iter().enumerate() {
        let rec = Diag::new(&format!("cls-{i}")).app(app).code(50126);
        let data = ndjson(&[rec.line()]);
        let model = reference_of(&[&data]);
        let got_model = model["legacy"]["protocols"]
            .get(0)
            .map(|p| p["protocol"].clone());
        assert_eq!(
            got_model,
            want.map(|w| json!(w)),
            "reference model, clientAppUsed {app:?}"
        );
        let actual = support::replay_stdin(&data, &[], app);
        let expected_total = u64::from(want.is_some());
        let protos: Vec<Value> = actual["legacy"]["protocols"]
            .as_array()
            .map(|a| a.iter().map(|p| p["protocol"].clone()).collect())
            .unwrap_or_default();
        let ok = actual["legacy"]["total"] == json!(expected_total)
            && protos == want.map(|w| vec![json!(w)]).unwrap_or_default()
            && actual["legacy"]["failure"] == json!(expected_total);
        if !ok {
            failures.push(format!(
                "clientAppUsed {app:?}: expected {want:?}, got legacy.total {} protocols {:?}",
                actual["legacy"]["total"], protos
            ));
        }
    }
    // A missing clientAppUsed is unclassified too.
    let mut v = Diag::new("cls-missing").app("IMAP4").value();
    v["properties"]
        .as_object_mut()
        .unwrap()
        .remove("clientAppUsed");
    let actual = support::replay_stdin(&ndjson(&[v.to_string()]), &[], "no clientAppUsed");
    if actual["legacy"]["total"] != json!(0) {
        failures.push(format!(
            "missing clientAppUsed counted as legacy: {}",
            actual["legacy"]
        ));
    }
    support::assert_no_failures("classification", &failures);
}

/// (category, legacy?) for an IMAP4 sign-in: workloads are never legacy.
const CATEGORIES: &[(&str, &str, bool)] = &[
    ("SignInLogs", "SignInLogs", true),
    (
        "NonInteractiveUserSignInLogs",
        "NonInteractiveUserSignInLogs",
        true,
    ),
    (
        "ServicePrincipalSignInLogs",
        "ServicePrincipalSignInLogs",
        false,
    ),
    (
        "ManagedIdentitySignInLogs",
        "ManagedIdentitySignInLogs",
        false,
    ),
    (
        "MicrosoftServicePrincipalSignInLogs",
        "MicrosoftServicePrincipalSignInLogs",
        false,
    ),
    ("ADFSSignInLogs", "ADFSSignInLogs", true),
    ("AuditLogs", "Other", true),
];

#[test]
fn category_table() {
    let mut failures = Vec::new();
    for (i, (cat, key, legacy)) in CATEGORIES.iter().enumerate() {
        let data = ndjson(&[Diag::new(&format!("cat-{i}"))
            .category(cat)
            .app("IMAP4")
            .line()]);
        let expected = reference_of(&[&data]);
        assert_eq!(
            expected["input"]["by_category"],
            json!({ *key: 1 }),
            "model: {cat}"
        );
        assert_eq!(
            expected["legacy"]["total"],
            json!(u64::from(*legacy)),
            "model: {cat}"
        );
        let actual = support::replay_stdin(&data, &[], cat);
        if let Err(e) = support::compare_report(&actual, &expected, &format!("category {cat}")) {
            failures.push(e);
        }
    }
    support::assert_no_failures("categories", &failures);
}

/// status.errorCode / resultType -> outcome.
#[test]
fn outcome_table() {
    // (properties.status, top-level resultType, outcome)
    let rows: &[(Option<Value>, Option<Value>, &str)] = &[
        (Some(json!({"errorCode": 0})), Some(json!("0")), "success"),
        (
            Some(json!({"errorCode": 53003})),
            Some(json!("53003")),
            "blocked",
        ),
        (
            Some(json!({"errorCode": 50126})),
            Some(json!("50126")),
            "failure",
        ),
        (Some(json!({"errorCode": "53003"})), None, "blocked"),
        (
            Some(json!({"errorCode": "0"})),
            Some(json!("50126")),
            "success",
        ),
        (None, Some(json!("0")), "success"),
        (None, Some(json!(53003)), "blocked"),
        (
            Some(json!({"failureReason": "x"})),
            Some(json!("53003")),
            "blocked",
        ),
        (
            Some(json!({"errorCode": true})),
            Some(json!("0")),
            "success",
        ),
        (None, None, "failure"),
        (
            Some(json!({"errorCode": 50053})),
            Some(json!("0")),
            "failure",
        ),
    ];
    let mut failures = Vec::new();
    for (i, (status, rt, outcome)) in rows.iter().enumerate() {
        let mut v = Diag::new(&format!("out-{i}")).app("POP3").value();
        let props = v["properties"].as_object_mut().unwrap();
        props.remove("status");
        if let Some(s) = status {
            props.insert("status".into(), s.clone());
        }
        let top = v.as_object_mut().unwrap();
        top.remove("resultType");
        if let Some(r) = rt {
            top.insert("resultType".into(), r.clone());
        }
        let data = ndjson(&[v.to_string()]);
        let expected = reference_of(&[&data]);
        assert_eq!(expected["legacy"][*outcome], json!(1), "model row {i}");
        let actual = support::replay_stdin(&data, &[], "outcome");
        if let Err(e) = support::compare_report(
            &actual,
            &expected,
            &format!("outcome row {i} ({status:?}, {rt:?}) -> {outcome}"),
        ) {
            failures.push(e);
        }
    }
    support::assert_no_failures("outcomes", &failures);
}

/// Field sources: each row is one legacy sign-in; the expectation names the user, IP, client,
/// event time and category the report must show for it.
struct FieldRow {
    name: &'static str,
    line: String,
    user: &'static str,
    ip: &'static str,
    client: &'static str,
    time: &'static str,
    category: &'static str,
}

fn field_rows() -> Vec<FieldRow> {
    let base = |id: &str| Diag::new(id).app("IMAP4");
    let edit = |id: &str, f: &dyn Fn(&mut Value)| {
        let mut v = base(id).value();
        f(&mut v);
        v.to_string()
    };
    let long_ua = format!("ab{}", "\u{20ac}".repeat(200)); // 2 + 84 * 3 = 254 bytes fit, 257 do not
    let long_ua_cut = format!("ab{}", "\u{20ac}".repeat(84));
    let ascii_ua = "x".repeat(300);
    vec![
        FieldRow {
            name: "diagnostic record, plain",
            line: base("f-1").line(),
            user: "alice@contoso.com",
            ip: "203.0.113.10",
            client: "Mozilla/5.0",
            time: "2024-05-01T10:00:00Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "UPN escaped, mixed case, padded",
            line: base("f-2")
                .line()
                .replace("alice@contoso.com", "  Alice\\u0040Contoso.COM "),
            user: "alice@contoso.com",
            ip: "203.0.113.10",
            client: "Mozilla/5.0",
            time: "2024-05-01T10:00:00Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "no UPN: userId lower-cased",
            line: edit("f-3", &|v| {
                let p = v["properties"].as_object_mut().unwrap();
                p.remove("userPrincipalName");
                p.insert(
                    "userId".into(),
                    json!("ABCDEF00-0000-0000-0000-00000000000A"),
                );
            }),
            user: "abcdef00-0000-0000-0000-00000000000a",
            ip: "203.0.113.10",
            client: "Mozilla/5.0",
            time: "2024-05-01T10:00:00Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "UPN of the wrong type: userId",
            line: edit("f-4", &|v| {
                v["properties"]["userPrincipalName"] = json!(42);
                v["properties"]["userId"] = json!("uid-4");
            }),
            user: "uid-4",
            ip: "203.0.113.10",
            client: "Mozilla/5.0",
            time: "2024-05-01T10:00:00Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "no ipAddress: callerIpAddress",
            line: edit("f-5", &|v| {
                v["properties"].as_object_mut().unwrap().remove("ipAddress");
                v["callerIpAddress"] = json!(" 198.51.100.7 ");
            }),
            user: "alice@contoso.com",
            ip: "198.51.100.7",
            client: "Mozilla/5.0",
            time: "2024-05-01T10:00:00Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "IPv6 in canonical form",
            line: edit("f-6", &|v| {
                v["properties"]["ipAddress"] = json!("2001:DB8:0:0:0:0:0:1")
            }),
            user: "alice@contoso.com",
            ip: "2001:db8::1",
            client: "Mozilla/5.0",
            time: "2024-05-01T10:00:00Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "userAgent cut at 256 bytes on a char boundary",
            line: base("f-7").ua(Some(&long_ua)).line(),
            user: "alice@contoso.com",
            ip: "203.0.113.10",
            client: Box::leak(long_ua_cut.into_boxed_str()),
            time: "2024-05-01T10:00:00Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "ASCII userAgent cut at 256 bytes",
            line: base("f-8").ua(Some(&ascii_ua)).line(),
            user: "alice@contoso.com",
            ip: "203.0.113.10",
            client: Box::leak("x".repeat(256).into_boxed_str()),
            time: "2024-05-01T10:00:00Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "createdDateTime with -05:00 and 7 digits",
            line: base("f-9").time("2019-10-18T04:45:48.0729893-05:00").line(),
            user: "alice@contoso.com",
            ip: "203.0.113.10",
            client: "Mozilla/5.0",
            time: "2019-10-18T09:45:48.0729893Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "createdDateTime with 9 digits and +05:30",
            line: base("f-10")
                .time("2024-05-01T15:30:00.123456789+05:30")
                .line(),
            user: "alice@contoso.com",
            ip: "203.0.113.10",
            client: "Mozilla/5.0",
            time: "2024-05-01T10:00:00.123456789Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "createdDateTime without fraction or offset (UTC)",
            line: base("f-11").time("2024-05-01T10:00:00").line(),
            user: "alice@contoso.com",
            ip: "203.0.113.10",
            client: "Mozilla/5.0",
            time: "2024-05-01T10:00:00Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "no createdDateTime: record time in US form (PM)",
            line: edit("f-12", &|v| {
                v["properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("createdDateTime");
                v["time"] = json!("11/14/2025 1:48:53 PM");
            }),
            user: "alice@contoso.com",
            ip: "203.0.113.10",
            client: "Mozilla/5.0",
            time: "2025-11-14T13:48:53Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "unusable createdDateTime: record time, 12 AM is midnight",
            line: edit("f-13", &|v| {
                v["properties"]["createdDateTime"] = json!("yesterday");
                v["time"] = json!("1/2/2025 12:05:09 AM");
            }),
            user: "alice@contoso.com",
            ip: "203.0.113.10",
            client: "Mozilla/5.0",
            time: "2025-01-02T00:05:09Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "Graph shape: isInteractive false, no userAgent",
            line: json!({"id": "f-14", "createdDateTime": "2024-05-01T10:00:00Z",
                         "userPrincipalName": "Bob@Contoso.com", "ipAddress": "192.0.2.1",
                         "clientAppUsed": "IMAP4", "status": {"errorCode": 0},
                         "isInteractive": false})
            .to_string(),
            user: "bob@contoso.com",
            ip: "192.0.2.1",
            client: "",
            time: "2024-05-01T10:00:00Z",
            category: "NonInteractiveUserSignInLogs",
        },
        FieldRow {
            name: "Graph shape: signInEventTypes wins over isInteractive",
            line: json!({"id": "f-15", "createdDateTime": "2024-05-01T10:00:00Z",
                         "userPrincipalName": "bob@contoso.com", "ipAddress": "192.0.2.1",
                         "clientAppUsed": "IMAP4", "userAgent": "ua",
                         "signInEventTypes": ["nonInteractiveUser"], "isInteractive": true})
            .to_string(),
            user: "bob@contoso.com",
            ip: "192.0.2.1",
            client: "ua",
            time: "2024-05-01T10:00:00Z",
            category: "NonInteractiveUserSignInLogs",
        },
        FieldRow {
            name: "Log Analytics: PascalCase, Status as JSON text, Type",
            line: json!({"Id": "f-16", "CreatedDateTime": "2024-05-01T10:00:00.5Z",
                         "TimeGenerated": "2024-05-01T11:00:00Z",
                         "UserPrincipalName": "CAROL@contoso.com", "IPAddress": "192.0.2.2",
                         "ClientAppUsed": "Exchange ActiveSync", "UserAgent": "Android-Mail",
                         "ResultType": "50126", "Status": "{\"errorCode\":0}",
                         "Type": "AADNonInteractiveUserSignInLogs"})
            .to_string(),
            user: "carol@contoso.com",
            ip: "192.0.2.2",
            client: "Android-Mail",
            time: "2024-05-01T10:00:00.5Z",
            category: "NonInteractiveUserSignInLogs",
        },
        FieldRow {
            name:
                "Log Analytics: SigninLogs table name, TimeGenerated when CreatedDateTime is empty",
            line:
                json!({"Id": "f-17", "CreatedDateTime": "", "TimeGenerated": "2024-05-01T12:00:00Z",
                         "UserPrincipalName": "dave@contoso.com", "IPAddress": "192.0.2.3",
                         "ClientAppUsed": "POP3", "ResultType": "0", "Type": "SigninLogs"})
                .to_string(),
            user: "dave@contoso.com",
            ip: "192.0.2.3",
            client: "",
            time: "2024-05-01T12:00:00Z",
            category: "SignInLogs",
        },
        FieldRow {
            name: "no category at all: Other, still legacy",
            line: edit("f-18", &|v| {
                v.as_object_mut().unwrap().remove("category");
            }),
            user: "alice@contoso.com",
            ip: "203.0.113.10",
            client: "Mozilla/5.0",
            time: "2024-05-01T10:00:00Z",
            category: "Other",
        },
    ]
}

#[test]
fn field_sources_table() {
    let mut failures = Vec::new();
    for row in field_rows() {
        let data = ndjson(std::slice::from_ref(&row.line));
        let model = reference_of(&[&data]);
        let want_user = json!([row.user]);
        let got = |v: &Value, list: &str, key: &str| -> Value {
            Value::Array(
                v["legacy"][list]
                    .as_array()
                    .map(|a| a.iter().map(|x| x[key].clone()).collect())
                    .unwrap_or_default(),
            )
        };
        // The table must agree with the model before it judges the binary.
        assert_eq!(
            got(&model, "top_users", "user"),
            want_user,
            "model: {}",
            row.name
        );
        assert_eq!(
            model["time"]["first"],
            json!(row.time),
            "model: {}",
            row.name
        );
        assert_eq!(
            model["input"]["by_category"],
            json!({row.category: 1}),
            "model: {}",
            row.name
        );
        let want_client = json!([row.client]);
        assert_eq!(
            got(&model, "top_clients", "client"),
            want_client,
            "model: {}",
            row.name
        );
        assert_eq!(
            got(&model, "top_ips", "ip"),
            json!([row.ip]),
            "model: {}",
            row.name
        );

        let actual = support::replay_stdin(&data, &[], row.name);
        if let Err(e) = support::compare_report(&actual, &model, row.name) {
            failures.push(e);
        }
    }
    support::assert_no_failures("field sources", &failures);
}

#[test]
fn duplicates_count_in_records_and_duplicates_only() {
    let a = Diag::new("dup-1").app("IMAP4").code(0).line();
    let b = Diag::new("dup-2")
        .app("POP3")
        .code(50126)
        .upn("bob@contoso.com")
        .line();
    let no_id = {
        let mut v = Diag::new("x").app("IMAP4").value();
        v["properties"].as_object_mut().unwrap().remove("id");
        v.to_string()
    };
    let f1 = ndjson(&[
        a.clone(),
        b.clone(),
        a.clone(),
        no_id.clone(),
        no_id.clone(),
    ]);
    let f2 = ndjson(&[b.clone(), a.clone(), format!("{{\"records\":[{a},{b}]}}")]);
    let expected = reference_of(&[&f1, &f2]);
    // Hand-checked: 5 + 4 records read; unique: dup-1, dup-2 and both id-less copies.
    assert_eq!(expected["input"]["records"], json!(9));
    assert_eq!(expected["input"]["duplicates"], json!(5));
    assert_eq!(expected["input"]["by_category"], json!({"SignInLogs": 4}));
    assert_eq!(expected["legacy"]["total"], json!(4));
    assert_eq!(expected["legacy"]["success"], json!(3));
    assert_eq!(expected["legacy"]["failure"], json!(1));
    compare_files(&[f1, f2], &[], &Options::default(), "duplicates");
}

/// The dedup key is the sign-in id alone (rules: "a record whose id was already seen"): the same
/// id at another event time, in another category or another file is still a duplicate, and the
/// first one read is the one counted (D11; input order with `--threads 1`).
#[test]
fn the_same_id_at_another_time_is_a_duplicate() {
    let first = Diag::new("same-id")
        .app("IMAP4")
        .time("2024-05-01T10:00:00Z")
        .line();
    let rows: &[(&str, String)] = &[
        (
            "two hours later",
            Diag::new("same-id")
                .app("IMAP4")
                .time("2024-05-01T12:00:00Z")
                .line(),
        ),
        (
            "a day earlier",
            Diag::new("same-id")
                .app("IMAP4")
                .time("2024-04-30T10:00:00Z")
                .line(),
        ),
        (
            "another category and protocol",
            Diag::new("same-id")
                .app("POP3")
                .category("NonInteractiveUserSignInLogs")
                .line(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, second) in rows {
        for (order, files) in [
            ("same file", vec![ndjson(&[first.clone(), second.clone()])]),
            (
                "two files",
                vec![
                    ndjson(std::slice::from_ref(&first)),
                    ndjson(std::slice::from_ref(second)),
                ],
            ),
        ] {
            let refs: Vec<&[u8]> = files.iter().map(|f| f.as_slice()).collect();
            let expected = reference_of(&refs);
            assert_eq!(expected["input"]["duplicates"], json!(1));
            assert_eq!(
                expected["legacy"]["protocols"][0]["protocol"],
                json!("IMAP4")
            );
            assert_eq!(expected["time"]["first"], expected["time"]["last"]);
            let tf: Vec<_> = files.iter().map(|f| temp_file(f)).collect();
            let paths: Vec<&Path> = tf.iter().map(|f| f.path()).collect();
            // Which of two differing copies is read first is input order only on one thread:
            // workers read several files at once.
            let actual = support::replay_files(&paths, &["--threads", "1"], name);
            if let Err(e) = support::compare_report(&actual, &expected, &format!("{name}, {order}"))
            {
                failures.push(e);
            }
        }
    }
    support::assert_no_failures("dedup by id", &failures);
}

#[test]
fn ranking_and_tie_breaks() {
    // Totals: users b=3, a=3, c=1 (ties by name); IPs and clients likewise; protocols POP3 3,
    // IMAP4 3, SMTP 1 (tie by name: IMAP4 < POP3).
    let rows = [
        ("r1", "b@x.com", "10.0.0.2", "IMAP4", "ua-b", 0),
        ("r2", "b@x.com", "10.0.0.2", "POP3", "ua-b", 53003),
        ("r3", "b@x.com", "10.0.0.2", "POP3", "ua-b", 50126),
        ("r4", "a@x.com", "10.0.0.1", "IMAP4", "ua-a", 0),
        ("r5", "a@x.com", "10.0.0.1", "IMAP4", "ua-a", 0),
        ("r6", "a@x.com", "10.0.0.1", "POP3", "ua-a", 50126),
        ("r7", "c@x.com", "10.0.0.1", "Authenticated SMTP", "ua-c", 0),
    ];
    let lines: Vec<String> = rows
        .iter()
        .map(|(id, u, ip, app, ua, code)| {
            Diag::new(id)
                .upn(u)
                .ip(ip)
                .app(app)
                .ua(Some(ua))
                .code(*code)
                .line()
        })
        .collect();
    let data = ndjson(&lines);
    let expected = json!({
        "total": 7, "success": 4, "blocked": 1, "failure": 2, "users": 3, "ips": 2,
        "protocols": [
            {"protocol": "IMAP4", "total": 3, "success": 3, "blocked": 0, "failure": 0, "users": 2, "ips": 2},
            {"protocol": "POP3", "total": 3, "success": 0, "blocked": 1, "failure": 2, "users": 2, "ips": 2},
            {"protocol": "Authenticated SMTP", "total": 1, "success": 1, "blocked": 0, "failure": 0, "users": 1, "ips": 1},
        ],
        "top_users": [
            {"user": "a@x.com", "total": 3, "success": 2, "blocked": 0, "failure": 1, "protocols": ["IMAP4", "POP3"]},
            {"user": "b@x.com", "total": 3, "success": 1, "blocked": 1, "failure": 1, "protocols": ["POP3", "IMAP4"]},
            {"user": "c@x.com", "total": 1, "success": 1, "blocked": 0, "failure": 0, "protocols": ["Authenticated SMTP"]},
        ],
        "top_ips": [
            {"ip": "10.0.0.1", "total": 4, "users": 2, "success": 3, "blocked": 0, "failure": 1},
            {"ip": "10.0.0.2", "total": 3, "users": 1, "success": 1, "blocked": 1, "failure": 1},
        ],
        "top_clients": [
            {"client": "ua-a", "total": 3},
            {"client": "ua-b", "total": 3},
            {"client": "ua-c", "total": 1},
        ],
    });
    let model = reference_of(&[&data]);
    assert_eq!(
        model["legacy"], expected,
        "the hand-written expectation and the model disagree"
    );
    let actual = support::replay_stdin(&data, &[], "ranking");
    support::assert_report(&actual, &model, "ranking and tie-breaks");
}

// ---- the model against itself: quick sanity checks that need no binary ----------------------

#[test]
fn model_parser_sanity() {
    let cases: &[(&str, Result<(), Bad>)] = &[
        ("{}", Ok(())),
        (
            "[1,2.5e-3,-0,\"a\\u00e9\\ud83d\\ude00\",true,false,null,{\"k\":[]}]",
            Ok(()),
        ),
        ("{\"a\":1", Err(Bad::Truncated)),
        ("\"abc", Err(Bad::Truncated)),
        ("tru", Err(Bad::Truncated)),
        ("1.", Err(Bad::Truncated)),
        ("{\"a\":1,}", Err(Bad::NotJson)),
        ("[1,]", Err(Bad::NotJson)),
        ("01", Err(Bad::NotJson)),
        ("{} {}", Err(Bad::NotJson)),
        ("\"\\x\"", Err(Bad::NotJson)),
        ("\"\\ud800\"", Ok(())),
        ("\"\\udc00\\ud800x\\ud800\\u0041\"", Ok(())),
        ("\"\\ud800\\uzzzz\"", Err(Bad::NotJson)),
        ("\"\\ud800\\u12", Err(Bad::Truncated)),
        ("\"a\u{1}b\"", Err(Bad::NotJson)),
        ("nul", Err(Bad::Truncated)),
        ("nulx", Err(Bad::NotJson)),
    ];
    for (text, want) in cases {
        assert_eq!(
            parse_json(text, MAX_DEPTH, true).map(|_| ()),
            *want,
            "{text:?}"
        );
    }
    let deep = |n: usize| "[".repeat(n) + &"]".repeat(n);
    assert!(parse_json(&deep(256), MAX_DEPTH, true).is_ok());
    assert_eq!(parse_json(&deep(257), MAX_DEPTH, true), Err(Bad::TooDeep));
    assert!(parse_json(&deep(200_000), usize::MAX, false).is_ok());
    assert_eq!(
        parse_json(&"[".repeat(200_000), MAX_DEPTH, true),
        Err(Bad::TooDeep)
    );
}

#[test]
fn model_time_sanity() {
    let cases: &[(&str, Option<&str>)] = &[
        (
            "2022-01-24T05:10:08.6816663+00:00",
            Some("2022-01-24T05:10:08.6816663Z"),
        ),
        (
            "2019-10-18T04:45:48.0729893-05:00",
            Some("2019-10-18T09:45:48.0729893Z"),
        ),
        (
            "2024-02-29T23:59:59.999999999Z",
            Some("2024-02-29T23:59:59.999999999Z"),
        ),
        ("2024-01-01T00:30:00+01:00", Some("2023-12-31T23:30:00Z")),
        ("11/14/2025 1:48:53 AM", Some("2025-11-14T01:48:53Z")),
        ("11/14/2025 12:48:53 PM", Some("2025-11-14T12:48:53Z")),
        ("2023-02-29T00:00:00Z", None),
        ("2024-13-01T00:00:00Z", None),
        ("2024-01-01 00:00:00Z", None),
        ("2024-01-01T00:00:00.Z", None),
        ("13/01/2025 1:00:00 AM", None),
        ("yesterday", None),
        ("", None),
    ];
    for (s, want) in cases {
        assert_eq!(parse_time(s).map(format_time).as_deref(), *want, "{s:?}");
    }
    assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
}
