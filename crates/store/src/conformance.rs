//! Backend conformance suite.
//!
//! Every storage backend must behave the same, because the server above it cannot
//! tell which one it runs on: the Standard Edition uses SQLite, a pool PostgreSQL,
//! and an operator may move from one to the other. These functions state that
//! behaviour as executable checks. Each backend's tests call them on a fresh store;
//! a check that fails panics with a message naming the area and the broken rule.
//!
//! The functions can share one store: each area works in its own domain
//! (`*.conformance.test`), filters what it lists to that domain, and keeps its
//! expiry times in a range no other area uses. Each one may run only once per
//! store, since it creates fixed names. [`run_all`] runs every area in turn.
//!
//! Beyond the trait documentation, the suite pins down these shared rules:
//! - sorts are byte-wise (`Team` before `friends`), with `None` groups first;
//!   group names are compared byte-wise too (`Team` and `team` are two groups);
//! - "expired at `now`" means `expires_ms <= now`, for web sessions too;
//! - a call that fails changes nothing, and does not move the change sequence;
//! - `set_policy` at user scope, `upsert_contact`, `add_group` and
//!   `create_web_session` need the user to exist, `enqueue_offline` needs the
//!   recipient to exist (`NotFound`);
//! - removing an absent binding is not an error, removing an absent contact,
//!   group, web session, policy, offline message, user or domain is `NotFound`;
//!   revoking all sessions of a user who has none returns 0;
//! - blocking someone outside the list makes an unlisted entry (level `blocked`,
//!   no group) that list-shaped calls and `max_contacts` ignore; unblocking
//!   deletes it, or clears the level of a listed contact; `upsert_contact`
//!   lists an unlisted entry as if it were new;
//! - upserting an existing contact keeps its original `added_ms`; one naming a
//!   missing group creates it with the entry's `added_ms` as `created_ms`, an
//!   existing group keeps its `created_ms`; groups stay when they empty;
//! - `rename_group` checks `NotFound` before `Conflict`, and renaming a group to
//!   its own name is `Conflict`;
//! - web sessions of a user are listed by `created_ms`, ties by token hash;
//! - only `set_credentials` (of the user's other edits) ends their web sessions;
//! - offline message ids grow with each enqueue and are never reused;
//! - error messages never contain password hashes, HA1 values or web session
//!   token hashes.

use crate::{
    BindingChange, BindingRecord, ContactRecord, Credentials, GroupRecord, Ha1, NewOfflineMessage,
    NewUser, OfflineMessage, PolicyScope, Store, StoreError, StoreResult, WebSessionRecord,
};
use serde_json::json;

/// Expiry far in the future (year 2096): never expired within a test.
const FAR_MS: i64 = 4_000_000_000_000;

/// Unwraps a result the rule says must succeed.
fn ok<T>(area: &str, what: &str, res: StoreResult<T>) -> T {
    match res {
        Ok(v) => v,
        Err(e) => panic!("conformance[{area}]: {what}: expected success, got {e:?}"),
    }
}

/// Asserts that a call failed with the expected kind of error and returns it.
macro_rules! expect_err {
    ($area:expr, $what:expr, $res:expr, $pat:pat) => {
        match $res {
            Err(e @ $pat) => e,
            other => panic!(
                "conformance[{}]: {}: expected {}, got {:?}",
                $area,
                $what,
                stringify!($pat),
                other
            ),
        }
    };
}

/// Lower-case hex of `len` characters derived from `seed`, so every test secret
/// is distinct and recognisable if it leaks into an error message.
fn fake_hex(seed: &str, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut bytes = seed.bytes().cycle();
    let mut salt = 0u8;
    while out.len() < len {
        let b = bytes.next().unwrap_or(0).wrapping_add(salt);
        salt = salt.wrapping_add(17);
        out.push_str(&format!("{b:02x}"));
    }
    out.truncate(len);
    out
}

/// Credentials with two realms' worth of HA1 values, both username forms.
fn creds(address: &str, tag: &str) -> Credentials {
    let local = address.split('@').next().unwrap_or(address);
    let realm = address.rsplit('@').next().unwrap_or(address);
    Credentials {
        password_hash: format!(
            "$argon2id$v=19$m=19456,t=2,p=1${}${}",
            fake_hex(&format!("salt{tag}{address}"), 22),
            fake_hex(&format!("hash{tag}{address}"), 43)
        ),
        ha1: vec![
            Ha1 {
                realm: realm.to_owned(),
                algorithm: "SHA-256".to_owned(),
                username: local.to_owned(),
                hex: fake_hex(&format!("sha{tag}{address}"), 64),
            },
            Ha1 {
                realm: realm.to_owned(),
                algorithm: "MD5".to_owned(),
                username: local.to_owned(),
                hex: fake_hex(&format!("md5{tag}{address}"), 32),
            },
            Ha1 {
                realm: realm.to_owned(),
                algorithm: "MD5".to_owned(),
                username: address.to_owned(),
                hex: fake_hex(&format!("md5full{tag}{address}"), 32),
            },
        ],
    }
}

fn new_user(address: &str, display: Option<&str>, created_ms: i64) -> NewUser {
    NewUser {
        address: address.to_owned(),
        display_name: display.map(str::to_owned),
        credentials: creds(address, "v1"),
        created_ms,
    }
}

/// Panics if an error message shows any secret of `c`.
fn assert_no_secret(area: &str, err: &StoreError, c: &Credentials) {
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains(&c.password_hash),
        "conformance[{area}]: error message leaks a password hash: {text}"
    );
    for h in &c.ha1 {
        assert!(
            !text.contains(&h.hex),
            "conformance[{area}]: error message leaks an HA1 value: {text}"
        );
    }
}

fn binding(aor: &str, contact: &str, expires_ms: i64) -> BindingRecord {
    BindingRecord {
        aor: aor.to_owned(),
        contact: contact.to_owned(),
        instance: None,
        reg_id: None,
        q_milli: None,
        expires_ms,
        call_id: format!("call-{contact}"),
        cseq: 1,
        transport: "udp".to_owned(),
        source: "192.0.2.10:5060".to_owned(),
        local: "192.0.2.1:5060".to_owned(),
        path: Vec::new(),
        user_agent: None,
        features: Vec::new(),
        registered_ms: 1_000,
    }
}

fn message(
    recipient: &str,
    sender: &str,
    body: &[u8],
    received_ms: i64,
    expires_ms: i64,
) -> NewOfflineMessage {
    NewOfflineMessage {
        recipient: recipient.to_owned(),
        sender: sender.to_owned(),
        sender_display: None,
        content_type: "text/plain;charset=utf-8".to_owned(),
        body: body.to_vec(),
        received_ms,
        expires_ms,
    }
}

fn contact(
    owner: &str,
    contact: &str,
    group: Option<&str>,
    level: Option<&str>,
    added_ms: i64,
) -> ContactRecord {
    ContactRecord {
        owner: owner.to_owned(),
        contact: contact.to_owned(),
        group: group.map(str::to_owned),
        level: level.map(str::to_owned),
        added_ms,
        listed: true,
    }
}

/// The stored form of a new message, for comparisons.
fn stored(id: i64, m: &NewOfflineMessage, attempts: u32) -> OfflineMessage {
    OfflineMessage {
        id,
        recipient: m.recipient.clone(),
        sender: m.sender.clone(),
        sender_display: m.sender_display.clone(),
        content_type: m.content_type.clone(),
        body: m.body.clone(),
        received_ms: m.received_ms,
        expires_ms: m.expires_ms,
        attempts,
    }
}

fn in_domain(address: &str, domain: &str) -> bool {
    address.rsplit_once('@').is_some_and(|(_, d)| d == domain)
}

fn assert_sorted<T, K: Ord + std::fmt::Debug>(
    area: &str,
    what: &str,
    items: &[T],
    key: impl Fn(&T) -> K,
) {
    for pair in items.windows(2) {
        let (a, b) = (key(&pair[0]), key(&pair[1]));
        assert!(
            a < b,
            "conformance[{area}]: {what} must be sorted without duplicates, found {a:?} before {b:?}"
        );
    }
}

/// Runs every area in turn on one store (which must be fresh).
pub async fn run_all(store: &dyn Store) {
    directory(store).await;
    registrations(store).await;
    policies(store).await;
    offline(store).await;
    contacts(store).await;
    blocking(store).await;
    admin(store).await;
    groups(store).await;
    web_sessions(store).await;
    remove_user_cascades(store).await;
    change_seq(store).await;
}

