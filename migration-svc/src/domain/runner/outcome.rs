//! The pure rules of recording, no I/O: how one item ended ([`Outcome`]), whether its
//! verified copy may be flipped to the target ([`flip_of`]), and the row it becomes
//! ([`item_row`]).

use stowage_shared::blob::Receipt;
use uuid::Uuid;

use crate::{
    db,
    domain::{
        artifacts::object_key,
        model::runs::{ItemCause, ItemState, RunItem},
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

/// What the recording transaction found: the run still running, its target still active.
#[derive(Clone, Copy, Debug)]
pub(super) struct Verdict {
    pub(super) running: bool,
    pub(super) target_active: bool,
}

/// How an outcome is recorded.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Row {
    /// The item ends in `state`; `bytes` migrated.
    Item {
        state: ItemState,
        cause: Option<ItemCause>,
        detail: String,
        bytes: i64,
    },
    /// A verified copy whose artifact the flip did not move: deleted or already on the
    /// target, which only the database can say. The item is skipped.
    NotFlipped,
    /// Not recorded.
    Unrecorded,
}

impl Row {
    fn item(state: ItemState, cause: Option<ItemCause>, detail: String) -> Self {
        Row::Item {
            state,
            cause,
            detail,
            bytes: 0,
        }
    }
}

/// The row an outcome becomes: MIGRATED only if its artifact was flipped (so only while
/// the run runs and its target is active); a copy that came too late FAILED with the
/// target unavailable; a failure keeps its cause.
pub(super) fn item_row(outcome: Outcome, flipped: bool, verdict: Verdict, target: Uuid) -> Row {
    match outcome {
        Outcome::Migrated { receipt, .. } if flipped => Row::Item {
            state: ItemState::Migrated,
            cause: None,
            detail: String::new(),
            bytes: i64::try_from(receipt.plaintext_len).unwrap_or(i64::MAX),
        },
        Outcome::Migrated { .. } if !verdict.running => Row::item(
            ItemState::Failed,
            Some(ItemCause::TargetUnavailable),
            "the run ended before this copy was recorded; the artifact stays on its source"
                .to_owned(),
        ),
        Outcome::Migrated { .. } if !verdict.target_active => Row::item(
            ItemState::Failed,
            Some(ItemCause::TargetUnavailable),
            format!("binding {target} stopped being active; the artifact stays on its source"),
        ),
        Outcome::Migrated { .. } => Row::NotFlipped,
        Outcome::Skipped(cause) => Row::item(ItemState::Skipped, Some(cause), String::new()),
        Outcome::Failed(cause, detail) => Row::item(ItemState::Failed, Some(cause), detail),
        Outcome::TargetDown(detail) => Row::item(
            ItemState::Failed,
            Some(ItemCause::TargetUnavailable),
            detail,
        ),
        Outcome::Unstarted => Row::Unrecorded,
    }
}

/// The verified copy to point an artifact at, if it may be: a held lease on a running
/// run whose target is active.
pub(super) fn flip_of(
    item: &RunItem,
    outcome: &Outcome,
    held: bool,
    verdict: Verdict,
    target: Uuid,
) -> Result<Option<db::artifacts::Flip>> {
    let Outcome::Migrated { source, receipt } = outcome else {
        return Ok(None);
    };
    if !held || !verdict.target_active {
        return Ok(None);
    }
    Ok(Some(db::artifacts::Flip {
        id: item.artifact_id,
        source: *source,
        object_key: object_key(item.artifact_id, target)?.to_string(),
        stored_bytes: i64::try_from(receipt.stored_len).unwrap_or(i64::MAX),
        kek_id: receipt.kek_id.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TARGET: Uuid = Uuid::from_u128(7);
    const ON: Verdict = Verdict {
        running: true,
        target_active: true,
    };

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

    fn state(row: &Row) -> Option<(ItemState, Option<ItemCause>)> {
        match row {
            Row::Item { state, cause, .. } => Some((*state, *cause)),
            _ => None,
        }
    }

    #[test]
    fn a_flipped_copy_is_migrated_with_its_plaintext_bytes() {
        let row = item_row(migrated(5), true, ON, TARGET);
        assert_eq!(
            row,
            Row::Item {
                state: ItemState::Migrated,
                cause: None,
                detail: String::new(),
                bytes: 5
            }
        );
    }

    #[test]
    fn a_copy_recorded_after_the_run_ended_fails_with_the_target_unavailable() {
        let ended = Verdict {
            running: false,
            target_active: false,
        };
        let row = item_row(migrated(5), false, ended, TARGET);
        assert_eq!(
            state(&row),
            Some((ItemState::Failed, Some(ItemCause::TargetUnavailable)))
        );
    }

    #[test]
    fn a_copy_to_a_target_no_longer_active_fails_and_names_the_binding() {
        let inactive = Verdict {
            running: true,
            target_active: false,
        };
        let Row::Item { state, detail, .. } = item_row(migrated(5), false, inactive, TARGET) else {
            panic!("not an item row");
        };
        assert_eq!(state, ItemState::Failed);
        assert!(detail.contains(&TARGET.to_string()), "{detail}");
    }

    #[test]
    fn a_copy_the_flip_did_not_take_asks_the_database_why() {
        assert_eq!(item_row(migrated(5), false, ON, TARGET), Row::NotFlipped);
    }

    #[test]
    fn a_target_that_did_not_take_the_write_fails_the_item_with_its_detail() {
        let row = item_row(Outcome::TargetDown("refused".into()), false, ON, TARGET);
        let Row::Item { cause, detail, .. } = row else {
            panic!("not an item row");
        };
        assert_eq!(cause, Some(ItemCause::TargetUnavailable));
        assert_eq!(detail, "refused");
    }

    #[test]
    fn an_unstarted_item_is_not_recorded() {
        assert_eq!(
            item_row(Outcome::Unstarted, false, ON, TARGET),
            Row::Unrecorded
        );
    }

    #[test]
    fn only_a_held_copy_on_an_active_target_is_flipped() {
        let flip = flip_of(&item(), &migrated(5), true, ON, TARGET).unwrap();
        let flip = flip.expect("a flip");
        assert_eq!((flip.stored_bytes, flip.kek_id.as_str()), (37, "k1"));
        assert!(flip.object_key.contains(&TARGET.to_string()));
        assert!(
            flip_of(&item(), &migrated(5), false, ON, TARGET)
                .unwrap()
                .is_none()
        );
        let inactive = Verdict {
            running: true,
            target_active: false,
        };
        assert!(
            flip_of(&item(), &migrated(5), true, inactive, TARGET)
                .unwrap()
                .is_none()
        );
        let skipped = Outcome::Skipped(ItemCause::ArtifactDeleted);
        assert!(
            flip_of(&item(), &skipped, true, ON, TARGET)
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
        fn only_a_flipped_copy_is_migrated_and_only_it_counts_bytes(
            outcome in any_outcome(), flipped: bool, running: bool, active: bool,
        ) {
            let was_migrated = matches!(outcome, Outcome::Migrated { .. });
            let verdict = Verdict { running, target_active: running && active };
            match item_row(outcome, flipped, verdict, TARGET) {
                Row::Item { state, cause, bytes, .. } => {
                    prop_assert_eq!(state == ItemState::Migrated, was_migrated && flipped);
                    prop_assert_eq!(cause.is_none(), state == ItemState::Migrated);
                    prop_assert!(bytes == 0 || state == ItemState::Migrated);
                    prop_assert!(!matches!(state, ItemState::Queued | ItemState::Running));
                }
                Row::NotFlipped => {
                    prop_assert!(was_migrated && !flipped && verdict.target_active);
                }
                Row::Unrecorded => prop_assert!(!was_migrated),
            }
        }
    }
}
