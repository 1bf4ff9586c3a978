//! Writing documents: a small set of generic operations, and typed builders for every
//! domain action (create an account, check in to a visit, add an order line, …).
//!
//! An [`Edit`] — one user action on one document — is what the phone journals and, if the
//! server refuses the change it produced, replays against the server's state (see
//! client-core's rebase). So an edit carries everything it needs: the record IDs were chosen
//! before it was first applied (replay writes the same keys, never a duplicate) and builders
//! that change existing records put only the fields that *differ* from what the user saw
//! (replaying an edit never reverts someone else's concurrent change to another field).

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, transaction::Transactable};
use serde::{Deserialize, Serialize};

use crate::doc::{Catalog, Reader};
use crate::ids::*;
use crate::model::*;
use crate::money::{Currency, Quantity};
use crate::schema::{FieldType, FieldValue, RecordKind, RecordPath, check_tag};
use crate::{Error, Result};

/// One generic operation inside an [`Edit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Creates a record. Idempotent: if the record already exists nothing is written, so a
    /// replayed creation never duplicates it.
    Create {
        record: RecordPath,
        fields: Vec<(String, FieldValue)>,
    },
    /// Sets (`Some`) or clears (`None`) fields of an existing record; values equal to the
    /// current ones are not written.
    Set {
        record: RecordPath,
        fields: Vec<(String, Option<FieldValue>)>,
    },
    /// Adds or removes an account tag (tags form an add-wins set).
    Tag { tag: String, present: bool },
    /// Edits a collaborative text field: the user changed `base` (what they saw) into `text`;
    /// that change is applied to the field *as it is now*, so text others added meanwhile
    /// stays — also when the edit is replayed after a refusal, long after it was made.
    EditText {
        record: RecordPath,
        field: String,
        base: String,
        text: String,
    },
}

/// One user action on one document, applied as one automerge change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edit {
    pub doc: DocId,
    /// What the user did, in snake_case (`log_visit`); becomes the change's commit message.
    pub action: String,
    pub ops: Vec<Op>,
}

/// What applying an edit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Something was written.
    Changed,
    /// Every value was already as requested (or the created record already existed).
    Unchanged,
}

impl Edit {
    fn new(doc: DocId, action: &str, ops: Vec<Op>) -> Self {
        Edit {
            doc,
            action: action.to_owned(),
            ops,
        }
    }

    /// Applies the edit inside an open transaction, as `actor` at time `now` (ms).
    ///
    /// Checks the schema (known fields, types, values, required fields, existence). It does
    /// *not* judge permissions or lifecycles: [`crate::validate`] does, on the resulting
    /// change, in exactly the same way on the phone and on the server.
    pub fn apply<T: Transactable + ReadDoc>(
        &self,
        tx: &mut T,
        actor: UserId,
        now: i64,
    ) -> Result<Applied> {
        let mut changed = false;
        for op in &self.ops {
            changed |= apply_op(tx, self.doc, op, actor, now)? == Applied::Changed;
        }
        Ok(if changed {
            Applied::Changed
        } else {
            Applied::Unchanged
        })
    }
}

const IDENTITY_FIELDS: [&str; 3] = ["id", "created_at", "created_by"];

fn apply_op<T: Transactable + ReadDoc>(
    tx: &mut T,
    doc: DocId,
    op: &Op,
    actor: UserId,
    now: i64,
) -> Result<Applied> {
    match op {
        Op::Create { record, fields } => create(tx, doc, record, fields, actor, now),
        Op::Set { record, fields } => set(tx, doc, record, fields),
        Op::EditText {
            record,
            field,
            base,
            text,
        } => edit_text(tx, doc, record, field, base, text),
        Op::Tag { tag, present } => {
            if doc.kind() != DocKind::Account {
                return Err(Error::invalid("tag", "only accounts have tags"));
            }
            check_tag(tag)?;
            let tags = existing_map(tx, &RecordPath::AccountTags)?;
            let now_present = matches!(tx.get(&tags, tag.as_str())?, Some((automerge::Value::Scalar(v), _)) if v.as_bool() == Some(true));
            match (*present, now_present) {
                (true, false) => tx.put(&tags, tag.as_str(), true)?,
                (false, true) => tx.delete(&tags, tag.as_str())?,
                _ => return Ok(Applied::Unchanged),
            }
            Ok(Applied::Changed)
        }
    }
}

fn edit_text<T: Transactable + ReadDoc>(
    tx: &mut T,
    doc: DocId,
    record: &RecordPath,
    field: &str,
    base: &str,
    text: &str,
) -> Result<Applied> {
    check_doc_kind(doc, record)?;
    let kind = record.kind();
    let spec = kind
        .field(field)
        .filter(|s| s.ty == FieldType::Text)
        .ok_or_else(|| unknown_field(kind, field))?;
    let current = Reader::new(tx)
        .record(record)?
        .ok_or_else(|| not_found(record))?;
    let now = current
        .get(field)
        .and_then(FieldValue::as_str)
        .unwrap_or_default()
        .to_owned();
    let target = merge_text(base, &now, text)?;
    spec.check_value(kind, &FieldValue::Text(target.clone()))?;
    if target == now {
        return Ok(Applied::Unchanged);
    }
    let obj = existing_map(tx, record)?;
    write_value(tx, &obj, spec.name, &FieldValue::Text(target))?;
    Ok(Applied::Changed)
}

