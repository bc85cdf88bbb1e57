//! Every rejection of `Service::update_info` with its status and one-line reason, and the
//! credentials each authentication mode accepts.

mod service_support;

use cups_core::crc::crc32;
use cups_host_server::model::CupsAuth;
use cups_host_server::service::{GatewaySpec, RequestOutcome};
use service_support::*;
use time::Duration;

#[tokio::test]
async fn malformed_body_is_400_with_the_decoder_error() {
    let f = Fixture::new(Backend::Memory);
    for bad in [&b"{"[..], b"", b"{\"router\":\"zz\"}", b"[]"] {
        let out = f.service.update_info(anonymous(bad.to_vec()), now()).await;
        let (status, reason) = rejected(&out);
        assert_eq!(status, 400);
        assert!(
            reason.starts_with("malformed update-info request: "),
            "{reason}"
        );
        assert!(!reason.contains('\n'));
    }
    assert_eq!(f.service.metrics().requests(RequestOutcome::BadRequest), 4);
}

#[tokio::test]
async fn no_credentials_is_401() {
    let f = Fixture::new(Backend::Memory);
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    let (status, reason) = rejected(
        &f.service
            .update_info(anonymous(vector_body("first-contact")), now())
            .await,
    );
    assert_eq!(
        (status, reason.as_str()),
        (401, "no client certificate and no bearer token")
    );
    // Not a bearer token.
    let mut req = anonymous(vector_body("first-contact"));
    req.authorization = Some("Basic dXNlcjpwYXNz".to_owned());
    let (status, _) = rejected(&f.service.update_info(req, now()).await);
    assert_eq!(status, 401);
    // An unknown token.
    let (status, reason) = rejected(
        &f.service
            .update_info(
                with_token("not-a-token-we-issued", vector_body("first-contact")),
                now(),
            )
            .await,
    );
    assert_eq!((status, reason.as_str()), (401, "unknown bearer token"));
    assert_eq!(
        f.service
            .metrics()
            .requests(RequestOutcome::Unauthenticated),
        3
    );
}

#[tokio::test]
async fn certificate_of_another_gateway_is_403() {
    let f = Fixture::new(Backend::Memory);
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    f.service
        .register_gateway(GatewaySpec::new(other_eui()), now())
        .await
        .unwrap();
    let rec = f
        .service
        .issue_credentials(other_eui(), now())
        .await
        .unwrap();
    let other_cert = blob_cert(&rec.cups_cred.unwrap().current.blob);
    let (status, reason) = rejected(
        &f.service
            .update_info(with_cert(&other_cert, vector_body("first-contact")), now())
            .await,
    );
    assert_eq!(status, 403);
    assert_eq!(
        reason,
        format!("certificate is for gateway {OTHER_HEX}, request names {EUI_HEX}")
    );
    assert_eq!(f.service.metrics().requests(RequestOutcome::Forbidden), 1);
}

#[tokio::test]
async fn unknown_gateway_is_404() {
    let f = Fixture::new(Backend::Memory);
    // A valid gateway-CA certificate for an EUI nobody registered.
    let cert = f.foreign_cert(eui(), now());
    let (status, reason) = rejected(
        &f.service
            .update_info(with_cert(&cert, vector_body("first-contact")), now())
            .await,
    );
    assert_eq!(
        (status, reason.as_str()),
        (404, "gateway 0016c001ff10a235 is not registered")
    );
    // The bootstrap token does not help an unregistered gateway.
    let (status, _) = rejected(
        &f.service
            .update_info(
                with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                now(),
            )
            .await,
    );
    assert_eq!(status, 404);
    // Nor does a factory certificate.
    let factory = leaf(&f.factory, "factory");
    let (status, _) = rejected(
        &f.service
            .update_info(with_cert(&factory, vector_body("first-contact")), now())
            .await,
    );
    assert_eq!(status, 404);
    assert_eq!(
        f.service.metrics().requests(RequestOutcome::NotRegistered),
        3
    );
}

#[tokio::test]
async fn certificate_not_on_record_is_403() {
    let f = Fixture::new(Backend::Memory);
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    // Minted by the gateway CA for this EUI, but not the record's credential.
    let stray = f.foreign_cert(eui(), now());
    let (status, reason) = rejected(
        &f.service
            .update_info(with_cert(&stray, vector_body("first-contact")), now())
            .await,
    );
    assert_eq!(status, 403);
    assert!(
        reason.contains("not a current CUPS credential of gateway 0016c001ff10a235"),
        "{reason}"
    );

    // A certificate of a removed and re-registered gateway is refused too.
    let rec = f.service.issue_credentials(eui(), now()).await.unwrap();
    let old = blob_cert(&rec.cups_cred.unwrap().current.blob);
    f.service.remove_gateway(eui()).await.unwrap();
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    let (status, _) = rejected(
        &f.service
            .update_info(with_cert(&old, vector_body("first-contact")), now())
            .await,
    );
    assert_eq!(status, 403);
}

#[tokio::test]
async fn expired_certificate_is_403() {
    let f = Fixture::new(Backend::Memory);
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    let rec = f.service.issue_credentials(eui(), now()).await.unwrap();
    let cert = blob_cert(&rec.cups_cred.unwrap().current.blob);
    let (status, reason) = rejected(
        &f.service
            .update_info(
                with_cert(&cert, vector_body("first-contact")),
                now() + Duration::days(400),
            )
            .await,
    );
    assert_eq!(status, 403);
    assert!(reason.contains("expired"), "{reason}");
}

#[tokio::test]
async fn every_accepted_mode() {
    let f = Fixture::new(Backend::Memory);
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    // Bootstrap token, bootstrap certificate (fleet-wide), own certificate.
    let factory = leaf(&f.factory, "factory");
    for req in [
        with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
        with_cert(&factory, vector_body("first-contact")),
    ] {
        let d = decode(f.service.update_info(req, now()).await).await;
        assert!(d.cups_cred.is_some());
    }
    let rec = f.service.get_gateway(eui()).await.unwrap();
    let cups = rec.cups_cred.unwrap().current;
    let d = decode(
        f.service
            .update_info(
                with_cert(
                    &blob_cert(&cups.blob),
                    body(
                        "first-contact",
                        &Report {
                            cups_crc: Some(cups.crc),
                            ..Report::default()
                        },
                    ),
                ),
                now(),
            )
            .await,
    )
    .await;
    assert!(d.cups_cred.is_none() && d.tc_cred.is_some());
    assert_eq!(crc32(&d.tc_cred.unwrap()), rec.tc_cred.unwrap().current.crc);

    // Own token of a token-mode gateway.
    let mut spec = GatewaySpec::new(other_eui());
    spec.cups_auth = CupsAuth::Token;
    let token = f
        .service
        .register_gateway(spec, now())
        .await
        .unwrap()
        .cups_token
        .unwrap();
    let d = decode(
        f.service
            .update_info(
                with_token(
                    &token,
                    body(
                        "first-contact",
                        &Report {
                            router: Some(other_eui()),
                            ..Report::default()
                        },
                    ),
                ),
                now(),
            )
            .await,
    )
    .await;
    assert!(d.cups_cred.is_some());
}
