//! `cups-server gateway add|list|show|set|renew|remove|export`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use cups_core::cred::{BlobForm, SafeBlob};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use cups_core::Eui64;

use super::args::{
    CupsAuthArg, GatewayAddArgs, GatewayCommand, GatewayExportArgs, GatewayRenewArgs,
    GatewaySetArgs, MAX_ADD_COUNT, TcArg,
};
use super::{CliError, Ctx, parse_eui};
use crate::config::uri_host;
use crate::export::{self, ExportFormat, ExportOptions, StationHome};
use crate::model::{CredSlot, CupsAuth, GatewayRecord, IssuedCred, TcMode};
use crate::service::{GatewaySpec, RenewSlots, UriChange, UriUpdate};

/// Hex digits of a token hash shown by `gateway show` (enough to tell tokens apart).
const TOKEN_HASH_SHOWN: usize = 12;

/// A command over at least this many gateways reports its progress on stderr, every this
/// many gateways.
pub(super) const PROGRESS_EVERY: usize = 1_000;

pub(super) async fn run(ctx: &Ctx, cmd: GatewayCommand) -> Result<(), CliError> {
    match cmd {
        GatewayCommand::Add(a) => add(ctx, a).await,
        GatewayCommand::List { json } => list(ctx, json).await,
        GatewayCommand::Show { eui, json } => show(ctx, &eui, json).await,
        GatewayCommand::Set(a) => set(ctx, &a).await,
        GatewayCommand::Renew(a) => renew(ctx, &a).await,
        GatewayCommand::Remove { eui } => remove(ctx, &eui).await,
        GatewayCommand::Export(a) => export(ctx, a).await,
    }
}

/// `KEY=VALUE` pairs into a map; keys must be non-empty and unique.
fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut labels = BTreeMap::new();
    for item in items {
        let bad = |reason| CliError::Argument {
            what: "--label",
            text: item.clone(),
            reason,
        };
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(bad("empty key"));
        }
        if labels.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(bad("key given twice"));
        }
    }
    Ok(labels)
}

/// The EUIs `gateway add` registers: the arguments in order, or with `count` that many
/// consecutive EUIs from the single argument.
fn add_euis(args: &[String], count: Option<u64>) -> Result<Vec<Eui64>, CliError> {
    let Some(count) = count else {
        return args.iter().map(|a| parse_eui(a)).collect();
    };
    let bad = |reason| CliError::Argument {
        what: "--count",
        text: count.to_string(),
        reason,
    };
    let [first] = args else {
        return Err(bad("takes exactly one starting EUI"));
    };
    if count == 0 || count > MAX_ADD_COUNT {
        return Err(bad("must be 1..=100000 (MAX_ADD_COUNT)"));
    }
    let start = parse_eui(first)?.as_u64();
    start
        .checked_add(count - 1)
        .ok_or_else(|| bad("the range would pass ffffffffffffffff"))?;
    (0..count)
        .map(|i| {
            // In range (checked above) and never zero (start is not zero and nothing wraps).
            Eui64::new(start + i).map_err(|source| CliError::Eui {
                text: format!("{:016x}", start + i),
                source,
            })
        })
        .collect()
}

/// The progress line after `done` of `total` gateways: only for batches of at least
/// [`PROGRESS_EVERY`], every [`PROGRESS_EVERY`] gateways.
fn progress_line(what: &str, done: usize, total: usize) -> Option<String> {
    (total >= PROGRESS_EVERY && done > 0 && done.is_multiple_of(PROGRESS_EVERY))
        .then(|| format!("{what} {done}/{total} gateways"))
}

/// Progress of a command over `total` gateways (stderr).
fn progress(what: &str, done: usize, total: usize) {
    if let Some(line) = progress_line(what, done, total) {
        eprintln!("{line}");
    }
}

/// `err` about `eui` after `done` of `total`: as is for a single gateway, else a
/// [`CliError::Batch`] saying how far the command got.
fn batch_error(
    err: CliError,
    eui: Eui64,
    done: usize,
    total: usize,
    what: &'static str,
) -> CliError {
    if total <= 1 {
        return err;
    }
    CliError::Batch {
        failed: eui.canonical().to_string(),
        done,
        total,
        what,
        source: Box::new(err),
    }
}