/// Three-way merge of text: the edit `base → ours` applied to `theirs`, with automerge's own
/// text merge (on a scratch document), so the result is what a live merge would have given.
pub fn merge_text(base: &str, theirs: &str, ours: &str) -> Result<String> {
    // The trivial cases of a three-way merge: one side did nothing, or both did the same.
    if theirs == base || theirs == ours {
        return Ok(ours.to_owned());
    }
    if ours == base {
        return Ok(theirs.to_owned());
    }
    let mut root = automerge::Automerge::new()
        .with_actor(automerge::ActorId::from(b"fieldline-merge-b".as_slice()));
    let mut tx = root.transaction();
    let t = tx.put_object(automerge::ROOT, "t", ObjType::Text)?;
    tx.splice_text(&t, 0, 0, base)?;
    tx.commit();
    let branch = |text: &str, actor: &[u8]| -> Result<automerge::Automerge> {
        let mut d = root.fork().with_actor(automerge::ActorId::from(actor));
        let mut tx = d.transaction();
        tx.update_text(&t, text)?;
        tx.commit();
        Ok(d)
    };
    let mut theirs_doc = branch(theirs, b"fieldline-merge-t")?;
    let mut ours_doc = branch(ours, b"fieldline-merge-o")?;
    theirs_doc.merge(&mut ours_doc)?;
    Ok(theirs_doc.text(&t)?)
}

fn existing_map<T: ReadDoc>(tx: &T, path: &RecordPath) -> Result<ObjId> {
    Reader::new(tx)
        .map_at(&path.props())?
        .ok_or_else(|| not_found(path))
}

fn not_found(path: &RecordPath) -> Error {
    Error::NotFound {
        kind: path.kind().label(),
        id: path.record_id().unwrap_or_else(|| format!("{path:?}")),
    }
}

fn check_doc_kind(doc: DocId, record: &RecordPath) -> Result<()> {
    if record.doc_kind() != doc.kind() {
        return Err(Error::invalid(
            "record",
            format!(
                "a {} does not belong in a {} document",
                record.kind().label(),
                doc.kind().as_str()
            ),
        ));
    }
    Ok(())
}

fn create<T: Transactable + ReadDoc>(
    tx: &mut T,
    doc: DocId,
    record: &RecordPath,
    fields: &[(String, FieldValue)],
    actor: UserId,
    now: i64,
) -> Result<Applied> {
    check_doc_kind(doc, record)?;
    let kind = record.kind();
    if kind.is_singleton() {
        return Err(Error::invalid(
            kind.label(),
            "always exists; set its fields instead",
        ));
    }
    if Reader::new(tx).record(record)?.is_some() {
        return Ok(Applied::Unchanged);
    }
    let mut props = record.props();
    let key = props
        .pop()
        .ok_or_else(|| Error::invalid("record", "has an empty path"))?;
    // The containing map: a section of the skeleton, or the parent record's sub-map.
    let parent =
        if let Some(parent_record) = record.parent().filter(|_| kind != RecordKind::AccountTags) {
            if Reader::new(tx).record(&parent_record)?.is_none() {
                return Err(not_found(&parent_record));
            }
            Reader::new(tx)
                .map_at(&props)?
                .ok_or_else(|| not_found(&parent_record))?
        } else {
            Reader::new(tx)
                .map_at(&props)?
                .ok_or_else(|| Error::malformed(props.join("."), "is missing from the skeleton"))?
        };
    let obj = if kind == RecordKind::Account {
        // The account map exists from the skeleton (with its tags and notes inside).
        if let DocId::Account(id) = doc {
            let given = fields.iter().find(|(n, _)| n == "id");
            if given.is_some() {
                return Err(Error::invalid(
                    "account id",
                    "is the document's ID and cannot be given",
                ));
            }
            let obj = existing_map(tx, record)?;
            tx.put(&obj, "id", id.to_string())?;
            obj
        } else {
            return Err(Error::invalid(
                "record",
                "an account lives in its own account document",
            ));
        }
    } else {
        let obj = tx.put_object(&parent, key.as_str(), ObjType::Map)?;
        if let Some(id) = record.record_id() {
            tx.put(&obj, "id", id)?;
        }
        match kind {
            RecordKind::Order => {
                tx.put_object(&obj, "lines", ObjType::Map)?;
            }
            RecordKind::PriceList => {
                tx.put_object(&obj, "items", ObjType::Map)?;
            }
            _ => {}
        }
        for spec in kind.text_fields() {
            tx.put_object(&obj, spec.name, ObjType::Text)?;
        }
        obj
    };
    if kind.has_identity() {
        tx.put(&obj, "created_at", ScalarValue::Timestamp(now))?;
        tx.put(&obj, "created_by", actor.to_string())?;
    }
    for (name, value) in fields {
        if IDENTITY_FIELDS.contains(&name.as_str()) {
            return Err(Error::invalid(
                name.as_str(),
                "is set automatically and cannot be given",
            ));
        }
        let spec = kind.field(name).ok_or_else(|| unknown_field(kind, name))?;
        spec.check_value(kind, value)?;
        write_value(tx, &obj, spec.name, value)?;
    }
    for spec in kind.fields() {
        if spec.required
            && !IDENTITY_FIELDS.contains(&spec.name)
            && !fields.iter().any(|(n, _)| n == spec.name)
        {
            return Err(Error::invalid(
                format!("{} {}", kind.label(), spec.name.replace('_', " ")),
                "is required",
            ));
        }
    }
    Ok(Applied::Changed)
}

