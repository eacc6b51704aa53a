//! The minimal SDP of SIP-signalled IM sessions.
//!
//! Skype for Business (and Lync, and clients that interoperate with them)
//! open an IM session with an `INVITE` whose SDP has a single
//! `m=message <port> sip null` line: the messages themselves travel as SIP
//! `MESSAGE` requests inside the dialog, so the "media" line only signals
//! the intent and lists the MIME types accepted (`a=accept-types:`):
//!
//! ```text
//! v=0
//! o=- 0 0 IN IP4 192.0.2.10
//! s=session
//! c=IN IP4 192.0.2.10
//! t=0 0
//! m=message 5060 sip null
//! a=accept-types:text/plain text/html multipart/alternative
//! ```
//!
//! This module reads such an offer ([`ImSdp::parse`]), decides which types
//! to accept ([`negotiate_accept_types`]) and writes an offer or answer
//! ([`ImSdp::to_sdp`]). It is deliberately not an SDP stack: other lines are
//! skipped, and an SDP without an IM media line is reported as such.

use crate::error::{Error, Format, Result, snippet};
use crate::limits;

/// MIME type of SDP bodies.
pub const CONTENT_TYPE: &str = "application/sdp";

fn invalid(msg: impl AsRef<str>) -> Error {
    Error::invalid(Format::Sdp, msg)
}

token_enum! {
    /// Address type of `o=` / `c=` lines.
    pub enum AddrType {
        /// `IP4`
        Ip4 => "IP4",
        /// `IP6`
        Ip6 => "IP6",
    }
}

/// The parts of an IM session description that matter to IM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImSdp {
    /// `o=` username (`-` when unused).
    pub username: String,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version; increase it when re-offering.
    pub session_version: u64,
    /// Address type of the connection address.
    pub addr_type: AddrType,
    /// Connection address (media-level `c=` if present, else session-level).
    pub address: String,
    /// Port on the `m=message` line (0 means the stream is refused).
    pub port: u16,
    /// The `a=accept-types:` list.
    pub accept_types: Vec<String>,
}

fn parse_connection(value: &str) -> Result<(AddrType, String)> {
    let mut f = value.split_ascii_whitespace();
    let (Some("IN"), Some(at), Some(addr)) = (f.next(), f.next(), f.next()) else {
        return Err(invalid("malformed c= line"));
    };
    let at =
        AddrType::from_token(at).ok_or_else(|| invalid("c= address type must be IP4 or IP6"))?;
    Ok((at, addr.to_owned()))
}

/// What [`ImSdp::parse`] collects from the IM media section.
struct ImMedia {
    port: u16,
    connection: Option<(AddrType, String)>,
    accept_types: Option<Vec<String>>,
}