async fn add(ctx: &Ctx, a: GatewayAddArgs) -> Result<(), CliError> {
    let euis = add_euis(&a.euis, a.count)?;
    let labels = parse_labels(&a.labels)?;
    let spec = GatewaySpec {
        eui: euis.first().copied().ok_or_else(|| CliError::Argument {
            what: "EUI",
            text: String::new(),
            reason: "at least one is required",
        })?,
        cups_auth: match a.cups_auth {
            CupsAuthArg::Cert => CupsAuth::ClientCert,
            CupsAuthArg::Token => CupsAuth::Token,
        },
        tc_mode: match a.tc {
            TcArg::Cert => TcMode::ClientCert,
            TcArg::Token => TcMode::Token,
            TcArg::ServerAuth => TcMode::ServerAuth,
        },
        cups_uri: a.cups_uri.filter(|u| !u.is_empty()),
        tc_uri: a.tc_uri.filter(|u| !u.is_empty()),
        labels,
    };
    let service = ctx.service()?;
    if let [_] = euis[..] {
        let registered = service
            .register_gateway(spec, OffsetDateTime::now_utc())
            .await?;
        print_registered(ctx, &registered);
        return Ok(());
    }
    let total = euis.len();
    let mut last = None;
    for (done, eui) in euis.into_iter().enumerate() {
        let registered = service
            .register_gateway(
                GatewaySpec {
                    eui,
                    ..spec.clone()
                },
                OffsetDateTime::now_utc(),
            )
            .await
            .map_err(|e| batch_error(e.into(), eui, done, total, "registered"))?;
        let r = &registered.record;
        out!(
            "registered gateway {} (ID6 {})",
            r.eui.canonical(),
            r.eui.id6()
        );
        if let Some(token) = &registered.cups_token {
            out!("  CUPS token (shown once; only its hash is indexed): {token}");
        }
        progress("registered", done + 1, total);
        last = Some(registered.record);
    }
    if let Some(r) = &last {
        print_modes_and_uris(ctx, r);
    }
    out!("registered {total} gateways");
    Ok(())
}

/// What `gateway add` prints for a single gateway.
fn print_registered(ctx: &Ctx, registered: &crate::service::Registered) {
    let r = &registered.record;
    out!(
        "registered gateway {} (ID6 {})",
        r.eui.canonical(),
        r.eui.id6()
    );
    print_modes_and_uris(ctx, r);
    if let Some(token) = &registered.cups_token {
        out!();
        out!("CUPS token (shown once; only its hash is indexed): {token}");
        out!("  the station sends it as: Authorization: Bearer {token}");
        out!("  `gateway export` writes it into cups.key");
    }
    out!();
    out!(
        "next: cups-server gateway export {} --station-home DIR",
        r.eui.canonical()
    );
}

/// The EUIs of a `set`/`renew` argument list.
fn parse_euis(args: &[String]) -> Result<Vec<Eui64>, CliError> {
    args.iter().map(|a| parse_eui(a)).collect()
}

async fn set(ctx: &Ctx, a: &GatewaySetArgs) -> Result<(), CliError> {
    let euis = parse_euis(&a.euis)?;
    let change = |set: &Option<String>, clear: bool| match (set, clear) {
        (Some(uri), _) => UriChange::Set(uri.clone()),
        (None, true) => UriChange::Clear,
        (None, false) => UriChange::Keep,
    };
    let update = UriUpdate {
        cups_uri: change(&a.cups_uri, a.clear_cups_uri),
        tc_uri: change(&a.tc_uri, a.clear_tc_uri),
    };
    let service = ctx.service()?;
    let total = euis.len();
    for (done, eui) in euis.into_iter().enumerate() {
        let r = service
            .update_gateway_uris(eui, &update)
            .await
            .map_err(|e| batch_error(e.into(), eui, done, total, "updated"))?;
        out!(
            "updated gateway {} (ID6 {}): CUPS URI {}; TC URI {}",
            r.eui.canonical(),
            r.eui.id6(),
            uri_text(
                r.cups_uri.as_deref(),
                ctx.settings.cups_uri.value.as_deref()
            ),
            uri_text(r.tc_uri.as_deref(), ctx.settings.tc_uri.value.as_deref())
        );
        progress("updated", done + 1, total);
    }
    if total > 1 {
        out!("updated {total} gateways");
    }
    Ok(())
}