fn unknown_field(kind: RecordKind, name: &str) -> Error {
    Error::invalid(format!("{} field {name}", kind.label()), "does not exist")
}

fn write_value<T: Transactable + ReadDoc>(
    tx: &mut T,
    obj: &ObjId,
    name: &str,
    value: &FieldValue,
) -> Result<()> {
    match value {
        FieldValue::Text(s) => {
            let text = match tx.get(obj, name)? {
                Some((automerge::Value::Object(ObjType::Text), id)) => id,
                _ => tx.put_object(obj, name, ObjType::Text)?,
            };
            tx.update_text(&text, s)?;
        }
        FieldValue::Str(s) => tx.put(obj, name, s.as_str())?,
        FieldValue::Int(i) => tx.put(obj, name, *i)?,
        FieldValue::F64(f) => tx.put(obj, name, *f)?,
        FieldValue::Bool(b) => tx.put(obj, name, *b)?,
        FieldValue::Timestamp(t) => tx.put(obj, name, ScalarValue::Timestamp(*t))?,
    }
    Ok(())
}

fn set<T: Transactable + ReadDoc>(
    tx: &mut T,
    doc: DocId,
    record: &RecordPath,
    fields: &[(String, Option<FieldValue>)],
) -> Result<Applied> {
    check_doc_kind(doc, record)?;
    let kind = record.kind();
    let current = Reader::new(tx)
        .record(record)?
        .ok_or_else(|| not_found(record))?;
    let obj = existing_map(tx, record)?;
    let mut changed = false;
    for (name, value) in fields {
        if IDENTITY_FIELDS.contains(&name.as_str()) {
            return Err(Error::invalid(name.as_str(), "never changes"));
        }
        let spec = kind.field(name).ok_or_else(|| unknown_field(kind, name))?;
        match value {
            Some(v) => {
                spec.check_value(kind, v)?;
                if current.get(name) != Some(v) {
                    write_value(tx, &obj, spec.name, v)?;
                    changed = true;
                }
            }
            None => {
                if spec.required {
                    return Err(Error::invalid(
                        format!("{} {}", kind.label(), spec.name.replace('_', " ")),
                        "is required",
                    ));
                }
                if spec.ty == FieldType::Text {
                    if current.str(name).is_some() {
                        write_value(tx, &obj, spec.name, &FieldValue::Text(String::new()))?;
                        changed = true;
                    }
                } else if current.get(name).is_some() {
                    tx.delete(&obj, spec.name)?;
                    changed = true;
                }
            }
        }
    }
    Ok(if changed {
        Applied::Changed
    } else {
        Applied::Unchanged
    })
}

// ---- typed builders ---------------------------------------------------------------------------

fn s(v: impl Into<String>) -> FieldValue {
    FieldValue::Str(v.into())
}

/// A `Some(non-empty string)` as a field value to set, anything else as a clear.
fn opt_s(v: &Option<String>) -> Option<FieldValue> {
    v.as_deref().map(str::trim).filter(|x| !x.is_empty()).map(s)
}

fn push_opt(fields: &mut Vec<(String, FieldValue)>, name: &str, value: Option<FieldValue>) {
    if let Some(v) = value {
        fields.push((name.to_owned(), v));
    }
}

/// Collects the changed fields of an update: only values that differ from what the user saw.
#[derive(Default)]
struct Delta(Vec<(String, Option<FieldValue>)>);

impl Delta {
    fn put(&mut self, name: &str, old: Option<FieldValue>, new: Option<FieldValue>) {
        if old != new {
            self.0.push((name.to_owned(), new));
        }
    }

    fn into_op(self, record: RecordPath) -> Option<Op> {
        (!self.0.is_empty()).then_some(Op::Set {
            record,
            fields: self.0,
        })
    }
}

fn geo_fields(
    prefix: &str,
    acc_name: Option<&str>,
    g: &Option<GeoPoint>,
) -> Vec<(String, Option<FieldValue>)> {
    let mut out = vec![
        (format!("{prefix}lat"), g.map(|g| FieldValue::F64(g.lat))),
        (format!("{prefix}lon"), g.map(|g| FieldValue::F64(g.lon))),
    ];
    if let Some(acc) = acc_name {
        out.push((
            acc.to_owned(),
            g.and_then(|g| g.accuracy_m).map(FieldValue::F64),
        ));
    }
    out
}

/// What a rep types for an account (create or edit form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountInput {
    pub name: String,
    pub status: AccountStatus,
    pub erp_code: Option<String>,
    pub address: Address,
    pub location: Option<GeoPoint>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub payment_terms: Option<String>,
    pub price_list_id: Option<PriceListId>,
    pub currency: Currency,
}

impl AccountInput {
    /// The minimal input: a name and a currency; everything else can come later.
    pub fn named(name: impl Into<String>, currency: Currency) -> Self {
        AccountInput {
            name: name.into(),
            status: AccountStatus::Lead,
            erp_code: None,
            address: Address::default(),
            location: None,
            phone: None,
            email: None,
            payment_terms: None,
            price_list_id: None,
            currency,
        }
    }

