//! The SQLite compliance archive: the hash chain (across batches, reopen and
//! concurrent writers), searches, retention, mail-store bookkeeping, detection
//! of direct edits to the database file, fail-fast when locked, and a
//! performance sanity run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use switchboard_store::StoreError;
use switchboard_store::archive::{
    Archive, ArchiveQuery, ArchiveRecord, ChainFinding, GENESIS, MAX_ARCHIVE_LIMIT,
    NewArchiveRecord, chain_hash, verify_chain,
};
use switchboard_store::sqlite::{SqliteArchive, SqliteStore};

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data").join("archive.db")
}

async fn open(path: &Path) -> SqliteArchive {
    match SqliteArchive::open(path).await {
        Ok(a) => a,
        Err(e) => panic!("opening {}: {e:?}", path.display()),
    }
}

async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

fn rec(conversation: &str, at_ms: i64, sender: &str, to: &[&str], text: &str) -> NewArchiveRecord {
    NewArchiveRecord {
        conversation: conversation.to_owned(),
        kind: "message".to_owned(),
        at_ms,
        sender: sender.to_owned(),
        participants: to.iter().map(|s| (*s).to_owned()).collect(),
        content_type: "text/plain; charset=utf-8".to_owned(),
        body: text.as_bytes().to_vec(),
        text: text.to_owned(),
        outcome: "delivered".to_owned(),
        external: false,
    }
}

/// Every record, from seq 0 (not from the anchor), as verification reads them.
async fn all(a: &SqliteArchive) -> Vec<ArchiveRecord> {
    let mut out = Vec::new();
    let mut after = i64::MIN;
    loop {
        let page = a.archive_range(after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        out.extend(page);
    }
    out
}

/// What `switchboard archive verify` does: the whole range, checked from the anchor.
async fn verify(a: &SqliteArchive) -> Vec<ChainFinding> {
    let (seq, hash) = a.archive_anchor().await.unwrap();
    verify_chain((seq, &hash), &all(a).await).0
}

fn seqs(records: &[ArchiveRecord]) -> Vec<i64> {
    records.iter().map(|r| r.seq).collect()
}

async fn search(a: &SqliteArchive, q: ArchiveQuery) -> Vec<i64> {
    match a.search_archive(&q).await {
        Ok(r) => seqs(&r),
        Err(e) => panic!("search {q:?}: {e:?}"),
    }
}

#[tokio::test]
async fn fts5_is_compiled_into_the_bundled_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let _archive = open(&path).await;
    let mut conn = raw(&path).await;
    let fts5: i64 = sqlx::query_scalar("SELECT sqlite_compileoption_used('ENABLE_FTS5')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(fts5, 1);
    let kind: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'archive_text'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(kind.to_lowercase().contains("using fts5"), "{kind}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_records_get_consecutive_seqs_round_trip_and_verify_clean() {
    let archive = SqliteArchive::open_in_memory().await.unwrap();
    assert_eq!(archive.archive_head().await.unwrap(), None);
    assert_eq!(
        archive.archive_anchor().await.unwrap(),
        (0, GENESIS.to_owned())
    );

    let mut join = rec("conf-1", 5, "carol@x", &["alice@x", "bob@x", "carol@x"], "");
    join.kind = "join".to_owned();
    join.external = true;
    join.body = vec![0, 159, 146, 150]; // not UTF-8: bodies are bytes
    let batch = vec![
        rec("c1", 1, "alice@x", &["bob@x"], "hello Bob"),
        rec("c1", 2, "bob@x", &["alice@x"], "hi"),
        join,
    ];
    assert_eq!(archive.append_archive(&batch).await.unwrap(), vec![1, 2, 3]);
    assert_eq!(
        archive.append_archive(&[]).await.unwrap(),
        Vec::<i64>::new()
    );

    let stored = all(&archive).await;
    assert_eq!(
        seqs(&stored),
        vec![1, 2, 3],
        "an empty append writes nothing"
    );
    for (s, r) in stored.iter().zip(&batch) {
        assert_eq!(&s.record, r, "record {} round-trips", s.seq);
    }
    assert_eq!(stored[0].prev_hash, GENESIS);
    assert_eq!(stored[0].hash, chain_hash(GENESIS, 1, &batch[0]));
    assert_eq!(stored[1].prev_hash, stored[0].hash);
    assert_eq!(verify(&archive).await, vec![]);
    assert_eq!(
        archive.archive_head().await.unwrap(),
        Some((3, stored[2].hash.clone()))
    );
    assert_eq!(
        seqs(&archive.archive_range(1, 1).await.unwrap()),
        vec![2],
        "range starts after after_seq and stops at limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_continues_across_appends_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let archive = open(&path).await;
    archive
        .append_archive(&[rec("c1", 1, "a@x", &["b@x"], "one")])
        .await
        .unwrap();
    archive
        .append_archive(&[
            rec("c1", 2, "b@x", &["a@x"], "two"),
            rec("c1", 3, "a@x", &["b@x"], "three"),
        ])
        .await
        .unwrap();
    let head = archive.archive_head().await.unwrap().unwrap();
    archive.close().await;
    drop(archive);

    let reopened = open(&path).await;
    assert_eq!(reopened.archive_head().await.unwrap(), Some(head.clone()));
    assert_eq!(
        reopened
            .append_archive(&[rec("c2", 4, "c@x", &["a@x"], "four")])
            .await
            .unwrap(),
        vec![4]
    );
    let records = all(&reopened).await;
    assert_eq!(seqs(&records), vec![1, 2, 3, 4]);
    assert_eq!(
        records[3].prev_hash, head.1,
        "chained to the head before reopening"
    );
    assert_eq!(verify(&reopened).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_two_handles_form_one_gap_free_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path).await;
    let b = open(&path).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let handle = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..20 {
                let batch: Vec<_> = (0..5)
                    .map(|k| {
                        rec(
                            &format!("conv-{t}"),
                            i * 10 + k,
                            &format!("user{t}@x"),
                            &["peer@x"],
                            &format!("task {t} batch {i} item {k}"),
                        )
                    })
                    .collect();
                let seqs = handle.append_archive(&batch).await.unwrap();
                assert!(
                    seqs.windows(2).all(|w| w[1] == w[0] + 1),
                    "one batch is contiguous: {seqs:?}"
                );
                got.extend(seqs);
            }
            got
        }));
    }
    let mut returned = Vec::new();
    for t in tasks {
        returned.extend(t.await.unwrap());
    }
    returned.sort_unstable();
    assert_eq!(returned, (1..=800).collect::<Vec<i64>>());
    let records = all(&b).await;
    assert_eq!(seqs(&records), (1..=800).collect::<Vec<i64>>());
    assert_eq!(verify(&a).await, vec![]);
    for t in 0..8 {
        let s = a
            .conversation_summary(&format!("conv-{t}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.records, 100);
    }
}

/// alice↔bob 1:1 (c1), a conference c2 where carol joins later, bob↔dave (c3).
async fn conversations() -> SqliteArchive {
    let archive = SqliteArchive::open_in_memory().await.unwrap();
    archive
        .append_archive(&conversation_records())
        .await
        .unwrap();
    archive
}

/// The records of [`conversations`].
fn conversation_records() -> Vec<NewArchiveRecord> {
    vec![
        rec("c1", 100, "alice@x", &["bob@x"], "Budget review tomorrow?"), // 1
        rec(
            "c1",
            200,
            "bob@x",
            &["alice@x"],
            "Yes, the budget REVIEW at ten",
        ), // 2
        rec("c2", 300, "alice@x", &["bob@x"], "conference before carol"), // 3
        rec(
            "c2",
            400,
            "carol@x",
            &["alice@x", "bob@x", "carol@x"],
            "carol joined",
        ), // 4
        rec(
            "c2",
            500,
            "bob@x",
            &["carol@x"],
            "bob to carol only, résumé attached",
        ), // 5
        rec(
            "c3",
            600,
            "bob@x",
            &["dave@y"],
            "lunch OR dinner? NEAR the budget",
        ), // 6
        rec(
            "c3",
            700,
            "dave@y",
            &["bob@x"],
            "don't care, say \"pizza\" * 2",
        ), // 7
    ]
}

fn q() -> ArchiveQuery {
    ArchiveQuery::default()
}

#[tokio::test]
async fn search_by_user_and_with() {
    let a = conversations().await;
    let user = |u: &str| Some(u.to_owned());
    assert_eq!(search(&a, q()).await, vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                user: user("alice@x"),
                ..q()
            }
        )
        .await,
        vec![1, 2, 3, 4],
        "alice sent or received 1-4, not bob's message to carol"
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                user: user("carol@x"),
                ..q()
            }
        )
        .await,
        vec![4, 5]
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                user: user("alice@x"),
                with: user("carol@x"),
                ..q()
            }
        )
        .await,
        vec![3, 4],
        "alice's records in conversations carol was in, before carol joined too"
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                with: user("carol@x"),
                ..q()
            }
        )
        .await,
        vec![3, 4, 5],
        "without user: every record of conversations involving carol"
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                user: user("bob@x"),
                with: user("dave@y"),
                ..q()
            }
        )
        .await,
        vec![6, 7]
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                user: user("alice@x"),
                with: user("dave@y"),
                ..q()
            }
        )
        .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                user: user("ALICE@x"),
                ..q()
            }
        )
        .await,
        Vec::<i64>::new(),
        "addresses are exact; callers lower-case"
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                user: user("nobody@x"),
                ..q()
            }
        )
        .await,
        Vec::<i64>::new()
    );
}

