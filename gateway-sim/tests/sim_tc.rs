//! The TC (LNS) side: the `lns` endpoint over real loopback sockets with a plain blocking
//! WebSocket client, and simulated fleets proving their TC credentials against it (client
//! certificate and token mode), wrong credentials, and an LNS outage.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{CupsResponse, DeviceCa, Golden, TestServer};
use cups_core::Eui64;
use cups_core::station::{CredFile, CredKind, FileId, FileSet, MemStore};
use gateway_sim::lns::{LnsAuth, LnsConfig, LnsEvent, LnsServer};
use gateway_sim::net::Routes;
use gateway_sim::ws::{self, Opcode};
use gateway_sim::{Fleet, FleetConfig, RunResult};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivateSec1KeyDer, ServerName};

const BUDGET: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const ROUTER_CONFIG: &str = r#"{"msgtype":"router_config","region":"EU863"}"#;

fn first_eui() -> Eui64 {
    Eui64::new(0x0016_c001_ff10_0000).unwrap()
}

fn eui(i: u32) -> Eui64 {
    Eui64::new(first_eui().as_u64() + u64::from(i)).unwrap()
}

fn token_for(e: Eui64) -> String {
    format!("Bearer tok-{}", e.canonical())
}

/// The golden server identity (CN=localhost), device-CA client roots, tokens `tok-<eui>`.
fn lns_config(g: &Golden, ca: &DeviceCa) -> LnsConfig {
    let mut cfg = LnsConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        "localhost",
        vec![CertificateDer::from(g.server_der.clone())],
        PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(g.server_key_der.clone())),
    );
    cfg.client_roots = vec![CertificateDer::from(ca.cert_der.clone())];
    cfg.token_check = Some(Arc::new(|value: &str| {
        value
            .strip_prefix("Bearer tok-")
            .and_then(|e| Eui64::parse(e).ok())
    }));
    cfg
}

// ---------------------------------------------------------------------------------------
// A blocking WebSocket client over rustls, against the LNS.

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(
    g: &Golden,
    addr: SocketAddr,
    client: Option<(Vec<u8>, Vec<u8>)>,
) -> std::io::Result<Tls> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(g.ca_der.clone())).unwrap();
    let b = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        Some((cert, key)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(key)),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let conn = ClientConnection::new(
        Arc::new(cfg),
        ServerName::try_from("localhost".to_owned()).unwrap(),
    )
    .unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Upgrade on `path`; `Ok(rest)` = bytes after the head, `Err(status)` if refused.
