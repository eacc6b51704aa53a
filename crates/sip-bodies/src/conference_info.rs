//! Conference state documents (RFC 4575) for the `conference` event package:
//! the roster of a multiparty chat.
//!
//! Full documents (`state="full"`) list everything; partial ones
//! (`state="partial"`) carry only what changed, with users and endpoints
//! marked `full`, `partial` or `deleted` so the subscriber can merge them by
//! `entity` (RFC 4575 §4.1). That is why most fields here are optional:
//! a partial user element may carry nothing but its entity and state.
//!
//! Modelled: conference description (display text, subject, free text,
//! conference and service URIs, maximum user count), conference state
//! (user count, active, locked), users (display text, roles, endpoints),
//! endpoints (display text, status, joining and disconnection method and
//! info, media). Host info, sidebars, languages and the other optional
//! elements are ignored when parsing.

use crate::error::{Error, Format, Result, snippet};
use crate::xml::{self, Element, Writer, trim};

/// MIME type of conference-info documents.
pub const CONTENT_TYPE: &str = "application/conference-info+xml";
/// Conference-info namespace (RFC 4575).
pub const NS_CONFERENCE_INFO: &str = "urn:ietf:params:xml:ns:conference-info";
const NS: &str = NS_CONFERENCE_INFO;

fn invalid(msg: impl AsRef<str>) -> Error {
    Error::invalid(Format::ConferenceInfo, msg)
}

token_enum! {
    /// `state` of the document, `<users>`, a `<user>` or an `<endpoint>`.
    pub enum ElementState {
        /// `full`: the element is complete.
        Full => "full",
        /// `partial`: only changed sub-elements are present.
        Partial => "partial",
        /// `deleted`: the element is gone.
        Deleted => "deleted",
    }
}

token_enum! {
    /// `<status>` of an endpoint.
    pub enum EndpointStatus {
        /// `pending`
        Pending => "pending",
        /// `dialing-out`
        DialingOut => "dialing-out",
        /// `dialing-in`
        DialingIn => "dialing-in",
        /// `alerting`
        Alerting => "alerting",
        /// `on-hold`
        OnHold => "on-hold",
        /// `connected`
        Connected => "connected",
        /// `muted-via-focus`
        MutedViaFocus => "muted-via-focus",
        /// `disconnecting`
        Disconnecting => "disconnecting",
        /// `disconnected`
        Disconnected => "disconnected",
    }
}

token_enum! {
    /// `<joining-method>`: how the endpoint joined.
    pub enum JoiningMethod {
        /// `dialed-in`: it called the focus.
        DialedIn => "dialed-in",
        /// `dialed-out`: the focus called it (e.g. after a REFER).
        DialedOut => "dialed-out",
        /// `focus-owner`: it is the focus itself.
        FocusOwner => "focus-owner",
    }
}

token_enum! {
    /// `<disconnection-method>`: how the endpoint left.
    pub enum DisconnectionMethod {
        /// `departed`: it hung up.
        Departed => "departed",
        /// `booted`: it was removed.
        Booted => "booted",
        /// `failed`: the attempt to reach it failed.
        Failed => "failed",
        /// `busy`: it was busy.
        Busy => "busy",
    }
}

token_enum! {
    /// `<status>` of a media stream.
    pub enum MediaStatus {
        /// `recvonly`
        RecvOnly => "recvonly",
        /// `sendonly`
        SendOnly => "sendonly",
        /// `sendrecv`
        SendRecv => "sendrecv",
        /// `inactive`
        Inactive => "inactive",
    }
}

/// A `<conference-info>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceInfo {
    /// `entity`: the conference URI (required).
    pub entity: String,
    /// `state` (default `full`).
    pub state: ElementState,
    /// `version`, increasing by one per NOTIFY.
    pub version: Option<u32>,
    /// `<conference-description>`.
    pub description: Option<ConferenceDescription>,
    /// `<conference-state>`.
    pub conference_state: Option<ConferenceState>,
    /// `<users>`.
    pub users: Option<Users>,
}

/// `<conference-description>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConferenceDescription {
    /// `<display-text>`: the conference's name.
    pub display_text: Option<String>,
    /// `<subject>`: the chat topic.
    pub subject: Option<String>,
    /// `<free-text>`.
    pub free_text: Option<String>,
    /// `<conf-uris>`: URIs to join the conference.
    pub conf_uris: Vec<UriEntry>,
    /// `<service-uris>`: auxiliary URIs (web page, recording, …).
    pub service_uris: Vec<UriEntry>,
    /// `<maximum-user-count>`.
    pub maximum_user_count: Option<u32>,
}

/// An `<entry>` of `<conf-uris>` or `<service-uris>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UriEntry {
    /// `<uri>`.
    pub uri: String,
    /// `<display-text>`.
    pub display_text: Option<String>,
    /// `<purpose>` (`participation`, `streaming`, `web-page`, …).
    pub purpose: Option<String>,
}

