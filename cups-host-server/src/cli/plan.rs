//! `cups-server plan`: a dry run of what a gateway would receive now.

use std::io::Read as _;

use time::OffsetDateTime;

use super::args::PlanArgs;
use super::{CliError, Ctx, parse_eui};
use crate::planner::plan_summary_json;

/// Largest `--request` file read (a station body is at most 8 KiB; anything much larger is no
/// station request).
pub(super) const MAX_REQUEST_FILE_LEN: u64 = 64 * 1024;

pub(super) async fn run(ctx: &Ctx, args: &PlanArgs) -> Result<(), CliError> {
    let eui = parse_eui(&args.eui)?;
    let body = match &args.request {
        Some(path) => Some(read_request(path)?),
        None => None,
    };
    let service = ctx.service()?;
    let plan = service
        .plan_for(eui, body.as_deref(), OffsetDateTime::now_utc())
        .await?;
    if args.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&plan_summary_json(&plan))?
        );
    } else {
        let text = plan.to_string();
        outp!("{text}");
        if !text.ends_with('\n') {
            out!();
        }
    }
    Ok(())
}

fn read_request(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    let io = |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut body = Vec::new();
    file.take(MAX_REQUEST_FILE_LEN + 1)
        .read_to_end(&mut body)
        .map_err(io)?;
    if body.len() as u64 > MAX_REQUEST_FILE_LEN {
        return Err(CliError::Argument {
            what: "--request",
            text: path.display().to_string(),
            reason: "larger than 64 KiB: not a station request body",
        });
    }
    Ok(body)
}