fn upgrade(s: &mut Tls, path: &str, extra: &[u8]) -> Result<Vec<u8>, u16> {
    let key = ws::client_key([9; 16]);
    let mut req = Vec::new();
    ws::write_client_request(&mut req, "localhost:1", path, &key, extra);
    s.write_all(&req).unwrap();
    s.flush().unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match ws::parse_response(&buf, &key) {
            Ok(Some(n)) => return Ok(buf[n..].to_vec()),
            Ok(None) => {}
            Err(ws::HandshakeError::Status { status }) => return Err(status),
            Err(e) => panic!("{e}"),
        }
        let n = s.read(&mut chunk).unwrap_or(0);
        assert!(n > 0, "closed during upgrade");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn send_text(s: &mut Tls, text: &str) {
    let mut out = Vec::new();
    ws::encode_frame(&mut out, Opcode::Text, text.as_bytes(), Some([1, 2, 3, 4])).unwrap();
    s.write_all(&out).unwrap();
    s.flush().unwrap();
}

fn read_frame(s: &mut Tls, buf: &mut Vec<u8>) -> Option<ws::Frame> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((f, n)) = ws::decode_frame(buf, 1 << 16).unwrap() {
            buf.drain(..n);
            assert!(!f.masked, "server frames are unmasked");
            return Some(f);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn json(f: &ws::Frame) -> serde_json::Value {
    assert_eq!(f.opcode, Opcode::Text);
    serde_json::from_slice(&f.payload).unwrap()
}

fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn lns_router_info_muxs_and_refusals_over_real_sockets() {
    let g = Golden::load();
    let ca = DeviceCa::new();
    let mut cfg = lns_config(&g, &ca);
    cfg.router_config = Some(ROUTER_CONFIG.into());
    cfg.routers = Some((0..4).map(eui).collect::<BTreeSet<_>>());
    let lns = LnsServer::start(cfg).unwrap();
    let addr = lns.local_addr();
    let e0 = eui(0);
    let creds = ca.mint(e0);

    // Client certificate: router-info (ID6 form), then muxs + version, router_config back.
    let mut s = connect(&g, addr, Some(creds.clone())).unwrap();
    let mut buf = upgrade(&mut s, "/router-info", b"").unwrap();
    send_text(&mut s, &format!("{{\"router\":\"{}\"}}", e0.id6()));
    let answer = json(&read_frame(&mut s, &mut buf).unwrap());
    assert_eq!(answer["router"], e0.id6().to_string());
    assert_eq!(answer["muxs"], "muxs-::0");
    let uri = answer["uri"].as_str().unwrap().to_owned();
    assert_eq!(
        uri,
        format!("wss://localhost:{}/traffic/{}", addr.port(), e0.id6())
    );
    let close = read_frame(&mut s, &mut buf).unwrap();
    assert_eq!(close.opcode, Opcode::Close);
    drop(s);

    let path = uri
        .split_once(&format!("{}", addr.port()))
        .unwrap()
        .1
        .to_owned();
    let mut s = connect(&g, addr, Some(creds.clone())).unwrap();
    let mut buf = upgrade(&mut s, &path, b"").unwrap();
    send_text(
        &mut s,
        r#"{"msgtype":"version","station":"2.0.6(test)","protocol":2}"#,
    );
    let rc = json(&read_frame(&mut s, &mut buf).unwrap());
    assert_eq!(rc["msgtype"], "router_config");
    // Ping is answered.
    let mut ping = Vec::new();
    ws::encode_frame(&mut ping, Opcode::Ping, b"p", Some([5; 4])).unwrap();
    s.write_all(&ping).unwrap();
    let pong = read_frame(&mut s, &mut buf).unwrap();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (Opcode::Pong, &b"p"[..])
    );
    let stats = lns.gateways()[&e0].clone();
    assert_eq!(
        (
            stats.router_info,
            stats.muxs,
            stats.rejected,
            stats.connected
        ),
        (1, 1, 0, true)
    );
    assert_eq!(stats.auth, Some(LnsAuth::ClientCert));
    assert_eq!(stats.last_version.as_deref(), Some("2.0.6(test)"));
    // Client close → server close → stats say closed.
    let mut close = Vec::new();
    ws::encode_frame(
        &mut close,
        Opcode::Close,
        &1000u16.to_be_bytes(),
        Some([7; 4]),
    )
    .unwrap();
    s.write_all(&close).unwrap();
    assert_eq!(read_frame(&mut s, &mut buf).unwrap().opcode, Opcode::Close);
    assert!(wait_for(|| !lns.gateways()[&e0].connected));

    // Token mode, router as 16 hex digits and as an integer: the answer echoes it.
    let e1 = eui(1);
    let tok = format!("Authorization: {}\r\n", token_for(e1));
    for router in [
        serde_json::json!(e1.canonical().to_string()),
        serde_json::json!(e1.as_u64()),
    ] {
        let mut s = connect(&g, addr, None).unwrap();
        let mut buf = upgrade(&mut s, "/router-info", tok.as_bytes()).unwrap();
        send_text(&mut s, &serde_json::json!({ "router": router }).to_string());
        let answer = json(&read_frame(&mut s, &mut buf).unwrap());
        assert_eq!(answer["router"], router);
        assert!(
            answer["uri"]
                .as_str()
                .unwrap()
                .ends_with(&e1.id6().to_string())
        );
    }
    assert_eq!(lns.gateways()[&e1].auth, Some(LnsAuth::Token));

    // A certificate naming another router: router-info error.
    let mut s = connect(&g, addr, Some(creds.clone())).unwrap();
    let mut buf = upgrade(&mut s, "/router-info", b"").unwrap();
    send_text(&mut s, &format!("{{\"router\":\"{}\"}}", eui(2).id6()));
    let answer = json(&read_frame(&mut s, &mut buf).unwrap());
    assert!(answer["error"].as_str().unwrap().contains("not authorised"));
    assert!(answer.get("uri").is_none());
    assert_eq!(lns.gateways()[&eui(2)].rejected, 1);
    // An unknown router (not in `routers`), authenticated by its own certificate.
    let e9 = eui(9);
    let mut s = connect(&g, addr, Some(ca.mint(e9))).unwrap();
    let mut buf = upgrade(&mut s, "/router-info", b"").unwrap();
    send_text(&mut s, &format!("{{\"router\":\"{}\"}}", e9.id6()));
    let answer = json(&read_frame(&mut s, &mut buf).unwrap());
    assert_eq!(answer["error"], "unknown router");
    // Muxs path for another router than the certificate's: 403.
    let mut s = connect(&g, addr, Some(creds.clone())).unwrap();
    assert_eq!(
        upgrade(&mut s, &format!("/traffic/{}", eui(3).id6()), b""),
        Err(403)
    );
    // A wrong token, no credentials at all, an unknown path.
    let mut s = connect(&g, addr, None).unwrap();
    assert_eq!(
        upgrade(&mut s, "/router-info", b"Authorization: Bearer nope\r\n"),
        Err(403)
    );
    let mut s = connect(&g, addr, None).unwrap();
    assert_eq!(upgrade(&mut s, "/router-info", b""), Err(403));
    let mut s = connect(&g, addr, Some(creds.clone())).unwrap();
    assert_eq!(upgrade(&mut s, "/nope", b""), Err(404));
    let events = lns.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LnsEvent::Rejected { reason, .. } if reason == "token refused"))
    );
    assert!(events.iter().any(|e| matches!(
        e,
        LnsEvent::MuxsConnected { auth: LnsAuth::ClientCert, version, .. } if version == "2.0.6(test)"
    )));

    // A certificate from another CA: the TLS handshake fails.
    let other = DeviceCa::new();
    assert!(connect(&g, addr, Some(other.mint(e0))).is_err());

    // Outage: open sockets are closed, new connections are closed after accept.
    let mut s = connect(&g, addr, Some(creds.clone())).unwrap();
    let mut buf = upgrade(&mut s, &path, b"").unwrap();
    send_text(&mut s, r#"{"msgtype":"version","station":"x"}"#);
    let _router_config = read_frame(&mut s, &mut buf).unwrap();
    lns.set_available(false);
    assert!(read_frame(&mut s, &mut buf).is_none());
    assert!(connect(&g, addr, Some(creds.clone())).is_err());
    lns.set_available(true);
    assert!(connect(&g, addr, Some(creds)).is_ok());
    lns.stop();
}

