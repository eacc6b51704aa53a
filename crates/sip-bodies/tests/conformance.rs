//! Conformance: the example documents of the RFCs (retyped here, with the
//! RFCs' folding and line ends), plus the documents real clients send.
//! Each test checks what the document says, not merely that it parses.

use switchboard_sip_bodies::conference_info::{
    ConferenceInfo, DisconnectionMethod, ElementState, EndpointStatus, JoiningMethod, MediaStatus,
};
use switchboard_sip_bodies::cpim::Cpim;
use switchboard_sip_bodies::pidf::{
    Activity, Availability, Basic, InputState, Note, Presence, Priority,
};
use switchboard_sip_bodies::resource_lists::{ListItem, ResourceLists};
use switchboard_sip_bodies::rlmi::{self, BodyPart, InstanceState, Rlmi};
use switchboard_sip_bodies::winfo::{DocState, WatcherEvent, WatcherInfo, WatcherStatus};

fn note(text: &str, lang: Option<&str>) -> Note {
    Note {
        text: text.into(),
        lang: lang.map(Into::into),
    }
}

// ---------------------------------------------------------------- PIDF

/// RFC 3863 §3.4: the minimal example, every element prefixed with `impp`.
const RFC3863_MINIMAL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<impp:presence xmlns:impp="urn:ietf:params:xml:ns:pidf"
    entity="pres:someone@example.com">
  <impp:tuple id="sg89ae">
    <impp:status>
      <impp:basic>open</impp:basic>
    </impp:status>
    <impp:contact priority="0.8">tel:+09012345678</impp:contact>
  </impp:tuple>
</impp:presence>
"#;

#[test]
fn rfc3863_minimal_example_with_prefixes() {
    let p = Presence::parse(RFC3863_MINIMAL.as_bytes()).unwrap();
    assert_eq!(p.entity, "pres:someone@example.com");
    assert_eq!(p.tuples.len(), 1);
    let t = &p.tuples[0];
    assert_eq!(t.id, "sg89ae");
    assert_eq!(t.basic, Some(Basic::Open));
    let c = t.contact.as_ref().unwrap();
    assert_eq!(c.uri, "tel:+09012345678");
    assert_eq!(c.priority, Priority::from_thousandths(800));
}

/// RFC 3863 §6 (the extended example): status extensions in foreign
/// namespaces (ignored), notes in two languages, document-level note.
const RFC3863_EXTENDED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:im="urn:ietf:params:xml:ns:pidf:im"
    xmlns:myex="http://id.example.com/presence/"
    entity="pres:someone@example.com">
  <tuple id="bs35r9">
    <status>
      <basic>open</basic>
      <im:im>busy</im:im>
      <myex:location>home</myex:location>
    </status>
    <contact priority="0.8">im:someone@mobilecarrier.net</contact>
    <note xml:lang="en">Don't Disturb Please!</note>
    <note xml:lang="fr">Ne derangez pas, s'il vous plait</note>
    <timestamp>2001-10-27T16:49:29Z</timestamp>
  </tuple>
  <tuple id="eg92n8">
    <status>
      <basic>open</basic>
    </status>
    <contact priority="1.0">mailto:someone@example.com</contact>
  </tuple>
  <note>I'll be in Tokyo next week</note>
</presence>
"#;

#[test]
fn rfc3863_extended_example() {
    let p = Presence::parse(RFC3863_EXTENDED.as_bytes()).unwrap();
    assert_eq!(p.tuples.len(), 2);
    let t = &p.tuples[0];
    assert_eq!(t.basic, Some(Basic::Open));
    assert_eq!(
        t.notes,
        vec![
            note("Don't Disturb Please!", Some("en")),
            note("Ne derangez pas, s'il vous plait", Some("fr")),
        ]
    );
    assert_eq!(t.timestamp.as_deref(), Some("2001-10-27T16:49:29Z"));
    assert_eq!(
        p.tuples[1].contact.as_ref().unwrap().priority,
        Priority::from_thousandths(1000)
    );
    assert_eq!(p.notes, vec![note("I'll be in Tokyo next week", None)]);
    // Regenerating keeps everything we model.
    assert_eq!(Presence::parse(p.to_xml().as_bytes()).unwrap(), p);
}

/// RFC 4479 §6 style document: a service, a person on the phone and an idle
/// device tied to the service by deviceID; CIPID and relationship ignored.
const RFC4479_EXAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
    xmlns:c="urn:ietf:params:xml:ns:pidf:cipid"
    entity="pres:someone@example.com">
  <tuple id="sg89ae">
    <status>
      <basic>open</basic>
    </status>
    <dm:deviceID>mac:8asd7d7d70</dm:deviceID>
    <rpid:relationship><rpid:self/></rpid:relationship>
    <c:card>http://example.com/~someone/card.vcd</c:card>
    <contact>sip:someone@example.com</contact>
    <timestamp>2005-05-30T22:00:29Z</timestamp>
  </tuple>
  <dm:person id="p1">
    <rpid:activities>
      <rpid:on-the-phone/>
    </rpid:activities>
    <dm:timestamp>2005-05-30T22:02:44+05:00</dm:timestamp>
  </dm:person>
  <dm:device id="pc122">
    <rpid:user-input>idle</rpid:user-input>
    <dm:deviceID>mac:8asd7d7d70</dm:deviceID>
    <dm:timestamp>2005-05-30T22:00:29Z</dm:timestamp>
  </dm:device>