/// Domains, users and credentials: CRUD, sort orders, `NotFound`/`Conflict`,
/// credential replacement, and the rule that a domain with users cannot go.
pub async fn directory(store: &dyn Store) {
    const A: &str = "directory";
    let dom = "dir.conformance.test";
    let other = "b-dir.conformance.test";

    ok(A, "add domain", store.add_domain(dom, 10).await);
    ok(A, "add second domain", store.add_domain(other, 20).await);
    expect_err!(
        A,
        "adding an existing domain",
        store.add_domain(dom, 30).await,
        StoreError::Conflict(_)
    );
    let domains = ok(A, "list domains", store.list_domains().await);
    assert_sorted(A, "list_domains", &domains, |d| d.name.clone());
    let mine: Vec<_> = domains
        .iter()
        .filter(|d| d.name == dom || d.name == other)
        .collect();
    assert_eq!(
        mine.len(),
        2,
        "conformance[{A}]: list_domains must hold both added domains: {domains:?}"
    );
    let first = mine.iter().find(|d| d.name == dom).map(|d| d.created_ms);
    assert_eq!(
        first,
        Some(10),
        "conformance[{A}]: a duplicate add must not change created_ms"
    );
    expect_err!(
        A,
        "removing an unknown domain",
        store.remove_domain("nowhere.conformance.test").await,
        StoreError::NotFound(_)
    );

    let carol = format!("carol@{dom}");
    let alice = format!("alice@{dom}");
    let bob = format!("bob@{dom}");
    let alice_new = new_user(&alice, Some("Alice Example"), 100);
    ok(
        A,
        "add carol",
        store.add_user(&new_user(&carol, None, 102)).await,
    );
    ok(A, "add alice", store.add_user(&alice_new).await);
    ok(
        A,
        "add bob",
        store.add_user(&new_user(&bob, None, 101)).await,
    );
    let other_user = format!("olive@{other}");
    ok(
        A,
        "add a user in the other domain",
        store.add_user(&new_user(&other_user, None, 103)).await,
    );

    let got = ok(A, "get alice", store.get_user(&alice).await);
    let got =
        got.unwrap_or_else(|| panic!("conformance[{A}]: get_user of an added user returned None"));
    assert_eq!(
        got.address, alice,
        "conformance[{A}]: address must be stored as given"
    );
    assert_eq!(got.display_name.as_deref(), Some("Alice Example"));
    assert_eq!(got.created_ms, 100);
    assert!(
        ok(
            A,
            "get unknown user",
            store.get_user(&format!("nobody@{dom}")).await
        )
        .is_none(),
        "conformance[{A}]: get_user of an unknown address must be None"
    );

    let unserved = new_user("x@unserved.conformance.test", None, 1);
    let e = expect_err!(
        A,
        "adding a user in an unserved domain",
        store.add_user(&unserved).await,
        StoreError::NotFound(_)
    );
    assert_no_secret(A, &e, &unserved.credentials);
    assert!(
        ok(
            A,
            "get user refused",
            store.get_user(&unserved.address).await
        )
        .is_none(),
        "conformance[{A}]: a refused add_user must not create the user"
    );

    let mut dup = new_user(&alice, Some("Impostor"), 999);
    dup.credentials = creds(&alice, "dup");
    let e = expect_err!(
        A,
        "adding an existing user",
        store.add_user(&dup).await,
        StoreError::Conflict(_)
    );
    assert_no_secret(A, &e, &dup.credentials);
    let still = ok(A, "get alice after duplicate", store.get_user(&alice).await);
    assert_eq!(
        still.and_then(|u| u.display_name),
        Some("Alice Example".to_owned()),
        "conformance[{A}]: a refused duplicate must not overwrite the user"
    );

    let users = ok(A, "list users", store.list_users().await);
    assert_sorted(A, "list_users", &users, |u| u.address.clone());
    let mine: Vec<_> = users
        .iter()
        .filter(|u| in_domain(&u.address, dom))
        .map(|u| u.address.clone())
        .collect();
    assert_eq!(
        mine,
        vec![alice.clone(), bob.clone(), carol.clone()],
        "conformance[{A}]: list_users sorted by address"
    );

    ok(
        A,
        "set bob's display name",
        store.set_display_name(&bob, Some("Bob Builder")).await,
    );
    ok(
        A,
        "clear alice's display name",
        store.set_display_name(&alice, None).await,
    );
    let bob_rec = ok(A, "get bob", store.get_user(&bob).await);
    assert_eq!(
        bob_rec.and_then(|u| u.display_name).as_deref(),
        Some("Bob Builder")
    );
    let alice_rec = ok(A, "get alice", store.get_user(&alice).await);
    assert_eq!(
        alice_rec.and_then(|u| u.display_name),
        None,
        "conformance[{A}]: set_display_name(None) must clear it"
    );
    expect_err!(
        A,
        "renaming an unknown user",
        store
            .set_display_name(&format!("nobody@{dom}"), Some("X"))
            .await,
        StoreError::NotFound(_)
    );

    let all = ok(A, "all credentials", store.all_credentials().await);
    assert_sorted(A, "all_credentials", &all, |(a, _)| a.clone());
    let find = |all: &[(String, Credentials)], who: &str| {
        all.iter().find(|(a, _)| a == who).map(|(_, c)| c.clone())
    };
    assert_eq!(
        find(&all, &alice),
        Some(alice_new.credentials.clone()),
        "conformance[{A}]: credentials (with HA1 order) must come back as given"
    );

    let v2 = creds(&alice, "v2");
    ok(
        A,
        "set credentials",
        store.set_credentials(&alice, &v2).await,
    );
    let all = ok(
        A,
        "all credentials after change",
        store.all_credentials().await,
    );
    assert_eq!(
        find(&all, &alice),
        Some(v2.clone()),
        "conformance[{A}]: set_credentials must replace the hash and every HA1 row"
    );
    assert_eq!(
        ok(A, "password hash", store.password_hash(&alice).await),
        Some(v2.password_hash.clone()),
        "conformance[{A}]: password_hash must return the current hash"
    );
    assert_eq!(
        ok(
            A,
            "password hash of nobody",
            store.password_hash(&format!("nobody@{dom}")).await
        ),
        None,
        "conformance[{A}]: password_hash of an unknown user is None"
    );
    let none = Credentials {
        password_hash: v2.password_hash.clone(),
        ha1: Vec::new(),
    };
    ok(
        A,
        "set credentials without HA1",
        store.set_credentials(&bob, &none).await,
    );
    let all = ok(
        A,
        "all credentials after emptying HA1",
        store.all_credentials().await,
    );
    assert_eq!(
        find(&all, &bob),
        Some(none),
        "conformance[{A}]: an empty HA1 list is stored as empty"
    );

    let ghost_creds = creds("ghost@dir.conformance.test", "g");
    let e = expect_err!(
        A,
        "set credentials of an unknown user",
        store
            .set_credentials("ghost@dir.conformance.test", &ghost_creds)
            .await,
        StoreError::NotFound(_)
    );
    assert_no_secret(A, &e, &ghost_creds);

    let mut twice = creds(&alice, "v3");
    twice.ha1.push(twice.ha1[0].clone());
    let e = expect_err!(
        A,
        "credentials listing one realm/algorithm/username twice",
        store.set_credentials(&alice, &twice).await,
        StoreError::Conflict(_)
    );
    assert_no_secret(A, &e, &twice);
    let all = ok(
        A,
        "all credentials after refused change",
        store.all_credentials().await,
    );
    assert_eq!(
        find(&all, &alice),
        Some(v2),
        "conformance[{A}]: a refused set_credentials must change nothing"
    );

    expect_err!(
        A,
        "removing a domain that has users",
        store.remove_domain(dom).await,
        StoreError::Conflict(_)
    );
    let domains = ok(A, "list domains", store.list_domains().await);
    assert!(
        domains.iter().any(|d| d.name == dom),
        "conformance[{A}]: a refused remove_domain must keep the domain"
    );
    for u in [&alice, &bob, &carol] {
        ok(A, "remove user", store.remove_user(u).await);
        assert!(
            ok(A, "get removed user", store.get_user(u).await).is_none(),
            "conformance[{A}]: removed user still found"
        );
    }
    expect_err!(
        A,
        "removing a removed user",
        store.remove_user(&alice).await,
        StoreError::NotFound(_)
    );
    ok(
        A,
        "remove the emptied domain",
        store.remove_domain(dom).await,
    );
    let domains = ok(A, "list domains", store.list_domains().await);
    assert!(
        !domains.iter().any(|d| d.name == dom),
        "conformance[{A}]: removed domain still listed"
    );
    assert!(
        domains.iter().any(|d| d.name == other),
        "conformance[{A}]: removing one domain removed another"
    );
    assert!(
        ok(
            A,
            "get user of the other domain",
            store.get_user(&other_user).await
        )
        .is_some(),
        "conformance[{A}]: removing users of one domain touched another"
    );
    expect_err!(
        A,
        "adding a user to a removed domain",
        store.add_user(&new_user(&alice, None, 1)).await,
        StoreError::NotFound(_)
    );
}

/// Registrar bindings: round trip of every field, replace by (aor, contact),
/// removals, expiry boundary, purge counts, in-batch order and batch atomicity.
pub async fn registrations(store: &dyn Store) {
    const A: &str = "registrations";
    let dom = "reg.conformance.test";
    let alice = format!("alice@{dom}");
    let bob = format!("bob@{dom}");
    let load = |now: i64| async move {
        let all = ok(A, "load bindings", store.load_bindings(now).await);
        assert_sorted(A, "load_bindings", &all, |b| {
            (b.aor.clone(), b.contact.clone())
        });
        all.into_iter()
            .filter(|b| in_domain(&b.aor, dom))
            .collect::<Vec<_>>()
    };

    ok(A, "an empty batch", store.apply_bindings(&[]).await);

    let full = BindingRecord {
        aor: alice.clone(),
        contact: "<sip:alice@198.51.100.7:5062;transport=tcp;ob>".to_owned(),
        instance: Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".to_owned()),
        reg_id: Some(u32::MAX),
        q_milli: Some(1000),
        expires_ms: FAR_MS,
        call_id: "a84b4c76e66710@pc33".to_owned(),
        cseq: u32::MAX,
        transport: "tls".to_owned(),
        source: "[2001:db8::7]:50123".to_owned(),
        local: "[2001:db8::1]:5061".to_owned(),
        path: vec![
            "<sip:edge2.example.net;lr>".to_owned(),
            "<sip:edge1.example.net;lr>".to_owned(),
        ],
        user_agent: Some("Zoë-Phone/1.0 \"quoted\"".to_owned()),
        features: vec![
            "+sip.message".to_owned(),
            "methods=\"MESSAGE,INVITE\"".to_owned(),
            "isfocus".to_owned(),
        ],
        registered_ms: 1_234,
    };
    let second = BindingRecord {
        q_milli: Some(0),
        ..binding(&alice, "sip:alice@192.0.2.20", FAR_MS)
    };
    let bobs = binding(&bob, "sip:bob@192.0.2.30", FAR_MS);
    ok(
        A,
        "upsert three bindings",
        store
            .apply_bindings(&[
                BindingChange::Upsert(bobs.clone()),
                BindingChange::Upsert(full.clone()),
                BindingChange::Upsert(second.clone()),
            ])
            .await,
    );
    let mut expect = vec![full.clone(), second.clone(), bobs.clone()];
    expect.sort_by(|a, b| (&a.aor, &a.contact).cmp(&(&b.aor, &b.contact)));
    assert_eq!(
        load(0).await,
        expect,
        "conformance[{A}]: bindings must round-trip every field, sorted by (aor, contact)"
    );

    let mut renewed = full.clone();
    renewed.cseq = 7;
    renewed.expires_ms = FAR_MS + 1;
    renewed.path.reverse();
    renewed.instance = None;
    renewed.reg_id = None;
    renewed.q_milli = None;
    renewed.user_agent = None;
    renewed.features.clear();
    ok(
        A,
        "re-register",
        store
            .apply_bindings(&[BindingChange::Upsert(renewed.clone())])
            .await,
    );
    let now = load(0).await;
    assert_eq!(
        now.len(),
        3,
        "conformance[{A}]: an upsert of the same (aor, contact) must replace, not add"
    );
    assert!(
        now.contains(&renewed),
        "conformance[{A}]: the replacement must be stored whole: {now:?}"
    );

    // Expiry boundary: expired at now means expires_ms <= now.
    let edge = binding(&alice, "sip:alice@edge.invalid", 5_000);
    ok(
        A,
        "upsert a short binding",
        store
            .apply_bindings(&[BindingChange::Upsert(edge.clone())])
            .await,
    );
    assert!(
        load(4_999).await.contains(&edge),
        "conformance[{A}]: a binding is live before its expiry"
    );
    assert!(
        !load(5_000).await.contains(&edge),
        "conformance[{A}]: a binding expiring at now is not loaded"
    );

    ok(
        A,
        "remove one binding and an absent one",
        store
            .apply_bindings(&[
                BindingChange::Remove {
                    aor: alice.clone(),
                    contact: second.contact.clone(),
                },
                BindingChange::Remove {
                    aor: alice.clone(),
                    contact: "sip:never@registered".to_owned(),
                },
                BindingChange::RemoveAll {
                    aor: format!("nobody@{dom}"),
                },
            ])
            .await,
    );
    let now = load(0).await;
    assert!(
        !now.contains(&second),
        "conformance[{A}]: Remove must delete the binding"
    );
    assert_eq!(
        now.len(),
        3,
        "conformance[{A}]: Remove must delete only its binding: {now:?}"
    );

    ok(
        A,
        "remove all of bob's",
        store
            .apply_bindings(&[BindingChange::RemoveAll { aor: bob.clone() }])
            .await,
    );
    let now = load(0).await;
    assert!(
        now.iter().all(|b| b.aor != bob),
        "conformance[{A}]: RemoveAll must delete every binding of the aor"
    );
    assert!(
        now.contains(&renewed),
        "conformance[{A}]: RemoveAll must not touch other aors"
    );

    // Changes in a batch apply in order.
    let x = binding(&bob, "sip:bob@x.invalid", FAR_MS);
    let y = binding(&bob, "sip:bob@y.invalid", FAR_MS);
    ok(
        A,
        "ordered batch",
        store
            .apply_bindings(&[
                BindingChange::Upsert(x.clone()),
                BindingChange::Remove {
                    aor: bob.clone(),
                    contact: x.contact.clone(),
                },
                BindingChange::Remove {
                    aor: bob.clone(),
                    contact: y.contact.clone(),
                },
                BindingChange::Upsert(y.clone()),
            ])
            .await,
    );
    let now = load(0).await;
    assert!(
        !now.contains(&x),
        "conformance[{A}]: Upsert then Remove in one batch must leave nothing"
    );
    assert!(
        now.contains(&y),
        "conformance[{A}]: Remove then Upsert in one batch must leave the binding"
    );

    // All or nothing: the last change is invalid (q above 1.0), so none applies.
    let fresh = binding(&bob, "sip:bob@fresh.invalid", FAR_MS);
    let bad = BindingRecord {
        q_milli: Some(1001),
        ..binding(&bob, "sip:bob@bad.invalid", FAR_MS)
    };
    let res = store
        .apply_bindings(&[
            BindingChange::Upsert(fresh.clone()),
            BindingChange::Remove {
                aor: alice.clone(),
                contact: renewed.contact.clone(),
            },
            BindingChange::RemoveAll { aor: bob.clone() },
            BindingChange::Upsert(bad),
        ])
        .await;
    assert!(
        res.is_err(),
        "conformance[{A}]: a binding with q_milli 1001 must be refused, got {res:?}"
    );
    let after = load(0).await;
    assert_eq!(
        after, now,
        "conformance[{A}]: a failed batch must leave the bindings exactly as they were"
    );

    // Purge: exactly the bindings expired at now, counted.
    let p1 = binding(&alice, "sip:alice@p1.invalid", 1_000);
    let p2 = binding(&bob, "sip:bob@p2.invalid", 1_000);
    let p3 = binding(&bob, "sip:bob@p3.invalid", 1_001);
    ok(
        A,
        "upsert short bindings",
        store
            .apply_bindings(&[
                BindingChange::Upsert(p1),
                BindingChange::Upsert(p2),
                BindingChange::Upsert(p3.clone()),
            ])
            .await,
    );
    ok(
        A,
        "purge anything older",
        store.purge_expired_bindings(999).await,
    );
    assert_eq!(
        ok(
            A,
            "purge at 1000",
            store.purge_expired_bindings(1_000).await
        ),
        2,
        "conformance[{A}]: purge must delete and count the bindings with expires_ms <= now"
    );
    assert_eq!(
        ok(A, "purge again", store.purge_expired_bindings(1_000).await),
        0,
        "conformance[{A}]: a second purge finds nothing"
    );
    let live = load(0).await;
    assert!(
        live.contains(&p3),
        "conformance[{A}]: purge must keep bindings expiring later"
    );
    assert!(
        live.contains(&renewed) && live.contains(&y),
        "conformance[{A}]: purge must keep live bindings"
    );
    assert!(
        ok(
            A,
            "purge the rest of the short ones",
            store.purge_expired_bindings(5_000).await
        ) >= 2
    );
    let live = load(0).await;
    assert!(
        !live.contains(&p3) && !live.contains(&edge),
        "conformance[{A}]: purge at 5000 must delete p3 and edge"
    );
}

