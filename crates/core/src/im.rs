//! Instant messages as the domain sees them, and offline IM: holding a
//! message for a signed-out user and handing it over at their next sign-in,
//! without ever losing one the server accepted.

use crate::address::Address;
use crate::policy::{ImPolicy, Policies};
use std::sync::atomic::{AtomicU64, Ordering};
use switchboard_store::{NewOfflineMessage, OfflineMessage, Store, StoreError};

/// One instant message, whatever front door it came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstantMessage {
    pub from: Address,
    pub from_display: Option<String>,
    pub to: Address,
    /// MIME type of the body (`text/plain`, `text/html`, `message/cpim`…).
    pub content_type: String,
    pub body: Vec<u8>,
    /// When the server accepted it (Unix ms).
    pub received_ms: i64,
}

/// What happened to a message offered for offline storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfflineOutcome {
    /// Stored durably; it will be delivered at the recipient's next sign-in.
    Stored(i64),
    /// The recipient's IM policy does not allow offline messages.
    Disabled,
    /// The recipient already has too many messages waiting.
    Full,
    /// The store could not be written; nothing was stored.
    Unavailable(String),
}

/// Counters for operators (exported as metrics).
#[derive(Debug, Default)]
pub struct OfflineCounters {
    pub stored: AtomicU64,
    pub delivered: AtomicU64,
    pub expired: AtomicU64,
    pub refused_full: AtomicU64,
}

/// Offline IM limits.
#[derive(Debug, Clone, Copy)]
pub struct OfflineLimits {
    pub max_per_user: u32,
    /// Milliseconds a message waits before it expires.
    pub expiry_ms: i64,
}

/// The offline IM service.
pub struct OfflineIm {
    limits: OfflineLimits,
    pub counters: OfflineCounters,
}

impl OfflineIm {
    /// A service with these limits.
    pub fn new(limits: OfflineLimits) -> OfflineIm {
        OfflineIm {
            limits,
            counters: OfflineCounters::default(),
        }
    }

    /// True if `recipient`'s policy lets messages wait for them.
    pub fn enabled_for(&self, policies: &Policies, recipient: &Address) -> bool {
        policies.effective::<ImPolicy>(recipient).offline_im
    }

    /// Stores `msg` for later delivery if the recipient's policy allows it.
    /// Returns only after the message is durable.
    pub async fn hold(
        &self,
        store: &dyn Store,
        policies: &Policies,
        msg: &InstantMessage,
    ) -> OfflineOutcome {
        if !self.enabled_for(policies, &msg.to) {
            return OfflineOutcome::Disabled;
        }
        let record = NewOfflineMessage {
            recipient: msg.to.to_string(),
            sender: msg.from.to_string(),
            sender_display: msg.from_display.clone(),
            content_type: msg.content_type.clone(),
            body: msg.body.clone(),
            received_ms: msg.received_ms,
            expires_ms: msg.received_ms + self.limits.expiry_ms,
        };
        match store
            .enqueue_offline(&record, self.limits.max_per_user)
            .await
        {
            Ok(id) => {
                self.counters.stored.fetch_add(1, Ordering::Relaxed);
                tracing::info!(id, from = %msg.from, to = %msg.to, "instant message held for offline delivery");
                OfflineOutcome::Stored(id)
            }
            Err(StoreError::Limit(_)) => {
                self.counters.refused_full.fetch_add(1, Ordering::Relaxed);
                OfflineOutcome::Full
            }
            Err(e) => OfflineOutcome::Unavailable(e.to_string()),
        }
    }

    /// Messages waiting for `recipient`, oldest first, as domain messages.
    pub async fn pending(
        &self,
        store: &dyn Store,
        recipient: &Address,
    ) -> Result<Vec<(i64, InstantMessage, u32)>, StoreError> {
        let rows = store.pending_offline(&recipient.to_string()).await?;
        Ok(rows.into_iter().filter_map(to_domain).collect())
    }