    fn editable_fields(&self) -> Vec<(String, Option<FieldValue>)> {
        let mut f = vec![
            ("name".to_owned(), Some(s(self.name.trim()))),
            ("erp_code".to_owned(), opt_s(&self.erp_code)),
            ("street".to_owned(), opt_s(&self.address.street)),
            ("city".to_owned(), opt_s(&self.address.city)),
            ("region".to_owned(), opt_s(&self.address.region)),
            ("postal_code".to_owned(), opt_s(&self.address.postal_code)),
            ("country".to_owned(), opt_s(&self.address.country)),
            ("phone".to_owned(), opt_s(&self.phone)),
            ("email".to_owned(), opt_s(&self.email)),
            ("payment_terms".to_owned(), opt_s(&self.payment_terms)),
            (
                "price_list_id".to_owned(),
                self.price_list_id.map(|p| s(p.to_string())),
            ),
            ("currency".to_owned(), Some(s(self.currency.code()))),
        ];
        f.extend(geo_fields("", None, &self.location));
        f
    }
}

/// A new account: the first change of its document after the skeleton.
pub fn create_account(
    id: AccountId,
    acl: AccountAcl,
    input: &AccountInput,
    notes: &str,
    tags: &[String],
) -> Edit {
    let mut fields: Vec<(String, FieldValue)> = Vec::new();
    for (name, value) in input.editable_fields() {
        push_opt(&mut fields, &name, value);
    }
    fields.push(("status".into(), s(input.status.as_str())));
    fields.push(("owner".into(), s(acl.owner.to_string())));
    fields.push(("team".into(), s(acl.team.to_string())));
    fields.push(("visibility".into(), s(acl.visibility.as_str())));
    if !notes.is_empty() {
        fields.push(("notes".into(), FieldValue::Text(notes.to_owned())));
    }
    let mut ops = vec![Op::Create {
        record: RecordPath::Account,
        fields,
    }];
    ops.extend(tags.iter().map(|t| Op::Tag {
        tag: t.trim().to_owned(),
        present: true,
    }));
    Edit::new(DocId::Account(id), "create_account", ops)
}

/// Edits an account's details: only the fields that differ from `current` are written.
pub fn update_account(current: &Account, input: &AccountInput) -> Option<Edit> {
    let before = AccountInput {
        name: current.name.clone(),
        status: current.status,
        erp_code: current.erp_code.clone(),
        address: current.address.clone(),
        location: current.location,
        phone: current.phone.clone(),
        email: current.email.clone(),
        payment_terms: current.payment_terms.clone(),
        price_list_id: current.price_list_id,
        currency: current.currency,
    };
    let mut delta = Delta::default();
    for ((name, old), (_, new)) in before
        .editable_fields()
        .into_iter()
        .zip(input.editable_fields())
    {
        delta.put(&name, old, new);
    }
    delta.put(
        "status",
        Some(s(current.status.as_str())),
        Some(s(input.status.as_str())),
    );
    let op = delta.into_op(RecordPath::Account)?;
    Some(Edit::new(
        DocId::Account(current.id),
        "update_account",
        vec![op],
    ))
}

/// Converts a lead into a customer.
pub fn convert_lead(account: AccountId) -> Edit {
    set_status(account, AccountStatus::Customer, "convert_lead")
}

pub fn set_account_status(account: AccountId, status: AccountStatus) -> Edit {
    set_status(account, status, "set_account_status")
}

fn set_status(account: AccountId, status: AccountStatus, action: &str) -> Edit {
    Edit::new(
        DocId::Account(account),
        action,
        vec![Op::Set {
            record: RecordPath::Account,
            fields: vec![("status".into(), Some(s(status.as_str())))],
        }],
    )
}

/// Edits the account's notes from `base` (what the user saw) to `notes`.
pub fn edit_account_notes(account: AccountId, base: &str, notes: &str) -> Edit {
    Edit::new(
        DocId::Account(account),
        "edit_account_notes",
        vec![edit_notes(RecordPath::Account, base, notes)],
    )
}

fn edit_notes(record: RecordPath, base: &str, text: &str) -> Op {
    Op::EditText {
        record,
        field: "notes".into(),
        base: base.to_owned(),
        text: text.to_owned(),
    }
}

pub fn set_tag(account: AccountId, tag: &str, present: bool) -> Edit {
    Edit::new(
        DocId::Account(account),
        if present { "add_tag" } else { "remove_tag" },
        vec![Op::Tag {
            tag: tag.trim().to_owned(),
            present,
        }],
    )
}

/// Owner, team and visibility: server authority only (the manager API).
pub fn set_account_acl(account: AccountId, acl: AccountAcl) -> Edit {
    Edit::new(
        DocId::Account(account),
        "reassign_account",
        vec![Op::Set {
            record: RecordPath::Account,
            fields: vec![
                ("owner".into(), Some(s(acl.owner.to_string()))),
                ("team".into(), Some(s(acl.team.to_string()))),
                ("visibility".into(), Some(s(acl.visibility.as_str()))),
            ],
        }],
    )
}

/// The value tier: server authority only.
pub fn set_tier(account: AccountId, tier: Option<Tier>) -> Edit {
    Edit::new(
        DocId::Account(account),
        "set_tier",
        vec![Op::Set {
            record: RecordPath::Account,
            fields: vec![("tier".into(), tier.map(|t| s(t.as_str())))],
        }],
    )
}

