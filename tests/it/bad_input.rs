//! Bad input, case by case: every case runs the binary (from a file and from stdin) and asserts
//! exit 0, `input.records` and `input.invalid_by_reason` exactly. Most bad units sit between a
//! valid record line before and after them: those two must still count.
//!
//! The expected counts are written by hand from the rules; `the_table_agrees_with_the_model`
//! checks them against the reference model too, so a disagreement is caught on our side first.

use rand::{Rng, RngCore, SeedableRng};
use serde_json::{json, Value};

use crate::reference::{self, Diag};
use crate::support;

struct Case {
    name: &'static str,
    input: Vec<u8>,
    records: u64,
    invalid: Vec<(&'static str, u64)>,
}

/// A valid record line, a unique id per call site.
fn rec(id: &str) -> String {
    Diag::new(id).line()
}

/// `before` + the bad lines + `after`, each a line.
fn sandwich(bad: &[&[u8]]) -> Vec<u8> {
    let mut out = rec("sandwich-before").into_bytes();
    out.push(b'\n');
    for b in bad {
        out.extend_from_slice(b);
        out.push(b'\n');
    }
    out.extend_from_slice(rec("sandwich-after").as_bytes());
    out.push(b'\n');
    out
}

/// A valid record line whose userAgent is replaced by the raw JSON text `raw` (between quotes).
fn rec_with_raw_ua(id: &str, raw: &[u8]) -> Vec<u8> {
    let line = Diag::new(id).ua(Some("@@UA@@")).line();
    let (a, b) = line.split_once("@@UA@@").unwrap();
    [a.as_bytes(), raw, b.as_bytes()].concat()
}

fn deep_record(levels_inside_properties: usize, id: &str) -> Vec<u8> {
    // The record object is level 1, `properties` level 2, then `levels` arrays.
    let line = Diag::new(id).line();
    let deep = "[".repeat(levels_inside_properties) + &"]".repeat(levels_inside_properties);
    line.replacen(
        "\"properties\":{",
        &format!("\"properties\":{{\"deep\":{deep},"),
        1,
    )
    .into_bytes()
}

/// A record with `raw` as the value of a key nobody reads, inside `properties`.
fn rec_with_unread(id: &str, raw: &str) -> Vec<u8> {
    Diag::new(id)
        .line()
        .replacen(
            "\"properties\":{",
            &format!("\"properties\":{{\"unread\":{raw},"),
            1,
        )
        .into_bytes()
}

fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_string_pretty(v).unwrap().into_bytes()
}

fn graph_rec(id: &str) -> Value {
    json!({"id": id, "createdDateTime": "2024-05-01T10:00:00Z", "userPrincipalName": "g@contoso.com",
           "ipAddress": "192.0.2.9", "clientAppUsed": "Browser", "status": {"errorCode": 0},
           "isInteractive": true})
}