async fn renew(ctx: &Ctx, a: &GatewayRenewArgs) -> Result<(), CliError> {
    let which = if a.cups || a.tc {
        RenewSlots {
            cups: a.cups,
            tc: a.tc,
        }
    } else {
        RenewSlots::BOTH
    };
    let service = ctx.service()?;
    let euis = if a.all {
        service
            .list_gateways()
            .await?
            .into_iter()
            .map(|r| r.eui)
            .collect()
    } else {
        parse_euis(&a.euis)?
    };
    let total = euis.len();
    let mut marked = 0usize;
    for (done, eui) in euis.into_iter().enumerate() {
        let r = service
            .request_renewal(eui, which)
            .await
            .map_err(|e| batch_error(e.into(), eui, done, total, "marked"))?;
        let slots: Vec<&str> = [(r.cups, "CUPS"), (r.tc, "TC")]
            .into_iter()
            .filter_map(|(m, name)| m.then_some(name))
            .collect();
        if slots.is_empty() {
            out!(
                "gateway {}: nothing to renew (no credentials issued yet: they are minted on first contact; or server-auth only)",
                eui.canonical()
            );
        } else {
            marked += 1;
            out!(
                "gateway {}: renewal requested for the {} credentials (fresh ones on its next request)",
                eui.canonical(),
                slots.join(" and ")
            );
        }
        progress("marked", done + 1, total);
    }
    if a.all || total > 1 {
        out!("renewal requested for {marked} of {total} gateways");
    }
    Ok(())
}

async fn list(ctx: &Ctx, json: bool) -> Result<(), CliError> {
    let service = ctx.service()?;
    let records = service.list_gateways().await?;
    if json {
        let views: Vec<GatewayView> = records.iter().map(|r| GatewayView::new(ctx, r)).collect();
        out!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    if records.is_empty() {
        out!("no gateways registered (add one with `cups-server gateway add EUI`)");
        return Ok(());
    }
    out!(
        "{:16}  {:11}  {:11}  {:10}  {:20}  LABELS",
        "EUI",
        "CUPS AUTH",
        "TC MODE",
        "CUPS CRC",
        "CUPS CERT EXPIRES"
    );
    for r in &records {
        let (crc, expires) = match &r.cups_cred {
            Some(slot) => (
                format!("{:08x}", slot.current.crc),
                slot.current.not_after.map_or_else(|| "-".to_owned(), date),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        out!(
            "{:16}  {:11}  {:11}  {:10}  {:20}  {}",
            r.eui.canonical().to_string(),
            cups_auth_name(r.cups_auth),
            tc_mode_name(r.tc_mode),
            crc,
            expires,
            labels_text(&r.labels)
        );
    }
    out!("{} gateway(s)", records.len());
    Ok(())
}

async fn show(ctx: &Ctx, eui: &str, json: bool) -> Result<(), CliError> {
    let eui = parse_eui(eui)?;
    let service = ctx.service()?;
    let r = service.get_gateway(eui).await?;
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&GatewayView::new(ctx, &r))?
        );
        return Ok(());
    }
    out!("gateway     {} (ID6 {})", r.eui.canonical(), r.eui.id6());
    out!("registered  {}", time_text(r.created_at));
    print_modes_and_uris(ctx, &r);
    if !r.labels.is_empty() {
        out!("labels      {}", labels_text(&r.labels));
    }
    print_slot("CUPS cred", r.cups_cred.as_ref());
    print_slot("TC cred", r.tc_cred.as_ref());
    match r.own_creds_used_at {
        Some(at) => out!(
            "bootstrap   closed: own credentials first used {}",
            time_text(at)
        ),
        None => out!("bootstrap   open: no request with its own credentials yet"),
    }
    Ok(())
}

async fn remove(ctx: &Ctx, eui: &str) -> Result<(), CliError> {
    let eui = parse_eui(eui)?;
    let service = ctx.service()?;
    let r = service.remove_gateway(eui).await?;
    out!(
        "removed gateway {} (ID6 {})",
        r.eui.canonical(),
        r.eui.id6()
    );
    Ok(())
}

