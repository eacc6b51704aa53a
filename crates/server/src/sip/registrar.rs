//! The registrar (RFC 3261 §10.3) with RFC 5626 outbound flows, RFC 5627
//! public GRUUs and RFC 3327 Path.

use super::location::{Binding, Location};
use crate::transport::{Flow, Transports};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_core::Address;
use switchboard_sip::{Contacts, HeaderName, NameAddr, Request, Response, Uri};

/// The registrar's rules (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct RegistrarSettings {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_devices: usize,
}

/// Option tags the registrar understands in Require.
pub const SUPPORTED: [&str; 3] = ["path", "outbound", "gruu"];

fn bad(req: &Request, reason: &str) -> Response {
    Response::to_request(req, 400).with_reason(reason)
}

struct Wanted {
    uri: Uri,
    expires: u32,
    q_milli: Option<u16>,
    instance: Option<String>,
    reg_id: Option<u32>,
    features: Vec<String>,
}

fn parse_contact(
    req: &Request,
    c: &NameAddr,
    header_expires: Option<u32>,
    s: &RegistrarSettings,
) -> Result<Wanted, Response> {
    if c.uri.as_sip().is_none() {
        return Err(bad(
            req,
            "Bad Contact: only sip and sips contacts can be registered",
        ));
    }
    let expires = match c.params.value("expires") {
        Some(v) => match v.parse::<u64>() {
            Ok(n) => n.min(u64::from(u32::MAX)) as u32,
            Err(_) => return Err(bad(req, "Bad Contact: expires parameter is not a number")),
        },
        None => header_expires.unwrap_or(s.default_expires),
    };
    let q_milli = match c.params.value("q") {
        Some(v) => match v.parse::<f32>() {
            Ok(q) if (0.0..=1.0).contains(&q) => Some((q * 1000.0).round() as u16),
            _ => return Err(bad(req, "Bad Contact: q must be between 0 and 1")),
        },
        None => None,
    };
    let instance = c
        .params
        .get_unquoted("+sip.instance")
        .map(|i| i.trim_start_matches('<').trim_end_matches('>').to_owned());
    let reg_id = match c.params.value("reg-id") {
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(bad(req, "Bad Contact: reg-id must be a positive number")),
        },
        None => None,
    };
    if reg_id.is_some() && instance.is_none() {
        // RFC 5626 §6: reg-id without +sip.instance is an error.
        return Err(bad(req, "Bad Contact: reg-id requires +sip.instance"));
    }
    let features = c
        .params
        .iter()
        .filter(|p| {
            !["expires", "q", "+sip.instance", "reg-id"]
                .iter()
                .any(|n| p.name.eq_ignore_ascii_case(n))
        })
        .map(|p| match &p.value {
            Some(v) => format!("{}={v}", p.name),
            None => p.name.clone(),
        })
        .collect();
    Ok(Wanted {
        uri: c.uri.clone(),
        expires,
        q_milli,
        instance,
        reg_id,
        features,
    })
}