/// `<conference-state>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConferenceState {
    /// `<user-count>`.
    pub user_count: Option<u32>,
    /// `<active>`.
    pub active: Option<bool>,
    /// `<locked>`.
    pub locked: Option<bool>,
}

/// `<users>`: the roster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Users {
    /// `state` of the users element itself.
    pub state: Option<ElementState>,
    /// The users.
    pub list: Vec<User>,
}

/// A `<user>`: one participant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// `entity`: the participant's URI (the merge key).
    pub entity: String,
    /// `state` for partial notifications.
    pub state: Option<ElementState>,
    /// `<display-text>`: the participant's name.
    pub display_text: Option<String>,
    /// `<roles><entry>`s (`participant`, `administrator`, …).
    pub roles: Vec<String>,
    /// `<endpoint>`s: the participant's devices in the conference.
    pub endpoints: Vec<Endpoint>,
}

/// An `<endpoint>`: one device (dialog) of a participant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoint {
    /// `entity`: the endpoint's URI (merge key within the user).
    pub entity: String,
    /// `state` for partial notifications.
    pub state: Option<ElementState>,
    /// `<display-text>`.
    pub display_text: Option<String>,
    /// `<status>`.
    pub status: Option<EndpointStatus>,
    /// `<joining-method>`.
    pub joining_method: Option<JoiningMethod>,
    /// `<joining-info>`.
    pub joining_info: Option<ExecutionInfo>,
    /// `<disconnection-method>`.
    pub disconnection_method: Option<DisconnectionMethod>,
    /// `<disconnection-info>`.
    pub disconnection_info: Option<ExecutionInfo>,
    /// `<media>` streams (for IM, one of type `message`).
    pub media: Vec<Media>,
}

/// `<joining-info>` / `<disconnection-info>`: when, why and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecutionInfo {
    /// `<when>`, an RFC 3339 date-time kept as text.
    pub when: Option<String>,
    /// `<reason>`.
    pub reason: Option<String>,
    /// `<by>`: URI of whoever caused it.
    pub by: Option<String>,
}

/// A `<media>` stream of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Media {
    /// `id` (required).
    pub id: String,
    /// `<display-text>`.
    pub display_text: Option<String>,
    /// `<type>` (`audio`, `video`, `message`, …).
    pub media_type: Option<String>,
    /// `<label>`.
    pub label: Option<String>,
    /// `<src-id>`.
    pub src_id: Option<String>,
    /// `<status>`.
    pub status: Option<MediaStatus>,
}

impl ConferenceInfo {
    /// A full document for conference `entity` with nothing in it yet.
    pub fn new(entity: impl Into<String>) -> Self {
        ConferenceInfo {
            entity: entity.into(),
            state: ElementState::Full,
            version: None,
            description: None,
            conference_state: None,
            users: None,
        }
    }

    /// Parses a conference-info document.
    pub fn parse(body: &[u8]) -> Result<ConferenceInfo> {
        let root = xml::parse(body)?;
        if !root.is(NS, "conference-info") {
            return Err(invalid(format!(
                "root element must be <conference-info> in {NS}, not <{}>",
                snippet(&root.name)
            )));
        }
        let mut info = ConferenceInfo::new(required(&root, "entity")?);
        info.state = state_attr(&root)?.unwrap_or(ElementState::Full);
        info.version = root
            .attr("version")
            .map(|v| {
                trim(v)
                    .parse::<u32>()
                    .map_err(|_| invalid("version on <conference-info> must be a number"))
            })
            .transpose()?;
        if let Some(d) = root.child(NS, "conference-description") {
            info.description = Some(ConferenceDescription {
                display_text: text(d, "display-text"),
                subject: text(d, "subject"),
                free_text: text(d, "free-text"),
                conf_uris: parse_uris(d, "conf-uris")?,
                service_uris: parse_uris(d, "service-uris")?,
                maximum_user_count: number(d, "maximum-user-count")?,
            });
        }
        if let Some(s) = root.child(NS, "conference-state") {
            info.conference_state = Some(ConferenceState {
                user_count: number(s, "user-count")?,
                active: boolean(s, "active")?,
                locked: boolean(s, "locked")?,
            });
        }
        if let Some(u) = root.child(NS, "users") {
            let mut users = Users {
                state: state_attr(u)?,
                list: Vec::new(),
            };
            for user in u.children_named(NS, "user") {
                users.list.push(parse_user(user)?);
            }
            info.users = Some(users);
        }
        Ok(info)
    }

