//! The pure rules of recording, no I/O: how one item ended ([`Outcome`]), and how that
//! ends its item row under what the recording finds of the run and its target
//! ([`ending`]): the state, cause and bytes, and the flip of a verified copy.

use stowage_shared::blob::Receipt;
use uuid::Uuid;

use crate::{
    db::{artifacts::Flip, items::Ending},
    domain::{
        artifacts::object_key,
        model::{
            bindings::BindingState,
            runs::{ItemCause, ItemState, RunItem, RunState},
        },
    },
    error::Result,
};

/// How one item ended, before it is recorded.
#[derive(Debug)]
pub(super) enum Outcome {
    Migrated {
        source: Uuid,
        receipt: Receipt,
    },
    Skipped(ItemCause),
    Failed(ItemCause, String),
    /// The target did not take the write after every attempt: fail the run closed.
    TargetDown(String),
    /// The run stopped before the copy began: the item goes back to the queue.
    Unstarted,
}

/// What the recording statement finds: the run still running, its target still active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Verdict {
    pub(super) running: bool,
    pub(super) target_active: bool,
}

impl Verdict {
    /// What almost every batch finds.
    pub(super) const ON: Verdict = Verdict {
        running: true,
        target_active: true,
    };

    pub(super) fn of(run: RunState, target: Option<BindingState>) -> Self {
        let running = run == RunState::Running;
        Verdict {
            running,
            target_active: running && target == Some(BindingState::Active),
        }
    }
}

