//! The SQLite backend against the conformance suite, plus what only a file-backed
//! embedded database has to prove: two handles (the server and the CLI) sharing
//! one file, separate processes, durability across reopen, and opening errors.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchboard_store::sqlite::SqliteStore;
use switchboard_store::{
    BindingChange, BindingRecord, ContactRecord, Contacts, Credentials, Directory, GroupRecord,
    Ha1, NewOfflineMessage, NewUser, OfflineMessages, Registrations, Store, StoreError,
    WebSessionRecord, WebSessions, conformance,
};

const FAR_MS: i64 = 4_000_000_000_000;

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data").join("switchboard.db")
}

async fn open(path: &Path) -> SqliteStore {
    match SqliteStore::open(path).await {
        Ok(s) => s,
        Err(e) => panic!("opening {}: {e:?}", path.display()),
    }
}

fn user(address: &str) -> NewUser {
    NewUser {
        address: address.to_owned(),
        display_name: None,
        credentials: Credentials {
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            ha1: vec![Ha1 {
                realm: "example.com".to_owned(),
                algorithm: "MD5".to_owned(),
                username: address.to_owned(),
                hex: "0123456789abcdef0123456789abcdef".to_owned(),
            }],
        },
        created_ms: 1,
    }
}

fn message(recipient: &str, body: &str) -> NewOfflineMessage {
    NewOfflineMessage {
        recipient: recipient.to_owned(),
        sender: "someone@partner.example".to_owned(),
        sender_display: Some("Someone".to_owned()),
        content_type: "text/plain".to_owned(),
        body: body.as_bytes().to_vec(),
        received_ms: 5,
        expires_ms: FAR_MS,
    }
}

