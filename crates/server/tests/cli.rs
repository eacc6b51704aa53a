//! The administration command line against the real binary, on temporary
//! data directories: what each command prints, its exit code, and what it
//! leaves in the database. No server runs unless a test says so.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use switchboard_store::archive::{Archive as _, NewArchiveRecord};
use switchboard_store::sqlite::SqliteArchive;

/// A data directory in a temporary directory, and the binary run on it.
struct Sb {
    dir: tempfile::TempDir,
}

impl Sb {
    /// An empty temporary directory used as the data directory.
    fn new() -> Sb {
        Sb {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A data directory serving `example.test` with these users.
    fn with_users(users: &[&str]) -> Sb {
        let sb = Sb::new();
        sb.ok(&["domain", "add", "example.test"]);
        for u in users {
            sb.ok_stdin(
                &[
                    "user",
                    "add",
                    &format!("{u}@example.test"),
                    "--password-stdin",
                ],
                "correct horse\n",
            );
        }
        sb
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        run_on(self.data(), args, None)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "switchboard {args:?}: {}", all(&o));
        stdout(&o)
    }

    fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        let o = run_on(self.data(), args, Some(input));
        assert!(o.status.success(), "switchboard {args:?}: {}", all(&o));
        stdout(&o)
    }

    /// Runs a command that must fail with exit code 1; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "switchboard {args:?}: {}",
            all(&o)
        );
        stderr(&o)
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
    }
}

