//! PIDF presence documents (RFC 3863) with the RFC 4479 data model, the
//! RPID extensions of RFC 4480, and Switchboard's availability extension.
//!
//! # What is modelled
//!
//! * [`Presence`]: the `entity`, its service [`Tuple`]s, [`Person`]s,
//!   [`Device`]s and document-level notes.
//! * RPID: [`Activities`], [`UserInput`], [`PlaceType`], [`Mood`] and
//!   `class`; `deviceID` from the data model.
//! * [`Availability`]: the Skype for Business style number (3500 Available …
//!   18500 Offline) in our own namespace, see below.
//!
//! Everything else (other namespaces, RPID elements not listed, CIPID, …) is
//! skipped when parsing, never rejected: clients add what they like. Parsing
//! matches namespaces, not prefixes, and accepts RPID elements either directly
//! in a `<tuple>` (RFC 4480 style) or inside its `<status>` (older clients),
//! and a note in either the PIDF or the data-model namespace wherever a note
//! may appear.
//!
//! # Generation and privacy filtering
//!
//! [`Presence::to_xml`] writes exactly what the struct holds, standard
//! elements first. The server filters per watcher by building a `Presence`
//! with only what that watcher may see; nothing is added. The output is
//! always well-formed: all user text is escaped, and characters XML cannot
//! carry are dropped (see [`crate::xml_safe`]).
//!
//! # The availability extension
//!
//! Namespace [`NS_AVAILABILITY`] = `urn:switchboard:params:xml:ns:pidf:availability`,
//! conventional prefix `sb`, one element, child of `<dm:person>`:
//!
//! ```xml
//! <dm:person id="p1">
//!   <rpid:activities><rpid:busy/></rpid:activities>
//!   <sb:availability>6500</sb:availability>
//!   <dm:note>In the budget review</dm:note>
//! </dm:person>
//! ```
//!
//! The content is a decimal unsigned 32-bit integer on the scale Skype for
//! Business uses (0–4499 Available, 4500–5999 Available-Idle, 6000–7499
//! Busy, 7500–8999 Busy-Idle, 9000–11999 Do not disturb, 12000–14999 Be right
//! back, 15000–17999 Away, 18000+ Offline). It refines, never replaces, the
//! standard elements: a generator that sets it also sets `<basic>` and RPID
//! activities so clients that ignore the extension (being in another
//! namespace, it is ignorable by the PIDF rules) still show a sensible state.
//! The free-text status message travels as a standard `<dm:note>` of the
//! person (and, for clients that only read tuple notes, as a tuple `<note>`):
//! no extension is needed for it.

use crate::error::{Error, Format, Result, snippet};
use crate::xml::{self, Element, Writer, trim};

/// MIME type of PIDF bodies.
pub const CONTENT_TYPE: &str = "application/pidf+xml";
/// PIDF namespace (RFC 3863).
pub const NS_PIDF: &str = "urn:ietf:params:xml:ns:pidf";
/// Presence data model namespace (RFC 4479).
pub const NS_DATA_MODEL: &str = "urn:ietf:params:xml:ns:pidf:data-model";
/// RPID namespace (RFC 4480).
pub const NS_RPID: &str = "urn:ietf:params:xml:ns:pidf:rpid";
/// Location types registry namespace (RFC 4589), used by `<place-type>`.
pub const NS_LOCATION_TYPE: &str = "urn:ietf:params:xml:ns:location-type";
/// Switchboard's extension namespace carrying [`Availability`].
pub const NS_AVAILABILITY: &str = "urn:switchboard:params:xml:ns:pidf:availability";

const F: Format = Format::Pidf;

fn invalid(msg: impl AsRef<str>) -> Error {
    Error::invalid(F, msg)
}

/// A whole PIDF document: what one presentity (`entity`) publishes or what a
/// watcher is told about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Presence {
    /// The presentity's URI (`entity` attribute, required).
    pub entity: String,
    /// Services (RFC 4479 §3.1), one per `<tuple>`.
    pub tuples: Vec<Tuple>,
    /// The human (RFC 4479 §3.2), normally at most one `<dm:person>`.
    pub persons: Vec<Person>,
    /// Devices (RFC 4479 §3.3), `<dm:device>`.
    pub devices: Vec<Device>,
    /// Notes on the whole document (`<presence><note>`).
    pub notes: Vec<Note>,
}

