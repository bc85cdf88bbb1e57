//! The credential life cycle through `Service::update_info`: first contact, confirmation,
//! bootstrap closing, renewal, token mode — on the memory and the filesystem store.

mod service_support;

use cups_core::crc::crc32;
use cups_core::cred::{BlobForm, SafeBlob, check_station_safe};
use cups_host_server::model::{CupsAuth, TcMode, TokenEntry, TokenUsage};
use cups_host_server::pki;
use cups_host_server::service::{GatewaySpec, RequestOutcome};
use cups_host_server::store::keys;
use service_support::*;
use time::Duration;

/// Register the golden gateway with client certificates for CUPS and TC.
async fn register_cert_gateway(f: &Fixture) {
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .expect("register");
}

#[tokio::test]
async fn first_contact_sends_both_blobs_then_no_change_and_confirmation() {
    for backend in BACKENDS {
        let f = Fixture::new(backend);
        register_cert_gateway(&f).await;
        let t0 = now();

        // First contact with the fleet-wide bootstrap token: both credential sets + TC URI.
        let first = f
            .service
            .update_info(
                with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                t0,
            )
            .await;
        let d = decode(first).await;
        assert_eq!(
            d.cups_uri, None,
            "{backend:?}: reported CUPS URI is the target"
        );
        assert_eq!(d.tc_uri.as_deref(), Some(TC_URI.as_bytes()));
        let cups = d.cups_cred.clone().expect("CUPS credentials");
        let tc = d.tc_cred.clone().expect("TC credentials");
        for blob in [&cups, &tc] {
            let info = check_station_safe(blob).expect("station-safe");
            assert_eq!(info.form, BlobForm::Mtls);
        }
        // CUPS trust anchors the server certificate; TC trust is the gateway CA.
        assert_eq!(
            SafeBlob::new(&cups).unwrap().trust(),
            f.pki.trust_der(pki::ClientUsage::Cups)
        );
        assert_eq!(
            SafeBlob::new(&tc).unwrap().trust(),
            f.pki.trust_der(pki::ClientUsage::Tc)
        );
        // The client certificates name the gateway.
        let cups_cert = blob_cert(&cups);
        assert_eq!(pki::identity_from_cert(&cups_cert).unwrap().eui, eui());
        assert_eq!(pki::identity_from_cert(&blob_cert(&tc)).unwrap().eui, eui());

        // Stored before sent, CRC = crc32(blob).
        let rec = f.service.get_gateway(eui()).await.expect("record");
        let cups_slot = rec.cups_cred.as_ref().expect("cups slot");
        let tc_slot = rec.tc_cred.as_ref().expect("tc slot");
        assert_eq!(cups_slot.current.blob, cups);
        assert_eq!(tc_slot.current.blob, tc);
        assert_eq!(cups_slot.current.crc, crc32(&cups));
        assert_eq!(tc_slot.current.crc, crc32(&tc));
        assert!(cups_slot.current.confirmed_at.is_none());
        assert!(
            rec.bootstrap_open(),
            "bootstrap credentials do not close bootstrap"
        );

        // The same first request again (response lost): the same blobs, nothing new minted.
        let again = decode(
            f.service
                .update_info(
                    with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                    t0,
                )
                .await,
        )
        .await;
        assert_eq!(again.cups_cred.as_deref(), Some(&cups[..]));
        assert_eq!(again.tc_cred.as_deref(), Some(&tc[..]));

        // Second request with the new certificate, reporting the blob CRCs: nothing to do,
        // rotation confirmed, bootstrap closed.
        let t1 = t0 + Duration::minutes(1);
        let steady = body(
            "first-contact",
            &Report {
                cups_crc: Some(crc32(&cups)),
                tc_crc: Some(crc32(&tc)),
                tc_uri: Some(Some(TC_URI.to_owned())),
                ..Report::default()
            },
        );
        let second = decode(
            f.service
                .update_info(with_cert(&cups_cert, steady.clone()), t1)
                .await,
        )
        .await;
        assert!(second.is_no_change(), "{backend:?}: {second:?}");
        let rec = f.service.get_gateway(eui()).await.expect("record");
        assert_eq!(rec.own_creds_used_at, Some(t1));
        assert!(!rec.bootstrap_open());
        for slot in [&rec.cups_cred, &rec.tc_cred] {
            let slot = slot.as_ref().unwrap();
            assert_eq!(slot.current.confirmed_at, Some(t1));
            assert!(slot.previous.is_none());
        }
        let m = f.service.metrics().snapshot();
        assert_eq!(m.credentials_minted, 2);
        assert_eq!(m.credentials_confirmed, 2);
        assert_eq!(m.credentials_renewed, 0);
        assert_eq!(f.service.metrics().requests(RequestOutcome::Updated), 2);
        assert_eq!(f.service.metrics().requests(RequestOutcome::NoChange), 1);

        // Bootstrap is closed now.
        let (status, reason) = rejected(
            &f.service
                .update_info(
                    with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                    t1,
                )
                .await,
        );
        assert_eq!(status, 403);
        assert!(reason.contains("bootstrap access"), "{reason}");

        // The steady state stays quiet.
        let third = decode(
            f.service
                .update_info(with_cert(&cups_cert, steady), t1)
                .await,
        )
        .await;
        assert!(third.is_no_change());
    }
}

