//! The command line: exit codes and messages, `--top`, `--format table`, `--retention`, `--threads`.

use serde_json::{json, Value};

use crate::reference::{self, Diag, Options};
use crate::support::{self, run, temp_file};

fn a_good_file() -> tempfile::NamedTempFile {
    temp_file(&reference::ndjson(&[Diag::new("cli-1")
        .app("IMAP4")
        .line()]))
}

// ---- exit 2 -----------------------------------------------------------------------------------

#[test]
fn a_missing_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-signins.ndjson");
    let good = a_good_file();
    let cases: Vec<(&str, Vec<std::ffi::OsString>)> = vec![
        ("alone", vec![missing.clone().into()]),
        (
            "after a good file",
            vec![good.path().into(), missing.clone().into()],
        ),
        (
            "before a good file",
            vec![missing.clone().into(), good.path().into()],
        ),
    ];
    let mut failures = Vec::new();
    for (name, files) in cases {
        for format in ["json", "table"] {
            let mut args: Vec<std::ffi::OsString> =
                vec!["replay".into(), "--format".into(), format.into()];
            args.extend(files.iter().cloned());
            let r = run(&args, b"");
            if r.code != Some(2) || !r.stderr.contains("no-such-signins.ndjson") {
                failures.push(format!("missing file {name}, --format {format}: want exit 2 and the file named on stderr\n{}", r.describe()));
            }
        }
    }
    support::assert_no_failures("missing files", &failures);
}

/// Paths that cannot be opened: exit 2 naming them (D25).
#[test]
fn an_unreadable_path_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file.ndjson");
    std::fs::write(&file, Diag::new("u-1").line()).unwrap();
    let through_a_file = file.join("child-of-a-file.ndjson");
    let dangling = dir.path().join("dangling-link.ndjson");
    std::os::unix::fs::symlink(dir.path().join("gone.ndjson"), &dangling).unwrap();
    let mut failures = Vec::new();
    for (path, word) in [
        (&through_a_file, "child-of-a-file.ndjson"),
        (&dangling, "dangling-link.ndjson"),
    ] {
        let r = run(
            &[
                "replay".as_ref(),
                "--format".as_ref(),
                "json".as_ref(),
                file.as_os_str(),
                path.as_os_str(),
            ],
            b"",
        );
        if r.code != Some(2) || !r.stderr.contains(word) {
            failures.push(format!(
                "{}: want exit 2 naming it\n{}",
                path.display(),
                r.describe()
            ));
        }
    }
    support::assert_no_failures("unreadable paths", &failures);
}

/// (arguments, a word stderr must contain): each exits 2.
const BAD_ARGS: &[(&[&str], &str)] = &[
    (&["replay", "--format", "xml", "-"], "xml"),
    (&["replay", "--top", "abc", "-"], "abc"),
    (&["replay", "--top", "-3", "-"], "-3"),
    (&["replay", "--retention", "banana", "-"], "banana"),
    (&["replay", "--threads", "many", "-"], "many"),
    (&["replay", "--bogus-flag", "-"], "--bogus-flag"),
    (&["replay", "--format"], "--format"),
    (&["frobnicate"], "frobnicate"),
];

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let mut failures = Vec::new();
    for (args, word) in BAD_ARGS {
        let r = run(args, b"");
        if r.code != Some(2) || !r.stderr.contains(word) || !r.stdout.is_empty() {
            failures.push(format!(
                "{args:?}: want exit 2, nothing on stdout and {word:?} on stderr\n{}",
                r.describe()
            ));
        }
    }
    support::assert_no_failures("bad arguments", &failures);
}

// ---- --top --------------------------------------------------------------------------------------

/// 14 legacy users, IPs and clients with distinct totals (user k has k+1 sign-ins).
fn fourteen_users() -> Vec<u8> {
    let mut lines = Vec::new();
    for k in 0..14 {
        for j in 0..=k {
            let app = if j % 2 == 0 { "IMAP4" } else { "POP3" };
            lines.push(
                Diag::new(&format!("top-{k}-{j}"))
                    .upn(&format!("user{k:02}@contoso.com"))
                    .ip(&format!("10.1.0.{k}"))
                    .ua(Some(&format!("client-{k:02}")))
                    .app(app)
                    .line(),
            );
        }
    }
    reference::ndjson(&lines)
}