/// How an outcome ends its item under `verdict`, or `None` if it is not recorded (an
/// unstarted item). A verified copy is MIGRATED with its flip only while the run runs and
/// its target is active (the recording statement makes it SKIPPED, already on the target
/// or deleted, if the flip finds the artifact moved or gone); a copy that came too late
/// FAILED with the target unavailable; a failure keeps its cause.
pub(super) fn ending(
    item: &RunItem,
    outcome: &Outcome,
    verdict: Verdict,
    target: Uuid,
) -> Result<Option<Ending>> {
    let ended = |state, cause: ItemCause, detail: String| Ending {
        artifact_id: item.artifact_id,
        state,
        cause: Some(cause),
        detail,
        bytes: 0,
        flip: None,
    };
    Ok(Some(match outcome {
        Outcome::Migrated { source, receipt } if verdict.target_active => Ending {
            artifact_id: item.artifact_id,
            state: ItemState::Migrated,
            cause: None,
            detail: String::new(),
            bytes: i64::try_from(receipt.plaintext_len).unwrap_or(i64::MAX),
            flip: Some(Flip {
                id: item.artifact_id,
                source: *source,
                object_key: object_key(item.artifact_id, target)?.to_string(),
                stored_bytes: i64::try_from(receipt.stored_len).unwrap_or(i64::MAX),
                kek_id: receipt.kek_id.clone(),
            }),
        },
        Outcome::Migrated { .. } if !verdict.running => ended(
            ItemState::Failed,
            ItemCause::TargetUnavailable,
            "the run ended before this copy was recorded; the artifact stays on its source"
                .to_owned(),
        ),
        Outcome::Migrated { .. } => ended(
            ItemState::Failed,
            ItemCause::TargetUnavailable,
            format!("binding {target} stopped being active; the artifact stays on its source"),
        ),
        Outcome::Skipped(cause) => ended(ItemState::Skipped, *cause, String::new()),
        Outcome::Failed(cause, detail) => ended(ItemState::Failed, *cause, detail.clone()),
        Outcome::TargetDown(detail) => ended(
            ItemState::Failed,
            ItemCause::TargetUnavailable,
            detail.clone(),
        ),
        Outcome::Unstarted => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TARGET: Uuid = Uuid::from_u128(7);
    const ON: Verdict = Verdict::ON;

    fn migrated(plaintext_len: u64) -> Outcome {
        Outcome::Migrated {
            source: Uuid::from_u128(1),
            receipt: Receipt {
                sha256: String::new(),
                plaintext_len,
                stored_len: plaintext_len + 32,
                kek_id: "k1".into(),
            },
        }
    }

    fn item() -> RunItem {
        RunItem {
            run_id: Uuid::from_u128(2),
            artifact_id: Uuid::from_u128(3),
            source_binding_id: Uuid::from_u128(1),
            state: ItemState::Running,
            size_bytes: 5,
            cause: None,
            cause_detail: None,
            attempts: 1,
            start_time: None,
            end_time: None,
            outcome_seq: None,
        }
    }

    fn state(outcome: &Outcome, verdict: Verdict) -> Option<(ItemState, Option<ItemCause>)> {
        ending(&item(), outcome, verdict, TARGET)
            .unwrap()
            .map(|e| (e.state, e.cause))
    }

    #[test]
    fn a_verified_copy_is_migrated_with_its_plaintext_bytes_and_flipped() {
        let ending = ending(&item(), &migrated(5), ON, TARGET).unwrap();
        let ending = ending.expect("an ending");
        assert_eq!(
            (ending.state, ending.cause, ending.bytes),
            (ItemState::Migrated, None, 5)
        );
        let flip = ending.flip.expect("a flip");
        assert_eq!((flip.stored_bytes, flip.kek_id.as_str()), (37, "k1"));
        assert!(flip.object_key.contains(&TARGET.to_string()));
    }

    #[test]
    fn a_copy_recorded_after_the_run_ended_fails_with_the_target_unavailable() {
        let ended = Verdict::of(RunState::Failed, Some(BindingState::Active));
        assert_eq!(
            state(&migrated(5), ended),
            Some((ItemState::Failed, Some(ItemCause::TargetUnavailable)))
        );
    }

    #[test]
    fn a_copy_to_a_target_no_longer_active_fails_and_names_the_binding() {
        let inactive = Verdict::of(RunState::Running, Some(BindingState::Disabled));
        let ending = ending(&item(), &migrated(5), inactive, TARGET).unwrap();
        let ending = ending.expect("an ending");
        assert_eq!(ending.state, ItemState::Failed);
        assert!(ending.flip.is_none());
        assert!(
            ending.detail.contains(&TARGET.to_string()),
            "{}",
            ending.detail
        );
    }

    #[test]
    fn the_verdict_is_on_only_for_a_running_run_with_an_active_target() {
        assert_eq!(
            Verdict::of(RunState::Running, Some(BindingState::Active)),
            Verdict::ON
        );
        for (run, target) in [
            (RunState::Running, None),
            (RunState::Running, Some(BindingState::Pending)),
            (RunState::Cancelled, Some(BindingState::Active)),
        ] {
            assert!(
                !Verdict::of(run, target).target_active,
                "{run:?} {target:?}"
            );
        }
    }

    #[test]
    fn a_target_that_did_not_take_the_write_fails_the_item_with_its_detail() {
        let down = Outcome::TargetDown("refused".into());
        let ending = ending(&item(), &down, ON, TARGET)
            .unwrap()
            .expect("an ending");
        assert_eq!(ending.cause, Some(ItemCause::TargetUnavailable));
        assert_eq!(ending.detail, "refused");
    }

    #[test]
    fn an_unstarted_item_is_not_recorded() {
        assert!(
            ending(&item(), &Outcome::Unstarted, ON, TARGET)
                .unwrap()
                .is_none()
        );
    }

    fn any_cause() -> impl Strategy<Value = ItemCause> {
        prop::sample::select(ItemCause::ALL)
    }

    fn any_outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            (0u64..1 << 40).prop_map(migrated),
            any_cause().prop_map(Outcome::Skipped),
            (any_cause(), ".{0,8}").prop_map(|(c, d)| Outcome::Failed(c, d)),
            ".{0,8}".prop_map(Outcome::TargetDown),
            Just(()).prop_map(|()| Outcome::Unstarted),
        ]
    }

    proptest! {
        #[test]
        fn only_a_copy_on_an_active_target_is_migrated_flipped_and_counts_bytes(
            outcome in any_outcome(), running: bool, active: bool,
        ) {
            let was_migrated = matches!(outcome, Outcome::Migrated { .. });
            let verdict = Verdict { running, target_active: running && active };
            match ending(&item(), &outcome, verdict, TARGET).unwrap() {
                Some(ending) => {
                    let migrated = ending.state == ItemState::Migrated;
                    prop_assert_eq!(migrated, was_migrated && verdict.target_active);
                    prop_assert_eq!(ending.flip.is_some(), migrated);
                    prop_assert_eq!(ending.cause.is_none(), migrated);
                    prop_assert!(ending.bytes == 0 || migrated);
                    prop_assert!(!matches!(ending.state, ItemState::Queued | ItemState::Running));
                }
                None => prop_assert!(matches!(outcome, Outcome::Unstarted)),
            }
        }
    }
}