/// Runs the binary with `--data data`, no inherited SWITCHBOARD_* variables.
fn run_on(data: &Path, args: &[&str], input: Option<&str>) -> Output {
    let mut cmd = Command::new(support::binary());
    cmd.arg("--data")
        .arg(data)
        .args(args)
        .env_remove("SWITCHBOARD_DATA")
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match input {
        None => {
            cmd.stdin(Stdio::null());
            cmd.output().expect("run switchboard")
        }
        Some(text) => {
            use std::io::Write;
            cmd.stdin(Stdio::piped());
            let mut child = cmd.spawn().expect("run switchboard");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write stdin");
            child.wait_with_output().expect("wait")
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn all(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// Milliseconds since 1970, now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One archived message from alice to bob at `at_ms`.
fn message(conversation: &str, at_ms: i64, text: &str) -> NewArchiveRecord {
    NewArchiveRecord {
        conversation: conversation.into(),
        kind: "message".into(),
        at_ms,
        sender: "alice@example.test".into(),
        participants: vec!["bob@example.test".into()],
        content_type: "text/plain".into(),
        body: text.as_bytes().to_vec(),
        text: text.into(),
        outcome: "delivered".into(),
        external: false,
    }
}

/// Appends records to `DATA/archive.db` (created if missing), as the
/// server's archiver does; returns their `seq`s.
async fn archive(data: &Path, records: &[NewArchiveRecord]) -> Vec<i64> {
    let archive = SqliteArchive::open(&data.join("archive.db"))
        .await
        .expect("open archive.db");
    let seqs = archive.append_archive(records).await.expect("append");
    archive.close().await;
    seqs
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

// ---------------------------------------------------------------------------
// Help and configuration
// ---------------------------------------------------------------------------

#[test]
fn top_level_help_describes_switchboard_for_users() {
    let sb = Sb::new();
    let out = sb.ok(&["--help"]);
    let first = out.lines().next().unwrap_or_default();
    assert_eq!(
        first, "Switchboard: enterprise instant messaging and presence server (SIP)",
        "{out}"
    );
    assert!(
        !out.contains("crate") && !out.contains("roles, transports"),
        "no internal description: {out}"
    );
}

#[test]
fn config_check_reports_a_missing_file_once() {
    let sb = Sb::new();
    let missing = sb.data().join("nowhere.toml");
    let o = sb.run(&["config", "check", &missing.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1), "{}", all(&o));
    let err = stderr(&o);
    assert_eq!(
        err.trim_end(),
        format!(
            "switchboard: cannot read {}: No such file or directory (os error 2)",
            missing.display()
        ),
        "{err}"
    );
}

#[test]
fn config_check_validates_the_log_level() {
    let sb = Sb::new();
    let good = write(
        sb.data(),
        "good.toml",
        "[log]\nlevel = \"switchboard=debug,sqlx=warn\"\n",
    );
    let out = sb.ok(&["config", "check", &good.to_string_lossy()]);
    assert!(out.ends_with(": OK\n"), "{out}");
    let bad = write(
        sb.data(),
        "bad.toml",
        "[log]\nlevel = \"info,sqlx=chatty\"\n",
    );
    let err = sb.fails(&["config", "check", &bad.to_string_lossy()]);
    assert!(
        err.contains("key `log.level`") && err.contains("`sqlx=chatty`"),
        "{err}"
    );
    // `serve` refuses it too (before opening or creating anything).
    let data = sb.data().join("data");
    let o = Command::new(support::binary())
        .arg("--data")
        .arg(&data)
        .arg("--config")
        .arg(&bad)
        .args([
            "serve",
            "--sip-udp",
            "127.0.0.1:0",
            "--sip-tcp",
            "",
            "--sip-tls",
            "",
            "--http",
            "",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("serve");
    assert_eq!(o.status.code(), Some(1), "{}", all(&o));
    assert!(stderr(&o).contains("log.level"), "{}", all(&o));
    assert!(!data.exists(), "nothing created for a bad configuration");
}

// ---------------------------------------------------------------------------
// Domains, users, contacts
// ---------------------------------------------------------------------------

#[test]
fn empty_lists_say_so_like_user_list() {
    let sb = Sb::new();
    // A data directory whose database holds nothing.
    sb.ok(&["domain", "add", "example.test"]);
    sb.ok(&["domain", "remove", "example.test"]);
    assert_eq!(sb.ok(&["domain", "list"]), "no domains\n");
    assert_eq!(sb.ok(&["user", "list"]), "no users\n");
    assert_eq!(
        sb.json(&["domain", "list", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(sb.json(&["user", "list", "--json"]), serde_json::json!([]));
    sb.ok(&["domain", "add", "example.test"]);
    assert_eq!(sb.ok(&["domain", "list"]), "example.test\n");
}

/// The administrator role of the web admin API is granted and taken away
/// with `user admin`, shown by `user list`, and never given by default.
#[test]
fn user_admin_grants_and_removes_the_administrator_role() {
    let sb = Sb::with_users(&["alice"]);
    assert_eq!(sb.json(&["user", "list", "--json"])[0]["admin"], false);
    assert_eq!(
        sb.ok(&["user", "admin", "alice@example.test", "on"]),
        "alice@example.test is an administrator\n"
    );
    assert!(
        sb.ok(&["user", "list"])
            .contains("alice@example.test\t\tadministrator"),
        "{}",
        sb.ok(&["user", "list"])
    );
    assert_eq!(sb.json(&["user", "list", "--json"])[0]["admin"], true);
    assert_eq!(
        sb.ok(&["user", "admin", "alice@example.test", "off"]),
        "alice@example.test is no longer an administrator\n"
    );
    assert_eq!(sb.json(&["user", "list", "--json"])[0]["admin"], false);
    let o = sb.run(&["user", "admin", "nobody@example.test", "on"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no such user: nobody@example.test"),
        "{}",
        stderr(&o)
    );
    let o = sb.run(&["user", "admin", "alice@example.test", "maybe"]);
    assert!(!o.status.success());
}

#[test]
fn contact_add_changes_only_what_it_is_given() {
    let sb = Sb::with_users(&["alice"]);
    let add = |args: &[&str]| {
        let mut all = vec!["contact", "add", "alice@example.test", "bob@example.test"];
        all.extend_from_slice(args);
        sb.ok(&all)
    };
    let entry = || {
        let list = sb.json(&["contact", "list", "alice@example.test", "--json"]);
        (
            list[0]["group"].clone(),
            list[0]["level"].clone(),
            list[0]["added_ms"].clone(),
        )
    };
    assert_eq!(
        add(&["--group", "Team", "--level", "workgroup"]),
        "alice@example.test: bob@example.test in Team at level workgroup\n"
    );
    let added = entry().2;
    // Only --level: the group stays.
    assert_eq!(
        add(&["--level", "family"]),
        "alice@example.test: bob@example.test in Team at level family\n"
    );
    assert_eq!(entry(), ("Team".into(), "family".into(), added.clone()));
    // Only --group: the level stays.
    assert_eq!(
        add(&["--group", "Partners"]),
        "alice@example.test: bob@example.test in Partners at level family\n"
    );
    assert_eq!(entry(), ("Partners".into(), "family".into(), added.clone()));
    // Neither: nothing changes.
    add(&[]);
    assert_eq!(entry(), ("Partners".into(), "family".into(), added.clone()));
    // Clearing is explicit.
    assert_eq!(
        add(&["--group", "", "--level", "default"]),
        "alice@example.test: bob@example.test in (no group)\n"
    );
    assert_eq!(entry(), (Value::Null, Value::Null, added));
    assert_eq!(
        sb.ok(&["contact", "list", "alice@example.test"]),
        "bob@example.test\t\tdefault\n"
    );
    let err = sb.fails(&[
        "contact",
        "add",
        "alice@example.test",
        "bob@example.test",
        "--level",
        "bff",
    ]);
    assert!(err.contains("\"bff\" is not one of blocked"), "{err}");
}

#[test]
fn contact_commands_refuse_an_owner_who_is_not_a_user() {
    let sb = Sb::with_users(&["alice"]);
    for args in [
        &["contact", "list", "nobody@example.test"][..],
        &["contact", "list", "nobody@example.test", "--json"],
        &["contact", "add", "nobody@example.test", "bob@example.test"],
        &[
            "contact",
            "remove",
            "nobody@example.test",
            "bob@example.test",
        ],
    ] {
        let err = sb.fails(args);
        assert_eq!(
            err, "switchboard: no such user: nobody@example.test\n",
            "{args:?}"
        );
    }
    // A user with an empty list is not an error.
    assert_eq!(
        sb.ok(&["contact", "list", "alice@example.test"]),
        "alice@example.test has no contacts\n"
    );
}

// ---------------------------------------------------------------------------
// Privacy and policies
// ---------------------------------------------------------------------------

#[test]
fn privacy_show_gives_the_mode_and_where_it_comes_from() {
    let sb = Sb::with_users(&["alice", "bob"]);
    assert_eq!(
        sb.ok(&["privacy", "show", "alice@example.test"]),
        "privacy mode for alice@example.test: off (default)\n"
    );
    assert_eq!(
        sb.ok(&["privacy", "set", "alice@example.test", "--mode", "on"]),
        "privacy mode for alice@example.test: on\n"
    );
    assert_eq!(
        sb.ok(&["privacy", "show", "Alice@Example.TEST"]),
        "privacy mode for alice@example.test: on (set for the user)\n"
    );
    let j = sb.json(&["privacy", "show", "alice@example.test", "--json"]);
    assert_eq!(
        j,
        serde_json::json!({
            "user": "alice@example.test",
            "effective": {"privacy_mode": true},
            "user_setting": {"privacy_mode": true},
            "global_setting": null,
        })
    );
    sb.ok(&["privacy", "set", "alice@example.test", "--mode", "off"]);
    assert_eq!(
        sb.ok(&["privacy", "show", "alice@example.test"]),
        "privacy mode for alice@example.test: off (set for the user)\n"
    );
    assert_eq!(
        sb.ok(&["privacy", "show", "bob@example.test"]),
        "privacy mode for bob@example.test: off (default)\n"
    );
    assert_eq!(
        sb.fails(&["privacy", "show", "nobody@example.test"]),
        "switchboard: no such user: nobody@example.test\n"
    );
}

#[test]
fn policy_im_clear_removes_a_user_override() {
    let sb = Sb::with_users(&["bob"]);
    sb.ok(&["policy", "im", "set", "--global", "--offline", "off"]);
    sb.ok(&[
        "policy",
        "im",
        "set",
        "--user",
        "bob@example.test",
        "--offline",
        "on",
    ]);
    assert_eq!(
        sb.ok(&["policy", "im", "show"]),
        "global: offline_im=off\nuser bob@example.test: offline_im=on\n"
    );
    assert_eq!(
        sb.ok(&["policy", "im", "clear", "--user", "Bob@example.test"]),
        "IM policy override of bob@example.test removed\n"
    );
    assert_eq!(sb.ok(&["policy", "im", "show"]), "global: offline_im=off\n");
    assert_eq!(
        sb.fails(&["policy", "im", "clear", "--user", "bob@example.test"]),
        "switchboard: bob@example.test has no IM policy override\n"
    );
    // Like `archive policy clear`: only a user's override, never the global policy.
    let o = sb.run(&["policy", "im", "clear", "--global"]);
    assert_eq!(o.status.code(), Some(2), "{}", all(&o));
}

// ---------------------------------------------------------------------------
// Archive
// ---------------------------------------------------------------------------

#[tokio::test]
async fn archive_export_counts_what_it_wrote_and_has_no_idle_options() {
    let sb = Sb::with_users(&["alice", "bob"]);
    let t = now_ms() - 60_000;
    archive(
        sb.data(),
        &[
            message("c1", t, "one"),
            message("c1", t + 1, "two"),
            message("c2", t + 2, "three"),
        ],
    )
    .await;
    let out_dir = tempfile::tempdir().expect("tmp");
    let jsonl = out_dir.path().join("all.jsonl");
    let jsonl = jsonl.to_string_lossy();
    assert_eq!(
        sb.ok(&["archive", "export", "--format", "jsonl", "--output", &jsonl]),
        format!("exported 3 records to {jsonl} (1 file)\n")
    );
    let mbox = out_dir.path().join("c1.mbox");
    let mbox = mbox.to_string_lossy();
    assert_eq!(
        sb.ok(&[
            "archive",
            "export",
            "--format",
            "mbox",
            "--output",
            &mbox,
            "--conversation",
            "c1",
        ]),
        format!("exported 1 conversation (2 records) to {mbox} (1 file)\n")
    );
    let eml = out_dir.path().join("eml");
    let eml = eml.to_string_lossy();
    assert_eq!(
        sb.ok(&["archive", "export", "--format", "eml", "--output", &eml]),
        format!("exported 2 conversations (3 records) to {eml} (2 files)\n")
    );
    // --limit and --json belong to `search`: export refuses them (exit 2)
    // instead of accepting and ignoring them.
    for extra in [&["--limit", "1"][..], &["--json"]] {
        let mut args = vec!["archive", "export", "--format", "jsonl", "--output", &jsonl];
        args.extend_from_slice(extra);
        let o = sb.run(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", all(&o));
        assert!(stderr(&o).contains("unexpected argument"), "{}", all(&o));
    }
    // Search keeps them.
    let found = sb.json(&["archive", "search", "--limit", "2", "--json"]);
    assert_eq!(found.as_array().map(Vec::len), Some(2), "{found:#}");
}

// ---------------------------------------------------------------------------
// The data directory
// ---------------------------------------------------------------------------

/// Every command but `serve`, `user add` and `domain add` needs an existing
/// data directory, and creates nothing when it is missing.
#[test]
fn only_the_setup_commands_create_a_data_directory() {
    let sb = Sb::new();
    let missing = sb.data().join("typo");
    let inspect: &[&[&str]] = &[
        &["user", "list"],
        &["user", "remove", "alice@example.test"],
        &["user", "passwd", "alice@example.test"],
        &["domain", "list"],
        &["domain", "remove", "example.test"],
        &["contact", "list", "alice@example.test"],
        &["contact", "add", "alice@example.test", "bob@example.test"],
        &["privacy", "show", "alice@example.test"],
        &["privacy", "set", "alice@example.test", "--mode", "on"],
        &["policy", "im", "show"],
        &["policy", "im", "set", "--global", "--offline", "on"],
        &["archive", "config", "show"],
        &["archive", "policy", "show"],
        &["archive", "search"],
        &["archive", "show", "c1"],
        &["archive", "verify"],
        &["archive", "status"],
        &["archive", "purge"],
        &[
            "archive",
            "export",
            "--format",
            "jsonl",
            "--output",
            "/dev/null",
        ],
    ];
    for args in inspect {
        let o = run_on(&missing, args, None);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", all(&o));
        assert!(
            stderr(&o).starts_with(&format!(
                "switchboard: no data directory at {}",
                missing.display()
            )),
            "{args:?}: {}",
            all(&o)
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    // An existing directory that is not a data directory: named, not filled.
    for args in [&["user", "list"][..], &["archive", "verify"]] {
        let err = sb.fails(args);
        assert!(err.contains("does not exist"), "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read_dir(sb.data()).expect("read").count(),
        0,
        "nothing created in an existing directory"
    );

    // The first-time setup creates it.
    let out = run_on(&missing, &["domain", "add", "example.test"], None);
    assert!(out.status.success(), "{}", all(&out));
    assert!(missing.join("switchboard.db").exists());
    assert_eq!(
        stdout(&run_on(&missing, &["domain", "list"], None)),
        "example.test\n"
    );
    let other = sb.data().join("other");
    let out = run_on(
        &other,
        &["user", "add", "alice@example.test", "--password-stdin"],
        Some("correct horse\n"),
    );
    assert!(other.join("switchboard.db").exists(), "{}", all(&out));
    // (The domain is not served there, so the user was not added.)
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    // A bad address is refused before anything is created.
    let third = sb.data().join("third");
    let out = run_on(&third, &["user", "add", "not an address"], None);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    let out = run_on(&third, &["domain", "add", "bad domain"], None);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(!third.exists());
}

/// `archive` commands read a copy of the archive alone (a backup being
/// checked), without a main database beside it.
#[tokio::test]
async fn archive_commands_work_on_an_archive_alone() {
    let sb = Sb::new();
    archive(sb.data(), &[message("c1", now_ms() - 1000, "kept")]).await;
    let out = sb.ok(&["archive", "verify"]);
    assert!(out.contains("archive intact"), "{out}");
    let found = sb.json(&[
        "archive",
        "search",
        "--user",
        "alice@example.test",
        "--json",
    ]);
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found:#}");
    let err = sb.fails(&["archive", "search", "--user", "carol@example.test"]);
    assert!(err.contains("no such user: carol@example.test"), "{err}");
    assert!(!sb.data().join("switchboard.db").exists());
}

/// `archive status --json`'s head, `SEQ:HASH`.
fn head_of(sb: &Sb) -> String {
    sb.json(&["archive", "status", "--json"])["head"]
        .as_str()
        .expect("head")
        .to_owned()
}

/// A head recorded before retention purged its record cannot be checked:
/// `verify --expect-head` says so and exits 3, not a TAMPERING alarm (1);
/// a missing head newer than the anchor stays an alarm.
#[tokio::test]
async fn verify_tells_a_purged_expected_head_from_a_cut_tail() {
    let sb = Sb::with_users(&["alice", "bob"]);
    let old = now_ms() - 3 * 86_400_000;
    archive(
        sb.data(),
        &[
            message("old", old, "old 1"),
            message("old", old + 1, "old 2"),
            message("old", old + 2, "old 3"),
        ],
    )
    .await;
    let purged_head = head_of(&sb);
    assert!(purged_head.starts_with("3:"), "{purged_head}");
    let second = sb.json(&["archive", "search", "--json"])[1]["hash"]
        .as_str()
        .expect("hash")
        .to_owned();
    archive(
        sb.data(),
        &[
            message("new", now_ms() - 1000, "new 4"),
            message("new", now_ms(), "new 5"),
        ],
    )
    .await;
    let kept_head = head_of(&sb);
    assert!(kept_head.starts_with("5:"), "{kept_head}");
    sb.ok(&["archive", "config", "set", "--retention-days", "1"]);
    let purged = sb.ok(&["archive", "purge"]);
    let lines: Vec<&str> = purged.lines().collect();
    assert_eq!(lines.len(), 2, "{purged}");
    assert_eq!(lines[0], "purged 3 records older than 1 days");
    assert!(
        lines[1].starts_with("search indexes compacted ("),
        "{purged}"
    );

    // The anchor itself and a head before it: purged, exit 3.
    for (head, seq) in [(purged_head.clone(), 3), (format!("2:{second}"), 2)] {
        let o = sb.run(&["archive", "verify", "--expect-head", &head]);
        assert_eq!(o.status.code(), Some(3), "{}", all(&o));
        let out = stdout(&o);
        assert!(
            out.contains("checked 2 records from anchor #3")
                && out.contains(&format!(
                    "NOT CHECKED: the expected head #{seq} was purged by retention (the retention anchor is #3)"
                ))
                && out.contains("chain intact from the anchor")
                && !out.contains("TAMPERING")
                && !out.contains("archive intact"),
            "{}",
            all(&o)
        );
        assert_eq!(
            stderr(&o),
            format!(
                "switchboard: the expected head #{seq} could not be checked: retention has purged it (anchor #3)\n"
            )
        );
    }
    let o = sb.run(&["archive", "verify", "--expect-head", &purged_head, "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", all(&o));
    let j: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j["expected_head"]["result"], "purged", "{j:#}");
    assert_eq!(j["findings"], serde_json::json!([]), "{j:#}");

    // A head newer than the anchor: checked as before.
    let out = sb.ok(&["archive", "verify", "--expect-head", &kept_head]);
    assert!(out.contains("archive intact"), "{out}");
    let o = sb.run(&["archive", "verify", "--expect-head", &kept_head, "--json"]);
    let j: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j["expected_head"]["result"], "present", "{j:#}");
    // Missing and newer than the anchor: records were cut from the end.
    let o = sb.run(&["archive", "verify", "--expect-head", "7:abcd"]);
    assert_eq!(o.status.code(), Some(1), "{}", all(&o));
    assert!(
        stdout(&o)
            .contains("TAMPERING: the expected head #7 is missing (records removed from the end)"),
        "{}",
        all(&o)
    );
    // A bad value is refused before anything is read.
    let o = sb.run(&["archive", "verify", "--expect-head", "0:abcd"]);
    assert_eq!(o.status.code(), Some(1), "{}", all(&o));
    assert!(stderr(&o).contains("SEQ must be at least 1"), "{}", all(&o));
}