/// `--set KEY=VALUE` and the timer flags into `station_conf` entries.
fn station_conf_entries(a: &GatewayExportArgs) -> Result<Map<String, Value>, CliError> {
    let mut conf = Map::new();
    let span = |what: &'static str, v: &str| -> Result<Value, CliError> {
        if v.starts_with(|c: char| c.is_ascii_digit()) {
            Ok(Value::String(v.to_owned()))
        } else {
            Err(CliError::Argument {
                what,
                text: v.to_owned(),
                reason: "expected a time span such as 5s, 10m or 1h",
            })
        }
    };
    if let Some(v) = &a.cups_resync_intv {
        conf.insert(
            "CUPS_RESYNC_INTV".to_owned(),
            span("--cups-resync-intv", v)?,
        );
    }
    if let Some(v) = &a.cups_oksync_intv {
        conf.insert(
            "CUPS_OKSYNC_INTV".to_owned(),
            span("--cups-oksync-intv", v)?,
        );
    }
    for item in &a.set {
        let bad = |reason| CliError::Argument {
            what: "--set",
            text: item.clone(),
            reason,
        };
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(bad("empty key"));
        }
        if export::RESERVED_CONF_KEYS.contains(&k) {
            return Err(bad("routerid is always the gateway's EUI"));
        }
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        conf.insert(k.to_owned(), value);
    }
    Ok(conf)
}

async fn export(ctx: &Ctx, a: GatewayExportArgs) -> Result<(), CliError> {
    let eui = parse_eui(&a.eui)?;
    let mut conf = station_conf_entries(&a)?;
    // Refuse a non-empty directory before minting anything.
    export::check_target(&a.station_home, a.force)?;
    let pki = ctx.load_pki()?;
    let sig_keys = pki.sig_keys();
    let service = ctx.service_with(pki)?;
    let record = service
        .issue_credentials(eui, OffsetDateTime::now_utc())
        .await?;
    let slot = record.cups_cred.as_ref().ok_or_else(|| {
        CliError::Failed(format!(
            "the service issued no CUPS credentials for {}",
            eui.canonical()
        ))
    })?;
    let (cups_uri, defaulted) = match &record.cups_uri {
        Some(uri) => (uri.clone(), false),
        None => ctx.settings.export_cups_uri(),
    };
    if defaulted {
        ctx.warn(&format!(
            "CUPS_URI is not set: cups.uri is {cups_uri}, which only works for a station on this \
             machine; set CUPS_URI (or `gateway add --cups-uri`) to the address gateways reach"
        ));
    }
    if uri_host(&cups_uri).is_some_and(|h| h.parse::<IpAddr>().is_ok())
        && !conf.contains_key("TLS_SNI")
    {
        conf.insert("TLS_SNI".to_owned(), Value::Bool(false));
        ctx.warn(
            "the CUPS URI names an IP address: station.conf sets \"TLS_SNI\": false (mbedTLS \
             refuses IP literals otherwise), which also turns off the host name check",
        );
    }
    if sig_keys.is_empty() {
        ctx.warn(
            "the PKI has no update-signing key: no sig-N.key is exported, and the station runs \
             unsigned updates (add one with `cups-server init --signing-keys 1`)",
        );
    }
    let mut home = StationHome::from_cups_blob(eui, cups_uri, &slot.current.blob, sig_keys)?;
    home.station_conf = conf;
    let opts = ExportOptions {
        format: a.format,
        bootstrap: a.bootstrap,
        force: a.force,
        log_level: a.log_level.clone(),
    };
    let report = export::write_station_home(&a.station_home, &home, &opts)?;
    out!(
        "exported gateway {} (ID6 {}) to {}",
        eui.canonical(),
        eui.id6(),
        report.dir.display()
    );
    for f in &report.files {
        let name = f
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        out!("  {:0o}  {:>6} bytes  {name}", f.mode, f.len);
    }
    let note = if a.bootstrap {
        "bootstrap set: the first contact installs the regular set".to_owned()
    } else if report.set_crc == slot.current.crc {
        "equals the stored blob's: the first contact sends no CUPS credentials".to_owned()
    } else if a.format == ExportFormat::Pem {
        "PEM files: the first contact replaces them with the DER blob once".to_owned()
    } else {
        format!(
            "differs from the stored blob's {:08x}: the first contact resends the credentials",
            slot.current.crc
        )
    };
    out!("credential set CRC {:08x} ({note})", report.set_crc);
    out!(
        "copy {} to the gateway and start the station with it as its home directory",
        report.dir.display()
    );
    Ok(())
}

fn print_modes_and_uris(ctx: &Ctx, r: &GatewayRecord) {
    out!("CUPS auth   {}", cups_auth_name(r.cups_auth));
    out!("TC mode     {}", tc_mode_name(r.tc_mode));
    out!(
        "CUPS URI    {}",
        uri_text(
            r.cups_uri.as_deref(),
            ctx.settings.cups_uri.value.as_deref()
        )
    );
    out!(
        "TC URI      {}",
        uri_text(r.tc_uri.as_deref(), ctx.settings.tc_uri.value.as_deref())
    );
}