/// A human-readable note with its optional language (`xml:lang`).
///
/// Text is kept exactly as sent (no trimming): it is user text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Note {
    /// The note text.
    pub text: String,
    /// Language tag from `xml:lang`, if any.
    pub lang: Option<String>,
}

impl Note {
    /// A note without a language tag, the common case.
    pub fn new(text: impl Into<String>) -> Self {
        Note {
            text: text.into(),
            lang: None,
        }
    }
}

token_enum! {
    /// `<basic>`: whether the service can be used at all right now.
    pub enum Basic {
        /// `open`: the service can receive communication.
        Open => "open",
        /// `closed`: it cannot.
        Closed => "closed",
    }
}

/// Contact address of a tuple and its priority.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contact {
    /// The URI to use to reach this service.
    pub uri: String,
    /// Relative preference among the presentity's contacts.
    pub priority: Option<Priority>,
}

/// A `priority` qvalue (0 to 1 with up to three decimals), kept in
/// thousandths so it compares exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u16);

impl Priority {
    /// The priority `thousandths / 1000`, or `None` above 1.
    pub fn from_thousandths(thousandths: u16) -> Option<Self> {
        (thousandths <= 1000).then_some(Priority(thousandths))
    }

    /// The value in thousandths (0..=1000).
    pub fn thousandths(self) -> u16 {
        self.0
    }

    /// Parses a qvalue: `0`, `0.8`, `1.000`, … (RFC 3863 `qvalue`).
    pub fn parse(s: &str) -> Option<Self> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut thousandths: u16 = match int {
            "0" => 0,
            "1" => 1000,
            _ => return None,
        };
        let mut scale = 100;
        for b in frac.bytes() {
            thousandths += u16::from(b - b'0') * scale;
            scale /= 10;
        }
        Self::from_thousandths(thousandths)
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (int, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            return write!(f, "{int}");
        }
        let s = format!("{frac:03}");
        write!(f, "{int}.{}", s.trim_end_matches('0'))
    }
}

/// A service (`<tuple>`): one way of reaching the presentity, typically one
/// registered endpoint's IM capability.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tuple {
    /// The tuple's `id` (required, unique in the document).
    pub id: String,
    /// `<status><basic>`, optional in the schema (a status may carry only
    /// extensions).
    pub basic: Option<Basic>,
    /// `<dm:deviceID>`: the device this service runs on.
    pub device_id: Option<String>,
    /// `<rpid:user-input>` for this service.
    pub user_input: Option<UserInput>,
    /// `<rpid:class>`: a label the presentity uses to group elements.
    pub class: Option<String>,
    /// `<contact>`.
    pub contact: Option<Contact>,
    /// `<note>`s of the tuple.
    pub notes: Vec<Note>,
    /// `<timestamp>`, an RFC 3339 date-time kept as text.
    pub timestamp: Option<String>,
}

/// The human being (`<dm:person>`): what they are doing and how available
/// they are, independent of devices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    /// The person's `id` (required).
    pub id: String,
    /// `<rpid:activities>`.
    pub activities: Option<Activities>,
    /// `<rpid:class>`.
    pub class: Option<String>,
    /// `<rpid:mood>`.
    pub mood: Option<Mood>,
    /// `<rpid:place-type>`.
    pub place_type: Option<PlaceType>,
    /// `<rpid:user-input>` aggregated over the person's devices.
    pub user_input: Option<UserInput>,
    /// `<sb:availability>`, Switchboard's extension.
    pub availability: Option<Availability>,
    /// `<dm:note>`s: the user's free-text status message goes here.
    pub notes: Vec<Note>,
    /// `<dm:timestamp>`.
    pub timestamp: Option<String>,
}

/// A device (`<dm:device>`) such as a PC or phone, mainly for its idle state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Device {
    /// The device element's `id` (required).
    pub id: String,
    /// `<rpid:user-input>` on this device.
    pub user_input: Option<UserInput>,
    /// `<rpid:class>`.
    pub class: Option<String>,
    /// `<dm:deviceID>`, the URN tuples refer to.
    pub device_id: Option<String>,
    /// `<dm:note>`s.
    pub notes: Vec<Note>,
    /// `<dm:timestamp>`.
    pub timestamp: Option<String>,
}

