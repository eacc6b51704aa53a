//! Points of presence that are not SIP registrations: web sessions today,
//! XMPP resources later. A user may be signed in on a phone (SIP), a laptop
//! (SIP) and two browsers at once; every front door that delivers to "all of
//! a user's devices" asks this registry for the non-SIP ones, so a web user
//! and a SIP user are peers.
//!
//! The registry is a trait so that a pool of front ends can implement it over
//! its bus (an endpoint attached on another front end is reached through it);
//! [`LocalEndpoints`] is the single-process implementation.

use crate::address::Address;
use crate::conversation::HistoryEntry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Something delivered to a user's endpoint. Presence is not carried here:
/// endpoints watch the presence engine themselves, filtered per watcher.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointEvent {
    /// A one-to-one instant message.
    Message {
        /// The conversation it belongs to (stable for a pair while active).
        conversation: String,
        from: Address,
        from_display: Option<String>,
        to: Address,
        content_type: String,
        body: Vec<u8>,
        at_ms: i64,
    },
    /// The other party is typing (or stopped) in a one-to-one conversation.
    Composing {
        conversation: String,
        from: Address,
        active: bool,
    },
    /// A message in a group conversation (conference), including history
    /// replayed at join and notices from the server (sender: the conference).
    ConferenceMessage {
        conference: String,
        entry: HistoryEntry,
        /// True for replayed history.
        replay: bool,
    },
    /// The user was invited to a group conversation.
    Invitation {
        conference: String,
        inviter: Address,
        inviter_display: Option<String>,
    },
    /// Who is in a group conversation changed (the full roster after it).
    Roster {
        conference: String,
        members: Vec<(Address, Option<String>)>,
    },
    /// The group conversation ended or the user is no longer in it.
    ConferenceEnded { conference: String },
}

/// An endpoint's receiving side: events arrive in the order delivered.
pub type EndpointReceiver = mpsc::Receiver<Arc<EndpointEvent>>;

/// Most events waiting for one endpoint. A client that stops reading loses
/// new deliveries (they count as not taken) instead of growing memory.
pub const ENDPOINT_QUEUE: usize = 1024;

/// The registry of non-SIP endpoints.
pub trait Endpoints: Send + Sync {
    /// Attaches endpoint `id` of `user`; replaces an earlier attachment with
    /// the same id (a reconnecting client).
    fn attach(&self, user: &Address, id: &str) -> EndpointReceiver;
    /// Detaches endpoint `id` of `user` (no effect if not attached).
    fn detach(&self, user: &Address, id: &str);
    /// Delivers `event` to every endpoint of `user`; returns how many took it.
    fn deliver(&self, user: &Address, event: EndpointEvent) -> usize;
    /// Delivers `event` to every endpoint of `user` except `except`.
    fn deliver_except(&self, user: &Address, except: &str, event: EndpointEvent) -> usize;
    /// True if `user` has at least one endpoint attached.
    fn is_attached(&self, user: &Address) -> bool;
}

/// The attached endpoints of each user: (endpoint id, its queue).
type Attached = HashMap<Address, Vec<(String, mpsc::Sender<Arc<EndpointEvent>>)>>;

/// [`Endpoints`] for one process.
#[derive(Debug, Default)]
pub struct LocalEndpoints {
    map: Mutex<Attached>,
}

impl LocalEndpoints {
    /// No endpoints yet.
    pub fn new() -> LocalEndpoints {
        LocalEndpoints::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Attached> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, user: &Address, except: Option<&str>, event: EndpointEvent) -> usize {
        let event = Arc::new(event);
        let mut map = self.lock();
        let Some(list) = map.get_mut(user) else {
            return 0;
        };
        // Receivers dropped without a detach are cleaned up here.
        list.retain(|(_, tx)| !tx.is_closed());
        let taken = list
            .iter()
            .filter(|(id, _)| Some(id.as_str()) != except)
            .filter(|(_, tx)| tx.try_send(event.clone()).is_ok())
            .count();
        if list.is_empty() {
            map.remove(user);
        }
        taken
    }
}

impl Endpoints for LocalEndpoints {
    fn attach(&self, user: &Address, id: &str) -> EndpointReceiver {
        let (tx, rx) = mpsc::channel(ENDPOINT_QUEUE);
        let mut map = self.lock();
        let list = map.entry(user.clone()).or_default();
        list.retain(|(i, _)| i != id);
        list.push((id.to_owned(), tx));
        rx
    }

    fn detach(&self, user: &Address, id: &str) {
        let mut map = self.lock();
        if let Some(list) = map.get_mut(user) {
            list.retain(|(i, _)| i != id);
            if list.is_empty() {
                map.remove(user);
            }
        }
    }

    fn deliver(&self, user: &Address, event: EndpointEvent) -> usize {
        self.send(user, None, event)
    }

    fn deliver_except(&self, user: &Address, except: &str, event: EndpointEvent) -> usize {
        self.send(user, Some(except), event)
    }

    fn is_attached(&self, user: &Address) -> bool {
        self.lock()
            .get(user)
            .is_some_and(|l| l.iter().any(|(_, tx)| !tx.is_closed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).expect("address")
    }

    fn ended(c: &str) -> EndpointEvent {
        EndpointEvent::ConferenceEnded {
            conference: c.into(),
        }
    }

    #[tokio::test]
    async fn every_endpoint_of_the_user_gets_the_event_in_order() {
        let reg = LocalEndpoints::new();
        let alice = addr("alice@example.test");
        let mut a = reg.attach(&alice, "tab1");
        let mut b = reg.attach(&alice, "tab2");
        assert_eq!(reg.deliver(&alice, ended("c1")), 2);
        assert_eq!(reg.deliver(&alice, ended("c2")), 2);
        for rx in [&mut a, &mut b] {
            assert_eq!(*rx.recv().await.expect("first"), ended("c1"));
            assert_eq!(*rx.recv().await.expect("second"), ended("c2"));
        }
        assert_eq!(reg.deliver(&addr("bob@example.test"), ended("c1")), 0);
    }

    #[tokio::test]
    async fn detached_or_dropped_endpoints_take_nothing() {
        let reg = LocalEndpoints::new();
        let alice = addr("alice@example.test");
        let a = reg.attach(&alice, "tab1");
        let _b = reg.attach(&alice, "tab2");
        reg.detach(&alice, "tab2");
        assert!(reg.is_attached(&alice));
        drop(a);
        assert!(!reg.is_attached(&alice));
        assert_eq!(reg.deliver(&alice, ended("c")), 0);
    }

    #[tokio::test]
    async fn reattaching_replaces_and_except_skips_one() {
        let reg = LocalEndpoints::new();
        let alice = addr("alice@example.test");
        let _old = reg.attach(&alice, "tab1");
        let mut new = reg.attach(&alice, "tab1");
        let mut other = reg.attach(&alice, "tab2");
        assert_eq!(reg.deliver_except(&alice, "tab2", ended("c")), 1);
        assert_eq!(*new.recv().await.expect("event"), ended("c"));
        assert!(other.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_queue_does_not_take_more() {
        let reg = LocalEndpoints::new();
        let alice = addr("alice@example.test");
        let _rx = reg.attach(&alice, "slow");
        for _ in 0..ENDPOINT_QUEUE {
            assert_eq!(reg.deliver(&alice, ended("c")), 1);
        }
        assert_eq!(reg.deliver(&alice, ended("c")), 0);
    }
}