// ---------------------------------------------------------------------------------------
// Fleets.

/// How gateway `i` authenticates to the LNS.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Cert,
    Token,
    WrongCert,
    WrongToken,
}

/// A home: CUPS bootstrap files (golden) + the TC set for `mode`, pointing at `tc_uri`.
fn home(g: &Golden, ca: &DeviceCa, cups_uri: &str, tc_uri: &str, e: Eui64, mode: Mode) -> MemStore {
    let f = |file| FileId::cred(CredKind::Tc, FileSet::Reg, file);
    let store = g
        .home(cups_uri)
        .with(f(CredFile::Uri), tc_uri)
        .with(f(CredFile::Trust), g.ca_pem.clone());
    match mode {
        Mode::Cert | Mode::WrongCert => {
            let who = if mode == Mode::Cert {
                e
            } else {
                Eui64::new(e.as_u64() ^ 0xFFFF).unwrap()
            };
            let (cert, key) = ca.mint(who);
            store
                .with(f(CredFile::Cert), cert)
                .with(f(CredFile::Key), key)
        }
        Mode::Token => store.with(
            f(CredFile::Key),
            format!("Authorization: {}\n", token_for(e)),
        ),
        Mode::WrongToken => store.with(f(CredFile::Key), "Authorization: Bearer wrong\n"),
    }
}