#[tokio::test]
async fn bootstrap_certificate_first_contact_and_closing() {
    for backend in BACKENDS {
        let f = Fixture::new(backend);
        register_cert_gateway(&f).await;
        let t0 = now();
        // A fleet-wide factory certificate (no EUI) and one naming the gateway both work.
        for cn in ["factory fleet 7", EUI_HEX] {
            let factory = leaf(&f.factory, cn);
            let d = decode(
                f.service
                    .update_info(with_cert(&factory, vector_body("first-contact")), t0)
                    .await,
            )
            .await;
            assert!(
                d.cups_cred.is_some() && d.tc_cred.is_some(),
                "{backend:?} {cn}"
            );
        }
        // A factory certificate naming another gateway is refused.
        let wrong = leaf(&f.factory, OTHER_HEX);
        let (status, reason) = rejected(
            &f.service
                .update_info(with_cert(&wrong, vector_body("first-contact")), t0)
                .await,
        );
        assert_eq!(status, 403);
        assert!(reason.contains(OTHER_HEX), "{reason}");

        // Own certificate used once: the factory certificate is refused from then on.
        let rec = f.service.get_gateway(eui()).await.unwrap();
        let own = blob_cert(&rec.cups_cred.as_ref().unwrap().current.blob);
        let d = decode(
            f.service
                .update_info(with_cert(&own, vector_body("first-contact")), t0)
                .await,
        )
        .await;
        assert!(d.cups_cred.is_some(), "CRC still differs: resent");
        let factory = leaf(&f.factory, "factory fleet 7");
        let (status, _) = rejected(
            &f.service
                .update_info(with_cert(&factory, vector_body("first-contact")), t0)
                .await,
        );
        assert_eq!(status, 403);
    }
}

#[tokio::test]
async fn renewal_within_min_valid_days_keeps_previous_until_confirmed() {
    for backend in BACKENDS {
        let f = Fixture::new(backend);
        register_cert_gateway(&f).await;
        let t0 = now();
        // Provision (as `gateway export` does) and confirm.
        let rec = f.service.issue_credentials(eui(), t0).await.expect("issue");
        let cups0 = rec.cups_cred.as_ref().unwrap().current.clone();
        let tc0 = rec.tc_cred.as_ref().unwrap().current.clone();
        let cert0 = blob_cert(&cups0.blob);
        let steady = |cups: u32, tc: u32| {
            body(
                "first-contact",
                &Report {
                    cups_crc: Some(cups),
                    tc_crc: Some(tc),
                    tc_uri: Some(Some(TC_URI.to_owned())),
                    ..Report::default()
                },
            )
        };
        let d = decode(
            f.service
                .update_info(with_cert(&cert0, steady(cups0.crc, tc0.crc)), t0)
                .await,
        )
        .await;
        assert!(d.is_no_change());

        // 340 days later (25 left < 30): both certificates are renewed, stored, and sent.
        let later = t0 + Duration::days(340);
        let d = decode(
            f.service
                .update_info(with_cert(&cert0, steady(cups0.crc, tc0.crc)), later)
                .await,
        )
        .await;
        let cups1 = d.cups_cred.clone().expect("renewed CUPS blob");
        let tc1 = d.tc_cred.clone().expect("renewed TC blob");
        assert_ne!(cups1, cups0.blob);
        assert_ne!(tc1, tc0.blob);
        let rec = f.service.get_gateway(eui()).await.unwrap();
        let slot = rec.cups_cred.as_ref().unwrap();
        assert_eq!(slot.current.blob, cups1, "stored before sent");
        let prev = slot.previous.as_ref().expect("previous kept");
        assert_eq!(prev.crc, cups0.crc);
        assert_eq!(prev.serial, cups0.serial);
        assert!(slot.current.not_after.unwrap() > later + Duration::days(300));
        assert_eq!(f.service.metrics().snapshot().credentials_renewed, 2);

        // The old certificate still works until the rotation is confirmed (the new blob is
        // resent, not re-minted).
        let d = decode(
            f.service
                .update_info(with_cert(&cert0, steady(cups0.crc, tc0.crc)), later)
                .await,
        )
        .await;
        assert_eq!(d.cups_cred.as_deref(), Some(&cups1[..]));
        assert_eq!(f.service.metrics().snapshot().credentials_renewed, 2);

        // Confirmation with the new certificate drops the previous one...
        let cert1 = blob_cert(&cups1);
        let d = decode(
            f.service
                .update_info(with_cert(&cert1, steady(crc32(&cups1), crc32(&tc1))), later)
                .await,
        )
        .await;
        assert!(d.is_no_change());
        let rec = f.service.get_gateway(eui()).await.unwrap();
        let slot = rec.cups_cred.as_ref().unwrap();
        assert!(slot.previous.is_none());
        assert_eq!(slot.current.confirmed_at, Some(later));
        // ...and the old certificate is refused from then on.
        let (status, reason) = rejected(
            &f.service
                .update_info(with_cert(&cert0, steady(crc32(&cups1), crc32(&tc1))), later)
                .await,
        );
        assert_eq!(status, 403, "{reason}");
        assert!(reason.contains("serial"), "{reason}");
    }
}

