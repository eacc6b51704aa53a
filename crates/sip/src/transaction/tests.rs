//! The transaction machines driven by a fake clock.

use super::*;
use crate::message::Message;
use crate::parse::{Limits, parse_datagram};

#[derive(Debug, Clone, PartialEq)]
struct TestFlow {
    reliable: bool,
}

impl Flow for TestFlow {
    fn is_reliable(&self) -> bool {
        self.reliable
    }
}

const UDP: TestFlow = TestFlow { reliable: false };
const TCP: TestFlow = TestFlow { reliable: true };

fn request(method: &str, branch: &str) -> Request {
    let raw = format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: call-1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    );
    match parse_datagram(raw.as_bytes(), &Limits::default()) {
        Ok(Message::Request(r)) => r,
        other => panic!("bad test request: {other:?}"),
    }
}

fn response_to(req: &Request, status: u16) -> Response {
    Response::to_request(req, status).with_to_tag("b1")
}

fn drain_transmits(layer: &mut TransactionLayer<TestFlow>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(t) = layer.poll_transmit() {
        let text = String::from_utf8_lossy(&t.bytes).into_owned();
        out.push(text.lines().next().unwrap_or("").to_owned());
    }
    out
}

fn drain_events(layer: &mut TransactionLayer<TestFlow>) -> Vec<Event<TestFlow>> {
    std::iter::from_fn(|| layer.poll_event()).collect()
}

/// Advances the clock to `until`, firing timers at their exact deadlines, and
/// returns (time offset in ms, first line) of everything sent.
fn run_until(
    layer: &mut TransactionLayer<TestFlow>,
    start: Instant,
    until: Duration,
) -> Vec<(u128, String)> {
    let mut sent = Vec::new();
    while let Some(at) = layer.poll_timeout() {
        if at > start + until {
            break;
        }
        layer.handle_timeout(at);
        for line in drain_transmits(layer) {
            sent.push(((at - start).as_millis(), line));
        }
    }
    sent
}

fn single_request_key(events: &[Event<TestFlow>]) -> TransactionKey {
    match events {
        [Event::Request { key, .. }] => key.clone(),
        other => panic!("expected one request event, got {other:?}"),
    }
}

#[test]
fn non_invite_server_absorbs_and_replays_final_over_udp() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = request("MESSAGE", "z9hG4bKs1");
    layer
        .handle_request(t0, req.clone(), UDP)
        .expect("accepted");
    let key = single_request_key(&drain_events(&mut layer));
    assert!(
        drain_transmits(&mut layer).is_empty(),
        "no automatic 100 for non-INVITE"
    );
    layer
        .handle_request(t0, req.clone(), UDP)
        .expect("retransmission");
    assert!(
        drain_events(&mut layer).is_empty(),
        "retransmission is absorbed"
    );
    assert!(
        drain_transmits(&mut layer).is_empty(),
        "nothing to replay yet"
    );
    layer
        .respond(t0, &key, response_to(&req, 200))
        .expect("answer");
    assert_eq!(drain_transmits(&mut layer), vec!["SIP/2.0 200 OK"]);
    layer
        .handle_request(t0 + Duration::from_secs(1), req.clone(), UDP)
        .expect("late retransmission");
    assert_eq!(
        drain_transmits(&mut layer),
        vec!["SIP/2.0 200 OK"],
        "final is replayed"
    );
    assert_eq!(
        layer.respond(t0, &key, response_to(&req, 500)),
        Err(TxError::AlreadyFinal)
    );
    run_until(&mut layer, t0, Duration::from_millis(31_999));
    assert_eq!(layer.counts().server, 1, "timer J keeps it for 64*T1");
    run_until(&mut layer, t0, Duration::from_secs(32));
    assert_eq!(layer.counts().server, 0, "timer J fired");
}

#[test]
fn non_invite_server_over_tcp_terminates_at_once() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = request("REGISTER", "z9hG4bKs2");
    layer
        .handle_request(t0, req.clone(), TCP)
        .expect("accepted");
    let key = single_request_key(&drain_events(&mut layer));
    layer
        .respond(t0, &key, response_to(&req, 200))
        .expect("answer");
    layer.handle_timeout(t0);
    assert_eq!(layer.counts().server, 0);
}