/// `<rpid:activities>`: what the person is doing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Activities {
    /// The activities, in document order. Empty when the element was empty
    /// (baresip sends `<rpid:activities/>`, meaning nothing in particular).
    pub list: Vec<Activity>,
    /// `<rpid:note>`s inside the element.
    pub notes: Vec<Note>,
    /// `from` attribute: when the activities started.
    pub from: Option<String>,
    /// `until` attribute: when they are expected to end.
    pub until: Option<String>,
}

/// One RPID activity (RFC 4480 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Activity {
    /// `appointment`
    Appointment,
    /// `away`
    Away,
    /// `breakfast`
    Breakfast,
    /// `busy`
    Busy,
    /// `dinner`
    Dinner,
    /// `holiday`
    Holiday,
    /// `in-transit`
    InTransit,
    /// `looking-for-work`
    LookingForWork,
    /// `lunch`
    Lunch,
    /// `meal`
    Meal,
    /// `meeting`
    Meeting,
    /// `on-the-phone`
    OnThePhone,
    /// `performance`
    Performance,
    /// `permanent-absence`
    PermanentAbsence,
    /// `playing`
    Playing,
    /// `presentation`
    Presentation,
    /// `shopping`
    Shopping,
    /// `sleeping`
    Sleeping,
    /// `spectator`
    Spectator,
    /// `steering`
    Steering,
    /// `travel`
    Travel,
    /// `tv`
    Tv,
    /// `unknown`: the presentity does not know or does not say.
    Unknown,
    /// `vacation`
    Vacation,
    /// `working`
    Working,
    /// `worship`
    Worship,
    /// `<rpid:other>text</rpid:other>`: a free-text activity.
    Other(String),
}

const ACTIVITY_TOKENS: &[(&str, Activity)] = &[
    ("appointment", Activity::Appointment),
    ("away", Activity::Away),
    ("breakfast", Activity::Breakfast),
    ("busy", Activity::Busy),
    ("dinner", Activity::Dinner),
    ("holiday", Activity::Holiday),
    ("in-transit", Activity::InTransit),
    ("looking-for-work", Activity::LookingForWork),
    ("lunch", Activity::Lunch),
    ("meal", Activity::Meal),
    ("meeting", Activity::Meeting),
    ("on-the-phone", Activity::OnThePhone),
    ("performance", Activity::Performance),
    ("permanent-absence", Activity::PermanentAbsence),
    ("playing", Activity::Playing),
    ("presentation", Activity::Presentation),
    ("shopping", Activity::Shopping),
    ("sleeping", Activity::Sleeping),
    ("spectator", Activity::Spectator),
    ("steering", Activity::Steering),
    ("travel", Activity::Travel),
    ("tv", Activity::Tv),
    ("unknown", Activity::Unknown),
    ("vacation", Activity::Vacation),
    ("working", Activity::Working),
    ("worship", Activity::Worship),
];

impl Activity {
    /// Every activity that has a fixed token (all but [`Activity::Other`]).
    pub fn known() -> impl Iterator<Item = Activity> {
        ACTIVITY_TOKENS.iter().map(|(_, a)| a.clone())
    }

    /// The element name for this activity (`other` for [`Activity::Other`]).
    pub fn token(&self) -> &'static str {
        ACTIVITY_TOKENS
            .iter()
            .find(|(_, a)| a == self)
            .map_or("other", |(t, _)| t)
    }

    /// The activity an RPID element name stands for (not `other`, which
    /// needs its text).
    pub fn from_token(token: &str) -> Option<Activity> {
        ACTIVITY_TOKENS
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, a)| a.clone())
    }
}

/// `<rpid:mood>` (RFC 4480 §3.3).
///
/// Mood values are kept as element names (`happy`, `in_love`, …) rather than
/// a closed enum: the list is long, rarely used, and the server only passes
/// it through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mood {
    /// Mood tokens (RPID element names other than `note`/`other`). Tokens
    /// that are not XML names are skipped when generating.
    pub values: Vec<String>,
    /// `<rpid:other>` free text.
    pub other: Option<String>,
    /// `<rpid:note>`s.
    pub notes: Vec<Note>,
}