/// Policy documents: get/set/replace/clear, kinds kept apart, list order, JSON
/// fidelity, and user scope requiring the user.
pub async fn policies(store: &dyn Store) {
    const A: &str = "policies";
    let dom = "pol.conformance.test";
    let kind = "conformance.im";
    let other_kind = "conformance.privacy";
    let zed = format!("zed@{dom}");
    let amy = format!("amy@{dom}");
    ok(A, "add domain", store.add_domain(dom, 1).await);
    ok(A, "add zed", store.add_user(&new_user(&zed, None, 1)).await);
    ok(A, "add amy", store.add_user(&new_user(&amy, None, 1)).await);

    let g = PolicyScope::Global;
    let uz = PolicyScope::User(zed.clone());
    let ua = PolicyScope::User(amy.clone());
    assert_eq!(
        ok(A, "get unset", store.get_policy(kind, &g).await),
        None,
        "conformance[{A}]: an unset policy is None"
    );
    assert!(ok(A, "list empty kind", store.list_policies(kind).await).is_empty());

    let doc1 = json!({"offline_im": true});
    let doc2 = json!({
        "offline_im": false,
        "max": 1_000_000_000_000_i64,
        "ratio": 0.25,
        "nested": {"list": [1, "two", null, {"deep": [true]}]},
        "text": "Zoë – \"quoted\" \\ 日本",
        "empty": {}
    });
    ok(A, "set global", store.set_policy(kind, &g, &doc1).await);
    assert_eq!(
        ok(A, "get global", store.get_policy(kind, &g).await),
        Some(doc1)
    );
    ok(A, "replace global", store.set_policy(kind, &g, &doc2).await);
    assert_eq!(
        ok(A, "get replaced", store.get_policy(kind, &g).await),
        Some(doc2.clone()),
        "conformance[{A}]: set_policy must replace, and JSON must round-trip exactly"
    );

    let dz = json!({"offline_im": true, "who": "zed"});
    let da = json!(["amy", 1]);
    ok(A, "set zed", store.set_policy(kind, &uz, &dz).await);
    ok(A, "set amy", store.set_policy(kind, &ua, &da).await);
    let od = json!("privacy-doc");
    ok(
        A,
        "set other kind",
        store.set_policy(other_kind, &g, &od).await,
    );
    assert_eq!(
        ok(A, "list", store.list_policies(kind).await),
        vec![
            (g.clone(), doc2.clone()),
            (ua.clone(), da.clone()),
            (uz.clone(), dz.clone())
        ],
        "conformance[{A}]: list_policies must give global first, then users by address, and only its kind"
    );
    assert_eq!(
        ok(A, "get other kind", store.get_policy(other_kind, &g).await),
        Some(od.clone())
    );
    assert_eq!(
        ok(
            A,
            "other kind at user scope",
            store.get_policy(other_kind, &ua).await
        ),
        None,
        "conformance[{A}]: kinds must be kept apart"
    );
    assert_eq!(
        ok(A, "list other kind", store.list_policies(other_kind).await),
        vec![(g.clone(), od)]
    );

    ok(A, "clear zed", store.clear_policy(kind, &uz).await);
    assert_eq!(
        ok(A, "get cleared", store.get_policy(kind, &uz).await),
        None
    );
    expect_err!(
        A,
        "clearing a cleared policy",
        store.clear_policy(kind, &uz).await,
        StoreError::NotFound(_)
    );
    expect_err!(
        A,
        "clearing a never-set kind",
        store.clear_policy("conformance.never", &g).await,
        StoreError::NotFound(_)
    );

    let ghost = PolicyScope::User(format!("ghost@{dom}"));
    expect_err!(
        A,
        "a user-scope policy for an unknown user",
        store.set_policy(kind, &ghost, &json!({})).await,
        StoreError::NotFound(_)
    );
    assert_eq!(
        ok(A, "list after refusals", store.list_policies(kind).await),
        vec![(g, doc2), (ua, da)],
        "conformance[{A}]: refused calls must change nothing"
    );
}