</presence>
"#;

#[test]
fn rfc4479_data_model_example() {
    let p = Presence::parse(RFC4479_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(p.tuples[0].device_id.as_deref(), Some("mac:8asd7d7d70"));
    assert_eq!(
        p.tuples[0].contact.as_ref().unwrap().uri,
        "sip:someone@example.com"
    );
    let person = &p.persons[0];
    assert_eq!(person.id, "p1");
    assert_eq!(
        person.activities.as_ref().unwrap().list,
        vec![Activity::OnThePhone]
    );
    assert_eq!(
        person.timestamp.as_deref(),
        Some("2005-05-30T22:02:44+05:00")
    );
    let device = &p.devices[0];
    assert_eq!(device.id, "pc122");
    assert_eq!(device.device_id.as_deref(), Some("mac:8asd7d7d70"));
    assert_eq!(device.user_input.as_ref().unwrap().state, InputState::Idle);
    assert_eq!(Presence::parse(p.to_xml().as_bytes()).unwrap(), p);
}

/// RFC 4480 §3 example (abridged only in CIPID parts we ignore anyway):
/// RPID in tuples, a device with idle user input and thresholds, a person
/// with timed activities, class, mood, place type and notes.
const RFC4480_EXAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    xmlns:lt="urn:ietf:params:xml:ns:location-type"
    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
    entity="pres:someone@example.com">
  <tuple id="bs35r9">
    <status>
      <basic>open</basic>
    </status>
    <dm:deviceID>urn:device:0003ba4811e3</dm:deviceID>
    <rpid:relationship><rpid:self/></rpid:relationship>
    <rpid:service-class><rpid:electronic/></rpid:service-class>
    <contact priority="0.8">im:someone@mobilecarrier.net</contact>
    <note xml:lang="en">Don't Disturb Please!</note>
    <note xml:lang="fr">Ne derangez pas, s'il vous plait</note>
    <timestamp>2005-10-27T16:49:29Z</timestamp>
  </tuple>

  <tuple id="ty4658">
    <status>
      <basic>open</basic>
    </status>
    <rpid:relationship><rpid:assistant/></rpid:relationship>
    <contact priority="1.0">mailto:secretary@example.com</contact>
  </tuple>

  <tuple id="eg92n8">
    <status>
      <basic>open</basic>
    </status>
    <dm:deviceID>urn:x-mac:0003ba4811e3</dm:deviceID>
    <rpid:class>email</rpid:class>
    <rpid:service-class><rpid:electronic/></rpid:service-class>
    <rpid:status-icon>http://example.com/mail.png</rpid:status-icon>
    <contact priority="1.0">mailto:someone@example.com</contact>
  </tuple>

  <note>I'll be in Tokyo next week</note>

  <dm:device id="pc147">
    <rpid:user-input idle-threshold="600"
      last-input="2004-10-21T13:20:00.000-05:00">idle</rpid:user-input>
    <dm:deviceID>urn:device:0003ba4811e3</dm:deviceID>
    <dm:note>PC</dm:note>
  </dm:device>

  <dm:person id="p1">
    <rpid:activities from="2005-05-30T12:00:00+05:00"
      until="2005-05-30T17:00:00+05:00">
      <rpid:note>Far away</rpid:note>
      <rpid:away/>
    </rpid:activities>
    <rpid:class>calendar</rpid:class>
    <rpid:mood>
      <rpid:angry/>
      <rpid:other>brooding</rpid:other>
    </rpid:mood>
    <rpid:place-is>
      <rpid:audio>
        <rpid:noisy/>
      </rpid:audio>
    </rpid:place-is>
    <rpid:place-type><lt:residence/></rpid:place-type>
    <rpid:privacy><rpid:unknown/></rpid:privacy>
    <rpid:sphere>bowling league</rpid:sphere>
    <rpid:status-icon>http://example.com/play.gif</rpid:status-icon>
    <rpid:time-offset>-240</rpid:time-offset>
    <dm:note>Scoring 120</dm:note>
    <dm:timestamp>2005-05-30T16:09:44+05:00</dm:timestamp>
  </dm:person>
</presence>
"#;

#[test]
fn rfc4480_rpid_example() {
    let p = Presence::parse(RFC4480_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(p.tuples.len(), 3);
    assert_eq!(
        p.tuples[0].device_id.as_deref(),
        Some("urn:device:0003ba4811e3")
    );
    assert_eq!(p.tuples[2].class.as_deref(), Some("email"));

    let d = &p.devices[0];
    let ui = d.user_input.as_ref().unwrap();
    assert_eq!(ui.state, InputState::Idle);
    assert_eq!(ui.idle_threshold, Some(600));
    assert_eq!(
        ui.last_input.as_deref(),
        Some("2004-10-21T13:20:00.000-05:00")
    );
    assert_eq!(d.notes, vec![note("PC", None)]);

    let person = &p.persons[0];
    let a = person.activities.as_ref().unwrap();
    assert_eq!(a.list, vec![Activity::Away]);
    assert_eq!(a.notes, vec![note("Far away", None)]);
    assert_eq!(a.from.as_deref(), Some("2005-05-30T12:00:00+05:00"));
    assert_eq!(a.until.as_deref(), Some("2005-05-30T17:00:00+05:00"));
    assert_eq!(person.class.as_deref(), Some("calendar"));
    let mood = person.mood.as_ref().unwrap();
    assert_eq!(mood.values, vec!["angry".to_owned()]);
    assert_eq!(mood.other.as_deref(), Some("brooding"));
    assert_eq!(
        person.place_type.as_ref().unwrap().values,
        vec!["residence".to_owned()]
    );
    assert_eq!(person.notes, vec![note("Scoring 120", None)]);
    assert_eq!(Presence::parse(p.to_xml().as_bytes()).unwrap(), p);
}

/// RFC 4480's activity list, one document with every token plus `other`.
#[test]
fn every_rpid_activity_is_understood() {
    let mut body = String::new();
    for a in Activity::known() {
        body.push_str(&format!("<r:{}/>", a.token()));
    }
    body.push_str("<r:other>Writing the quarterly report</r:other>");
    let doc = format!(
        r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:d="urn:ietf:params:xml:ns:pidf:data-model"
             xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@example.com">
           <d:person id="p"><r:activities>{body}</r:activities></d:person></presence>"#
    );
    let p = Presence::parse(doc.as_bytes()).unwrap();
    let list = &p.persons[0].activities.as_ref().unwrap().list;
    let mut expected: Vec<Activity> = Activity::known().collect();
    expected.push(Activity::Other("Writing the quarterly report".into()));
    assert_eq!(list, &expected);
    for required in [
        Activity::Away,
        Activity::Appointment,
        Activity::Busy,
        Activity::Holiday,
        Activity::InTransit,
        Activity::Meal,
        Activity::Meeting,
        Activity::OnThePhone,
        Activity::PermanentAbsence,
        Activity::Sleeping,
        Activity::Vacation,
        Activity::Unknown,
    ] {
        assert!(list.contains(&required), "{required:?}");
    }
}

/// What baresip's presence module publishes: person with an empty
/// activities element, one tuple, CRLF line ends, `standalone="no"`.
#[test]
fn baresip_publication() {
    let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\r\n\
<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\r\n\
    xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"\r\n\
    xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\"\r\n\
    entity=\"sip:alice@example.com\">\r\n\
  <dm:person id=\"p4159\"><rpid:activities/></dm:person>\r\n\
  <tuple id=\"t4109\">\r\n\
    <status>\r\n\
      <basic>closed</basic>\r\n\
    </status>\r\n\
    <contact>sip:alice@192.0.2.1:5060;transport=udp</contact>\r\n\
  </tuple>\r\n\
</presence>\r\n";
    let p = Presence::parse(doc.as_bytes()).unwrap();
    assert_eq!(p.tuples[0].basic, Some(Basic::Closed));
    assert_eq!(
        p.tuples[0].contact.as_ref().unwrap().uri,
        "sip:alice@192.0.2.1:5060;transport=udp"
    );
    let a = p.persons[0].activities.as_ref().unwrap();
    assert!(a.list.is_empty());
    assert_eq!(Presence::parse(p.to_xml().as_bytes()).unwrap(), p);
}

/// The simplest thing a SIPp scenario or an old SIMPLE client sends: a tuple
/// with basic status and a note, RPID inside `<status>` (pre-RFC 4480
/// placement), odd prefix for the data model.
#[test]
fn simple_documents_from_test_tools_and_old_clients() {
    let doc = br#"<?xml version="1.0"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:pdm="urn:ietf:params:xml:ns:pidf:data-model"
          xmlns:e="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:[service]@[remote_ip]">
  <tuple id="1"><status><basic>open</basic><e:user-input>active</e:user-input><pdm:deviceID>dev1</pdm:deviceID></status>
  <note>Online via SIPp</note></tuple>
</presence>"#;
    let p = Presence::parse(doc).unwrap();
    let t = &p.tuples[0];
    assert_eq!(t.basic, Some(Basic::Open));
    assert_eq!(t.user_input.as_ref().unwrap().state, InputState::Active);
    assert_eq!(t.device_id.as_deref(), Some("dev1"));
    assert_eq!(t.notes, vec![note("Online via SIPp", None)]);
}

/// Skype for Business users write long personal notes with punctuation,
/// entities and non-ASCII text, often with a language tag per note.
#[test]
fn skype_for_business_style_notes() {
    let doc = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
        xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" entity=\"sip:jo@contoso.com\">\
        <tuple id=\"t\"><status><basic>open</basic></status>\
        <note xml:lang=\"en-US\">Out of office 3/4 &amp; 3/5 &#x2014; urgent? call &lt;+1 555 0100&gt;</note></tuple>\
        <dm:person id=\"p\"><dm:note xml:lang=\"de-DE\">Bin im Meeting: \u{201e}Budget\u{201c} \u{2013} zur\u{fc}ck um 15\u{a0}Uhr</dm:note></dm:person>\
        </presence>";
    let p = Presence::parse(doc.as_bytes()).unwrap();
    assert_eq!(
        p.tuples[0].notes[0],
        note(
            "Out of office 3/4 & 3/5 \u{2014} urgent? call <+1 555 0100>",
            Some("en-US")
        )
    );
    assert_eq!(
        p.persons[0].notes[0].text,
        "Bin im Meeting: \u{201e}Budget\u{201c} \u{2013} zur\u{fc}ck um 15\u{a0}Uhr"
    );
    assert_eq!(Presence::parse(p.to_xml().as_bytes()).unwrap(), p);
}

/// The Switchboard extension, with an arbitrary prefix as a client might
/// choose, next to the standard elements it refines.
#[test]
fn availability_extension_any_prefix() {
    let doc = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
        xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" xmlns:x="urn:switchboard:params:xml:ns:pidf:availability"
        entity="sip:bob@example.com">
      <tuple id="t"><status><basic>open</basic></status></tuple>
      <dm:person id="p"><rpid:activities><rpid:meeting/></rpid:activities>
        <x:availability> 9500 </x:availability><dm:note>Presenting</dm:note></dm:person>
    </presence>"#;
    let p = Presence::parse(doc).unwrap();
    assert_eq!(
        p.persons[0].availability,
        Some(Availability::DO_NOT_DISTURB)
    );
    let out = p.to_xml();
    assert!(out.contains(r#"xmlns:sb="urn:switchboard:params:xml:ns:pidf:availability""#));
    assert!(out.find("<rpid:meeting/>").unwrap() < out.find("<sb:availability>").unwrap());
}

/// Unknown namespaces anywhere, including unknown children of known
/// elements and unknown elements in known namespaces, are ignored.
#[test]
fn unknown_elements_are_ignored() {
    let doc = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:z="urn:example:zzz" entity="sip:a@b" z:flag="1">
      <z:thing><tuple id="nested-not-a-tuple"/></z:thing>
      <tuple id="t" z:x="y"><status><basic>open</basic><z:deep><z:deeper/></z:deep></status>
        <futurething>ignored</futurething></tuple>
      <z:person id="notdm"/>
    </presence>"#;
    let p = Presence::parse(doc).unwrap();
    assert_eq!(p.tuples.len(), 1);
    assert_eq!(p.tuples[0].id, "t");
    assert!(p.persons.is_empty());
}

// ------------------------------------------------------- resource lists

/// RFC 4826 §3.3 example: nested lists, an entry-ref and an external list.
const RFC4826_EXAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <list name="friends">
   <entry uri="sip:bill@example.com">
    <display-name>Bill Doe</display-name>
   </entry>
   <entry-ref ref="resource-lists/users/sip:bill@example.com/index/~~/resource-lists/list%5b@name=%22list1%22%5d/entry%5b@uri=%22sip:petri@example.com%22%5d"/>
   <list name="close-friends">
    <display-name>Close Friends</display-name>
    <entry uri="sip:joe@example.com">
     <display-name>Joe Smith</display-name>
    </entry>
    <entry uri="sip:nancy@example.com">
     <display-name>Nancy Gross</display-name>
    </entry>
    <external anchor="http://xcap.example.org/resource-lists/users/sip:a@example.org/index/~~/resource-lists/list%5b@name=%22mkting%22%5d">
      <display-name>Marketing</display-name>
    </external>
   </list>
  </list>
</resource-lists>
"#;

#[test]
fn rfc4826_example() {
    let rl = ResourceLists::parse(RFC4826_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(rl.lists.len(), 1);
    let friends = &rl.lists[0];
    assert_eq!(friends.name.as_deref(), Some("friends"));
    assert_eq!(friends.items.len(), 3);
    let ListItem::Entry(bill) = &friends.items[0] else {
        panic!("first item must be an entry")
    };
    assert_eq!(bill.display_name.as_ref().unwrap().text, "Bill Doe");
    assert!(
        matches!(&friends.items[1], ListItem::EntryRef(r) if r.target.starts_with("resource-lists/users/sip:bill@"))
    );
    let ListItem::List(close) = &friends.items[2] else {
        panic!("third item must be a list")
    };
    assert_eq!(close.display_name.as_ref().unwrap().text, "Close Friends");
    assert!(
        matches!(&close.items[2], ListItem::External(r) if r.display_name.as_ref().unwrap().text == "Marketing")
    );
    assert_eq!(
        rl.entry_uris(),
        vec![
            "sip:bill@example.com",
            "sip:joe@example.com",
            "sip:nancy@example.com"
        ]
    );
    assert_eq!(ResourceLists::parse(rl.to_xml().as_bytes()).unwrap(), rl);
}

// ----------------------------------------------------------------- RLMI

/// RFC 4662 §5 first NOTIFY: RLMI root, two PIDF parts, two resources
/// without instances (pending back-end subscriptions).
const RFC4662_BOUNDARY: &str = "50UBfW7LSCVLtggUPe5z";
const RFC4662_CONTENT_TYPE: &str = "multipart/related;type=\"application/rlmi+xml\";start=\"<nXYxAE@pres.vancouver.example.com>\";boundary=\"50UBfW7LSCVLtggUPe5z\"";

fn rfc4662_body() -> Vec<u8> {
    let b = RFC4662_BOUNDARY;
    format!(
        "--{b}\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: <nXYxAE@pres.vancouver.example.com>\r\n\
Content-Type: application/rlmi+xml;charset=\"UTF-8\"\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<list xmlns=\"urn:ietf:params:xml:ns:rlmi\"\r\n\
      uri=\"sip:adam-friends@pres.vancouver.example.com\"\r\n\
      version=\"1\" fullState=\"true\">\r\n\
  <name xml:lang=\"en\">Buddy List at COM</name>\r\n\
  <name xml:lang=\"de\">Liste der Freunde an COM</name>\r\n\
  <resource uri=\"sip:bob@vancouver.example.com\">\r\n\
    <name>Bob Smith</name>\r\n\
    <instance id=\"juwigmtboe\" state=\"active\"\r\n\
              cid=\"bUZBsM@pres.vancouver.example.com\"/>\r\n\
  </resource>\r\n\
  <resource uri=\"sip:dave@vancouver.example.com\">\r\n\
    <name>Dave Jones</name>\r\n\
    <instance id=\"hqzsuxtfyq\" state=\"active\"\r\n\
              cid=\"ZvSvkz@pres.vancouver.example.com\"/>\r\n\
  </resource>\r\n\
  <resource uri=\"sip:ed@dallas.example.net\">\r\n\
    <name>Ed at NET</name>\r\n\
  </resource>\r\n\
  <resource uri=\"sip:adam-friends@stockholm.example.org\">\r\n\
    <name xml:lang=\"en\">My Friends at ORG</name>\r\n\
    <name xml:lang=\"de\">Meine Freunde an ORG</name>\r\n\
  </resource>\r\n\
</list>\r\n\
\r\n\
--{b}\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: <bUZBsM@pres.vancouver.example.com>\r\n\
Content-Type: application/pidf+xml;charset=\"UTF-8\"\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\r\n\
    entity=\"sip:bob@vancouver.example.com\">\r\n\
  <tuple id=\"sg89ae\">\r\n\
    <status>\r\n\
      <basic>open</basic>\r\n\
    </status>\r\n\
    <contact priority=\"1.0\">sip:bob@vancouver.example.com</contact>\r\n\
  </tuple>\r\n\
</presence>\r\n\
\r\n\
--{b}\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: <ZvSvkz@pres.vancouver.example.com>\r\n\
Content-Type: application/pidf+xml;charset=\"UTF-8\"\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\r\n\
    entity=\"sip:dave@vancouver.example.com\">\r\n\
  <tuple id=\"slie74\">\r\n\
    <status>\r\n\
      <basic>closed</basic>\r\n\
    </status>\r\n\
  </tuple>\r\n\
</presence>\r\n\
\r\n\
--{b}--\r\n"
    )
    .into_bytes()
}

#[test]
fn rfc4662_notify_example() {
    let notify = rlmi::parse_rlmi_notify(RFC4662_CONTENT_TYPE, &rfc4662_body()).unwrap();
    assert_eq!(notify.rlmi_cid, "nXYxAE@pres.vancouver.example.com");
    let list = &notify.rlmi;
    assert_eq!(list.uri, "sip:adam-friends@pres.vancouver.example.com");
    assert_eq!(list.version, 1);
    assert!(list.full_state);
    assert_eq!(list.names[1].lang.as_deref(), Some("de"));
    assert_eq!(list.resources.len(), 4);
    let bob = &list.resources[0];
    assert_eq!(bob.names[0].text, "Bob Smith");
    assert_eq!(bob.instances[0].id, "juwigmtboe");
    assert_eq!(bob.instances[0].state, InstanceState::Active);
    assert!(list.resources[2].instances.is_empty());

    // Each cid leads to the resource's PIDF document.
    for (resource, basic) in [(0, Basic::Open), (1, Basic::Closed)] {
        let r = &list.resources[resource];
        let cid = r.instances[0].cid.as_deref().unwrap();
        let part = notify.part(cid).unwrap();
        assert!(part.content_type.starts_with("application/pidf+xml"));
        let p = Presence::parse(&part.body).unwrap();
        assert_eq!(p.entity, r.uri);
        assert_eq!(p.tuples[0].basic, Some(basic));
    }

    // Rebuilding the NOTIFY with our builder gives an equivalent body.
    let rebuilt = rlmi::build_rlmi_notify(list, &notify.rlmi_cid, &notify.parts).unwrap();
    assert!(
        rebuilt
            .content_type
            .starts_with("multipart/related;type=\"application/rlmi+xml\";start=\"<nXYxAE@pres.vancouver.example.com>\";boundary=\"")
    );
    let again = rlmi::parse_rlmi_notify(&rebuilt.content_type, &rebuilt.body).unwrap();
    assert_eq!(again, notify);
}

/// RFC 4662 §5's later NOTIFY: a partial-state RLMI naming a terminated
/// instance with a reason, and a pending one.
#[test]
fn rfc4662_partial_state_document() {
    let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<list xmlns="urn:ietf:params:xml:ns:rlmi"
      uri="sip:adam-friends@pres.vancouver.example.com"
      version="2" fullState="false">
  <resource uri="sip:ed@dallas.example.net">
    <name>Ed at NET</name>
    <instance id="sdlkmeopdf" state="pending"/>
  </resource>
  <resource uri="sip:adam-friends@stockholm.example.org">
    <name xml:lang="en">My Friends at ORG</name>
    <instance id="cmpqweitlp" state="terminated" reason="rejected"/>
  </resource>
</list>"#;
    let r = Rlmi::parse(doc).unwrap();
    assert_eq!(r.version, 2);
    assert!(!r.full_state);
    assert_eq!(r.resources[0].instances[0].state, InstanceState::Pending);
    let t = &r.resources[1].instances[0];
    assert_eq!(t.state, InstanceState::Terminated);
    assert_eq!(t.reason.as_deref(), Some("rejected"));
    assert_eq!(t.cid, None);
}

/// A nested list's state is itself a multipart/related part (RFC 4662 §5).
#[test]
fn nested_multipart_parts() {
    let inner_rlmi = Rlmi {
        uri: "sip:adam-friends@stockholm.example.org".into(),
        version: 0,
        full_state: true,
        ..Rlmi::default()
    };
    let inner = rlmi::build_rlmi_notify(&inner_rlmi, "inner@x", &[]).unwrap();
    let outer_rlmi = Rlmi {
        uri: "sip:adam-friends@pres.vancouver.example.com".into(),
        version: 3,
        full_state: false,
        names: vec![],
        resources: vec![rlmi::Resource {
            uri: inner_rlmi.uri.clone(),
            names: vec![],
            instances: vec![rlmi::Instance {
                id: "i".into(),
                state: InstanceState::Active,
                reason: None,
                cid: Some("nested@x".into()),
            }],
        }],
    };
    let part = BodyPart {
        content_id: "nested@x".into(),
        content_type: inner.content_type.clone(),
        body: inner.body.clone(),
    };
    let outer = rlmi::build_rlmi_notify(&outer_rlmi, "outer@x", &[part]).unwrap();
    let parsed = rlmi::parse_rlmi_notify(&outer.content_type, &outer.body).unwrap();
    let nested = parsed.part("nested@x").unwrap();
    let inner_parsed = rlmi::parse_rlmi_notify(&nested.content_type, &nested.body).unwrap();
    assert_eq!(inner_parsed.rlmi, inner_rlmi);
}

// -------------------------------------------------------- watcher info

/// RFC 3858 §5 example: a full document with an active and a pending
/// watcher.
#[test]
fn rfc3858_full_example() {
    let doc = br#"<?xml version="1.0"?>
<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo"
             version="0" state="full">
  <watcher-list resource="sip:professor@example.net" package="presence">
    <watcher status="active"
             id="8ajksjda7s"
             duration-subscribed="509"
             event="approved" >sip:userA@example.net</watcher>
    <watcher status="pending"
             id="hh8juja87s997-ass7"
             display-name="Mr. Subscriber"
             event="subscribe">sip:userB@example.org</watcher>
  </watcher-list>
</watcherinfo>"#;
    let w = WatcherInfo::parse(doc).unwrap();
    assert_eq!(w.version, 0);
    assert_eq!(w.state, DocState::Full);
    let list = &w.lists[0];
    assert_eq!(list.resource, "sip:professor@example.net");
    assert_eq!(list.package, "presence");
    let a = &list.watchers[0];
    assert_eq!(
        (a.status, a.event, a.duration_subscribed),
        (WatcherStatus::Active, WatcherEvent::Approved, Some(509))
    );
    assert_eq!(a.uri, "sip:userA@example.net");
    let b = &list.watchers[1];
    assert_eq!(b.status, WatcherStatus::Pending);
    assert_eq!(b.display_name.as_deref(), Some("Mr. Subscriber"));
    assert_eq!(WatcherInfo::parse(w.to_xml().as_bytes()).unwrap(), w);
}

/// RFC 3858 §5 partial update: the pending watcher got approved.
#[test]
fn rfc3858_partial_example() {
    let doc = br#"<?xml version="1.0"?>
<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo"
             version="1" state="partial">
  <watcher-list resource="sip:professor@example.net" package="presence">
    <watcher status="active"
             id="hh8juja87s997-ass7"
             display-name="Mr. Subscriber"
             event="approved">sip:userB@example.org</watcher>
  </watcher-list>
</watcherinfo>"#;
    let w = WatcherInfo::parse(doc).unwrap();
    assert_eq!(w.state, DocState::Partial);
    assert_eq!(w.lists[0].watchers[0].event, WatcherEvent::Approved);
}

// ------------------------------------------------------ conference info

/// RFC 4575 §6 example (comments included, as in the RFC).
const RFC4575_EXAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<conference-info
 xmlns="urn:ietf:params:xml:ns:conference-info"
 entity="sips:conf233@example.com"
 state="full" version="1">
  <!--
    CONFERENCE INFO
  -->
  <conference-description>
   <subject>Agenda: This month's goals</subject>
   <service-uris>
    <entry>
     <uri>http://sharepoint/salesgroup/</uri>
     <purpose>web-page</purpose>
    </entry>
   </service-uris>
  </conference-description>
  <!--
    CONFERENCE STATE
  -->
  <conference-state>
   <user-count>33</user-count>
  </conference-state>
  <!--
    USERS
  -->
  <users>
   <user entity="sip:bob@example.com" state="full">
    <display-text>Bob Hoskins</display-text>
    <!--
      ENDPOINTS
    -->
    <endpoint entity="sip:bob@pc33.example.com">
     <display-text>Bob's Laptop</display-text>
     <status>disconnected</status>
     <disconnection-method>departed</disconnection-method>
     <disconnection-info>
      <when>2005-03-04T20:00:00Z</when>
      <reason>bad voice quality</reason>
      <by>sip:mike@example.com</by>
     </disconnection-info>
     <!--
       MEDIA
     -->
     <media id="1">
      <display-text>main audio</display-text>
      <type>audio</type>
      <label>34567</label>
      <src-id>432424</src-id>
      <status>sendrecv</status>
     </media>
    </endpoint>
   </user>
   <!--
     USER
   -->
   <user entity="sip:alice@example.com" state="full">
    <display-text>Alice</display-text>
    <!--
      ENDPOINTS
    -->
    <endpoint entity="sip:4kfk4j392jsu@example.com;grid=433kj4j3u">
     <status>connected</status>
     <joining-method>dialed-out</joining-method>
     <joining-info>
      <when>2005-03-04T20:00:00Z</when>
      <by>sip:mike@example.com</by>
     </joining-info>
     <!--
       MEDIA
     -->
     <media id="1">
      <display-text>main audio</display-text>
      <type>audio</type>
      <label>34567</label>
      <src-id>534232</src-id>
      <status>sendrecv</status>
     </media>
    </endpoint>
   </user>
  </users>
</conference-info>
"#;

#[test]
fn rfc4575_example() {
    let c = ConferenceInfo::parse(RFC4575_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(c.entity, "sips:conf233@example.com");
    assert_eq!(c.state, ElementState::Full);
    assert_eq!(c.version, Some(1));
    let d = c.description.as_ref().unwrap();
    assert_eq!(d.subject.as_deref(), Some("Agenda: This month's goals"));
    assert_eq!(d.service_uris[0].uri, "http://sharepoint/salesgroup/");
    assert_eq!(d.service_uris[0].purpose.as_deref(), Some("web-page"));
    assert_eq!(c.conference_state.as_ref().unwrap().user_count, Some(33));
    let users = &c.users.as_ref().unwrap().list;
    assert_eq!(users.len(), 2);
    let bob = &users[0];
    assert_eq!(bob.state, Some(ElementState::Full));
    assert_eq!(bob.display_text.as_deref(), Some("Bob Hoskins"));
    let laptop = &bob.endpoints[0];
    assert_eq!(laptop.status, Some(EndpointStatus::Disconnected));
    assert_eq!(
        laptop.disconnection_method,
        Some(DisconnectionMethod::Departed)
    );
    let info = laptop.disconnection_info.as_ref().unwrap();
    assert_eq!(info.reason.as_deref(), Some("bad voice quality"));
    assert_eq!(info.by.as_deref(), Some("sip:mike@example.com"));
    assert_eq!(laptop.media[0].media_type.as_deref(), Some("audio"));
    assert_eq!(laptop.media[0].status, Some(MediaStatus::SendRecv));
    let alice = &users[1].endpoints[0];
    assert_eq!(alice.entity, "sip:4kfk4j392jsu@example.com;grid=433kj4j3u");
    assert_eq!(alice.status, Some(EndpointStatus::Connected));
    assert_eq!(alice.joining_method, Some(JoiningMethod::DialedOut));
    assert_eq!(
        alice.joining_info.as_ref().unwrap().when.as_deref(),
        Some("2005-03-04T20:00:00Z")
    );
    assert_eq!(ConferenceInfo::parse(c.to_xml().as_bytes()).unwrap(), c);
}

// ----------------------------------------------------------------- CPIM

/// RFC 3862 §6 example message (the `Content-type: Message/CPIM` line is
/// the SIP header, not part of the body).
const RFC3862_EXAMPLE: &str = "From: MR SANDERS <im:piglet@100akerwood.com>\r\n\
To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n\
DateTime: 2000-12-13T13:40:00-08:00\r\n\
Subject: the weather will be fine today\r\n\
Subject:;lang=fr beau temps prevu pour aujourd'hui\r\n\
NS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\n\
Require: MyFeatures.VitalMessageOption\r\n\
MyFeatures.VitalMessageOption: Confirmation-requested\r\n\
MyFeatures.WackyMessageOption: Use-silly-font\r\n\
\r\n\
Content-type: text/xml; charset=utf-8\r\n\
Content-ID: <1234567890@foo.com>\r\n\
\r\n\
<body>\r\n\
Here is the text of my message.\r\n\
</body>\r\n";

#[test]
fn rfc3862_example() {
    let m = Cpim::parse(RFC3862_EXAMPLE.as_bytes()).unwrap();
    let from = m.from.as_ref().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("MR SANDERS"));
    assert_eq!(from.uri, "im:piglet@100akerwood.com");
    assert_eq!(m.to[0].display_name.as_deref(), Some("Depressed Donkey"));
    assert_eq!(m.date_time.as_deref(), Some("2000-12-13T13:40:00-08:00"));
    assert_eq!(m.subjects.len(), 2);
    assert_eq!(m.subjects[0].lang, None);
    assert_eq!(m.subjects[1].lang.as_deref(), Some("fr"));
    assert_eq!(m.subjects[1].text, "beau temps prevu pour aujourd'hui");
    assert_eq!(m.namespaces[0].prefix.as_deref(), Some("MyFeatures"));
    assert_eq!(m.namespaces[0].uri, "mid:MessageFeatures@id.foo.com");
    assert_eq!(m.require, vec!["MyFeatures.VitalMessageOption".to_owned()]);
    assert_eq!(m.extensions.len(), 2);
    assert_eq!(m.extensions[1].name, "MyFeatures.WackyMessageOption");
    assert_eq!(m.extensions[1].value, "Use-silly-font");
    assert_eq!(m.content_type(), Some("text/xml; charset=utf-8"));
    assert_eq!(m.content_header("content-id"), Some("<1234567890@foo.com>"));
    assert_eq!(
        m.body,
        b"<body>\r\nHere is the text of my message.\r\n</body>\r\n"
    );
    assert_eq!(Cpim::parse(&m.to_bytes()).unwrap(), m);
}

/// What the focus sends for a chat message: sender identity, conference as
/// recipient, a UTF-8 text body.
#[test]
fn conference_fan_out_message() {
    use switchboard_sip_bodies::cpim::Address;
    let m = Cpim {
        from: Some(Address::new(Some("Zo\u{eb} O'Neil"), "sip:zoe@contoso.com")),
        to: vec![Address::new(None, "sip:chat-42@conf.contoso.com")],
        date_time: Some("2026-11-20T10:15:00Z".into()),
        content_headers: vec![("Content-Type".into(), "text/plain;charset=UTF-8".into())],
        body: "Let\u{2019}s meet at 3".as_bytes().to_vec(),
        ..Cpim::default()
    };
    let bytes = m.to_bytes();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with(
        "From: \"Zo\u{eb} O'Neil\" <sip:zoe@contoso.com>\r\nTo: <sip:chat-42@conf.contoso.com>\r\nDateTime: 2026-11-20T10:15:00Z\r\n\r\nContent-Type: text/plain;charset=UTF-8\r\n\r\nLet"
    ));
    assert_eq!(Cpim::parse(&bytes).unwrap(), m);
}