fn binding(aor: &str, contact: &str) -> BindingRecord {
    BindingRecord {
        aor: aor.to_owned(),
        contact: contact.to_owned(),
        instance: None,
        reg_id: None,
        q_milli: None,
        expires_ms: FAR_MS,
        call_id: "c".to_owned(),
        cseq: 1,
        transport: "tcp".to_owned(),
        source: "192.0.2.1:5060".to_owned(),
        local: "192.0.2.2:5060".to_owned(),
        path: vec![],
        user_agent: None,
        features: vec![],
        registered_ms: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_a_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir)).await;
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_in_memory() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_areas_pass_each_on_a_fresh_store() {
    // The PostgreSQL backend may call the areas one by one; none may depend on
    // another having run first.
    let dir = tempfile::tempdir().unwrap();
    for (i, area) in [
        "change_seq",
        "remove_user",
        "web_sessions",
        "groups",
        "admin",
        "contacts",
        "blocking",
        "offline",
        "policies",
        "registrations",
        "directory",
    ]
    .iter()
    .enumerate()
    {
        let store = open(&dir.path().join(format!("area{i}.db"))).await;
        match *area {
            "change_seq" => conformance::change_seq(&store).await,
            "remove_user" => conformance::remove_user_cascades(&store).await,
            "web_sessions" => conformance::web_sessions(&store).await,
            "groups" => conformance::groups(&store).await,
            "admin" => conformance::admin(&store).await,
            "contacts" => conformance::contacts(&store).await,
            "blocking" => conformance::blocking(&store).await,
            "offline" => conformance::offline(&store).await,
            "policies" => conformance::policies(&store).await,
            "registrations" => conformance::registrations(&store).await,
            _ => conformance::directory(&store).await,
        }
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_see_each_others_writes_and_change_seq() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let server = open(&path).await;
    let cli = open(&path).await;

    let seen_by_server = server.change_seq().await.unwrap();
    cli.add_domain("example.com", 1).await.unwrap();
    cli.add_user(&user("alice@example.com")).await.unwrap();
    let after_cli = server.change_seq().await.unwrap();
    assert!(
        after_cli > seen_by_server,
        "the server must see the CLI's changes move change_seq ({seen_by_server} -> {after_cli})"
    );
    assert!(
        server
            .get_user("alice@example.com")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(server.all_credentials().await.unwrap().len(), 1);

    server.add_user(&user("bob@example.com")).await.unwrap();
    let contact = ContactRecord {
        owner: "bob@example.com".to_owned(),
        contact: "alice@example.com".to_owned(),
        group: None,
        level: None,
        added_ms: 3,
        listed: true,
    };
    server.upsert_contact(&contact, 10).await.unwrap();
    assert_eq!(
        cli.list_contacts("bob@example.com").await.unwrap(),
        vec![contact]
    );
    let cli_seq = cli.change_seq().await.unwrap();
    assert_eq!(
        cli_seq,
        server.change_seq().await.unwrap(),
        "both handles read the same sequence"
    );
    assert!(cli_seq > after_cli);

    // Bindings and offline messages travel too, without moving the sequence.
    server
        .apply_bindings(&[BindingChange::Upsert(binding(
            "bob@example.com",
            "sip:bob@192.0.2.9",
        ))])
        .await
        .unwrap();
    cli.enqueue_offline(&message("bob@example.com", "hi"), 10)
        .await
        .unwrap();
    assert_eq!(cli.load_bindings(0).await.unwrap().len(), 1);
    assert_eq!(
        server
            .pending_offline("bob@example.com")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(server.change_seq().await.unwrap(), cli_seq);

    cli.remove_user("alice@example.com").await.unwrap();
    assert!(
        server
            .get_user("alice@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        server
            .list_contacts("bob@example.com")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(server.change_seq().await.unwrap() > cli_seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_two_handles_do_not_fail_with_busy() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path).await;
    let b = open(&path).await;
    a.add_domain("example.com", 1).await.unwrap();

    let mut tasks = Vec::new();
    for (h, store) in [a.clone(), b.clone()].into_iter().enumerate() {
        for t in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..15 {
                    let address = format!("u{h}-{t}-{i}@example.com");
                    store.add_user(&user(&address)).await?;
                    store
                        .apply_bindings(&[BindingChange::Upsert(binding(
                            &address,
                            "sip:x@192.0.2.1",
                        ))])
                        .await?;
                    store.enqueue_offline(&message(&address, "m"), 5).await?;
                    // A read-then-write in one call: the cause of BUSY_SNAPSHOT
                    // failures when write transactions are not IMMEDIATE.
                    store.set_display_name(&address, Some("N")).await?;
                }
                Ok::<(), StoreError>(())
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(a.list_users().await.unwrap().len(), 2 * 4 * 15);
    assert_eq!(b.load_bindings(0).await.unwrap().len(), 2 * 4 * 15);
    assert_eq!(a.offline_recipients().await.unwrap().len(), 2 * 4 * 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_limit_holds_under_concurrent_enqueues_from_two_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path).await;
    let b = open(&path).await;
    a.add_domain("example.com", 1).await.unwrap();
    a.add_user(&user("busy@example.com")).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..30 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .enqueue_offline(&message("busy@example.com", &format!("m{i}")), 10)
                .await
        }));
    }
    let (mut stored, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => stored += 1,
            Err(StoreError::Limit(_)) => limited += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((stored, limited), (10, 20));
    assert_eq!(
        b.pending_offline("busy@example.com").await.unwrap().len(),
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueued_offline_message_survives_dropping_and_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let id = {
        let store = open(&path).await;
        store.add_domain("example.com", 1).await.unwrap();
        store.add_user(&user("carol@example.com")).await.unwrap();
        store
            .enqueue_offline(&message("carol@example.com", "keep me"), 10)
            .await
            .unwrap()
        // Dropped without close(): the commit alone must make it durable.
    };
    let store = open(&path).await;
    let pending = store.pending_offline("carol@example.com").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, id);
    assert_eq!(pending[0].body, b"keep me");
    store.close().await;

    let store = open(&path).await;
    assert_eq!(
        store
            .pending_offline("carol@example.com")
            .await
            .unwrap()
            .len(),
        1,
        "after a clean close too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_creates_the_directory_and_a_wal_database_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("store.db");
    let store = open(&path).await;
    store.health().await.unwrap();
    assert!(path.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [path.clone(), path.with_extension("db-wal")] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "{} holds credentials and must be private, mode {mode:o}",
                p.display()
            );
        }
    }

    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        path.display()
    ))
    .await
    .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);

    // Reopening an up-to-date database applies nothing and loses nothing.
    store.add_domain("example.com", 1).await.unwrap();
    let again = open(&path).await;
    assert_eq!(again.list_domains().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handles_opening_a_new_file_at_once_all_succeed() {
    // Each round races four opens of a fresh file: exactly one must apply the
    // migrations and the others must find them applied.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..10 {
        let path = dir.path().join(format!("race{round}.db"));
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { SqliteStore::open(&path).await })
            })
            .collect();
        let mut stores = Vec::new();
        for o in opens {
            match o.await.unwrap() {
                Ok(s) => stores.push(s),
                Err(e) => panic!("round {round}: a concurrent open failed: {e:?}"),
            }
        }
        stores[0].add_domain("example.com", 1).await.unwrap();
        assert_eq!(stores[3].list_domains().await.unwrap().len(), 1);
        assert_eq!(stores[2].change_seq().await.unwrap(), 1);
        for s in stores {
            s.close().await;
        }
    }
}