impl ImSdp {
    /// Reads an SDP body and extracts its IM session (the first
    /// `m=message ... sip ...` line).
    ///
    /// Errors name what is missing: `sdp: no m=message line with sip
    /// transport`, `sdp: m=message has no a=accept-types`, …
    pub fn parse(body: &[u8]) -> Result<ImSdp> {
        if body.len() > limits::MAX_SDP_BYTES {
            return Err(invalid(format!(
                "body larger than {} bytes",
                limits::MAX_SDP_BYTES
            )));
        }
        let text = std::str::from_utf8(body).map_err(|_| invalid("body is not UTF-8"))?;
        let mut origin: Option<(String, u64, u64)> = None;
        let mut session_conn: Option<(AddrType, String)> = None;
        // Media section state: whether the current m= line is the IM one.
        let mut in_im = false;
        let mut in_media = false;
        let mut im: Option<ImMedia> = None;
        let mut seen_v = false;
        for (n, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let Some((kind, value)) = line.split_once('=') else {
                return Err(invalid(format!("line {} is not type=value", n + 1)));
            };
            if kind.len() != 1 {
                return Err(invalid(format!("line {} is not type=value", n + 1)));
            }
            if !seen_v {
                if kind != "v" || value.trim() != "0" {
                    return Err(invalid("must start with v=0"));
                }
                seen_v = true;
                continue;
            }
            match kind {
                "o" => {
                    let f: Vec<&str> = value.split_ascii_whitespace().collect();
                    let [user, id, ver, _net, _at, _addr] = f.as_slice() else {
                        return Err(invalid("malformed o= line"));
                    };
                    let id = id
                        .parse()
                        .map_err(|_| invalid("o= session id must be a number"))?;
                    let ver = ver
                        .parse()
                        .map_err(|_| invalid("o= session version must be a number"))?;
                    origin = Some(((*user).to_owned(), id, ver));
                }
                "c" if !in_media => session_conn = Some(parse_connection(value)?),
                "c" if in_im => {
                    if let Some(m) = im.as_mut() {
                        m.connection = Some(parse_connection(value)?);
                    }
                }
                "m" => {
                    let f: Vec<&str> = value.split_ascii_whitespace().collect();
                    in_im = false;
                    in_media = true;
                    if f.len() >= 3
                        && f[0].eq_ignore_ascii_case("message")
                        && f[2].eq_ignore_ascii_case("sip")
                        && im.is_none()
                    {
                        let port = f[1]
                            .parse::<u16>()
                            .map_err(|_| invalid("m=message port must be a number"))?;
                        im = Some(ImMedia {
                            port,
                            connection: None,
                            accept_types: None,
                        });
                        in_im = true;
                    }
                }
                "a" if in_im => {
                    if let Some(types) = value.strip_prefix("accept-types:")
                        && let Some(m) = im.as_mut()
                    {
                        m.accept_types
                            .get_or_insert_with(Vec::new)
                            .extend(types.split_ascii_whitespace().map(str::to_owned));
                    }
                }
                _ => {}
            }
        }
        if !seen_v {
            return Err(invalid("must start with v=0"));
        }
        let ImMedia {
            port,
            connection: media_conn,
            accept_types: accept,
        } = im.ok_or_else(|| invalid("no m=message line with sip transport"))?;
        let accept_types = accept.ok_or_else(|| invalid("m=message has no a=accept-types"))?;
        let (addr_type, address) = media_conn
            .or(session_conn)
            .ok_or_else(|| invalid("missing c= line"))?;
        let (username, session_id, session_version) =
            origin.ok_or_else(|| invalid("missing o= line"))?;
        Ok(ImSdp {
            username,
            session_id,
            session_version,
            addr_type,
            address,
            port,
            accept_types,
        })
    }

    /// Writes the session description (offer or answer) with CRLF line
    /// ends. Whitespace and control characters are removed from the
    /// username, address and types, which cannot contain them.
    pub fn to_sdp(&self) -> String {
        fn word(s: &str) -> String {
            let w: String = s.chars().filter(|c| c.is_ascii_graphic()).collect();
            if w.is_empty() { "-".to_owned() } else { w }
        }
        let address = word(&self.address);
        let at = self.addr_type.as_str();
        let types: Vec<String> = self
            .accept_types
            .iter()
            .map(|t| word(t))
            .filter(|t| t != "-")
            .collect();
        format!(
            "v=0\r\no={} {} {} IN {at} {address}\r\ns=session\r\nc=IN {at} {address}\r\nt=0 0\r\nm=message {} sip null\r\na=accept-types:{}\r\n",
            word(&self.username),
            self.session_id,
            self.session_version,
            self.port,
            types.join(" ")
        )
    }
}

/// The types of `supported` (in its order) that an offer accepting
/// `offered` can receive. `*` in the offer accepts everything and `type/*`
/// a whole type; matching ignores case and parameters.
pub fn negotiate_accept_types(offered: &[String], supported: &[&str]) -> Vec<String> {
    fn base(s: &str) -> String {
        s.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }
    let offered: Vec<String> = offered.iter().map(|o| base(o)).collect();
    supported
        .iter()
        .filter(|s| {
            let s = base(s);
            offered.iter().any(|o| {
                o == "*"
                    || *o == s
                    || o.strip_suffix("/*")
                        .is_some_and(|ty| s.split('/').next() == Some(ty))
            })
        })
        .map(|s| (*s).to_owned())
        .collect()
}

