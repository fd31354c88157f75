//! Integrity sweeps, as both services run them: which stored objects a sweep reads (a
//! fixed sample by id, within a byte budget), how a failed read is judged (MISSING,
//! CORRUPT or UNVERIFIABLE: a store that could not be read is never counted as OK), and the
//! totals a sweep reports and audits.

use croner::Cron;
use stowage_proto::integrity::v1 as pb;
use uuid::Uuid;

use crate::{
    api::InvalidArgument,
    blob::{BlobError, ObjectError},
    format::FormatError,
    schedule::parse_cron,
    tenant_keys::is_tenant_key,
};

/// What became of one object a sweep read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Read, decrypted and matching its digest.
    Ok,
    /// The store has no object under the key.
    Missing,
    /// The object is there but does not decrypt, or its bytes or length differ.
    Corrupt,
    /// The store could not be read (unreachable, or its credential refused).
    Unverifiable,
    /// Its tenant's key was destroyed: unreadable by design (crypto-shredded).
    Shredded,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Ok,
        Verdict::Missing,
        Verdict::Corrupt,
        Verdict::Unverifiable,
        Verdict::Shredded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Missing => "missing",
            Verdict::Corrupt => "corrupt",
            Verdict::Unverifiable => "unverifiable",
            Verdict::Shredded => "shredded",
        }
    }

    /// A failed read of an object through the verified layer.
    pub fn of(error: &ObjectError) -> Self {
        match error {
            ObjectError::Blob(BlobError::NotFound(_)) => Verdict::Missing,
            ObjectError::Format(FormatError::UnknownKek(id)) if is_tenant_key(id) => {
                Verdict::Shredded
            }
            ObjectError::Format(_)
            | ObjectError::ChecksumMismatch { .. }
            | ObjectError::LengthMismatch { .. } => Verdict::Corrupt,
            ObjectError::Blob(_) | ObjectError::Source(_) | ObjectError::Hashing(_) => {
                Verdict::Unverifiable
            }
        }
    }

    /// Whether the sweep found the object damaged or gone (evidence of a loss).
    pub fn is_failure(self) -> bool {
        matches!(self, Verdict::Missing | Verdict::Corrupt)
    }
}

/// Which objects a sweep reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// About this percentage of the objects, picked by id (1 to 100).
    pub percent: u8,
    /// At most this many stored bytes read.
    pub byte_budget: Option<i64>,
}

impl Sampling {
    /// From the wire: `sample_percent` 0 is every object, `byte_budget` 0 is no limit.
    pub fn parse(sample_percent: i32, byte_budget: i64) -> Result<Self, InvalidArgument> {
        let percent = match sample_percent {
            0 => 100,
            n @ 1..=100 => n as u8,
            _ => {
                return Err(InvalidArgument::new(
                    "sample_percent",
                    "must be from 1 to 100 (0 checks every object)",
                ));
            }
        };
        let byte_budget = match byte_budget {
            0 => None,
            n if n > 0 => Some(n),
            _ => {
                return Err(InvalidArgument::new(
                    "byte_budget",
                    "must not be negative (0 is no limit)",
                ));
            }
        };
        Ok(Self {
            percent,
            byte_budget,
        })
    }

    /// Whether the object `id` is in the sample: a fixed pick by id, so two sweeps of the
    /// same sample check the same objects.
    pub fn picks(&self, id: Uuid) -> bool {
        self.percent >= 100 || (id.as_u128() % 100) < u128::from(self.percent)
    }

    /// Whether reading `stored_bytes` more stays within the budget, given `summary`.
    pub fn affords(&self, summary: &Summary, stored_bytes: i64) -> bool {
        self.byte_budget
            .is_none_or(|budget| summary.bytes_read + stored_bytes <= budget)
    }
}

/// Scheduled sweeps as a service's `[{section}]` sets them (`verify_schedule`,
/// `verify_sample_percent`, `verify_byte_budget`): their cron and sampling, or `None`
/// when no schedule is set. A bad value is an error naming its setting.
pub fn scheduled(
    section: &str,
    schedule: Option<&str>,
    sample_percent: i32,
    byte_budget: i64,
) -> Result<Option<(Cron, Sampling)>, String> {
    let Some(schedule) = schedule else {
        return Ok(None);
    };
    let cron = parse_cron(&format!("{section}.verify_schedule"), schedule)?;
    let sampling = Sampling::parse(sample_percent, byte_budget)
        .map_err(|e| format!("{section}.verify_{e}"))?;
    Ok(Some((cron, sampling)))
}

/// A sweep's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub ok: i64,
    pub missing: i64,
    pub corrupt: i64,
    pub unverifiable: i64,
    pub shredded: i64,
    pub bytes_read: i64,
    /// The byte budget ended the sweep before every sampled object was checked.
    pub budget_exhausted: bool,
}

impl Summary {
    /// Counts an object of `stored_bytes` read.
    pub fn add(&mut self, verdict: Verdict, stored_bytes: i64) {
        self.bytes_read += stored_bytes;
        let count = match verdict {
            Verdict::Ok => &mut self.ok,
            Verdict::Missing => &mut self.missing,
            Verdict::Corrupt => &mut self.corrupt,
            Verdict::Unverifiable => &mut self.unverifiable,
            Verdict::Shredded => &mut self.shredded,
        };
        *count += 1;
    }

