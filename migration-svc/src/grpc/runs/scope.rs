//! A run's scope and its executed plan at the wire: `RunScope` validated on receipt and
//! shown on the way out, and the rule that only a live run executes a dry run's plan.

use stowage_proto::migration::v1 as pb;
use stowage_shared::api::{self, InvalidArgument};
use uuid::Uuid;

use super::super::required_text;
use crate::domain::model::runs::{Mode, Scope};

/// A live run that executes a dry run's plan takes the dry run's scope; nothing else
/// executes a plan or accepts its drift.
pub(super) fn executes_a_plan(
    mode: Mode,
    from_dry_run: bool,
    scope: Option<&pb::RunScope>,
    accept_drift: bool,
) -> Result<(), InvalidArgument> {
    if !from_dry_run {
        return match accept_drift {
            true => Err(InvalidArgument::new(
                "accept_drift",
                "only with from_dry_run_id (the plan whose drift is accepted)",
            )),
            false => Ok(()),
        };
    }
    if mode != Mode::Live {
        return Err(InvalidArgument::new(
            "from_dry_run_id",
            "only a live run executes a dry run's plan",
        ));
    }
    if scope.is_some_and(|s| *s != pb::RunScope::default()) {
        return Err(InvalidArgument::new(
            "scope",
            "comes from the dry run named in from_dry_run_id; leave it unset",
        ));
    }
    Ok(())
}

/// Longest purpose a scope names (as long as an artifact's may be).
const MAX_PURPOSE: usize = 100;

impl TryFrom<pb::RunScope> for Scope {
    type Error = InvalidArgument;

    fn try_from(s: pb::RunScope) -> Result<Self, Self::Error> {
        let purposes = |field, raw: &[String]| {
            raw.iter()
                .map(|purpose| required_text(field, purpose, MAX_PURPOSE))
                .collect::<Result<Vec<_>, _>>()
        };
        let scope = Scope {
            purposes: purposes("scope.purposes", &s.purposes)?,
            excluded_purposes: purposes("scope.excluded_purposes", &s.excluded_purposes)?,
            source_bindings: s
                .source_binding_ids
                .iter()
                .map(|id| api::id("scope.source_binding_ids", id))
                .collect::<Result<_, _>>()?,
            created_after: s
                .created_after
                .map(|t| api::datetime("scope.created_after", &t))
                .transpose()?,
            created_before: s
                .created_before
                .map(|t| api::datetime("scope.created_before", &t))
                .transpose()?,
        };
        if let Some(both) = scope
            .purposes
            .iter()
            .find(|p| scope.excluded_purposes.contains(p))
        {
            return Err(InvalidArgument::new(
                "scope.excluded_purposes",
                format!("excludes {both:?}, which scope.purposes includes"),
            ));
        }
        if let (Some(after), Some(before)) = (scope.created_after, scope.created_before)
            && before <= after
        {
            return Err(InvalidArgument::new(
                "scope.created_before",
                "must be later than scope.created_after",
            ));
        }
        Ok(scope)
    }
}

impl From<Scope> for pb::RunScope {
    fn from(s: Scope) -> Self {
        pb::RunScope {
            purposes: s.purposes,
            excluded_purposes: s.excluded_purposes,
            source_binding_ids: s.source_bindings.iter().map(Uuid::to_string).collect(),
            created_after: api::optional_timestamp(s.created_after),
            created_before: api::optional_timestamp(s.created_before),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        super::{super::refused, a_start_request as start},
        *,
    };
    use crate::domain::runs::StartRun;

    fn scoped(scope: pb::RunScope) -> pb::StartRunRequest {
        pb::StartRunRequest {
            scope: Some(scope),
            ..start()
        }
    }

    fn at(seconds: i64) -> Option<api::Timestamp> {
        chrono::DateTime::from_timestamp(seconds, 0).map(api::timestamp)
    }

    #[test]
    fn a_scope_is_taken_as_given_and_none_is_the_whole_organization() {
        assert_eq!(StartRun::try_from(start()).unwrap().scope, Scope::default());
        let binding = uuid::Uuid::now_v7();
        let command = StartRun::try_from(scoped(pb::RunScope {
            purposes: vec!["invoice".into()],
            excluded_purposes: vec!["log".into()],
            source_binding_ids: vec![binding.to_string()],
            created_after: at(1_000),
            created_before: at(2_000),
        }))
        .unwrap();
        assert_eq!(command.scope.purposes, ["invoice"]);
        assert_eq!(command.scope.excluded_purposes, ["log"]);
        assert_eq!(command.scope.source_bindings, [binding]);
        let back = pb::RunScope::from(command.scope);
        assert_eq!(back.created_before, at(2_000));
    }

    #[test]
    fn each_malformed_scope_field_is_named() {
        let cases = [
            (
                pb::RunScope {
                    purposes: vec![" ".into()],
                    ..Default::default()
                },
                "scope.purposes",
            ),
            (
                pb::RunScope {
                    purposes: vec!["invoice".into()],
                    excluded_purposes: vec!["invoice".into()],
                    ..Default::default()
                },
                "scope.excluded_purposes",
            ),
            (
                pb::RunScope {
                    source_binding_ids: vec!["not-a-uuid".into()],
                    ..Default::default()
                },
                "scope.source_binding_ids",
            ),
            (
                pb::RunScope {
                    created_after: at(1).map(|mut t| {
                        t.nanos = -5;
                        t
                    }),
                    ..Default::default()
                },
                "scope.created_after",
            ),
            (
                pb::RunScope {
                    created_after: at(2_000),
                    created_before: at(2_000),
                    ..Default::default()
                },
                "scope.created_before",
            ),
        ];
        for (scope, field) in cases {
            assert_eq!(refused(StartRun::try_from(scoped(scope))), field);
        }
    }
}