/// `<rpid:place-type>` (RFC 4480 §3.7): the kind of place the person is in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlaceType {
    /// Location types from the RFC 4589 registry (`office`, `residence`,
    /// `airport`, …), written in [`NS_LOCATION_TYPE`]. Tokens that are not
    /// XML names are skipped when generating.
    pub values: Vec<String>,
    /// `<rpid:other>` free text.
    pub other: Option<String>,
    /// `<rpid:note>`s.
    pub notes: Vec<Note>,
}

token_enum! {
    /// The content of `<rpid:user-input>`.
    pub enum InputState {
        /// `active`: someone used the device or service recently.
        Active => "active",
        /// `idle`: no input for `idle-threshold` seconds.
        Idle => "idle",
    }
}

/// `<rpid:user-input>` (RFC 4480 §3.15): is anyone at the keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInput {
    /// Active or idle.
    pub state: InputState,
    /// `idle-threshold`: seconds without input after which it counts as idle.
    pub idle_threshold: Option<u32>,
    /// `last-input`: RFC 3339 time of the last input, kept as text.
    pub last_input: Option<String>,
}

/// Switchboard / Skype for Business numeric availability, carried in
/// [`NS_AVAILABILITY`] (see the module documentation).
///
/// Only the number is modelled here; mapping it to the domain's states is the
/// core's job. The constants are the canonical values clients publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Availability(pub u32);

impl Availability {
    /// Available (band 0–4499).
    pub const AVAILABLE: Availability = Availability(3500);
    /// Available but idle (4500–5999).
    pub const AVAILABLE_IDLE: Availability = Availability(5000);
    /// Busy (6000–7499).
    pub const BUSY: Availability = Availability(6500);
    /// Busy and idle (7500–8999).
    pub const BUSY_IDLE: Availability = Availability(7500);
    /// Do not disturb (9000–11999).
    pub const DO_NOT_DISTURB: Availability = Availability(9500);
    /// Be right back (12000–14999).
    pub const BE_RIGHT_BACK: Availability = Availability(12500);
    /// Away (15000–17999).
    pub const AWAY: Availability = Availability(15500);
    /// Offline (18000 and above).
    pub const OFFLINE: Availability = Availability(18500);
}

impl Presence {
    /// A document for `entity` with nothing in it yet.
    pub fn new(entity: impl Into<String>) -> Self {
        Presence {
            entity: entity.into(),
            ..Presence::default()
        }
    }

    /// Parses a PIDF body.
    ///
    /// Errors name the defect (`pidf: missing entity attribute on
    /// <presence>`); unknown elements and namespaces are ignored.
    pub fn parse(body: &[u8]) -> Result<Presence> {
        let root = xml::parse(body)?;
        if !root.is(NS_PIDF, "presence") {
            return Err(invalid(format!(
                "root element must be <presence> in {NS_PIDF}, not <{}>",
                snippet(&root.name)
            )));
        }
        let entity = root
            .attr("entity")
            .ok_or_else(|| invalid("missing entity attribute on <presence>"))?;
        if trim(entity).is_empty() {
            return Err(invalid("empty entity attribute on <presence>"));
        }
        let mut presence = Presence::new(entity);
        for child in &root.children {
            if child.is(NS_PIDF, "tuple") {
                presence.tuples.push(parse_tuple(child)?);
            } else if child.is(NS_DATA_MODEL, "person") {
                presence.persons.push(parse_person(child)?);
            } else if child.is(NS_DATA_MODEL, "device") {
                presence.devices.push(parse_device(child)?);
            } else if is_note(child) {
                presence.notes.push(parse_note(child));
            }
        }
        Ok(presence)
    }