fn uri_text(own: Option<&str>, default: Option<&str>) -> String {
    match (own, default) {
        (Some(u), _) => u.to_owned(),
        (None, Some(d)) => format!("{d} (server default)"),
        (None, None) => "(server default, not configured: not sent)".to_owned(),
    }
}

fn print_slot(what: &str, slot: Option<&CredSlot>) {
    let Some(slot) = slot else {
        out!("{what:11} none yet (minted on first contact or by `gateway export`)");
        return;
    };
    let c = &slot.current;
    out!(
        "{what:11} {}  crc {:08x} ({})",
        blob_form(&c.blob),
        c.crc,
        c.crc
    );
    if let Some(serial) = &c.serial {
        out!("            serial {serial}");
    }
    if let Some(at) = c.not_after {
        out!("            expires {}", time_text(at));
    }
    if let Some(h) = &c.token_sha256 {
        out!(
            "            token sha256 {}…",
            h.get(..TOKEN_HASH_SHOWN).unwrap_or(h)
        );
    }
    out!("            issued {}", time_text(c.issued_at));
    match c.confirmed_at {
        Some(at) => out!("            confirmed {}", time_text(at)),
        None => out!("            not yet confirmed by the gateway"),
    }
    if slot.renew_requested {
        out!("            renewal requested: the next request gets fresh credentials");
    }
    if let Some(p) = &slot.previous {
        out!(
            "            previous crc {:08x}{}{} (accepted until the rotation is confirmed)",
            p.crc,
            p.serial
                .as_ref()
                .map_or_else(String::new, |s| format!(", serial {s}")),
            p.not_after
                .map_or_else(String::new, |t| format!(", expires {}", time_text(t)))
        );
    }
}

fn cups_auth_name(a: CupsAuth) -> &'static str {
    match a {
        CupsAuth::ClientCert => "client-cert",
        CupsAuth::Token => "token",
    }
}

fn tc_mode_name(m: TcMode) -> &'static str {
    match m {
        TcMode::ClientCert => "client-cert",
        TcMode::Token => "token",
        TcMode::ServerAuth => "server-auth",
    }
}