/// A contact person as typed by the rep.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactInput {
    pub name: String,
    pub title: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub primary: bool,
}

impl ContactInput {
    fn fields(&self) -> Vec<(String, Option<FieldValue>)> {
        vec![
            ("name".into(), Some(s(self.name.trim()))),
            ("title".into(), opt_s(&self.title)),
            ("phone".into(), opt_s(&self.phone)),
            ("email".into(), opt_s(&self.email)),
            ("primary".into(), Some(FieldValue::Bool(self.primary))),
        ]
    }
}

pub fn add_contact(account: AccountId, id: ContactId, input: &ContactInput) -> Edit {
    let mut fields = Vec::new();
    for (name, value) in input.fields() {
        push_opt(&mut fields, &name, value);
    }
    Edit::new(
        DocId::Account(account),
        "add_contact",
        vec![Op::Create {
            record: RecordPath::Contact(id),
            fields,
        }],
    )
}

pub fn update_contact(current: &Contact, input: &ContactInput) -> Option<Edit> {
    let before = ContactInput {
        name: current.name.clone(),
        title: current.title.clone(),
        phone: current.phone.clone(),
        email: current.email.clone(),
        primary: current.primary,
    };
    let mut delta = Delta::default();
    for ((name, old), (_, new)) in before.fields().into_iter().zip(input.fields()) {
        delta.put(&name, old, new);
    }
    let op = delta.into_op(RecordPath::Contact(current.id))?;
    Some(Edit::new(
        DocId::Account(current.account_id),
        "update_contact",
        vec![op],
    ))
}

/// Soft-deletes (or restores) a contact: records are never removed, so an edit made
/// concurrently on another device is kept and the contact can be restored with it.
pub fn set_contact_deleted(account: AccountId, id: ContactId, deleted: bool) -> Edit {
    Edit::new(
        DocId::Account(account),
        if deleted {
            "delete_contact"
        } else {
            "restore_contact"
        },
        vec![Op::Set {
            record: RecordPath::Contact(id),
            fields: vec![("deleted".into(), Some(FieldValue::Bool(deleted)))],
        }],
    )
}

fn visit_op(id: VisitId, fields: Vec<(String, Option<FieldValue>)>) -> Op {
    Op::Set {
        record: RecordPath::Visit(id),
        fields,
    }
}

/// Plans a visit at `planned_at`.
pub fn plan_visit(account: AccountId, id: VisitId, planned_at: i64, purpose: Option<&str>) -> Edit {
    let mut fields = vec![
        ("status".into(), s("planned")),
        ("planned_at".into(), FieldValue::Timestamp(planned_at)),
    ];
    push_opt(&mut fields, "purpose", opt_s(&purpose.map(str::to_owned)));
    Edit::new(
        DocId::Account(account),
        "plan_visit",
        vec![Op::Create {
            record: RecordPath::Visit(id),
            fields,
        }],
    )
}

/// Checks in to a planned visit: records the time and, only if the app passes one, the place.
pub fn check_in(account: AccountId, id: VisitId, at: i64, location: Option<GeoPoint>) -> Edit {
    let mut fields = vec![
        ("status".into(), Some(s("in_progress"))),
        ("checked_in_at".into(), Some(FieldValue::Timestamp(at))),
    ];
    if location.is_some() {
        fields.extend(geo_fields(
            "check_in_",
            Some("check_in_accuracy_m"),
            &location,
        ));
    }
    Edit::new(
        DocId::Account(account),
        "check_in",
        vec![visit_op(id, fields)],
    )
}

/// How a visit ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VisitReport {
    pub outcome: Option<String>,
    pub next_step: Option<String>,
    /// Replaces the visit notes when given.
    pub notes: Option<String>,
}

/// Completes a visit (checks out); a visit still planned is checked in at the same moment.
pub fn complete_visit(
    account: AccountId,
    visit: &Visit,
    at: i64,
    location: Option<GeoPoint>,
    report: &VisitReport,
) -> Edit {
    let mut fields = vec![
        ("status".into(), Some(s("completed"))),
        ("checked_out_at".into(), Some(FieldValue::Timestamp(at))),
    ];
    if visit.status == VisitStatus::Planned {
        fields.push(("checked_in_at".into(), Some(FieldValue::Timestamp(at))));
    }
    if location.is_some() {
        fields.extend(geo_fields(
            "check_out_",
            Some("check_out_accuracy_m"),
            &location,
        ));
    }
    if let Some(o) = opt_s(&report.outcome) {
        fields.push(("outcome".into(), Some(o)));
    }
    if let Some(n) = opt_s(&report.next_step) {
        fields.push(("next_step".into(), Some(n)));
    }
    let mut ops = vec![visit_op(visit.id, fields)];
    if let Some(notes) = &report.notes {
        ops.push(edit_notes(RecordPath::Visit(visit.id), &visit.notes, notes));
    }
    Edit::new(DocId::Account(account), "complete_visit", ops)
}

