//! A small metrics registry on atomics, rendered in the Prometheus text exposition format
//! (version 0.0.4).
//!
//! Three kinds, all lock-free and allocation-free on the hot path:
//!
//! * [`Counter`] — a monotonically increasing `u64`;
//! * [`Gauge`] — an `i64` that goes up and down (open connections);
//! * [`Histogram`] — fixed, caller-chosen bucket bounds (seconds), one atomic per bucket;
//! * [`CounterVec`] — counters over one label with a fixed, static set of values plus `other`.
//!
//! Rendering is done by whoever owns the metrics with a [`TextWriter`] over a `String`, so
//! a registry is simply a struct of these fields and a `render` function: no global state, no
//! dynamic registration, nothing that can fail at run time.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// The `Content-Type` of a `/metrics` response.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket upper bounds (seconds) for request latencies: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    #[must_use]
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Add one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// A gauge at zero.
    #[must_use]
    pub const fn new() -> Self {
        Self(AtomicI64::new(0))
    }

    /// Add one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtract one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Set the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A histogram with fixed bucket upper bounds in seconds.
///
/// Observations are durations; the sum is kept in nanoseconds (an `u64` holds 584 years).
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds, ascending, in seconds (the implicit `+Inf` bucket is not listed).
    bounds: &'static [f64],
    /// Per-bucket counts (not cumulative): `bounds.len() + 1` entries, the last is `+Inf`.
    buckets: Box<[AtomicU64]>,
    /// Sum of all observations, nanoseconds.
    sum_nanos: AtomicU64,
    /// Number of observations.
    count: AtomicU64,
}

/// A consistent-enough copy of a [`Histogram`] (each field read once, relaxed).
#[derive(Clone, PartialEq, Debug)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, cumulative count)`, ending with `(+Inf, count)`.
    pub cumulative: Vec<(f64, u64)>,
    /// Sum of observations in seconds.
    pub sum_seconds: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// A histogram over `bounds` (ascending upper bounds in seconds, e.g. [`LATENCY_BUCKETS`]).
    #[must_use]
    pub fn new(bounds: &'static [f64]) -> Self {
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            bounds,
            buckets,
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let idx = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(bucket) = self.buckets.get(idx) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of observations.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Read the histogram (cumulative buckets as Prometheus wants them).
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0u64;
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        for (i, bucket) in self.buckets.iter().enumerate() {
            acc = acc.saturating_add(bucket.load(Ordering::Relaxed));
            let bound = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            cumulative.push((bound, acc));
        }
        // Buckets and count are separate atomics: report the bucket total as the count so
        // that `+Inf == _count` always holds in one scrape.
        HistogramSnapshot {
            cumulative,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: acc,
        }
    }
}

/// Counters over one label whose values are fixed at compile time; values not in the set
/// are counted under `other`.
#[derive(Debug)]
pub struct CounterVec {
    /// The label name.
    label: &'static str,
    /// The known label values.
    values: &'static [&'static str],
    /// One counter per value, plus the `other` counter last.
    counters: Box<[Counter]>,
}

/// The label value under which a [`CounterVec`] counts values outside its set.
pub const OTHER_LABEL_VALUE: &str = "other";

impl CounterVec {
    /// Counters for `label` = each of `values` (and `other`).
    #[must_use]
    pub fn new(label: &'static str, values: &'static [&'static str]) -> Self {
        let counters = (0..=values.len()).map(|_| Counter::new()).collect();
        Self {
            label,
            values,
            counters,
        }
    }

    /// Count one event for `value`.
    pub fn inc(&self, value: &str) {
        self.slot(value).inc();
    }

    /// The counter of `value` (or of `other`).
    #[must_use]
    pub fn get(&self, value: &str) -> u64 {
        self.slot(value).get()
    }

    fn slot(&self, value: &str) -> &Counter {
        let idx = self
            .values
            .iter()
            .position(|v| *v == value)
            .unwrap_or(self.values.len());
        // `counters` has `values.len() + 1` entries, so both indices exist; the fallback is
        // the `other` slot again.
        self.counters
            .get(idx)
            .or_else(|| self.counters.last())
            .unwrap_or(&ZERO_COUNTER)
    }
}

/// Target of an impossible fallback in [`CounterVec::slot`].
static ZERO_COUNTER: Counter = Counter::new();

/// The kind of a metric family, for its `# TYPE` line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes metric families in the Prometheus text format into a `String`.
///
/// Names and help texts are the caller's constants (no escaping is applied to names; help
/// text and label values are escaped as the format requires).
#[derive(Debug)]
pub struct TextWriter<'a> {
    out: &'a mut String,
}

impl<'a> TextWriter<'a> {
    /// Append to `out`.
    pub fn new(out: &'a mut String) -> Self {
        Self { out }
    }