/// Whether `body` is an SDP offering an IM session; a shortcut for routing
/// an INVITE before parsing it fully. The error says why not.
pub fn check_im_offer(body: &[u8]) -> Result<()> {
    let sdp = ImSdp::parse(body)?;
    if sdp.port == 0 {
        return Err(invalid(format!(
            "m=message stream is refused (port 0) for {}",
            snippet(&sdp.address)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SFB_OFFER: &str = "v=0\r\n\
o=- 0 0 IN IP4 192.0.2.10\r\n\
s=session\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=message 5060 sip null\r\n\
a=accept-types:text/plain multipart/alternative image/gif text/rtf text/html application/x-ms-ink application/ms-imdn+xml text/x-msmsgsinvite\r\n";

    #[test]
    fn parses_skype_for_business_offer() {
        let sdp = ImSdp::parse(SFB_OFFER.as_bytes()).unwrap();
        assert_eq!(sdp.port, 5060);
        assert_eq!(sdp.address, "192.0.2.10");
        assert_eq!(sdp.addr_type, AddrType::Ip4);
        assert_eq!(sdp.accept_types.len(), 8);
        assert_eq!(sdp.accept_types[0], "text/plain");
        check_im_offer(SFB_OFFER.as_bytes()).unwrap();
    }

    #[test]
    fn answer_round_trips() {
        let offer = ImSdp::parse(SFB_OFFER.as_bytes()).unwrap();
        let answer = ImSdp {
            username: "-".into(),
            session_id: 42,
            session_version: 1,
            addr_type: AddrType::Ip6,
            address: "2001:db8::1".into(),
            port: 5061,
            accept_types: negotiate_accept_types(
                &offer.accept_types,
                &["text/plain", "text/html", "application/json"],
            ),
        };
        assert_eq!(answer.accept_types, vec!["text/plain", "text/html"]);
        assert_eq!(ImSdp::parse(answer.to_sdp().as_bytes()).unwrap(), answer);
    }

    #[test]
    fn audio_offer_is_not_im() {
        let audio = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(
            ImSdp::parse(audio.as_bytes()).unwrap_err().to_string(),
            "sdp: no m=message line with sip transport"
        );
        let msrp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=message 7394 TCP/MSRP *\r\na=accept-types:text/plain\r\n";
        assert!(ImSdp::parse(msrp.as_bytes()).is_err(), "MSRP is not SIP IM");
    }

    #[test]
    fn missing_accept_types_is_named() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nt=0 0\r\nm=message 5060 sip null\r\na=sendrecv\r\n";
        assert_eq!(
            ImSdp::parse(sdp.as_bytes()).unwrap_err().to_string(),
            "sdp: m=message has no a=accept-types"
        );
    }

    #[test]
    fn refused_stream_fails_check() {
        let sdp = SFB_OFFER.replace("5060 sip", "0 sip");
        assert!(ImSdp::parse(sdp.as_bytes()).is_ok());
        assert!(check_im_offer(sdp.as_bytes()).is_err());
    }

    #[test]
    fn wildcards_in_offer() {
        let offered = vec!["text/*".to_owned(), "image/gif".to_owned()];
        assert_eq!(
            negotiate_accept_types(
                &offered,
                &["text/plain", "image/png", "TEXT/HTML;charset=utf-8"]
            ),
            vec!["text/plain", "TEXT/HTML;charset=utf-8"]
        );
        assert_eq!(negotiate_accept_types(&["*".into()], &["a/b"]), vec!["a/b"]);
    }

    #[test]
    fn media_level_connection_wins() {
        let sdp = "v=0\no=- 1 1 IN IP4 a\ns=-\nc=IN IP4 a\nt=0 0\nm=message 5060 sip null\nc=IN IP4 b\na=accept-types:text/plain\n";
        assert_eq!(ImSdp::parse(sdp.as_bytes()).unwrap().address, "b");
    }
}
