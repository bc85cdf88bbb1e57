//! The optional per-EUI rate limit: a gateway served less than the interval ago gets the
//! 14-byte "nothing to do" (200, never a non-200), counted as `rate_limited`; only after it
//! authenticated, so nobody throttles another gateway by naming it.

mod service_support;

use std::time::Duration as StdDuration;

use cups_host_server::service::{GatewaySpec, RequestOutcome, ServiceSettings};
use service_support::*;
use time::Duration;

fn limited(secs: u64) -> ServiceSettings {
    ServiceSettings {
        rate_limit_interval: Some(StdDuration::from_secs(secs)),
        ..settings()
    }
}

#[tokio::test]
async fn served_below_the_interval_gets_no_change_at_and_above_it_is_served() {
    let f = Fixture::with_settings(Backend::Memory, limited(10));
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .expect("register");
    let t0 = now();
    let ask = |at| {
        f.service.update_info(
            with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
            at,
        )
    };

    let first = decode(ask(t0).await).await;
    assert!(first.cups_cred.is_some(), "first contact is served");
    // Below the interval: nothing to do, counted.
    let below = decode(ask(t0 + Duration::seconds(9)).await).await;
    assert!(below.is_no_change(), "{below:?}");
    assert_eq!(f.service.metrics().requests(RequestOutcome::RateLimited), 1);
    // At the interval (measured from the last *served* request): served again.
    let at = decode(ask(t0 + Duration::seconds(10)).await).await;
    assert!(
        at.cups_cred.is_some(),
        "served again at the interval: {at:?}"
    );
    // Above it too.
    let above = decode(ask(t0 + Duration::seconds(21)).await).await;
    assert!(above.cups_cred.is_some());
    assert_eq!(f.service.metrics().requests(RequestOutcome::RateLimited), 1);
}

#[tokio::test]
async fn unauthenticated_requests_do_not_throttle_the_named_gateway() {
    let f = Fixture::with_settings(Backend::Memory, limited(30));
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .expect("register");
    let t0 = now();
    // Someone without credentials names the gateway: 401, and no rate-limit state.
    let (status, _) = rejected(
        &f.service
            .update_info(anonymous(vector_body("first-contact")), t0)
            .await,
    );
    assert_eq!(status, 401);
    let served = decode(
        f.service
            .update_info(
                with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                t0 + Duration::seconds(1),
            )
            .await,
    )
    .await;
    assert!(served.cups_cred.is_some(), "the real gateway is served");
}

#[tokio::test]
async fn off_by_default() {
    let f = Fixture::new(Backend::Memory);
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .expect("register");
    let t0 = now();
    for _ in 0..3 {
        let d = decode(
            f.service
                .update_info(
                    with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                    t0,
                )
                .await,
        )
        .await;
        assert!(d.cups_cred.is_some());
    }
    assert_eq!(f.service.metrics().requests(RequestOutcome::RateLimited), 0);
}