#[tokio::test]
async fn search_by_time_conversation_and_paging() {
    let a = conversations().await;
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                since_ms: Some(200),
                until_ms: Some(500),
                ..q()
            }
        )
        .await,
        vec![2, 3, 4],
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                conversation: Some("c2".into()),
                ..q()
            }
        )
        .await,
        vec![3, 4, 5]
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                conversation: Some("c2".into()),
                user: Some("bob@x".into()),
                since_ms: Some(301),
                ..q()
            }
        )
        .await,
        vec![4, 5],
        "all fields AND together"
    );

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = search(
            &a,
            ArchiveQuery {
                after_seq: after,
                limit: 3,
                ..q()
            },
        )
        .await;
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(*last);
        paged.extend(page);
    }
    assert_eq!(paged, vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                user: Some("bob@x".into()),
                after_seq: Some(4),
                limit: 1,
                ..q()
            }
        )
        .await,
        vec![5]
    );
}

#[tokio::test]
async fn text_search_matches_every_word_ignoring_case_and_accents() {
    let a = conversations().await;
    let text = |t: &str| ArchiveQuery {
        text: Some(t.to_owned()),
        ..q()
    };
    assert_eq!(search(&a, text("budget")).await, vec![1, 2, 6]);
    assert_eq!(search(&a, text("budget review")).await, vec![1, 2]);
    assert_eq!(search(&a, text("REVIEW   Budget")).await, vec![1, 2]);
    assert_eq!(search(&a, text("resume")).await, vec![5], "accents folded");
    assert_eq!(search(&a, text("résumé")).await, vec![5]);
    assert_eq!(search(&a, text("budget pizza")).await, Vec::<i64>::new());
    assert_eq!(
        search(&a, text("budg")).await,
        Vec::<i64>::new(),
        "whole words"
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                text: Some("budget".into()),
                user: Some("alice@x".into()),
                until_ms: Some(150),
                ..q()
            }
        )
        .await,
        vec![1]
    );
}