#[test]
fn top_limits_the_three_lists_and_defaults_to_10() {
    let data = fourteen_users();
    let f = temp_file(&data);
    // (--top argument, expected list length)
    let rows: &[(Option<&str>, usize, Option<usize>)] = &[
        (None, 10, None),
        (Some("1"), 1, Some(1)),
        (Some("3"), 3, Some(3)),
        (Some("14"), 14, Some(14)),
        (Some("50"), 14, Some(50)),
    ];
    let mut failures = Vec::new();
    for (arg, len, top) in rows {
        let extra: Vec<&str> = arg.map(|a| vec!["--top", a]).unwrap_or_default();
        let actual = support::replay_files(&[f.path()], &extra, "top");
        let expected = reference::reference_report(
            &[&data],
            &Options {
                top: *top,
                retention: None,
            },
        );
        for list in ["top_users", "top_ips", "top_clients"] {
            let got = actual["legacy"][list].as_array().map(Vec::len);
            if got != Some(*len) {
                failures.push(format!(
                    "--top {arg:?}: {list} has {got:?} entries, want {len}"
                ));
            }
        }
        // protocols is never cut
        if actual["legacy"]["protocols"].as_array().map(Vec::len) != Some(2) {
            failures.push(format!(
                "--top {arg:?}: protocols must list IMAP4 and POP3: {}",
                actual["legacy"]["protocols"]
            ));
        }
        if let Err(e) = support::compare_report(&actual, &expected, &format!("--top {arg:?}")) {
            failures.push(e);
        }
    }
    support::assert_no_failures("--top", &failures);
}

#[test]
fn top_lists_start_with_the_heaviest() {
    let data = fourteen_users();
    let actual = support::replay_stdin(&data, &["--top", "2"], "top 2");
    assert_eq!(
        actual["legacy"]["top_users"][0]["user"],
        json!("user13@contoso.com")
    );
    assert_eq!(actual["legacy"]["top_users"][0]["total"], json!(14));
    assert_eq!(
        actual["legacy"]["top_users"][1]["user"],
        json!("user12@contoso.com")
    );
    assert_eq!(actual["legacy"]["top_ips"][0]["ip"], json!("10.1.0.13"));
    assert_eq!(
        actual["legacy"]["top_clients"][0],
        json!({"client": "client-13", "total": 14})
    );
}

// ---- --format table ---------------------------------------------------------------------------

fn table_data() -> Vec<u8> {
    reference::ndjson(&[
        Diag::new("t-1")
            .app("IMAP4")
            .upn("imap.user@contoso.com")
            .code(0)
            .line(),
        Diag::new("t-2")
            .app("IMAP4")
            .upn("imap.user@contoso.com")
            .code(0)
            .line(),
        Diag::new("t-3")
            .app("POP3")
            .upn("pop.user@contoso.com")
            .ip("198.51.100.23")
            .code(50126)
            .line(),
        Diag::new("t-4")
            .app("Exchange ActiveSync")
            .upn("eas.user@contoso.com")
            .code(53003)
            .line(),
        Diag::new("t-5")
            .app("Browser")
            .upn("modern.user@contoso.com")
            .line(),
    ])
}

/// (protocol, [attempts, successes, blocked, failed, users, IPs]) for `table_data`.
const PROTOCOL_ROWS: [(&str, [u64; 6]); 3] = [
    ("IMAP4", [2, 2, 0, 0, 1, 1]),
    ("Exchange ActiveSync", [1, 0, 1, 0, 1, 1]),
    ("POP3", [1, 0, 0, 1, 1, 1]),
];

#[test]
fn table_format_names_protocols_users_and_ips() {
    let f = temp_file(&table_data());
    let mut failures = Vec::new();
    for args in [vec!["replay", "--format", "table"], vec!["replay"]] {
        let mut a: Vec<std::ffi::OsString> = args.iter().map(|s| s.into()).collect();
        a.push(f.path().into());
        let r = run(&a, b"");
        let out = r.stdout_str();
        if r.code != Some(0) {
            failures.push(format!("{args:?}: exit\n{}", r.describe()));
            continue;
        }
        if serde_json::from_str::<Value>(&out).is_ok() {
            failures.push(format!(
                "{args:?}: the table must not be the JSON report (default format is table, D24)"
            ));
        }
        for word in [
            "IMAP4",
            "POP3",
            "Exchange ActiveSync",
            "imap.user@contoso.com",
            "198.51.100.23",
        ] {
            if !out.contains(word) {
                failures.push(format!(
                    "{args:?}: the table does not mention {word:?}\n{out}"
                ));
            }
        }
        if out.contains("modern.user@contoso.com") {
            failures.push(format!(
                "{args:?}: a modern-only user is listed as a legacy user\n{out}"
            ));
        }
        // One row per protocol, in the issue's order: attempts, successes, blocked, failed,
        // distinct users, distinct IPs.
        for (proto, want) in PROTOCOL_ROWS {
            let rows: Vec<Vec<u64>> = out
                .lines()
                .filter_map(|l| l.trim_start().strip_prefix(proto))
                .map(|rest| rest.split_whitespace().map(|w| w.parse::<u64>()).collect())
                .filter_map(Result::ok)
                .filter(|v: &Vec<u64>| !v.is_empty())
                .collect();
            if !rows.iter().any(|r| r[..] == want[..]) {
                failures.push(format!(
                    "{args:?}: no table row `{proto} {want:?}`; rows found: {rows:?}\n{out}"
                ));
            }
        }
    }
    support::assert_no_failures("table", &failures);
}