#[test]
fn server_gives_up_when_the_user_never_answers() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    layer
        .handle_request(t0, request("OPTIONS", "z9hG4bKs3"), UDP)
        .expect("accepted");
    let key = single_request_key(&drain_events(&mut layer));
    run_until(&mut layer, t0, Duration::from_secs(32));
    assert!(
        matches!(drain_events(&mut layer).as_slice(), [Event::ServerGaveUp { key: k }] if *k == key)
    );
    assert_eq!(layer.counts().server, 0);
}

#[test]
fn invite_server_non2xx_retransmits_until_ack() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = request("INVITE", "z9hG4bKs4");
    layer
        .handle_request(t0, req.clone(), UDP)
        .expect("accepted");
    assert_eq!(drain_transmits(&mut layer), vec!["SIP/2.0 100 Trying"]);
    let key = single_request_key(&drain_events(&mut layer));
    layer
        .handle_request(t0, req.clone(), UDP)
        .expect("retransmission");
    assert_eq!(
        drain_transmits(&mut layer),
        vec!["SIP/2.0 100 Trying"],
        "provisional replayed"
    );
    layer
        .respond(t0, &key, response_to(&req, 486))
        .expect("answer");
    assert_eq!(drain_transmits(&mut layer), vec!["SIP/2.0 486 Busy Here"]);
    let sent = run_until(&mut layer, t0, Duration::from_millis(7_600));
    let times: Vec<u128> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        times,
        vec![500, 1_500, 3_500, 7_500],
        "timer G doubles from T1 (capped at T2 later)"
    );
    let mut ack = request("ACK", "z9hG4bKs4");
    ack.headers.set(crate::HeaderName::CSeq, "1 ACK");
    layer
        .handle_request(t0 + Duration::from_secs(8), ack.clone(), UDP)
        .expect("ack");
    assert!(
        drain_events(&mut layer).is_empty(),
        "ACK for non-2xx is absorbed"
    );
    let after = run_until(&mut layer, t0, Duration::from_secs(12));
    assert!(
        after.is_empty(),
        "no more retransmissions after ACK: {after:?}"
    );
    assert_eq!(layer.counts().server, 1, "timer I not yet fired");
    run_until(&mut layer, t0, Duration::from_secs(14));
    assert_eq!(layer.counts().server, 0, "timer I (T4) fired");
}

#[test]
fn invite_server_timer_h_without_ack() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = request("INVITE", "z9hG4bKs5");
    layer
        .handle_request(t0, req.clone(), UDP)
        .expect("accepted");
    let key = single_request_key(&drain_events(&mut layer));
    layer
        .respond(t0, &key, response_to(&req, 603))
        .expect("answer");
    let sent = run_until(&mut layer, t0, Duration::from_secs(40));
    let intervals: Vec<u128> = sent.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        intervals.iter().all(|&i| i <= 4_000),
        "capped at T2: {intervals:?}"
    );
    assert!(matches!(
        drain_events(&mut layer).as_slice(),
        [Event::ServerGaveUp { .. }]
    ));
    assert_eq!(layer.counts().server, 0);
}

#[test]
fn invite_server_2xx_is_accepted_and_passes_acks() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = request("INVITE", "z9hG4bKs6");
    layer
        .handle_request(t0, req.clone(), UDP)
        .expect("accepted");
    let key = single_request_key(&drain_events(&mut layer));
    drain_transmits(&mut layer);
    layer
        .respond(t0, &key, response_to(&req, 200))
        .expect("2xx");
    assert_eq!(drain_transmits(&mut layer), vec!["SIP/2.0 200 OK"]);
    layer
        .handle_request(t0, req.clone(), UDP)
        .expect("retransmitted INVITE");
    assert!(
        drain_transmits(&mut layer).is_empty(),
        "absorbed in Accepted"
    );
    layer
        .respond(t0, &key, response_to(&req, 200))
        .expect("another 2xx passes");
    assert_eq!(drain_transmits(&mut layer).len(), 1);
    let mut ack = request("ACK", "z9hG4bKother");
    ack.headers.set(crate::HeaderName::CSeq, "1 ACK");
    layer.handle_request(t0, ack, UDP).expect("2xx ACK");
    assert!(matches!(
        drain_events(&mut layer).as_slice(),
        [Event::Ack { .. }]
    ));
    assert!(
        run_until(&mut layer, t0, Duration::from_secs(33)).is_empty(),
        "the transaction never retransmits 2xx itself"
    );
    assert_eq!(layer.counts().server, 0, "timer L fired");
}

