//! With the `log` feature, every station event also goes to the `log` facade (warnings for
//! problems). Its own test binary: it installs a global logger.

use std::sync::Mutex;

use cups_core::Eui64;
use cups_core::sig::NoVerifier;
use cups_core::station::{
    Action, CredFile, CredKind, FileId, FileSet, Instant, MemStore, Station, StationConfig,
    StationEvent, TransportError,
};

/// Records every log line.
struct Capture(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target() == "cups_core::station" {
            let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
            lines.push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn events_are_logged_with_problem_level() {
    log::set_logger(&CAPTURE).expect("first logger");
    log::set_max_level(log::LevelFilter::Trace);

    let store = MemStore::new().with(
        FileId::cred(CredKind::Cups, FileSet::Reg, CredFile::Uri),
        "http://reg:1",
    );
    let config = StationConfig::new(Eui64::new(0x0016_c001_ff10_a235).unwrap(), "t", "linux");
    let mut st = Station::new(store, NoVerifier, config, Instant::from_millis(0));
    let now = st.poll_timeout().expect("contacts CUPS at start");
    assert!(matches!(st.poll(now), Action::Connect(_)));
    st.on_error(now, TransportError::ConnectFailed);
    let events: Vec<StationEvent> = std::iter::from_fn(|| st.poll_event()).collect();
    let failed = events
        .iter()
        .find(|e| matches!(e, StationEvent::InteractionFailed { .. }))
        .expect("the failure is an event");

    let lines = CAPTURE.0.lock().unwrap();
    let line = lines
        .iter()
        .find(|(_, text)| text.starts_with(failed.name()))
        .expect("and a log line");
    assert_eq!(line.0, log::Level::Warn, "{line:?}");
    assert!(line.1.contains("InteractionFailed"), "{line:?}");
}
