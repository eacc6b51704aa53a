//! Translation between PIDF/RPID documents and the domain's presence model:
//! what a PUBLISH means for a device, and the document a watcher is sent.

use switchboard_core::presence::{
    Activity, Availability, DeviceState, MeetingDetails, PresenceState, Source,
};
use switchboard_sip_bodies::pidf::{
    self, Activities, Basic, InputState, Note, Person, Presence, Tuple, UserInput,
};

/// Reads a published document as one device's state at `now_ms`.
pub fn device_state(doc: &Presence, now_ms: i64) -> DeviceState {
    let online = doc.tuples.is_empty() || doc.tuples.iter().any(|t| t.basic != Some(Basic::Closed));
    let person = doc.persons.first();
    let mut user_set = false;
    let mut availability = if online {
        Availability::Available
    } else {
        Availability::Offline
    };
    let mut idle = false;
    let mut activity = None;
    let mut meeting = None;
    if let Some(n) = person.and_then(|p| p.availability) {
        let (a, i) = Availability::from_number(n.0);
        availability = a;
        idle = i;
        // An explicit number is the user's choice, except plain Available and
        // the idle variants, which are what a client reports by itself.
        user_set = online && !i && a != Availability::Available;
    }
    if let Some(acts) = person.and_then(|p| p.activities.as_ref()) {
        for a in &acts.list {
            match a {
                pidf::Activity::OnThePhone => {
                    activity = Some(Activity::InACall);
                    if availability == Availability::Available {
                        availability = Availability::Busy;
                    }
                }
                pidf::Activity::Meeting
                | pidf::Activity::Appointment
                | pidf::Activity::Presentation => {
                    activity = Some(Activity::InAMeeting);
                    meeting = Some(MeetingDetails {
                        subject: acts.notes.first().map(|n| n.text.clone()),
                        location: None,
                        until: acts.until.clone(),
                    });
                    if availability == Availability::Available {
                        availability = Availability::Busy;
                    }
                }
                pidf::Activity::Vacation
                | pidf::Activity::Holiday
                | pidf::Activity::PermanentAbsence => activity = Some(Activity::OutOfOffice),
                pidf::Activity::Other(t) if t.eq_ignore_ascii_case("out-of-office") => {
                    activity = Some(Activity::OutOfOffice)
                }
                pidf::Activity::Busy if person.and_then(|p| p.availability).is_none() => {
                    availability = Availability::Busy;
                    user_set = true;
                }
                pidf::Activity::Away if person.and_then(|p| p.availability).is_none() => {
                    availability = Availability::Away;
                    user_set = true;
                }
                _ => {}
            }
        }
    }
    if !online {
        availability = Availability::Offline;
    }
    let input = person
        .and_then(|p| p.user_input.as_ref())
        .or_else(|| doc.devices.iter().find_map(|d| d.user_input.as_ref()))
        .or_else(|| doc.tuples.iter().find_map(|t| t.user_input.as_ref()));
    let idle_since_ms = match input {
        Some(UserInput {
            state: InputState::Idle,
            last_input,
            idle_threshold,
        }) => Some(
            last_input
                .as_deref()
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .unwrap_or_else(|| now_ms - i64::from(idle_threshold.unwrap_or(0)) * 1000)
                .min(now_ms),
        ),
        _ if idle => Some(now_ms),
        _ => None,
    };
    let note = person
        .and_then(|p| p.notes.first())
        .or_else(|| doc.notes.first())
        .or_else(|| doc.tuples.iter().find_map(|t| t.notes.first()))
        .map(|n| n.text.clone())
        .filter(|t| !t.trim().is_empty());
    DeviceState {
        state: PresenceState {
            availability,
            idle: false,
            activity,
            note,
            meeting,
        },
        user_set,
        idle_since_ms,
        updated_ms: now_ms,
        source: Source::Published,
    }
}

