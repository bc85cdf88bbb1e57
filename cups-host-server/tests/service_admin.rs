//! Gateway administration and the dry run.

mod service_support;

use std::collections::BTreeMap;

use bytes::Bytes;
use cups_core::response::{CredKind, Segment};
use cups_host_server::model::{CupsAuth, TcMode};
use cups_host_server::planner::{Action, KeepReason, Note};
use cups_host_server::service::{
    FirmwareSource, FirmwareSpec, GatewaySpec, ServiceError, ServiceSettings,
};
use cups_host_server::store::keys;
use service_support::*;

#[tokio::test]
async fn register_list_show_remove() {
    for backend in BACKENDS {
        let f = Fixture::new(backend);
        let mut spec = GatewaySpec::new(eui());
        spec.cups_auth = CupsAuth::Token;
        spec.tc_mode = TcMode::Token;
        spec.cups_uri = Some("https://cups.example.com:443".into());
        spec.labels = BTreeMap::from([("site".to_owned(), "roof".to_owned())]);
        let reg = f
            .service
            .register_gateway(spec.clone(), now())
            .await
            .unwrap();
        assert_eq!(reg.record.labels["site"], "roof");
        assert!(matches!(
            f.service.register_gateway(spec, now()).await,
            Err(ServiceError::AlreadyRegistered { .. })
        ));
        f.service
            .register_gateway(GatewaySpec::new(other_eui()), now())
            .await
            .unwrap();
        let list = f.service.list_gateways().await.unwrap();
        assert_eq!(
            list.iter().map(|r| r.eui).collect::<Vec<_>>(),
            [eui(), other_eui()]
        );
        assert_eq!(f.service.get_gateway(eui()).await.unwrap(), reg.record);

        // First contact mints the TC token; removal drops both index entries.
        let token = reg.cups_token.unwrap();
        decode(
            f.service
                .update_info(with_token(&token, vector_body("first-contact")), now())
                .await,
        )
        .await;
        let rec = f.service.get_gateway(eui()).await.unwrap();
        let hashes = [
            rec.cups_cred
                .as_ref()
                .unwrap()
                .current
                .token_sha256
                .clone()
                .unwrap(),
            rec.tc_cred
                .as_ref()
                .unwrap()
                .current
                .token_sha256
                .clone()
                .unwrap(),
        ];
        for h in &hashes {
            assert!(f.store.get(&keys::token(h)).await.unwrap().is_some());
        }
        f.service.remove_gateway(eui()).await.unwrap();
        for h in &hashes {
            assert!(
                f.store.get(&keys::token(h)).await.unwrap().is_none(),
                "{backend:?}"
            );
        }
        assert!(matches!(
            f.service.get_gateway(eui()).await,
            Err(ServiceError::NotRegistered { .. })
        ));
        assert!(matches!(
            f.service.remove_gateway(eui()).await,
            Err(ServiceError::NotRegistered { .. })
        ));
        // The removed gateway's token is now unknown.
        let (status, _) = rejected(
            &f.service
                .update_info(with_token(&token, vector_body("first-contact")), now())
                .await,
        );
        assert_eq!(status, 401);
        assert_eq!(f.service.list_gateways().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn invalid_uris_and_settings_are_refused() {
    let f = Fixture::new(Backend::Memory);
    let mut spec = GatewaySpec::new(eui());
    spec.tc_uri = Some("https://not-a-tc-uri:1".into());
    assert!(matches!(
        f.service.register_gateway(spec, now()).await,
        Err(ServiceError::InvalidUri { .. })
    ));
    let mut spec = GatewaySpec::new(eui());
    spec.cups_uri = Some("https://no-port".into());
    assert!(matches!(
        f.service.register_gateway(spec, now()).await,
        Err(ServiceError::InvalidUri { .. })
    ));
    let bad = ServiceSettings {
        min_valid_days: 365,
        ..settings()
    };
    assert!(matches!(
        bad.validate(),
        Err(ServiceError::ValidityTooShort { .. })
    ));
    let bad = ServiceSettings {
        cups_uri: Some("wss://x:1".into()),
        ..settings()
    };
    assert!(bad.validate().is_err());
    assert!(settings().validate().is_ok());
    assert!(ServiceSettings::default().validate().is_ok());
}

#[tokio::test]
async fn plan_for_is_a_dry_run() {
    let f = Fixture::new(Backend::Memory);
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    let before = f.store.get(&keys::gateway(eui())).await.unwrap().unwrap();

    // Nothing issued yet: the plan mints nothing and says so.
    let plan = f
        .service
        .plan_for(eui(), Some(&vector_body("first-contact")), now())
        .await
        .unwrap();
    assert!(plan.notes().iter().any(|n| matches!(
        n,
        Note::CredentialsMissing {
            kind: CredKind::Cups
        }
    )));
    assert_eq!(
        *plan.action(Segment::CupsCred),
        Action::Keep(KeepReason::NoCredentials)
    );
    let after = f.store.get(&keys::gateway(eui())).await.unwrap().unwrap();
    assert_eq!(before.etag, after.etag, "nothing written");
    assert_eq!(f.service.metrics().snapshot().credentials_minted, 0);

    // With credentials and a firmware: the plan shows both, with reasons.
    f.service.issue_credentials(eui(), now()).await.unwrap();
    f.service
        .add_firmware(
            FirmwareSpec {
                id: None,
                model: "linux".into(),
                version: "2.0.0".into(),
                from_versions: vec![],
            },
            FirmwareSource::Bytes(Bytes::from_static(b"#!/bin/sh\n")),
            now(),
        )
        .await
        .unwrap();
    let req = body(
        "with-version-sigkey",
        &Report {
            keys: Some(f.pki.key_crcs()),
            ..Report::default()
        },
    );
    let plan = f.service.plan_for(eui(), Some(&req), now()).await.unwrap();
    assert!(plan.action(Segment::CupsCred).is_send());
    assert!(plan.action(Segment::Update).is_send());
    assert!(plan.action(Segment::Sig).is_send());
    assert!(!plan.to_string().is_empty());

    // Without a body: what the gateway was last confirmed to hold (nothing confirmed yet).
    let plan = f.service.plan_for(eui(), None, now()).await.unwrap();
    assert!(plan.action(Segment::CupsCred).is_send());
    assert!(!plan.action(Segment::Update).is_send());

    // Errors.
    assert!(matches!(
        f.service.plan_for(other_eui(), None, now()).await,
        Err(ServiceError::NotRegistered { .. })
    ));
    assert!(matches!(
        f.service.plan_for(eui(), Some(b"{"), now()).await,
        Err(ServiceError::BadRequest(_))
    ));
    let other = body(
        "first-contact",
        &Report {
            router: Some(other_eui()),
            ..Report::default()
        },
    );
    assert!(matches!(
        f.service.plan_for(eui(), Some(&other), now()).await,
        Err(ServiceError::RouterMismatch { .. })
    ));
}
