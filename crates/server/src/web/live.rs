//! Web sessions that are online: each one is a point of presence of its user
//! (a device in presence aggregation, an endpoint IM and group chats are
//! delivered to) while its event channel is open, and has a mailbox of
//! numbered events that the WebSocket and the long-poll fallback both read.
//!
//! A session is online while a WebSocket of it is open, or a long poll came
//! within [`POLL_GRACE`]; it goes offline [`WS_GRACE`] after its last
//! WebSocket closed (a page reload does not flap the user's presence).

use super::Web;
use super::events::{self, EventJson};
use crate::transport::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_core::Address;
use switchboard_core::endpoints::{EndpointEvent, EndpointReceiver};
use switchboard_core::presence::{DeviceState, PresenceChange, PresenceState};
use tokio::sync::{Notify, broadcast, mpsc};

/// How long a long-poll client stays online after its last poll.
pub const POLL_GRACE: Duration = Duration::from_secs(45);
/// How long a session stays online after its last WebSocket closed.
pub const WS_GRACE: Duration = Duration::from_secs(5);
/// Events kept per session for clients that reconnect or poll.
pub const MAILBOX: usize = 500;

/// Internal requests to a session's pump.
#[derive(Debug)]
pub enum Control {
    /// The user's contact list changed: (re)send presence of every contact.
    ContactsChanged,
}

#[derive(Debug)]
struct Mailbox {
    events: VecDeque<(u64, Arc<str>)>,
    next_seq: u64,
    sockets: usize,
    /// Last WebSocket close or long poll.
    last_seen: Instant,
    last_was_poll: bool,
}

/// One online session.
pub struct LiveSession {
    pub sid: String,
    pub user: Address,
    mailbox: Mutex<Mailbox>,
    /// Woken whenever an event is added.
    pub wake: Notify,
    control: mpsc::UnboundedSender<Control>,
    stop: tokio_util::sync::CancellationToken,
}

impl LiveSession {
    /// The device and endpoint name of this session.
    pub fn device(&self) -> String {
        format!("web:{}", self.sid)
    }

    /// Appends an event; returns its sequence number.
    pub fn push(&self, event: EventJson) -> u64 {
        let mut m = lock(&self.mailbox);
        let seq = m.next_seq;
        m.next_seq += 1;
        m.events.push_back((seq, event.with_seq(seq).into()));
        while m.events.len() > MAILBOX {
            m.events.pop_front();
        }
        drop(m);
        self.wake.notify_waiters();
        seq
    }

    /// Events after `since` (all kept ones for `None`), and the sequence the
    /// next read should start after. `gap` is true if events between `since`
    /// and the oldest kept one were dropped.
    pub fn read_after(&self, since: Option<u64>) -> (Vec<Arc<str>>, u64, bool) {
        let m = lock(&self.mailbox);
        let last = m.next_seq.saturating_sub(1);
        let oldest = m.events.front().map(|(s, _)| *s);
        let gap = match (since, oldest) {
            // 0 asks for everything kept: no cursor, no gap.
            (Some(s), Some(o)) => s > 0 && s + 1 < o,
            _ => false,
        };
        let out = m
            .events
            .iter()
            .filter(|(s, _)| since.is_none_or(|since| *s > since))
            .map(|(_, e)| e.clone())
            .collect();
        (out, last, gap)
    }

    /// Asks the pump to do something.
    pub fn control(&self, c: Control) {
        let _ = self.control.send(c);
    }

    fn online(&self, now: Instant) -> bool {
        let m = lock(&self.mailbox);
        m.sockets > 0
            || now.duration_since(m.last_seen)
                < if m.last_was_poll {
                    POLL_GRACE
                } else {
                    WS_GRACE
                }
    }
}

/// A WebSocket of a session is open while this lives.
pub struct SocketGuard(Arc<LiveSession>);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let mut m = lock(&self.0.mailbox);
        m.sockets = m.sockets.saturating_sub(1);
        m.last_seen = Instant::now();
        m.last_was_poll = false;
    }
}

/// The first sequence number of a new mailbox: the time in microseconds.
fn first_seq() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
        .max(1)
}

/// Every online session of this server.
#[derive(Default)]
pub struct Live {
    sessions: Mutex<HashMap<String, Arc<LiveSession>>>,
}

impl Live {
    /// The online session `sid`, if it is online.
    pub fn get(&self, sid: &str) -> Option<Arc<LiveSession>> {
        lock(&self.sessions).get(sid).cloned()
    }

    /// Every online session.
    pub fn all(&self) -> Vec<Arc<LiveSession>> {
        lock(&self.sessions).values().cloned().collect()
    }

    /// Online sessions of `user`.
    pub fn of_user(&self, user: &Address) -> Vec<Arc<LiveSession>> {
        lock(&self.sessions)
            .values()
            .filter(|s| &s.user == user)
            .cloned()
            .collect()
    }