#[tokio::test]
async fn text_search_treats_fts_syntax_as_plain_words() {
    let a = conversations().await;
    let text = |t: &str| ArchiveQuery {
        text: Some(t.to_owned()),
        ..q()
    };
    // If OR were an operator these would match 1, 2 and 6 (and 7); as a word
    // it must occur, and only record 6 has it.
    assert_eq!(search(&a, text("budget OR pizza")).await, Vec::<i64>::new());
    assert_eq!(search(&a, text("lunch OR dinner")).await, vec![6]);
    assert_eq!(search(&a, text("or")).await, vec![6]);
    // NOT, AND as words (no record has them).
    assert_eq!(
        search(&a, text("budget NOT review")).await,
        Vec::<i64>::new()
    );
    assert_eq!(search(&a, text("budget AND")).await, Vec::<i64>::new());
    // A prefix star is not a wildcard.
    assert_eq!(search(&a, text("budg*")).await, Vec::<i64>::new());
    assert_eq!(
        search(&a, text("budget*")).await,
        vec![1, 2, 6],
        "the star is dropped by the tokenizer"
    );
    // NEAR( and parentheses are not grouping.
    assert_eq!(
        search(&a, text("NEAR(the")).await,
        vec![6],
        "the phrase \"near the\""
    );
    assert_eq!(
        search(&a, text("NEAR(budget")).await,
        Vec::<i64>::new(),
        "not adjacent"
    );
    assert_eq!(
        search(&a, text("NEAR(lunch dinner)")).await,
        Vec::<i64>::new(),
        "as NEAR it would match 6; as words it needs the phrase \"near lunch\""
    );
    assert_eq!(search(&a, text("(lunch dinner)")).await, vec![6]);
    assert_eq!(search(&a, text("(budget")).await, vec![1, 2, 6]);
    // Quotes: unbalanced, doubled, embedded.
    assert_eq!(search(&a, text("\"pizza")).await, vec![7]);
    assert_eq!(search(&a, text("\"pizza\"")).await, vec![7]);
    assert_eq!(search(&a, text("\"\"\"pizza")).await, vec![7]);
    assert_eq!(
        search(&a, text("say\"pizza\"")).await,
        vec![7],
        "a phrase: adjacent words"
    );
    assert_eq!(search(&a, text("don't")).await, vec![7]);
    // Column filters, initial-token and other operators.
    assert_eq!(
        search(&a, text("text:budget")).await,
        Vec::<i64>::new(),
        "a phrase text budget"
    );
    assert_eq!(search(&a, text("^budget")).await, vec![1, 2, 6]);
    assert_eq!(
        search(&a, text("- + : ^ *")).await,
        Vec::<i64>::new(),
        "nothing to look for"
    );
    assert_eq!(search(&a, text("")).await, Vec::<i64>::new());
    assert_eq!(
        search(&a, text("pizza\0budget")).await,
        Vec::<i64>::new(),
        "NUL separates words"
    );
    assert_eq!(search(&a, text("pizza\0care")).await, vec![7]);
    // Nothing the user types makes the query fail.
    for nasty in [
        "\"",
        "'",
        "(",
        ")",
        "*",
        "NEAR(",
        "NEAR(a b, 1",
        "a OR",
        "OR",
        "AND",
        "NOT",
        "{text}:x",
        "-budget",
        "+budget",
        "budget\"",
        "\\\"",
        "\u{0}",
        "\u{301}",
        "x\u{0}\"",
        ";",
        "--",
        "/*",
        "%",
        "_",
        "ñ*",
    ] {
        if let Err(e) = a.search_archive(&text(nasty)).await {
            panic!("text {nasty:?} failed: {e:?}");
        }
    }
}

#[tokio::test]
async fn purge_removes_only_an_old_prefix_and_moves_the_anchor() {
    let a = SqliteArchive::open_in_memory().await.unwrap();
    // at_ms out of order on purpose: 4 is newer than the cut, 5 is old again.
    let times = [10, 20, 30, 90, 40, 50];
    let batch: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            rec(
                &format!("c{}", i % 2),
                *t,
                "a@x",
                &["b@x"],
                &format!("m{i}"),
            )
        })
        .collect();
    a.append_archive(&batch).await.unwrap();
    let before = all(&a).await;

    assert_eq!(
        a.purge_archive(10, false).await.unwrap(),
        0,
        "nothing before 10"
    );
    assert_eq!(a.archive_anchor().await.unwrap(), (0, GENESIS.to_owned()));

    assert_eq!(
        a.purge_archive(60, false).await.unwrap(),
        3,
        "stops at seq 4 (at 90)"
    );
    assert_eq!(
        a.archive_anchor().await.unwrap(),
        (3, before[2].hash.clone())
    );
    assert_eq!(
        seqs(&all(&a).await),
        vec![4, 5, 6],
        "5 and 6 are old but after 4"
    );
    assert_eq!(
        verify(&a).await,
        vec![],
        "the rest verifies from the anchor"
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                text: Some("m0".into()),
                ..q()
            }
        )
        .await,
        Vec::<i64>::new(),
        "purged text is gone from the index"
    );
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                user: Some("a@x".into()),
                ..q()
            }
        )
        .await,
        vec![4, 5, 6]
    );
    let c0 = a.conversation_summary("c0").await.unwrap().unwrap();
    assert_eq!((c0.first_ms, c0.last_ms, c0.records), (40, 40, 1), "{c0:?}");

    assert_eq!(a.purge_archive(100, false).await.unwrap(), 3);
    assert_eq!(
        a.archive_anchor().await.unwrap(),
        (6, before[5].hash.clone())
    );
    assert_eq!(a.archive_head().await.unwrap(), None);
    assert_eq!(a.conversation_summary("c0").await.unwrap(), None);
    assert_eq!(a.purge_archive(100, false).await.unwrap(), 0);

    // After everything went, the chain goes on from the anchor.
    assert_eq!(
        a.append_archive(&[rec("c9", 200, "a@x", &["b@x"], "later")])
            .await
            .unwrap(),
        vec![7]
    );
    let rest = all(&a).await;
    assert_eq!(rest[0].prev_hash, before[5].hash);
    assert_eq!(verify(&a).await, vec![]);
}

