//! Watcher information documents (RFC 3858) for the `presence.winfo` event
//! package (RFC 3857): who is watching a user, so the user can see and answer
//! subscription requests.
//!
//! `version` and `state` (`full` / `partial`) follow RFC 3858 §4: a partial
//! document lists only the watchers that changed, and the subscriber merges
//! it by watcher `id`. Unknown elements and attributes are ignored.

use crate::error::{Error, Format, Result, snippet};
use crate::xml::{self, Element, Writer, trim};

/// MIME type of watcher-info documents.
pub const CONTENT_TYPE: &str = "application/watcherinfo+xml";
/// Watcher-info namespace (RFC 3858).
pub const NS_WATCHERINFO: &str = "urn:ietf:params:xml:ns:watcherinfo";

fn invalid(msg: impl AsRef<str>) -> Error {
    Error::invalid(Format::WatcherInfo, msg)
}

token_enum! {
    /// Whether a document is complete or a delta.
    pub enum DocState {
        /// `full`: the complete watcher set.
        Full => "full",
        /// `partial`: only what changed since the previous version.
        Partial => "partial",
    }
}

token_enum! {
    /// `status` of a watcher's subscription.
    pub enum WatcherStatus {
        /// `pending`: awaiting the user's decision.
        Pending => "pending",
        /// `active`: allowed and receiving notifications.
        Active => "active",
        /// `waiting`: the subscription ended while pending; the watcher
        /// wanted to be told.
        Waiting => "waiting",
        /// `terminated`: ended.
        Terminated => "terminated",
    }
}

token_enum! {
    /// `event`: what caused the watcher's last status change.
    pub enum WatcherEvent {
        /// `subscribe`: a new subscription arrived.
        Subscribe => "subscribe",
        /// `approved`: the user allowed it.
        Approved => "approved",
        /// `deactivated`: the server ended it, the watcher may retry.
        Deactivated => "deactivated",
        /// `probation`: ended, retry later.
        Probation => "probation",
        /// `rejected`: the user refused it.
        Rejected => "rejected",
        /// `timeout`: it expired without refresh.
        Timeout => "timeout",
        /// `giveup`: it waited too long for a decision.
        Giveup => "giveup",
        /// `noresource`: the watched resource no longer exists.
        Noresource => "noresource",
    }
}

/// A `<watcherinfo>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherInfo {
    /// `version`, starting at 0 and increasing by one per NOTIFY.
    pub version: u32,
    /// `state`: full or partial.
    pub state: DocState,
    /// One `<watcher-list>` per watched resource and package.
    pub lists: Vec<WatcherList>,
}

/// A `<watcher-list>`: the watchers of one resource for one event package.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatcherList {
    /// `resource`: the watched URI.
    pub resource: String,
    /// `package`: the event package watched (`presence`).
    pub package: String,
    /// The watchers.
    pub watchers: Vec<Watcher>,
}

/// One `<watcher>`: a subscription to the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    /// `id`: stable identifier of this subscription, the merge key.
    pub id: String,
    /// `status`.
    pub status: WatcherStatus,
    /// `event`.
    pub event: WatcherEvent,
    /// The watcher's URI (element content).
    pub uri: String,
    /// `display-name` attribute.
    pub display_name: Option<String>,
    /// `expiration`: seconds until the subscription expires.
    pub expiration: Option<u32>,
    /// `duration-subscribed`: seconds it has been in place.
    pub duration_subscribed: Option<u32>,
    /// `xml:lang` of the display name.
    pub lang: Option<String>,
}

impl WatcherInfo {
    /// Parses a watcher-info document.
    pub fn parse(body: &[u8]) -> Result<WatcherInfo> {
        let root = xml::parse(body)?;
        if !root.is(NS_WATCHERINFO, "watcherinfo") {
            return Err(invalid(format!(
                "root element must be <watcherinfo> in {NS_WATCHERINFO}, not <{}>",
                snippet(&root.name)
            )));
        }
        let version = trim(required(&root, "version")?)
            .parse::<u32>()
            .map_err(|_| invalid("version on <watcherinfo> must be a number"))?;
        let state = DocState::from_token(trim(required(&root, "state")?))
            .ok_or_else(|| invalid("state on <watcherinfo> must be full or partial"))?;
        let mut lists = Vec::new();
        for l in root.children_named(NS_WATCHERINFO, "watcher-list") {
            let mut list = WatcherList {
                resource: required(l, "resource")?.to_owned(),
                package: required(l, "package")?.to_owned(),
                watchers: Vec::new(),
            };
            for w in l.children_named(NS_WATCHERINFO, "watcher") {
                list.watchers.push(parse_watcher(w)?);
            }
            lists.push(list);
        }
        Ok(WatcherInfo {
            version,
            state,
            lists,
        })
    }