    /// The totals as an audit entry's detail carries them.
    pub fn detail(&self, sampling: &Sampling) -> serde_json::Value {
        serde_json::json!({
            "sample_percent": sampling.percent,
            "byte_budget": sampling.byte_budget,
            "ok": self.ok,
            "missing": self.missing,
            "corrupt": self.corrupt,
            "unverifiable": self.unverifiable,
            "shredded": self.shredded,
            "bytes_read": self.bytes_read,
            "budget_exhausted": self.budget_exhausted,
        })
    }
}

/// The first [`Named::MOST`] missing and the first corrupt objects of a sweep, by id: what
/// its evidence names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Named {
    pub missing: Vec<Uuid>,
    pub corrupt: Vec<Uuid>,
}

impl Named {
    pub const MOST: usize = 100;

    /// Notes object `id` if its verdict is a failure and there is room.
    pub fn note(&mut self, verdict: Verdict, id: Uuid) {
        let named = match verdict {
            Verdict::Missing => &mut self.missing,
            Verdict::Corrupt => &mut self.corrupt,
            Verdict::Ok | Verdict::Unverifiable | Verdict::Shredded => return,
        };
        if named.len() < Self::MOST {
            named.push(id);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty()
    }
}

impl From<Verdict> for pb::Verification {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Ok => pb::Verification::Ok,
            Verdict::Missing => pb::Verification::Missing,
            Verdict::Corrupt => pb::Verification::Corrupt,
            Verdict::Unverifiable => pb::Verification::Unverifiable,
            Verdict::Shredded => pb::Verification::Shredded,
        }
    }
}

impl From<Summary> for pb::VerifySummary {
    fn from(summary: Summary) -> Self {
        Self {
            ok: summary.ok,
            missing: summary.missing,
            corrupt: summary.corrupt,
            unverifiable: summary.unverifiable,
            shredded: summary.shredded,
            bytes_read: summary.bytes_read,
            budget_exhausted: summary.budget_exhausted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_is_missing_corrupt_or_unverifiable_never_ok() {
        let of = |error| Verdict::of(&error);
        assert_eq!(
            of(ObjectError::Blob(BlobError::NotFound("k".into()))),
            Verdict::Missing
        );
        let mismatch = ObjectError::ChecksumMismatch {
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(of(mismatch), Verdict::Corrupt);
        let short = ObjectError::LengthMismatch {
            expected: 2,
            actual: 1,
        };
        assert_eq!(of(short), Verdict::Corrupt);
        let denied = ObjectError::Blob(BlobError::PermissionDenied("k".into()));
        assert_eq!(of(denied), Verdict::Unverifiable);
        assert_eq!(
            of(ObjectError::Source("gone".into())),
            Verdict::Unverifiable
        );
    }

    #[test]
    fn a_sample_is_a_fixed_share_of_ids() {
        let ids: Vec<Uuid> = (0..1000u128).map(Uuid::from_u128).collect();
        let share = |percent| {
            let sampling = Sampling {
                percent,
                byte_budget: None,
            };
            ids.iter().filter(|id| sampling.picks(**id)).count()
        };
        assert_eq!((share(100), share(0), share(10)), (1000, 0, 100));
    }

    #[test]
    fn a_sweep_names_its_first_failures_of_each_kind() {
        let mut named = Named::default();
        named.note(Verdict::Ok, Uuid::from_u128(1));
        named.note(Verdict::Unverifiable, Uuid::from_u128(2));
        assert!(named.is_empty());
        for n in 0..150 {
            named.note(Verdict::Missing, Uuid::from_u128(n));
        }
        named.note(Verdict::Corrupt, Uuid::from_u128(7));
        assert_eq!((named.missing.len(), named.corrupt.len()), (Named::MOST, 1));
        assert_eq!(named.missing[0], Uuid::from_u128(0));
    }

    #[test]
    fn a_budget_stops_before_the_object_that_would_exceed_it() {
        let sampling = Sampling {
            percent: 100,
            byte_budget: Some(10),
        };
        let mut summary = Summary::default();
        assert!(sampling.affords(&summary, 10));
        summary.add(Verdict::Ok, 6);
        assert!(sampling.affords(&summary, 4));
        assert!(!sampling.affords(&summary, 5));
    }

    #[test]
    fn a_sweep_schedule_is_off_unless_set_and_names_a_bad_setting() {
        assert!(scheduled("archive", None, 100, 0).unwrap().is_none());
        let (_, sampling) = scheduled("archive", Some("0 4 * * 0"), 5, 0)
            .unwrap()
            .unwrap();
        assert_eq!(sampling.percent, 5);
        let bad = scheduled("migration", Some("0 4 * * 0"), 101, 0).unwrap_err();
        assert!(bad.starts_with("migration.verify_sample_percent"), "{bad}");
        let bad = scheduled("archive", Some("weekly"), 100, 0).unwrap_err();
        assert!(bad.starts_with("archive.verify_schedule"), "{bad}");
    }

    #[test]
    fn each_malformed_sweep_field_is_named() {
        assert_eq!(Sampling::parse(0, 0).unwrap().percent, 100);
        assert_eq!(
            Sampling::parse(5, 1 << 20).unwrap().byte_budget,
            Some(1 << 20)
        );
        assert_eq!(Sampling::parse(101, 0).unwrap_err().field, "sample_percent");
        assert_eq!(Sampling::parse(-1, 0).unwrap_err().field, "sample_percent");
        assert_eq!(Sampling::parse(1, -1).unwrap_err().field, "byte_budget");
    }
}