/// Offline messages: enqueue order and fidelity, atomic per-recipient limit,
/// attempts, deletion, recipients, expiry boundary, ids never reused.
pub async fn offline(store: &dyn Store) {
    const A: &str = "offline";
    let dom = "off.conformance.test";
    let rcpt = format!("rcpt@{dom}");
    let other = format!("other@{dom}");
    let quiet = format!("quiet@{dom}");
    ok(A, "add domain", store.add_domain(dom, 1).await);
    for u in [&rcpt, &other, &quiet] {
        ok(A, "add user", store.add_user(&new_user(u, None, 1)).await);
    }
    let mine = |list: Vec<String>| {
        list.into_iter()
            .filter(|r| in_domain(r, dom))
            .collect::<Vec<_>>()
    };

    assert!(
        ok(
            A,
            "pending of a user with none",
            store.pending_offline(&rcpt).await
        )
        .is_empty()
    );
    assert!(mine(ok(A, "recipients", store.offline_recipients().await)).is_empty());

    // Enqueue order is delivery order, whatever received_ms says.
    let mut m1 = message(&rcpt, "sender@partner.example", b"first", 300, FAR_MS);
    m1.sender_display = Some("Sänder \"S\"".to_owned());
    let m2 = message(
        &rcpt,
        "sender@partner.example",
        &[0, 159, 146, 150, 255, 0],
        100,
        FAR_MS,
    );
    let mut m3 = message(&rcpt, &other, b"", 200, FAR_MS);
    m3.content_type = "message/cpim".to_owned();
    let id1 = ok(A, "enqueue m1", store.enqueue_offline(&m1, 3).await);
    let id2 = ok(A, "enqueue m2", store.enqueue_offline(&m2, 3).await);
    let id3 = ok(A, "enqueue m3", store.enqueue_offline(&m3, 3).await);
    assert!(
        id1 < id2 && id2 < id3,
        "conformance[{A}]: ids must grow with each enqueue: {id1}, {id2}, {id3}"
    );
    let expect = vec![
        stored(id1, &m1, 0),
        stored(id2, &m2, 0),
        stored(id3, &m3, 0),
    ];
    assert_eq!(
        ok(A, "pending", store.pending_offline(&rcpt).await),
        expect,
        "conformance[{A}]: pending_offline must return every field (binary body included) in enqueue order"
    );

    // The limit counts waiting messages and refuses the one over it.
    let m4 = message(&rcpt, "late@partner.example", b"fourth", 400, FAR_MS);
    expect_err!(
        A,
        "enqueue over the limit",
        store.enqueue_offline(&m4, 3).await,
        StoreError::Limit(_)
    );
    assert_eq!(
        ok(
            A,
            "pending after refusal",
            store.pending_offline(&rcpt).await
        )
        .len(),
        3,
        "conformance[{A}]: a refused enqueue must store nothing"
    );
    let to_other = message(&other, &rcpt, b"hi", 1, FAR_MS);
    expect_err!(
        A,
        "enqueue with a limit of 0",
        store.enqueue_offline(&to_other, 0).await,
        StoreError::Limit(_)
    );
    let id_o = ok(
        A,
        "enqueue to other (limit counts per recipient)",
        store.enqueue_offline(&to_other, 1).await,
    );
    let id4 = ok(
        A,
        "enqueue m4 with a higher limit",
        store.enqueue_offline(&m4, 4).await,
    );
    expect_err!(
        A,
        "enqueue to an unknown user",
        store
            .enqueue_offline(
                &message(&format!("ghost@{dom}"), &rcpt, b"x", 1, FAR_MS),
                10
            )
            .await,
        StoreError::NotFound(_)
    );

    assert_eq!(
        mine(ok(A, "recipients", store.offline_recipients().await)),
        vec![other.clone(), rcpt.clone()],
        "conformance[{A}]: offline_recipients lists each recipient with messages once, sorted"
    );
    let all = ok(A, "recipients", store.offline_recipients().await);
    assert_sorted(A, "offline_recipients", &all, |r| r.clone());

    ok(A, "record attempt", store.record_offline_attempt(id1).await);
    ok(A, "record attempt", store.record_offline_attempt(id1).await);
    ok(A, "record attempt", store.record_offline_attempt(id3).await);
    let pending = ok(
        A,
        "pending after attempts",
        store.pending_offline(&rcpt).await,
    );
    let attempts: Vec<_> = pending.iter().map(|m| (m.id, m.attempts)).collect();
    assert_eq!(
        attempts,
        vec![(id1, 2), (id2, 0), (id3, 1), (id4, 0)],
        "conformance[{A}]: attempts must be counted per message"
    );

    ok(A, "delete m2", store.delete_offline(id2).await);
    expect_err!(
        A,
        "deleting a deleted message",
        store.delete_offline(id2).await,
        StoreError::NotFound(_)
    );
    expect_err!(
        A,
        "attempt on a deleted message",
        store.record_offline_attempt(id2).await,
        StoreError::NotFound(_)
    );
    let ids: Vec<_> = ok(A, "pending", store.pending_offline(&rcpt).await)
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        ids,
        vec![id1, id3, id4],
        "conformance[{A}]: delete_offline must remove exactly that message"
    );

    // Ids are never reused, not even the newest one after its deletion.
    ok(A, "delete m4", store.delete_offline(id4).await);
    let id5 = ok(
        A,
        "enqueue after deleting the newest",
        store.enqueue_offline(&m4, 10).await,
    );
    assert!(
        id5 > id4,
        "conformance[{A}]: a new id ({id5}) must be above every earlier one ({id4})"
    );
    assert!(id5 > id_o);

    // Expiry: expired at now means expires_ms <= now; expired messages are
    // deleted and returned, in id order; pending keeps them until then.
    let e1 = message(&rcpt, "s@partner.example", b"e1", 1, 1_000);
    let e2 = message(&rcpt, "s@partner.example", b"e2", 1, 2_000);
    let e3 = message(&other, "s@partner.example", b"e3", 1, 1_000);
    let ide1 = ok(A, "enqueue e1", store.enqueue_offline(&e1, 10).await);
    let ide2 = ok(A, "enqueue e2", store.enqueue_offline(&e2, 10).await);
    let ide3 = ok(A, "enqueue e3", store.enqueue_offline(&e3, 10).await);
    ok(A, "expire anything older", store.expire_offline(999).await);
    let pending = ok(
        A,
        "pending before expiry",
        store.pending_offline(&rcpt).await,
    );
    assert!(
        pending.iter().any(|m| m.id == ide1),
        "conformance[{A}]: a message must not expire before its time"
    );
    let expired: Vec<_> = ok(A, "expire at 1000", store.expire_offline(1_000).await)
        .into_iter()
        .filter(|m| in_domain(&m.recipient, dom))
        .collect();
    assert_eq!(
        expired,
        vec![stored(ide1, &e1, 0), stored(ide3, &e3, 0)],
        "conformance[{A}]: expire_offline must return the messages with expires_ms <= now, in id order"
    );
    let ids: Vec<_> = ok(
        A,
        "pending after expiry",
        store.pending_offline(&rcpt).await,
    )
    .iter()
    .map(|m| m.id)
    .collect();
    assert_eq!(
        ids,
        vec![id1, id3, id5, ide2],
        "conformance[{A}]: expiry must delete exactly the expired messages"
    );
    let again: Vec<_> = ok(A, "expire again", store.expire_offline(1_000).await)
        .into_iter()
        .filter(|m| in_domain(&m.recipient, dom))
        .collect();
    assert!(
        again.is_empty(),
        "conformance[{A}]: an expired message is returned once"
    );
    expect_err!(
        A,
        "deleting an expired message",
        store.delete_offline(ide1).await,
        StoreError::NotFound(_)
    );

    let waiting = ok(A, "pending of other", store.pending_offline(&other).await);
    assert_eq!(waiting.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id_o]);
    ok(
        A,
        "deliver other's message",
        store.delete_offline(id_o).await,
    );
    assert_eq!(
        mine(ok(A, "recipients", store.offline_recipients().await)),
        vec![rcpt.clone()],
        "conformance[{A}]: a recipient without waiting messages is not listed"
    );
    assert!(ok(A, "pending of quiet", store.pending_offline(&quiet).await).is_empty());
}

/// Contact lists: add/update/remove, list order, the limit applying to new
/// entries only, `added_ms` kept on update, and who-has-me lookups.
pub async fn contacts(store: &dyn Store) {
    const A: &str = "contacts";
    let dom = "con.conformance.test";
    let olga = format!("olga@{dom}");
    let pete = format!("pete@{dom}");
    let tina = format!("tina@{dom}");
    let zoe = format!("zoe@{dom}");
    let ext = "ext@con-partner.example".to_owned();
    ok(A, "add domain", store.add_domain(dom, 1).await);
    for u in [&olga, &pete, &tina] {
        ok(A, "add user", store.add_user(&new_user(u, None, 1)).await);
    }
    assert!(ok(A, "empty list", store.list_contacts(&olga).await).is_empty());

    let c_tina = contact(&olga, &tina, Some("Team"), Some("workgroup"), 10);
    let c_ext = contact(&olga, &ext, None, None, 11);
    let c_pete = contact(&olga, &pete, Some("friends"), Some("family"), 12);
    let c_zoe = contact(&olga, &zoe, Some("Team"), Some("blocked"), 13);
    for c in [&c_tina, &c_ext, &c_pete, &c_zoe] {
        ok(A, "add contact", store.upsert_contact(c, 4).await);
    }
    assert_eq!(
        ok(A, "list", store.list_contacts(&olga).await),
        vec![c_ext.clone(), c_tina.clone(), c_zoe.clone(), c_pete.clone()],
        "conformance[{A}]: list_contacts sorts ungrouped first, then by group byte-wise (\"Team\" < \"friends\"), then by address"
    );

    // The list is full: new entries are refused, edits are not.
    let quinn = contact(&olga, &format!("quinn@{dom}"), None, None, 14);
    expect_err!(
        A,
        "adding to a full list",
        store.upsert_contact(&quinn, 4).await,
        StoreError::Limit(_)
    );
    let moved = contact(&olga, &tina, Some("friends"), Some("family"), 999);
    ok(
        A,
        "editing an entry of a full list",
        store.upsert_contact(&moved, 4).await,
    );
    ok(
        A,
        "editing with a limit below the size",
        store.upsert_contact(&moved, 1).await,
    );
    let list = ok(A, "list after edit", store.list_contacts(&olga).await);
    assert_eq!(
        list.len(),
        4,
        "conformance[{A}]: an update must not add an entry"
    );
    let t = list.iter().find(|c| c.contact == tina).cloned();
    assert_eq!(
        t,
        Some(ContactRecord {
            added_ms: 10,
            ..moved.clone()
        }),
        "conformance[{A}]: an update replaces group and level and keeps the original added_ms"
    );

    ok(A, "remove zoe", store.remove_contact(&olga, &zoe).await);
    expect_err!(
        A,
        "removing a removed contact",
        store.remove_contact(&olga, &zoe).await,
        StoreError::NotFound(_)
    );
    expect_err!(
        A,
        "removing from an unknown owner's list",
        store.remove_contact(&format!("ghost@{dom}"), &tina).await,
        StoreError::NotFound(_)
    );
    ok(
        A,
        "now there is room",
        store.upsert_contact(&quinn, 4).await,
    );

    let p_tina = contact(&pete, &tina, None, Some("colleagues"), 20);
    ok(
        A,
        "pete adds tina",
        store.upsert_contact(&p_tina, 1000).await,
    );
    assert_eq!(
        ok(A, "who has tina", store.contacts_naming(&tina).await),
        vec![
            ContactRecord {
                added_ms: 10,
                ..moved
            },
            p_tina.clone()
        ],
        "conformance[{A}]: contacts_naming lists every owner's entry, sorted by owner"
    );
    assert!(ok(A, "who has zoe", store.contacts_naming(&zoe).await).is_empty());
    let all = ok(A, "all contacts", store.all_contacts().await);
    assert!(
        all.contains(&p_tina) && all.contains(&c_ext),
        "conformance[{A}]: all_contacts holds every entry"
    );
    assert!(
        all.windows(2)
            .all(|w| (w[0].owner.as_str(), w[0].contact.as_str())
                < (w[1].owner.as_str(), w[1].contact.as_str())),
        "conformance[{A}]: all_contacts is sorted by owner then contact"
    );
    assert_eq!(
        ok(A, "who has ext", store.contacts_naming(&ext).await),
        vec![c_ext]
    );

    expect_err!(
        A,
        "a contact list for an unknown owner",
        store
            .upsert_contact(&contact(&format!("ghost@{dom}"), &tina, None, None, 1), 10)
            .await,
        StoreError::NotFound(_)
    );
    assert!(
        ok(
            A,
            "unknown owner's list",
            store.list_contacts(&format!("ghost@{dom}")).await
        )
        .is_empty()
    );
}

