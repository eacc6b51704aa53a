//! Aggregation of a person's devices into one presence (rules documented with
//! examples in docs/PRESENCE.md):
//!
//! 1. no device: Offline;
//! 2. a state the user set explicitly (on any device) beats every machine
//!    state: the most recent one wins;
//! 3. otherwise the most available device wins, where a device idle for
//!    longer than `away_after` counts as Away and a shorter idle Available
//!    device as Available (idle); a device that registered but never
//!    published counts as Available;
//! 4. the note is the most recent note published on any device; the activity
//!    is the winning device's, else the most recent one any device reports.

use super::model::{Availability, PresenceState};

/// Where a device's state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Registered, never published: presence derived from registration.
    Registered,
    /// Published (PUBLISH, web client, XMPP presence…).
    Published,
}

/// What one device reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    pub state: PresenceState,
    /// The user chose this state (a manual "Busy"), as opposed to a machine
    /// state (signed in, idle, in a call).
    pub user_set: bool,
    /// Since when the device has had no user input, if it is idle.
    pub idle_since_ms: Option<i64>,
    /// When this state was reported.
    pub updated_ms: i64,
    pub source: Source,
}

impl DeviceState {
    /// A device known only from its registration.
    pub fn registered(now_ms: i64) -> DeviceState {
        DeviceState {
            state: PresenceState::available(),
            user_set: false,
            idle_since_ms: None,
            updated_ms: now_ms,
            source: Source::Registered,
        }
    }
}

/// Tunables of aggregation.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// How long a device may be idle before Available turns into Away.
    pub away_after_ms: i64,
}

impl Default for Rules {
    /// Five minutes, as Skype for Business does by default.
    fn default() -> Rules {
        Rules {
            away_after_ms: 5 * 60 * 1000,
        }
    }
}

fn effective(d: &DeviceState, now_ms: i64, rules: &Rules) -> PresenceState {
    let mut s = d.state.clone();
    if let Some(since) = d.idle_since_ms
        && s.availability == Availability::Available
    {
        if now_ms - since >= rules.away_after_ms {
            s.availability = Availability::Away;
            s.idle = false;
        } else {
            s.idle = true;
        }
    }
    s
}

/// The presence of a person with these devices at `now_ms`.
pub fn aggregate(devices: &[&DeviceState], now_ms: i64, rules: &Rules) -> PresenceState {
    if devices.is_empty() {
        return PresenceState::offline();
    }
    let latest_note = devices
        .iter()
        .filter(|d| d.state.note.is_some())
        .max_by_key(|d| d.updated_ms)
        .and_then(|d| d.state.note.clone());
    if let Some(user) = devices
        .iter()
        .filter(|d| d.user_set)
        .max_by_key(|d| d.updated_ms)
    {
        let mut s = user.state.clone();
        s.idle = false;
        if s.note.is_none() {
            s.note = latest_note;
        }
        return s;
    }
    let winner = devices
        .iter()
        .map(|d| (effective(d, now_ms, rules), d.updated_ms))
        .min_by(|(a, at), (b, bt)| a.number().cmp(&b.number()).then(bt.cmp(at)))
        .map(|(s, _)| s)
        .unwrap_or_else(PresenceState::offline);
    let mut s = winner;
    if s.availability == Availability::Offline {
        return PresenceState {
            note: latest_note,
            ..PresenceState::offline()
        };
    }
    if s.activity.is_none()
        && let Some(d) = devices
            .iter()
            .filter(|d| d.state.activity.is_some())
            .max_by_key(|d| d.updated_ms)
    {
        s.activity = d.state.activity;
        if s.meeting.is_none() {
            s.meeting = d.state.meeting.clone();
        }
    }
    s.note = latest_note;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::model::Activity;

    fn dev(a: Availability, user_set: bool, at: i64) -> DeviceState {
        DeviceState {
            state: PresenceState::with(a),
            user_set,
            idle_since_ms: None,
            updated_ms: at,
            source: Source::Published,
        }
    }

    fn agg(devs: &[DeviceState], now: i64) -> PresenceState {
        aggregate(&devs.iter().collect::<Vec<_>>(), now, &Rules::default())
    }

    #[test]
    fn no_device_is_offline() {
        assert_eq!(agg(&[], 0), PresenceState::offline());
    }

    #[test]
    fn registered_without_publishing_is_available() {
        assert_eq!(
            agg(&[DeviceState::registered(0)], 0).availability,
            Availability::Available
        );
    }

    #[test]
    fn user_set_state_beats_machine_states() {
        let devs = [
            dev(Availability::Available, false, 10),
            dev(Availability::DoNotDisturb, true, 5),
        ];
        assert_eq!(agg(&devs, 20).availability, Availability::DoNotDisturb);
        let newer = [
            dev(Availability::Busy, true, 5),
            dev(Availability::BeRightBack, true, 9),
        ];
        assert_eq!(
            agg(&newer, 20).availability,
            Availability::BeRightBack,
            "the most recent user choice wins"
        );
    }

    #[test]
    fn most_available_device_wins() {
        let devs = [
            dev(Availability::Away, false, 10),
            dev(Availability::Available, false, 5),
            dev(Availability::Offline, false, 11),
        ];
        assert_eq!(agg(&devs, 20).availability, Availability::Available);
    }

    #[test]
    fn idle_turns_available_into_away_after_the_configured_time() {
        let mut d = dev(Availability::Available, false, 0);
        d.idle_since_ms = Some(1_000);
        let rules = Rules {
            away_after_ms: 60_000,
        };
        let early = aggregate(&[&d], 30_000, &rules);
        assert_eq!(
            (early.availability, early.idle, early.number()),
            (Availability::Available, true, 5000)
        );
        let late = aggregate(&[&d], 61_000, &rules);
        assert_eq!(late.availability, Availability::Away);
        let active = dev(Availability::Available, false, 0);
        assert_eq!(
            aggregate(&[&d, &active], 61_000, &rules).availability,
            Availability::Available,
            "an active device beats an idle one"
        );
    }

    #[test]
    fn notes_and_activities_travel() {
        let mut a = dev(Availability::Available, false, 10);
        a.state.note = Some("old".into());
        let mut b = dev(Availability::Busy, false, 20);
        b.state.note = Some("Back at 3".into());
        b.state.activity = Some(Activity::InACall);
        let s = agg(&[a, b], 30);
        assert_eq!(s.availability, Availability::Available);
        assert_eq!(s.note.as_deref(), Some("Back at 3"));
        assert_eq!(s.activity, Some(Activity::InACall));
    }

    #[test]
    fn all_offline_devices_mean_offline_with_note() {
        let mut d = dev(Availability::Offline, false, 1);
        d.state.note = Some("On leave".into());
        let s = agg(&[d], 2);
        assert_eq!(s.availability, Availability::Offline);
        assert_eq!(s.note.as_deref(), Some("On leave"));
    }
}
