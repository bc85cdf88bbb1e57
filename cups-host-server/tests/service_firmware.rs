//! Firmware: signed once at upload, offered with a valid signature only to the gateways it is
//! for, streamed from the store.

mod service_support;

use bytes::Bytes;
use cups_core::crc::crc32;
use cups_core::sig::{EcdsaP256Verifier as _, RustCryptoVerifier, sha512};
use cups_host_server::model::FirmwareMeta;
use cups_host_server::service::{
    FirmwareSource, FirmwareSpec, GatewaySpec, ServiceError, ServiceSettings,
};
use cups_host_server::store::keys;
use service_support::*;

const IMAGE: &[u8] = b"#!/bin/sh\necho updated >> update-marker.txt\necho 2.0.0 > version.txt\nrm -f /tmp/update.bin\n";

fn spec(model: &str, version: &str, from: &[&str]) -> FirmwareSpec {
    FirmwareSpec {
        id: None,
        model: model.to_owned(),
        version: version.to_owned(),
        from_versions: from.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// A confirmed gateway (so that only the update can differ) and the request body maker.
async fn quiet_gateway(f: &Fixture) -> (Vec<u8>, impl Fn(Report) -> Vec<u8> + use<>) {
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    let rec = f.service.issue_credentials(eui(), now()).await.unwrap();
    let cups = rec.cups_cred.unwrap().current;
    let tc = rec.tc_cred.unwrap().current;
    let cert = blob_cert(&cups.blob);
    let make = move |r: Report| {
        body(
            "with-version-sigkey",
            &Report {
                cups_crc: Some(cups.crc),
                tc_crc: Some(tc.crc),
                tc_uri: Some(Some(TC_URI.to_owned())),
                ..r
            },
        )
    };
    (cert, make)
}

#[tokio::test]
async fn signed_update_is_offered_only_where_it_applies() {
    for backend in BACKENDS {
        let f = Fixture::new(backend);
        let (cert, make) = quiet_gateway(&f).await;
        let key_crc = f.pki.key_crcs()[0];
        let meta = f
            .service
            .add_firmware(
                spec("linux", "2.0.0", &[]),
                FirmwareSource::Bytes(Bytes::from_static(IMAGE)),
                now(),
            )
            .await
            .expect("add");
        assert_eq!(meta.id, "linux-2.0.0");
        assert_eq!(meta.len, IMAGE.len() as u64);
        assert_eq!(meta.sha512_hex, hex::encode(sha512(IMAGE)));
        assert_eq!(meta.signatures.len(), f.pki.signers().len());

        // linux on 1.0.0 holding the server's key: offered, signed, verifiable.
        let req = make(Report {
            keys: Some(vec![key_crc]),
            ..Report::default()
        });
        let d = decode(f.service.update_info(with_cert(&cert, req), now()).await).await;
        assert_eq!(d.update.as_deref(), Some(IMAGE), "{backend:?}");
        let (sig_crc, der) = d.sig.expect("signature");
        assert_eq!(sig_crc, key_crc);
        let public = f.pki.signers()[0].public_key();
        assert_eq!(public.crc(), key_crc);
        assert!(RustCryptoVerifier.verify_prehash(&public, &sha512(IMAGE), &der));
        assert!(d.cups_cred.is_none() && d.tc_cred.is_none() && d.tc_uri.is_none());
        assert_eq!(f.service.metrics().snapshot().updates_served, 1);

        // Not offered: other model, already on 2.0.0, only foreign keys, no keys (unsigned not
        // allowed).
        for r in [
            Report {
                model: Some("rpi".into()),
                keys: Some(vec![key_crc]),
                ..Report::default()
            },
            Report {
                package: Some(Some("2.0.0".into())),
                keys: Some(vec![key_crc]),
                ..Report::default()
            },
            Report {
                keys: Some(vec![crc32(b"some other key")]),
                ..Report::default()
            },
            Report {
                keys: Some(vec![]),
                ..Report::default()
            },
        ] {
            let d = decode(
                f.service
                    .update_info(with_cert(&cert, make(r.clone())), now())
                    .await,
            )
            .await;
            assert!(d.is_no_change(), "{backend:?} {r:?}: {d:?}");
        }
    }
}

#[tokio::test]
async fn unsigned_only_when_allowed_and_from_versions() {
    let f = Fixture::with_settings(
        Backend::Memory,
        ServiceSettings {
            allow_unsigned: true,
            ..settings()
        },
    );
    let (cert, make) = quiet_gateway(&f).await;
    f.service
        .add_firmware(
            spec("linux", "3.0.0", &["2.5.0"]),
            FirmwareSource::Bytes(Bytes::from_static(IMAGE)),
            now(),
        )
        .await
        .unwrap();
    // 1.0.0 is not a from-version.
    let d = decode(
        f.service
            .update_info(
                with_cert(
                    &cert,
                    make(Report {
                        keys: Some(vec![]),
                        ..Report::default()
                    }),
                ),
                now(),
            )
            .await,
    )
    .await;
    assert!(d.is_no_change());
    // From 2.5.0 without keys: unsigned, allowed.
    let d = decode(
        f.service
            .update_info(
                with_cert(
                    &cert,
                    make(Report {
                        keys: Some(vec![]),
                        package: Some(Some("2.5.0".into())),
                        ..Report::default()
                    }),
                ),
                now(),
            )
            .await,
    )
    .await;
    assert_eq!(d.update.as_deref(), Some(IMAGE));
    assert_eq!(d.sig, None);
}

#[tokio::test]
async fn add_list_remove() {
    for backend in BACKENDS {
        let f = Fixture::new(backend);
        let path = f.tmp.path().join("update.sh");
        std::fs::write(&path, IMAGE).unwrap();
        let a = f
            .service
            .add_firmware(
                spec("linux", "2.0.0", &["1.0.0"]),
                FirmwareSource::File(path.clone()),
                now(),
            )
            .await
            .expect("from file");
        let mut s = spec("rpi", "2.0.0+build/7", &[]);
        let b = f
            .service
            .add_firmware(
                s.clone(),
                FirmwareSource::Bytes(Bytes::from_static(b"x")),
                now(),
            )
            .await
            .unwrap();
        assert_eq!(b.id, "rpi-2.0.0_build_7");
        // The image is stored as given, the metadata parses back.
        let img = f
            .store
            .get(&keys::firmware_image(&a.id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&img.bytes[..], IMAGE);
        let raw = f
            .store
            .get(&keys::firmware_meta(&a.id))
            .await
            .unwrap()
            .unwrap();
        let stored: FirmwareMeta = serde_json::from_slice(&raw.bytes).unwrap();
        assert_eq!(stored, a);

        let list = f.service.list_firmware().await.unwrap();
        assert_eq!(
            list.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["linux-2.0.0", "rpi-2.0.0_build_7"]
        );

        // Errors: duplicate, empty, bad id, missing file, unknown id.
        assert!(matches!(
            f.service
                .add_firmware(
                    s.clone(),
                    FirmwareSource::Bytes(Bytes::from_static(b"y")),
                    now()
                )
                .await,
            Err(ServiceError::FirmwareExists { .. })
        ));
        s.id = Some("other".into());
        assert!(matches!(
            f.service
                .add_firmware(s.clone(), FirmwareSource::Bytes(Bytes::new()), now())
                .await,
            Err(ServiceError::EmptyImage)
        ));
        s.id = Some("a/b".into());
        assert!(matches!(
            f.service
                .add_firmware(
                    s.clone(),
                    FirmwareSource::Bytes(Bytes::from_static(b"y")),
                    now()
                )
                .await,
            Err(ServiceError::InvalidFirmwareId { .. })
        ));
        s.id = None;
        assert!(matches!(
            f.service
                .add_firmware(
                    spec("x", "1", &[]),
                    FirmwareSource::File(f.tmp.path().join("missing")),
                    now()
                )
                .await,
            Err(ServiceError::Io { .. })
        ));

        f.service.remove_firmware(&a.id).await.unwrap();
        assert!(
            f.store
                .get(&keys::firmware_image(&a.id))
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            f.service.remove_firmware(&a.id).await,
            Err(ServiceError::FirmwareNotFound { .. })
        ));
        assert_eq!(f.service.list_firmware().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn missing_image_drops_only_the_update() {
    let f = Fixture::new(Backend::Memory);
    let (cert, make) = quiet_gateway(&f).await;
    let key_crc = f.pki.key_crcs()[0];
    let meta = f
        .service
        .add_firmware(
            spec("linux", "2.0.0", &[]),
            FirmwareSource::Bytes(Bytes::from_static(IMAGE)),
            now(),
        )
        .await
        .unwrap();
    f.store
        .delete(&keys::firmware_image(&meta.id))
        .await
        .unwrap();
    let d = decode(
        f.service
            .update_info(
                with_cert(
                    &cert,
                    make(Report {
                        keys: Some(vec![key_crc]),
                        ..Report::default()
                    }),
                ),
                now(),
            )
            .await,
    )
    .await;
    assert!(d.is_no_change(), "{d:?}");
    assert_eq!(f.service.metrics().snapshot().storage_errors, 1);
}