/// Logs a visit that already happened, in one step (minimal data entry: the rep was there).
pub fn log_visit(
    account: AccountId,
    id: VisitId,
    at: i64,
    location: Option<GeoPoint>,
    purpose: Option<&str>,
    report: &VisitReport,
) -> Edit {
    let mut fields = vec![
        ("status".into(), s("completed")),
        ("planned_at".into(), FieldValue::Timestamp(at)),
        ("checked_in_at".into(), FieldValue::Timestamp(at)),
        ("checked_out_at".into(), FieldValue::Timestamp(at)),
    ];
    if let Some(g) = location {
        fields.push(("check_in_lat".into(), FieldValue::F64(g.lat)));
        fields.push(("check_in_lon".into(), FieldValue::F64(g.lon)));
        push_opt(
            &mut fields,
            "check_in_accuracy_m",
            g.accuracy_m.map(FieldValue::F64),
        );
    }
    push_opt(&mut fields, "purpose", opt_s(&purpose.map(str::to_owned)));
    push_opt(&mut fields, "outcome", opt_s(&report.outcome));
    push_opt(&mut fields, "next_step", opt_s(&report.next_step));
    if let Some(n) = report.notes.as_ref().filter(|n| !n.is_empty()) {
        fields.push(("notes".into(), FieldValue::Text(n.clone())));
    }
    Edit::new(
        DocId::Account(account),
        "log_visit",
        vec![Op::Create {
            record: RecordPath::Visit(id),
            fields,
        }],
    )
}

pub fn cancel_visit(account: AccountId, id: VisitId, reason: Option<&str>) -> Edit {
    let mut fields = vec![("status".into(), Some(s("cancelled")))];
    if let Some(r) = opt_s(&reason.map(str::to_owned)) {
        fields.push(("cancel_reason".into(), Some(r)));
    }
    Edit::new(
        DocId::Account(account),
        "cancel_visit",
        vec![visit_op(id, fields)],
    )
}

/// Moves a planned visit or changes its purpose; only what differs is written.
pub fn reschedule_visit(visit: &Visit, planned_at: i64, purpose: Option<&str>) -> Option<Edit> {
    let mut delta = Delta::default();
    delta.put(
        "planned_at",
        visit.planned_at.map(FieldValue::Timestamp),
        Some(FieldValue::Timestamp(planned_at)),
    );
    delta.put(
        "purpose",
        opt_s(&visit.purpose),
        opt_s(&purpose.map(str::to_owned)),
    );
    let op = delta.into_op(RecordPath::Visit(visit.id))?;
    Some(Edit::new(
        DocId::Account(visit.account_id),
        "reschedule_visit",
        vec![op],
    ))
}

/// Edits a visit's notes from `base` (what the user saw) to `notes`.
pub fn edit_visit_notes(account: AccountId, id: VisitId, base: &str, notes: &str) -> Edit {
    Edit::new(
        DocId::Account(account),
        "edit_visit_notes",
        vec![edit_notes(RecordPath::Visit(id), base, notes)],
    )
}

/// Starts a draft order in `currency`, priced from `price_list` (if any), optionally linked
/// to the visit where it was taken.
pub fn create_order(
    account: AccountId,
    id: OrderId,
    currency: Currency,
    price_list: Option<PriceListId>,
    visit: Option<VisitId>,
) -> Edit {
    let mut fields = vec![
        ("status".into(), s("draft")),
        ("currency".into(), s(currency.code())),
    ];
    push_opt(
        &mut fields,
        "price_list_id",
        price_list.map(|p| s(p.to_string())),
    );
    push_opt(&mut fields, "visit_id", visit.map(|v| s(v.to_string())));
    Edit::new(
        DocId::Account(account),
        "create_order",
        vec![Op::Create {
            record: RecordPath::Order(id),
            fields,
        }],
    )
}

/// Adds a line: product code, name, unit price and tax rate are copied from the catalog
/// quote now, so later catalog changes never alter an order already taken.
pub fn add_order_line(
    account: AccountId,
    order: OrderId,
    line: OrderLineId,
    quote: &crate::doc::Quote,
    quantity: Quantity,
    discount_bp: i64,
) -> Edit {
    let mut fields = vec![
        ("product_id".into(), s(quote.product.id.to_string())),
        ("product_code".into(), s(quote.product.sku.clone())),
        ("product_name".into(), s(quote.product.name.clone())),
        (
            "unit_price_minor".into(),
            FieldValue::Int(quote.unit_price_minor),
        ),
        ("quantity_milli".into(), FieldValue::Int(quantity.milli())),
        ("tax_bp".into(), FieldValue::Int(quote.tax_bp)),
    ];
    push_opt(
        &mut fields,
        "unit",
        opt_s(&Some(quote.product.unit.clone())),
    );
    if discount_bp != 0 {
        fields.push(("discount_bp".into(), FieldValue::Int(discount_bp)));
    }
    Edit::new(
        DocId::Account(account),
        "add_order_line",
        vec![Op::Create {
            record: RecordPath::OrderLine(order, line),
            fields,
        }],
    )
}

pub fn update_order_line(
    account: AccountId,
    order: OrderId,
    line: OrderLineId,
    quantity: Quantity,
    discount_bp: i64,
) -> Edit {
    Edit::new(
        DocId::Account(account),
        "update_order_line",
        vec![Op::Set {
            record: RecordPath::OrderLine(order, line),
            fields: vec![
                (
                    "quantity_milli".into(),
                    Some(FieldValue::Int(quantity.milli())),
                ),
                ("discount_bp".into(), Some(FieldValue::Int(discount_bp))),
            ],
        }],
    )
}

