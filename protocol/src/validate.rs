//! Judging a change: the one rule engine, run by the phone before it persists an edit and by
//! the server before anyone else can see an upload.
//!
//! Two passes over the new changes of a document:
//!
//! 1. **Operations** — every operation of every new change is located in the schema. An
//!    operation on the skeleton, on a field that only the manager API or the server may write,
//!    on a create-only field of an existing record, or that removes a record, is refused even
//!    if it has no visible effect (a conflicting write that loses today can win tomorrow).
//! 2. **Effects** — the diff between the old and new state is grouped by record; every
//!    changed record is read before and after and checked against the field specs (types,
//!    values, required fields), the lifecycles (visit and order statuses, location only at
//!    check-in/out, submitted orders locked) and the access rules of [`crate::access`].
//!
//! The result lists the records touched, which is exactly what the phone needs to refresh
//! its SQL projection and what the server needs to refresh its metadata.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{Automerge, ChangeHash, ObjType, Patch, PatchAction, Prop, ReadDoc, Value};

use crate::access::{self, Principal};
use crate::doc::{Catalog, Fields, Reader};
use crate::ids::*;
use crate::model::{AccountAcl, AccountStatus, OrderStatus, VisitStatus};
use crate::schema::{Access, Location, RecordKind, RecordPath, check_tag, locate};
use crate::{Error, Result};

/// On whose authority a change is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authority {
    /// A user's device, through sync: every rule applies.
    Device,
    /// The server's own code (manager API, back office, tiers, imports): the caller has
    /// checked who may do this; the schema, value and lifecycle rules still apply.
    Server,
    /// A refused change approved by a manager: the reviewer vouches for *access* (the usual
    /// reason for a refusal is an account reassigned while the rep was offline), but every
    /// other device rule still holds (protected fields, locked orders, lifecycles,
    /// authorship), judged as the original author.
    Review,
}

/// Everything the rules need to know besides the document.
pub struct WriteContext<'a> {
    pub principal: &'a Principal,
    pub doc_id: DocId,
    pub authority: Authority,
    /// The catalog, for checking that ordered products exist. The server always passes it;
    /// a phone that has not received the catalog yet cannot price a line anyway.
    pub catalog: Option<&'a Catalog>,
}

/// What a valid change touched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Every record whose fields changed (including created ones).
    pub touched: BTreeSet<RecordPath>,
    /// Records that did not exist before.
    pub created: BTreeSet<RecordPath>,
    /// Whether owner, team or visibility of the account changed (server authority only).
    pub acl_changed: bool,
}

/// Validates every change of `doc` that is not in the history of `before`.
///
/// `doc` already contains the changes (on the server: a fork of the stored document). On
/// success nothing is modified; on failure the caller discards the fork. This computes the
/// patches with a diff; when the caller applied the changes with a `PatchLog` (much cheaper),
/// [`validate_patches`] takes them directly.
pub fn validate_change(
    ctx: &WriteContext<'_>,
    doc: &Automerge,
    before: &[ChangeHash],
) -> Result<WriteSummary> {
    let after = doc.get_heads();
    if after.as_slice() == before {
        return Ok(WriteSummary::default());
    }
    let patches = doc.diff(before, &after);
    validate_patches(ctx, doc, before, &patches)
}

/// Like [`validate_change`], given the patches that took the document from `before` to its
/// current state.
pub fn validate_patches(
    ctx: &WriteContext<'_>,
    doc: &Automerge,
    before: &[ChangeHash],
    patches: &[Patch],
) -> Result<WriteSummary> {
    if doc.get_heads().as_slice() == before {
        return Ok(WriteSummary::default());
    }
    // Records the operations touch are judged even when a write has no visible effect (it
    // lost a conflict): permission is about what was attempted, not only what shows.
    let attempted = if ctx.authority != Authority::Server {
        check_operations(ctx, doc, before)?
    } else {
        BTreeSet::new()
    };
    check_effects(ctx, doc, before, patches, attempted)
}

