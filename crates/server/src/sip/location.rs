//! The location service: every registered device (binding) of every user,
//! in memory for routing and written behind to the store so that a restart
//! keeps UDP devices reachable.

use crate::transport::{ConnId, Flow, Transport};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use switchboard_core::Address;
use switchboard_sip::{SipUri, Uri};
use switchboard_store::{BindingChange, BindingRecord, Store};
use tokio::sync::{broadcast, mpsc};

/// One registered device of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub aor: Address,
    /// The Contact URI as registered (its string form identifies the binding).
    pub uri: Uri,
    /// `uri` in string form (its [`Binding::contact_key`]), computed once when
    /// the binding is made: comparing bindings must not format URIs each time.
    pub contact: String,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub q_milli: Option<u16>,
    pub expires_ms: i64,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from: requests to the device go back this way.
    pub flow: Flow,
    pub path: Vec<String>,
    pub user_agent: Option<String>,
    /// Contact feature parameters (`+sip.message`, `methods=…`, `isfocus`…).
    pub features: Vec<String>,
    pub registered_ms: i64,
    /// The expiry last written to the store (refreshes are written lazily).
    pub persisted_expires_ms: i64,
}

impl Binding {
    /// The identity of the binding within its AOR (`uri` in string form).
    pub fn contact_key(&self) -> String {
        self.contact.clone()
    }

    /// True if `other` is this binding refreshed: same device, flow and
    /// parameters; only the expiry, Call-ID, CSeq or user agent may differ.
    pub fn same_device_as(&self, other: &Binding) -> bool {
        self.uri == other.uri
            && self.instance == other.instance
            && self.reg_id == other.reg_id
            && self.q_milli == other.q_milli
            && self.flow == other.flow
            && self.path == other.path
            && self.features == other.features
    }

    /// True for an RFC 5626 outbound registration (a flow that dies with its connection).
    pub fn is_outbound(&self) -> bool {
        self.instance.is_some() && self.reg_id.is_some()
    }

    /// Seconds left, rounded down, never negative.
    pub fn remaining_secs(&self, now_ms: i64) -> u32 {
        ((self.expires_ms - now_ms).max(0) / 1000) as u32
    }

    fn to_record(&self) -> BindingRecord {
        BindingRecord {
            aor: self.aor.to_string(),
            contact: self.contact.clone(),
            instance: self.instance.clone(),
            reg_id: self.reg_id,
            q_milli: self.q_milli,
            expires_ms: self.expires_ms,
            call_id: self.call_id.clone(),
            cseq: self.cseq,
            transport: self.flow.transport.name().to_owned(),
            source: self.flow.remote.to_string(),
            local: self.flow.local.to_string(),
            path: self.path.clone(),
            user_agent: self.user_agent.clone(),
            features: self.features.clone(),
            registered_ms: self.registered_ms,
        }
    }

    fn from_record(r: BindingRecord) -> Option<Binding> {
        let transport = Transport::parse(&r.transport)?;
        let remote: SocketAddr = r.source.parse().ok()?;
        let local: SocketAddr = r.local.parse().ok()?;
        let uri = Uri::parse(&r.contact).ok()?;
        Some(Binding {
            aor: Address::parse(&r.aor).ok()?,
            contact: uri.to_string(),
            uri,
            instance: r.instance,
            reg_id: r.reg_id,
            q_milli: r.q_milli,
            expires_ms: r.expires_ms,
            call_id: r.call_id,
            cseq: r.cseq,
            flow: Flow {
                transport,
                local,
                remote,
                conn: None,
            },
            path: r.path,
            user_agent: r.user_agent,
            features: r.features,
            registered_ms: r.registered_ms,
            persisted_expires_ms: r.expires_ms,
        })
    }
}

/// Why a binding went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Unregistered,
    Expired,
    /// Its outbound flow (connection) closed (RFC 5626 §7).
    FlowFailed,
    /// A new registration of the same device (instance) replaced it.
    Replaced,
}

/// A change other parts of the server react to (offline delivery on sign-in,
/// presence from registration state).
#[derive(Debug, Clone)]
pub enum LocationEvent {
    /// A device signed in (a new binding; refreshes are not announced).
    Registered { aor: Address, contact: String },
    Removed {
        aor: Address,
        contact: String,
        reason: Removal,
    },
}

