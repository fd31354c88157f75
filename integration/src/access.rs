//! The access reference: for every RPC of both services, the role it needs and what its
//! arguments name, and from that the exact code each kind of caller gets. The access
//! matrix test asserts these codes against the running services, and `docs/access.md` is
//! rendered from the same table, so the two cannot drift apart.

use std::{fmt::Write as _, time::Duration};
use stowage_shared::error::code_name;

use stowage_shared::auth::{Claims, Role, TokenMinter};
use tonic::Code;

use crate::TestApp;

/// The organization whose resources the matrix names.
pub const OURS: &str = "acme";
/// The organization of [`Caller::OtherOrganization`].
pub const THEIRS: &str = "globex";

/// Who calls. The first four never reach a handler; the other organization holds
/// ORG_ADMIN in its own organization and names this organization's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    NoToken,
    Malformed,
    WrongSignature,
    Expired,
    OtherOrganization,
    Member,
    OrgAdmin,
    SuperAdmin,
}

impl Caller {
    pub const ALL: [Caller; 8] = [
        Caller::NoToken,
        Caller::Malformed,
        Caller::WrongSignature,
        Caller::Expired,
        Caller::OtherOrganization,
        Caller::Member,
        Caller::OrgAdmin,
        Caller::SuperAdmin,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Caller::NoToken => "no token",
            Caller::Malformed => "malformed",
            Caller::WrongSignature => "wrong signature",
            Caller::Expired => "expired",
            Caller::OtherOrganization => "other organization",
            Caller::Member => "MEMBER",
            Caller::OrgAdmin => "ORG_ADMIN",
            Caller::SuperAdmin => "SUPER_ADMIN",
        }
    }

    /// The role a valid token of this caller holds.
    pub fn role(self) -> Option<Role> {
        match self {
            Caller::NoToken | Caller::Malformed | Caller::WrongSignature | Caller::Expired => None,
            Caller::OtherOrganization | Caller::OrgAdmin => Some(Role::OrgAdmin),
            Caller::Member => Some(Role::Member),
            Caller::SuperAdmin => Some(Role::SuperAdmin),
        }
    }
}

/// The bearer token `caller` sends (`None`: no header), minted by the app's key or, for
/// the callers that must fail authentication, crafted to fail it one way each.
pub fn token(app: &TestApp, caller: Caller) -> Option<String> {
    match caller {
        Caller::NoToken => None,
        Caller::Malformed => Some("not.a-jwt.at-all".to_owned()),
        Caller::WrongSignature => {
            let mut foreign = app.common.auth.clone();
            foreign.hs256_secret = Some("another-secret-of-at-least-32-bytes!".into());
            let minter = TokenMinter::from_config(&foreign).expect("a minter for another key");
            let token = minter
                .mint(
                    "mallory",
                    OURS,
                    &[Role::SuperAdmin],
                    Duration::from_secs(3600),
                )
                .expect("minting with another key");
            Some(token)
        }
        Caller::Expired => {
            let now = jsonwebtoken_now();
            let claims = Claims {
                sub: "late".into(),
                org: OURS.into(),
                roles: vec![Role::SuperAdmin.as_str().to_owned()],
                iat: now - 7200,
                exp: now - 3600,
                iss: None,
                aud: None,
            };
            Some(
                app.minter()
                    .mint_claims(&claims)
                    .expect("minting an expired token"),
            )
        }
        Caller::OtherOrganization => Some(app.token(THEIRS, &[Role::OrgAdmin])),
        Caller::Member | Caller::OrgAdmin | Caller::SuperAdmin => {
            let role = caller.role().expect("a role");
            Some(app.token(OURS, &[role]))
        }
    }
}

fn jsonwebtoken_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a call's arguments are about, which decides what another organization sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Names one resource (binding, artifact, run, job) by id: another organization's is
    /// `NOT_FOUND`, exactly like one that does not exist.
    Resource,
    /// Lists or creates in the caller's own organization: `OK`, with only its own data.
    Own,
    /// Not organization data (health, reflection, the policy, the admin surface).
    Global,
}

/// One RPC's row of the reference.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    /// `/package.Service/Method`.
    pub path: &'static str,
    /// `None`: open to anyone (health and reflection).
    pub needs: Option<Role>,
    pub scope: Scope,
}

impl Access {
    /// The code `caller` gets from a valid request.
    pub fn expected(&self, caller: Caller) -> Code {
        let Some(needs) = self.needs else {
            return Code::Ok;
        };
        let Some(role) = caller.role() else {
            return Code::Unauthenticated;
        };
        if role < needs {
            return Code::PermissionDenied;
        }
        match (caller, self.scope) {
            (Caller::OtherOrganization, Scope::Resource) => Code::NotFound,
            _ => Code::Ok,
        }
    }

