//! Scan jobs as the scanning application records them: their statuses, and which of those
//! are terminal (the only ones ever archived).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Scanning,
    ReadyToTransfer,
    Transferring,
    Paused,
    Cancelled,
    Failed,
    ScanComplete,
    Completed,
}

impl JobStatus {
    pub const TERMINAL: [JobStatus; 4] = [
        JobStatus::Cancelled,
        JobStatus::Failed,
        JobStatus::ScanComplete,
        JobStatus::Completed,
    ];

    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Scanning => "SCANNING",
            JobStatus::ReadyToTransfer => "READY_TO_TRANSFER",
            JobStatus::Transferring => "TRANSFERRING",
            JobStatus::Paused => "PAUSED",
            JobStatus::Cancelled => "CANCELLED",
            JobStatus::Failed => "FAILED",
            JobStatus::ScanComplete => "SCAN_COMPLETE",
            JobStatus::Completed => "COMPLETED",
        }
    }
}
