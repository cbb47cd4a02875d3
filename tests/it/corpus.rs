//! Hand-checked expectations on the public corpus (`../shared/corpus/public`, read in place).
//!
//! The numbers below were counted by hand from the files (see SOURCES.md there):
//! - interactive_2rec: 2 SignInLogs records, Browser, error 0, 05:10:08.6816663 and 05:10:12.2444226.
//! - noninteractive_subset_3rec: 3 NonInteractiveUserSignInLogs records, Browser, no userAgent,
//!   05:10:10.7049258 .. 05:10:14.1875602.
//! - 5categories_raw: 5 records with THE SAME id `8a4de8b5-...` (one per category), so 1 unique
//!   (the first: SignInLogs) and 4 duplicates; createdDateTime 04:45:48.0729893-05:00.
//! - serviceprincipal_quirks: 1 ServicePrincipalSignInLogs record, clientAppUsed Unknown,
//!   createdDateTime 2025-11-14T01:46:16.4282975+00:00, `time` in US form.
//! - DERIVED envelope: the 2 + 3 records above in one `{"records":[...]}`.

use serde_json::{json, Value};

use crate::reference;
use crate::support::{self, corpus_bytes, corpus_path, temp_file};

const INTERACTIVE: &str = "elastic_eventhub_signinlogs_interactive_2rec.ndjson";
const NONINTERACTIVE: &str = "elastic_eventhub_noninteractive_subset_3rec.ndjson";
const FIVE_CATEGORIES: &str = "elastic_eventhub_signinlogs_5categories_raw.ndjson";
const SERVICE_PRINCIPAL: &str =
    "elastic_eventhub_serviceprincipal_quirks_string_duration_us_time.ndjson";
const ENVELOPE: &str = "DERIVED_eventhub_envelope_records_5rec.json";

fn no_legacy() -> Value {
    json!({"total": 0, "success": 0, "blocked": 0, "failure": 0, "users": 0, "ips": 0,
           "protocols": [], "top_users": [], "top_ips": [], "top_clients": []})
}

fn expectation(
    records: u64,
    duplicates: u64,
    by_category: Value,
    first: &str,
    last: &str,
) -> Value {
    json!({
        "schema": "signin-radar.report.v1",
        "input": {"records": records, "duplicates": duplicates, "invalid": 0,
                  "invalid_by_reason": {}, "by_category": by_category},
        "time": {"first": first, "last": last},
        "legacy": no_legacy(),
        "findings": [],
    })
}

/// (files, expected report): every file alone, and the combinations the issue names.
fn table() -> Vec<(Vec<&'static str>, Value)> {
    vec![
        (
            vec![INTERACTIVE],
            expectation(
                2,
                0,
                json!({"SignInLogs": 2}),
                "2022-01-24T05:10:08.6816663Z",
                "2022-01-24T05:10:12.2444226Z",
            ),
        ),
        (
            vec![NONINTERACTIVE],
            expectation(
                3,
                0,
                json!({"NonInteractiveUserSignInLogs": 3}),
                "2022-01-24T05:10:10.7049258Z",
                "2022-01-24T05:10:14.1875602Z",
            ),
        ),
        (
            vec![FIVE_CATEGORIES],
            expectation(
                5,
                4,
                json!({"SignInLogs": 1}),
                "2019-10-18T09:45:48.0729893Z",
                "2019-10-18T09:45:48.0729893Z",
            ),
        ),
        (
            vec![SERVICE_PRINCIPAL],
            expectation(
                1,
                0,
                json!({"ServicePrincipalSignInLogs": 1}),
                "2025-11-14T01:46:16.4282975Z",
                "2025-11-14T01:46:16.4282975Z",
            ),
        ),
        (
            vec![ENVELOPE],
            expectation(
                5,
                0,
                json!({"SignInLogs": 2, "NonInteractiveUserSignInLogs": 3}),
                "2022-01-24T05:10:08.6816663Z",
                "2022-01-24T05:10:14.1875602Z",
            ),
        ),
        (
            vec![INTERACTIVE, NONINTERACTIVE],
            expectation(
                5,
                0,
                json!({"SignInLogs": 2, "NonInteractiveUserSignInLogs": 3}),
                "2022-01-24T05:10:08.6816663Z",
                "2022-01-24T05:10:14.1875602Z",
            ),
        ),
        (
            vec![INTERACTIVE, NONINTERACTIVE, ENVELOPE],
            expectation(
                10,
                5,
                json!({"SignInLogs": 2, "NonInteractiveUserSignInLogs": 3}),
                "2022-01-24T05:10:08.6816663Z",
                "2022-01-24T05:10:14.1875602Z",
            ),
        ),
        (
            vec![
                INTERACTIVE,
                NONINTERACTIVE,
                FIVE_CATEGORIES,
                SERVICE_PRINCIPAL,
                ENVELOPE,
            ],
            expectation(
                16,
                9,
                json!({"SignInLogs": 3, "NonInteractiveUserSignInLogs": 3, "ServicePrincipalSignInLogs": 1}),
                "2019-10-18T09:45:48.0729893Z",
                "2025-11-14T01:46:16.4282975Z",
            ),
        ),
    ]
}