/// The table of bindings.
pub struct Location {
    map: RwLock<HashMap<Address, Vec<Arc<Binding>>>>,
    persist: mpsc::UnboundedSender<BindingChange>,
    events: broadcast::Sender<LocationEvent>,
}

/// The key under which a Contact URI is matched: user, host and port (the
/// parameters differ between a device's registration and its dialogs).
pub fn contact_index_key(u: &SipUri) -> String {
    format!(
        "{}@{}:{}",
        u.user.as_deref().unwrap_or("").to_ascii_lowercase(),
        u.host.to_string().to_ascii_lowercase(),
        u.port.unwrap_or(0)
    )
}

impl Location {
    /// A location service persisting through `store` (write-behind, batched).
    pub fn new(store: Arc<dyn Store>) -> Arc<Location> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(4096);
        tokio::spawn(write_behind(store, rx));
        Arc::new(Location {
            map: RwLock::new(HashMap::new()),
            persist: tx,
            events,
        })
    }

    /// Loads persisted bindings at start-up. UDP bindings are kept: the device
    /// is reached at its registered address. Bindings over TCP, TLS or
    /// WebSocket died with their connections (RFC 5626 flows; a device behind
    /// NAT cannot be reached otherwise): they are dropped, and the device
    /// registers again on its own.
    pub async fn load(&self, store: &dyn Store, now_ms: i64) -> anyhow::Result<(usize, usize)> {
        let records = store.load_bindings(now_ms).await?;
        let mut kept = 0;
        let mut dropped = 0;
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        for r in records {
            let (aor, contact) = (r.aor.clone(), r.contact.clone());
            match Binding::from_record(r) {
                Some(b) if !b.flow.transport.is_stream() => {
                    map.entry(b.aor.clone()).or_default().push(Arc::new(b));
                    kept += 1;
                }
                _ => {
                    let _ = self.persist.send(BindingChange::Remove { aor, contact });
                    dropped += 1;
                }
            }
        }
        Ok((kept, dropped))
    }

    /// Subscribes to binding changes.
    pub fn subscribe(&self) -> broadcast::Receiver<LocationEvent> {
        self.events.subscribe()
    }

    /// The current bindings of `aor` (not expired at `now_ms`).
    pub fn bindings(&self, aor: &Address, now_ms: i64) -> Vec<Arc<Binding>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(aor)
            .map(|v| {
                v.iter()
                    .filter(|b| b.expires_ms > now_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True if `aor` has at least one live binding.
    pub fn is_registered(&self, aor: &Address, now_ms: i64) -> bool {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(aor)
            .is_some_and(|v| v.iter().any(|b| b.expires_ms > now_ms))
    }

    /// The binding whose Contact is `uri` (the remote target of an in-dialog
    /// request), to reach it over its registered flow.
    pub fn find_by_contact(&self, uri: &SipUri, now_ms: i64) -> Option<Arc<Binding>> {
        let key = contact_index_key(uri);
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .flat_map(|v| v.iter())
            .find(|b| {
                b.expires_ms > now_ms && b.uri.as_sip().is_some_and(|u| contact_index_key(u) == key)
            })
            .cloned()
    }

    /// Replaces the bindings of `aor` by what `update` computes from the
    /// current ones, atomically with respect to other updates. Returns the
    /// closure's value; on `Err` nothing changes.
    pub fn update<T, E>(
        &self,
        aor: &Address,
        update: impl FnOnce(&[Arc<Binding>]) -> Result<(Vec<Arc<Binding>>, T), E>,
    ) -> Result<T, E> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let old = map.get(aor).cloned().unwrap_or_default();
        let (new, value) = update(&old)?;
        for o in &old {
            if !new.iter().any(|n| n.contact == o.contact) {
                let _ = self.persist.send(BindingChange::Remove {
                    aor: aor.to_string(),
                    contact: o.contact.clone(),
                });
                let reason = if new
                    .iter()
                    .any(|n| n.instance.is_some() && n.instance == o.instance)
                {
                    Removal::Replaced
                } else {
                    Removal::Unregistered
                };
                let _ = self.events.send(LocationEvent::Removed {
                    aor: aor.clone(),
                    contact: o.contact.clone(),
                    reason,
                });
            }
        }
        let now_ms = switchboard_core::now_ms();
        let mut new = new;
        for n in new.iter_mut() {
            let existed = old.iter().find(|o| o.contact == n.contact);
            // A refresh that only moves the expiry (and Call-ID/CSeq) is written
            // only once the stored expiry lags by more than half the interval:
            // the stored binding always outlives the next refresh, and a busy
            // registrar does not rewrite every binding on every refresh.
            let write = match existed {
                None => true,
                Some(o) if o.same_device_as(n) => {
                    let interval = (n.expires_ms - now_ms).max(0);
                    n.expires_ms > o.persisted_expires_ms + interval / 2
                }
                Some(_) => true,
            };
            let persisted = if write {
                n.expires_ms
            } else {
                existed
                    .map(|o| o.persisted_expires_ms)
                    .unwrap_or(n.expires_ms)
            };
            if n.persisted_expires_ms != persisted {
                Arc::make_mut(n).persisted_expires_ms = persisted;
            }
            if write {
                let _ = self.persist.send(BindingChange::Upsert(n.to_record()));
                // A refresh of a known device changes nothing anyone listens
                // for: only a new device (a sign-in) is announced.
                if existed.is_none() {
                    let _ = self.events.send(LocationEvent::Registered {
                        aor: aor.clone(),
                        contact: n.contact.clone(),
                    });
                }
            }
        }
        if new.is_empty() {
            map.remove(aor);
        } else {
            map.insert(aor.clone(), new);
        }
        Ok(value)
    }

    /// Removes every binding that was registered over connection `conn` as an
    /// outbound flow (the device will re-register over a new flow), and every
    /// binding made over a WebSocket `conn`: its device cannot be reached any
    /// other way (RFC 7118 clients register `.invalid` Contact hosts).
    pub fn flow_failed(&self, conn: ConnId) {
        self.remove_where(
            |b| {
                b.flow.conn == Some(conn)
                    && (b.is_outbound()
                        || matches!(b.flow.transport, Transport::Ws | Transport::Wss))
            },
            Removal::FlowFailed,
        );
    }

    /// Removes bindings expired at `now_ms`.
    pub fn expire(&self, now_ms: i64) {
        self.remove_where(|b| b.expires_ms <= now_ms, Removal::Expired);
    }

    fn remove_where(&self, pred: impl Fn(&Binding) -> bool, reason: Removal) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let mut emptied = Vec::new();
        for (aor, list) in map.iter_mut() {
            list.retain(|b| {
                if pred(b) {
                    let _ = self.persist.send(BindingChange::Remove {
                        aor: aor.to_string(),
                        contact: b.contact.clone(),
                    });
                    let _ = self.events.send(LocationEvent::Removed {
                        aor: aor.clone(),
                        contact: b.contact.clone(),
                        reason,
                    });
                    false
                } else {
                    true
                }
            });
            if list.is_empty() {
                emptied.push(aor.clone());
            }
        }
        for aor in emptied {
            map.remove(&aor);
        }
    }

    /// Every live binding (to seed presence at start-up).
    pub fn all(&self, now_ms: i64) -> Vec<Arc<Binding>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .flat_map(|v| v.iter())
            .filter(|b| b.expires_ms > now_ms)
            .cloned()
            .collect()
    }
}

/// Applies binding changes to the store in batches: a burst of registrations
/// costs one transaction, not one per REGISTER. Failures are retried with the
/// batch kept, so nothing is lost while the database is briefly unavailable.
async fn write_behind(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<BindingChange>) {
    let mut batch: Vec<BindingChange> = Vec::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(c) => batch.push(c),
                None => return,
            }
        }
        while batch.len() < 2000 {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        match store.apply_bindings(&batch).await {
            Ok(()) => {
                batch.clear();
                backoff = Duration::from_millis(100);
                // Let more changes accumulate under load (group commit).
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, pending = batch.len(), "cannot persist registrations; will retry");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