/// Blocking: a block of someone outside the list is an unlisted entry that no
/// list-shaped call returns and no list limit counts, that `upsert_contact`
/// turns into a listed entry and `unblock_contact` deletes; a block of a listed
/// contact only changes its level, and unblocking it keeps it listed.
pub async fn blocking(store: &dyn Store) {
    const A: &str = "blocking";
    let dom = "blk.conformance.test";
    let olga = format!("olga@{dom}");
    let pete = format!("pete@{dom}");
    let tina = format!("tina@{dom}");
    let ext = "ext@blk-partner.example".to_owned();
    let spam = "spam@blk-partner.example".to_owned();
    let troll = "troll@blk-partner.example".to_owned();
    ok(A, "add domain", store.add_domain(dom, 1).await);
    for u in [&olga, &pete, &tina] {
        ok(A, "add user", store.add_user(&new_user(u, None, 1)).await);
    }
    let c_pete = contact(&olga, &pete, Some("Team"), Some("workgroup"), 10);
    ok(A, "add pete", store.upsert_contact(&c_pete, 1).await);
    let blocked = |contact: &str, added_ms: i64| ContactRecord {
        owner: olga.clone(),
        contact: contact.to_owned(),
        group: None,
        level: Some(ContactRecord::BLOCKED.to_owned()),
        added_ms,
        listed: false,
    };

    // A stranger: an unlisted entry, outside the list and its limit.
    assert_eq!(
        ok(
            A,
            "block ext",
            store.block_contact(&olga, &ext, 20, 2).await
        ),
        blocked(&ext, 20),
        "conformance[{A}]: blocking someone outside the list makes an unlisted entry (level blocked, no group, added now)"
    );
    ok(
        A,
        "block spam",
        store.block_contact(&olga, &spam, 21, 2).await,
    );
    assert_eq!(
        ok(A, "list", store.list_contacts(&olga).await),
        vec![c_pete.clone()],
        "conformance[{A}]: list_contacts leaves out unlisted blocks"
    );
    assert!(
        ok(A, "who has ext", store.contacts_naming(&ext).await).is_empty(),
        "conformance[{A}]: contacts_naming leaves out unlisted blocks"
    );
    assert_eq!(
        ok(A, "get ext", store.get_contact(&olga, &ext).await),
        Some(blocked(&ext, 20))
    );
    assert_eq!(
        ok(A, "get nobody", store.get_contact(&olga, &tina).await),
        None
    );
    let all = ok(A, "all contacts", store.all_contacts().await);
    assert!(
        all.contains(&blocked(&ext, 20)) && all.contains(&c_pete),
        "conformance[{A}]: all_contacts holds unlisted blocks too"
    );
    expect_err!(
        A,
        "a third unlisted block over max_blocked",
        store.block_contact(&olga, &troll, 22, 2).await,
        StoreError::Limit(_)
    );
    assert_eq!(
        ok(A, "get troll", store.get_contact(&olga, &troll).await),
        None
    );
    assert_eq!(
        ok(
            A,
            "block ext again",
            store.block_contact(&olga, &ext, 99, 2).await
        ),
        blocked(&ext, 20),
        "conformance[{A}]: blocking again changes nothing (not even added_ms), even at the limit"
    );
    // max_contacts counts listed entries only (pete is the one).
    let c_tina = contact(&olga, &tina, None, None, 30);
    ok(A, "add tina", store.upsert_contact(&c_tina, 2).await);
    expect_err!(
        A,
        "listing a blocked stranger in a full list",
        store
            .upsert_contact(&contact(&olga, &spam, None, None, 31), 2)
            .await,
        StoreError::Limit(_)
    );
    assert_eq!(
        ok(
            A,
            "spam after refusal",
            store.get_contact(&olga, &spam).await
        ),
        Some(blocked(&spam, 21)),
        "conformance[{A}]: a refused upsert leaves the block as it was"
    );
    expect_err!(
        A,
        "remove_contact of an unlisted block",
        store.remove_contact(&olga, &spam).await,
        StoreError::NotFound(_)
    );
    assert!(
        ok(
            A,
            "spam still blocked",
            store.get_contact(&olga, &spam).await
        )
        .is_some()
    );

    // A listed contact: only the level changes, and comes back on unblock.
    let b_pete = ok(
        A,
        "block pete",
        store.block_contact(&olga, &pete, 40, 0).await,
    );
    assert_eq!(
        b_pete,
        ContactRecord {
            level: Some(ContactRecord::BLOCKED.to_owned()),
            ..c_pete.clone()
        },
        "conformance[{A}]: blocking a listed contact keeps group, added_ms and listed (max_blocked does not apply)"
    );
    assert_eq!(
        ok(A, "blocked list", store.list_blocked(&olga).await),
        vec![blocked(&ext, 20), b_pete.clone(), blocked(&spam, 21)],
        "conformance[{A}]: list_blocked holds listed and unlisted blocks, sorted by contact"
    );
    assert!(
        ok(A, "list", store.list_contacts(&olga).await).contains(&b_pete),
        "conformance[{A}]: a blocked contact stays in the list"
    );
    assert_eq!(
        ok(A, "unblock pete", store.unblock_contact(&olga, &pete).await),
        Some(ContactRecord {
            level: None,
            ..c_pete.clone()
        }),
        "conformance[{A}]: unblocking a listed contact keeps it listed, in its group, without a level"
    );
    assert_eq!(
        ok(A, "get pete", store.get_contact(&olga, &pete).await),
        Some(ContactRecord {
            level: None,
            ..c_pete.clone()
        })
    );
    expect_err!(
        A,
        "unblocking a contact who is not blocked",
        store.unblock_contact(&olga, &pete).await,
        StoreError::NotFound(_)
    );
    expect_err!(
        A,
        "unblocking someone unknown",
        store.unblock_contact(&olga, &troll).await,
        StoreError::NotFound(_)
    );

    // Unblocking a stranger leaves no trace.
    assert_eq!(
        ok(A, "unblock ext", store.unblock_contact(&olga, &ext).await),
        None
    );
    assert_eq!(
        ok(A, "get ext", store.get_contact(&olga, &ext).await),
        None,
        "conformance[{A}]: unblocking an unlisted block deletes it"
    );
    assert!(
        !ok(A, "all contacts", store.all_contacts().await)
            .iter()
            .any(|c| c.owner == olga && c.contact == ext)
    );
    expect_err!(
        A,
        "unblocking twice",
        store.unblock_contact(&olga, &ext).await,
        StoreError::NotFound(_)
    );

    // Adding a blocked stranger lists them, as given and as new.
    let c_spam = contact(&olga, &spam, Some("Partners"), None, 50);
    ok(A, "add spam", store.upsert_contact(&c_spam, 3).await);
    assert_eq!(
        ok(A, "get spam", store.get_contact(&olga, &spam).await),
        Some(c_spam.clone()),
        "conformance[{A}]: upsert_contact lists an unlisted block with the entry's group, level and added_ms"
    );
    assert!(ok(A, "blocked list", store.list_blocked(&olga).await).is_empty());
    ok(
        A,
        "upsert ignores listed=false",
        store
            .upsert_contact(
                &ContactRecord {
                    listed: false,
                    ..contact(&olga, &troll, None, Some("blocked"), 60)
                },
                4,
            )
            .await,
    );
    assert!(
        ok(A, "get troll", store.get_contact(&olga, &troll).await).is_some_and(|c| c.listed),
        "conformance[{A}]: upsert_contact always lists the entry"
    );

    expect_err!(
        A,
        "blocking for an unknown owner",
        store
            .block_contact(&format!("ghost@{dom}"), &ext, 1, 10)
            .await,
        StoreError::NotFound(_)
    );
    expect_err!(
        A,
        "unblocking for an unknown owner",
        store.unblock_contact(&format!("ghost@{dom}"), &ext).await,
        StoreError::NotFound(_)
    );

    // Removing a user takes their blocks, and blocks of them, along.
    ok(
        A,
        "tina blocks ext",
        store.block_contact(&tina, &ext, 70, 5).await,
    );
    ok(
        A,
        "tina blocks olga",
        store.block_contact(&tina, &olga, 71, 5).await,
    );
    ok(A, "remove olga", store.remove_user(&olga).await);
    assert_eq!(
        ok(A, "tina's blocks", store.list_blocked(&tina).await)
            .iter()
            .map(|c| c.contact.as_str())
            .collect::<Vec<_>>(),
        vec![ext.as_str()]
    );
    assert!(
        !ok(A, "all contacts", store.all_contacts().await)
            .iter()
            .any(|c| c.owner == olga || c.contact == olga)
    );
}

/// The administrator role: off for new users, `set_admin` turns it on and off,
/// other user edits leave it alone, and a re-created user starts without it.
pub async fn admin(store: &dyn Store) {
    const A: &str = "admin";
    let dom = "adm.conformance.test";
    let ann = format!("ann@{dom}");
    let ben = format!("ben@{dom}");
    let is_admin = |address: String| async move {
        ok(A, "get user", store.get_user(&address).await)
            .unwrap_or_else(|| panic!("conformance[{A}]: user {address} is missing"))
            .admin
    };
    let listed_admins = || async move {
        ok(A, "list users", store.list_users().await)
            .into_iter()
            .filter(|u| in_domain(&u.address, dom) && u.admin)
            .map(|u| u.address)
            .collect::<Vec<_>>()
    };
    ok(A, "add domain", store.add_domain(dom, 1).await);
    ok(A, "add ann", store.add_user(&new_user(&ann, None, 1)).await);
    ok(A, "add ben", store.add_user(&new_user(&ben, None, 1)).await);
    assert!(
        !is_admin(ann.clone()).await && !is_admin(ben.clone()).await,
        "conformance[{A}]: add_user must create users who are not administrators"
    );
    assert!(listed_admins().await.is_empty());

    ok(A, "grant ann", store.set_admin(&ann, true).await);
    assert!(
        is_admin(ann.clone()).await,
        "conformance[{A}]: set_admin(true) must show in get_user"
    );
    assert!(
        !is_admin(ben.clone()).await,
        "conformance[{A}]: set_admin must touch only its user"
    );
    assert_eq!(
        listed_admins().await,
        vec![ann.clone()],
        "conformance[{A}]: list_users must carry the role"
    );
    ok(A, "grant ann again", store.set_admin(&ann, true).await);
    assert!(is_admin(ann.clone()).await);

    ok(
        A,
        "rename ann",
        store.set_display_name(&ann, Some("Ann")).await,
    );
    ok(
        A,
        "change ann's password",
        store.set_credentials(&ann, &creds(&ann, "v2")).await,
    );
    assert!(
        is_admin(ann.clone()).await,
        "conformance[{A}]: set_display_name and set_credentials must keep the role"
    );

    ok(A, "withdraw ann", store.set_admin(&ann, false).await);
    assert!(
        !is_admin(ann.clone()).await,
        "conformance[{A}]: set_admin(false) must withdraw the role"
    );
    ok(A, "withdraw again", store.set_admin(&ann, false).await);
    expect_err!(
        A,
        "set_admin of an unknown user",
        store.set_admin(&format!("ghost@{dom}"), true).await,
        StoreError::NotFound(_)
    );
    assert!(
        ok(
            A,
            "get ghost",
            store.get_user(&format!("ghost@{dom}")).await
        )
        .is_none(),
        "conformance[{A}]: a refused set_admin must not create a user"
    );

    ok(A, "grant ben", store.set_admin(&ben, true).await);
    ok(A, "remove ben", store.remove_user(&ben).await);
    ok(
        A,
        "re-create ben",
        store.add_user(&new_user(&ben, None, 2)).await,
    );
    assert!(
        !is_admin(ben.clone()).await,
        "conformance[{A}]: a re-created user must start without the role"
    );
}

fn group(owner: &str, name: &str, created_ms: i64) -> GroupRecord {
    GroupRecord {
        owner: owner.to_owned(),
        name: name.to_owned(),
        created_ms,
    }
}