fn cases() -> Vec<Case> {
    let c =
        |name: &'static str, input: Vec<u8>, records: u64, invalid: &[(&'static str, u64)]| Case {
            name,
            input,
            records,
            invalid: invalid.to_vec(),
        };
    let r1 = rec("inner-1");
    let r2 = rec("inner-2");
    let half = &r1.as_bytes()[..r1.len() / 2];
    let three_mb = "x".repeat(3 << 20);
    let no_time = {
        let mut v = Diag::new("no-time").value();
        v["properties"]
            .as_object_mut()
            .unwrap()
            .remove("createdDateTime");
        v.as_object_mut().unwrap().remove("time");
        v.to_string()
    };
    let bad_times = Diag::new("bad-time").time("yesterday").value();
    let bad_times = {
        let mut v = bad_times;
        v["time"] = json!("soon");
        v.to_string()
    };
    let feb30 = {
        let mut v = Diag::new("feb-30").time("2024-02-30T10:00:00Z").value();
        v["time"] = json!("2024-02-30T10:00:00Z");
        v.to_string()
    };
    let props = |p: &str| {
        format!(
            "{{\"time\":\"2024-05-01T10:00:00Z\",\"category\":\"SignInLogs\",\"properties\":{p}}}"
        )
    };

    let mut v = vec![
        // ---- not UTF-8
        c("not UTF-8: invalid bytes in a string", sandwich(&[b"{\"a\":\"\xff\xfe\"}"]), 2, &[("not_utf8", 1)]),
        c("not UTF-8: a lone continuation byte", sandwich(&[b"\x80"]), 2, &[("not_utf8", 1)]),
        c("not UTF-8: Latin-1 inside an otherwise valid record", sandwich(&[&rec_with_raw_ua("l1", b"caf\xe9")]), 2, &[("not_utf8", 1)]),
        c("not UTF-8: an encoded UTF-16 surrogate", sandwich(&[b"\"\xed\xa0\x80\""]), 2, &[("not_utf8", 1)]),
        c("not UTF-8: an overlong encoding", sandwich(&[b"{\"a\":\"\xc0\xaf\"}"]), 2, &[("not_utf8", 1)]),
        // ---- not JSON
        c("not JSON: prose", sandwich(&[b"hello, world"]), 2, &[("not_json", 1)]),
        c("not JSON: trailing comma", sandwich(&[b"{\"a\":1,}"]), 2, &[("not_json", 1)]),
        c("not JSON: single quotes", sandwich(&[b"{'a':1}"]), 2, &[("not_json", 1)]),
        c("not JSON: bad escape in a record", sandwich(&[&rec_with_raw_ua("e1", b"\\q")]), 2, &[("not_json", 1)]),
        c("not JSON: raw control character in a record string", sandwich(&[&rec_with_raw_ua("e2", b"a\x01b")]), 2, &[("not_json", 1)]),
        c("not JSON: raw tab in a record string", sandwich(&[&rec_with_raw_ua("e3", b"a\tb")]), 2, &[("not_json", 1)]),
        c("a lone surrogate escape is valid JSON (D5)", sandwich(&[&rec_with_raw_ua("e4", b"\\ud800")]), 3, &[]),
        c("a lone low surrogate then a bad escape", sandwich(&[&rec_with_raw_ua("e5", b"\\udc00\\uzzzz")]), 2, &[("not_json", 1)]),
        c("not JSON: two documents on one line", sandwich(&[format!("{r1} {r2}").as_bytes()]), 2, &[("not_json", 1)]),
        c("not JSON: a syntax error after three good records counts once", sandwich(&[format!("{{\"records\":[{r1},{r2},{}] x}}", rec("inner-3")).as_bytes()]), 2, &[("not_json", 1)]),
        c("not JSON: a BOM at the start of a later line (D2)", sandwich(&[&[b"\xEF\xBB\xBF".as_slice(), rec("bom-later").as_bytes()].concat()]), 2, &[("not_json", 1)]),
        c("not JSON: a syntax error before an unterminated string (D3)", sandwich(&[b"x \"abc"]), 2, &[("not_json", 1)]),
        c("not JSON: a record, a stray word, then a cut string (D3)", sandwich(&[format!("[{r1} oops, \"cut").as_bytes()]), 2, &[("not_json", 1)]),
        c("not JSON: several bad lines in a row", sandwich(&[b"x", b"{", b"]", b"{\"a\" 1}"]), 2, &[("not_json", 3), ("truncated", 1)]),
        // ---- truncated
        c("truncated record", sandwich(&[half]), 2, &[("truncated", 1)]),
        c("truncated: unterminated string", sandwich(&[b"{\"id\":\"abc"]), 2, &[("truncated", 1)]),
        c("truncated envelope after a complete record", sandwich(&[format!("{{\"records\":[{r1},").as_bytes()]), 2, &[("truncated", 1)]),
        c("truncated envelope inside its second record", sandwich(&[[format!("{{\"records\":[{r1},").as_bytes(), half].concat().as_slice()]), 2, &[("truncated", 1)]),
        c("truncated Graph page", sandwich(&[b"{\"value\":[{\"id\":\"g\",\"createdDateTime\":\"2024-05-01T10:"]), 2, &[("truncated", 1)]),
        c("truncated scalar literal", sandwich(&[b"tru"]), 2, &[("truncated", 1)]),
        // ---- scalars and non-records
        c("scalar documents", sandwich(&[b"42", b"-1.5e3", b"\"text\"", b"true", b"false", b"null"]), 2, &[("scalar_document", 6)]),
        c("array of scalars and empty containers", sandwich(&[b"[1,\"a\",null,true,[],{}]"]), 2, &[("not_a_record", 6)]),
        c("array of objects that are not records", sandwich(&[b"[{\"id\":\"x\"},{\"time\":\"2024-05-01T10:00:00Z\"},{\"properties\":null},{\"records\":[]}]"]), 2, &[("not_a_record", 4)]),
        c("an array of records nested in an array (D6)", sandwich(&[format!("[[{r1}]]").as_bytes()]), 2, &[("not_a_record", 1)]),
        c("{}", sandwich(&[b"{}"]), 2, &[("not_a_record", 1)]),
        c("a non-record object", sandwich(&[b"{\"hello\":\"world\",\"time\":\"2024-05-01T10:00:00Z\"}"]), 2, &[("not_a_record", 1)]),
        c("envelope with non-records around a record", sandwich(&[format!("{{\"records\":[1,{{}},[{r1}],{{\"properties\":\"x\"}},{r2}]}}").as_bytes()]), 3, &[("not_a_record", 4)]),
        c("Graph page with non-records around a record", sandwich(&[format!("{{\"value\":[null,{{\"value\":[]}},{}]}}", graph_rec("g-1")).as_bytes()]), 3, &[("not_a_record", 2)]),
        c("properties of the wrong type", sandwich(&[props("\"x\"").as_bytes(), props("[]").as_bytes(), props("null").as_bytes(), props("5").as_bytes(), props("true").as_bytes()]), 2, &[("not_a_record", 5)]),
        c("properties of the wrong type inside an envelope", sandwich(&[format!("{{\"records\":[{},{r1}]}}", props("[1]")).as_bytes()]), 3, &[("not_a_record", 1)]),
        c("empty containers add nothing", sandwich(&[b"[]", b"{\"records\":[]}", b"{\"value\":[]}"]), 2, &[]),
        // ---- depth
        c("nesting 200,000 levels deep, never closed", sandwich(&["[".repeat(200_000).as_bytes()]), 2, &[("too_deep", 1)]),
        c("nesting 200,000 levels deep, balanced", sandwich(&[("[".repeat(200_000) + &"]".repeat(200_000)).as_bytes()]), 2, &[("too_deep", 1)]),
        c("nesting 200,000 objects deep", sandwich(&[("{\"a\":".repeat(200_000) + "1" + &"}".repeat(200_000)).as_bytes()]), 2, &[("too_deep", 1)]),
        c("nesting 200,000 levels inside a record", sandwich(&[&deep_record(200_000, "deep-1")]), 2, &[("too_deep", 1)]),
        c("256 levels are accepted (D4)", sandwich(&[("[".repeat(256) + &"]".repeat(256)).as_bytes()]), 2, &[("not_a_record", 1)]),
        c("257 levels are too deep (D4)", sandwich(&[("[".repeat(257) + &"]".repeat(257)).as_bytes()]), 2, &[("too_deep", 1)]),
        c("a record 256 levels deep still counts", sandwich(&[&deep_record(254, "deep-256")]), 3, &[]),
        c("a record 257 levels deep is too deep", sandwich(&[&deep_record(255, "deep-257")]), 2, &[("too_deep", 1)]),
        // ---- NUL bytes
        c("a NUL byte alone on a line", sandwich(&[b"\0"]), 2, &[("not_json", 1)]),
        c("a raw NUL inside a record string", sandwich(&[&rec_with_raw_ua("nul-1", b"a\0b")]), 2, &[("not_json", 1)]),
        c("a NUL between tokens", sandwich(&[b"{\"a\":\x001}"]), 2, &[("not_json", 1)]),
        c("an escaped NUL in a valid record", sandwich(&[&rec_with_raw_ua("nul-2", b"a\\u0000b")]), 3, &[]),
        // ---- big strings
        c("a 3 MB string in a valid record still counts", sandwich(&[&rec_with_raw_ua("big-1", three_mb.as_bytes())]), 3, &[]),
        c("a 3 MB string in another field of a valid record", sandwich(&[Diag::new("big-2").line().replacen("{", &format!("{{\"blob\":\"{three_mb}\","), 1).as_bytes()]), 3, &[]),
        c("a 3 MB unterminated string", sandwich(&[format!("{{\"a\":\"{three_mb}").as_bytes()]), 2, &[("truncated", 1)]),
        // ---- event time
        c("bad_time: no time at all", sandwich(&[no_time.as_bytes()]), 2, &[("bad_time", 1)]),
        c("bad_time: unparseable times", sandwich(&[bad_times.as_bytes()]), 2, &[("bad_time", 1)]),
        c("bad_time: an impossible date", sandwich(&[feb30.as_bytes()]), 2, &[("bad_time", 1)]),
        c("bad_time next to a good record in one envelope", sandwich(&[format!("{{\"records\":[{no_time},{r1}]}}").as_bytes()]), 3, &[("bad_time", 1)]),
        // ---- framing: BOM, CRLF, blank lines
        c("BOM then NDJSON", [b"\xEF\xBB\xBF".as_slice(), &reference::ndjson(&[r1.clone(), r2.clone(), rec("inner-3")])].concat(), 3, &[]),
        c("BOM then a pretty-printed portal array", [b"\xEF\xBB\xBF".as_slice(), &pretty(&json!([graph_rec("p-1"), graph_rec("p-2")]))].concat(), 2, &[]),
        c("CRLF line ends", format!("{r1}\r\n{r2}\r\n{}\r\n", rec("inner-3")).into_bytes(), 3, &[]),
        c("CRLF in a pretty-printed envelope", String::from_utf8(pretty(&json!({"records": [Diag::new("c-1").value(), Diag::new("c-2").value(), Diag::new("c-3").value()]}))).unwrap().replace('\n', "\r\n").into_bytes(), 3, &[]),
        c("blank lines everywhere", format!("\n\n  \n{r1}\n\t\n\r\n \r\n{r2}\n\n   \n").into_bytes(), 2, &[]),
        c("no newline after the last line", format!("{r1}\n{r2}").into_bytes(), 2, &[]),
        c("BOM, CRLF and blank lines together", [b"\xEF\xBB\xBF\r\n\r\n".as_slice(), format!("{r1}\r\n\r\n{r2}\r\n").as_bytes()].concat(), 2, &[]),
        c("empty input", Vec::new(), 0, &[]),
        c("only a BOM", b"\xEF\xBB\xBF".to_vec(), 0, &[]),
        c("only blank lines", b"\n \n\t\r\n\n".to_vec(), 0, &[]),
        // ---- skimmed containers (D26): unread values are checked for strings and brackets only
        c("unread container: token order is not checked", [rec_with_unread("u1", "[1 2, {\"a\" 3}]"), b"\n".to_vec()].concat(), 1, &[]),
        c("unread container: brackets of the wrong kind", [rec_with_unread("u2", "[1}"), b"\n".to_vec(), r1.clone().into_bytes()].concat(), 1, &[("not_json", 1)]),
        c("unread container: a control character in a string", [rec_with_unread("u3", "[\"a\u{1}\"]"), b"\n".to_vec(), r1.clone().into_bytes()].concat(), 1, &[("not_json", 1)]),
        c("unread container: cut short", [r1.clone().into_bytes(), b"\n{\"properties\":{\"unread\":[[1,\"]\"]".to_vec()].concat(), 1, &[("truncated", 1)]),
        c("read field: a container where a string belongs is parsed strictly", format!("{}\n", Diag::new("u5").line().replacen("\"properties\":{", "\"properties\":{\"userAgent\":[1 2],", 1)).into_bytes(), 0, &[("not_json", 1)]),
        // ---- framing (D1): a broken first line does not swallow the valid lines after it
        c("first line is not JSON: the lines after it still count (D1)", format!("garbage\n{r1}\n{r2}\n").into_bytes(), 2, &[("not_json", 1)]),
        c("first line is not UTF-8: the lines after it still count (D1)", [b"\xff\xfe\n".as_slice(), format!("{r1}\n").as_bytes()].concat(), 1, &[("not_utf8", 1)]),
        c("a cut pretty-printed download is one invalid unit (D1)", {
            let items: Value = serde_json::from_str(&format!("[{r1},{r2}]")).expect("records are JSON");
            let pretty = serde_json::to_string_pretty(&items).expect("serialises");
            pretty.as_bytes()[..pretty.len() - 10].to_vec()
        }, 0, &[("truncated", 1)]),
        c("a pretty-printed array whose last item sits on one line falls back to lines (D1)", format!("[\n  {r1},\n  {r2}\n").into_bytes(), 1, &[("not_json", 1), ("truncated", 1)]),
        c("pretty-printed envelope cut short", pretty(&json!({"records": [Diag::new("t-1").value(), Diag::new("t-2").value()]}))[..600].to_vec(), 0, &[("truncated", 1)]),
        c("pretty-printed array followed by garbage", [pretty(&json!([graph_rec("p-3")])), b"\n]\n".to_vec()].concat(), 0, &[("not_json", 1)]),
        c("pretty-printed array with a non-record item", pretty(&json!([graph_rec("p-4"), 7, graph_rec("p-5")])), 2, &[("not_a_record", 1)]),
        c("pretty-printed single record", pretty(&Diag::new("p-6").value()), 1, &[]),
    ];
    // A first line of a document that is complete by itself stays NDJSON: the pretty-printed
    // array above only works because its first line is `[`.
    v.push(c(
        "a one-line array is NDJSON",
        format!("[{r1}]\n{r2}\n").into_bytes(),
        2,
        &[],
    ));
    v
}