    /// Writes the document: PIDF, then data-model and RPID elements, then
    /// the Switchboard extension, each only if the struct holds it. The
    /// caller must set a non-empty `entity`: PIDF requires one, and
    /// [`Presence::parse`] rejects a document without it.
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new();
        let mut attrs: Vec<(&str, &str)> = vec![
            ("xmlns", NS_PIDF),
            ("xmlns:dm", NS_DATA_MODEL),
            ("xmlns:rpid", NS_RPID),
        ];
        if self.persons.iter().any(|p| p.place_type.is_some()) {
            attrs.push(("xmlns:lt", NS_LOCATION_TYPE));
        }
        if self.persons.iter().any(|p| p.availability.is_some()) {
            attrs.push(("xmlns:sb", NS_AVAILABILITY));
        }
        attrs.push(("entity", &self.entity));
        w.open("presence", &attrs);
        for t in &self.tuples {
            write_tuple(&mut w, t);
        }
        for n in &self.notes {
            write_note(&mut w, "note", n);
        }
        for p in &self.persons {
            write_person(&mut w, p);
        }
        for d in &self.devices {
            write_device(&mut w, d);
        }
        w.finish()
    }
}

fn is_note(el: &Element) -> bool {
    el.name == "note" && (el.ns == NS_PIDF || el.ns == NS_DATA_MODEL)
}

fn is_timestamp(el: &Element) -> bool {
    el.name == "timestamp" && (el.ns == NS_PIDF || el.ns == NS_DATA_MODEL)
}

fn parse_note(el: &Element) -> Note {
    Note {
        text: el.text.clone(),
        lang: el.lang().map(str::to_owned),
    }
}

fn required_id(el: &Element, what: &str) -> Result<String> {
    el.attr("id")
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("missing id attribute on <{what}>")))
}

/// RPID / data-model elements a tuple may carry, found either directly in
/// the tuple or inside its `<status>`.
fn tuple_extension(t: &mut Tuple, el: &Element) -> Result<()> {
    if el.is(NS_DATA_MODEL, "deviceID") && t.device_id.is_none() {
        t.device_id = Some(el.trimmed_text().to_owned());
    } else if el.is(NS_RPID, "user-input") && t.user_input.is_none() {
        t.user_input = Some(parse_user_input(el)?);
    } else if el.is(NS_RPID, "class") && t.class.is_none() {
        t.class = Some(el.trimmed_text().to_owned());
    }
    Ok(())
}

fn parse_tuple(el: &Element) -> Result<Tuple> {
    let mut t = Tuple {
        id: required_id(el, "tuple")?,
        ..Tuple::default()
    };
    let status = el
        .child(NS_PIDF, "status")
        .ok_or_else(|| invalid("missing <status> in <tuple>"))?;
    for s in &status.children {
        if s.is(NS_PIDF, "basic") {
            if t.basic.is_some() {
                return Err(invalid("more than one <basic> in <status>"));
            }
            let v = s.trimmed_text();
            t.basic = Some(if v.eq_ignore_ascii_case("open") {
                Basic::Open
            } else if v.eq_ignore_ascii_case("closed") {
                Basic::Closed
            } else {
                return Err(invalid("<basic> must be open or closed"));
            });
        } else {
            tuple_extension(&mut t, s)?;
        }
    }
    for c in &el.children {
        if c.is(NS_PIDF, "contact") {
            if t.contact.is_none() {
                let priority = match c.attr("priority") {
                    None => None,
                    Some(p) => Some(
                        Priority::parse(trim(p))
                            .ok_or_else(|| invalid("priority on <contact> must be 0 to 1"))?,
                    ),
                };
                t.contact = Some(Contact {
                    uri: c.trimmed_text().to_owned(),
                    priority,
                });
            }
        } else if is_note(c) {
            t.notes.push(parse_note(c));
        } else if is_timestamp(c) {
            t.timestamp
                .get_or_insert_with(|| c.trimmed_text().to_owned());
        } else {
            tuple_extension(&mut t, c)?;
        }
    }
    Ok(t)
}