#[test]
fn corpus_table_agrees_with_the_model() {
    for (files, expected) in table() {
        let bytes: Vec<Vec<u8>> = files.iter().map(|f| corpus_bytes(f)).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
        let model = reference::reference_of(&refs);
        assert_eq!(model, expected, "reference model on {files:?}");
    }
}

#[test]
fn corpus_files_hand_checked() {
    let mut failures = Vec::new();
    for (files, expected) in table() {
        let paths: Vec<_> = files.iter().map(|f| corpus_path(f)).collect();
        let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
        let actual = support::replay_files(&refs, &[], &format!("{files:?}"));
        if let Err(e) = support::compare_report(&actual, &expected, &format!("{files:?}")) {
            failures.push(e);
        }
    }
    support::assert_no_failures("corpus", &failures);
}

#[test]
fn the_two_interactive_records_are_browser_so_nothing_is_legacy() {
    let actual = support::replay_files(&[&corpus_path(INTERACTIVE)], &[], INTERACTIVE);
    assert_eq!(actual["legacy"]["total"], json!(0), "{}", actual["legacy"]);
    assert_eq!(actual["input"]["by_category"]["SignInLogs"], json!(2));
}

#[test]
fn the_envelope_equals_the_two_ndjson_files() {
    let env = support::replay_files(&[&corpus_path(ENVELOPE)], &[], "envelope");
    let nd = support::replay_files(
        &[&corpus_path(INTERACTIVE), &corpus_path(NONINTERACTIVE)],
        &[],
        "2rec + 3rec",
    );
    assert_eq!(
        support::contract_only(&env),
        support::contract_only(&nd),
        "envelope vs the two NDJSON files"
    );
    assert_eq!(env["input"]["records"], json!(5));
}

/// The same input read from stdin and gzip-compressed gives the same report.
#[test]
fn corpus_through_stdin_and_gzip() {
    let bytes = corpus_bytes(ENVELOPE);
    let expected = table()
        .into_iter()
        .find(|(f, _)| f == &vec![ENVELOPE])
        .unwrap()
        .1;
    support::assert_report(
        &support::replay_stdin(&bytes, &[], "stdin"),
        &expected,
        "envelope on stdin",
    );
    support::assert_report(
        &support::replay_stdin(&support::gzip(&bytes), &[], "gz"),
        &expected,
        "gzip envelope on stdin",
    );
    let f = temp_file(&support::gzip(&bytes));
    support::assert_report(
        &support::replay_files(&[f.path()], &[], "gz file"),
        &expected,
        "gzip envelope file",
    );
}