    /// Records a successful delivery (the message is deleted).
    pub async fn delivered(&self, store: &dyn Store, id: i64) -> Result<(), StoreError> {
        match store.delete_offline(id).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Records a failed attempt (the message stays for the next sign-in).
    pub async fn failed(&self, store: &dyn Store, id: i64) -> Result<(), StoreError> {
        match store.record_offline_attempt(id).await {
            Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes expired messages, logging each one with its sender so that no
    /// message disappears without a trace; returns how many expired.
    pub async fn expire(&self, store: &dyn Store, now_ms: i64) -> Result<usize, StoreError> {
        let expired = store.expire_offline(now_ms).await?;
        for m in &expired {
            tracing::warn!(id = m.id, from = %m.sender, to = %m.recipient, age_hours = (now_ms - m.received_ms) / 3_600_000, attempts = m.attempts, "offline instant message expired undelivered");
        }
        self.counters
            .expired
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        Ok(expired.len())
    }

    /// Recipients with messages waiting.
    pub async fn recipients(&self, store: &dyn Store) -> Result<Vec<Address>, StoreError> {
        Ok(store
            .offline_recipients()
            .await?
            .into_iter()
            .filter_map(|r| Address::parse(&r).ok())
            .collect())
    }
}

fn to_domain(r: OfflineMessage) -> Option<(i64, InstantMessage, u32)> {
    Some((
        r.id,
        InstantMessage {
            from: Address::parse(&r.sender).ok()?,
            from_display: r.sender_display,
            to: Address::parse(&r.recipient).ok()?,
            content_type: r.content_type,
            body: r.body,
            received_ms: r.received_ms,
        },
        r.attempts,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_store::sqlite::SqliteStore;
    use switchboard_store::{Directory as _, NewUser, Policies as _, PolicyScope};

    async fn setup() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("open");
        store.add_domain("example.com", 0).await.expect("domain");
        for u in ["alice@example.com", "bob@example.com"] {
            let creds = switchboard_store::Credentials {
                password_hash: "x".into(),
                ha1: vec![],
            };
            store
                .add_user(&NewUser {
                    address: u.into(),
                    display_name: None,
                    credentials: creds,
                    created_ms: 0,
                })
                .await
                .expect("user");
        }
        (dir, store)
    }

    fn msg(n: u8) -> InstantMessage {
        InstantMessage {
            from: Address::parse("alice@example.com").expect("a"),
            from_display: Some("Alice".into()),
            to: Address::parse("bob@example.com").expect("b"),
            content_type: "text/plain".into(),
            body: vec![b'0' + n],
            received_ms: 1_000 + i64::from(n),
        }
    }

    #[tokio::test]
    async fn holds_in_order_until_delivered() {
        let (_d, store) = setup().await;
        let policies = Policies::new();
        let svc = OfflineIm::new(OfflineLimits {
            max_per_user: 2,
            expiry_ms: 10_000,
        });
        let a = svc.hold(&store, &policies, &msg(1)).await;
        let b = svc.hold(&store, &policies, &msg(2)).await;
        assert!(matches!(a, OfflineOutcome::Stored(_)) && matches!(b, OfflineOutcome::Stored(_)));
        assert_eq!(
            svc.hold(&store, &policies, &msg(3)).await,
            OfflineOutcome::Full
        );
        let bob = Address::parse("bob@example.com").expect("b");
        let pending = svc.pending(&store, &bob).await.expect("pending");
        assert_eq!(
            pending
                .iter()
                .map(|(_, m, _)| m.body.clone())
                .collect::<Vec<_>>(),
            vec![b"1".to_vec(), b"2".to_vec()]
        );
        svc.failed(&store, pending[0].0).await.expect("attempt");
        assert_eq!(svc.pending(&store, &bob).await.expect("pending")[0].2, 1);
        svc.delivered(&store, pending[0].0)
            .await
            .expect("delivered");
        assert_eq!(svc.pending(&store, &bob).await.expect("pending").len(), 1);
        assert_eq!(svc.recipients(&store).await.expect("recipients"), vec![bob]);
    }

    #[tokio::test]
    async fn policy_off_refuses_and_expiry_counts() {
        let (_d, store) = setup().await;
        let policies = Policies::new();
        store
            .set_policy(
                "im",
                &PolicyScope::User("bob@example.com".into()),
                &serde_json::json!({"offline_im": false}),
            )
            .await
            .expect("policy");
        policies.load(&store, &["im"]).await.expect("load");
        let svc = OfflineIm::new(OfflineLimits {
            max_per_user: 10,
            expiry_ms: 100,
        });
        assert_eq!(
            svc.hold(&store, &policies, &msg(1)).await,
            OfflineOutcome::Disabled
        );
        store
            .clear_policy("im", &PolicyScope::User("bob@example.com".into()))
            .await
            .expect("clear");
        policies.load(&store, &["im"]).await.expect("load");
        assert!(matches!(
            svc.hold(&store, &policies, &msg(1)).await,
            OfflineOutcome::Stored(_)
        ));
        assert_eq!(svc.expire(&store, 1_000).await.expect("expire"), 0);
        assert_eq!(svc.expire(&store, 2_000).await.expect("expire"), 1);
        assert_eq!(svc.counters.expired.load(Ordering::Relaxed), 1);
    }
}