fn parse_person(el: &Element) -> Result<Person> {
    let mut p = Person {
        id: required_id(el, "person")?,
        ..Person::default()
    };
    for c in &el.children {
        if c.ns == NS_RPID {
            match c.name.as_str() {
                "activities" if p.activities.is_none() => {
                    p.activities = Some(parse_activities(c));
                }
                "class" if p.class.is_none() => p.class = Some(c.trimmed_text().to_owned()),
                "mood" if p.mood.is_none() => {
                    let (values, other, notes) = parse_enumeration(c, &[NS_RPID]);
                    p.mood = Some(Mood {
                        values,
                        other,
                        notes,
                    });
                }
                "place-type" if p.place_type.is_none() => {
                    let (values, other, notes) = parse_enumeration(c, &[NS_LOCATION_TYPE, NS_RPID]);
                    p.place_type = Some(PlaceType {
                        values,
                        other,
                        notes,
                    });
                }
                "user-input" if p.user_input.is_none() => {
                    p.user_input = Some(parse_user_input(c)?);
                }
                _ => {}
            }
        } else if c.is(NS_AVAILABILITY, "availability") && p.availability.is_none() {
            let v = c
                .trimmed_text()
                .parse::<u32>()
                .map_err(|_| invalid("<availability> must be a number from 0 to 4294967295"))?;
            p.availability = Some(Availability(v));
        } else if is_note(c) {
            p.notes.push(parse_note(c));
        } else if is_timestamp(c) {
            p.timestamp
                .get_or_insert_with(|| c.trimmed_text().to_owned());
        }
    }
    Ok(p)
}

fn parse_device(el: &Element) -> Result<Device> {
    let mut d = Device {
        id: required_id(el, "device")?,
        ..Device::default()
    };
    for c in &el.children {
        if c.is(NS_DATA_MODEL, "deviceID") {
            d.device_id
                .get_or_insert_with(|| c.trimmed_text().to_owned());
        } else if c.is(NS_RPID, "user-input") && d.user_input.is_none() {
            d.user_input = Some(parse_user_input(c)?);
        } else if c.is(NS_RPID, "class") {
            d.class.get_or_insert_with(|| c.trimmed_text().to_owned());
        } else if is_note(c) {
            d.notes.push(parse_note(c));
        } else if is_timestamp(c) {
            d.timestamp
                .get_or_insert_with(|| c.trimmed_text().to_owned());
        }
    }
    Ok(d)
}

fn parse_activities(el: &Element) -> Activities {
    let mut a = Activities {
        from: el.attr("from").map(str::to_owned),
        until: el.attr("until").map(str::to_owned),
        ..Activities::default()
    };
    for c in &el.children {
        if c.ns != NS_RPID {
            continue;
        }
        match c.name.as_str() {
            "note" => a.notes.push(parse_note(c)),
            "other" => a.list.push(Activity::Other(c.text.clone())),
            name => {
                if let Some(act) = Activity::from_token(name) {
                    a.list.push(act);
                }
            }
        }
    }
    a
}

/// Shared shape of `<mood>` and `<place-type>`: token elements from
/// `token_ns`, plus RPID `<other>` and `<note>`.
fn parse_enumeration(el: &Element, token_ns: &[&str]) -> (Vec<String>, Option<String>, Vec<Note>) {
    let mut values = Vec::new();
    let mut other = None;
    let mut notes = Vec::new();
    for c in &el.children {
        if c.ns == NS_RPID && c.name == "note" {
            notes.push(parse_note(c));
        } else if c.ns == NS_RPID && c.name == "other" {
            other.get_or_insert_with(|| c.text.clone());
        } else if token_ns.contains(&c.ns.as_str()) && xml::is_ncname(&c.name) {
            values.push(c.name.clone());
        }
    }
    (values, other, notes)
}

fn parse_user_input(el: &Element) -> Result<UserInput> {
    let state = InputState::from_token(el.trimmed_text())
        .ok_or_else(|| invalid("<user-input> must be active or idle"))?;
    let idle_threshold =
        match el.attr("idle-threshold") {
            None => None,
            Some(v) => Some(trim(v).parse::<u32>().map_err(|_| {
                invalid("idle-threshold on <user-input> must be a number of seconds")
            })?),
        };
    Ok(UserInput {
        state,
        idle_threshold,
        last_input: el.attr("last-input").map(str::to_owned),
    })
}

fn write_note(w: &mut Writer, name: &str, n: &Note) {
    match &n.lang {
        Some(lang) => w.leaf(name, &[("xml:lang", lang)], &n.text),
        None => w.leaf(name, &[], &n.text),
    }
}

