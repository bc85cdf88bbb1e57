//! `cups-server config`: the effective settings and where each came from.

use super::args::ConfigArgs;
use super::{CliError, Ctx};
use crate::config::settings_markdown;

pub(super) fn run(ctx: &Ctx, args: &ConfigArgs) -> Result<(), CliError> {
    if args.docs {
        outp!("{}", settings_markdown());
        return Ok(());
    }
    let rows = ctx.settings.rows();
    if args.json {
        out!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let key_w = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    let val_w = rows
        .iter()
        .map(|r| r.value.chars().count())
        .max()
        .unwrap_or(0);
    for r in &rows {
        out!("{:key_w$}  {:val_w$}  ({})", r.key, r.value, r.source);
    }
    Ok(())
}