/// Contact groups: explicit and implicit creation, byte-wise order, per-owner
/// names, rename carrying the contacts, removal ungrouping them, and the error
/// kinds (`NotFound` checked before `Conflict`).
pub async fn groups(store: &dyn Store) {
    const A: &str = "groups";
    let dom = "grp.conformance.test";
    let gail = format!("gail@{dom}");
    let hugo = format!("hugo@{dom}");
    let ivy = format!("ivy@{dom}");
    let ghost = format!("ghost@{dom}");
    let ext = "ext@grp-partner.example";
    ok(A, "add domain", store.add_domain(dom, 1).await);
    for u in [&gail, &hugo, &ivy] {
        ok(A, "add user", store.add_user(&new_user(u, None, 1)).await);
    }
    let groups_of =
        |owner: String| async move { ok(A, "list groups", store.list_groups(&owner).await) };
    assert!(
        groups_of(gail.clone()).await.is_empty(),
        "conformance[{A}]: a new user has no groups"
    );

    ok(
        A,
        "add friends",
        store.add_group(&gail, "friends", 100).await,
    );
    ok(A, "add Team", store.add_group(&gail, "Team", 101).await);
    ok(A, "add team", store.add_group(&gail, "team", 102).await);
    assert_eq!(
        groups_of(gail.clone()).await,
        vec![
            group(&gail, "Team", 101),
            group(&gail, "friends", 100),
            group(&gail, "team", 102)
        ],
        "conformance[{A}]: list_groups sorts by name byte-wise (\"Team\" < \"friends\" < \"team\"), and names differing in case are different groups"
    );
    expect_err!(
        A,
        "adding an existing group",
        store.add_group(&gail, "friends", 999).await,
        StoreError::Conflict(_)
    );
    expect_err!(
        A,
        "adding a group for an unknown owner",
        store.add_group(&ghost, "friends", 1).await,
        StoreError::NotFound(_)
    );
    assert!(
        groups_of(ghost.clone()).await.is_empty(),
        "conformance[{A}]: an unknown owner has no groups"
    );
    ok(
        A,
        "the same name for another owner",
        store.add_group(&hugo, "friends", 103).await,
    );
    assert_eq!(
        groups_of(gail.clone()).await,
        vec![
            group(&gail, "Team", 101),
            group(&gail, "friends", 100),
            group(&gail, "team", 102)
        ],
        "conformance[{A}]: refused adds change nothing, and groups are per owner"
    );

    // upsert_contact creates the groups it names, and only those.
    let to_hugo = contact(&gail, &hugo, Some("Work"), Some("workgroup"), 200);
    let to_ext = contact(&gail, ext, Some("friends"), Some("external"), 300);
    let to_ivy = contact(&gail, &ivy, None, None, 400);
    for c in [&to_hugo, &to_ext, &to_ivy] {
        ok(A, "add contact", store.upsert_contact(c, 3).await);
    }
    assert_eq!(
        groups_of(gail.clone()).await,
        vec![
            group(&gail, "Team", 101),
            group(&gail, "Work", 200),
            group(&gail, "friends", 100),
            group(&gail, "team", 102)
        ],
        "conformance[{A}]: upsert_contact must create a missing group (created at the entry's added_ms) and keep an existing one as it is"
    );
    let refused = contact(
        &gail,
        "late@grp-partner.example",
        Some("Overflow"),
        None,
        500,
    );
    expect_err!(
        A,
        "adding to a full list",
        store.upsert_contact(&refused, 3).await,
        StoreError::Limit(_)
    );
    assert!(
        !groups_of(gail.clone())
            .await
            .iter()
            .any(|g| g.name == "Overflow"),
        "conformance[{A}]: a refused upsert_contact must not create its group"
    );
    let h_gail = contact(&hugo, &gail, Some("friends"), None, 600);
    ok(A, "hugo adds gail", store.upsert_contact(&h_gail, 10).await);
    assert_eq!(
        groups_of(hugo.clone()).await,
        vec![group(&hugo, "friends", 103)]
    );

    // Moving the last contact out of a group keeps the (now empty) group.
    let moved = contact(&gail, &hugo, Some("friends"), Some("workgroup"), 200);
    ok(A, "move hugo", store.upsert_contact(&moved, 3).await);
    assert!(
        groups_of(gail.clone())
            .await
            .iter()
            .any(|g| g.name == "Work"),
        "conformance[{A}]: a group that loses its last contact stays"
    );
    ok(
        A,
        "remove the ungrouped contact",
        store.remove_contact(&gail, &ivy).await,
    );
    assert_eq!(
        groups_of(gail.clone()).await.len(),
        4,
        "conformance[{A}]: remove_contact leaves groups alone"
    );

    // Rename: the group and its contacts move together, nobody else's.
    ok(
        A,
        "rename friends",
        store.rename_group(&gail, "friends", "Pals").await,
    );
    assert_eq!(
        groups_of(gail.clone()).await,
        vec![
            group(&gail, "Pals", 100),
            group(&gail, "Team", 101),
            group(&gail, "Work", 200),
            group(&gail, "team", 102)
        ],
        "conformance[{A}]: rename_group renames the group and keeps its created_ms"
    );
    assert_eq!(
        ok(A, "list contacts", store.list_contacts(&gail).await),
        vec![
            contact(&gail, ext, Some("Pals"), Some("external"), 300),
            contact(&gail, &hugo, Some("Pals"), Some("workgroup"), 200)
        ],
        "conformance[{A}]: rename_group moves every contact of the group, keeping level and added_ms"
    );
    assert_eq!(
        groups_of(hugo.clone()).await,
        vec![group(&hugo, "friends", 103)],
        "conformance[{A}]: rename_group must not touch another owner's group of the same name"
    );
    assert_eq!(
        ok(A, "hugo's list", store.list_contacts(&hugo).await),
        vec![h_gail.clone()],
        "conformance[{A}]: rename_group must not touch another owner's contacts"
    );
    expect_err!(
        A,
        "renaming an absent group",
        store.rename_group(&gail, "friends", "Other").await,
        StoreError::NotFound(_)
    );
    expect_err!(
        A,
        "renaming an absent group to an existing name",
        store.rename_group(&gail, "friends", "Team").await,
        StoreError::NotFound(_)
    );
    expect_err!(
        A,
        "renaming a group that differs only in case",
        store.rename_group(&gail, "TEAM", "Other").await,
        StoreError::NotFound(_)
    );
    expect_err!(
        A,
        "renaming onto an existing group",
        store.rename_group(&gail, "Pals", "Team").await,
        StoreError::Conflict(_)
    );
    expect_err!(
        A,
        "renaming a group to its own name",
        store.rename_group(&gail, "Pals", "Pals").await,
        StoreError::Conflict(_)
    );
    expect_err!(
        A,
        "renaming a group of an unknown owner",
        store.rename_group(&ghost, "Pals", "Other").await,
        StoreError::NotFound(_)
    );
    assert_eq!(
        groups_of(gail.clone()).await.len(),
        4,
        "conformance[{A}]: refused renames change nothing"
    );
    assert!(
        ok(A, "list contacts", store.list_contacts(&gail).await)
            .iter()
            .all(|c| c.group.as_deref() == Some("Pals")),
        "conformance[{A}]: refused renames must not move contacts"
    );

    // Remove: the contacts stay, ungrouped, and are counted.
    assert_eq!(
        ok(A, "remove Pals", store.remove_group(&gail, "Pals").await),
        2,
        "conformance[{A}]: remove_group returns how many contacts it ungrouped"
    );
    assert_eq!(
        ok(A, "list contacts", store.list_contacts(&gail).await),
        vec![
            contact(&gail, ext, None, Some("external"), 300),
            contact(&gail, &hugo, None, Some("workgroup"), 200)
        ],
        "conformance[{A}]: remove_group keeps its contacts in the list, ungrouped, with their level and added_ms"
    );
    assert_eq!(
        groups_of(gail.clone()).await,
        vec![
            group(&gail, "Team", 101),
            group(&gail, "Work", 200),
            group(&gail, "team", 102)
        ],
        "conformance[{A}]: remove_group deletes exactly its group"
    );
    assert_eq!(
        ok(
            A,
            "remove an empty group",
            store.remove_group(&gail, "Work").await
        ),
        0
    );
    expect_err!(
        A,
        "removing a removed group",
        store.remove_group(&gail, "Pals").await,
        StoreError::NotFound(_)
    );
    expect_err!(
        A,
        "removing a group that differs only in case",
        store.remove_group(&gail, "TEAM").await,
        StoreError::NotFound(_)
    );
    expect_err!(
        A,
        "removing a group of an unknown owner",
        store.remove_group(&ghost, "Team").await,
        StoreError::NotFound(_)
    );
    assert_eq!(
        ok(A, "hugo's list", store.list_contacts(&hugo).await),
        vec![h_gail],
        "conformance[{A}]: remove_group must not touch another owner's contacts"
    );
    assert_eq!(
        groups_of(hugo.clone()).await,
        vec![group(&hugo, "friends", 103)]
    );

    // A removed group can be created again, and filing a contact recreates it.
    ok(A, "re-add Pals", store.add_group(&gail, "Pals", 700).await);
    ok(
        A,
        "file ext under Work again",
        store
            .upsert_contact(&contact(&gail, ext, Some("Work"), None, 800), 3)
            .await,
    );
    assert_eq!(
        groups_of(gail.clone()).await,
        vec![
            group(&gail, "Pals", 700),
            group(&gail, "Team", 101),
            group(&gail, "Work", 800),
            group(&gail, "team", 102)
        ]
    );
}

fn session(
    token_hash: &str,
    user: &str,
    created_ms: i64,
    expires_ms: i64,
    client: Option<&str>,
) -> WebSessionRecord {
    WebSessionRecord {
        token_hash: token_hash.to_owned(),
        user: user.to_owned(),
        created_ms,
        expires_ms,
        client: client.map(str::to_owned),
    }
}