struct Setup {
    fleet: Fleet,
    lns: LnsServer,
    cups: TestServer,
}

fn setup(n: u32, mode: impl Fn(u32) -> Mode) -> Setup {
    let g = Golden::load();
    let ca = DeviceCa::new();
    let cups = TestServer::start(g.server_tls(&[]), |_| CupsResponse::nochange());
    let lns = LnsServer::start(lns_config(&g, &ca)).unwrap();
    let cups_uri = cups.uri();
    let tc_uri = format!("wss://localhost:{}", lns.local_addr().port());
    let mut config = FleetConfig::new(n, 5, cups.addr);
    config.tc_connect = true;
    let mut fleet = Fleet::new(config, |id| {
        home(&g, &ca, &cups_uri, &tc_uri, id.eui, mode(id.index))
    })
    .unwrap();
    fleet.set_routes(Routes::same_port("127.0.0.1".parse().unwrap()).unwrap());
    Setup { fleet, lns, cups }
}

#[test]
fn fleet_proves_tc_credentials_cert_and_token_and_wrong_ones_fail() {
    const N: u32 = 64;
    // 0..50 client cert, 50..60 token, 60..62 a certificate for another EUI, 62..64 a wrong token.
    let mode = |i: u32| match i {
        0..50 => Mode::Cert,
        50..60 => Mode::Token,
        60..62 => Mode::WrongCert,
        _ => Mode::WrongToken,
    };
    let Setup {
        mut fleet,
        lns,
        cups,
        ..
    } = setup(N, mode);
    let good = 60;
    let r = fleet.run_until(
        |f| {
            f.tc_connected_count() == good
                && f.gateways()
                    .skip(good as usize)
                    .all(|g| g.outcome().tc_failures >= 1)
        },
        BUDGET,
    );
    let report = fleet.report();
    assert_eq!(r, RunResult::Done, "{}", report.summary_table());
    let stats = lns.gateways();
    for gw in fleet.gateways() {
        let id = gw.id();
        let o = gw.outcome();
        match mode(id.index) {
            Mode::Cert | Mode::Token => {
                assert!(
                    o.tc_connected && o.tc_sessions == 1 && o.tc_failures == 0,
                    "{o:?}"
                );
                assert!(gw.station().tc_connected());
                let s = &stats[&id.eui];
                let auth = if mode(id.index) == Mode::Cert {
                    LnsAuth::ClientCert
                } else {
                    LnsAuth::Token
                };
                assert_eq!((s.router_info, s.muxs, s.rejected), (1, 1, 0), "{s:?}");
                assert_eq!(s.auth, Some(auth));
                assert_eq!(
                    s.last_version.as_deref(),
                    Some(gateway_sim::STATION_VERSION)
                );
            }
            Mode::WrongCert => {
                assert!(
                    !o.tc_connected && o.tc_sessions == 0 && o.tc_failures >= 1,
                    "{o:?}"
                );
                // Rejected at router-info: the station gives up at once and asks CUPS.
                assert!(
                    o.history.iter().any(|h| h == "TC fail rejected -> CUPS"),
                    "{o:?}"
                );
                assert!(stats[&id.eui].rejected >= 1);
            }
            Mode::WrongToken => {
                assert!(!o.tc_connected && o.tc_failures >= 1, "{o:?}");
                assert!(!stats.contains_key(&id.eui));
            }
        }
    }
    let s = &report.summary;
    assert_eq!(s.tc_connected, good);
    assert_eq!(s.tc_sessions, u64::from(good));
    assert!(s.tc_failures >= 4);
    assert!(s.tc_bytes_tx > 0 && s.tc_bytes_rx > 0);
    assert!(report.summary_table().contains("lns (tc)"));
    assert!(report.outcome_snapshot().contains(" lns=1/0/up"));
    // Every gateway did its boot CUPS interaction (and, TC up, no other in the first minute).
    assert!(cups.requests().len() >= N as usize);
    lns.stop();
}