fn write_user_input(w: &mut Writer, u: &UserInput) {
    let threshold = u.idle_threshold.map(|t| t.to_string());
    let mut attrs: Vec<(&str, &str)> = Vec::new();
    if let Some(t) = &threshold {
        attrs.push(("idle-threshold", t));
    }
    if let Some(l) = &u.last_input {
        attrs.push(("last-input", l));
    }
    w.leaf("rpid:user-input", &attrs, u.state.as_str());
}

fn write_tuple(w: &mut Writer, t: &Tuple) {
    w.open("tuple", &[("id", &t.id)]);
    match t.basic {
        Some(b) => {
            w.open("status", &[]);
            w.leaf("basic", &[], b.as_str());
            w.close();
        }
        None => w.empty("status", &[]),
    }
    if let Some(d) = &t.device_id {
        w.leaf("dm:deviceID", &[], d);
    }
    if let Some(u) = &t.user_input {
        write_user_input(w, u);
    }
    if let Some(c) = &t.class {
        w.leaf("rpid:class", &[], c);
    }
    if let Some(c) = &t.contact {
        match c.priority {
            Some(p) => w.leaf("contact", &[("priority", &p.to_string())], &c.uri),
            None => w.leaf("contact", &[], &c.uri),
        }
    }
    for n in &t.notes {
        write_note(w, "note", n);
    }
    if let Some(ts) = &t.timestamp {
        w.leaf("timestamp", &[], ts);
    }
    w.close();
}

fn write_enumeration(
    w: &mut Writer,
    name: &'static str,
    token_prefix: &str,
    values: &[String],
    other: Option<&String>,
    notes: &[Note],
) {
    w.open(name, &[]);
    for n in notes {
        write_note(w, "rpid:note", n);
    }
    for v in values.iter().filter(|v| xml::is_ncname(v)) {
        w.empty(&format!("{token_prefix}:{v}"), &[]);
    }
    if let Some(o) = other {
        w.leaf("rpid:other", &[], o);
    }
    w.close();
}

fn write_person(w: &mut Writer, p: &Person) {
    w.open("dm:person", &[("id", &p.id)]);
    if let Some(a) = &p.activities {
        let mut attrs: Vec<(&str, &str)> = Vec::new();
        if let Some(f) = &a.from {
            attrs.push(("from", f));
        }
        if let Some(u) = &a.until {
            attrs.push(("until", u));
        }
        if a.list.is_empty() && a.notes.is_empty() {
            w.empty("rpid:activities", &attrs);
        } else {
            w.open("rpid:activities", &attrs);
            for n in &a.notes {
                write_note(w, "rpid:note", n);
            }
            for act in &a.list {
                match act {
                    Activity::Other(text) => w.leaf("rpid:other", &[], text),
                    known => w.empty(&format!("rpid:{}", known.token()), &[]),
                }
            }
            w.close();
        }
    }
    if let Some(c) = &p.class {
        w.leaf("rpid:class", &[], c);
    }
    if let Some(m) = &p.mood {
        write_enumeration(
            w,
            "rpid:mood",
            "rpid",
            &m.values,
            m.other.as_ref(),
            &m.notes,
        );
    }
    if let Some(pt) = &p.place_type {
        write_enumeration(
            w,
            "rpid:place-type",
            "lt",
            &pt.values,
            pt.other.as_ref(),
            &pt.notes,
        );
    }
    if let Some(u) = &p.user_input {
        write_user_input(w, u);
    }
    if let Some(a) = p.availability {
        w.leaf("sb:availability", &[], &a.0.to_string());
    }
    for n in &p.notes {
        write_note(w, "dm:note", n);
    }
    if let Some(ts) = &p.timestamp {
        w.leaf("dm:timestamp", &[], ts);
    }
    w.close();
}