    /// Writes the document.
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new();
        let version = self.version.map(|v| v.to_string());
        let mut attrs: Vec<(&str, &str)> = vec![
            ("xmlns", NS),
            ("entity", &self.entity),
            ("state", self.state.as_str()),
        ];
        if let Some(v) = &version {
            attrs.push(("version", v));
        }
        w.open("conference-info", &attrs);
        if let Some(d) = &self.description {
            w.open("conference-description", &[]);
            opt_leaf(&mut w, "display-text", d.display_text.as_deref());
            opt_leaf(&mut w, "subject", d.subject.as_deref());
            opt_leaf(&mut w, "free-text", d.free_text.as_deref());
            write_uris(&mut w, "conf-uris", &d.conf_uris);
            write_uris(&mut w, "service-uris", &d.service_uris);
            if let Some(m) = d.maximum_user_count {
                w.leaf("maximum-user-count", &[], &m.to_string());
            }
            w.close();
        }
        if let Some(s) = &self.conference_state {
            w.open("conference-state", &[]);
            if let Some(c) = s.user_count {
                w.leaf("user-count", &[], &c.to_string());
            }
            if let Some(a) = s.active {
                w.leaf("active", &[], bool_str(a));
            }
            if let Some(l) = s.locked {
                w.leaf("locked", &[], bool_str(l));
            }
            w.close();
        }
        if let Some(users) = &self.users {
            let attrs: Vec<(&str, &str)> =
                users.state.iter().map(|s| ("state", s.as_str())).collect();
            w.open("users", &attrs);
            for u in &users.list {
                write_user(&mut w, u);
            }
            w.close();
        }
        w.finish()
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn required(el: &Element, attr: &str) -> Result<String> {
    el.attr(attr)
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("missing {attr} attribute on <{}>", el.name)))
}

fn state_attr(el: &Element) -> Result<Option<ElementState>> {
    el.attr("state")
        .map(|s| {
            ElementState::from_token(trim(s)).ok_or_else(|| {
                invalid(format!(
                    "state on <{}> must be full, partial or deleted",
                    el.name
                ))
            })
        })
        .transpose()
}

/// Text of child `name`, verbatim (display texts and subjects are user text).
fn text(el: &Element, name: &str) -> Option<String> {
    el.child(NS, name).map(|c| c.text.clone())
}

/// Trimmed text of child `name`, for URIs and tokens.
fn token(el: &Element, name: &str) -> Option<String> {
    el.child_text(NS, name).map(str::to_owned)
}

fn number(el: &Element, name: &str) -> Result<Option<u32>> {
    el.child_text(NS, name)
        .map(|v| {
            v.parse::<u32>()
                .map_err(|_| invalid(format!("<{name}> must be a number")))
        })
        .transpose()
}

fn boolean(el: &Element, name: &str) -> Result<Option<bool>> {
    el.child_text(NS, name)
        .map(|v| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(invalid(format!("<{name}> must be true or false"))),
        })
        .transpose()
}

fn enumerated<T>(el: &Element, name: &str, from: fn(&str) -> Option<T>) -> Result<Option<T>> {
    el.child_text(NS, name)
        .map(|v| from(v).ok_or_else(|| invalid(format!("unknown <{name}> value {}", snippet(v)))))
        .transpose()
}

fn parse_uris(el: &Element, name: &str) -> Result<Vec<UriEntry>> {
    let Some(list) = el.child(NS, name) else {
        return Ok(Vec::new());
    };
    list.children_named(NS, "entry")
        .map(|e| {
            Ok(UriEntry {
                uri: token(e, "uri")
                    .ok_or_else(|| invalid(format!("missing <uri> in <{name}> entry")))?,
                display_text: text(e, "display-text"),
                purpose: token(e, "purpose"),
            })
        })
        .collect()
}

fn parse_execution(el: &Element, name: &str) -> Option<ExecutionInfo> {
    el.child(NS, name).map(|i| ExecutionInfo {
        when: token(i, "when"),
        reason: text(i, "reason"),
        by: token(i, "by"),
    })
}

