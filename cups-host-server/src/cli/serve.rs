//! `cups-server serve`: PKI (created on a fresh directory), store, service, TLS, listeners,
//! graceful shutdown on SIGTERM/SIGINT.
//!
//! Machine-readable lines on stdout (tests and scripts read them):
//!
//! ```text
//! listening cups https://127.0.0.1:16050
//! listening admin http://127.0.0.1:16051
//! stopped
//! ```

use std::sync::Arc;

use super::args::ServeArgs;
use super::{CliError, Ctx, ServeFailure};
use crate::config::machine_host_name;
use crate::pki::{self, InitOptions, PkiPaths};
use crate::serve::{ServeConfig, Server};

/// Whether `dir` holds none of the four core PKI files (a fresh directory).
fn pki_absent(paths: &PkiPaths) -> bool {
    [
        paths.ca_cert(),
        paths.ca_key(),
        paths.server_cert(),
        paths.server_key(),
    ]
    .iter()
    .all(|p| !p.exists())
}

/// On a directory without a PKI, create a development one and say what was created. An
/// existing (even partial) PKI is never touched: `Pki::load` then reports what is wrong.
fn ensure_pki(ctx: &Ctx, paths: &PkiPaths) -> Result<(), CliError> {
    if !pki_absent(paths) {
        return Ok(());
    }
    let names = ctx
        .settings
        .implicit_server_names(machine_host_name().as_deref());
    let opts = InitOptions {
        server_dns_names: names.clone(),
        ..InitOptions::default()
    };
    let report = pki::init(paths, &opts).map_err(|source| CliError::Pki {
        dir: paths.dir.clone(),
        source,
    })?;
    let mut all_names = vec![pki::LOCALHOST.to_owned()];
    all_names.extend(names);
    out!(
        "no PKI in {}: created a development PKI (server certificate for {})",
        paths.dir.display(),
        all_names.join(", ")
    );
    outp!("{report}");
    Ok(())
}

/// SIGTERM and SIGINT handlers, installed before the listeners announce themselves (a
/// signal arriving earlier would otherwise kill the process without draining).
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let get = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch {name}");
                None
            }
        };
        Self {
            term: get(SignalKind::terminate(), "SIGTERM"),
            int: get(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Completes on the first SIGTERM or SIGINT (never if neither could be watched).
    async fn recv(mut self) {
        async fn next(s: Option<&mut tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = next(self.term.as_mut()) => tracing::info!("SIGTERM received"),
            () = next(self.int.as_mut()) => tracing::info!("SIGINT received"),
        }
    }
}

pub(super) async fn run(ctx: &Ctx, _args: &ServeArgs) -> Result<(), CliError> {
    let signals = Signals::install();
    let s = &ctx.settings;
    let paths = ctx.pki_paths();
    ensure_pki(ctx, &paths)?;
    let pki = ctx.load_pki()?;
    let signing_keys = pki.signers().len();
    let tls = if s.insecure_http.value {
        None
    } else {
        Some(crate::serve::server_config_from_pki(&pki).map_err(ServeFailure::from)?)
    };
    let store = ctx.open_store()?;
    let service = Arc::new(ctx.service_with_store(store, pki)?);

    if s.insecure_http.value {
        ctx.warn(
            "--insecure-http: serving PLAIN HTTP. Stations send tokens only over TLS and nothing \
             authenticates this server to them; use this only on a trusted test network",
        );
    }
    if s.tc_uri.value.is_none() {
        ctx.warn(
            "TC_URI is not set: gateways get no LNS address (set TC_URI=wss://lns.example.org:8887 \
             or per gateway with `gateway add --tc-uri`)",
        );
    }
    if s.cups_uri.value.is_none() {
        ctx.warn(&format!(
            "CUPS_URI is not set: gateways are never told to move, and `gateway export` writes \
             {} into cups.uri (set CUPS_URI to the address gateways reach)",
            s.local_cups_uri()
        ));
    }
    if signing_keys == 0 {
        ctx.warn(
            "no update-signing key in the PKI: updates can only go unsigned (add one with \
             `cups-server init --signing-keys 1`)",
        );
    }
    if !service.ready().await {
        ctx.warn(&format!(
            "the {} store does not answer: /readyz reports 503 and gateways get \"nothing to do\" \
             until it does",
            s.store.value
        ));
    }

    let config = ServeConfig {
        listen: s.listen.value,
        admin_listen: s.admin_listen.value.addr(),
        max_connections: s.max_connections.value,
        ..ServeConfig::default()
    };
    let server = Server::bind(config, tls.clone(), Arc::clone(&service))
        .await
        .map_err(ServeFailure::from)?;

    let store_text = match s.store.value {
        crate::config::StoreKind::Fs => format!("fs {}", s.data_dir.value.display()),
        crate::config::StoreKind::S3 => format!(
            "s3 bucket {}",
            s.s3.as_ref().map_or("?", |b| b.bucket.value.as_str())
        ),
    };
    out!(
        "cups-server {} (PKI {}, {} signing key(s); store {})",
        env!("CARGO_PKG_VERSION"),
        paths.dir.display(),
        signing_keys,
        store_text
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    out!("listening cups {scheme}://{}", server.local_addr());
    if let Some(admin) = server.admin_addr() {
        out!("listening admin http://{admin}");
    }
    out!(
        "provision a gateway (another shell, same directory and settings):\n  \
         cups-server gateway add <EUI>\n  \
         cups-server gateway export <EUI> --station-home ./station-<EUI>\n  \
         then copy ./station-<EUI> to the gateway and start the station with it as its home"
    );

    server
        .run(signals.recv())
        .await
        .map_err(ServeFailure::from)?;
    out!("stopped");
    Ok(())
}
