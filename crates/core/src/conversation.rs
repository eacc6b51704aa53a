//! One-to-one conversations: the recent history between two people (so a
//! conversation turned into a conference keeps what was said) and whether it
//! has been escalated to a conference.

use crate::address::Address;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub from: Address,
    pub from_display: Option<String>,
    pub content_type: String,
    pub body: Vec<u8>,
    pub at_ms: i64,
}

/// How much recent history is kept and replayed to late joiners: the last
/// `max_messages` messages, none older than `max_age_ms`. (Skype for Business
/// replays 50 messages or 40 seconds.)
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    pub max_messages: usize,
    pub max_age_ms: i64,
}

impl Default for HistoryLimits {
    fn default() -> HistoryLimits {
        HistoryLimits {
            max_messages: 50,
            max_age_ms: 5 * 60 * 1000,
        }
    }
}

/// Drops what is beyond the limits.
pub fn trim(history: &mut VecDeque<HistoryEntry>, limits: &HistoryLimits, now_ms: i64) {
    while history.len() > limits.max_messages {
        history.pop_front();
    }
    while history
        .front()
        .is_some_and(|e| now_ms - e.at_ms > limits.max_age_ms)
    {
        history.pop_front();
    }
}

#[derive(Debug)]
struct Pair {
    id: String,
    history: VecDeque<HistoryEntry>,
    escalated: Option<String>,
    last_ms: i64,
}

/// Every live one-to-one conversation, keyed by the unordered pair.
#[derive(Debug)]
pub struct Conversations {
    pairs: Mutex<HashMap<(Address, Address), Pair>>,
    limits: HistoryLimits,
    /// A conversation silent for this long is forgotten (a new one starts).
    idle_ms: i64,
}