fn expected_map(invalid: &[(&str, u64)]) -> Value {
    Value::Object(
        invalid
            .iter()
            .map(|(k, n)| (k.to_string(), json!(n)))
            .collect(),
    )
}

fn check(case: &Case, report: &Value, how: &str) -> Option<String> {
    let want_map = expected_map(&case.invalid);
    let want_total: u64 = case.invalid.iter().map(|(_, n)| n).sum();
    let mut got_map = report["input"]["invalid_by_reason"].clone();
    if let Some(m) = got_map.as_object_mut() {
        m.retain(|_, v| v.as_u64() != Some(0));
    }
    let got = (
        report["input"]["records"].as_u64(),
        report["input"]["invalid"].as_u64(),
        got_map.clone(),
    );
    let want = (Some(case.records), Some(want_total), want_map);
    (got != want).then(|| {
        format!(
            "{} ({how}): expected records {} invalid {} {}, got records {:?} invalid {:?} {}",
            case.name, case.records, want_total, want.2, got.0, got.1, got_map
        )
    })
}

#[test]
fn the_table_agrees_with_the_model() {
    let mut failures = Vec::new();
    for case in cases() {
        let model = reference::reference_of(&[&case.input]);
        failures.extend(check(&case, &model, "reference model"));
    }
    support::assert_no_failures("bad-input table vs reference model", &failures);
}

