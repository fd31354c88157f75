//! Migration runs through the gRPC API on PostgreSQL and Azurite, by behaviour: planning
//! (dry runs, states, validation), live copies and their item causes, failing closed,
//! watching, replicas taking over each other's work, and verified cleanup of sources.

use std::time::Duration;

mod cleanup;
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
