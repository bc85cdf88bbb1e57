//! `cups-server init`: create or inspect the PKI. Never overwrites.

use super::args::InitArgs;
use super::{CliError, Ctx};
use crate::config::machine_host_name;
use crate::pki::{self, InitOptions};

pub(super) fn run(ctx: &Ctx, args: &InitArgs) -> Result<(), CliError> {
    let paths = ctx.pki_paths();
    if args.inspect {
        let summary = pki::inspect(&paths);
        outp!("{summary}");
        return match summary.load_error {
            None => Ok(()),
            Some(_) => Err(CliError::Failed(format!(
                "the PKI in {} is not usable (see above)",
                paths.dir.display()
            ))),
        };
    }
    let names = if args.dns.is_empty() {
        ctx.settings
            .implicit_server_names(machine_host_name().as_deref())
    } else {
        args.dns.clone()
    };
    let mut opts = InitOptions {
        server_dns_names: names,
        signing_keys: args.signing_keys,
        ..InitOptions::default()
    };
    if let Some(cn) = &args.ca_name {
        opts.ca_common_name.clone_from(cn);
    }
    let report = pki::init(&paths, &opts).map_err(|source| CliError::Pki {
        dir: paths.dir.clone(),
        source,
    })?;
    outp!("{report}");
    if !args.dns.is_empty() && report.kept.contains(&paths.server_cert()) {
        ctx.warn(&format!(
            "{} exists and was kept: --dns names are not applied (remove {} and {} to issue a new server certificate)",
            paths.server_cert().display(),
            paths.server_cert().display(),
            paths.server_key().display()
        ));
    }
    if report.created.is_empty() {
        out!(
            "nothing created: the PKI in {} is complete",
            paths.dir.display()
        );
    } else {
        out!(
            "PKI in {}: {} file(s) created, {} kept",
            paths.dir.display(),
            report.created.len(),
            report.kept.len()
        );
    }
    Ok(())
}