#[test]
fn cancel_finds_the_pending_invite() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    layer
        .handle_request(t0, request("INVITE", "z9hG4bKs7"), UDP)
        .expect("accepted");
    let cancel = request("CANCEL", "z9hG4bKs7");
    layer
        .handle_request(t0, cancel.clone(), UDP)
        .expect("cancel");
    let events = drain_events(&mut layer);
    assert_eq!(events.len(), 2);
    let Event::Request { key: ckey, .. } = &events[1] else {
        panic!("cancel event expected")
    };
    let ikey = layer.invite_for_cancel(ckey).expect("INVITE found");
    assert_eq!(ikey.method, Method::Invite);
    assert!(
        layer
            .invite_for_cancel(&TransactionKey {
                branch: "z9hG4bKnope".into(),
                ..ckey.clone()
            })
            .is_none()
    );
}

#[test]
fn non_invite_client_retransmits_then_times_out() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let key = layer
        .send_request(t0, request("MESSAGE", "z9hG4bKc1"), UDP)
        .expect("sent");
    assert_eq!(drain_transmits(&mut layer).len(), 1);
    let sent = run_until(&mut layer, t0, Duration::from_secs(33));
    let times: Vec<u128> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        times,
        vec![
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ],
        "timer E"
    );
    assert!(
        matches!(drain_events(&mut layer).as_slice(), [Event::Timeout { key: k }] if *k == key),
        "timer F"
    );
    assert_eq!(layer.counts().client, 0);
}

#[test]
fn non_invite_client_over_tcp_does_not_retransmit() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    layer
        .send_request(t0, request("NOTIFY", "z9hG4bKc2"), TCP)
        .expect("sent");
    drain_transmits(&mut layer);
    assert!(run_until(&mut layer, t0, Duration::from_secs(33)).is_empty());
    assert!(matches!(
        drain_events(&mut layer).as_slice(),
        [Event::Timeout { .. }]
    ));
}

#[test]
fn non_invite_client_final_absorbs_retransmissions() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = request("MESSAGE", "z9hG4bKc3");
    let key = layer.send_request(t0, req.clone(), UDP).expect("sent");
    drain_transmits(&mut layer);
    layer
        .handle_response(t0, response_to(&req, 100), UDP)
        .expect("provisional");
    layer
        .handle_response(t0, response_to(&req, 200), UDP)
        .expect("final");
    layer
        .handle_response(t0, response_to(&req, 200), UDP)
        .expect("retransmitted final");
    let events = drain_events(&mut layer);
    assert_eq!(events.len(), 2, "provisional and one final: {events:?}");
    assert!(
        matches!(&events[1], Event::Response { key: k, response } if *k == key && response.status == 200)
    );
    assert!(
        run_until(&mut layer, t0, Duration::from_secs(4)).is_empty(),
        "no retransmission after final"
    );
    run_until(&mut layer, t0, Duration::from_secs(6));
    assert_eq!(layer.counts().client, 0, "timer K");
}

#[test]
fn invite_client_timer_a_doubles_until_b() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    layer
        .send_request(t0, request("INVITE", "z9hG4bKc4"), UDP)
        .expect("sent");
    drain_transmits(&mut layer);
    let times: Vec<u128> = run_until(&mut layer, t0, Duration::from_secs(33))
        .iter()
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(times, vec![500, 1_500, 3_500, 7_500, 15_500, 31_500]);
    assert!(matches!(
        drain_events(&mut layer).as_slice(),
        [Event::Timeout { .. }]
    ));
}