#[tokio::test]
async fn purge_with_only_mailed_waits_for_every_participant_of_the_conversation() {
    let a = SqliteArchive::open_in_memory().await.unwrap();
    a.append_archive(&[
        rec("c1", 10, "alice@x", &["bob@x"], "one"),
        rec("c2", 20, "carol@x", &["dave@x"], "two"),
        rec("c1", 30, "bob@x", &["alice@x"], "three"),
        rec("c3", 40, "erin@x", &["alice@x"], "four"),
    ])
    .await
    .unwrap();

    assert_eq!(
        a.purge_archive(1000, true).await.unwrap(),
        0,
        "nothing mailed"
    );
    a.mark_mailed("c1", "alice@x", 100).await.unwrap();
    assert_eq!(
        a.purge_archive(1000, true).await.unwrap(),
        0,
        "bob still lacks c1"
    );
    a.mark_mailed("c1", "bob@x", 100).await.unwrap();
    assert_eq!(
        a.purge_archive(1000, true).await.unwrap(),
        1,
        "c2 (seq 2) stops it"
    );
    a.mark_mailed("c2", "carol@x", 100).await.unwrap();
    a.mark_mailed("c2", "dave@x", 100).await.unwrap();
    assert_eq!(
        a.purge_archive(1000, true).await.unwrap(),
        2,
        "seqs 2 and 3; c3 stays"
    );
    assert_eq!(seqs(&all(&a).await), vec![4]);
    assert_eq!(
        a.mailed("c1").await.unwrap(),
        Vec::<String>::new(),
        "c1 is gone, marks too"
    );
    assert_eq!(a.mailed("c2").await.unwrap(), Vec::<String>::new());
    assert_eq!(verify(&a).await, vec![]);

    // A mark older than the conversation's last record does not count.
    a.append_archive(&[rec("c3", 500, "alice@x", &["erin@x"], "five")])
        .await
        .unwrap();
    a.mark_mailed("c3", "alice@x", 450).await.unwrap();
    a.mark_mailed("c3", "erin@x", 450).await.unwrap();
    assert_eq!(
        a.purge_archive(1000, true).await.unwrap(),
        0,
        "c3 went on after the marks"
    );
    assert_eq!(
        a.purge_archive(1000, false).await.unwrap(),
        2,
        "without only_mailed: age only"
    );
}

#[tokio::test]
async fn conversations_to_mail_lists_idle_conversations_someone_has_not_received() {
    let a = SqliteArchive::open_in_memory().await.unwrap();
    a.append_archive(&[
        rec("c1", 10, "alice@x", &["bob@x"], "one"),
        rec("c2", 20, "carol@x", &["dave@x"], "two"),
        rec(
            "c1",
            30,
            "bob@x",
            &["alice@x", "zed@partner.example"],
            "three",
        ),
        rec("c3", 90, "erin@x", &["alice@x"], "busy"),
    ])
    .await
    .unwrap();
    let due = a.conversations_to_mail(50, 0).await.unwrap();
    assert_eq!(due.len(), 2, "c3 is not idle yet: {due:?}");
    assert_eq!(due[0].conversation, "c2", "oldest last record first");
    assert_eq!(due[1].conversation, "c1");
    assert_eq!(
        due[1].participants,
        vec!["alice@x", "bob@x", "zed@partner.example"],
        "sorted, everyone who sent or received"
    );
    assert_eq!(
        (due[1].first_ms, due[1].last_ms, due[1].records),
        (10, 30, 2)
    );
    assert_eq!(
        a.conversations_to_mail(50, 1).await.unwrap().len(),
        1,
        "limit"
    );
    assert_eq!(
        Some(due[1].clone()),
        a.conversation_summary("c1").await.unwrap()
    );

    for mailbox in ["alice@x", "bob@x"] {
        a.mark_mailed("c1", mailbox, 100).await.unwrap();
        a.mark_mailed("c1", mailbox, 100).await.unwrap(); // idempotent
    }
    assert_eq!(a.mailed("c1").await.unwrap(), vec!["alice@x", "bob@x"]);
    let due = a.conversations_to_mail(50, 0).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|s| s.conversation.as_str())
            .collect::<Vec<_>>(),
        vec!["c2", "c1"],
        "the external party still has no mark"
    );
    a.mark_mailed("c1", "zed@partner.example", 100)
        .await
        .unwrap();
    a.mark_mailed("c1", "zed@partner.example", 60)
        .await
        .unwrap(); // keeps the later mark
    let due = a.conversations_to_mail(50, 0).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].conversation, "c2");

    // c1 goes on: it is due again once idle.
    a.append_archive(&[rec("c1", 150, "alice@x", &["bob@x"], "again")])
        .await
        .unwrap();
    let due = a.conversations_to_mail(120, 0).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|s| s.conversation.as_str())
            .collect::<Vec<_>>(),
        vec!["c2", "c3"],
        "c1 is not idle at 120"
    );
    let due = a.conversations_to_mail(200, 0).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|s| s.conversation.as_str())
            .collect::<Vec<_>>(),
        vec!["c2", "c3", "c1"]
    );
    assert_eq!(
        a.mailed("c1").await.unwrap().len(),
        3,
        "old marks are still listed"
    );
    assert_eq!(a.conversation_summary("nope").await.unwrap(), None);
}