fn write_device(w: &mut Writer, d: &Device) {
    w.open("dm:device", &[("id", &d.id)]);
    if let Some(u) = &d.user_input {
        write_user_input(w, u);
    }
    if let Some(c) = &d.class {
        w.leaf("rpid:class", &[], c);
    }
    if let Some(id) = &d.device_id {
        w.leaf("dm:deviceID", &[], id);
    }
    for n in &d.notes {
        write_note(w, "dm:note", n);
    }
    if let Some(ts) = &d.timestamp {
        w.leaf("dm:timestamp", &[], ts);
    }
    w.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(doc: &str) -> String {
        Presence::parse(doc.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn priority_parses_and_prints_qvalues() {
        assert_eq!(Priority::parse("0.8").map(Priority::thousandths), Some(800));
        assert_eq!(
            Priority::parse("1.000").map(Priority::thousandths),
            Some(1000)
        );
        assert_eq!(
            Priority::parse("0.125").map(|p| p.to_string()),
            Some("0.125".into())
        );
        assert_eq!(
            Priority::parse("0.50").map(|p| p.to_string()),
            Some("0.5".into())
        );
        assert_eq!(
            Priority::parse("1").map(|p| p.to_string()),
            Some("1".into())
        );
        for bad in ["1.5", "2", "", ".5", "0.1234", "-0", "0.x", "1.001"] {
            assert_eq!(Priority::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn missing_entity_is_named() {
        assert_eq!(
            err(r#"<presence xmlns="urn:ietf:params:xml:ns:pidf"/>"#),
            "pidf: missing entity attribute on <presence>"
        );
    }

    #[test]
    fn bad_basic_is_named() {
        let doc = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">
            <tuple id="t"><status><basic>maybe</basic></status></tuple></presence>"#;
        assert_eq!(err(doc), "pidf: <basic> must be open or closed");
    }

    #[test]
    fn wrong_root_is_named() {
        assert!(
            err(r#"<presence entity="sip:a@b"/>"#)
                .starts_with("pidf: root element must be <presence>")
        );
        assert!(err(r#"<foo xmlns="urn:ietf:params:xml:ns:pidf"/>"#).contains("not <foo>"));
    }

    #[test]
    fn tuple_needs_id_and_status() {
        let doc = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple><status/></tuple></presence>"#;
        assert_eq!(err(doc), "pidf: missing id attribute on <tuple>");
        let doc = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="x"/></presence>"#;
        assert_eq!(err(doc), "pidf: missing <status> in <tuple>");
    }

    #[test]
    fn bad_numbers_are_named() {
        let doc = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
            xmlns:s="urn:switchboard:params:xml:ns:pidf:availability" entity="sip:a@b">
            <dm:person id="p"><s:availability>busy</s:availability></dm:person></presence>"#;
        assert!(err(doc).starts_with("pidf: <availability> must be a number"));
        let doc = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">
            <tuple id="t"><status><basic>open</basic></status><contact priority="7">sip:x</contact></tuple></presence>"#;
        assert_eq!(err(doc), "pidf: priority on <contact> must be 0 to 1");
    }

    #[test]
    fn generated_document_puts_standard_elements_before_extension() {
        let mut p = Presence::new("sip:alice@example.com");
        p.tuples.push(Tuple {
            id: "t1".into(),
            basic: Some(Basic::Open),
            ..Tuple::default()
        });
        p.persons.push(Person {
            id: "p1".into(),
            activities: Some(Activities {
                list: vec![Activity::Busy],
                ..Activities::default()
            }),
            availability: Some(Availability::BUSY),
            notes: vec![Note::new("Budget <review> & \"planning\"")],
            ..Person::default()
        });
        let doc = p.to_xml();
        let busy = doc.find("<rpid:busy/>").unwrap();
        let ext = doc.find("<sb:availability>6500</sb:availability>").unwrap();
        assert!(busy < ext);
        assert!(
            doc.contains("Budget &lt;review&gt; &amp; \"planning\""),
            "{doc}"
        );
        assert_eq!(Presence::parse(doc.as_bytes()).unwrap(), p);
    }

    #[test]
    fn filtered_document_contains_only_what_the_struct_holds() {
        // A watcher who may only see basic status gets a tuple and nothing
        // else: no person, no namespaces for extensions.
        let mut p = Presence::new("sip:alice@example.com");
        p.tuples.push(Tuple {
            id: "t1".into(),
            basic: Some(Basic::Closed),
            ..Tuple::default()
        });
        let doc = p.to_xml();
        assert!(!doc.contains("person"));
        assert!(!doc.contains("xmlns:sb"));
        assert!(!doc.contains("note"));
    }
}