/// Runs `replay --format json` on every case, fed by `feed` (file, stdin, gzip), and checks
/// exit 0 and the counts.
fn run_every_case(how: &str, feed: impl Fn(&Case) -> (Vec<std::ffi::OsString>, Vec<u8>)) {
    let mut failures = Vec::new();
    for case in cases() {
        let (inputs, stdin) = feed(&case);
        let mut args: Vec<std::ffi::OsString> =
            vec!["replay".into(), "--format".into(), "json".into()];
        args.extend(inputs);
        let r = support::run(&args, &stdin);
        if r.code != Some(0) {
            failures.push(format!(
                "{} ({how}): exit {:?}, stderr: {}",
                case.name,
                r.code,
                r.stderr.trim()
            ));
            continue;
        }
        match serde_json::from_slice::<Value>(&r.stdout) {
            Ok(report) => failures.extend(check(&case, &report, how)),
            Err(e) => failures.push(format!("{} ({how}): stdout is not JSON: {e}", case.name)),
        }
    }
    support::assert_no_failures(&format!("bad input, {how}"), &failures);
}

#[test]
fn every_bad_input_case_from_a_file() {
    let files = std::cell::RefCell::new(Vec::new());
    run_every_case("file", |case| {
        let f = support::temp_file(&case.input);
        let path = f.path().as_os_str().to_owned();
        files.borrow_mut().push(f);
        (vec![path], Vec::new())
    });
}