    pub fn service(&self) -> &'static str {
        self.path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
    }

    pub fn method(&self) -> &'static str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

const fn row(path: &'static str, needs: Role, scope: Scope) -> Access {
    Access {
        path,
        needs: Some(needs),
        scope,
    }
}

const fn open(path: &'static str) -> Access {
    Access {
        path,
        needs: None,
        scope: Scope::Global,
    }
}

use Role::{Member, OrgAdmin, SuperAdmin};
use Scope::{Global, Own, Resource};

/// Every RPC of both services, in the order the matrix calls them (reads of a resource
/// before the calls that change or delete it), then health and reflection.
pub const TABLE: &[Access] = &[
    row(
        "/stowage.migration.v1.BindingService/CreateBinding",
        OrgAdmin,
        Own,
    ),
    row(
        "/stowage.migration.v1.BindingService/GetBinding",
        Member,
        Resource,
    ),
    row(
        "/stowage.migration.v1.BindingService/ListBindings",
        Member,
        Own,
    ),
    row(
        "/stowage.migration.v1.BindingService/UpdateBindingCredential",
        OrgAdmin,
        Resource,
    ),
    row(
        "/stowage.migration.v1.BindingService/ActivateBinding",
        OrgAdmin,
        Resource,
    ),
    row(
        "/stowage.migration.v1.ArtifactService/PutArtifact",
        Member,
        Own,
    ),
    row(
        "/stowage.migration.v1.ArtifactService/StatArtifact",
        Member,
        Resource,
    ),
    row(
        "/stowage.migration.v1.ArtifactService/GetArtifact",
        Member,
        Resource,
    ),
    row(
        "/stowage.migration.v1.ArtifactService/ListArtifacts",
        Member,
        Own,
    ),
    row(
        "/stowage.migration.v1.ArtifactService/DeleteArtifact",
        Member,
        Resource,
    ),
    row(
        "/stowage.migration.v1.ArtifactService/VerifyArtifacts",
        OrgAdmin,
        Own,
    ),
    row(
        "/stowage.migration.v1.ArtifactService/DestroyOrganizationKeys",
        SuperAdmin,
        Global,
    ),
    row(
        "/stowage.migration.v1.MigrationService/StartRun",
        OrgAdmin,
        Resource,
    ),
    row(
        "/stowage.migration.v1.MigrationService/GetRun",
        Member,
        Resource,
    ),
    row(
        "/stowage.migration.v1.MigrationService/ListRuns",
        Member,
        Own,
    ),
    row(
        "/stowage.migration.v1.MigrationService/ListRunItems",
        Member,
        Resource,
    ),
    row(
        "/stowage.migration.v1.MigrationService/WatchRun",
        Member,
        Resource,
    ),
    row(
        "/stowage.migration.v1.MigrationService/RetryRun",
        OrgAdmin,
        Resource,
    ),
    row(
        "/stowage.migration.v1.MigrationService/CancelRun",
        OrgAdmin,
        Resource,
    ),
    row(
        "/stowage.migration.v1.MigrationService/CleanupRun",
        OrgAdmin,
        Resource,
    ),
    row(
        "/stowage.migration.v1.EvidenceService/ListAuditEntries",
        OrgAdmin,
        Own,
    ),
    row(
        "/stowage.migration.v1.EvidenceService/ListDomainEvents",
        OrgAdmin,
        Own,
    ),
    row(
        "/stowage.migration.v1.EvidenceService/ListSecurityEvents",
        OrgAdmin,
        Own,
    ),
    row(
        "/stowage.archive.v1.ArchiveService/GetArchivePolicy",
        Member,
        Global,
    ),
    row(
        "/stowage.archive.v1.ArchiveService/GetJobArchive",
        Member,
        Resource,
    ),
    row(
        "/stowage.archive.v1.ArchiveService/ListJobArchives",
        Member,
        Own,
    ),
    row(
        "/stowage.archive.v1.ArchiveService/TouchJob",
        Member,
        Resource,
    ),
    row(
        "/stowage.archive.v1.ArchiveService/RestoreJob",
        Member,
        Resource,
    ),
    row(
        "/stowage.archive.v1.ArchiveService/DeleteJob",
        OrgAdmin,
        Resource,
    ),
    row(
        "/stowage.archive.v1.ArchiveAdminService/ArchiveJob",
        SuperAdmin,
        Global,
    ),
    row(
        "/stowage.archive.v1.ArchiveAdminService/ArchiveEligibleJobs",
        SuperAdmin,
        Global,
    ),
    row(
        "/stowage.archive.v1.ArchiveAdminService/SetArchiveStore",
        SuperAdmin,
        Global,
    ),
    row(
        "/stowage.archive.v1.ArchiveAdminService/UpdateArchiveStoreCredential",
        SuperAdmin,
        Global,
    ),
    row(
        "/stowage.archive.v1.ArchiveAdminService/ListArchiveStores",
        SuperAdmin,
        Global,
    ),
    row(
        "/stowage.archive.v1.ArchiveAdminService/MigrateArchives",
        SuperAdmin,
        Global,
    ),
    row(
        "/stowage.archive.v1.ArchiveAdminService/VerifyArchives",
        SuperAdmin,
        Global,
    ),
    row(
        "/stowage.archive.v1.ArchiveAdminService/DestroyTenantKeys",
        SuperAdmin,
        Global,
    ),
    open("/grpc.health.v1.Health/Check"),
    open("/grpc.health.v1.Health/Watch"),
    open("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
    open("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
];

fn short(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Unauthenticated => "UNAUTH",
        Code::PermissionDenied => "DENIED",
        Code::NotFound => "NOT_FOUND",
        other => code_name(other),
    }
}

/// `docs/access.md`: the reference, rendered from [`TABLE`].
pub fn render() -> String {
    let mut out = String::new();
    out.push_str(
        "# Access reference\n\n\
         <!-- Generated from integration/src/access.rs; the access matrix test \
         (integration/tests/api/access.rs) checks the services answer exactly this and \
         that this file is what the table renders. Regenerate with \
         `STOWAGE_BLESS_ACCESS=1 deploy/dev/test -p stowage-integration -E 'test(/access::/)'`. -->\n\n\
         The gRPC code every RPC of both services answers to a valid request, by caller:\n\n\
         - **no token**: no `authorization` header; **malformed**: `Bearer` and bytes that \
         are not a JWT; **wrong signature**: a JWT signed with another secret; **expired**: \
         a JWT whose `exp` has passed. These four never reach a handler.\n\
         - **other organization**: a valid ORG_ADMIN token of another organization, naming \
         this organization's resources. A call that names a resource by id answers \
         `NOT_FOUND`, exactly as for an id that does not exist, so nothing tells whether it \
         exists; a list or a create answers `OK` with the caller's own organization only. \
         The test checks no reply carries the other organization's data and its state is \
         unchanged after every attempt.\n\
         - **MEMBER**, **ORG_ADMIN**, **SUPER_ADMIN**: valid tokens of the organization \
         that owns the resources. Roles nest: SUPER_ADMIN ⊃ ORG_ADMIN ⊃ MEMBER. A valid \
         token with no role is `PERMISSION_DENIED` on every call (not shown).\n\n\
         Short forms: UNAUTH = `UNAUTHENTICATED`, DENIED = `PERMISSION_DENIED`. The role \
         check comes before the request is looked at, so a caller without the role learns \
         nothing about the arguments. Health (`grpc.health.v1`) and reflection are open \
         to anyone, whatever the `authorization` header holds.\n\n",
    );
    out.push_str("| RPC | needs |");
    for caller in Caller::ALL {
        let _ = write!(out, " {} |", caller.title());
    }
    out.push_str("\n|---|---|");
    for _ in Caller::ALL {
        out.push_str("---|");
    }
    out.push('\n');
    for access in TABLE {
        let needs = access.needs.map_or("none", Role::as_str);
        let _ = write!(
            out,
            "| `{}/{}` | {needs} |",
            access.service(),
            access.method()
        );
        for caller in Caller::ALL {
            let _ = write!(out, " {} |", short(access.expected(caller)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_organization_finds_no_resource_of_ours() {
        let get = TABLE
            .iter()
            .find(|a| a.method() == "GetBinding")
            .expect("a GetBinding row");
        assert_eq!(get.expected(Caller::OtherOrganization), Code::NotFound);
        assert_eq!(get.expected(Caller::Expired), Code::Unauthenticated);
        let admin = TABLE
            .iter()
            .find(|a| a.method() == "ArchiveJob")
            .expect("an ArchiveJob row");
        assert_eq!(admin.expected(Caller::OrgAdmin), Code::PermissionDenied);
        assert_eq!(
            admin.expected(Caller::OtherOrganization),
            Code::PermissionDenied
        );
    }
}