pub fn remove_order_line(account: AccountId, order: OrderId, line: OrderLineId) -> Edit {
    Edit::new(
        DocId::Account(account),
        "remove_order_line",
        vec![Op::Set {
            record: RecordPath::OrderLine(order, line),
            fields: vec![("deleted".into(), Some(FieldValue::Bool(true)))],
        }],
    )
}

pub fn set_order_notes(account: AccountId, order: OrderId, notes: Option<&str>) -> Edit {
    Edit::new(
        DocId::Account(account),
        "set_order_notes",
        vec![Op::Set {
            record: RecordPath::Order(order),
            fields: vec![("notes".into(), opt_s(&notes.map(str::to_owned)))],
        }],
    )
}

/// Submits a draft order; from now on it is read-only to the rep.
pub fn submit_order(account: AccountId, order: OrderId, at: i64) -> Edit {
    Edit::new(
        DocId::Account(account),
        "submit_order",
        vec![Op::Set {
            record: RecordPath::Order(order),
            fields: vec![
                ("status".into(), Some(s("submitted"))),
                ("submitted_at".into(), Some(FieldValue::Timestamp(at))),
            ],
        }],
    )
}

/// Discards a draft order (soft delete).
pub fn discard_order(account: AccountId, order: OrderId) -> Edit {
    Edit::new(
        DocId::Account(account),
        "discard_order",
        vec![Op::Set {
            record: RecordPath::Order(order),
            fields: vec![("deleted".into(), Some(FieldValue::Bool(true)))],
        }],
    )
}

/// The back office's decision on a submitted order (server authority only).
pub fn decide_order(
    account: AccountId,
    order: OrderId,
    status: OrderStatus,
    at: i64,
    erp_ref: Option<&str>,
    reason: Option<&str>,
) -> Edit {
    let mut fields = vec![
        ("status".into(), Some(s(status.as_str()))),
        ("decided_at".into(), Some(FieldValue::Timestamp(at))),
    ];
    if let Some(r) = opt_s(&erp_ref.map(str::to_owned)) {
        fields.push(("erp_ref".into(), Some(r)));
    }
    if let Some(r) = opt_s(&reason.map(str::to_owned)) {
        fields.push(("reject_reason".into(), Some(r)));
    }
    Edit::new(
        DocId::Account(account),
        "decide_order",
        vec![Op::Set {
            record: RecordPath::Order(order),
            fields,
        }],
    )
}

/// A task (follow-up, reminder) for a user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInput {
    pub title: String,
    pub due_at: Option<i64>,
    pub account_id: Option<AccountId>,
    pub visit_id: Option<VisitId>,
    pub notes: Option<String>,
}

pub fn create_task(user: UserId, id: TaskId, input: &TaskInput) -> Edit {
    let mut fields = vec![
        ("title".into(), s(input.title.trim())),
        ("assignee".into(), s(user.to_string())),
    ];
    push_opt(
        &mut fields,
        "due_at",
        input.due_at.map(FieldValue::Timestamp),
    );
    push_opt(
        &mut fields,
        "account_id",
        input.account_id.map(|a| s(a.to_string())),
    );
    push_opt(
        &mut fields,
        "visit_id",
        input.visit_id.map(|v| s(v.to_string())),
    );
    if let Some(n) = input.notes.as_ref().filter(|n| !n.is_empty()) {
        fields.push(("notes".into(), FieldValue::Text(n.clone())));
    }
    Edit::new(
        DocId::User(user),
        "create_task",
        vec![Op::Create {
            record: RecordPath::Task(id),
            fields,
        }],
    )
}

pub fn update_task(user: UserId, current: &Task, input: &TaskInput) -> Option<Edit> {
    let mut delta = Delta::default();
    delta.put(
        "title",
        Some(s(current.title.clone())),
        Some(s(input.title.trim())),
    );
    delta.put(
        "due_at",
        current.due_at.map(FieldValue::Timestamp),
        input.due_at.map(FieldValue::Timestamp),
    );
    delta.put(
        "account_id",
        current.account_id.map(|a| s(a.to_string())),
        input.account_id.map(|a| s(a.to_string())),
    );
    delta.put(
        "visit_id",
        current.visit_id.map(|a| s(a.to_string())),
        input.visit_id.map(|a| s(a.to_string())),
    );
    let mut ops: Vec<Op> = delta
        .into_op(RecordPath::Task(current.id))
        .into_iter()
        .collect();
    let new_notes = input.notes.clone().unwrap_or_default();
    if new_notes != current.notes {
        ops.push(edit_notes(
            RecordPath::Task(current.id),
            &current.notes,
            &new_notes,
        ));
    }
    (!ops.is_empty()).then(|| Edit::new(DocId::User(user), "update_task", ops))
}

pub fn set_task_done(user: UserId, id: TaskId, done: bool, at: i64) -> Edit {
    Edit::new(
        DocId::User(user),
        if done { "complete_task" } else { "reopen_task" },
        vec![Op::Set {
            record: RecordPath::Task(id),
            fields: vec![
                ("done".into(), Some(FieldValue::Bool(done))),
                ("done_at".into(), done.then_some(FieldValue::Timestamp(at))),
            ],
        }],
    )
}

pub fn delete_task(user: UserId, id: TaskId) -> Edit {
    Edit::new(
        DocId::User(user),
        "delete_task",
        vec![Op::Set {
            record: RecordPath::Task(id),
            fields: vec![("deleted".into(), Some(FieldValue::Bool(true)))],
        }],
    )
}