#[test]
fn every_bad_input_case_on_stdin() {
    run_every_case("stdin", |case| (vec!["-".into()], case.input.clone()));
}

/// Every case gzip-compressed: the framing rules (BOM, blank lines, one document or NDJSON)
/// apply to the decompressed bytes.
#[test]
fn every_bad_input_case_gzipped() {
    let files = std::cell::RefCell::new(Vec::new());
    run_every_case("gzip file", |case| {
        let f = support::temp_file(&support::gzip(&case.input));
        let path = f.path().as_os_str().to_owned();
        files.borrow_mut().push(f);
        (vec![path], Vec::new())
    });
}

/// Each case together with good files: a bad file never hides another file's records.
#[test]
fn bad_files_next_to_good_files() {
    let good = reference::ndjson(&[rec("good-file-1"), rec("good-file-2")]);
    let g = support::temp_file(&good);
    let mut failures = Vec::new();
    for case in cases() {
        let f = support::temp_file(&case.input);
        let report = support::replay_files(&[g.path(), f.path(), g.path()], &[], case.name);
        // The good file twice: 2 records + 2 duplicates more than the case alone.
        let shifted = Case {
            name: case.name,
            input: Vec::new(),
            records: case.records + 4,
            invalid: case.invalid.clone(),
        };
        failures.extend(check(&shifted, &report, "between two good files"));
    }
    support::assert_no_failures("bad files next to good files", &failures);
}