/// A file archive with 5 records in conversation c, for editing behind its back.
async fn tamper_fixture() -> (tempfile::TempDir, PathBuf, SqliteArchive) {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path).await;
    let batch: Vec<_> = (1..=5)
        .map(|i| rec("c", i * 10, "alice@x", &["bob@x"], &format!("message {i}")))
        .collect();
    a.append_archive(&batch).await.unwrap();
    assert_eq!(verify(&a).await, vec![]);
    (dir, path, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_body_in_the_file_shows_as_altered() {
    let (_dir, path, a) = tamper_fixture().await;
    let mut conn = raw(&path).await;
    sqlx::query("UPDATE archive_records SET body = ? WHERE seq = 3")
        .bind(b"nothing to see".as_slice())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(verify(&a).await, vec![ChainFinding::Altered { seq: 3 }]);

    sqlx::query("UPDATE archive_records SET text = 'edited', outcome = 'failed 480' WHERE seq = 4")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        verify(&a).await,
        vec![
            ChainFinding::Altered { seq: 3 },
            ChainFinding::Altered { seq: 4 }
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_record_in_the_file_shows_as_gap_and_broken() {
    let (_dir, path, a) = tamper_fixture().await;
    let records = all(&a).await;
    let mut conn = raw(&path).await;
    sqlx::query("DELETE FROM archive_records WHERE seq = 3")
        .execute(&mut conn)
        .await
        .unwrap();
    let findings = verify(&a).await;
    assert_eq!(
        findings,
        vec![
            ChainFinding::Gap { after: 2, next: 4 },
            ChainFinding::Broken {
                seq: 4,
                expected_prev: records[1].hash.clone(),
                found_prev: records[2].hash.clone()
            }
        ]
    );

    // Deleting the newest record cannot be seen in the chain alone: the head
    // must be compared with one kept elsewhere (logs, the main store).
    sqlx::query("DELETE FROM archive_records WHERE seq = 5")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(verify(&a).await, findings);
    assert_eq!(a.archive_head().await.unwrap().map(|h| h.0), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserting_a_forged_record_in_the_file_shows_as_broken_or_altered() {
    let (_dir, path, a) = tamper_fixture().await;
    let records = all(&a).await;
    let mut conn = raw(&path).await;
    let insert = "INSERT INTO archive_records (seq, conversation, kind, at_ms, sender, \
                  participants, content_type, body, text, outcome, external, prev_hash, hash) \
                  VALUES (?, 'c', 'message', 55, 'alice@x', '[\"bob@x\"]', 'text/plain', \
                  x'6869', 'hi', 'delivered', 0, ?, ?)";

    // With a made-up predecessor hash (and a hash consistent with it).
    let forged = rec("c", 55, "alice@x", &["bob@x"], "hi");
    let fake_prev = "ab".repeat(32);
    let mut forged_ct = forged.clone();
    forged_ct.content_type = "text/plain".to_owned();
    sqlx::query(insert)
        .bind(6_i64)
        .bind(&fake_prev)
        .bind(chain_hash(&fake_prev, 6, &forged_ct))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        verify(&a).await,
        vec![ChainFinding::Broken {
            seq: 6,
            expected_prev: records[4].hash.clone(),
            found_prev: fake_prev
        }]
    );
    sqlx::query("DELETE FROM archive_records WHERE seq = 6")
        .execute(&mut conn)
        .await
        .unwrap();

    // With the right predecessor but a hash that was not computed over it.
    sqlx::query(insert)
        .bind(6_i64)
        .bind(&records[4].hash)
        .bind("cd".repeat(32))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(verify(&a).await, vec![ChainFinding::Altered { seq: 6 }]);

    // Below the anchor, where only a range read from the start finds it.
    a.purge_archive(25, false).await.unwrap();
    assert_eq!(a.archive_anchor().await.unwrap().0, 2);
    sqlx::query(insert)
        .bind(1_i64)
        .bind(GENESIS)
        .bind(chain_hash(GENESIS, 1, &forged_ct))
        .execute(&mut conn)
        .await
        .unwrap();
    let findings = verify(&a).await;
    assert!(
        findings.contains(&ChainFinding::Gap { after: 2, next: 1 }),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| matches!(f, ChainFinding::Broken { seq: 1, .. })),
        "{findings:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_text_index_stays_consistent_through_purges_and_direct_edits() {
    let (_dir, path, a) = tamper_fixture().await;
    let mut conn = raw(&path).await;
    let check = "INSERT INTO archive_text (archive_text, rank) VALUES ('integrity-check', 1)";
    sqlx::query(check).execute(&mut conn).await.unwrap();

    sqlx::query("UPDATE archive_records SET text = 'rewritten words' WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(check).execute(&mut conn).await.unwrap();
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                text: Some("rewritten".into()),
                ..q()
            }
        )
        .await,
        vec![2]
    );
    // A row forged into the file is indexed by the insert trigger (the
    // backend indexes what it appends itself), so searches show it like any
    // record; editing or deleting it keeps the indexes consistent.
    sqlx::query(
        "INSERT INTO archive_records (seq, conversation, kind, at_ms, sender, participants, \
         content_type, body, text, outcome, external, prev_hash, hash) \
         VALUES (0, 'c', 'message', 1, 'mallory@x', '[]', 'text/plain', x'00', \
         'forged message', 'delivered', 0, 'x', 'y')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(check).execute(&mut conn).await.unwrap();
    let text = |t: &str| ArchiveQuery {
        text: Some(t.into()),
        ..q()
    };
    assert_eq!(search(&a, text("forged")).await, vec![0]);
    sqlx::query("UPDATE archive_records SET text = 'forged again' WHERE seq = 0")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(check).execute(&mut conn).await.unwrap();
    assert_eq!(search(&a, text("again")).await, vec![0]);
    assert_eq!(
        a.purge_archive(35, false).await.unwrap(),
        4,
        "the forged row too"
    );
    sqlx::query(check).execute(&mut conn).await.unwrap();
    sqlx::query(
        "INSERT INTO archive_thread_index (archive_thread_index, rank) \
         VALUES ('integrity-check', 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                text: Some("message".into()),
                ..q()
            }
        )
        .await,
        vec![4, 5]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_archive_fails_writes_within_the_short_busy_timeout_but_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let archive = SqliteArchive::open_with_busy_timeout(&path, Duration::from_secs(1))
        .await
        .unwrap();
    archive
        .append_archive(&[rec("c", 1, "a@x", &["b@x"], "before the lock")])
        .await
        .unwrap();
    archive.archive_health().await.unwrap();

    let mut other = raw(&path).await;
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();

    let started = Instant::now();
    match archive
        .append_archive(&[rec("c", 2, "a@x", &["b@x"], "during the lock")])
        .await
    {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let append_took = started.elapsed();
    let started = Instant::now();
    match archive.archive_health().await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let health_took = started.elapsed();
    println!("locked: append failed after {append_took:?}, health after {health_took:?}");
    for took in [append_took, health_took] {
        assert!(
            took >= Duration::from_millis(900),
            "waited the busy timeout: {took:?}"
        );
        assert!(
            took < Duration::from_secs(4),
            "not the 5 s default: {took:?}"
        );
    }
    assert_eq!(
        seqs(&all(&archive).await),
        vec![1],
        "WAL readers are not blocked, and the failed append left nothing"
    );

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    archive.archive_health().await.unwrap();
    assert_eq!(
        archive
            .append_archive(&[rec("c", 3, "a@x", &["b@x"], "after")])
            .await
            .unwrap(),
        vec![2]
    );
    assert_eq!(verify(&archive).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_creates_a_private_wal_file_and_rejects_the_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("archive.db");
    let archive = open(&path).await;
    archive
        .append_archive(&[rec("c", 1, "a@x", &["b@x"], "secret")])
        .await
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [path.clone(), path.with_extension("db-wal")] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "{} must be private, mode {mode:o}",
                p.display()
            );
        }
    }
    let mut conn = raw(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");

    // The store's file is not an archive, and the archive is not a store.
    let store_path = dir.path().join("switchboard.db");
    SqliteStore::open(&store_path).await.unwrap().close().await;
    match SqliteArchive::open(&store_path).await {
        Err(StoreError::Backend(_)) => {}
        other => panic!("expected Backend, got {other:?}"),
    }
    match SqliteStore::open(&path).await {
        Err(StoreError::Backend(_)) => {}
        other => panic!("expected Backend, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn performance_sanity_100k_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path).await;
    let users: Vec<String> = (0..50).map(|u| format!("user{u}@example.com")).collect();
    let started = Instant::now();
    for b in 0..200_i64 {
        let batch: Vec<_> = (0..500_i64)
            .map(|k| {
                let i = b * 500 + k;
                let from = &users[(i % 50) as usize];
                let to = &users[((i * 7 + 3) % 50) as usize];
                let extra = if i % 1000 == 0 {
                    " quarterly budget review"
                } else {
                    ""
                };
                rec(
                    &format!("conv-{}", i / 20),
                    1_000_000 + i,
                    from,
                    &[to.as_str()],
                    &format!("message number {i} about topic{} and lunch{extra}", i % 97),
                )
            })
            .collect();
        a.append_archive(&batch).await.unwrap();
    }
    let append = started.elapsed();
    a.append_archive(&[rec("tail", 2_000_000, "x@y", &["z@y"], "tail")])
        .await
        .unwrap();

    let started = Instant::now();
    let hits = a
        .search_archive(&ArchiveQuery {
            text: Some("quarterly budget".into()),
            ..q()
        })
        .await
        .unwrap();
    let text_search = started.elapsed();
    assert_eq!(hits.len(), 100);
    assert!(
        hits.iter()
            .all(|r| r.record.text.contains("quarterly budget"))
    );

    let started = Instant::now();
    let by_user = a
        .search_archive(&ArchiveQuery {
            user: Some("user7@example.com".into()),
            text: Some("topic5".into()),
            ..q()
        })
        .await
        .unwrap();
    let user_text_search = started.elapsed();
    assert!(!by_user.is_empty());

    let started = Instant::now();
    let default_page = a.search_archive(&q()).await.unwrap();
    assert_eq!(default_page.len(), 1000, "limit 0 means the default");
    let capped = a.archive_range(0, u32::MAX).await.unwrap();
    assert_eq!(
        capped.len(),
        MAX_ARCHIVE_LIMIT as usize,
        "limits are capped"
    );
    let range = started.elapsed();

    let started = Instant::now();
    let findings = verify(&a).await;
    let verify_took = started.elapsed();
    assert_eq!(findings, vec![]);

    let started = Instant::now();
    let due = a.conversations_to_mail(i64::MAX, 100).await.unwrap();
    let to_mail = started.elapsed();
    assert_eq!(due.len(), 100);

    let started = Instant::now();
    let purged = a.purge_archive(1_050_000, false).await.unwrap();
    let purge = started.elapsed();
    assert_eq!(purged, 50_000);
    assert_eq!(verify(&a).await, vec![]);

    println!(
        "100,000 records in batches of 500: append {append:?}; text search {text_search:?}; \
         user+text search {user_text_search:?}; default page + 100,000-record range {range:?}; \
         verify {verify_took:?}; conversations_to_mail {to_mail:?}; purge of 50,000 {purge:?}"
    );
}

/// The searches by party (`user`, `with`, both, with text) that the schema
/// upgrade must answer exactly as before.
fn party_queries() -> Vec<ArchiveQuery> {
    let people = ["alice@x", "bob@x", "carol@x", "dave@y", "nobody@x"];
    let mut out = Vec::new();
    for u in people {
        out.push(ArchiveQuery {
            user: Some(u.to_owned()),
            ..ArchiveQuery::default()
        });
        out.push(ArchiveQuery {
            with: Some(u.to_owned()),
            ..ArchiveQuery::default()
        });
        out.push(ArchiveQuery {
            user: Some(u.to_owned()),
            text: Some("budget".to_owned()),
            ..ArchiveQuery::default()
        });
        for w in people {
            out.push(ArchiveQuery {
                user: Some(u.to_owned()),
                with: Some(w.to_owned()),
                ..ArchiveQuery::default()
            });
        }
    }
    out
}

/// An archive written with schema version 1 (one `archive_party` row per
/// party and record, indexes by conversation and by sender) is upgraded when
/// opened: no record is lost or changed, the chain verifies, every search by
/// party answers as in an archive written by this version, and appending and
/// purging go on.
#[tokio::test]
async fn an_archive_of_schema_version_1_is_upgraded_without_losing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let v1 = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/migrations/sqlite-archive/0001_archive.sql"
        ),
        v1.path().join("0001_archive.sql"),
    )
    .unwrap();
    let migrator = sqlx::migrate::Migrator::new(v1.path()).await.unwrap();
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    migrator.run(&mut conn).await.unwrap();

    // What version 1 wrote for the records of `conversations()`.
    let records = conversation_records();
    let mut prev = GENESIS.to_owned();
    for (i, r) in records.iter().enumerate() {
        let seq = i as i64 + 1;
        let hash = chain_hash(&prev, seq, r);
        sqlx::query(
            "INSERT INTO archive_records (seq, conversation, kind, at_ms, sender, participants, \
             content_type, body, text, outcome, external, prev_hash, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(&r.conversation)
        .bind(&r.kind)
        .bind(r.at_ms)
        .bind(&r.sender)
        .bind(serde_json::to_string(&r.participants).unwrap())
        .bind(&r.content_type)
        .bind(&r.body)
        .bind(&r.text)
        .bind(&r.outcome)
        .bind(r.external)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut conn)
        .await
        .unwrap();
        let mut parties: Vec<&str> = std::iter::once(r.sender.as_str())
            .chain(r.participants.iter().map(String::as_str))
            .collect();
        parties.sort_unstable();
        parties.dedup();
        sqlx::query(
            "INSERT INTO archive_conversations (conversation, first_ms, last_ms, records) \
             VALUES (?1, ?2, ?2, 1) ON CONFLICT (conversation) DO UPDATE SET \
             last_ms = max(last_ms, excluded.last_ms), records = records + 1",
        )
        .bind(&r.conversation)
        .bind(r.at_ms)
        .execute(&mut conn)
        .await
        .unwrap();
        for party in parties {
            sqlx::query("INSERT INTO archive_party (address, seq) VALUES (?, ?)")
                .bind(party)
                .bind(seq)
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO archive_conversation_parties (conversation, address) VALUES (?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&r.conversation)
            .bind(party)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        prev = hash;
    }
    conn.close().await.unwrap();

    let upgraded = open(&path).await;
    let fresh = conversations().await;
    let before: Vec<ArchiveRecord> = all(&fresh).await;
    assert_eq!(all(&upgraded).await, before, "records unchanged");
    assert_eq!(verify(&upgraded).await, vec![], "the chain verifies");
    for query in party_queries() {
        assert_eq!(
            search(&upgraded, query.clone()).await,
            search(&fresh, query.clone()).await,
            "{query:?}"
        );
    }
    let mut raw = raw(&path).await;
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE name IN \
         ('archive_party', 'archive_records_by_sender', 'archive_records_by_conversation', \
          'archive_conversation_sets', 'archive_records_by_conversation_set')",
    )
    .fetch_one(&mut raw)
    .await
    .unwrap();
    assert_eq!(
        leftovers, 0,
        "the version 1 party rows and indexes are gone"
    );
    let unset: i64 =
        sqlx::query_scalar("SELECT count(*) FROM archive_records WHERE thread IS NULL")
            .fetch_one(&mut raw)
            .await
            .unwrap();
    assert_eq!(unset, 0);
    for check in [
        "INSERT INTO archive_text (archive_text, rank) VALUES ('integrity-check', 1)",
        "INSERT INTO archive_thread_index (archive_thread_index, rank) VALUES ('integrity-check', 1)",
    ] {
        sqlx::query(check).execute(&mut raw).await.unwrap();
    }
    raw.close().await.unwrap();

    // It goes on like a new archive.
    let more = [
        rec("c2", 800, "carol@x", &["alice@x", "bob@x"], "budget again"),
        rec("c4", 900, "erin@x", &["alice@x"], "hello alice"),
    ];
    upgraded.append_archive(&more).await.unwrap();
    fresh.append_archive(&more).await.unwrap();
    assert_eq!(verify(&upgraded).await, vec![]);
    assert_eq!(upgraded.purge_archive(450, false).await.unwrap(), 4);
    assert_eq!(fresh.purge_archive(450, false).await.unwrap(), 4);
    assert_eq!(verify(&upgraded).await, vec![]);
    for query in party_queries() {
        assert_eq!(
            search(&upgraded, query.clone()).await,
            search(&fresh, query.clone()).await,
            "after append and purge: {query:?}"
        );
    }
    for conversation in ["c1", "c2", "c3", "c4"] {
        assert_eq!(
            upgraded.conversation_summary(conversation).await.unwrap(),
            fresh.conversation_summary(conversation).await.unwrap(),
        );
    }
}

/// A party's records are found through the sets of parties it was in: a
/// member who left a conference is not a party of what was said after, one
/// who joined is not a party of what was said before, and purging the last
/// records of a set forgets it.
#[tokio::test]
async fn searches_by_party_follow_conference_membership_through_purges() {
    let a = SqliteArchive::open_in_memory().await.unwrap();
    let members = |n: usize| -> Vec<String> { (0..n).map(|i| format!("m{i:03}@x")).collect() };
    let mut records = Vec::new();
    // Three records among 250 members; then m000 has left and m250 joined;
    // then m000 and m250 talk 1:1.
    for (i, n) in [(0, 250usize), (1, 250), (2, 250)] {
        let all = members(n);
        let to: Vec<&str> = all.iter().skip(1).map(String::as_str).collect();
        records.push(rec("conf", 100 + i, "m000@x", &to, "first round"));
    }
    let later: Vec<String> = members(251).into_iter().skip(1).collect();
    let to: Vec<&str> = later.iter().skip(1).map(String::as_str).collect();
    records.push(rec("conf", 200, "m001@x", &to, "second round"));
    records.push(rec("c1", 300, "m000@x", &["m250@x"], "private"));
    a.append_archive(&records).await.unwrap();
    let user = |u: &str| ArchiveQuery {
        user: Some(u.to_owned()),
        ..ArchiveQuery::default()
    };
    assert_eq!(search(&a, user("m000@x")).await, vec![1, 2, 3, 5]);
    assert_eq!(search(&a, user("m100@x")).await, vec![1, 2, 3, 4]);
    assert_eq!(search(&a, user("m250@x")).await, vec![4, 5]);
    assert_eq!(
        search(
            &a,
            ArchiveQuery {
                user: Some("m250@x".to_owned()),
                with: Some("m000@x".to_owned()),
                ..ArchiveQuery::default()
            }
        )
        .await,
        vec![4, 5],
        "m000 was in the conference, before m250"
    );
    assert_eq!(a.purge_archive(150, false).await.unwrap(), 3);
    assert_eq!(search(&a, user("m000@x")).await, vec![5]);
    assert_eq!(search(&a, user("m100@x")).await, vec![4]);
    let summary = a.conversation_summary("conf").await.unwrap().unwrap();
    assert_eq!(
        summary.participants, later,
        "m000 left with the purged records"
    );
    assert_eq!(verify(&a).await, vec![]);
}

/// A handle remembers the threads it has used; a purge by another handle (or
/// process) that removes them makes it look them up again, so that what it
/// appends next is still found by party and by conversation.
#[tokio::test]
async fn threads_remembered_by_a_handle_survive_a_purge_made_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path).await;
    let b = open(&path).await;
    a.append_archive(&[rec("c", 10, "alice@x", &["bob@x"], "first")])
        .await
        .unwrap();
    assert_eq!(b.purge_archive(100, false).await.unwrap(), 1);
    a.append_archive(&[rec("c", 200, "alice@x", &["bob@x"], "second")])
        .await
        .unwrap();
    let by = |user: Option<&str>, conversation: Option<&str>| ArchiveQuery {
        user: user.map(str::to_owned),
        conversation: conversation.map(str::to_owned),
        ..ArchiveQuery::default()
    };
    assert_eq!(search(&a, by(Some("bob@x"), None)).await, vec![2]);
    assert_eq!(search(&b, by(None, Some("c"))).await, vec![2]);
    let summary = b.conversation_summary("c").await.unwrap().unwrap();
    assert_eq!(summary.participants, vec!["alice@x", "bob@x"]);
    assert_eq!(summary.records, 1);
    assert_eq!(verify(&b).await, vec![]);
}

