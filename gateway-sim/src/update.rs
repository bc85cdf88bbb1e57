//! What "running" an update does to a simulated gateway.
//!
//! A real station runs `/tmp/update.bin` as a program; a real update script installs a package,
//! writes the new version into `version.txt` and deletes `/tmp/update.bin` (else the station
//! runs it again at every start). The simulator does not execute anything: an
//! [`UpdateModel`] recognises the payload and says which version it installs.
//!
//! Two ways to recognise a payload, tried in order:
//!
//! 1. exact payloads registered with [`UpdateModel::with_payload`];
//! 2. with [`UpdateModel::scripts`], a shell script containing a line
//!    `echo <version> > version.txt` (the form of the golden vectors' update scripts).
//!
//! Anything else is [`UpdateOutcome::Unrecognised`]: the simulated station "ran" it, nothing
//! changed, and the update file is deleted (counted in the report).

use std::sync::Arc;

/// Longest version string an update may install (the station's `package` limit).
pub const MAX_VERSION_LEN: usize = cups_core::request::MAX_PACKAGE_LEN;
/// The command a recognised script uses to write its version.
const ECHO: &str = "echo ";
/// Where a recognised script writes its version.
const VERSION_REDIRECT: &str = "> version.txt";

/// What running an update payload did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum UpdateOutcome {
    /// The payload installs this version.
    Applied {
        /// The new `version.txt`.
        version: String,
    },
    /// The payload was not recognised: nothing changed.
    Unrecognised,
}

/// Recognises update payloads (cheap to clone: the payload table is shared).
#[derive(Clone, Debug, Default)]
pub struct UpdateModel {
    payloads: Arc<Vec<(Vec<u8>, String)>>,
    scripts: bool,
}

impl UpdateModel {
    /// A model that recognises nothing.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// A model that recognises `echo <version> > version.txt` scripts.
    #[must_use]
    pub fn scripts() -> Self {
        Self {
            payloads: Arc::default(),
            scripts: true,
        }
    }

    /// Also recognise exactly `payload` as installing `version`.
    #[must_use]
    pub fn with_payload(mut self, payload: impl Into<Vec<u8>>, version: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.payloads).push((payload.into(), version.into()));
        self
    }

    /// What running `payload` does.
    #[must_use]
    pub fn apply(&self, payload: &[u8]) -> UpdateOutcome {
        if let Some((_, v)) = self.payloads.iter().find(|(p, _)| p == payload) {
            return UpdateOutcome::Applied { version: v.clone() };
        }
        if self.scripts
            && let Some(version) = script_version(payload)
        {
            return UpdateOutcome::Applied { version };
        }
        UpdateOutcome::Unrecognised
    }
}

/// The version an `echo <v> > version.txt` line writes (the last such line wins).
fn script_version(payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    if !text.starts_with("#!") {
        return None;
    }
    text.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix(ECHO)?;
        let v = rest.strip_suffix(VERSION_REDIRECT)?.trim();
        let v = v.trim_matches('"').trim_matches('\'');
        (!v.is_empty() && v.len() <= MAX_VERSION_LEN && v.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| v.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &[u8] = b"#!/bin/sh\n# CUPS golden vector full\necho full >> update-marker.txt\necho 2.0.0 > version.txt\nrm -f /tmp/update.bin\n";

    #[test]
    fn recognises_the_vector_script() {
        assert_eq!(
            UpdateModel::scripts().apply(FULL),
            UpdateOutcome::Applied {
                version: "2.0.0".into()
            }
        );
        assert_eq!(UpdateModel::none().apply(FULL), UpdateOutcome::Unrecognised);
    }

    #[test]
    fn exact_payloads_first() {
        let m = UpdateModel::scripts().with_payload(FULL.to_vec(), "9.9.9");
        assert_eq!(
            m.apply(FULL),
            UpdateOutcome::Applied {
                version: "9.9.9".into()
            }
        );
        assert_eq!(m.apply(b"\x7fELF"), UpdateOutcome::Unrecognised);
    }

    #[test]
    fn version_length_limit() {
        let script = |len: usize| format!("#!/bin/sh\necho {} > version.txt\n", "1".repeat(len));
        let m = UpdateModel::scripts();
        assert!(matches!(
            m.apply(script(MAX_VERSION_LEN - 1).as_bytes()),
            UpdateOutcome::Applied { .. }
        ));
        assert!(matches!(
            m.apply(script(MAX_VERSION_LEN).as_bytes()),
            UpdateOutcome::Applied { .. }
        ));
        assert_eq!(
            m.apply(script(MAX_VERSION_LEN + 1).as_bytes()),
            UpdateOutcome::Unrecognised
        );
    }
}