/// The document describing `state` of `entity` (already filtered for the
/// watcher): standard PIDF/RPID first, the Switchboard availability number
/// for clients that understand it.
pub fn document(entity: &str, state: &PresenceState) -> String {
    let online = state.availability != Availability::Offline;
    let mut list = Vec::new();
    match state.availability {
        Availability::Busy | Availability::DoNotDisturb => list.push(pidf::Activity::Busy),
        Availability::Away | Availability::BeRightBack | Availability::OffWork => {
            list.push(pidf::Activity::Away)
        }
        _ => {}
    }
    match state.activity {
        Some(Activity::InACall) => list.push(pidf::Activity::OnThePhone),
        Some(Activity::InAMeeting) => list.push(pidf::Activity::Meeting),
        Some(Activity::OutOfOffice) => list.push(pidf::Activity::Other("out-of-office".into())),
        None => {}
    }
    let activities = (!list.is_empty()).then(|| Activities {
        list,
        notes: state
            .meeting
            .as_ref()
            .and_then(|m| m.subject.clone())
            .map(Note::new)
            .into_iter()
            .collect(),
        from: None,
        until: state.meeting.as_ref().and_then(|m| m.until.clone()),
    });
    let notes: Vec<Note> = state.note.iter().map(Note::new).collect();
    let person = Person {
        id: "p".into(),
        activities,
        user_input: state.idle.then_some(UserInput {
            state: InputState::Idle,
            idle_threshold: None,
            last_input: None,
        }),
        availability: Some(pidf::Availability(state.number())),
        notes: notes.clone(),
        ..Person::default()
    };
    let tuple = Tuple {
        id: "sb".into(),
        basic: Some(if online { Basic::Open } else { Basic::Closed }),
        notes,
        ..Tuple::default()
    };
    Presence {
        entity: entity.to_owned(),
        tuples: vec![tuple],
        persons: vec![person],
        devices: Vec::new(),
        notes: Vec::new(),
    }
    .to_xml()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> DeviceState {
        device_state(
            &Presence::parse(xml.as_bytes()).expect("valid pidf"),
            1_000_000,
        )
    }

    #[test]
    fn baresip_open_and_closed() {
        let open = parse(
            r#"<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@x"><tuple id="t"><status><basic>open</basic></status></tuple></presence>"#,
        );
        assert_eq!(
            (open.state.availability, open.user_set),
            (Availability::Available, false)
        );
        let closed = parse(
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@x"><tuple id="t"><status><basic>closed</basic></status></tuple></presence>"#,
        );
        assert_eq!(closed.state.availability, Availability::Offline);
    }

    #[test]
    fn round_trip_through_our_document() {
        let state = PresenceState {
            availability: Availability::DoNotDisturb,
            idle: false,
            activity: Some(Activity::InAMeeting),
            note: Some("Board <meeting> & lunch".into()),
            meeting: Some(MeetingDetails {
                subject: Some("Q3".into()),
                location: None,
                until: Some("2026-11-24T15:00:00Z".into()),
            }),
        };
        let back = parse(&document("sip:a@x", &state));
        assert_eq!(back.state.availability, Availability::DoNotDisturb);
        assert!(back.user_set);
        assert_eq!(back.state.activity, Some(Activity::InAMeeting));
        assert_eq!(back.state.note.as_deref(), Some("Board <meeting> & lunch"));
        assert_eq!(
            back.state.meeting.and_then(|m| m.until).as_deref(),
            Some("2026-11-24T15:00:00Z")
        );
        for a in Availability::ALL {
            let s = PresenceState::with(a);
            assert_eq!(
                parse(&document("sip:a@x", &s)).state.availability,
                a,
                "{a:?}"
            );
        }
    }

    #[test]
    fn rpid_activities_and_idle() {
        let busy = parse(
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@x"><tuple id="t"><status><basic>open</basic></status></tuple><dm:person id="p"><rpid:activities><rpid:busy/></rpid:activities><dm:note>Writing</dm:note></dm:person></presence>"#,
        );
        assert_eq!(
            (
                busy.state.availability,
                busy.user_set,
                busy.state.note.as_deref()
            ),
            (Availability::Busy, true, Some("Writing"))
        );
        let call = parse(
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@x"><tuple id="t"><status><basic>open</basic></status></tuple><dm:person id="p"><rpid:activities><rpid:on-the-phone/></rpid:activities></dm:person></presence>"#,
        );
        assert_eq!(
            (call.state.availability, call.state.activity, call.user_set),
            (Availability::Busy, Some(Activity::InACall), false)
        );
        let idle = parse(
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@x"><tuple id="t"><status><basic>open</basic></status></tuple><dm:person id="p"><rpid:user-input idle-threshold="600">idle</rpid:user-input></dm:person></presence>"#,
        );
        assert_eq!(idle.idle_since_ms, Some(1_000_000 - 600_000));
        assert!(!idle.user_set);
    }
}