fn interactive_lines() -> Vec<String> {
    String::from_utf8(corpus_bytes(INTERACTIVE))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn replace_once(line: &str, from: &str, to: &str) -> String {
    assert_eq!(
        line.matches(from).count(),
        1,
        "the corpus line must hold {from:?} exactly once"
    );
    line.replacen(from, to, 1)
}

const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/97.0.4692.99 Safari/537.36 Edg/97.0.1072.69";

/// A real record turned into a legacy one: IMAP4, and the UPN escaped and in mixed case.
#[test]
fn a_corpus_record_edited_into_imap4_is_legacy() {
    let mut lines = interactive_lines();
    lines[0] = replace_once(
        &lines[0],
        "\"clientAppUsed\":\"Browser\"",
        "\"clientAppUsed\":\"IMAP4\"",
    );
    lines[0] = replace_once(
        &lines[0],
        "\"userPrincipalName\":\"mpliftrelastic20210901@outlook.com\"",
        "\"userPrincipalName\":\"MpLiftrElastic20210901\\u0040Outlook.COM\"",
    );
    let data = reference::ndjson(&lines);
    let expected_legacy = json!({
        "total": 1, "success": 1, "blocked": 0, "failure": 0, "users": 1, "ips": 1,
        "protocols": [{"protocol": "IMAP4", "total": 1, "success": 1, "blocked": 0, "failure": 0, "users": 1, "ips": 1}],
        "top_users": [{"user": "mpliftrelastic20210901@outlook.com", "total": 1, "success": 1, "blocked": 0,
                       "failure": 0, "protocols": ["IMAP4"]}],
        "top_ips": [{"ip": "1.128.3.4", "total": 1, "users": 1, "success": 1, "blocked": 0, "failure": 0}],
        "top_clients": [{"client": UA, "total": 1}],
    });
    assert_edited_interactive(&data, expected_legacy, "corpus record edited to IMAP4");
}

/// The interactive file's report with `legacy` replaced: from the model, from a file and from
/// stdin.
fn assert_edited_interactive(data: &[u8], legacy: Value, what: &str) {
    let mut expected = table()
        .into_iter()
        .find(|(f, _)| f == &vec![INTERACTIVE])
        .unwrap()
        .1;
    expected["legacy"] = legacy;
    assert_eq!(
        reference::reference_of(&[data]),
        expected,
        "reference model"
    );
    let f = temp_file(data);
    support::assert_report(
        &support::replay_files(&[f.path()], &[], what),
        &expected,
        what,
    );
    support::assert_report(&support::replay_stdin(data, &[], what), &expected, what);
}

/// The same edit with error 53003 (blocked by Conditional Access) and 50126 (bad password).
#[test]
fn edited_corpus_records_blocked_and_failed() {
    let mut lines = interactive_lines();
    for (i, code) in [(0usize, "53003"), (1, "50126")] {
        lines[i] = replace_once(
            &lines[i],
            "\"clientAppUsed\":\"Browser\"",
            "\"clientAppUsed\":\"Exchange ActiveSync\"",
        );
        lines[i] = replace_once(
            &lines[i],
            "\"status\":{\"errorCode\":0}",
            &format!("\"status\":{{\"errorCode\":{code}}}"),
        );
    }
    let data = reference::ndjson(&lines);
    let expected_legacy = json!({
        "total": 2, "success": 0, "blocked": 1, "failure": 1, "users": 1, "ips": 1,
        "protocols": [{"protocol": "Exchange ActiveSync", "total": 2, "success": 0, "blocked": 1, "failure": 1, "users": 1, "ips": 1}],
        "top_users": [{"user": "mpliftrelastic20210901@outlook.com", "total": 2, "success": 0, "blocked": 1,
                       "failure": 1, "protocols": ["Exchange ActiveSync"]}],
        "top_ips": [{"ip": "1.128.3.4", "total": 2, "users": 1, "success": 0, "blocked": 1, "failure": 1}],
        "top_clients": [{"client": UA, "total": 2}],
    });
    assert_edited_interactive(&data, expected_legacy, "blocked and failed EAS");
}

/// Service principals, Microsoft service principals and managed identities are never legacy,
/// even with a legacy clientAppUsed: the 5-categories file with distinct ids, all IMAP4.
#[test]
fn workload_categories_are_never_legacy() {
    let text = String::from_utf8(corpus_bytes(FIVE_CATEGORIES)).unwrap();
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = replace_once(
                l,
                "\"id\":\"8a4de8b5-095c-47d0-a96f-a75130c61d53\"",
                &format!("\"id\":\"edited-{i}\""),
            );
            replace_once(
                &l,
                "\"clientAppUsed\":\"Browser\"",
                "\"clientAppUsed\":\"IMAP4\"",
            )
        })
        .collect();
    let data = reference::ndjson(&lines);
    // SignInLogs (test@elastic.co) and NonInteractive (a GUID UPN) are legacy; error 50140; no
    // userAgent, so the client is "" (D17).
    let expected = json!({
        "schema": "signin-radar.report.v1",
        "input": {"records": 5, "duplicates": 0, "invalid": 0, "invalid_by_reason": {},
                  "by_category": {"SignInLogs": 1, "NonInteractiveUserSignInLogs": 1,
                                  "ServicePrincipalSignInLogs": 1, "MicrosoftServicePrincipalSignInLogs": 1,
                                  "ManagedIdentitySignInLogs": 1}},
        "time": {"first": "2019-10-18T09:45:48.0729893Z", "last": "2019-10-18T09:45:48.0729893Z"},
        "legacy": {
            "total": 2, "success": 0, "blocked": 0, "failure": 2, "users": 2, "ips": 1,
            "protocols": [{"protocol": "IMAP4", "total": 2, "success": 0, "blocked": 0, "failure": 2, "users": 2, "ips": 1}],
            "top_users": [
                {"user": "c3813493-bf92-5123-2717-8a8b2979c38b", "total": 1, "success": 0, "blocked": 0, "failure": 1, "protocols": ["IMAP4"]},
                {"user": "test@elastic.co", "total": 1, "success": 0, "blocked": 0, "failure": 1, "protocols": ["IMAP4"]},
            ],
            "top_ips": [{"ip": "81.2.69.144", "total": 2, "users": 2, "success": 0, "blocked": 0, "failure": 2}],
            "top_clients": [{"client": "", "total": 2}],
        },
        "findings": [],
    });
    assert_eq!(
        reference::reference_of(&[&data]),
        expected,
        "reference model"
    );
    support::assert_report(
        &support::replay_stdin(&data, &[], "workloads"),
        &expected,
        "workload categories",
    );
}