/// CUPS interactions per gateway during `d` of station time.
fn cups_per_gateway(fleet: &mut Fleet, d: Duration) -> f64 {
    let before = fleet.report().summary.requests;
    let r = fleet.run_for(d, BUDGET);
    assert_eq!(r, RunResult::Done, "{}", fleet.report().summary_table());
    let after = fleet.report().summary.requests;
    (after - before) as f64 / fleet.len() as f64
}

#[test]
fn lns_outage_falls_back_to_cups_polling_and_recovers() {
    const N: u32 = 12;
    let Setup { mut fleet, lns, .. } =
        setup(N, |i| if i % 2 == 0 { Mode::Cert } else { Mode::Token });
    let r = fleet.run_until(|f| f.tc_connected_count() == N, BUDGET);
    assert_eq!(r, RunResult::Done, "{}", fleet.report().summary_table());

    // TC up: CUPS is on its 24 h interval.
    let up = cups_per_gateway(&mut fleet, HOUR);
    assert!(up <= 1.0, "{up} CUPS interactions per gateway with TC up");
    assert_eq!(fleet.tc_connected_count(), N);

    // LNS outage: sessions drop, attempts fail, after the station's retries CUPS is asked.
    lns.set_available(false);
    fleet.drop_tc_sessions();
    assert_eq!(fleet.tc_connected_count(), 0);
    let down = cups_per_gateway(&mut fleet, HOUR);
    let report = fleet.report();
    eprintln!("CUPS interactions per gateway and hour: TC up {up}, LNS down {down}");
    assert!(
        down >= 5.0,
        "{down} CUPS interactions per gateway with the LNS down"
    );
    assert_eq!(report.summary.tc_connected, 0);
    for gw in fleet.gateways() {
        let o = gw.outcome();
        assert!(
            o.tc_failures >= 2 * gateway_sim::tc::TC_MAX_RETRIES,
            "{o:?}"
        );
        assert!(!o.tc_connected);
    }

    // The LNS comes back: every gateway reconnects (within one backoff cycle).
    lns.set_available(true);
    let r = fleet.run_until(|f| f.tc_connected_count() == N, BUDGET);
    assert_eq!(r, RunResult::Done, "{}", fleet.report().summary_table());
    for (e, s) in lns.gateways() {
        assert!(s.muxs >= 2, "{e}: {s:?}");
    }
    let after = cups_per_gateway(&mut fleet, HOUR);
    assert!(
        after <= 1.0,
        "{after} CUPS interactions per gateway after recovery"
    );
    lns.stop();
}

