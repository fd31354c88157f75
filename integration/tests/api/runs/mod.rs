//! Migration runs through the gRPC API on PostgreSQL and Azurite, by behaviour: planning
//! (dry runs, states, validation), live copies and their item causes, failing closed,
//! watching, and replicas taking over each other's work.

use std::time::Duration;

mod crash_matrix;
mod fail_closed;
mod fair;
mod faults;
mod live;
mod planning;
mod plans;
mod providers;
mod scope;
mod takeover;
mod watch;

/// How long a test waits for a run to get somewhere.
const WAIT: Duration = Duration::from_secs(60);
