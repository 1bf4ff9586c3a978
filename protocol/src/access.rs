//! Who may read and write what. Pure functions of a [`Principal`] and the document's ACL.
//!
//! The server evaluates these on every read and write; the phone evaluates the very same
//! functions before it writes, so an honest device never produces a change the server
//! refuses. The full matrix is in ARCHITECTURE.md ("Access rules").

use serde::{Deserialize, Serialize};

use crate::ids::*;
use crate::model::{AccountAcl, Role, Visibility};
use crate::{Error, Result};

/// An authenticated user, as the server knows them: identity from the verified token,
/// memberships from the organisation tables. Never built from what a client claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub user_id: UserId,
    pub role: Role,
    /// Teams the user belongs to.
    pub teams: Vec<TeamId>,
    /// Teams the user manages.
    pub managed_teams: Vec<TeamId>,
    /// Members of the managed teams (whose private documents a manager may add tasks to).
    pub managed_users: Vec<UserId>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn member_of(&self, team: TeamId) -> bool {
        self.teams.contains(&team)
    }

    pub fn manages(&self, team: TeamId) -> bool {
        self.managed_teams.contains(&team)
    }

    pub fn manages_user(&self, user: UserId) -> bool {
        self.managed_users.contains(&user)
    }
}

/// Read: the owner, the managers of its team, admins; its team when visibility is `team`;
/// everyone when `company`.
pub fn can_read_account(p: &Principal, acl: &AccountAcl) -> bool {
    p.is_admin()
        || acl.owner == p.user_id
        || p.manages(acl.team)
        || acl.visibility == Visibility::Company
        || (acl.visibility == Visibility::Team && p.member_of(acl.team))
}

/// Write (edit the account, its contacts, visits and orders): the owner, the managers of its
/// team, admins.
pub fn can_write_account(p: &Principal, acl: &AccountAcl) -> bool {
    p.is_admin() || acl.owner == p.user_id || p.manages(acl.team)
}

/// Log visits: writers, plus members of the account's team when the account is shared with
/// the team (or the company) — a colleague covering a customer. Such a member may edit only
/// the visits they logged themselves, and nothing else in the document.
pub fn can_log_visits(p: &Principal, acl: &AccountAcl) -> bool {
    can_write_account(p, acl)
        || (matches!(acl.visibility, Visibility::Team | Visibility::Company)
            && p.member_of(acl.team))
}

/// May `p` create an account with this ACL from a device?
///
/// A rep creates accounts they own, in one of their teams, private or shared with the team
/// (sharing with the whole company is a manager decision). A manager may create accounts
/// for the teams they manage, owned by themselves or one of their reps. Admins: anything.
pub fn check_create_account(p: &Principal, acl: &AccountAcl) -> Result<()> {
    if p.is_admin() {
        return Ok(());
    }
    if p.manages(acl.team) && (acl.owner == p.user_id || p.manages_user(acl.owner)) {
        return Ok(());
    }
    if acl.owner != p.user_id {
        return Err(Error::forbidden("create an account owned by someone else"));
    }
    if !p.member_of(acl.team) {
        return Err(Error::forbidden(
            "create an account for a team you are not in",
        ));
    }
    if acl.visibility == Visibility::Company {
        return Err(Error::forbidden(
            "share an account with the whole company (ask your manager)",
        ));
    }
    Ok(())
}

/// Read a user's private document: the user, the managers of their teams, admins.
pub fn can_read_user_doc(p: &Principal, user: UserId) -> bool {
    p.user_id == user || p.manages_user(user) || p.is_admin()
}

/// Add or edit tasks in a user's document: same people as reading (managers assign tasks).
pub fn can_write_user_tasks(p: &Principal, user: UserId) -> bool {
    can_read_user_doc(p, user)
}

/// Change a user's preferences: the user and admins.
pub fn can_write_user_preferences(p: &Principal, user: UserId) -> bool {
    p.user_id == user || p.is_admin()
}

/// The catalog is readable by everyone signed in.
pub fn can_read_catalog(_p: &Principal) -> bool {
    true
}

/// The catalog is writable by admins only.
pub fn can_write_catalog(p: &Principal) -> bool {
    p.is_admin()
}