#[test]
fn tc_credentials_from_cups_connect_and_a_tc_update_reconnects_at_once() {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use cups_core::crc::crc32;
    use cups_core::response::ResponseParts;

    const N: u32 = 16;
    let g = Arc::new(Golden::load());
    let ca = Arc::new(DeviceCa::new());
    let lns = LnsServer::start(lns_config(&g, &ca)).unwrap();
    let tc_uri = format!("wss://localhost:{}", lns.local_addr().port());
    // The TC blob of (router, generation): golden CA trust, a client cert minted for the router.
    let generation = Arc::new(AtomicU32::new(0));
    type Blobs = Mutex<HashMap<(Eui64, u32), Vec<u8>>>;
    let blobs: Arc<Blobs> = Arc::default();
    let cups = {
        let (g, ca, generation, blobs, tc_uri) = (
            g.clone(),
            ca.clone(),
            generation.clone(),
            blobs.clone(),
            tc_uri.clone(),
        );
        TestServer::start(g.server_tls(&[]), move |req| {
            let key = (req.router, generation.load(Ordering::SeqCst));
            let blob = blobs
                .lock()
                .unwrap()
                .entry(key)
                .or_insert_with(|| {
                    let (cert, k) = ca.mint(req.router);
                    common::blob(&g.ca_der, &cert, &k)
                })
                .clone();
            let tc_cred = (req.tc_crc != crc32(&blob)).then_some(&blob[..]);
            let uri = (req.tc_uri.as_deref() != Some(tc_uri.as_str())).then_some(tc_uri.as_str());
            CupsResponse::encode(
                &ResponseParts {
                    tc_uri: uri,
                    tc_cred,
                    ..ResponseParts::default()
                },
                &[],
            )
        })
    };
    let cups_uri = cups.uri();
    let mut config = FleetConfig::new(N, 9, cups.addr);
    config.tc_connect = true;
    // Homes without any TC file: CUPS provides them.
    let mut fleet = Fleet::new(config, |_| g.home(&cups_uri)).unwrap();
    fleet.set_routes(Routes::same_port("127.0.0.1".parse().unwrap()).unwrap());
    let r = fleet.run_until(|f| f.tc_connected_count() == N, BUDGET);
    assert_eq!(r, RunResult::Done, "{}", fleet.report().summary_table());
    for gw in fleet.gateways() {
        let o = gw.outcome();
        assert_eq!(
            (o.tc_restarts, o.tc_sessions, o.tc_failures),
            (1, 1, 0),
            "{o:?}"
        );
        assert_eq!(o.tc_uri.as_deref(), Some(tc_uri.as_str()));
        assert_eq!(o.history.last().map(String::as_str), Some("TC ok"), "{o:?}");
    }

    // New TC credentials: the next CUPS interaction stores them and TC restarts at once.
    generation.store(1, Ordering::SeqCst);
    for i in 0..N {
        fleet.with_station(i, |s, now| s.trigger(now, Some(Duration::ZERO)));
    }
    let r = fleet.run_until(
        |f| {
            f.gateways()
                .all(|g| g.outcome().tc_sessions == 2 && g.outcome().tc_connected)
        },
        BUDGET,
    );
    assert_eq!(r, RunResult::Done, "{}", fleet.report().summary_table());
    for gw in fleet.gateways() {
        let o = gw.outcome();
        assert_eq!((o.tc_restarts, o.tc_failures), (2, 0), "{o:?}");
        let s = &lns.gateways()[&gw.id().eui];
        assert_eq!(
            (s.router_info, s.muxs, s.auth),
            (2, 2, Some(LnsAuth::ClientCert))
        );
    }
    lns.stop();
}

#[test]
fn lns_closes_an_idle_muxs_connection() {
    let g = Golden::load();
    let ca = DeviceCa::new();
    let mut cfg = lns_config(&g, &ca);
    cfg.idle_timeout = Some(Duration::from_millis(300));
    let lns = LnsServer::start(cfg).unwrap();
    let e = eui(5);
    let mut s = connect(&g, lns.local_addr(), Some(ca.mint(e))).unwrap();
    let mut buf = upgrade(&mut s, &format!("/traffic/{}", e.id6()), b"").unwrap();
    send_text(&mut s, r#"{"msgtype":"version","station":"idle"}"#);
    let t0 = Instant::now();
    let close = read_frame(&mut s, &mut buf).unwrap();
    assert_eq!(close.opcode, Opcode::Close);
    assert!(t0.elapsed() >= Duration::from_millis(250));
    assert!(wait_for(|| !lns.gateways()[&e].connected));
    assert!(
        lns.events()
            .iter()
            .any(|ev| matches!(ev, LnsEvent::Closed { .. }))
    );
    lns.stop();
}

#[test]
fn same_seed_same_tc_outcome() {
    let snapshot = || {
        let Setup { mut fleet, lns, .. } = setup(10, |i| match i % 4 {
            0 | 1 => Mode::Cert,
            2 => Mode::Token,
            _ => Mode::WrongToken,
        });
        // 5 s of station time: the boot CUPS interaction, TC, and for a wrong token two
        // failures (backoff 0, then 10 s).
        let r = fleet.run_for(Duration::from_secs(5), BUDGET);
        assert_eq!(r, RunResult::Done, "{}", fleet.report().summary_table());
        assert_eq!(fleet.tc_connected_count(), 8);
        let port = lns.local_addr().port().to_string();
        lns.stop();
        // Certificates are minted per run: their CRCs differ, the rest must not.
        fleet
            .report()
            .outcome_snapshot()
            .replace(&port, "PORT")
            .split(' ')
            .filter(|t| !t.starts_with("tcc="))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (a, b) = (snapshot(), snapshot());
    assert!(
        a.contains("lns=1/0/up") && a.contains("lns=0/2/down"),
        "{a}"
    );
    assert_eq!(a, b);
}