fn random_megabytes() -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    let mut bytes = vec![0u8; 6 << 20];
    rng.fill_bytes(&mut bytes);
    bytes[0] = b'x'; // not the gzip magic, not a BOM: plain random bytes.
    bytes
}

/// The demand: no crash, no hang, exit 0, a report with no records.
#[test]
fn megabytes_of_random_bytes_on_stdin_exit_0() {
    let report = support::replay_stdin(&random_megabytes(), &[], "random bytes");
    assert_eq!(report["input"]["records"], json!(0));
    assert!(support::u64_at(&report, "/input/invalid") >= 1);
    assert_eq!(report["legacy"]["total"], json!(0));
}

/// And the exact counts the rules give.
#[test]
fn megabytes_of_random_bytes_on_stdin_counts() {
    let bytes = random_megabytes();
    let expected = reference::reference_of(&[&bytes]);
    // D1: the first line is not UTF-8, so the input is read as lines, each one invalid.
    assert!(support::u64_at(&expected, "/input/invalid") > 1000);
    assert_eq!(expected["input"]["records"], json!(0));
    let report = support::replay_stdin(&bytes, &[], "random bytes");
    support::assert_report(&report, &expected, "6 MiB of random bytes on stdin");
}

#[test]
fn random_byte_lines_after_a_valid_first_line() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(77);
    let mut bytes = rec("first-valid").into_bytes();
    bytes.push(b'\n');
    let mut noise = vec![0u8; 3 << 20];
    rng.fill_bytes(&mut noise);
    bytes.extend_from_slice(&noise);
    bytes.push(b'\n');
    bytes.extend_from_slice(rec("last-valid").as_bytes());
    let expected = reference::reference_of(&[&bytes]);
    assert_eq!(expected["input"]["records"], json!(2));
    let report = support::replay_stdin(&bytes, &[], "random lines");
    support::assert_report(
        &report,
        &expected,
        "3 MiB of random lines between two records",
    );
}

/// Lines of JSON-ish tokens: many syntax errors, truncations, scalars, non-records, bad times and
/// a few records, each line judged by the reference model.
#[test]
fn token_soup_lines_match_the_model() {
    const TOKENS: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\"id\"",
        "\"properties\"",
        "\"createdDateTime\"",
        "\"records\"",
        "\"value\"",
        "\"2024-05-01T10:00:00Z\"",
        "\"11/14/2025 1:48:53 AM\"",
        "\"clientAppUsed\"",
        "\"IMAP4\"",
        "\"userPrincipalName\"",
        "\"U\\u0040X.com\"",
        "1",
        "-",
        "0.5",
        "1e",
        "true",
        "nul",
        " ",
        "\\",
        "\"\\u00",
        "\"x\"",
        "\t",
        "{\"a\":",
        "\"time\"",
        "\"category\"",
        "\"SignInLogs\"",
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let mut lines = vec![rec("soup-first")];
    for i in 0..4000 {
        let n = rng.gen_range(1..24);
        let mut l = String::new();
        for _ in 0..n {
            l.push_str(TOKENS[rng.gen_range(0..TOKENS.len())]);
        }
        // Every so often a line that has a chance to be a record. Copies of one id share one
        // event time (as real duplicates do), or have none at all.
        if i % 7 == 0 {
            let id = rng.gen_range(0..500);
            let time = if rng.gen_ratio(1, 3) {
                ["\"bad\"", "5", "null"][rng.gen_range(0..3)].to_string()
            } else {
                format!(
                    "\"2024-05-01T{:02}:{:02}:00.1234567-02:00\"",
                    id % 24,
                    id % 60
                )
            };
            l = format!(
                "{{\"id\":\"soup-{id}\",\"createdDateTime\":{time},\"clientAppUsed\":\"IMAP4\",\"userPrincipalName\":\"u{}@x.com\",\"ipAddress\":\"10.0.0.{}\"}}",
                rng.gen_range(0..20),
                rng.gen_range(0..5),
            );
        }
        lines.push(l);
    }
    let bytes = reference::ndjson(&lines);
    let expected = reference::reference_of(&[&bytes]);
    let report = support::replay_stdin(&bytes, &[], "token soup");
    support::assert_report(&report, &expected, "token soup");
}
