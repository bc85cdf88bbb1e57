//! `cups-server firmware add|list|remove`.

use time::OffsetDateTime;

use super::args::{FirmwareAddArgs, FirmwareCommand};
use super::{CliError, Ctx};
use crate::model::FirmwareMeta;
use crate::service::{FirmwareSource, FirmwareSpec};

pub(super) async fn run(ctx: &Ctx, cmd: FirmwareCommand) -> Result<(), CliError> {
    match cmd {
        FirmwareCommand::Add(a) => add(ctx, a).await,
        FirmwareCommand::List { json } => list(ctx, json).await,
        FirmwareCommand::Remove { id } => remove(ctx, &id).await,
    }
}

async fn add(ctx: &Ctx, a: FirmwareAddArgs) -> Result<(), CliError> {
    let service = ctx.service()?;
    if service.pki().signers().is_empty() {
        ctx.warn(
            "the PKI has no update-signing key: the image is stored unsigned and is offered only \
             to gateways without keys, and only with --allow-unsigned / CUPS_ALLOW_UNSIGNED",
        );
    }
    let spec = FirmwareSpec {
        id: a.id,
        model: a.model,
        version: a.version,
        from_versions: a.from,
    };
    let meta = service
        .add_firmware(
            spec,
            FirmwareSource::File(a.file),
            OffsetDateTime::now_utc(),
        )
        .await?;
    out!("added firmware {}", meta.id);
    print_meta(&meta);
    Ok(())
}

async fn list(ctx: &Ctx, json: bool) -> Result<(), CliError> {
    let service = ctx.service()?;
    let list = service.list_firmware().await?;
    if json {
        out!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        out!("no firmware registered (add an image with `cups-server firmware add`)");
        return Ok(());
    }
    out!(
        "{:24}  {:12}  {:12}  {:16}  {:>10}  SIGNED WITH",
        "ID",
        "MODEL",
        "VERSION",
        "FROM",
        "BYTES"
    );
    for m in &list {
        out!(
            "{:24}  {:12}  {:12}  {:16}  {:>10}  {}",
            m.id,
            m.model,
            m.version,
            from_text(m),
            m.len,
            keys_text(m)
        );
    }
    out!("{} image(s)", list.len());
    Ok(())
}

async fn remove(ctx: &Ctx, id: &str) -> Result<(), CliError> {
    let service = ctx.service()?;
    service.remove_firmware(id).await?;
    out!("removed firmware {id}");
    Ok(())
}

fn from_text(m: &FirmwareMeta) -> String {
    if m.from_versions.is_empty() {
        "any".to_owned()
    } else {
        m.from_versions.join(",")
    }
}

fn keys_text(m: &FirmwareMeta) -> String {
    if m.signatures.is_empty() {
        "(unsigned)".to_owned()
    } else {
        m.signatures
            .iter()
            .map(|s| format!("{:08x}", s.key_crc))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn print_meta(m: &FirmwareMeta) {
    out!("  model       {}", m.model);
    out!("  version     {}", m.version);
    out!("  from        {}", from_text(m));
    out!("  length      {} bytes", m.len);
    out!("  sha512      {}", m.sha512_hex);
    out!("  keyCRCs     {}", keys_text(m));
}
