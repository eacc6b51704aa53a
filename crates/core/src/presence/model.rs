//! The availability model every front door translates to: the seven states
//! enterprise users know, three activities, a note, and the numeric ranges of
//! Skype for Business kept as the documented mapping (so SIP, XMPP and web
//! clients that speak numbers interoperate).

use serde::{Deserialize, Serialize};
use std::fmt;

/// How reachable a person is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Availability {
    Available,
    Busy,
    DoNotDisturb,
    BeRightBack,
    Away,
    OffWork,
    Offline,
}

impl Availability {
    /// Every state, most available first.
    pub const ALL: [Availability; 7] = [
        Availability::Available,
        Availability::Busy,
        Availability::DoNotDisturb,
        Availability::BeRightBack,
        Availability::Away,
        Availability::OffWork,
        Availability::Offline,
    ];

    /// The Skype for Business number for this state (idle variants for
    /// Available and Busy). Off work has no number of its own there (it is an
    /// Away-band state with an activity); Switchboard publishes it as 16500,
    /// inside the Away band, so that it survives a round trip.
    pub fn number(self, idle: bool) -> u32 {
        match (self, idle) {
            (Availability::Available, false) => 3500,
            (Availability::Available, true) => 5000,
            (Availability::Busy, false) => 6500,
            (Availability::Busy, true) => 7500,
            (Availability::DoNotDisturb, _) => 9500,
            (Availability::BeRightBack, _) => 12500,
            (Availability::Away, _) => 15500,
            (Availability::OffWork, _) => 16500,
            (Availability::Offline, _) => 18500,
        }
    }

    /// Reads a Skype for Business number: the state and whether it is an idle
    /// variant. Ranges: 0–4499 Available, 4500–5999 Available (idle),
    /// 6000–7499 Busy, 7500–8999 Busy (idle), 9000–11999 Do not disturb,
    /// 12000–14999 Be right back, 15000–17999 Away (16500 exactly: Off work),
    /// 18000 and above Offline.
    pub fn from_number(n: u32) -> (Availability, bool) {
        match n {
            0..=4499 => (Availability::Available, false),
            4500..=5999 => (Availability::Available, true),
            6000..=7499 => (Availability::Busy, false),
            7500..=8999 => (Availability::Busy, true),
            9000..=11999 => (Availability::DoNotDisturb, false),
            12000..=14999 => (Availability::BeRightBack, false),
            16500 => (Availability::OffWork, false),
            15000..=17999 => (Availability::Away, false),
            _ => (Availability::Offline, false),
        }
    }

    /// The token used in APIs and the CLI (`available`, `do-not-disturb`…).
    pub fn token(self) -> &'static str {
        match self {
            Availability::Available => "available",
            Availability::Busy => "busy",
            Availability::DoNotDisturb => "do-not-disturb",
            Availability::BeRightBack => "be-right-back",
            Availability::Away => "away",
            Availability::OffWork => "off-work",
            Availability::Offline => "offline",
        }
    }

    /// Parses a token.
    pub fn from_token(s: &str) -> Option<Availability> {
        Availability::ALL
            .into_iter()
            .find(|a| a.token().eq_ignore_ascii_case(s))
    }

    /// How people read it.
    pub fn label(self) -> &'static str {
        match self {
            Availability::Available => "Available",
            Availability::Busy => "Busy",
            Availability::DoNotDisturb => "Do not disturb",
            Availability::BeRightBack => "Be right back",
            Availability::Away => "Away",
            Availability::OffWork => "Off work",
            Availability::Offline => "Offline",
        }
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What the person is doing, when it matters for reaching them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activity {
    InAMeeting,
    InACall,
    OutOfOffice,
}

impl Activity {
    /// The token used in APIs (`in-a-meeting`, `in-a-call`, `out-of-office`).
    pub fn token(self) -> &'static str {
        match self {
            Activity::InAMeeting => "in-a-meeting",
            Activity::InACall => "in-a-call",
            Activity::OutOfOffice => "out-of-office",
        }
    }

    /// Parses a token.
    pub fn from_token(s: &str) -> Option<Activity> {
        [
            Activity::InAMeeting,
            Activity::InACall,
            Activity::OutOfOffice,
        ]
        .into_iter()
        .find(|a| a.token().eq_ignore_ascii_case(s))
    }

    /// How people read it.
    pub fn label(self) -> &'static str {
        match self {
            Activity::InAMeeting => "In a meeting",
            Activity::InACall => "In a call",
            Activity::OutOfOffice => "Out of office",
        }
    }
}

/// Details of the current meeting (seen only at the Workgroup level).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MeetingDetails {
    pub subject: Option<String>,
    pub location: Option<String>,
    /// RFC 3339 end time, as published.
    pub until: Option<String>,
}

/// A person's presence: what watchers are shown (after privacy filtering).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceState {
    pub availability: Availability,
    /// True for the idle variants (no input on the device for a while).
    pub idle: bool,
    pub activity: Option<Activity>,
    /// The free-text note ("Back at 3", "Working from Lyon").
    pub note: Option<String>,
    pub meeting: Option<MeetingDetails>,
}

impl PresenceState {
    /// Signed out.
    pub fn offline() -> PresenceState {
        PresenceState {
            availability: Availability::Offline,
            idle: false,
            activity: None,
            note: None,
            meeting: None,
        }
    }

    /// Signed in and reachable, nothing more known.
    pub fn available() -> PresenceState {
        PresenceState {
            availability: Availability::Available,
            idle: false,
            activity: None,
            note: None,
            meeting: None,
        }
    }

    /// A state with just an availability.
    pub fn with(availability: Availability) -> PresenceState {
        PresenceState {
            availability,
            ..PresenceState::offline()
        }
    }

    /// The Skype for Business number of this state.
    pub fn number(&self) -> u32 {
        self.availability.number(self.idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for a in Availability::ALL {
            for idle in [false, true] {
                let (back, back_idle) = Availability::from_number(a.number(idle));
                assert_eq!(back, a, "{a:?} idle={idle}");
                if matches!(a, Availability::Available | Availability::Busy) {
                    assert_eq!(back_idle, idle);
                }
            }
        }
    }

    #[test]
    fn sfb_ranges() {
        assert_eq!(
            Availability::from_number(0),
            (Availability::Available, false)
        );
        assert_eq!(
            Availability::from_number(4499),
            (Availability::Available, false)
        );
        assert_eq!(
            Availability::from_number(4500),
            (Availability::Available, true)
        );
        assert_eq!(Availability::from_number(6000).0, Availability::Busy);
        assert_eq!(Availability::from_number(8999), (Availability::Busy, true));
        assert_eq!(
            Availability::from_number(11999).0,
            Availability::DoNotDisturb
        );
        assert_eq!(
            Availability::from_number(12000).0,
            Availability::BeRightBack
        );
        assert_eq!(Availability::from_number(15000).0, Availability::Away);
        assert_eq!(Availability::from_number(17999).0, Availability::Away);
        assert_eq!(Availability::from_number(18000).0, Availability::Offline);
        assert_eq!(Availability::from_number(u32::MAX).0, Availability::Offline);
    }

    #[test]
    fn tokens() {
        for a in Availability::ALL {
            assert_eq!(Availability::from_token(a.token()), Some(a));
        }
        assert_eq!(Activity::from_token("IN-A-CALL"), Some(Activity::InACall));
        assert_eq!(
            serde_json::to_string(&Availability::DoNotDisturb).expect("json"),
            "\"do-not-disturb\""
        );
    }
}