#[tokio::test]
async fn open_reports_an_unusable_path_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    match SqliteStore::open(&file.join("store.db")).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("plain-file"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn open_reports_a_file_that_is_not_a_database_as_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("garbage.db");
    std::fs::write(&file, vec![0x5a_u8; 8192]).unwrap();
    match SqliteStore::open(&file).await {
        Err(StoreError::Backend(_)) => {}
        other => panic!("expected Backend, got {other:?}"),
    }
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    open(&path).await.close().await;
    // What a newer build leaves behind: one more applied migration.
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', 1, x'00', 0)",
    )
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;
    match SqliteStore::open(&path).await {
        Err(StoreError::Backend(m)) => {
            assert!(m.contains("99990101000000") && m.contains("newer"), "{m}")
        }
        other => panic!("expected Backend, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_past_the_busy_timeout_is_unavailable_but_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;
    store.add_domain("example.com", 1).await.unwrap();

    // Another process sits on the write lock.
    let mut other = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        path.display()
    ))
    .await
    .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    assert_eq!(
        store.list_domains().await.unwrap().len(),
        1,
        "WAL readers are not blocked by a writer"
    );
    let started = Instant::now();
    match store.health().await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "the store must wait out the busy timeout first"
    );

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    store.health().await.unwrap();
}

/// Environment variable naming the database the child process writes to.
const CHILD_DB: &str = "SWITCHBOARD_STORE_TEST_CHILD_DB";

/// The "CLI" half of the cross-process test; run only by that test, in a child
/// process (`--ignored --exact`), and a no-op anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for a_separate_process_sees_and_makes_changes"]
async fn child_process_writer() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let store = open(Path::new(&path)).await;
    let before = store.change_seq().await.unwrap();
    assert!(before > 0, "the child must see the parent's domain");
    for i in 0..20 {
        store
            .add_user(&user(&format!("child{i}@example.com")))
            .await
            .unwrap();
    }
    store
        .enqueue_offline(&message("parent@example.com", "from the child"), 10)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_process_sees_and_makes_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;
    store.add_domain("example.com", 1).await.unwrap();
    store.add_user(&user("parent@example.com")).await.unwrap();
    let before = store.change_seq().await.unwrap();

    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "child_process_writer",
            "--nocapture",
        ])
        .env(CHILD_DB, &path)
        .spawn()
        .unwrap();
    // Keep writing while the child writes: neither may fail with "locked".
    let mut n = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let b = binding("parent@example.com", &format!("sip:p{n}@192.0.2.1"));
        store
            .apply_bindings(&[BindingChange::Upsert(b)])
            .await
            .unwrap();
        n += 1;
    };
    assert!(status.success(), "the child process failed: {status}");
    assert!(
        store.change_seq().await.unwrap() >= before + 20,
        "the parent must see the child's changes"
    );
    assert_eq!(store.list_users().await.unwrap().len(), 21);
    let pending = store.pending_offline("parent@example.com").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].body, b"from the child");
}