/// Processes an authenticated REGISTER for `aor` that arrived over `flow`.
pub fn register(
    req: &Request,
    flow: &Flow,
    aor: &Address,
    location: &Location,
    transports: &Transports,
    s: &RegistrarSettings,
    now_ms: i64,
) -> Response {
    let contacts = match req.headers.contacts() {
        Ok(c) => c,
        Err(e) => return bad(req, &format!("Bad Contact: {e}")),
    };
    let header_expires = req.headers.expires().ok().flatten();
    let (call_id, cseq) = match (req.headers.call_id(), req.headers.cseq()) {
        (Ok(c), Ok(s)) => (c.to_owned(), s.seq),
        _ => return bad(req, "Missing Call-ID or CSeq"),
    };
    let path: Vec<String> = req
        .headers
        .values(&HeaderName::Path)
        .map(str::to_owned)
        .collect();
    let gruu = req.headers.supports("gruu");
    let result = match contacts {
        Contacts::Star => {
            if header_expires != Some(0) {
                return bad(req, "Contact: * requires Expires: 0");
            }
            location.update(aor, |old| {
                if old.iter().any(|b| b.call_id == call_id && b.cseq >= cseq) {
                    return Err(bad(req, "Out-of-order CSeq for this Call-ID"));
                }
                Ok((Vec::new(), false))
            })
        }
        Contacts::List(list) if list.is_empty() => Ok(false), // a query: just list the bindings
        Contacts::List(list) => {
            let mut wanted = Vec::with_capacity(list.len());
            for c in &list {
                match parse_contact(req, c, header_expires, s) {
                    Ok(w) => wanted.push(w),
                    Err(r) => return r,
                }
            }
            if wanted
                .iter()
                .any(|w| w.expires != 0 && w.expires < s.min_expires)
            {
                return Response::to_request(req, 423)
                    .with_header(HeaderName::MinExpires, s.min_expires.to_string());
            }
            let outbound =
                req.headers.supports("outbound") && wanted.iter().any(|w| w.reg_id.is_some());
            location.update(aor, |old| {
                let mut new: Vec<Arc<Binding>> = old.to_vec();
                for w in &wanted {
                    let key = w.uri.to_string();
                    let same = |b: &Binding| {
                        b.contact == key
                            || (w.instance.is_some()
                                && b.instance == w.instance
                                && b.reg_id == w.reg_id)
                    };
                    if let Some(existing) = new.iter().find(|b| same(b))
                        && existing.call_id == call_id
                        && existing.cseq >= cseq
                        && existing.contact == key
                    {
                        return Err(bad(req, "Out-of-order CSeq for this Call-ID"));
                    }
                    new.retain(|b| !same(b));
                    if w.expires == 0 {
                        continue;
                    }
                    let expires = w.expires.min(s.max_expires);
                    new.push(Arc::new(Binding {
                        aor: aor.clone(),
                        uri: w.uri.clone(),
                        contact: key,
                        instance: w.instance.clone(),
                        reg_id: if outbound { w.reg_id } else { None },
                        q_milli: w.q_milli,
                        expires_ms: now_ms + i64::from(expires) * 1000,
                        call_id: call_id.clone(),
                        cseq,
                        flow: flow.clone(),
                        path: path.clone(),
                        user_agent: req.headers.get(&HeaderName::UserAgent).map(str::to_owned),
                        features: w.features.clone(),
                        registered_ms: now_ms,
                        persisted_expires_ms: 0,
                    }));
                }
                new.retain(|b| b.expires_ms > now_ms);
                if new.len() > s.max_devices {
                    return Err(Response::to_request(req, 403).with_reason(format!(
                        "Too many registered devices (limit {})",
                        s.max_devices
                    )));
                }
                Ok((new, outbound))
            })
        }
    };
    let outbound = match result {
        Ok(o) => o,
        Err(resp) => return resp.with_to_tag(&super::ids::tag()),
    };
    let bindings = location.bindings(aor, now_ms);
    if let Some(conn) = flow.conn {
        // A registration over a connection keeps it open for its lifetime.
        let mine = bindings
            .iter()
            .filter(|b| b.flow.conn == Some(conn))
            .map(|b| b.expires_ms)
            .max();
        if let Some(until_ms) = mine {
            let secs = ((until_ms - now_ms).max(0) / 1000) as u64;
            transports.keep_until(conn, Instant::now() + Duration::from_secs(secs + 30));
        }
    }
    let mut resp = Response::to_request(req, 200).with_to_tag(&super::ids::tag());
    for b in &bindings {
        let mut v = String::with_capacity(b.contact.len() + 24);
        v.push('<');
        v.push_str(&b.contact);
        v.push_str(">;expires=");
        let _ = write!(v, "{}", b.remaining_secs(now_ms));
        if let Some(q) = b.q_milli {
            v.push_str(&format!(";q={}", f32::from(q) / 1000.0));
        }
        if let Some(i) = &b.instance {
            v.push_str(&format!(";+sip.instance=\"<{i}>\""));
            if gruu {
                v.push_str(&format!(";pub-gruu=\"sip:{aor};gr={i}\""));
            }
        }
        if let Some(r) = b.reg_id {
            v.push_str(&format!(";reg-id={r}"));
        }
        resp.headers.push(HeaderName::Contact, v);
    }
    for p in &path {
        resp.headers.push(HeaderName::Path, p.clone());
    }
    if outbound {
        resp.headers.push(HeaderName::Require, "outbound");
    }
    resp.headers
        .push(HeaderName::Supported, SUPPORTED.join(", "));
    resp.headers.push(HeaderName::Date, httpdate(now_ms));
    resp
}

/// An RFC 1123 date for the Date header. The text of the current second is
/// kept (per thread): a busy registrar answers thousands of times a second.
pub fn httpdate(now_ms: i64) -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> =
            const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let secs = now_ms / 1000;
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, format_httpdate(secs));
        }
        last.1.clone()
    })
}

fn format_httpdate(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_format() {
        assert_eq!(httpdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(httpdate(1_700_000_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        // The same second again (cached), the next one, and back.
        assert_eq!(httpdate(1_700_000_000_999), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(httpdate(1_700_000_001_000), "Tue, 14 Nov 2023 22:13:21 GMT");
        assert_eq!(httpdate(1_700_000_000_500), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(httpdate(-1), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