    /// Brings session `sid` online (or keeps it online) and returns it.
    fn ensure(&self, web: &Arc<Web>, sid: &str, user: &Address) -> Arc<LiveSession> {
        let mut sessions = lock(&self.sessions);
        if let Some(s) = sessions.get(sid) {
            return s.clone();
        }
        let (control, control_rx) = mpsc::unbounded_channel();
        let session = Arc::new(LiveSession {
            sid: sid.to_owned(),
            user: user.clone(),
            mailbox: Mutex::new(Mailbox {
                events: VecDeque::new(),
                // Numbered from the clock in microseconds (below 2^53, so
                // exact in JavaScript): a client's cursor from an earlier
                // mailbox (before a restart, or before the session went
                // offline) is behind it, and reads as a gap, unless that
                // mailbox saw more than one event per microsecond.
                next_seq: first_seq(),
                sockets: 0,
                last_seen: Instant::now(),
                last_was_poll: true,
            }),
            wake: Notify::new(),
            control,
            stop: tokio_util::sync::CancellationToken::new(),
        });
        sessions.insert(sid.to_owned(), session.clone());
        drop(sessions);
        let device = session.device();
        let endpoint = web.endpoints.attach(user, &device);
        web.engine
            .device_registered(user, &device, switchboard_core::now_ms());
        tracing::info!(user = %user, session = %sid, "web session online");
        session.push(events::hello(sid, user));
        // Messages held while the user was offline come to this session.
        web.sip.clone().deliver_offline(user.clone());
        let changes = web.engine.changes();
        tokio::spawn(pump(
            web.clone(),
            session.clone(),
            endpoint,
            changes,
            control_rx,
        ));
        session.control(Control::ContactsChanged);
        session
    }

    /// A WebSocket of `sid` opened: online until the guard drops (+ grace).
    pub fn socket_opened(
        &self,
        web: &Arc<Web>,
        sid: &str,
        user: &Address,
    ) -> (Arc<LiveSession>, SocketGuard) {
        let s = self.ensure(web, sid, user);
        lock(&s.mailbox).sockets += 1;
        (s.clone(), SocketGuard(s))
    }

    /// A long poll (or another sign of life without a socket) from `sid`.
    pub fn polled(&self, web: &Arc<Web>, sid: &str, user: &Address) -> Arc<LiveSession> {
        let s = self.ensure(web, sid, user);
        {
            let mut m = lock(&s.mailbox);
            m.last_seen = Instant::now();
            m.last_was_poll = true;
        }
        s
    }

    /// Takes sessions offline whose channel is gone; call periodically.
    pub fn sweep(&self, web: &Web) {
        let now = Instant::now();
        let gone: Vec<Arc<LiveSession>> = {
            let mut sessions = lock(&self.sessions);
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, s)| !s.online(now))
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|k| sessions.remove(k)).collect()
        };
        for s in gone {
            self.offline(web, &s);
        }
    }

    /// Ends session `sid` now (sign-out, revocation).
    pub fn end(&self, web: &Web, sid: &str) {
        let s = lock(&self.sessions).remove(sid);
        if let Some(s) = s {
            s.push(events::closed("signed out"));
            self.offline(web, &s);
        }
    }

    fn offline(&self, web: &Web, s: &LiveSession) {
        s.stop.cancel();
        let device = s.device();
        web.endpoints.detach(&s.user, &device);
        web.engine
            .device_gone(&s.user, &device, switchboard_core::now_ms());
        tracing::info!(user = %s.user, session = %s.sid, "web session offline");
    }
}

/// Sets what this session's device reports (the user chose a state).
pub fn set_device_state(web: &Web, s: &LiveSession, state: PresenceState, idle_since: Option<i64>) {
    let now = switchboard_core::now_ms();
    web.engine.set_device(
        &s.user,
        &s.device(),
        DeviceState {
            state,
            user_set: true,
            idle_since_ms: idle_since,
            updated_ms: now,
            source: switchboard_core::presence::Source::Published,
        },
        now,
    );
}

/// Turns what happens elsewhere into this session's events: deliveries to
/// its endpoint, and presence changes of the people in its user's contact
/// list (filtered for this user by privacy, repeated only when they change).
async fn pump(
    web: Arc<Web>,
    session: Arc<LiveSession>,
    mut endpoint: EndpointReceiver,
    mut changes: broadcast::Receiver<PresenceChange>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut shown: HashMap<Address, String> = HashMap::new();
    loop {
        tokio::select! {
            _ = session.stop.cancelled() => return,
            ev = endpoint.recv() => match ev {
                Some(ev) => {
                    if let Some(json) = events::from_endpoint(&web, &ev) {
                        session.push(json);
                    }
                    if let EndpointEvent::Message { from, .. } = ev.as_ref() {
                        // People you talk to are watched even if not contacts.
                        send_presence(&web, &session, from, &mut shown, false);
                    }
                }
                None => return,
            },
            ch = changes.recv() => match ch {
                Ok(change) => {
                    if web.contacts.entry(&session.user, &change.person).is_some()
                        || shown.contains_key(&change.person)
                    {
                        send_presence(&web, &session, &change.person, &mut shown, false);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let people: Vec<Address> = shown.keys().cloned().collect();
                    for p in people {
                        send_presence(&web, &session, &p, &mut shown, false);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            c = control.recv() => match c {
                Some(Control::ContactsChanged) => {
                    let list = web.contacts.list(&session.user);
                    for person in list.keys() {
                        send_presence(&web, &session, person, &mut shown, false);
                    }
                    session.push(events::contacts_changed());
                }
                None => return,
            },
        }
    }
}

/// Sends `person`'s presence as this session's user may see it, unless it
/// is what was shown last (or `force`).
fn send_presence(
    web: &Web,
    session: &LiveSession,
    person: &Address,
    shown: &mut HashMap<Address, String>,
    force: bool,
) {
    let view = web.presence_for(person, &session.user);
    let event = events::presence(person, &view);
    let key = event.fingerprint();
    if !force && shown.get(person) == Some(&key) {
        return;
    }
    shown.insert(person.clone(), key);
    session.push(event);
}