fn blob_form(blob: &[u8]) -> &'static str {
    match SafeBlob::new(blob).map(|b| b.form()) {
        Ok(BlobForm::Mtls) => "client-cert",
        Ok(BlobForm::Token) => "token",
        Ok(BlobForm::ServerAuth) => "server-auth",
        Err(_) => "INVALID BLOB",
    }
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn time_text(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn date(t: OffsetDateTime) -> String {
    let text = time_text(t);
    text.get(..19).map_or(text.clone(), str::to_owned)
}

/// A gateway record without secrets (`--json`).
#[derive(Serialize)]
struct GatewayView {
    eui: String,
    id6: String,
    cups_auth: CupsAuth,
    tc_mode: TcMode,
    cups_uri: Option<String>,
    tc_uri: Option<String>,
    effective_cups_uri: Option<String>,
    effective_tc_uri: Option<String>,
    labels: BTreeMap<String, String>,
    cups_cred: Option<SlotView>,
    tc_cred: Option<SlotView>,
    bootstrap_open: bool,
    own_creds_used_at: Option<String>,
    created_at: String,
}

#[derive(Serialize)]
struct SlotView {
    form: &'static str,
    crc: u32,
    serial: Option<String>,
    not_after: Option<String>,
    token_sha256_prefix: Option<String>,
    issued_at: String,
    confirmed: bool,
    confirmed_at: Option<String>,
    renew_requested: bool,
    previous: Option<PreviousView>,
}

#[derive(Serialize)]
struct PreviousView {
    crc: u32,
    serial: Option<String>,
    not_after: Option<String>,
}

impl GatewayView {
    fn new(ctx: &Ctx, r: &GatewayRecord) -> Self {
        Self {
            eui: r.eui.canonical().to_string(),
            id6: r.eui.id6().to_string(),
            cups_auth: r.cups_auth,
            tc_mode: r.tc_mode,
            cups_uri: r.cups_uri.clone(),
            tc_uri: r.tc_uri.clone(),
            effective_cups_uri: r
                .cups_uri
                .clone()
                .or_else(|| ctx.settings.cups_uri.value.clone()),
            effective_tc_uri: r
                .tc_uri
                .clone()
                .or_else(|| ctx.settings.tc_uri.value.clone()),
            labels: r.labels.clone(),
            cups_cred: r.cups_cred.as_ref().map(SlotView::new),
            tc_cred: r.tc_cred.as_ref().map(SlotView::new),
            bootstrap_open: r.bootstrap_open(),
            own_creds_used_at: r.own_creds_used_at.map(time_text),
            created_at: time_text(r.created_at),
        }
    }
}

impl SlotView {
    fn new(slot: &CredSlot) -> Self {
        let c: &IssuedCred = &slot.current;
        Self {
            form: blob_form(&c.blob),
            crc: c.crc,
            serial: c.serial.clone(),
            not_after: c.not_after.map(time_text),
            token_sha256_prefix: c
                .token_sha256
                .as_ref()
                .map(|h| h.get(..TOKEN_HASH_SHOWN).unwrap_or(h).to_owned()),
            issued_at: time_text(c.issued_at),
            confirmed: c.confirmed_at.is_some(),
            confirmed_at: c.confirmed_at.map(time_text),
            renew_requested: slot.renew_requested,
            previous: slot.previous.as_ref().map(|p| PreviousView {
                crc: p.crc,
                serial: p.serial.clone(),
                not_after: p.not_after.map(time_text),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let l = parse_labels(&["a=1".into(), "b=x=y".into(), "c=".into()]).expect("ok");
        assert_eq!(l.get("b").map(String::as_str), Some("x=y"));
        assert_eq!(l.get("c").map(String::as_str), Some(""));
        assert!(parse_labels(&["a".into()]).is_err());
        assert!(parse_labels(&["=1".into()]).is_err());
        assert!(parse_labels(&["a=1".into(), "a=2".into()]).is_err());
    }

    #[test]
    fn progress_from_progress_every_on() {
        let n = PROGRESS_EVERY;
        assert_eq!(
            progress_line("registered", n, n).as_deref(),
            Some("registered 1000/1000 gateways")
        );
        assert_eq!(progress_line("registered", n - 1, n - 1), None, "below");
        assert_eq!(
            progress_line("registered", n, n + 1).as_deref(),
            Some("registered 1000/1001 gateways")
        );
        assert_eq!(progress_line("registered", n + 1, n + 1), None);
        assert_eq!(progress_line("registered", 0, n), None);
        assert!(progress_line("marked", 2 * n, 3 * n).is_some());
    }

    #[test]
    fn add_euis_count_limit_and_overflow() {
        let one = |s: &str| vec![s.to_owned()];
        let euis = add_euis(&one("0016c001ff10fffe"), Some(3)).expect("ok");
        let hex: Vec<String> = euis.iter().map(|e| e.canonical().to_string()).collect();
        assert_eq!(
            hex,
            ["0016c001ff10fffe", "0016c001ff10ffff", "0016c001ff110000"]
        );
        // At, below and above the limit.
        assert_eq!(
            add_euis(&one("::1"), Some(MAX_ADD_COUNT))
                .expect("at the limit")
                .len() as u64,
            MAX_ADD_COUNT
        );
        assert_eq!(
            add_euis(&one("::1"), Some(MAX_ADD_COUNT - 1))
                .expect("below")
                .len() as u64,
            MAX_ADD_COUNT - 1
        );
        assert!(matches!(
            add_euis(&one("::1"), Some(MAX_ADD_COUNT + 1)),
            Err(CliError::Argument {
                what: "--count",
                ..
            })
        ));
        assert!(add_euis(&one("::1"), Some(0)).is_err());
        // The last EUI may be ffffffffffffffff, not one past it.
        let top = add_euis(&one("fffffffffffffffe"), Some(2)).expect("to the top");
        assert_eq!(top.last().map(|e| e.as_u64()), Some(u64::MAX));
        let err = add_euis(&one("fffffffffffffffe"), Some(3)).expect_err("overflow");
        assert!(err.to_string().contains("ffffffffffffffff"), "{err}");
        // --count takes one EUI; several EUIs without --count are taken in order.
        assert!(add_euis(&["::1".into(), "::2".into()], Some(2)).is_err());
        let listed = add_euis(&["::2".into(), "::1".into()], None).expect("list");
        assert_eq!(
            listed.iter().map(|e| e.as_u64()).collect::<Vec<_>>(),
            [2, 1]
        );
        assert!(add_euis(&["::2".into(), "nope".into()], None).is_err());
    }
}