pub fn set_preferences(user: UserId, prefs: &Preferences) -> Edit {
    Edit::new(
        DocId::User(user),
        "set_preferences",
        vec![Op::Set {
            record: RecordPath::Preferences,
            fields: vec![
                ("language".into(), prefs.language.map(|l| s(l.as_str()))),
                ("currency".into(), prefs.currency.map(|c| s(c.code()))),
                (
                    "visit_reminder_minutes".into(),
                    prefs.visit_reminder_minutes.map(FieldValue::Int),
                ),
            ],
        }],
    )
}

// ---- catalog (admins) -------------------------------------------------------------------------

pub fn set_base_currency(currency: Currency) -> Edit {
    Edit::new(
        DocId::Catalog,
        "set_base_currency",
        vec![Op::Set {
            record: RecordPath::CatalogSettings,
            fields: vec![("base_currency".into(), Some(s(currency.code())))],
        }],
    )
}

/// Creates or replaces a tax class.
pub fn set_tax_class(code: &str, name: &str, rate_bp: i64) -> Edit {
    let record = RecordPath::TaxClass(code.to_owned());
    let fields = vec![
        ("name".to_owned(), s(name.trim())),
        ("rate_bp".to_owned(), FieldValue::Int(rate_bp)),
    ];
    Edit::new(
        DocId::Catalog,
        "set_tax_class",
        vec![
            Op::Create {
                record: record.clone(),
                fields: fields.clone(),
            },
            Op::Set {
                record,
                fields: fields.into_iter().map(|(n, v)| (n, Some(v))).collect(),
            },
        ],
    )
}

/// A product as the back office enters it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductInput {
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    pub unit: String,
    pub base_price_minor: i64,
    pub tax_class: String,
    pub active: bool,
}

impl ProductInput {
    fn fields(&self) -> Vec<(String, Option<FieldValue>)> {
        vec![
            ("sku".into(), Some(s(self.sku.trim()))),
            ("name".into(), Some(s(self.name.trim()))),
            ("category".into(), opt_s(&self.category)),
            ("unit".into(), Some(s(self.unit.trim()))),
            (
                "base_price_minor".into(),
                Some(FieldValue::Int(self.base_price_minor)),
            ),
            ("tax_class".into(), Some(s(self.tax_class.trim()))),
            ("active".into(), Some(FieldValue::Bool(self.active))),
        ]
    }
}

/// Creates a product, or updates it if it exists (same ID).
pub fn upsert_product(id: ProductId, input: &ProductInput, catalog: &Catalog) -> Result<Edit> {
    if !catalog.tax_classes.contains_key(input.tax_class.trim()) {
        return Err(Error::NotFound {
            kind: "tax class",
            id: input.tax_class.clone(),
        });
    }
    let record = RecordPath::Product(id);
    let ops = if catalog.products.contains_key(&id) {
        vec![Op::Set {
            record,
            fields: input.fields(),
        }]
    } else {
        let mut fields = Vec::new();
        for (n, v) in input.fields() {
            push_opt(&mut fields, &n, v);
        }
        vec![Op::Create { record, fields }]
    };
    Ok(Edit::new(DocId::Catalog, "upsert_product", ops))
}

pub fn create_price_list(id: PriceListId, name: &str, currency: Currency) -> Edit {
    Edit::new(
        DocId::Catalog,
        "create_price_list",
        vec![Op::Create {
            record: RecordPath::PriceList(id),
            fields: vec![
                ("name".into(), s(name.trim())),
                ("currency".into(), s(currency.code())),
                ("active".into(), FieldValue::Bool(true)),
            ],
        }],
    )
}

/// One price of a product in a price list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceInput {
    pub product_id: ProductId,
    pub price_minor: i64,
    pub min_qty: Option<Quantity>,
    pub valid_from: Option<i64>,
    pub valid_to: Option<i64>,
}

pub fn add_price(list: PriceListId, item: PriceListItemId, input: &PriceInput) -> Result<Edit> {
    if let (Some(from), Some(to)) = (input.valid_from, input.valid_to)
        && from > to
    {
        return Err(Error::invalid("valid_to", "must not be before valid_from"));
    }
    let mut fields = vec![
        ("product_id".into(), s(input.product_id.to_string())),
        ("price_minor".into(), FieldValue::Int(input.price_minor)),
    ];
    push_opt(
        &mut fields,
        "min_qty_milli",
        input.min_qty.map(|q| FieldValue::Int(q.milli())),
    );
    push_opt(
        &mut fields,
        "valid_from",
        input.valid_from.map(FieldValue::Timestamp),
    );
    push_opt(
        &mut fields,
        "valid_to",
        input.valid_to.map(FieldValue::Timestamp),
    );
    Ok(Edit::new(
        DocId::Catalog,
        "add_price",
        vec![Op::Create {
            record: RecordPath::PriceListItem(list, item),
            fields,
        }],
    ))
}

pub fn remove_price(list: PriceListId, item: PriceListItemId) -> Edit {
    Edit::new(
        DocId::Catalog,
        "remove_price",
        vec![Op::Set {
            record: RecordPath::PriceListItem(list, item),
            fields: vec![("deleted".into(), Some(FieldValue::Bool(true)))],
        }],
    )
}