fn key(a: &Address, b: &Address) -> (Address, Address) {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

impl Conversations {
    /// A tracker keeping `limits` of history; conversations idle for
    /// `idle_ms` end.
    pub fn new(limits: HistoryLimits, idle_ms: i64) -> Conversations {
        Conversations {
            pairs: Mutex::new(HashMap::new()),
            limits,
            idle_ms,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Address, Address), Pair>> {
        self.pairs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of the conversation between `a` and `b` (created if new), the
    /// identifier archiving and web clients use.
    pub fn id(
        &self,
        a: &Address,
        b: &Address,
        now_ms: i64,
        new_id: impl FnOnce() -> String,
    ) -> String {
        let mut pairs = self.lock();
        let k = key(a, b);
        let idle = self.idle_ms;
        let stale = pairs
            .get(&k)
            .is_some_and(|p| now_ms - p.last_ms > idle && p.escalated.is_none());
        if stale {
            pairs.remove(&k);
        }
        let p = pairs.entry(k).or_insert_with(|| Pair {
            id: new_id(),
            history: VecDeque::new(),
            escalated: None,
            last_ms: now_ms,
        });
        p.last_ms = now_ms;
        p.id.clone()
    }

    /// Records a message exchanged between `a` and `b`; returns the conversation id.
    pub fn record(
        &self,
        a: &Address,
        b: &Address,
        entry: HistoryEntry,
        new_id: impl FnOnce() -> String,
    ) -> String {
        let now = entry.at_ms;
        let id = self.id(a, b, now, new_id);
        let mut pairs = self.lock();
        if let Some(p) = pairs.get_mut(&key(a, b)) {
            p.history.push_back(entry);
            trim(&mut p.history, &self.limits, now);
        }
        id
    }

    /// The recent history between `a` and `b`, oldest first.
    pub fn recent(&self, a: &Address, b: &Address, now_ms: i64) -> Vec<HistoryEntry> {
        let mut pairs = self.lock();
        match pairs.get_mut(&key(a, b)) {
            Some(p) => {
                trim(&mut p.history, &self.limits, now_ms);
                p.history.iter().cloned().collect()
            }
            None => Vec::new(),
        }
    }

    /// The conference this conversation was escalated to, if any.
    pub fn escalated(&self, a: &Address, b: &Address) -> Option<String> {
        self.lock()
            .get(&key(a, b))
            .and_then(|p| p.escalated.clone())
    }

    /// Marks the conversation as escalated to `conference` (or back to 1:1).
    pub fn set_escalated(
        &self,
        a: &Address,
        b: &Address,
        conference: Option<String>,
        now_ms: i64,
        new_id: impl FnOnce() -> String,
    ) {
        self.id(a, b, now_ms, new_id);
        if let Some(p) = self.lock().get_mut(&key(a, b)) {
            p.escalated = conference;
        }
    }

    /// Forgets the escalation of every conversation moved into `conference`.
    pub fn conference_ended(&self, conference: &str) {
        for p in self.lock().values_mut() {
            if p.escalated.as_deref() == Some(conference) {
                p.escalated = None;
            }
        }
    }

    /// The two people of conversation `id`, if it is live.
    pub fn pair_of(&self, id: &str) -> Option<(Address, Address)> {
        self.lock()
            .iter()
            .find(|(_, p)| p.id == id)
            .map(|(k, _)| k.clone())
    }

    /// The live conversations `user` takes part in: (id, the other person,
    /// last activity), most recent first.
    pub fn of_user(&self, user: &Address) -> Vec<(String, Address, i64)> {
        let mut out: Vec<(String, Address, i64)> = self
            .lock()
            .iter()
            .filter_map(|((a, b), p)| {
                let other = if a == user {
                    b
                } else if b == user {
                    a
                } else {
                    return None;
                };
                Some((p.id.clone(), other.clone(), p.last_ms))
            })
            .collect();
        out.sort_by_key(|x| std::cmp::Reverse(x.2));
        out
    }

    /// Forgets idle conversations.
    pub fn sweep(&self, now_ms: i64) {
        let idle = self.idle_ms;
        self.lock()
            .retain(|_, p| p.escalated.is_some() || now_ms - p.last_ms <= idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        Address::parse(s).expect("valid")
    }

    fn entry(from: &str, text: &str, at: i64) -> HistoryEntry {
        HistoryEntry {
            from: a(from),
            from_display: None,
            content_type: "text/plain".into(),
            body: text.as_bytes().to_vec(),
            at_ms: at,
        }
    }

    #[test]
    fn history_is_bounded_by_count_and_age() {
        let c = Conversations::new(
            HistoryLimits {
                max_messages: 3,
                max_age_ms: 1000,
            },
            60_000,
        );
        let (x, y) = (a("x@e.com"), a("y@e.com"));
        for i in 0..5 {
            c.record(&x, &y, entry("x@e.com", &i.to_string(), i), || "c1".into());
        }
        let texts: Vec<String> = c
            .recent(&y, &x, 5)
            .iter()
            .map(|e| String::from_utf8_lossy(&e.body).into_owned())
            .collect();
        assert_eq!(texts, vec!["2", "3", "4"]);
        assert!(c.recent(&x, &y, 2_000).is_empty(), "too old");
    }

    #[test]
    fn conversations_are_found_by_id_and_by_participant() {
        let c = Conversations::new(HistoryLimits::default(), 60_000);
        let (x, y, z) = (a("x@e.com"), a("y@e.com"), a("z@e.com"));
        let xy = c.id(&x, &y, 10, || "xy".into());
        let xz = c.id(&z, &x, 20, || "xz".into());
        assert_eq!(c.pair_of(&xy), Some((x.clone(), y.clone())));
        assert_eq!(c.pair_of("nope"), None);
        let mine: Vec<(String, Address)> = c
            .of_user(&x)
            .into_iter()
            .map(|(id, other, _)| (id, other))
            .collect();
        assert_eq!(mine, vec![(xz, z.clone()), (xy, y.clone())]);
        assert_eq!(c.of_user(&y).len(), 1);
    }

    #[test]
    fn pair_is_unordered_and_ids_are_stable_until_idle() {
        let c = Conversations::new(HistoryLimits::default(), 100);
        let (x, y) = (a("x@e.com"), a("y@e.com"));
        let id1 = c.id(&x, &y, 0, || "first".into());
        assert_eq!(c.id(&y, &x, 50, || "second".into()), id1);
        assert_eq!(
            c.id(&x, &y, 500, || "third".into()),
            "third",
            "idle conversation starts anew"
        );
        c.set_escalated(&x, &y, Some("conf".into()), 500, || "x".into());
        assert_eq!(c.escalated(&y, &x).as_deref(), Some("conf"));
        c.sweep(10_000);
        assert_eq!(
            c.escalated(&x, &y).as_deref(),
            Some("conf"),
            "escalated conversations stay"
        );
        c.conference_ended("conf");
        assert_eq!(c.escalated(&x, &y), None);
    }
}