fn protected(field: &str, access: Access) -> Error {
    let hint = match access {
        Access::ManagerApi => "only a manager or admin can change it, through reassignment",
        Access::ServerOnly => "it is set by the server or the back office",
        _ => "it is fixed when the record is created",
    };
    Error::ProtectedField {
        field: field.to_owned(),
        hint,
    }
}

/// The records whose state differs between two versions of a document, for re-projecting
/// changes that need no judging (received from the server, which already judged them).
pub fn touched_records(
    doc_id: DocId,
    doc: &Automerge,
    before: &[ChangeHash],
    after: &[ChangeHash],
) -> Result<BTreeSet<RecordPath>> {
    touched_by_patches(doc_id, &doc.diff(before, after))
}

/// The records the given patches change.
pub fn touched_by_patches(doc_id: DocId, patches: &[Patch]) -> Result<BTreeSet<RecordPath>> {
    let mut touched = BTreeSet::new();
    for patch in patches {
        match locate(doc_id.kind(), &patch_props(&patch.path, &patch.action))? {
            Location::Root(_) => {}
            Location::Record(rp) | Location::Field(rp, _) => {
                touched.insert(rp);
            }
        }
    }
    Ok(touched)
}

// ---- pass 1: operations ----------------------------------------------------------------------

/// Checks every operation of the new changes; returns the records they touch.
fn check_operations(
    ctx: &WriteContext<'_>,
    doc: &Automerge,
    before: &[ChangeHash],
) -> Result<BTreeSet<RecordPath>> {
    let mut attempted = BTreeSet::new();
    let old = Reader::at(doc, before);
    let mut existed: BTreeMap<RecordPath, bool> = BTreeMap::new();
    for change in doc.get_changes(before) {
        // Only a root change can be the skeleton; build the skeleton just to compare then.
        if change.deps().is_empty() && change.hash() == crate::doc::skeleton_hash(&ctx.doc_id)? {
            continue;
        }
        for op in change.decode().operations {
            let obj = doc.import_obj(&op.obj.to_string())?;
            let mut props: Vec<Prop> = if obj == automerge::ROOT {
                Vec::new()
            } else {
                doc.parents(&obj)?
                    .path()
                    .into_iter()
                    .map(|(_, p)| p)
                    .collect()
            };
            if let automerge::legacy::Key::Map(k) = &op.key {
                props.push(Prop::Map(k.to_string()));
            }
            match locate(ctx.doc_id.kind(), &props)? {
                Location::Root(key) => {
                    return Err(Error::ProtectedField {
                        field: key,
                        hint: "the document's skeleton never changes",
                    });
                }
                Location::Record(rp) => match op.action {
                    automerge::legacy::OpType::Make(ObjType::Map) => {
                        attempted.insert(rp);
                    }
                    automerge::legacy::OpType::Delete => {
                        return Err(Error::forbidden(format!(
                            "remove a {} (mark it deleted instead)",
                            rp.kind().label()
                        )));
                    }
                    _ => {
                        return Err(Error::malformed(
                            format!("{rp:?}"),
                            "a record must be a map",
                        ));
                    }
                },
                Location::Field(rp, name) => {
                    attempted.insert(rp.clone());
                    if rp.kind() == RecordKind::AccountTags {
                        continue;
                    }
                    let was_there = match existed.get(&rp) {
                        Some(e) => *e,
                        None => {
                            let e = old.record(&rp)?.is_some();
                            existed.insert(rp.clone(), e);
                            e
                        }
                    };
                    if rp.kind().child_container() == Some(name.as_str()) {
                        // An order's `lines` map is made with the order, never again.
                        if was_there
                            || !matches!(op.action, automerge::legacy::OpType::Make(ObjType::Map))
                        {
                            return Err(Error::ProtectedField {
                                field: name,
                                hint: "it is created with its record",
                            });
                        }
                        continue;
                    }
                    let spec = rp.kind().field(&name).ok_or_else(|| {
                        Error::malformed(format!("{rp:?}.{name}"), "is not a known field")
                    })?;
                    match spec.access {
                        Access::ServerOnly => return Err(protected(&name, spec.access)),
                        Access::ManagerApi | Access::CreateOnly if was_there => {
                            return Err(protected(&name, spec.access));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(attempted)
}

// ---- pass 2: effects ---------------------------------------------------------------------------

fn patch_props(path: &[(automerge::ObjId, Prop)], action: &PatchAction) -> Vec<Prop> {
    let mut props: Vec<Prop> = path.iter().map(|(_, p)| p.clone()).collect();
    match action {
        PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => {
            props.push(Prop::Map(key.clone()))
        }
        PatchAction::Increment { prop, .. } | PatchAction::Conflict { prop } => {
            props.push(prop.clone())
        }
        _ => {}
    }
    props
}

fn check_effects(
    ctx: &WriteContext<'_>,
    doc: &Automerge,
    before: &[ChangeHash],
    patches: &[Patch],
    attempted: BTreeSet<RecordPath>,
) -> Result<WriteSummary> {
    let kind = ctx.doc_id.kind();
    let old = Reader::at(doc, before);
    // The state after the change is the document as it is now.
    let new = Reader::new(doc);
    let mut touched: BTreeSet<RecordPath> = attempted;
    let mut replaced_text: BTreeSet<(RecordPath, String)> = BTreeSet::new();
    for patch in patches {
        if matches!(
            patch.action,
            PatchAction::Mark { .. } | PatchAction::Increment { .. }
        ) {
            return Err(Error::malformed(
                format!("{:?}", patch.obj),
                "marks and counters are not part of the schema",
            ));
        }
        let props = patch_props(&patch.path, &patch.action);
        match locate(kind, &props)? {
            Location::Root(key) => {
                return Err(Error::ProtectedField {
                    field: key,
                    hint: "the document's skeleton never changes",
                });
            }
            Location::Record(rp) => match &patch.action {
                PatchAction::PutMap {
                    value: (Value::Object(ObjType::Map), _),
                    ..
                } => {
                    touched.insert(rp);
                }
                PatchAction::DeleteMap { .. } => {
                    return Err(Error::forbidden(format!(
                        "remove a {} (mark it deleted instead)",
                        rp.kind().label()
                    )));
                }
                _ => {
                    return Err(Error::malformed(
                        format!("{rp:?}"),
                        "a record must be a map",
                    ));
                }
            },
            Location::Field(rp, name) => {
                if rp.kind() == RecordKind::AccountTags {
                    check_tag(&name)?;
                    if let PatchAction::PutMap { value, .. } = &patch.action
                        && !matches!(&value.0, Value::Scalar(v) if v.as_bool() == Some(true))
                    {
                        return Err(Error::invalid("tag", "members must be the value true"));
                    }
                } else if rp.kind().child_container() == Some(name.as_str())
                    && props.len() == rp.props().len() + 1
                {
                    // The container itself (made with the record); its children are records.
                    if !matches!(
                        &patch.action,
                        PatchAction::PutMap {
                            value: (Value::Object(ObjType::Map), _),
                            ..
                        }
                    ) {
                        return Err(Error::malformed(
                            format!("{rp:?}.{name}"),
                            "must be a map of records",
                        ));
                    }
                } else if let PatchAction::PutMap {
                    key,
                    value: (Value::Object(ObjType::Text), _),
                    ..
                } = &patch.action
                    && key == &name
                {
                    replaced_text.insert((rp.clone(), name.clone()));
                }
                touched.insert(rp);
            }
        }
    }

    // Account documents: whose account is it (before the change, or as created by it)?
    let acl_before = if kind == DocKind::Account {
        old.account_acl()?
    } else {
        None
    };
    let acl_after = if kind == DocKind::Account {
        new.account_acl()?
    } else {
        None
    };
    if kind == DocKind::Account && acl_before.is_none() && !touched.contains(&RecordPath::Account) {
        return Err(Error::NotFound {
            kind: "account",
            id: ctx.doc_id.to_string(),
        });
    }

    let mut summary = WriteSummary::default();
    for rp in &touched {
        let before_f = old.record(rp)?;
        let Some(after_f) = new.record(rp)? else {
            return Err(Error::malformed(
                format!("{rp:?}"),
                "a record was written without its id",
            ));
        };
        let created = before_f.is_none();
        let empty = Fields::default();
        let before_f = before_f.as_ref().unwrap_or(&empty);
        let changed = changed_fields(rp.kind(), before_f, &after_f);
        for (r, name) in &replaced_text {
            if r == rp && !created {
                return Err(Error::malformed(
                    format!("{rp:?}.{name}"),
                    "text fields are edited in place, not replaced",
                ));
            }
        }
        check_values(ctx, rp, created, &changed, before_f, &after_f)?;
        check_lifecycle(ctx, &new, rp, created, &changed, before_f, &after_f)?;
        if ctx.authority != Authority::Server {
            check_permission(
                ctx,
                &old,
                acl_before.as_ref(),
                acl_after.as_ref(),
                rp,
                created,
                &changed,
                before_f,
                &after_f,
            )?;
        }
        if *rp == RecordPath::Account
            && !created
            && changed
                .iter()
                .any(|f| ["owner", "team", "visibility"].contains(f))
        {
            summary.acl_changed = true;
        }
        if created {
            summary.created.insert(rp.clone());
        }
    }
    summary.touched = touched;
    Ok(summary)
}

/// Names of the spec fields whose value differs between the two states.
fn changed_fields(kind: RecordKind, before: &Fields, after: &Fields) -> Vec<&'static str> {
    kind.fields()
        .iter()
        .filter(|s| before.get(s.name) != after.get(s.name))
        .map(|s| s.name)
        .collect()
}

fn check_values(
    ctx: &WriteContext<'_>,
    rp: &RecordPath,
    created: bool,
    changed: &[&'static str],
    before: &Fields,
    after: &Fields,
) -> Result<()> {
    let kind = rp.kind();
    for spec in kind.fields() {
        let label = || format!("{} {}", kind.label(), spec.name.replace('_', " "));
        match after.get(spec.name) {
            Some(v) if created || changed.contains(&spec.name) => spec.check_value(kind, v)?,
            Some(_) => {}
            None if spec.required && created => return Err(Error::invalid(label(), "is required")),
            None if spec.required && before.get(spec.name).is_some() => {
                return Err(Error::invalid(label(), "is required and cannot be removed"));
            }
            None => {}
        }
    }
    if created && kind.has_identity() {
        let expected = match rp {
            RecordPath::Account => ctx.doc_id.as_account().map(|a| a.to_string()),
            other => other.record_id(),
        };
        if after.str("id").map(str::to_owned) != expected {
            return Err(Error::malformed(
                format!("{rp:?}.id"),
                "does not match the record's key",
            ));
        }
        if ctx.authority != Authority::Server
            && after.str("created_by") != Some(ctx.principal.user_id.to_string().as_str())
        {
            return Err(Error::forbidden("create a record in someone else's name"));
        }
    }
    // Coordinates come in pairs.
    for (lat, lon) in [
        ("lat", "lon"),
        ("check_in_lat", "check_in_lon"),
        ("check_out_lat", "check_out_lon"),
    ] {
        if kind.field(lat).is_some() && after.f64(lat).is_some() != after.f64(lon).is_some() {
            return Err(Error::invalid(
                format!("{} location", kind.label()),
                "needs both latitude and longitude",
            ));
        }
    }
    if let (Some(from), Some(to)) = (after.int("valid_from"), after.int("valid_to"))
        && from > to
    {
        return Err(Error::invalid(
            "price validity",
            "must not end before it starts",
        ));
    }
    Ok(())
}

fn status(f: &Fields) -> Option<&str> {
    f.str("status")
}

#[allow(clippy::too_many_arguments)]
fn check_lifecycle(
    ctx: &WriteContext<'_>,
    now: &Reader<'_, Automerge>,
    rp: &RecordPath,
    created: bool,
    changed: &[&'static str],
    before: &Fields,
    after: &Fields,
) -> Result<()> {
    let kind = rp.kind();
    let from = if created { None } else { status(before) };
    let to = status(after);
    let status_moved = created || from != to;
    // Fields that may only be written together with a status change.
    for name in changed {
        if let Some(spec) = kind.field(name)
            && let Access::WithTransition(states) = spec.access
        {
            let ok = status_moved && to.is_some_and(|t| states.contains(&t));
            if !ok && after.get(name).is_some() {
                return Err(Error::invalid(
                    format!("{} {}", kind.label(), name.replace('_', " ")),
                    format!(
                        "can only be recorded when the {} becomes {}",
                        kind.label(),
                        states.join(" or ").replace('_', " ")
                    ),
                ));
            }
        }
    }
    if !changed.contains(&"status") && !created {
        return Ok(());
    }
    let bad = |what: &'static str| Error::InvalidTransition {
        what,
        from: from.unwrap_or("nothing").replace('_', " "),
        to: to.unwrap_or("nothing").replace('_', " "),
    };
    match kind {
        RecordKind::Account => {
            let ok = match (from, to) {
                (None, Some(_)) => true,
                (Some(f), Some(t)) => {
                    let (f, t) = (AccountStatus::parse(f)?, AccountStatus::parse(t)?);
                    matches!(
                        (f, t),
                        (AccountStatus::Lead, AccountStatus::Customer)
                            | (AccountStatus::Lead, AccountStatus::Inactive)
                            | (AccountStatus::Customer, AccountStatus::Inactive)
                            | (AccountStatus::Inactive, AccountStatus::Customer)
                    ) || ctx.authority == Authority::Server
                }
                _ => false,
            };
            if !ok {
                return Err(bad("account"));
            }
        }
        RecordKind::Visit => {
            use VisitStatus::*;
            let t = VisitStatus::parse(to.unwrap_or_default())?;
            let ok = match from {
                None => matches!(t, Planned | InProgress | Completed),
                Some(f) => matches!(
                    (VisitStatus::parse(f)?, t),
                    (Planned, InProgress)
                        | (Planned, Completed)
                        | (Planned, Cancelled)
                        | (InProgress, Completed)
                        | (InProgress, Cancelled)
                ),
            };
            if !ok {
                return Err(bad("visit"));
            }
        }
        RecordKind::Order => {
            use OrderStatus::*;
            let t = OrderStatus::parse(to.unwrap_or_default())?;
            let ok = match (from.map(OrderStatus::parse).transpose()?, t) {
                (None, Draft | Submitted) => true,
                (Some(Draft), Submitted) => true,
                (Some(Submitted), Confirmed | Rejected) | (Some(Confirmed), Delivered) => {
                    ctx.authority == Authority::Server
                }
                _ => false,
            };
            if !ok {
                return Err(
                    if matches!(t, Confirmed | Rejected | Delivered)
                        && ctx.authority != Authority::Server
                    {
                        Error::forbidden(
                            "confirm, reject or deliver an order (the back office decides)",
                        )
                    } else {
                        bad("order")
                    },
                );
            }
            if t == Submitted && status_moved {
                if after.int("submitted_at").is_none() {
                    return Err(Error::invalid(
                        "order submitted at",
                        "is required to submit",
                    ));
                }
                if let RecordPath::Order(order_id) = rp {
                    let account = ctx
                        .doc_id
                        .as_account()
                        .ok_or_else(|| Error::malformed("order", "outside an account"))?;
                    let order = now
                        .order(account, *order_id)?
                        .ok_or_else(|| Error::malformed("order", "vanished"))?;
                    if order.deleted {
                        return Err(Error::invalid(
                            "order",
                            "was discarded and cannot be submitted",
                        ));
                    }
                    if order.live_lines().next().is_none() {
                        return Err(Error::invalid(
                            "order",
                            "needs at least one line to be submitted",
                        ));
                    }
                    order.totals()?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn need_acl(acl: Option<&AccountAcl>) -> Result<&AccountAcl> {
    acl.ok_or_else(|| Error::forbidden("write to an account that does not exist yet"))
}

#[allow(clippy::too_many_arguments)]
fn check_permission(
    ctx: &WriteContext<'_>,
    old: &Reader<'_, Automerge>,
    acl_before: Option<&AccountAcl>,
    acl_after: Option<&AccountAcl>,
    rp: &RecordPath,
    created: bool,
    changed: &[&'static str],
    before: &Fields,
    after: &Fields,
) -> Result<()> {
    let p = ctx.principal;
    let vouched = ctx.authority == Authority::Review;
    // Protected fields: the operation pass already refused writes to them; this catches the
    // effect of a merge (for example a field that only became visible through this change).
    if !created {
        for name in changed {
            if let Some(spec) = rp.kind().field(name)
                && matches!(
                    spec.access,
                    Access::ManagerApi | Access::ServerOnly | Access::CreateOnly
                )
            {
                return Err(protected(name, spec.access));
            }
        }
    } else {
        for spec in rp.kind().fields() {
            if spec.access == Access::ServerOnly && after.get(spec.name).is_some() {
                return Err(protected(spec.name, spec.access));
            }
        }
    }
    let acl = || need_acl(acl_before.or(acl_after));
    let write_account = |what: &str| -> Result<()> {
        if vouched || access::can_write_account(p, acl()?) {
            Ok(())
        } else {
            Err(Error::forbidden(format!("{what} on this account")))
        }
    };
    let order_is_open = |order: &Fields| -> Result<()> {
        match status(order) {
            None | Some("draft") => Ok(()),
            Some(s) => Err(Error::Locked {
                what: "order",
                reason: format!("it is {s}; only the back office can change it now"),
            }),
        }
    };
    match rp.kind() {
        RecordKind::Account => {
            if created {
                if acl_before.is_some() {
                    return Err(Error::malformed("account", "was created twice"));
                }
                if !vouched {
                    access::check_create_account(p, need_acl(acl_after)?)?;
                }
            } else {
                write_account("edit details")?;
            }
        }
        RecordKind::AccountTags => write_account("change tags")?,
        RecordKind::Contact => write_account("change contacts")?,
        RecordKind::Visit => {
            let acl = acl()?;
            let own_visit = after.str("created_by") == Some(p.user_id.to_string().as_str());
            if !(vouched
                || access::can_write_account(p, acl)
                || (access::can_log_visits(p, acl) && own_visit))
            {
                return Err(Error::forbidden(if access::can_log_visits(p, acl) {
                    "edit a visit a colleague logged"
                } else {
                    "log visits on this account"
                }));
            }
        }
        RecordKind::Order => {
            write_account("take orders")?;
            if !created {
                order_is_open(before)?;
                if changed.contains(&"deleted") && status(after) != Some("draft") {
                    return Err(Error::Locked {
                        what: "order",
                        reason: "only drafts can be discarded".into(),
                    });
                }
            }
        }
        RecordKind::OrderLine => {
            write_account("take orders")?;
            let RecordPath::OrderLine(order_id, _) = rp else {
                return Err(Error::malformed("order line", "outside an order"));
            };
            // The order as it was before this change: lines of a submitted order are locked.
            if let Some(order_before) = old.record(&RecordPath::Order(*order_id))? {
                order_is_open(&order_before)?;
            }
            if created
                && let (Some(catalog), Some(product)) = (ctx.catalog, after.str("product_id"))
            {
                let product = ProductId::parse(product)?;
                if catalog.product(product).is_none() {
                    return Err(Error::NotFound {
                        kind: "product",
                        id: product.to_string(),
                    });
                }
            }
        }
        RecordKind::Task => {
            let DocId::User(owner) = ctx.doc_id else {
                return Err(Error::malformed("task", "outside a user document"));
            };
            if !vouched && !access::can_write_user_tasks(p, owner) {
                return Err(Error::forbidden("change this user's tasks"));
            }
            if created && after.str("assignee") != Some(owner.to_string().as_str()) {
                return Err(Error::invalid(
                    "task assignee",
                    "must be the user whose task list it is in",
                ));
            }
        }
        RecordKind::Preferences => {
            let DocId::User(owner) = ctx.doc_id else {
                return Err(Error::malformed("preferences", "outside a user document"));
            };
            if !vouched && !access::can_write_user_preferences(p, owner) {
                return Err(Error::forbidden("change another user's preferences"));
            }
        }
        RecordKind::CatalogSettings
        | RecordKind::Product
        | RecordKind::TaxClass
        | RecordKind::PriceList
        | RecordKind::PriceListItem => {
            if !vouched && !access::can_write_catalog(p) {
                return Err(Error::forbidden("edit the catalog (admins only)"));
            }
        }
    }
    Ok(())
}