/// Segments of an FTS5 index (`*_idx` holds rows per segment).
async fn segments(conn: &mut SqliteConnection, index: &str) -> i64 {
    let sql = match index {
        "archive_text" => "SELECT count(DISTINCT segid) FROM archive_text_idx",
        _ => "SELECT count(DISTINCT segid) FROM archive_thread_index_idx",
    };
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

/// Each batch of appends adds a segment to both search indexes; compaction
/// merges them into one, and searches answer exactly as before; a second
/// compaction has nothing to do; appends and searches go on afterwards.
#[tokio::test]
async fn compaction_merges_the_index_segments_without_changing_any_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path).await;
    let people = ["alice@x", "bob@x", "carol@x", "dave@y"];
    for batch in 0..30i64 {
        let records: Vec<NewArchiveRecord> = (0..5i64)
            .map(|i| {
                let n = batch * 5 + i;
                let from = people[(n % 4) as usize];
                let to = people[((n + 1 + batch % 3) % 4) as usize];
                let word = if n % 7 == 0 { "budget" } else { "lunch" };
                rec(
                    &format!("c{}", n % 6),
                    1_000 + n,
                    from,
                    &[to],
                    &format!("{word} number {n}"),
                )
            })
            .collect();
        a.append_archive(&records).await.unwrap();
    }
    let mut conn = raw(&path).await;
    for index in ["archive_text", "archive_thread_index"] {
        assert!(
            segments(&mut conn, index).await > 1,
            "{index}: several segments before compaction"
        );
    }
    let mut queries = party_queries();
    queries.push(ArchiveQuery {
        text: Some("budget".to_owned()),
        ..ArchiveQuery::default()
    });
    queries.push(ArchiveQuery {
        conversation: Some("c3".to_owned()),
        text: Some("lunch".to_owned()),
        ..ArchiveQuery::default()
    });
    let mut before = Vec::new();
    for q in &queries {
        before.push(search(&a, q.clone()).await);
    }
    assert!(
        before.iter().any(|r| !r.is_empty()),
        "the queries find something"
    );

    assert!(a.compact_archive_indexes().await.unwrap() > 0);
    for index in ["archive_text", "archive_thread_index"] {
        assert_eq!(
            segments(&mut conn, index).await,
            1,
            "{index} after compaction"
        );
    }
    for (q, expected) in queries.iter().zip(&before) {
        assert_eq!(&search(&a, q.clone()).await, expected, "{q:?}");
    }
    assert_eq!(
        a.compact_archive_indexes().await.unwrap(),
        0,
        "nothing left to do"
    );
    assert_eq!(verify(&a).await, vec![]);

    a.append_archive(&[rec("c9", 5_000, "alice@x", &["bob@x"], "budget again")])
        .await
        .unwrap();
    let found = search(
        &a,
        ArchiveQuery {
            user: Some("alice@x".to_owned()),
            text: Some("again".to_owned()),
            ..ArchiveQuery::default()
        },
    )
    .await;
    assert_eq!(found, vec![151]);
}