/// Reassign an account or change its visibility (manager API): managers of the account's
/// current team — who may only move it within the teams they manage — and admins.
pub fn check_reassign(p: &Principal, current: &AccountAcl, new: &AccountAcl) -> Result<()> {
    if p.is_admin() {
        return Ok(());
    }
    if p.role != Role::Manager || !p.manages(current.team) {
        return Err(Error::forbidden(
            "reassign this account (only its team's managers and admins may)",
        ));
    }
    if !p.manages(new.team) {
        return Err(Error::forbidden(
            "move an account to a team you do not manage",
        ));
    }
    Ok(())
}

/// Whether `p` may read the document `doc` whose account ACL (for account documents) is `acl`.
pub fn can_read_doc(p: &Principal, doc: &DocId, acl: Option<&AccountAcl>) -> bool {
    match doc {
        DocId::Catalog => can_read_catalog(p),
        DocId::User(u) => can_read_user_doc(p, *u),
        DocId::Account(_) => acl.is_some_and(|acl| can_read_account(p, acl)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, teams: &[TeamId], managed: &[TeamId]) -> Principal {
        Principal {
            user_id: UserId::new(),
            role,
            teams: teams.to_vec(),
            managed_teams: managed.to_vec(),
            managed_users: vec![],
        }
    }

    /// The whole read/write matrix of ARCHITECTURE.md, row by row.
    #[test]
    fn account_matrix() {
        let team = TeamId::new();
        let other_team = TeamId::new();
        let owner = principal(Role::Rep, &[team], &[]);
        let teammate = principal(Role::Rep, &[team], &[]);
        let stranger = principal(Role::Rep, &[other_team], &[]);
        let manager = principal(Role::Manager, &[team], &[team]);
        let other_manager = principal(Role::Manager, &[other_team], &[other_team]);
        let admin = principal(Role::Admin, &[], &[]);
        for vis in Visibility::ALL {
            let acl = AccountAcl {
                owner: owner.user_id,
                team,
                visibility: *vis,
            };
            let expect = |p: &Principal, read: bool, write: bool, visits: bool| {
                assert_eq!(can_read_account(p, &acl), read, "read {vis:?} {:?}", p.role);
                assert_eq!(
                    can_write_account(p, &acl),
                    write,
                    "write {vis:?} {:?}",
                    p.role
                );
                assert_eq!(
                    can_log_visits(p, &acl),
                    visits,
                    "visits {vis:?} {:?}",
                    p.role
                );
            };
            let shared = *vis != Visibility::Private;
            expect(&owner, true, true, true);
            expect(&manager, true, true, true);
            expect(&admin, true, true, true);
            expect(&teammate, shared, false, shared);
            expect(&stranger, *vis == Visibility::Company, false, false);
            expect(&other_manager, *vis == Visibility::Company, false, false);
        }
    }

    #[test]
    fn creating_accounts() {
        let team = TeamId::new();
        let rep = principal(Role::Rep, &[team], &[]);
        let ok = AccountAcl {
            owner: rep.user_id,
            team,
            visibility: Visibility::Private,
        };
        assert!(check_create_account(&rep, &ok).is_ok());
        assert!(
            check_create_account(
                &rep,
                &AccountAcl {
                    owner: UserId::new(),
                    ..ok
                }
            )
            .is_err()
        );
        assert!(
            check_create_account(
                &rep,
                &AccountAcl {
                    team: TeamId::new(),
                    ..ok
                }
            )
            .is_err()
        );
        assert!(
            check_create_account(
                &rep,
                &AccountAcl {
                    visibility: Visibility::Company,
                    ..ok
                }
            )
            .is_err()
        );
        let mut manager = principal(Role::Manager, &[team], &[team]);
        manager.managed_users.push(rep.user_id);
        assert!(check_create_account(&manager, &ok).is_ok());
    }

    #[test]
    fn reassigning() {
        let (a, b) = (TeamId::new(), TeamId::new());
        let acl = AccountAcl {
            owner: UserId::new(),
            team: a,
            visibility: Visibility::Private,
        };
        let manager = principal(Role::Manager, &[a], &[a]);
        assert!(
            check_reassign(
                &manager,
                &acl,
                &AccountAcl {
                    owner: UserId::new(),
                    ..acl
                }
            )
            .is_ok()
        );
        assert!(check_reassign(&manager, &acl, &AccountAcl { team: b, ..acl }).is_err());
        let rep = principal(Role::Rep, &[a], &[]);
        assert!(check_reassign(&rep, &acl, &acl).is_err());
    }
}
