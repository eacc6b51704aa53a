//! The presence engine: the devices of every signed-in person, their
//! aggregated presence, and the changes front doors turn into notifications.
//! It knows nothing of SIP: a PUBLISH, a web client setting "Busy" and a
//! registration all arrive here as device states.

use super::aggregate::{DeviceState, Rules, Source, aggregate};
use super::model::PresenceState;
use crate::address::Address;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// A person's presence changed to `state` (already aggregated, not yet
/// filtered for any watcher).
#[derive(Debug, Clone)]
pub struct PresenceChange {
    pub person: Address,
    pub state: PresenceState,
}

#[derive(Debug, Default)]
struct Person {
    devices: HashMap<String, DeviceState>,
    current: Option<PresenceState>,
}

/// Every person's devices and aggregated presence.
pub struct PresenceEngine {
    people: Mutex<HashMap<Address, Person>>,
    changes: broadcast::Sender<PresenceChange>,
    rules: Rules,
}

impl PresenceEngine {
    /// An engine with these aggregation rules.
    pub fn new(rules: Rules) -> PresenceEngine {
        let (changes, _) = broadcast::channel(65_536);
        PresenceEngine {
            people: Mutex::new(HashMap::new()),
            changes,
            rules,
        }
    }

    /// Subscribes to presence changes.
    pub fn changes(&self) -> broadcast::Receiver<PresenceChange> {
        self.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Address, Person>> {
        self.people.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn recompute(&self, person: &Address, p: &mut Person, now_ms: i64) {
        let devices: Vec<&DeviceState> = p.devices.values().collect();
        let state = aggregate(&devices, now_ms, &self.rules);
        if p.current.as_ref() != Some(&state) {
            p.current = Some(state.clone());
            let _ = self.changes.send(PresenceChange {
                person: person.clone(),
                state,
            });
        }
    }

    /// A device reports its state (publication, web client, XMPP presence).
    pub fn set_device(&self, person: &Address, device: &str, state: DeviceState, now_ms: i64) {
        let mut people = self.lock();
        let p = people.entry(person.clone()).or_default();
        p.devices.insert(device.to_owned(), state);
        self.recompute(person, p, now_ms);
    }

    /// A device signed in (registered) without publishing: it counts as
    /// Available unless it has published something already.
    pub fn device_registered(&self, person: &Address, device: &str, now_ms: i64) {
        let mut people = self.lock();
        let p = people.entry(person.clone()).or_default();
        p.devices
            .entry(device.to_owned())
            .or_insert_with(|| DeviceState::registered(now_ms));
        self.recompute(person, p, now_ms);
    }

    /// A device's publication ended: it falls back to its registration if it
    /// is still registered, else it is gone.
    pub fn publication_ended(
        &self,
        person: &Address,
        device: &str,
        still_registered: bool,
        now_ms: i64,
    ) {
        let mut people = self.lock();
        let Some(p) = people.get_mut(person) else {
            return;
        };
        if still_registered {
            p.devices
                .insert(device.to_owned(), DeviceState::registered(now_ms));
        } else {
            p.devices.remove(device);
        }
        self.recompute(person, p, now_ms);
    }

    /// A device signed out (its registration ended).
    pub fn device_gone(&self, person: &Address, device: &str, now_ms: i64) {
        let mut people = self.lock();
        let Some(p) = people.get_mut(person) else {
            return;
        };
        if p.devices.remove(device).is_none() {
            return;
        }
        self.recompute(person, p, now_ms);
        if p.devices.is_empty() {
            people.remove(person);
        }
    }

    /// The current aggregated presence of `person`.
    pub fn current(&self, person: &Address) -> PresenceState {
        self.lock()
            .get(person)
            .and_then(|p| p.current.clone())
            .unwrap_or_else(PresenceState::offline)
    }

    /// What `device` of `person` reports now, if it is known.
    pub fn device(&self, person: &Address, device: &str) -> Option<DeviceState> {
        self.lock()
            .get(person)
            .and_then(|p| p.devices.get(device).cloned())
    }

    /// Whether `device` of `person` has published (rather than only registered).
    pub fn has_published(&self, person: &Address, device: &str) -> bool {
        self.lock()
            .get(person)
            .and_then(|p| p.devices.get(device))
            .is_some_and(|d| d.source == Source::Published)
    }

    /// Re-evaluates everyone whose presence depends on time (idle devices
    /// turning Away); call periodically.
    pub fn tick(&self, now_ms: i64) {
        let mut people = self.lock();
        let idle: Vec<Address> = people
            .iter()
            .filter(|(_, p)| p.devices.values().any(|d| d.idle_since_ms.is_some()))
            .map(|(a, _)| a.clone())
            .collect();
        for a in idle {
            if let Some(p) = people.get_mut(&a) {
                self.recompute(&a, p, now_ms);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::model::Availability;

    fn alice() -> Address {
        Address::parse("alice@example.com").expect("valid")
    }

    #[tokio::test]
    async fn registration_publication_and_sign_out() {
        let engine = PresenceEngine::new(Rules::default());
        let mut rx = engine.changes();
        engine.device_registered(&alice(), "phone", 0);
        assert_eq!(
            rx.recv().await.expect("change").state.availability,
            Availability::Available
        );
        let busy = DeviceState {
            state: PresenceState::with(Availability::Busy),
            user_set: true,
            idle_since_ms: None,
            updated_ms: 1,
            source: Source::Published,
        };
        engine.set_device(&alice(), "phone", busy, 1);
        assert_eq!(
            rx.recv().await.expect("change").state.availability,
            Availability::Busy
        );
        assert!(engine.has_published(&alice(), "phone"));
        engine.publication_ended(&alice(), "phone", true, 2);
        assert_eq!(
            rx.recv().await.expect("change").state.availability,
            Availability::Available
        );
        engine.device_gone(&alice(), "phone", 3);
        assert_eq!(
            rx.recv().await.expect("change").state.availability,
            Availability::Offline
        );
        assert_eq!(engine.current(&alice()), PresenceState::offline());
    }

    #[tokio::test]
    async fn unchanged_state_is_not_announced_and_idle_ticks() {
        let engine = PresenceEngine::new(Rules { away_after_ms: 100 });
        let mut rx = engine.changes();
        engine.device_registered(&alice(), "a", 0);
        engine.device_registered(&alice(), "a", 0);
        let _ = rx.recv().await;
        assert!(rx.try_recv().is_err(), "no second change");
        let idle = DeviceState {
            state: PresenceState::available(),
            user_set: false,
            idle_since_ms: Some(0),
            updated_ms: 0,
            source: Source::Published,
        };
        engine.set_device(&alice(), "a", idle, 10);
        assert!(rx.recv().await.expect("idle").state.idle);
        engine.tick(200);
        assert_eq!(
            rx.recv().await.expect("away").state.availability,
            Availability::Away
        );
    }
}