// ---- --retention ------------------------------------------------------------------------------

/// Legacy sign-ins 5 hours before the end (POP3, old.user) and in the last 20 minutes (IMAP4,
/// new.user). The latest record of the input is a legacy one at 12:00:00.
fn retention_data() -> Vec<u8> {
    let mut lines = Vec::new();
    for (i, t) in [
        "2024-05-01T06:55:00Z",
        "2024-05-01T07:00:00Z",
        "2024-05-01T07:05:30Z",
    ]
    .iter()
    .enumerate()
    {
        lines.push(
            Diag::new(&format!("old-{i}"))
                .time(t)
                .app("POP3")
                .upn("old.user@contoso.com")
                .ip("192.0.2.50")
                .line(),
        );
    }
    // Modern sign-ins between: never legacy, but part of `input` and `time`.
    lines.push(
        Diag::new("modern-1")
            .time("2024-05-01T09:00:00Z")
            .app("Browser")
            .line(),
    );
    for (i, t) in [
        "2024-05-01T11:40:00Z",
        "2024-05-01T11:50:10Z",
        "2024-05-01T12:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        lines.push(
            Diag::new(&format!("new-{i}"))
                .time(t)
                .app("IMAP4")
                .upn("new.user@contoso.com")
                .ip("192.0.2.60")
                .code(50126)
                .line(),
        );
    }
    reference::ndjson(&lines)
}

#[test]
fn retention_keeps_only_the_last_d_of_event_time() {
    let data = retention_data();
    let f = temp_file(&data);
    const H: i128 = 3_600_000_000_000;
    // (--retention, the same in ns, legacy total, protocols)
    type Row<'a> = (Option<&'a str>, Option<i128>, u64, &'a [&'a str]);
    let rows: &[Row] = &[
        (None, None, 6, &["IMAP4", "POP3"]),
        (Some("24h"), Some(24 * H), 6, &["IMAP4", "POP3"]),
        (Some("6h"), Some(6 * H), 6, &["IMAP4", "POP3"]),
        (Some("1h"), Some(H), 3, &["IMAP4"]),
        (Some("30m"), Some(H / 2), 3, &["IMAP4"]),
        (Some("15m"), Some(H / 4), 2, &["IMAP4"]),
        (Some("1d"), Some(24 * H), 6, &["IMAP4", "POP3"]),
        (Some("3600s"), Some(H), 3, &["IMAP4"]),
    ];
    let mut failures = Vec::new();
    for (arg, ns, total, protocols) in rows {
        let extra: Vec<&str> = arg.map(|a| vec!["--retention", a]).unwrap_or_default();
        let expected = reference::reference_report(
            &[&data],
            &Options {
                top: None,
                retention: *ns,
            },
        );
        assert_eq!(
            expected["legacy"]["total"],
            json!(total),
            "model, --retention {arg:?}"
        );
        let names: Vec<Value> = protocols.iter().map(|p| json!(p)).collect();
        let model_names: Vec<Value> = expected["legacy"]["protocols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["protocol"].clone())
            .collect();
        assert_eq!(model_names, names, "model, --retention {arg:?}");
        // The window restricts `legacy` only: `input` and `time` still cover everything (D21).
        assert_eq!(expected["input"]["records"], json!(7));
        assert_eq!(expected["time"]["first"], json!("2024-05-01T06:55:00Z"));
        let actual = support::replay_files(&[f.path()], &extra, "retention");
        if let Err(e) = support::compare_report(&actual, &expected, &format!("--retention {arg:?}"))
        {
            failures.push(e);
        }
    }
    support::assert_no_failures("--retention", &failures);
}

// ---- --threads and stdin ----------------------------------------------------------------------

#[test]
fn threads_do_not_change_the_report() {
    let a = support::synth("ndjson", 2000, 300, 61);
    let b = support::synth("envelope", 2000, 300, 62);
    let (fa, fb) = (temp_file(&a), temp_file(&b));
    let expected = reference::reference_of(&[&a, &b]);
    let mut failures = Vec::new();
    for threads in ["1", "2", "3", "8"] {
        let actual =
            support::replay_files(&[fa.path(), fb.path()], &["--threads", threads], threads);
        if let Err(e) = support::compare_report(&actual, &expected, &format!("--threads {threads}"))
        {
            failures.push(e);
        }
    }
    support::assert_no_failures("--threads", &failures);
}

