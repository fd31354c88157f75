//! The metric catalog: each Prometheus metric a service exports, described once (name,
//! kind, unit, help) and registered at startup, every listed series at zero, so a scrape
//! shows it before its first event. Also the metrics both services have: the connection
//! pool's gauges, updated by a periodic task.

use std::time::Duration;

use deadpool_postgres::Pool;
use metrics::{Label, Unit};

/// What a metric measures over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric of the catalog.
#[derive(Clone, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
    /// Label sets registered at zero; empty: the unlabelled series.
    pub series: Vec<Vec<(&'static str, &'static str)>>,
}

impl Metric {
    pub fn counter(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::Counter, help)
    }

    pub fn gauge(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::Gauge, help)
    }

    pub fn histogram(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::Histogram, help)
    }

    fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Self {
            name,
            kind,
            unit: None,
            help,
            series: Vec::new(),
        }
    }

    pub fn unit(mut self, unit: Unit) -> Self {
        self.unit = Some(unit);
        self
    }

    /// Registers one series per value of `label` at zero.
    pub fn per(
        mut self,
        label: &'static str,
        values: impl IntoIterator<Item = &'static str>,
    ) -> Self {
        self.series = values.into_iter().map(|v| vec![(label, v)]).collect();
        self
    }

    /// Registers these label sets at zero.
    pub fn series(mut self, series: Vec<Vec<(&'static str, &'static str)>>) -> Self {
        self.series = series;
        self
    }

    /// The `# HELP` text: the help, then the unit.
    pub fn help_text(&self) -> String {
        match self.unit {
            Some(unit) => format!("{} (unit: {}).", self.help, unit.as_str()),
            None => format!("{}.", self.help),
        }
    }
}

/// Describes every metric and registers its series at zero (adding nothing to a series that
/// already counts). Installs the Prometheus recorder first if it is not yet.
pub fn register(catalog: &[Metric]) {
    let _ = crate::telemetry::prometheus();
    for metric in catalog {
        let help = metric.help_text();
        let series: Vec<Vec<Label>> = if metric.series.is_empty() {
            vec![Vec::new()]
        } else {
            metric
                .series
                .iter()
                .map(|labels| labels.iter().map(|(k, v)| Label::new(*k, *v)).collect())
                .collect()
        };
        match (metric.kind, metric.unit) {
            (Kind::Counter, Some(unit)) => metrics::describe_counter!(metric.name, unit, help),
            (Kind::Counter, None) => metrics::describe_counter!(metric.name, help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(metric.name, unit, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(metric.name, help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(metric.name, unit, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(metric.name, help),
        }
        for labels in series {
            match metric.kind {
                Kind::Counter => metrics::counter!(metric.name, labels).increment(0),
                Kind::Gauge => metrics::gauge!(metric.name, labels).increment(0.0),
                // a registered histogram renders with empty buckets
                Kind::Histogram => drop(metrics::histogram!(metric.name, labels)),
            }
        }
    }
}

pub const POOL_MAX: &str = "db_pool_max_connections";
pub const POOL_OPEN: &str = "db_pool_connections";
pub const POOL_IDLE: &str = "db_pool_idle_connections";
pub const POOL_WAITING: &str = "db_pool_waiting_callers";

/// The pool's gauges, labelled `pool` (the service's schema).
pub fn pool_catalog(pool: &'static str) -> Vec<Metric> {
    let series = || vec![vec![("pool", pool)]];
    vec![
        Metric::gauge(POOL_MAX, "Most PostgreSQL connections the pool may open").series(series()),
        Metric::gauge(
            POOL_OPEN,
            "PostgreSQL connections the pool holds open, busy or idle",
        )
        .series(series()),
        Metric::gauge(POOL_IDLE, "Open PostgreSQL connections idle in the pool").series(series()),
        Metric::gauge(
            POOL_WAITING,
            "Callers waiting for a PostgreSQL connection (above zero for long: the pool is too \
             small or the database slow)",
        )
        .series(series()),
    ]
}

/// Sets the pool gauges every `period`, for as long as the future runs.
pub async fn watch_pool(pool: Pool, name: &'static str, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let status = pool.status();
        metrics::gauge!(POOL_MAX, "pool" => name).set(status.max_size as f64);
        metrics::gauge!(POOL_OPEN, "pool" => name).set(status.size as f64);
        metrics::gauge!(POOL_IDLE, "pool" => name).set(status.available as f64);
        metrics::gauge!(POOL_WAITING, "pool" => name).set(status.waiting as f64);
    }
}

/// Runs `update` every `period`, logging (not stopping at) its failures; for gauges read
/// from the database.
pub async fn every<F, Fut, E>(period: Duration, what: &'static str, mut update: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = update().await {
            tracing::warn!(%error, gauge = what, "cannot update gauges");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_text_names_the_unit() {
        let metric = Metric::histogram("x_seconds", "Time to do x").unit(Unit::Seconds);
        assert_eq!(metric.help_text(), "Time to do x (unit: seconds).");
        assert_eq!(Metric::counter("y_total", "Ys").help_text(), "Ys.");
    }
}