    /// `# HELP` and `# TYPE` lines of a family.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let _ = writeln!(self.out, "# HELP {name} {}", Escaped(help, false));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample line: `name{l1="v1",...} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A whole counter family with one unlabelled sample.
    pub fn counter(&mut self, name: &str, help: &str, c: &Counter) {
        self.family(name, help, Kind::Counter);
        self.sample(name, &[], c.get());
    }

    /// A whole gauge family with one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, g: &Gauge) {
        self.family(name, help, Kind::Gauge);
        self.sample(name, &[], g.get());
    }

    /// A whole counter family from a [`CounterVec`]; values never seen are still listed
    /// (zero), so dashboards see every series from the first scrape.
    pub fn counter_vec(&mut self, name: &str, help: &str, v: &CounterVec) {
        self.family(name, help, Kind::Counter);
        let all = v.values.iter().copied().chain([OTHER_LABEL_VALUE]);
        for (value, c) in all.zip(v.counters.iter()) {
            self.sample(name, &[(v.label, value)], c.get());
        }
    }

    /// A whole histogram family (`_bucket`, `_sum`, `_count`).
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, help, Kind::Histogram);
        let snap = h.snapshot();
        for (bound, count) in &snap.cumulative {
            let le = if bound.is_infinite() {
                "+Inf".to_owned()
            } else {
                bound.to_string()
            };
            self.out.push_str(name);
            self.out.push_str("_bucket");
            self.labels(&[], Some(&le));
            let _ = writeln!(self.out, " {count}");
        }
        let _ = writeln!(self.out, "{name}_sum {}", snap.sum_seconds);
        let _ = writeln!(self.out, "{name}_count {}", snap.count);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        let extra = le.map(|v| ("le", v));
        for (k, v) in labels.iter().copied().chain(extra) {
            if !first {
                self.out.push(',');
            }
            first = false;
            let _ = write!(self.out, "{k}=\"{}\"", Escaped(v, true));
        }
        self.out.push('}');
    }
}

/// Escapes `\` and newlines (and `"` in label values) as the text format requires.
struct Escaped<'a>(&'a str, bool);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '"' if self.1 => f.write_str("\\\"")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_gauge() {
        let c = Counter::new();
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);
        let g = Gauge::new();
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
        g.set(-3);
        assert_eq!(g.get(), -3);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inclusive() {
        static BOUNDS: &[f64] = &[0.001, 0.01, 0.1];
        let h = Histogram::new(BOUNDS);
        h.observe(Duration::from_micros(1000)); // exactly at the first bound: first bucket
        h.observe(Duration::from_micros(1001)); // just above: second
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_secs(3)); // +Inf
        let s = h.snapshot();
        assert_eq!(
            s.cumulative,
            vec![(0.001, 1), (0.01, 2), (0.1, 3), (f64::INFINITY, 4)]
        );
        assert_eq!(s.count, 4);
        assert!((s.sum_seconds - 3.052_001).abs() < 1e-9);
    }

    #[test]
    fn counter_vec_counts_unknown_values_as_other() {
        let v = CounterVec::new("status", &["200", "404"]);
        v.inc("200");
        v.inc("200");
        v.inc("418");
        assert_eq!(v.get("200"), 2);
        assert_eq!(v.get("404"), 0);
        assert_eq!(v.get("other"), 1);
        assert_eq!(v.get("999"), 1);
    }

    #[test]
    fn text_format() {
        static BOUNDS: &[f64] = &[0.5, 1.0];
        let mut out = String::new();
        let mut w = TextWriter::new(&mut out);
        let c = Counter::new();
        c.add(7);
        w.counter("x_total", "An \"x\"\\ counter\nover lines.", &c);
        let v = CounterVec::new("status", &["200"]);
        v.inc("200");
        w.counter_vec("req_total", "Requests.", &v);
        w.sample("odd", &[("l", "a\"b\\c\nd")], 1);
        let h = Histogram::new(BOUNDS);
        h.observe(Duration::from_millis(250));
        h.observe(Duration::from_millis(750));
        w.histogram("lat_seconds", "Latency.", &h);
        let expected = "\
# HELP x_total An \"x\"\\\\ counter\\nover lines.
# TYPE x_total counter
x_total 7
# HELP req_total Requests.
# TYPE req_total counter
req_total{status=\"200\"} 1
req_total{status=\"other\"} 0
odd{l=\"a\\\"b\\\\c\\nd\"} 1
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{le=\"0.5\"} 1
lat_seconds_bucket{le=\"1\"} 2
lat_seconds_bucket{le=\"+Inf\"} 2
lat_seconds_sum 1
lat_seconds_count 2
";
        assert_eq!(out, expected);
    }
}