    /// Writes the document.
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new();
        let version = self.version.to_string();
        w.open(
            "watcherinfo",
            &[
                ("xmlns", NS_WATCHERINFO),
                ("version", &version),
                ("state", self.state.as_str()),
            ],
        );
        for l in &self.lists {
            let attrs = [
                ("resource", l.resource.as_str()),
                ("package", l.package.as_str()),
            ];
            if l.watchers.is_empty() {
                w.empty("watcher-list", &attrs);
                continue;
            }
            w.open("watcher-list", &attrs);
            for watcher in &l.watchers {
                write_watcher(&mut w, watcher);
            }
            w.close();
        }
        w.finish()
    }
}

fn required<'a>(el: &'a Element, attr: &str) -> Result<&'a str> {
    el.attr(attr)
        .ok_or_else(|| invalid(format!("missing {attr} attribute on <{}>", el.name)))
}

fn optional_number(el: &Element, attr: &str) -> Result<Option<u32>> {
    el.attr(attr)
        .map(|v| {
            trim(v)
                .parse::<u32>()
                .map_err(|_| invalid(format!("{attr} on <watcher> must be a number of seconds")))
        })
        .transpose()
}

fn parse_watcher(el: &Element) -> Result<Watcher> {
    let status = WatcherStatus::from_token(trim(required(el, "status")?)).ok_or_else(|| {
        invalid("status on <watcher> must be pending, active, waiting or terminated")
    })?;
    let event = WatcherEvent::from_token(trim(required(el, "event")?))
        .ok_or_else(|| invalid("unknown event on <watcher>"))?;
    Ok(Watcher {
        id: required(el, "id")?.to_owned(),
        status,
        event,
        uri: el.trimmed_text().to_owned(),
        display_name: el.attr("display-name").map(str::to_owned),
        expiration: optional_number(el, "expiration")?,
        duration_subscribed: optional_number(el, "duration-subscribed")?,
        lang: el.lang().map(str::to_owned),
    })
}

fn write_watcher(w: &mut Writer, watcher: &Watcher) {
    let expiration = watcher.expiration.map(|v| v.to_string());
    let duration = watcher.duration_subscribed.map(|v| v.to_string());
    let mut attrs: Vec<(&str, &str)> = vec![
        ("id", &watcher.id),
        ("status", watcher.status.as_str()),
        ("event", watcher.event.as_str()),
    ];
    if let Some(d) = &watcher.display_name {
        attrs.push(("display-name", d));
    }
    if let Some(e) = &expiration {
        attrs.push(("expiration", e));
    }
    if let Some(d) = &duration {
        attrs.push(("duration-subscribed", d));
    }
    if let Some(l) = &watcher.lang {
        attrs.push(("xml:lang", l));
    }
    w.leaf("watcher", &attrs, &watcher.uri);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named() {
        let e = |d: &str| WatcherInfo::parse(d.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            e(r#"<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" state="full"/>"#),
            "watcherinfo: missing version attribute on <watcherinfo>"
        );
        assert_eq!(
            e(
                r#"<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="0" state="some"/>"#
            ),
            "watcherinfo: state on <watcherinfo> must be full or partial"
        );
        assert_eq!(
            e(
                r#"<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="0" state="full">
                <watcher-list resource="sip:a@b" package="presence">
                <watcher id="1" status="happy" event="subscribe">sip:w@x</watcher></watcher-list></watcherinfo>"#
            ),
            "watcherinfo: status on <watcher> must be pending, active, waiting or terminated"
        );
    }

    #[test]
    fn every_status_and_event_round_trips() {
        let mut list = WatcherList {
            resource: "sip:professor@example.net".into(),
            package: "presence".into(),
            watchers: Vec::new(),
        };
        for (n, (s, e)) in WatcherStatus::ALL
            .iter()
            .cycle()
            .zip(WatcherEvent::ALL)
            .enumerate()
        {
            list.watchers.push(Watcher {
                id: format!("w{n}"),
                status: *s,
                event: *e,
                uri: format!("sip:w{n}@example.com"),
                display_name: Some(format!("Watcher \"{n}\"")),
                expiration: Some(600),
                duration_subscribed: Some(n as u32),
                lang: None,
            });
        }
        let doc = WatcherInfo {
            version: 3,
            state: DocState::Partial,
            lists: vec![list],
        };
        assert_eq!(WatcherInfo::parse(doc.to_xml().as_bytes()).unwrap(), doc);
    }
}