/// Web sessions: round trip, lookups of expired sessions, per-user order,
/// refusals, revocation one by one and per user, the purge boundary, and a
/// password change (only that) ending a user's sessions. Expiry times are in
/// 70_000..80_000, a range no other area uses.
pub async fn web_sessions(store: &dyn Store) {
    const A: &str = "web_sessions";
    let dom = "web.conformance.test";
    let wanda = format!("wanda@{dom}");
    let xavier = format!("xavier@{dom}");
    let ghost = format!("ghost@{dom}");
    ok(A, "add domain", store.add_domain(dom, 1).await);
    for u in [&wanda, &xavier] {
        ok(A, "add user", store.add_user(&new_user(u, None, 1)).await);
    }
    let get =
        |hash: &'static str| async move { ok(A, "look up session", store.web_session(hash).await) };
    let of =
        |user: String| async move { ok(A, "list sessions", store.web_sessions_of(&user).await) };
    assert_eq!(get("web-none").await, None);
    assert!(of(wanda.clone()).await.is_empty());

    // Created out of order; two share a creation time.
    let w1 = session(
        "web-w1-f0e1",
        &wanda,
        70_300,
        FAR_MS,
        Some("Firefox/128 \"Zoë\" – 日本"),
    );
    let w2 = session("web-w2-9a8b", &wanda, 70_100, 71_000, None);
    let w3 = session("web-w0-77aa", &wanda, 70_300, FAR_MS, Some("curl"));
    let x1 = session("web-x1-0001", &xavier, 70_050, 71_000, Some("Safari"));
    for s in [&w1, &w2, &w3, &x1] {
        ok(A, "create session", store.create_web_session(s).await);
    }
    assert_eq!(
        get("web-w1-f0e1").await,
        Some(w1.clone()),
        "conformance[{A}]: a session must round-trip every field"
    );
    assert_eq!(get("web-w2-9a8b").await, Some(w2.clone()));
    assert_eq!(
        of(wanda.clone()).await,
        vec![w2.clone(), w3.clone(), w1.clone()],
        "conformance[{A}]: web_sessions_of lists one user's sessions oldest first, ties by token hash"
    );
    assert_eq!(of(xavier.clone()).await, vec![x1.clone()]);
    assert!(
        of(ghost.clone()).await.is_empty(),
        "conformance[{A}]: an unknown user has no sessions"
    );

    let stray = session("web-ghost", &ghost, 70_000, FAR_MS, None);
    expect_err!(
        A,
        "a session for an unknown user",
        store.create_web_session(&stray).await,
        StoreError::NotFound(_)
    );
    assert_eq!(
        get("web-ghost").await,
        None,
        "conformance[{A}]: a refused session must not be stored"
    );
    let dup = session("web-w1-f0e1", &xavier, 70_900, 79_999, Some("Impostor"));
    let e = expect_err!(
        A,
        "a session with an existing token hash",
        store.create_web_session(&dup).await,
        StoreError::Conflict(_)
    );
    let text = format!("{e} {e:?}");
    assert!(
        !text.contains(&dup.token_hash),
        "conformance[{A}]: an error message must not quote a token hash: {text}"
    );
    assert_eq!(
        get("web-w1-f0e1").await,
        Some(w1.clone()),
        "conformance[{A}]: a duplicate token hash must not overwrite the session"
    );
    assert_eq!(of(xavier.clone()).await, vec![x1.clone()]);

    // Expiry: lookups return expired sessions; the purge takes exactly those
    // with expires_ms <= now, counted.
    let w4 = session("web-w4-5555", &wanda, 70_400, 71_001, None);
    ok(A, "create w4", store.create_web_session(&w4).await);
    ok(
        A,
        "purge anything older",
        store.purge_expired_web_sessions(70_999).await,
    );
    assert_eq!(
        get("web-w2-9a8b").await,
        Some(w2.clone()),
        "conformance[{A}]: a session is not purged before its expiry"
    );
    assert_eq!(
        ok(
            A,
            "purge at 71000",
            store.purge_expired_web_sessions(71_000).await
        ),
        2,
        "conformance[{A}]: purge must delete and count the sessions with expires_ms <= now"
    );
    assert_eq!(
        ok(
            A,
            "purge again",
            store.purge_expired_web_sessions(71_000).await
        ),
        0,
        "conformance[{A}]: a second purge finds nothing"
    );
    assert_eq!(get("web-w2-9a8b").await, None);
    assert!(of(xavier.clone()).await.is_empty());
    assert_eq!(
        of(wanda.clone()).await,
        vec![w3.clone(), w1.clone(), w4.clone()],
        "conformance[{A}]: purge must keep sessions expiring later"
    );
    assert_eq!(
        get("web-w4-5555").await,
        Some(w4.clone()),
        "conformance[{A}]: web_session returns a session whatever its expiry (the caller checks it)"
    );

    // Revocation.
    ok(
        A,
        "revoke w3",
        store.revoke_web_session("web-w0-77aa").await,
    );
    assert_eq!(get("web-w0-77aa").await, None);
    expect_err!(
        A,
        "revoking a revoked session",
        store.revoke_web_session("web-w0-77aa").await,
        StoreError::NotFound(_)
    );
    expect_err!(
        A,
        "revoking a purged session",
        store.revoke_web_session("web-w2-9a8b").await,
        StoreError::NotFound(_)
    );
    let x2 = session("web-x2-0002", &xavier, 70_500, FAR_MS, None);
    ok(A, "create x2", store.create_web_session(&x2).await);
    assert_eq!(
        ok(
            A,
            "revoke all of wanda's",
            store.revoke_web_sessions_of(&wanda).await
        ),
        2,
        "conformance[{A}]: revoke_web_sessions_of returns how many it revoked"
    );
    assert!(of(wanda.clone()).await.is_empty());
    assert_eq!(get("web-w1-f0e1").await, None);
    assert_eq!(
        of(xavier.clone()).await,
        vec![x2.clone()],
        "conformance[{A}]: revoke_web_sessions_of must not touch other users"
    );
    assert_eq!(
        ok(
            A,
            "revoke again",
            store.revoke_web_sessions_of(&wanda).await
        ),
        0
    );
    assert_eq!(
        ok(
            A,
            "revoke an unknown user's",
            store.revoke_web_sessions_of(&ghost).await
        ),
        0,
        "conformance[{A}]: an unknown user has no sessions to revoke"
    );
    ok(
        A,
        "a revoked hash can be used again",
        store.create_web_session(&w1).await,
    );

    // Only a password change ends a user's sessions, and only that user's.
    let w5 = session("web-w5-6666", &wanda, 70_600, FAR_MS, None);
    ok(A, "create w5", store.create_web_session(&w5).await);
    ok(
        A,
        "rename wanda",
        store.set_display_name(&wanda, Some("Wanda")).await,
    );
    ok(A, "grant wanda", store.set_admin(&wanda, true).await);
    assert_eq!(
        of(wanda.clone()).await,
        vec![w1.clone(), w5.clone()],
        "conformance[{A}]: set_display_name and set_admin must keep the sessions"
    );
    let mut twice = creds(&wanda, "v3");
    twice.ha1.push(twice.ha1[0].clone());
    expect_err!(
        A,
        "a refused password change",
        store.set_credentials(&wanda, &twice).await,
        StoreError::Conflict(_)
    );
    assert_eq!(
        of(wanda.clone()).await,
        vec![w1.clone(), w5.clone()],
        "conformance[{A}]: a refused set_credentials must keep the sessions"
    );
    ok(
        A,
        "change wanda's password",
        store.set_credentials(&wanda, &creds(&wanda, "v2")).await,
    );
    assert!(
        of(wanda.clone()).await.is_empty(),
        "conformance[{A}]: set_credentials must delete the user's web sessions"
    );
    assert_eq!(get("web-w5-6666").await, None);
    assert_eq!(
        of(xavier.clone()).await,
        vec![x2],
        "conformance[{A}]: set_credentials must not touch other users' sessions"
    );
}

/// `remove_user` takes everything of the user with it (credentials, bindings, its
/// contact list and groups, entries naming it, messages to it, user-scope
/// policies, web sessions, the administrator role) and nothing of anyone else's;
/// a user re-created at the address starts clean.
pub async fn remove_user_cascades(store: &dyn Store) {
    const A: &str = "remove_user";
    let dom = "cas.conformance.test";
    let vic = format!("vic@{dom}");
    let sam = format!("sam@{dom}");
    let kind = "conformance.cascade";
    ok(A, "add domain", store.add_domain(dom, 1).await);
    ok(
        A,
        "add vic",
        store.add_user(&new_user(&vic, Some("Vic"), 1)).await,
    );
    ok(
        A,
        "add sam",
        store.add_user(&new_user(&sam, Some("Sam"), 1)).await,
    );

    let vb1 = binding(&vic, "sip:vic@192.0.2.1", FAR_MS);
    let vb2 = binding(&vic, "sip:vic@192.0.2.2", FAR_MS);
    let sb = binding(&sam, "sip:sam@192.0.2.3", FAR_MS);
    ok(
        A,
        "bindings",
        store
            .apply_bindings(&[
                BindingChange::Upsert(vb1.clone()),
                BindingChange::Upsert(vb2.clone()),
                BindingChange::Upsert(sb.clone()),
            ])
            .await,
    );
    let v_sam = contact(&vic, &sam, None, None, 1);
    let v_ext = contact(&vic, "ext@cas-partner.example", None, None, 1);
    let s_vic = contact(&sam, &vic, Some("G"), None, 1);
    let s_ext = contact(&sam, "ext2@cas-partner.example", None, None, 1);
    for c in [&v_sam, &v_ext, &s_vic, &s_ext] {
        ok(A, "contact", store.upsert_contact(c, 100).await);
    }
    let to_vic = message(&vic, &sam, b"to vic", 1, FAR_MS);
    let from_vic = message(&sam, &vic, b"from vic", 1, FAR_MS);
    ok(
        A,
        "message to vic",
        store.enqueue_offline(&to_vic, 10).await,
    );
    ok(
        A,
        "message to vic",
        store.enqueue_offline(&to_vic, 10).await,
    );
    let id_from = ok(
        A,
        "message from vic",
        store.enqueue_offline(&from_vic, 10).await,
    );
    let g = PolicyScope::Global;
    let pv = PolicyScope::User(vic.clone());
    let ps = PolicyScope::User(sam.clone());
    ok(A, "policy", store.set_policy(kind, &g, &json!(1)).await);
    ok(A, "policy", store.set_policy(kind, &pv, &json!(2)).await);
    ok(A, "policy", store.set_policy(kind, &ps, &json!(3)).await);
    ok(
        A,
        "policy of another kind",
        store
            .set_policy("conformance.cascade2", &pv, &json!(4))
            .await,
    );
    ok(
        A,
        "vic's empty group",
        store.add_group(&vic, "Empty", 1).await,
    );
    ok(
        A,
        "sam's empty group",
        store.add_group(&sam, "Empty", 1).await,
    );
    let vs = WebSessionRecord {
        token_hash: "cas-vic".to_owned(),
        user: vic.clone(),
        created_ms: 1,
        expires_ms: FAR_MS,
        client: None,
    };
    let ss = WebSessionRecord {
        token_hash: "cas-sam".to_owned(),
        user: sam.clone(),
        ..vs.clone()
    };
    ok(A, "vic's session", store.create_web_session(&vs).await);
    ok(A, "sam's session", store.create_web_session(&ss).await);
    ok(
        A,
        "vic is an administrator",
        store.set_admin(&vic, true).await,
    );

    ok(A, "remove vic", store.remove_user(&vic).await);

    assert!(
        ok(A, "get vic", store.get_user(&vic).await).is_none(),
        "conformance[{A}]: the user must be gone"
    );
    assert!(
        ok(A, "get sam", store.get_user(&sam).await).is_some(),
        "conformance[{A}]: other users must stay"
    );
    let all = ok(A, "credentials", store.all_credentials().await);
    assert!(
        !all.iter().any(|(a, _)| *a == vic),
        "conformance[{A}]: credentials must go"
    );
    assert!(
        all.iter().any(|(a, _)| *a == sam),
        "conformance[{A}]: other credentials must stay"
    );
    let bindings = ok(A, "bindings", store.load_bindings(0).await);
    assert!(
        !bindings.iter().any(|b| b.aor == vic),
        "conformance[{A}]: bindings must go"
    );
    assert!(
        bindings.contains(&sb),
        "conformance[{A}]: other users' bindings must stay"
    );
    assert!(
        ok(A, "vic's list", store.list_contacts(&vic).await).is_empty(),
        "conformance[{A}]: its contact list must go"
    );
    assert!(
        ok(A, "who has vic", store.contacts_naming(&vic).await).is_empty(),
        "conformance[{A}]: entries naming it in other lists must go"
    );
    assert_eq!(
        ok(A, "sam's list", store.list_contacts(&sam).await),
        vec![s_ext],
        "conformance[{A}]: other entries of other lists must stay"
    );
    assert!(
        ok(
            A,
            "who has ext",
            store.contacts_naming("ext@cas-partner.example").await
        )
        .iter()
        .all(|c| c.owner != vic),
        "conformance[{A}]: its own entries must go"
    );
    assert!(
        ok(A, "vic's messages", store.pending_offline(&vic).await).is_empty(),
        "conformance[{A}]: messages to it must go"
    );
    assert!(
        !ok(A, "recipients", store.offline_recipients().await).contains(&vic),
        "conformance[{A}]: it must no longer be an offline recipient"
    );
    let sams = ok(A, "sam's messages", store.pending_offline(&sam).await);
    assert_eq!(
        sams.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![id_from],
        "conformance[{A}]: messages it sent to others must stay"
    );
    assert_eq!(
        ok(A, "policies", store.list_policies(kind).await),
        vec![(g, json!(1)), (ps, json!(3))],
        "conformance[{A}]: its user-scope policies must go, others stay"
    );
    assert_eq!(
        ok(
            A,
            "policy of another kind",
            store.get_policy("conformance.cascade2", &pv).await
        ),
        None,
        "conformance[{A}]: its user-scope policies of every kind must go"
    );
    assert!(
        ok(A, "vic's groups", store.list_groups(&vic).await).is_empty(),
        "conformance[{A}]: its groups must go"
    );
    assert_eq!(
        ok(A, "sam's groups", store.list_groups(&sam).await)
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        vec!["Empty", "G"],
        "conformance[{A}]: other users' groups must stay, even one its removal emptied"
    );
    assert_eq!(
        ok(A, "vic's session", store.web_session("cas-vic").await),
        None,
        "conformance[{A}]: its web sessions must go"
    );
    assert!(ok(A, "vic's sessions", store.web_sessions_of(&vic).await).is_empty());
    assert_eq!(
        ok(A, "sam's session", store.web_session("cas-sam").await),
        Some(ss),
        "conformance[{A}]: other users' web sessions must stay"
    );

    ok(
        A,
        "re-create vic",
        store.add_user(&new_user(&vic, None, 2)).await,
    );
    assert!(ok(A, "new vic's list", store.list_contacts(&vic).await).is_empty());
    assert!(ok(A, "new vic's messages", store.pending_offline(&vic).await).is_empty());
    assert_eq!(
        ok(A, "new vic's policy", store.get_policy(kind, &pv).await),
        None
    );
    assert!(
        !ok(A, "bindings", store.load_bindings(0).await)
            .iter()
            .any(|b| b.aor == vic),
        "conformance[{A}]: a re-created user must start without bindings"
    );
    assert!(ok(A, "new vic's groups", store.list_groups(&vic).await).is_empty());
    assert!(ok(A, "new vic's sessions", store.web_sessions_of(&vic).await).is_empty());
    assert_eq!(
        ok(A, "new vic", store.get_user(&vic).await).map(|u| u.admin),
        Some(false),
        "conformance[{A}]: a re-created user must start without the administrator role"
    );
}