/// The service-principal record's quirks: string durationMs, lowercase `level`, and a `time` in
/// the US form, used when createdDateTime is absent.
#[test]
fn us_form_time_is_read_when_created_date_time_is_absent() {
    let text = String::from_utf8(corpus_bytes(SERVICE_PRINCIPAL)).unwrap();
    let line = text.lines().next().unwrap();
    let cases = [
        (
            "as is: createdDateTime wins",
            line.to_string(),
            "2025-11-14T01:46:16.4282975Z",
        ),
        (
            "createdDateTime removed: `time` 11/14/2025 1:48:53 AM",
            replace_once(
                line,
                "\"createdDateTime\":\"2025-11-14T01:46:16.4282975+00:00\",",
                "",
            ),
            "2025-11-14T01:48:53Z",
        ),
        (
            "createdDateTime removed, PM",
            replace_once(
                line,
                "\"createdDateTime\":\"2025-11-14T01:46:16.4282975+00:00\",",
                "",
            )
            .replace("1:48:53 AM", "1:48:53 PM"),
            "2025-11-14T13:48:53Z",
        ),
    ];
    let mut failures = Vec::new();
    for (name, line, time) in cases {
        let data = reference::ndjson(&[line]);
        let mut expected = table()
            .into_iter()
            .find(|(f, _)| f == &vec![SERVICE_PRINCIPAL])
            .unwrap()
            .1;
        expected["time"] = json!({"first": time, "last": time});
        assert_eq!(
            reference::reference_of(&[&data]),
            expected,
            "reference model: {name}"
        );
        if let Err(e) =
            support::compare_report(&support::replay_stdin(&data, &[], name), &expected, name)
        {
            failures.push(e);
        }
    }
    support::assert_no_failures("US time form", &failures);
}

/// A service principal with a legacy client app is still not legacy (the quirks record).
#[test]
fn the_service_principal_record_with_imap4_is_not_legacy() {
    let text = String::from_utf8(corpus_bytes(SERVICE_PRINCIPAL)).unwrap();
    let line = replace_once(
        text.lines().next().unwrap(),
        "\"clientAppUsed\":\"Unknown\"",
        "\"clientAppUsed\":\"IMAP4\"",
    );
    let report = support::replay_stdin(line.as_bytes(), &[], "sp imap4");
    assert_eq!(report["legacy"]["total"], json!(0), "{}", report["legacy"]);
    assert_eq!(report["input"]["records"], json!(1));
}