/// Opens `path` as a raw pool (foreign keys on, as the store has them), for
/// tests that must see or shape the schema beneath the store.
async fn raw_pool(path: &Path) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(true);
    sqlx::SqlitePool::connect_with(options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_a_version_1_database_keeps_its_data_and_lists_the_groups_contacts_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();

    // A database as the first release left it: only migration 1 applied, by the
    // same migrator (same checksum), with contacts filed under groups.
    let v1 = dir.path().join("migrations-v1");
    std::fs::create_dir(&v1).unwrap();
    let initial = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite/0001_initial.sql");
    std::fs::copy(&initial, v1.join("0001_initial.sql")).unwrap();
    let raw = raw_pool(&path).await;
    sqlx::migrate::Migrator::new(v1.as_path())
        .await
        .unwrap()
        .run(&raw)
        .await
        .unwrap();
    for sql in [
        "INSERT INTO domains (name, created_ms) VALUES ('example.com', 1)",
        "INSERT INTO users (address, domain, password_hash, created_ms) \
         VALUES ('alice@example.com', 'example.com', 'h', 2), \
                ('bob@example.com', 'example.com', 'h', 3)",
        "INSERT INTO contacts (owner, contact, group_name, level, added_ms) VALUES \
         ('alice@example.com', 'bob@example.com', 'Team', 'workgroup', 50), \
         ('alice@example.com', 'ext@partner.example', 'Team', NULL, 40), \
         ('alice@example.com', 'carol@partner.example', 'friends', NULL, 70), \
         ('alice@example.com', 'dave@partner.example', NULL, NULL, 60), \
         ('bob@example.com', 'alice@example.com', 'Team', NULL, 90)",
        "UPDATE meta SET value = 7 WHERE name = 'change_seq'",
    ] {
        sqlx::query(sql).execute(&raw).await.unwrap();
    }
    raw.close().await;

    let store = open(&path).await;
    assert_eq!(
        store.list_groups("alice@example.com").await.unwrap(),
        vec![
            GroupRecord {
                owner: "alice@example.com".to_owned(),
                name: "Team".to_owned(),
                created_ms: 40,
            },
            GroupRecord {
                owner: "alice@example.com".to_owned(),
                name: "friends".to_owned(),
                created_ms: 70,
            },
        ],
        "one group per name in use, created when its oldest contact was added"
    );
    assert_eq!(
        store.list_groups("bob@example.com").await.unwrap(),
        vec![GroupRecord {
            owner: "bob@example.com".to_owned(),
            name: "Team".to_owned(),
            created_ms: 90,
        }]
    );
    let users = store.list_users().await.unwrap();
    assert_eq!(users.len(), 2);
    assert!(
        users.iter().all(|u| !u.admin),
        "existing users are not administrators"
    );
    let contacts = store.list_contacts("alice@example.com").await.unwrap();
    assert_eq!(contacts.len(), 4, "contacts are kept: {contacts:?}");
    assert!(
        contacts.iter().all(|c| c.listed),
        "existing contacts stay in the list"
    );
    assert_eq!(contacts[0].contact, "dave@partner.example");
    assert_eq!(contacts[1].group.as_deref(), Some("Team"));
    assert_eq!(contacts[1].level.as_deref(), Some("workgroup"));
    assert_eq!(store.change_seq().await.unwrap(), 7);

    // The new tables work on the upgraded file, and survive reopening.
    store
        .create_web_session(&WebSessionRecord {
            token_hash: "h1".to_owned(),
            user: "alice@example.com".to_owned(),
            created_ms: 1,
            expires_ms: FAR_MS,
            client: None,
        })
        .await
        .unwrap();
    store
        .rename_group("alice@example.com", "Team", "Work")
        .await
        .unwrap();
    store.set_admin("bob@example.com", true).await.unwrap();
    store.close().await;
    let store = open(&path).await;
    assert!(store.web_session("h1").await.unwrap().is_some());
    assert_eq!(
        store
            .list_contacts("alice@example.com")
            .await
            .unwrap()
            .iter()
            .filter(|c| c.group.as_deref() == Some("Work"))
            .count(),
        2
    );
    assert!(
        store
            .get_user("bob@example.com")
            .await
            .unwrap()
            .unwrap()
            .admin
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_a_version_2_database_keeps_every_entry_listed_blocked_ones_included() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();

    // A database as version 2 left it: migrations 1 and 2 applied by the same
    // migrator. Back then a block was always an entry of the list, so the data
    // cannot tell a blocked stranger from a blocked contact: both stay listed.
    let v2 = dir.path().join("migrations-v2");
    std::fs::create_dir(&v2).unwrap();
    let set = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for name in ["0001_initial.sql", "0002_web.sql"] {
        std::fs::copy(set.join(name), v2.join(name)).unwrap();
    }
    let raw = raw_pool(&path).await;
    sqlx::migrate::Migrator::new(v2.as_path())
        .await
        .unwrap()
        .run(&raw)
        .await
        .unwrap();
    for sql in [
        "INSERT INTO domains (name, created_ms) VALUES ('example.com', 1)",
        "INSERT INTO users (address, domain, password_hash, created_ms) \
         VALUES ('alice@example.com', 'example.com', 'h', 2)",
        "INSERT INTO contact_groups (owner, name, created_ms) \
         VALUES ('alice@example.com', 'Team', 40)",
        "INSERT INTO contacts (owner, contact, group_name, level, added_ms) VALUES \
         ('alice@example.com', 'bob@example.com', 'Team', 'blocked', 40), \
         ('alice@example.com', 'eve@partner.example', NULL, 'blocked', 50)",
    ] {
        sqlx::query(sql).execute(&raw).await.unwrap();
    }
    raw.close().await;

    let store = open(&path).await;
    let contacts = store.list_contacts("alice@example.com").await.unwrap();
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    assert!(contacts.iter().all(|c| c.listed), "{contacts:?}");
    assert_eq!(
        store.list_blocked("alice@example.com").await.unwrap().len(),
        2
    );
    // Unblocking an upgraded entry keeps it, as it did before the upgrade.
    let bob = store
        .unblock_contact("alice@example.com", "bob@example.com")
        .await
        .unwrap()
        .expect("bob stays listed");
    assert_eq!((bob.group.as_deref(), bob.level), (Some("Team"), None));

    // New blocks of strangers are unlisted from now on, and survive reopening.
    store.add_user(&user("carol@example.com")).await.unwrap();
    let carol = store
        .block_contact("alice@example.com", "carol@example.com", 60, 10)
        .await
        .unwrap();
    assert!(!carol.listed);
    store.close().await;
    let store = open(&path).await;
    assert_eq!(
        store
            .get_contact("alice@example.com", "carol@example.com")
            .await
            .unwrap(),
        Some(carol)
    );
    assert_eq!(
        store
            .list_contacts("alice@example.com")
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .unblock_contact("alice@example.com", "carol@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_contact("alice@example.com", "carol@example.com")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_cascades_groups_and_web_sessions_with_their_user() {
    // remove_user deletes them itself; the foreign keys are the safety net for
    // anything else that deletes a user row.
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;
    store.add_domain("example.com", 1).await.unwrap();
    store.add_user(&user("alice@example.com")).await.unwrap();
    store.add_user(&user("bob@example.com")).await.unwrap();
    for who in ["alice@example.com", "bob@example.com"] {
        store.add_group(who, "Empty", 1).await.unwrap();
        store
            .create_web_session(&WebSessionRecord {
                token_hash: format!("hash-{who}"),
                user: who.to_owned(),
                created_ms: 1,
                expires_ms: FAR_MS,
                client: None,
            })
            .await
            .unwrap();
    }

    let raw = raw_pool(&path).await;
    sqlx::query("DELETE FROM users WHERE address = 'alice@example.com'")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;

    assert!(
        store
            .list_groups("alice@example.com")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .web_session("hash-alice@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_groups("bob@example.com").await.unwrap().len(), 1);
    assert!(
        store
            .web_session("hash-bob@example.com")
            .await
            .unwrap()
            .is_some()
    );
}