#[test]
fn stdin_dash_reads_standard_input() {
    let data = retention_data();
    let expected = reference::reference_of(&[&data]);
    support::assert_report(
        &support::replay_stdin(&data, &[], "stdin"),
        &expected,
        "replay -",
    );
}

/// A directory is read recursively, hidden entries skipped: the same report as its files.
#[test]
fn a_directory_reads_its_files_recursively() {
    let a = support::synth("ndjson", 500, 100, 71);
    let b = support::synth("graph", 500, 100, 72);
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("y=2026").join("m=11");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(dir.path().join("PT1H.json"), &a).unwrap();
    std::fs::write(nested.join("PT1H.json"), &b).unwrap();
    // Hidden files (editor swap files, .DS_Store) are not logs.
    std::fs::write(dir.path().join(".hidden"), b"not json at all\n").unwrap();
    let expected = reference::reference_of(&[&a, &b]);
    support::assert_report(
        &support::replay_files(&[dir.path()], &[], "directory"),
        &expected,
        "a directory",
    );

    let empty = tempfile::tempdir().unwrap();
    let r = run(&["replay".as_ref(), empty.path().as_os_str()], b"");
    assert_eq!(r.code, Some(2), "an empty directory: {}", r.stderr);
    assert!(
        r.stderr.contains(&empty.path().display().to_string()),
        "the message names the directory: {}",
        r.stderr
    );
}

/// A gzip file cut short: what was read counts, the break is one `truncated` unit with a
/// warning, and the run still exits 0.
#[test]
fn a_cut_gzip_file_keeps_what_was_read() {
    let data = support::synth("ndjson", 3000, 300, 73);
    let gz = support::gzip(&data);
    let f = temp_file(&gz[..gz.len() * 2 / 3]);
    let r = run(
        &[
            "replay".as_ref(),
            "--format".as_ref(),
            "json".as_ref(),
            f.path().as_os_str(),
        ],
        b"",
    );
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    assert!(r.stderr.contains("ended early"), "warning: {}", r.stderr);
    let report: Value = serde_json::from_slice(&r.stdout).unwrap();
    let records = support::u64_at(&report, "/input/records");
    assert!(
        records > 1000 && records < 3000,
        "the records before the cut count: {records}"
    );
    assert_eq!(report["input"]["invalid_by_reason"]["truncated"], json!(1));

    // A cut gzip of one pretty-printed document: that document is the one truncated unit.
    let portal = support::gzip(&support::synth("portal", 300, 50, 74));
    let f = temp_file(&portal[..portal.len() / 2]);
    let report = support::replay_files(&[f.path()], &[], "cut portal gzip");
    assert_eq!(report["input"]["records"], json!(0));
    assert_eq!(report["input"]["invalid"], json!(1));
    assert_eq!(report["input"]["invalid_by_reason"]["truncated"], json!(1));
}

/// `check-config`: a good file prints the effective settings (environment applied, secrets
/// redacted) and exits 0; a bad one lists every problem and exits 2.
#[test]
fn check_config_explains_every_problem() {
    let good = temp_file(
        b"source = \"eventhubs\"\nretention = \"6h\"\neventhubs_connection_string = \"Endpoint=sb://x/;SharedAccessKey=hunter2;EntityPath=h\"\n",
    );
    let r = std::process::Command::new(support::bin())
        .args(["check-config".as_ref(), good.path().as_os_str()])
        .env("SIGNIN_RADAR_RETENTION", "12h")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        out.contains("retention = \"12h\""),
        "environment wins: {out}"
    );
    assert!(
        out.contains("<redacted>") && !out.contains("hunter2"),
        "{out}"
    );

    let bad =
        temp_file(b"retention = \"5y\"\nlisten = \"9464\"\nretenton = 1\nmax_keys = \"many\"\n");
    let r = run(&["check-config".as_ref(), bad.path().as_os_str()], b"");
    assert_eq!(r.code, Some(2));
    for word in ["4 problems", "retention", "listen", "retenton", "max_keys"] {
        assert!(r.stderr.contains(word), "{word} missing: {}", r.stderr);
    }

    let r = run(&["check-config", "/no/such/signin-radar.toml"], b"");
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("/no/such/signin-radar.toml"),
        "{}",
        r.stderr
    );
}

/// The README's configuration example is a valid configuration.
#[test]
fn the_readme_config_example_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```toml\n").expect("README has a toml example") + "```toml\n".len();
    let len = readme[start..].find("```").unwrap();
    let f = temp_file(&readme.as_bytes()[start..start + len]);
    let r = run(&["check-config".as_ref(), f.path().as_os_str()], b"");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}