#[test]
fn invite_client_acks_non2xx_itself() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = request("INVITE", "z9hG4bKc5");
    layer.send_request(t0, req.clone(), UDP).expect("sent");
    drain_transmits(&mut layer);
    layer
        .handle_response(t0, response_to(&req, 486), UDP)
        .expect("final");
    let sent = drain_transmits(&mut layer);
    assert_eq!(sent, vec!["ACK sip:bob@example.com SIP/2.0"]);
    layer
        .handle_response(t0, response_to(&req, 486), UDP)
        .expect("retransmitted final");
    assert_eq!(drain_transmits(&mut layer).len(), 1, "ACK re-sent");
    assert_eq!(drain_events(&mut layer).len(), 1, "final reported once");
    run_until(&mut layer, t0, Duration::from_secs(33));
    assert_eq!(layer.counts().client, 0, "timer D");
}

#[test]
fn ack_built_for_non2xx_matches_the_invite() {
    let req = request("INVITE", "z9hG4bKc6");
    let ack = ack_for_non2xx(&req, &response_to(&req, 404));
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(
        ack.headers.top_via().expect("via").branch(),
        Some("z9hG4bKc6")
    );
    assert_eq!(ack.headers.cseq().expect("cseq").to_string(), "1 ACK");
    assert_eq!(ack.headers.to().expect("to").tag(), Some("b1"));
}

#[test]
fn invite_client_accepted_reports_every_2xx() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = request("INVITE", "z9hG4bKc7");
    layer.send_request(t0, req.clone(), UDP).expect("sent");
    layer
        .handle_response(t0, response_to(&req, 200), UDP)
        .expect("2xx");
    layer
        .handle_response(t0, response_to(&req, 200), UDP)
        .expect("second 2xx");
    assert_eq!(drain_events(&mut layer).len(), 2);
    run_until(&mut layer, t0, Duration::from_secs(33));
    assert_eq!(layer.counts().client, 0, "timer M");
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = request("INVITE", "z9hG4bKc8");
    let key = layer.send_request(t0, req.clone(), UDP).expect("sent");
    drain_transmits(&mut layer);
    layer.cancel(t0, &key).expect("cancel requested");
    assert!(
        drain_transmits(&mut layer).is_empty(),
        "no CANCEL before a provisional"
    );
    layer
        .handle_response(t0, response_to(&req, 180), UDP)
        .expect("ringing");
    assert_eq!(
        drain_transmits(&mut layer),
        vec!["CANCEL sip:bob@example.com SIP/2.0"]
    );
    let mut cancel_ok = response_to(&req, 200);
    cancel_ok.headers.set(crate::HeaderName::CSeq, "1 CANCEL");
    layer
        .handle_response(t0, cancel_ok, UDP)
        .expect("200 to CANCEL");
    layer
        .handle_response(t0, response_to(&req, 487), UDP)
        .expect("487");
    let events = drain_events(&mut layer);
    assert_eq!(
        events.len(),
        2,
        "180 and 487 only, the CANCEL's 200 is internal: {events:?}"
    );
    assert_eq!(
        drain_transmits(&mut layer),
        vec!["ACK sip:bob@example.com SIP/2.0"]
    );
}

#[test]
fn stray_and_malformed_responses() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = request("MESSAGE", "z9hG4bKnobody");
    layer
        .handle_response(t0, response_to(&req, 200), UDP)
        .expect("stray");
    assert!(matches!(
        drain_events(&mut layer).as_slice(),
        [Event::StrayResponse { .. }]
    ));
    let mut bad = response_to(&req, 200);
    bad.headers.remove(&crate::HeaderName::Via);
    assert_eq!(layer.handle_response(t0, bad, UDP), Err(TxError::Malformed));
}

#[test]
fn duplicate_client_branch_and_transport_failure() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let key = layer
        .send_request(t0, request("MESSAGE", "z9hG4bKc9"), UDP)
        .expect("sent");
    assert_eq!(
        layer.send_request(t0, request("MESSAGE", "z9hG4bKc9"), UDP),
        Err(TxError::Duplicate)
    );
    layer.transport_failed(&key);
    assert!(matches!(
        drain_events(&mut layer).as_slice(),
        [Event::TransportError { .. }]
    ));
    assert_eq!(layer.counts().client, 0);
}

#[test]
fn requests_without_branch_are_refused() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let mut req = request("OPTIONS", "x");
    req.headers
        .set(crate::HeaderName::Via, "SIP/2.0/UDP 192.0.2.1");
    assert_eq!(layer.handle_request(t0, req, UDP), Err(TxError::NoBranch));
}