fn parse_user(el: &Element) -> Result<User> {
    let mut user = User {
        entity: required(el, "entity")?,
        state: state_attr(el)?,
        display_text: text(el, "display-text"),
        roles: el
            .child(NS, "roles")
            .map(|r| {
                r.children_named(NS, "entry")
                    .map(|e| e.trimmed_text().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
        endpoints: Vec::new(),
    };
    for e in el.children_named(NS, "endpoint") {
        let mut endpoint = Endpoint {
            entity: required(e, "entity")?,
            state: state_attr(e)?,
            display_text: text(e, "display-text"),
            status: enumerated(e, "status", EndpointStatus::from_token)?,
            joining_method: enumerated(e, "joining-method", JoiningMethod::from_token)?,
            joining_info: parse_execution(e, "joining-info"),
            disconnection_method: enumerated(
                e,
                "disconnection-method",
                DisconnectionMethod::from_token,
            )?,
            disconnection_info: parse_execution(e, "disconnection-info"),
            media: Vec::new(),
        };
        for m in e.children_named(NS, "media") {
            endpoint.media.push(Media {
                id: required(m, "id")?,
                display_text: text(m, "display-text"),
                media_type: token(m, "type"),
                label: token(m, "label"),
                src_id: token(m, "src-id"),
                status: enumerated(m, "status", MediaStatus::from_token)?,
            });
        }
        user.endpoints.push(endpoint);
    }
    Ok(user)
}

fn opt_leaf(w: &mut Writer, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        w.leaf(name, &[], v);
    }
}

fn write_uris(w: &mut Writer, name: &'static str, entries: &[UriEntry]) {
    if entries.is_empty() {
        return;
    }
    w.open(name, &[]);
    for e in entries {
        w.open("entry", &[]);
        w.leaf("uri", &[], &e.uri);
        opt_leaf(w, "display-text", e.display_text.as_deref());
        opt_leaf(w, "purpose", e.purpose.as_deref());
        w.close();
    }
    w.close();
}

fn write_execution(w: &mut Writer, name: &'static str, info: &ExecutionInfo) {
    w.open(name, &[]);
    opt_leaf(w, "when", info.when.as_deref());
    opt_leaf(w, "reason", info.reason.as_deref());
    opt_leaf(w, "by", info.by.as_deref());
    w.close();
}

fn write_user(w: &mut Writer, u: &User) {
    let mut attrs: Vec<(&str, &str)> = vec![("entity", &u.entity)];
    if let Some(s) = u.state {
        attrs.push(("state", s.as_str()));
    }
    w.open("user", &attrs);
    opt_leaf(w, "display-text", u.display_text.as_deref());
    if !u.roles.is_empty() {
        w.open("roles", &[]);
        for r in &u.roles {
            w.leaf("entry", &[], r);
        }
        w.close();
    }
    for e in &u.endpoints {
        let mut attrs: Vec<(&str, &str)> = vec![("entity", &e.entity)];
        if let Some(s) = e.state {
            attrs.push(("state", s.as_str()));
        }
        w.open("endpoint", &attrs);
        opt_leaf(w, "display-text", e.display_text.as_deref());
        opt_leaf(w, "status", e.status.map(EndpointStatus::as_str));
        opt_leaf(
            w,
            "joining-method",
            e.joining_method.map(JoiningMethod::as_str),
        );
        if let Some(i) = &e.joining_info {
            write_execution(w, "joining-info", i);
        }
        opt_leaf(
            w,
            "disconnection-method",
            e.disconnection_method.map(DisconnectionMethod::as_str),
        );
        if let Some(i) = &e.disconnection_info {
            write_execution(w, "disconnection-info", i);
        }
        for m in &e.media {
            w.open("media", &[("id", &m.id)]);
            opt_leaf(w, "display-text", m.display_text.as_deref());
            opt_leaf(w, "type", m.media_type.as_deref());
            opt_leaf(w, "label", m.label.as_deref());
            opt_leaf(w, "src-id", m.src_id.as_deref());
            opt_leaf(w, "status", m.status.map(MediaStatus::as_str));
            w.close();
        }
        w.close();
    }
    w.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named() {
        let e = |d: &str| ConferenceInfo::parse(d.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            e(r#"<conference-info xmlns="urn:ietf:params:xml:ns:conference-info"/>"#),
            "conference-info: missing entity attribute on <conference-info>"
        );
        assert_eq!(
            e(
                r#"<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:c@x" state="gone"/>"#
            ),
            "conference-info: state on <conference-info> must be full, partial or deleted"
        );
        assert_eq!(
            e(
                r#"<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:c@x">
                <users><user entity="sip:a@x"><endpoint entity="sip:a@pc"><status>asleep</status></endpoint></user></users>
                </conference-info>"#
            ),
            "conference-info: unknown <status> value asleep"
        );
    }

    #[test]
    fn missing_state_defaults_to_full() {
        let doc = br#"<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:c@x"/>"#;
        let info = ConferenceInfo::parse(doc).unwrap();
        assert_eq!(info.state, ElementState::Full);
        assert_eq!(info.version, None);
    }

    #[test]
    fn partial_deletion_round_trips() {
        let mut info = ConferenceInfo::new("sip:chat-1@conf.example.com");
        info.state = ElementState::Partial;
        info.version = Some(7);
        info.users = Some(Users {
            state: Some(ElementState::Partial),
            list: vec![User {
                entity: "sip:carol@example.com".into(),
                state: Some(ElementState::Deleted),
                ..User::default()
            }],
        });
        let doc = info.to_xml();
        assert!(
            doc.contains(r#"<user entity="sip:carol@example.com" state="deleted">"#),
            "{doc}"
        );
        assert_eq!(ConferenceInfo::parse(doc.as_bytes()).unwrap(), info);
    }
}