async fn seq(store: &dyn Store) -> i64 {
    ok("change_seq", "read change_seq", store.change_seq().await)
}

/// The change sequence grows on every directory, policy, contact and group change
/// (the administrator role included), and stays put for bindings, offline
/// messages, web sessions, failed calls, reads and health checks (those must not
/// make every server reload its caches).
pub async fn change_seq(store: &dyn Store) {
    const A: &str = "change_seq";
    let dom = "seq.conformance.test";
    let u = format!("u@{dom}");
    let v = format!("v@{dom}");
    let kind = "conformance.seq";
    let mut last = seq(store).await;

    macro_rules! bumps {
        ($what:expr, $call:expr) => {{
            ok(A, $what, $call.await);
            let now = seq(store).await;
            assert!(
                now > last,
                "conformance[{A}]: {} must increase change_seq ({} -> {})",
                $what,
                last,
                now
            );
            last = now;
        }};
    }
    macro_rules! keeps {
        ($what:expr, $call:expr) => {{
            let out = ok(A, $what, $call.await);
            let now = seq(store).await;
            assert_eq!(
                now, last,
                "conformance[{A}]: {} must not change change_seq",
                $what
            );
            out
        }};
    }
    macro_rules! refused {
        ($what:expr, $call:expr) => {{
            let res = $call.await;
            assert!(
                res.is_err(),
                "conformance[{A}]: {} must fail, got {:?}",
                $what,
                res
            );
            let now = seq(store).await;
            assert_eq!(
                now, last,
                "conformance[{A}]: {} must not change change_seq",
                $what
            );
        }};
    }

    bumps!("add_domain", store.add_domain(dom, 1));
    refused!("a duplicate add_domain", store.add_domain(dom, 1));
    bumps!("add_user", store.add_user(&new_user(&u, None, 1)));
    refused!(
        "a duplicate add_user",
        store.add_user(&new_user(&u, None, 1))
    );
    bumps!("add_user", store.add_user(&new_user(&v, None, 1)));
    bumps!("set_display_name", store.set_display_name(&u, Some("U")));
    refused!(
        "set_display_name of an unknown user",
        store.set_display_name(&format!("x@{dom}"), Some("U"))
    );
    bumps!(
        "set_credentials",
        store.set_credentials(&u, &creds(&u, "v2"))
    );
    bumps!(
        "set_policy (global)",
        store.set_policy(kind, &PolicyScope::Global, &json!(1))
    );
    bumps!(
        "set_policy (same document again)",
        store.set_policy(kind, &PolicyScope::Global, &json!(1))
    );
    bumps!(
        "set_policy (user)",
        store.set_policy(kind, &PolicyScope::User(u.clone()), &json!(2))
    );
    bumps!(
        "clear_policy",
        store.clear_policy(kind, &PolicyScope::Global)
    );
    refused!(
        "clear_policy of a cleared policy",
        store.clear_policy(kind, &PolicyScope::Global)
    );
    bumps!(
        "upsert_contact (new)",
        store.upsert_contact(&contact(&u, &v, None, None, 1), 1)
    );
    bumps!(
        "upsert_contact (update)",
        store.upsert_contact(&contact(&u, &v, Some("G"), None, 1), 1)
    );
    refused!(
        "upsert_contact over the limit",
        store.upsert_contact(&contact(&u, "w@seq-partner.example", None, None, 1), 1)
    );
    bumps!("remove_contact", store.remove_contact(&u, &v));
    refused!(
        "remove_contact of a removed contact",
        store.remove_contact(&u, &v)
    );
    bumps!(
        "block_contact (not in the list)",
        store.block_contact(&u, &v, 1, 1)
    );
    refused!(
        "block_contact over max_blocked",
        store.block_contact(&u, "w@seq-partner.example", 1, 1)
    );
    refused!(
        "remove_contact of an unlisted block",
        store.remove_contact(&u, &v)
    );
    bumps!("unblock_contact", store.unblock_contact(&u, &v));
    refused!(
        "unblock_contact of someone not blocked",
        store.unblock_contact(&u, &v)
    );
    bumps!("set_admin", store.set_admin(&u, true));
    bumps!("set_admin (same value again)", store.set_admin(&u, true));
    bumps!("set_admin (withdraw)", store.set_admin(&u, false));
    refused!(
        "set_admin of an unknown user",
        store.set_admin(&format!("x@{dom}"), true)
    );
    bumps!(
        "upsert_contact (creating a group)",
        store.upsert_contact(&contact(&u, &v, Some("New"), None, 1), 1)
    );
    bumps!("add_group", store.add_group(&u, "H", 1));
    refused!("a duplicate add_group", store.add_group(&u, "H", 1));
    refused!(
        "add_group of an unknown owner",
        store.add_group(&format!("x@{dom}"), "H", 1)
    );
    bumps!("rename_group", store.rename_group(&u, "H", "I"));
    refused!(
        "rename_group of an absent group",
        store.rename_group(&u, "H", "J")
    );
    refused!(
        "rename_group onto an existing group",
        store.rename_group(&u, "I", "New")
    );
    bumps!("remove_group (empty)", store.remove_group(&u, "I"));
    bumps!(
        "remove_group (with a contact)",
        store.remove_group(&u, "New")
    );
    refused!(
        "remove_group of a removed group",
        store.remove_group(&u, "I")
    );
    bumps!("remove_contact", store.remove_contact(&u, &v));

    keeps!("reads", async {
        store.list_users().await?;
        store.all_credentials().await?;
        store.list_policies(kind).await?;
        store.get_user(&u).await?;
        store.list_groups(&u).await?;
        store.web_session("seq-none").await?;
        store.web_sessions_of(&u).await?;
        store.get_contact(&u, &v).await?;
        store.list_blocked(&u).await?;
        store.list_contacts(&u).await
    });
    let ws = WebSessionRecord {
        token_hash: "seq-1".to_owned(),
        user: u.clone(),
        created_ms: 1,
        expires_ms: 10,
        client: None,
    };
    keeps!("create_web_session", store.create_web_session(&ws));
    refused!(
        "create_web_session with an existing hash",
        store.create_web_session(&ws)
    );
    refused!(
        "create_web_session for an unknown user",
        store.create_web_session(&WebSessionRecord {
            token_hash: "seq-2".to_owned(),
            user: format!("x@{dom}"),
            ..ws.clone()
        })
    );
    keeps!("revoke_web_session", store.revoke_web_session("seq-1"));
    refused!(
        "revoke_web_session of a revoked session",
        store.revoke_web_session("seq-1")
    );
    keeps!("create_web_session", store.create_web_session(&ws));
    let revoked = keeps!("revoke_web_sessions_of", store.revoke_web_sessions_of(&u));
    assert_eq!(revoked, 1);
    keeps!("create_web_session", store.create_web_session(&ws));
    let purged = keeps!(
        "purge_expired_web_sessions",
        store.purge_expired_web_sessions(10)
    );
    assert!(
        purged >= 1,
        "conformance[{A}]: purge_expired_web_sessions(10) must take the session expiring at 10"
    );
    keeps!("health", store.health());
    let b = binding(&u, "sip:u@192.0.2.9", 10);
    keeps!(
        "apply_bindings (upsert)",
        store.apply_bindings(&[BindingChange::Upsert(b.clone())])
    );
    let purged = keeps!("purge_expired_bindings", store.purge_expired_bindings(10));
    assert!(
        purged >= 1,
        "conformance[{A}]: purge_expired_bindings(10) must take the binding expiring at 10"
    );
    keeps!(
        "apply_bindings (remove)",
        store.apply_bindings(&[
            BindingChange::Upsert(b.clone()),
            BindingChange::Remove {
                aor: u.clone(),
                contact: b.contact.clone()
            },
        ])
    );
    let id = keeps!(
        "enqueue_offline",
        store.enqueue_offline(&message(&u, &v, b"x", 1, FAR_MS), 10)
    );
    keeps!("record_offline_attempt", store.record_offline_attempt(id));
    keeps!("delete_offline", store.delete_offline(id));
    keeps!(
        "enqueue_offline",
        store.enqueue_offline(&message(&u, &v, b"y", 1, 10), 10)
    );
    let expired = keeps!("expire_offline", store.expire_offline(10));
    assert!(
        expired.iter().any(|m| m.recipient == u),
        "conformance[{A}]: expire_offline(10) must take the message expiring at 10"
    );
    refused!(
        "enqueue_offline over the limit",
        store.enqueue_offline(&message(&u, &v, b"z", 1, FAR_MS), 0)
    );

    bumps!("remove_user", store.remove_user(&u));
    refused!("remove_user of a removed user", store.remove_user(&u));
    refused!("remove_domain with users", store.remove_domain(dom));
    bumps!("remove_user", store.remove_user(&v));
    bumps!("remove_domain", store.remove_domain(dom));
    refused!(
        "remove_domain of a removed domain",
        store.remove_domain(dom)
    );
}