#[tokio::test]
async fn token_mode_blobs_and_index() {
    for backend in BACKENDS {
        let f = Fixture::new(backend);
        let mut spec = GatewaySpec::new(eui());
        spec.cups_auth = CupsAuth::Token;
        spec.tc_mode = TcMode::Token;
        let reg = f
            .service
            .register_gateway(spec, now())
            .await
            .expect("register");
        let token = reg.cups_token.clone().expect("token shown once");
        assert!(
            !format!("{reg:?}").contains(&token),
            "Debug redacts the token"
        );
        let sha = pki::token_sha256_hex(&token);
        let entry = f
            .store
            .get(&keys::token(&sha))
            .await
            .unwrap()
            .expect("index entry");
        let entry: TokenEntry = serde_json::from_slice(&entry.bytes).unwrap();
        assert_eq!((entry.eui, entry.usage), (eui(), TokenUsage::Cups));
        // Only the hash is in the index.
        let raw = f.store.get(&keys::token(&sha)).await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw.bytes).contains(&token));

        let d = decode(
            f.service
                .update_info(with_token(&token, vector_body("first-contact")), now())
                .await,
        )
        .await;
        let cups = d.cups_cred.expect("CUPS token blob");
        let safe = SafeBlob::new(&cups).expect("station-safe");
        assert_eq!(safe.form(), BlobForm::Token);
        assert_eq!(safe.key(), pki::bearer_header_lines(&token).as_slice());
        let tc = d.tc_cred.expect("TC token blob");
        let tc_safe = SafeBlob::new(&tc).expect("station-safe");
        assert_eq!(tc_safe.form(), BlobForm::Token);
        // The TC token is indexed as an LNS token and is no CUPS credential.
        let rec = f.service.get_gateway(eui()).await.unwrap();
        assert!(
            rec.own_creds_used_at.is_some(),
            "own token closes bootstrap"
        );
        let tc_sha = rec
            .tc_cred
            .as_ref()
            .unwrap()
            .current
            .token_sha256
            .clone()
            .unwrap();
        let tc_entry = f
            .store
            .get(&keys::token(&tc_sha))
            .await
            .unwrap()
            .expect("tc entry");
        let tc_entry: TokenEntry = serde_json::from_slice(&tc_entry.bytes).unwrap();
        assert_eq!(tc_entry.usage, TokenUsage::Tc);
        let lines = String::from_utf8(tc_safe.key().to_vec()).unwrap();
        let tc_token = lines
            .trim_end()
            .strip_prefix("Authorization: Bearer ")
            .expect("bearer line");
        let (status, reason) = rejected(
            &f.service
                .update_info(with_token(tc_token, vector_body("first-contact")), now())
                .await,
        );
        assert_eq!(status, 403);
        assert!(reason.contains("LNS token"), "{reason}");
        assert!(!reason.contains(tc_token));

        // Reporting the blob CRCs: nothing to do.
        let quiet = body(
            "first-contact",
            &Report {
                cups_crc: Some(crc32(&cups)),
                tc_crc: Some(crc32(&tc)),
                tc_uri: Some(Some(TC_URI.to_owned())),
                ..Report::default()
            },
        );
        let d = decode(
            f.service
                .update_info(with_token(&token, quiet), now())
                .await,
        )
        .await;
        assert!(d.is_no_change());

        // A token of another gateway is refused.
        let mut other = GatewaySpec::new(other_eui());
        other.cups_auth = CupsAuth::Token;
        let other_token = f
            .service
            .register_gateway(other, now())
            .await
            .unwrap()
            .cups_token
            .unwrap();
        let (status, reason) = rejected(
            &f.service
                .update_info(
                    with_token(&other_token, vector_body("first-contact")),
                    now(),
                )
                .await,
        );
        assert_eq!(status, 403);
        assert_eq!(
            reason,
            format!("token is for gateway {OTHER_HEX}, request names {EUI_HEX}")
        );
    }
}

#[tokio::test]
async fn server_auth_tc_mode() {
    let f = Fixture::new(Backend::Memory);
    let mut spec = GatewaySpec::new(eui());
    spec.tc_mode = TcMode::ServerAuth;
    f.service.register_gateway(spec, now()).await.unwrap();
    let d = decode(
        f.service
            .update_info(
                with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                now(),
            )
            .await,
    )
    .await;
    let tc = d.tc_cred.expect("TC blob");
    assert_eq!(check_station_safe(&tc).unwrap().form, BlobForm::ServerAuth);
    assert_eq!(
        check_station_safe(&d.cups_cred.expect("CUPS blob"))
            .unwrap()
            .form,
        BlobForm::Mtls
    );
}
