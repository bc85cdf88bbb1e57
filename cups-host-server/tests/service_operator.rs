//! Operator changes to a registered gateway (`gateway set`, `gateway renew`) and what the
//! gateway's next request gets — on the memory and the filesystem store.

mod service_support;

use std::sync::Arc;

use cups_core::crc::crc32;
use cups_host_server::model::{CupsAuth, GatewayRecord, TcMode};
use cups_host_server::service::{GatewaySpec, RenewSlots, ServiceError, UriChange, UriUpdate};
use cups_host_server::store::keys;
use service_support::*;

/// A request reporting `cups`/`tc` CRCs and the TC URI `tc_uri`.
fn steady(cups: u32, tc: u32, tc_uri: &str) -> Vec<u8> {
    body(
        "first-contact",
        &Report {
            cups_crc: Some(cups),
            tc_crc: Some(tc),
            tc_uri: Some(Some(tc_uri.to_owned())),
            ..Report::default()
        },
    )
}

/// Register the golden gateway, issue its credentials and confirm them; returns the CUPS
/// client certificate and the record.
async fn provisioned(f: &Fixture) -> (Vec<u8>, GatewayRecord) {
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .expect("register");
    let rec = f
        .service
        .issue_credentials(eui(), now())
        .await
        .expect("issue");
    let cups = rec.cups_cred.as_ref().unwrap().current.clone();
    let tc = rec.tc_cred.as_ref().unwrap().current.clone();
    let cert = blob_cert(&cups.blob);
    let d = decode(
        f.service
            .update_info(with_cert(&cert, steady(cups.crc, tc.crc, TC_URI)), now())
            .await,
    )
    .await;
    assert!(d.is_no_change());
    let rec = f.service.get_gateway(eui()).await.unwrap();
    assert!(
        rec.cups_cred
            .as_ref()
            .unwrap()
            .current
            .confirmed_at
            .is_some()
    );
    (cert, rec)
}

#[tokio::test]
async fn set_uris_reaches_the_next_request_and_clear_restores_the_default() {
    for backend in BACKENDS {
        let f = Fixture::new(backend);
        let (cert, rec) = provisioned(&f).await;
        let cups_crc = rec.cups_cred.as_ref().unwrap().current.crc;
        let tc_crc = rec.tc_cred.as_ref().unwrap().current.crc;

        let new_tc = "wss://lns2.example.org:8887";
        let new_cups = "https://cups2.example.org:443";
        let r = f
            .service
            .update_gateway_uris(
                eui(),
                &UriUpdate {
                    cups_uri: UriChange::Set(new_cups.into()),
                    tc_uri: UriChange::Set(new_tc.into()),
                },
            )
            .await
            .unwrap();
        assert_eq!(r.tc_uri.as_deref(), Some(new_tc));
        assert_eq!(r.cups_uri.as_deref(), Some(new_cups));
        assert_eq!(f.service.get_gateway(eui()).await.unwrap(), r, "stored");

        let d = decode(
            f.service
                .update_info(with_cert(&cert, steady(cups_crc, tc_crc, TC_URI)), now())
                .await,
        )
        .await;
        assert_eq!(d.tc_uri.as_deref(), Some(new_tc.as_bytes()), "{backend:?}");
        assert_eq!(d.cups_uri.as_deref(), Some(new_cups.as_bytes()));
        assert!(d.cups_cred.is_none() && d.tc_cred.is_none());

        // Equivalent spelling (upper-case host): nothing sent (canonical comparison).
        f.service
            .update_gateway_uris(
                eui(),
                &UriUpdate {
                    tc_uri: UriChange::Set("wss://LNS2.example.org:8887".into()),
                    ..UriUpdate::default()
                },
            )
            .await
            .unwrap();
        let body = body(
            "first-contact",
            &Report {
                cups_crc: Some(cups_crc),
                tc_crc: Some(tc_crc),
                tc_uri: Some(Some(new_tc.to_owned())),
                ..Report::default()
            },
        );
        let mut req = serde_json::from_slice::<serde_json::Value>(&body).unwrap();
        req["cupsUri"] = new_cups.into();
        let d = decode(
            f.service
                .update_info(with_cert(&cert, serde_json::to_vec(&req).unwrap()), now())
                .await,
        )
        .await;
        assert!(d.is_no_change(), "{d:?}");

        // Clearing brings back the server default; Keep leaves the other URI alone.
        let r = f
            .service
            .update_gateway_uris(
                eui(),
                &UriUpdate {
                    tc_uri: UriChange::Clear,
                    ..UriUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(r.tc_uri, None);
        assert_eq!(r.cups_uri.as_deref(), Some(new_cups));
        let d = decode(
            f.service
                .update_info(with_cert(&cert, steady(cups_crc, tc_crc, new_tc)), now())
                .await,
        )
        .await;
        assert_eq!(d.tc_uri.as_deref(), Some(TC_URI.as_bytes()));
    }
}

#[tokio::test]
async fn set_refuses_bad_uris_and_unknown_gateways() {
    let f = Fixture::new(Backend::Memory);
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    let before = f.store.get(&keys::gateway(eui())).await.unwrap().unwrap();
    for update in [
        UriUpdate {
            tc_uri: UriChange::Set("https://not-a-tc-uri:1".into()),
            ..UriUpdate::default()
        },
        UriUpdate {
            cups_uri: UriChange::Set("https://no-port".into()),
            ..UriUpdate::default()
        },
        UriUpdate {
            cups_uri: UriChange::Set(format!("https://{}:1", "a".repeat(120))),
            ..UriUpdate::default()
        },
    ] {
        assert!(matches!(
            f.service.update_gateway_uris(eui(), &update).await,
            Err(ServiceError::InvalidUri { .. })
        ));
    }
    let after = f.store.get(&keys::gateway(eui())).await.unwrap().unwrap();
    assert_eq!(before.etag, after.etag, "nothing written");
    assert!(matches!(
        f.service
            .update_gateway_uris(other_eui(), &UriUpdate::default())
            .await,
        Err(ServiceError::NotRegistered { .. })
    ));
    assert!(matches!(
        f.service
            .request_renewal(other_eui(), RenewSlots::BOTH)
            .await,
        Err(ServiceError::NotRegistered { .. })
    ));
    // Keep/Keep writes nothing.
    f.service
        .update_gateway_uris(eui(), &UriUpdate::default())
        .await
        .unwrap();
    let again = f.store.get(&keys::gateway(eui())).await.unwrap().unwrap();
    assert_eq!(before.etag, again.etag);
}

#[tokio::test]
async fn renew_mints_on_next_request_keeps_previous_until_confirmed() {
    for backend in BACKENDS {
        let f = Fixture::new(backend);
        let (cert0, rec) = provisioned(&f).await;
        let cups0 = rec.cups_cred.as_ref().unwrap().current.clone();
        let tc0 = rec.tc_cred.as_ref().unwrap().current.clone();

        let r = f
            .service
            .request_renewal(eui(), RenewSlots::BOTH)
            .await
            .unwrap();
        assert!(r.cups && r.tc);
        assert!(r.record.cups_cred.as_ref().unwrap().renew_requested);
        assert_eq!(f.service.metrics().snapshot().credentials_renewed, 0);
        // Marking twice changes nothing.
        let etag = f
            .store
            .get(&keys::gateway(eui()))
            .await
            .unwrap()
            .unwrap()
            .etag;
        f.service
            .request_renewal(eui(), RenewSlots::BOTH)
            .await
            .unwrap();
        let etag2 = f
            .store
            .get(&keys::gateway(eui()))
            .await
            .unwrap()
            .unwrap()
            .etag;
        assert_eq!(etag, etag2);

        // Next request: fresh blobs for both, stored before sent, old kept as previous.
        let d = decode(
            f.service
                .update_info(with_cert(&cert0, steady(cups0.crc, tc0.crc, TC_URI)), now())
                .await,
        )
        .await;
        let cups1 = d.cups_cred.clone().expect("renewed CUPS blob");
        let tc1 = d.tc_cred.clone().expect("renewed TC blob");
        assert_ne!(cups1, cups0.blob, "{backend:?}");
        assert_ne!(tc1, tc0.blob);
        let rec = f.service.get_gateway(eui()).await.unwrap();
        for (slot, old) in [(&rec.cups_cred, &cups0), (&rec.tc_cred, &tc0)] {
            let slot = slot.as_ref().unwrap();
            assert!(!slot.renew_requested, "cleared when minted");
            assert_eq!(slot.previous.as_ref().unwrap().crc, old.crc);
            assert!(slot.current.confirmed_at.is_none());
        }
        assert_eq!(rec.cups_cred.as_ref().unwrap().current.blob, cups1);
        assert_eq!(f.service.metrics().snapshot().credentials_renewed, 2);

        // The old certificate still authenticates; the new blob is resent, not re-minted.
        let d = decode(
            f.service
                .update_info(with_cert(&cert0, steady(cups0.crc, tc0.crc, TC_URI)), now())
                .await,
        )
        .await;
        assert_eq!(d.cups_cred.as_deref(), Some(&cups1[..]));
        assert_eq!(f.service.metrics().snapshot().credentials_renewed, 2);

        // Reporting the new CRCs confirms and drops previous; the old cert is refused after.
        let cert1 = blob_cert(&cups1);
        let new = steady(crc32(&cups1), crc32(&tc1), TC_URI);
        let d = decode(
            f.service
                .update_info(with_cert(&cert1, new.clone()), now())
                .await,
        )
        .await;
        assert!(d.is_no_change());
        let rec = f.service.get_gateway(eui()).await.unwrap();
        assert!(rec.cups_cred.as_ref().unwrap().previous.is_none());
        assert!(rec.tc_cred.as_ref().unwrap().current.confirmed_at.is_some());
        let (status, _) = rejected(&f.service.update_info(with_cert(&cert0, new), now()).await);
        assert_eq!(status, 403);
    }
}

#[tokio::test]
async fn renew_one_slot_tokens_and_unissued_slots() {
    let f = Fixture::new(Backend::Fs);
    // Token CUPS auth: renewing mints a new token; the old one works until confirmed.
    let mut spec = GatewaySpec::new(eui());
    spec.cups_auth = CupsAuth::Token;
    spec.tc_mode = TcMode::ServerAuth;
    let token = f
        .service
        .register_gateway(spec, now())
        .await
        .unwrap()
        .cups_token
        .unwrap();
    let d = decode(
        f.service
            .update_info(with_token(&token, vector_body("first-contact")), now())
            .await,
    )
    .await;
    let tc = d.tc_cred.expect("TC server-auth blob");
    let rec = f.service.get_gateway(eui()).await.unwrap();
    let cups0 = rec.cups_cred.as_ref().unwrap().current.clone();
    let r = f
        .service
        .request_renewal(
            eui(),
            RenewSlots {
                cups: true,
                tc: false,
            },
        )
        .await
        .unwrap();
    assert!(r.cups && !r.tc);
    assert!(!r.record.tc_cred.as_ref().unwrap().renew_requested);
    // Server-auth TC credentials hold no secret: asking for them marks nothing.
    let both = f
        .service
        .request_renewal(eui(), RenewSlots::BOTH)
        .await
        .unwrap();
    assert!(both.cups && !both.tc);
    let d = decode(
        f.service
            .update_info(
                with_token(&token, steady(cups0.crc, crc32(&tc), TC_URI)),
                now(),
            )
            .await,
    )
    .await;
    let cups1 = d.cups_cred.expect("new token blob");
    assert!(d.tc_cred.is_none(), "TC not renewed");
    assert_ne!(crc32(&cups1), cups0.crc);
    let rec = f.service.get_gateway(eui()).await.unwrap();
    let slot = rec.cups_cred.as_ref().unwrap();
    assert_eq!(
        slot.previous.as_ref().unwrap().token_sha256,
        cups0.token_sha256,
        "old token kept"
    );
    let new_hash = slot.current.token_sha256.clone().unwrap();
    assert!(
        f.store
            .get(&keys::token(&new_hash))
            .await
            .unwrap()
            .is_some()
    );

    // A gateway without issued credentials: nothing to mark.
    f.service
        .register_gateway(GatewaySpec::new(other_eui()), now())
        .await
        .unwrap();
    let r = f
        .service
        .request_renewal(other_eui(), RenewSlots::BOTH)
        .await
        .unwrap();
    assert!(!r.cups && !r.tc);
}

#[tokio::test]
async fn concurrent_operator_writes_all_land() {
    for backend in BACKENDS {
        let f = Arc::new(Fixture::new(backend));
        provisioned(&f).await;
        let mut tasks = Vec::new();
        for i in 0..8u16 {
            let f = Arc::clone(&f);
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    f.service
                        .update_gateway_uris(
                            eui(),
                            &UriUpdate {
                                tc_uri: UriChange::Set(format!(
                                    "wss://lns.example.org:{}",
                                    9000 + i
                                )),
                                ..UriUpdate::default()
                            },
                        )
                        .await
                        .map(|_| ())
                } else {
                    f.service
                        .request_renewal(eui(), RenewSlots::BOTH)
                        .await
                        .map(|_| ())
                }
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let rec = f.service.get_gateway(eui()).await.unwrap();
        assert!(
            rec.cups_cred.as_ref().unwrap().renew_requested,
            "{backend:?}"
        );
        assert!(
            rec.tc_uri
                .as_deref()
                .unwrap()
                .starts_with("wss://lns.example.org:900")
        );
    }
}

#[test]
fn records_without_the_renewal_flag_still_load_and_unflagged_ones_omit_it() {
    let f = Fixture::new(Backend::Memory);
    let mut rec = GatewayRecord::new(eui(), CupsAuth::ClientCert, TcMode::ClientCert, now());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let minted = rt.block_on(async {
        f.service
            .register_gateway(GatewaySpec::new(eui()), now())
            .await
            .unwrap();
        f.service.issue_credentials(eui(), now()).await.unwrap()
    });
    rec.cups_cred = minted.cups_cred;
    let json = serde_json::to_string(&rec).unwrap();
    assert!(!json.contains("renew_requested"), "unchanged format");
    let back: GatewayRecord = serde_json::from_str(&json).unwrap();
    assert!(!back.cups_cred.as_ref().unwrap().renew_requested);
    rec.cups_cred.as_mut().unwrap().renew_requested = true;
    let json = serde_json::to_string(&rec).unwrap();
    assert!(json.contains("\"renew_requested\":true"));
    let back: GatewayRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rec);
}
