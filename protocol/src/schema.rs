//! The document schema: which records live where, which fields they have, what type each
//! field is, what values it accepts and who may change it.
//!
//! This table is the single source of truth for three consumers: [`crate::ops`] (writing),
//! [`crate::doc`] (reading into typed records) and [`crate::validate`] (judging a change).
//!
//! Document layout (`{}` = automerge map, `T` = automerge text):
//!
//! ```text
//! account:<id>  { schema_version, kind, account { …fields, tags {tag: true}, notes T },
//!                 contacts { <id>: {…} }, visits { <id>: {…, notes T} },
//!                 orders { <id>: {…, lines { <id>: {…} } } } }
//! user:<id>     { schema_version, kind, user_id, preferences {…}, tasks { <id>: {…, notes T} } }
//! catalog       { schema_version, kind, settings { base_currency }, products { <id>: {…} },
//!                 tax_classes { <code>: {…} }, price_lists { <id>: {…, items { <id>: {…} } } } }
//! ```
//!
//! Every container above is created once, by a deterministic *skeleton* change (see
//! [`crate::doc::skeleton`]) that every peer computes identically, so two peers that create the
//! same document concurrently produce the *same* change instead of two conflicting maps.

use std::fmt;

use automerge::Prop;
use serde::{Deserialize, Serialize};

use crate::ids::*;
use crate::{Error, Result};

/// Version of the document schema written into every document's `schema_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// The type of a field as stored in automerge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A last-writer-wins string register.
    Str,
    /// Collaborative automerge text: concurrent edits to different parts both survive.
    Text,
    /// A last-writer-wins integer register.
    Int,
    /// A last-writer-wins float register (coordinates only; money is never a float).
    F64,
    Bool,
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp,
}

/// What values a field accepts beyond its type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Check {
    Any,
    /// Not empty after trimming.
    NonEmpty,
    Email,
    Phone,
    /// One of these snake_case words.
    OneOf(&'static [&'static str]),
    Currency,
    /// A UUID.
    Id,
    /// An inclusive integer range.
    Range(i64, i64),
    /// An inclusive float range.
    FRange(f64, f64),
    /// A tax-class code: lowercase ASCII letters, digits, `-` and `_`.
    Code,
}

/// Who may change a field of an existing record through a synced document edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone who may write the record.
    Editable,
    /// Set when the record is created, never changed afterwards.
    CreateOnly,
    /// Only the server's manager/admin API (owner, team, visibility).
    ManagerApi,
    /// Only the server itself (value tier, back-office order decisions).
    ServerOnly,
    /// Follows the record's status lifecycle (see [`crate::validate`]).
    Lifecycle,
    /// May only be written in the same change that moves the status to one of these states
    /// (check-in location, submission time). This is what makes location capture happen at
    /// check-in and check-out only: no edit can move a rep's recorded position afterwards.
    WithTransition(&'static [&'static str]),
}

/// One field of a record.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
    pub max_len: usize,
    pub check: Check,
    pub access: Access,
}

const fn f(name: &'static str, ty: FieldType, check: Check, access: Access) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        required: false,
        max_len: 200,
        check,
        access,
    }
}

const fn req(mut s: FieldSpec) -> FieldSpec {
    s.required = true;
    s
}

const fn max(mut s: FieldSpec, max_len: usize) -> FieldSpec {
    s.max_len = max_len;
    s
}

use Access::*;
use Check::*;
use FieldType::*;

pub const ACCOUNT_STATUSES: &[&str] = &["lead", "customer", "inactive"];
pub const VISIBILITIES: &[&str] = &["private", "team", "company"];
pub const TIERS: &[&str] = &["key", "major", "regular", "small"];
pub const VISIT_STATUSES: &[&str] = &["planned", "in_progress", "completed", "cancelled"];
pub const ORDER_STATUSES: &[&str] = &["draft", "submitted", "confirmed", "rejected", "delivered"];
pub const LANGUAGES: &[&str] = &["en", "zh"];

const ID: FieldSpec = req(f("id", Str, Id, CreateOnly));
const CREATED_AT: FieldSpec = req(f("created_at", Timestamp, Any, CreateOnly));
const CREATED_BY: FieldSpec = req(f("created_by", Str, Id, CreateOnly));
const DELETED: FieldSpec = f("deleted", Bool, Any, Editable);
const MAX_MINOR: i64 = 1_000_000_000_000_000; // 10^15 minor units: far above any real price

pub const ACCOUNT_FIELDS: &[FieldSpec] = &[
    ID,
    req(f("name", Str, NonEmpty, Editable)),
    req(f("status", Str, OneOf(ACCOUNT_STATUSES), Lifecycle)),
    max(f("erp_code", Str, Any, Editable), 64),
    f("street", Str, Any, Editable),
    max(f("city", Str, Any, Editable), 100),
    max(f("region", Str, Any, Editable), 100),
    max(f("postal_code", Str, Any, Editable), 20),
    max(f("country", Str, Any, Editable), 100),
    f("lat", F64, FRange(-90.0, 90.0), Editable),
    f("lon", F64, FRange(-180.0, 180.0), Editable),
    max(f("phone", Str, Phone, Editable), 40),
    f("email", Str, Email, Editable),
    max(f("notes", Text, Any, Editable), 20_000),
    req(f("owner", Str, Id, ManagerApi)),
    req(f("team", Str, Id, ManagerApi)),
    req(f("visibility", Str, OneOf(VISIBILITIES), ManagerApi)),
    max(f("payment_terms", Str, Any, Editable), 100),
    f("price_list_id", Str, Id, Editable),
    req(f("currency", Str, Currency, Editable)),
    f("tier", Str, OneOf(TIERS), ServerOnly),
    CREATED_AT,
    CREATED_BY,
];

pub const CONTACT_FIELDS: &[FieldSpec] = &[
    ID,
    req(f("name", Str, NonEmpty, Editable)),
    max(f("title", Str, Any, Editable), 100),
    max(f("phone", Str, Phone, Editable), 40),
    f("email", Str, Email, Editable),
    f("primary", Bool, Any, Editable),
    DELETED,
    CREATED_AT,
    CREATED_BY,
];

const CHECK_IN: Access = WithTransition(&["in_progress", "completed"]);
const CHECK_OUT: Access = WithTransition(&["completed"]);

pub const VISIT_FIELDS: &[FieldSpec] = &[
    ID,
    req(f("status", Str, OneOf(VISIT_STATUSES), Lifecycle)),
    f("planned_at", Timestamp, Any, Editable),
    f("checked_in_at", Timestamp, Any, CHECK_IN),
    f("check_in_lat", F64, FRange(-90.0, 90.0), CHECK_IN),
    f("check_in_lon", F64, FRange(-180.0, 180.0), CHECK_IN),
    f("check_in_accuracy_m", F64, FRange(0.0, 100_000.0), CHECK_IN),
    f("checked_out_at", Timestamp, Any, CHECK_OUT),
    f("check_out_lat", F64, FRange(-90.0, 90.0), CHECK_OUT),
    f("check_out_lon", F64, FRange(-180.0, 180.0), CHECK_OUT),
    f(
        "check_out_accuracy_m",
        F64,
        FRange(0.0, 100_000.0),
        CHECK_OUT,
    ),
    f("purpose", Str, Any, Editable),
    max(f("notes", Text, Any, Editable), 20_000),
    max(f("outcome", Str, Any, Editable), 2_000),
    max(f("next_step", Str, Any, Editable), 2_000),
    max(
        f("cancel_reason", Str, Any, WithTransition(&["cancelled"])),
        500,
    ),
    CREATED_AT,
    CREATED_BY,
];

pub const ORDER_FIELDS: &[FieldSpec] = &[
    ID,
    req(f("status", Str, OneOf(ORDER_STATUSES), Lifecycle)),
    req(f("currency", Str, Currency, CreateOnly)),
    f("price_list_id", Str, Id, CreateOnly),
    f("visit_id", Str, Id, CreateOnly),
    max(f("notes", Str, Any, Editable), 2_000),
    f(
        "submitted_at",
        Timestamp,
        Any,
        WithTransition(&["submitted"]),
    ),
    f("decided_at", Timestamp, Any, ServerOnly),
    max(f("erp_ref", Str, Any, ServerOnly), 64),
    max(f("reject_reason", Str, Any, ServerOnly), 500),
    DELETED,
    CREATED_AT,
    CREATED_BY,
];

pub const ORDER_LINE_FIELDS: &[FieldSpec] = &[
    ID,
    req(f("product_id", Str, Id, CreateOnly)),
    req(max(f("product_code", Str, NonEmpty, CreateOnly), 64)),
    req(f("product_name", Str, NonEmpty, CreateOnly)),
    max(f("unit", Str, Any, CreateOnly), 20),
    req(f("unit_price_minor", Int, Range(0, MAX_MINOR), CreateOnly)),
    req(f(
        "quantity_milli",
        Int,
        Range(1, 1_000_000_000_000),
        Editable,
    )),
    f("discount_bp", Int, Range(0, 10_000), Editable),
    req(f("tax_bp", Int, Range(0, 10_000), CreateOnly)),
    DELETED,
    CREATED_AT,
    CREATED_BY,
];

pub const TASK_FIELDS: &[FieldSpec] = &[
    ID,
    req(f("title", Str, NonEmpty, Editable)),
    f("due_at", Timestamp, Any, Editable),
    f("done", Bool, Any, Editable),
    f("done_at", Timestamp, Any, Editable),
    f("account_id", Str, Id, Editable),
    f("visit_id", Str, Id, Editable),
    req(f("assignee", Str, Id, CreateOnly)),
    max(f("notes", Text, Any, Editable), 5_000),
    DELETED,
    CREATED_AT,
    CREATED_BY,
];

pub const PREFERENCE_FIELDS: &[FieldSpec] = &[
    f("language", Str, OneOf(LANGUAGES), Editable),
    f("currency", Str, Currency, Editable),
    f("visit_reminder_minutes", Int, Range(0, 10_080), Editable),
];

pub const CATALOG_SETTINGS_FIELDS: &[FieldSpec] =
    &[req(f("base_currency", Str, Currency, Editable))];

pub const PRODUCT_FIELDS: &[FieldSpec] = &[
    ID,
    req(max(f("sku", Str, NonEmpty, Editable), 64)),
    req(f("name", Str, NonEmpty, Editable)),
    max(f("category", Str, Any, Editable), 100),
    req(max(f("unit", Str, NonEmpty, Editable), 20)),
    req(f("base_price_minor", Int, Range(0, MAX_MINOR), Editable)),
    req(max(f("tax_class", Str, Code, Editable), 32)),
    f("active", Bool, Any, Editable),
    CREATED_AT,
    CREATED_BY,
];

pub const TAX_CLASS_FIELDS: &[FieldSpec] = &[
    req(f("name", Str, NonEmpty, Editable)),
    req(f("rate_bp", Int, Range(0, 10_000), Editable)),
];

pub const PRICE_LIST_FIELDS: &[FieldSpec] = &[
    ID,
    req(f("name", Str, NonEmpty, Editable)),
    req(f("currency", Str, Currency, CreateOnly)),
    f("active", Bool, Any, Editable),
    CREATED_AT,
    CREATED_BY,
];

pub const PRICE_LIST_ITEM_FIELDS: &[FieldSpec] = &[
    ID,
    req(f("product_id", Str, Id, CreateOnly)),
    req(f("price_minor", Int, Range(0, MAX_MINOR), Editable)),
    f("min_qty_milli", Int, Range(0, 1_000_000_000_000), Editable),
    f("valid_from", Timestamp, Any, Editable),
    f("valid_to", Timestamp, Any, Editable),
    DELETED,
    CREATED_AT,
    CREATED_BY,
];

/// The kind of a record, independent of which one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Account,
    AccountTags,
    Contact,
    Visit,
    Order,
    OrderLine,
    Task,
    Preferences,
    CatalogSettings,
    Product,
    TaxClass,
    PriceList,
    PriceListItem,
}

impl RecordKind {
    pub fn fields(self) -> &'static [FieldSpec] {
        match self {
            RecordKind::Account => ACCOUNT_FIELDS,
            RecordKind::AccountTags => &[],
            RecordKind::Contact => CONTACT_FIELDS,
            RecordKind::Visit => VISIT_FIELDS,
            RecordKind::Order => ORDER_FIELDS,
            RecordKind::OrderLine => ORDER_LINE_FIELDS,
            RecordKind::Task => TASK_FIELDS,
            RecordKind::Preferences => PREFERENCE_FIELDS,
            RecordKind::CatalogSettings => CATALOG_SETTINGS_FIELDS,
            RecordKind::Product => PRODUCT_FIELDS,
            RecordKind::TaxClass => TAX_CLASS_FIELDS,
            RecordKind::PriceList => PRICE_LIST_FIELDS,
            RecordKind::PriceListItem => PRICE_LIST_ITEM_FIELDS,
        }
    }

    pub fn field(self, name: &str) -> Option<&'static FieldSpec> {
        self.fields().iter().find(|s| s.name == name)
    }

    /// Human name used in error messages.
    pub fn label(self) -> &'static str {
        match self {
            RecordKind::Account => "account",
            RecordKind::AccountTags => "tags",
            RecordKind::Contact => "contact",
            RecordKind::Visit => "visit",
            RecordKind::Order => "order",
            RecordKind::OrderLine => "order line",
            RecordKind::Task => "task",
            RecordKind::Preferences => "preferences",
            RecordKind::CatalogSettings => "catalog settings",
            RecordKind::Product => "product",
            RecordKind::TaxClass => "tax class",
            RecordKind::PriceList => "price list",
            RecordKind::PriceListItem => "price list item",
        }
    }

    /// Records that exist from the skeleton on, instead of being created one by one.
    pub fn is_singleton(self) -> bool {
        matches!(
            self,
            RecordKind::AccountTags | RecordKind::Preferences | RecordKind::CatalogSettings
        )
    }

    /// Records that carry `id`, `created_at` and `created_by`.
    pub fn has_identity(self) -> bool {
        self.field("id").is_some()
    }

    /// The map of child records a record holds (an order's lines, a price list's items),
    /// created together with the record.
    pub fn child_container(self) -> Option<&'static str> {
        match self {
            RecordKind::Order => Some("lines"),
            RecordKind::PriceList => Some("items"),
            _ => None,
        }
    }

    /// Collaborative text objects that are created together with the record.
    pub fn text_fields(self) -> impl Iterator<Item = &'static FieldSpec> {
        self.fields().iter().filter(|s| s.ty == FieldType::Text)
    }
}

/// Where one record lives in its document.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "record", content = "ids")]
pub enum RecordPath {
    Account,
    AccountTags,
    Contact(ContactId),
    Visit(VisitId),
    Order(OrderId),
    OrderLine(OrderId, OrderLineId),
    Task(TaskId),
    Preferences,
    CatalogSettings,
    Product(ProductId),
    TaxClass(String),
    PriceList(PriceListId),
    PriceListItem(PriceListId, PriceListItemId),
}

impl fmt::Debug for RecordPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.props().join("."))
    }
}

impl RecordPath {
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordPath::Account => RecordKind::Account,
            RecordPath::AccountTags => RecordKind::AccountTags,
            RecordPath::Contact(_) => RecordKind::Contact,
            RecordPath::Visit(_) => RecordKind::Visit,
            RecordPath::Order(_) => RecordKind::Order,
            RecordPath::OrderLine(..) => RecordKind::OrderLine,
            RecordPath::Task(_) => RecordKind::Task,
            RecordPath::Preferences => RecordKind::Preferences,
            RecordPath::CatalogSettings => RecordKind::CatalogSettings,
            RecordPath::Product(_) => RecordKind::Product,
            RecordPath::TaxClass(_) => RecordKind::TaxClass,
            RecordPath::PriceList(_) => RecordKind::PriceList,
            RecordPath::PriceListItem(..) => RecordKind::PriceListItem,
        }
    }

    /// The document kind this record belongs in.
    pub fn doc_kind(&self) -> DocKind {
        match self.kind() {
            RecordKind::Account
            | RecordKind::AccountTags
            | RecordKind::Contact
            | RecordKind::Visit
            | RecordKind::Order
            | RecordKind::OrderLine => DocKind::Account,
            RecordKind::Task | RecordKind::Preferences => DocKind::User,
            RecordKind::CatalogSettings
            | RecordKind::Product
            | RecordKind::TaxClass
            | RecordKind::PriceList
            | RecordKind::PriceListItem => DocKind::Catalog,
        }
    }

    /// The map keys from the document root to the record's map.
    pub fn props(&self) -> Vec<String> {
        let s = |x: &str| x.to_owned();
        match self {
            RecordPath::Account => vec![s("account")],
            RecordPath::AccountTags => vec![s("account"), s("tags")],
            RecordPath::Contact(id) => vec![s("contacts"), id.to_string()],
            RecordPath::Visit(id) => vec![s("visits"), id.to_string()],
            RecordPath::Order(id) => vec![s("orders"), id.to_string()],
            RecordPath::OrderLine(o, l) => {
                vec![s("orders"), o.to_string(), s("lines"), l.to_string()]
            }
            RecordPath::Task(id) => vec![s("tasks"), id.to_string()],
            RecordPath::Preferences => vec![s("preferences")],
            RecordPath::CatalogSettings => vec![s("settings")],
            RecordPath::Product(id) => vec![s("products"), id.to_string()],
            RecordPath::TaxClass(code) => vec![s("tax_classes"), code.clone()],
            RecordPath::PriceList(id) => vec![s("price_lists"), id.to_string()],
            RecordPath::PriceListItem(p, i) => {
                vec![s("price_lists"), p.to_string(), s("items"), i.to_string()]
            }
        }
    }

    /// The ID stored in the record's `id` field, if it has one.
    pub fn record_id(&self) -> Option<String> {
        match self {
            RecordPath::Contact(id) => Some(id.to_string()),
            RecordPath::Visit(id) => Some(id.to_string()),
            RecordPath::Order(id) => Some(id.to_string()),
            RecordPath::OrderLine(_, id) => Some(id.to_string()),
            RecordPath::Task(id) => Some(id.to_string()),
            RecordPath::Product(id) => Some(id.to_string()),
            RecordPath::PriceList(id) => Some(id.to_string()),
            RecordPath::PriceListItem(_, id) => Some(id.to_string()),
            _ => None,
        }
    }

    /// The record that contains this one (an order line's order), if any.
    pub fn parent(&self) -> Option<RecordPath> {
        match self {
            RecordPath::OrderLine(o, _) => Some(RecordPath::Order(*o)),
            RecordPath::PriceListItem(p, _) => Some(RecordPath::PriceList(*p)),
            RecordPath::AccountTags => Some(RecordPath::Account),
            _ => None,
        }
    }
}

/// Where a document path points: a record, and possibly one of its fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    /// A key directly under the document root (`schema_version`, `kind`, a section map…).
    Root(String),
    /// The record itself (its creation or removal under the parent map).
    Record(RecordPath),
    /// One field of the record (or one member, for tags).
    Field(RecordPath, String),
}

fn prop_str(p: &Prop) -> Option<&str> {
    match p {
        Prop::Map(k) => Some(k.as_str()),
        Prop::Seq(_) => None,
    }
}

/// Maps a path of map keys in a document of `kind` to the record (and field) it addresses.
///
/// Paths deeper than a field (inside a text object) resolve to that field. Anything that does
/// not fit the schema is `Malformed` — the caller decides whether that is a refusal.
pub fn locate(kind: DocKind, props: &[Prop]) -> Result<Location> {
    let keys: Vec<&str> = props.iter().map_while(prop_str).collect();
    let shown = || keys.join(".");
    let bad = || Error::malformed(shown(), "is not part of the document schema");
    let field = |rp: RecordPath, rest: &[&str]| -> Result<Location> {
        match rest.first() {
            None => Ok(Location::Record(rp)),
            Some(name) => Ok(Location::Field(rp, (*name).to_owned())),
        }
    };
    let id = |s: &str| -> Result<uuid::Uuid> { uuid::Uuid::parse_str(s).map_err(|_| bad()) };
    let Some((&first, rest)) = keys.split_first() else {
        return Err(bad());
    };
    if keys.len() < props.len() && keys.len() < 2 {
        // A list index right under the root or a section: nothing in the schema is a list there.
        return Err(bad());
    }
    match (kind, first) {
        (DocKind::Account, "account") => match rest {
            ["tags", member, ..] => Ok(Location::Field(
                RecordPath::AccountTags,
                (*member).to_owned(),
            )),
            ["tags"] => Ok(Location::Record(RecordPath::AccountTags)),
            _ => field(RecordPath::Account, rest),
        },
        (DocKind::Account, "contacts") => match rest {
            [] => Ok(Location::Root(first.to_owned())),
            [rid, tail @ ..] => field(RecordPath::Contact(ContactId::from_uuid(id(rid)?)), tail),
        },
        (DocKind::Account, "visits") => match rest {
            [] => Ok(Location::Root(first.to_owned())),
            [rid, tail @ ..] => field(RecordPath::Visit(VisitId::from_uuid(id(rid)?)), tail),
        },
        (DocKind::Account, "orders") => match rest {
            [] => Ok(Location::Root(first.to_owned())),
            [oid, "lines", lid, tail @ ..] => field(
                RecordPath::OrderLine(
                    OrderId::from_uuid(id(oid)?),
                    OrderLineId::from_uuid(id(lid)?),
                ),
                tail,
            ),
            [oid, tail @ ..] => field(RecordPath::Order(OrderId::from_uuid(id(oid)?)), tail),
        },
        (DocKind::User, "tasks") => match rest {
            [] => Ok(Location::Root(first.to_owned())),
            [rid, tail @ ..] => field(RecordPath::Task(TaskId::from_uuid(id(rid)?)), tail),
        },
        (DocKind::User, "preferences") => field(RecordPath::Preferences, rest),
        (DocKind::Catalog, "settings") => field(RecordPath::CatalogSettings, rest),
        (DocKind::Catalog, "products") => match rest {
            [] => Ok(Location::Root(first.to_owned())),
            [rid, tail @ ..] => field(RecordPath::Product(ProductId::from_uuid(id(rid)?)), tail),
        },
        (DocKind::Catalog, "tax_classes") => match rest {
            [] => Ok(Location::Root(first.to_owned())),
            [code, tail @ ..] => field(RecordPath::TaxClass((*code).to_owned()), tail),
        },
        (DocKind::Catalog, "price_lists") => match rest {
            [] => Ok(Location::Root(first.to_owned())),
            [pid, "items", iid, tail @ ..] => field(
                RecordPath::PriceListItem(
                    PriceListId::from_uuid(id(pid)?),
                    PriceListItemId::from_uuid(id(iid)?),
                ),
                tail,
            ),
            [pid, tail @ ..] => field(
                RecordPath::PriceList(PriceListId::from_uuid(id(pid)?)),
                tail,
            ),
        },
        (_, _) if rest.is_empty() => Ok(Location::Root(first.to_owned())),
        _ => Err(bad()),
    }
}

/// A value of one field, as given to an operation or read from a document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum FieldValue {
    Str(String),
    Text(String),
    Int(i64),
    F64(f64),
    Bool(bool),
    Timestamp(i64),
}

impl FieldValue {
    pub fn type_of(&self) -> FieldType {
        match self {
            FieldValue::Str(_) => FieldType::Str,
            FieldValue::Text(_) => FieldType::Text,
            FieldValue::Int(_) => FieldType::Int,
            FieldValue::F64(_) => FieldType::F64,
            FieldValue::Bool(_) => FieldType::Bool,
            FieldValue::Timestamp(_) => FieldType::Timestamp,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) | FieldValue::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            FieldValue::Int(i) | FieldValue::Timestamp(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::F64(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            FieldValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl FieldSpec {
    /// Checks a value against this field's type and rule; the error names the field.
    pub fn check_value(&self, record: RecordKind, value: &FieldValue) -> Result<()> {
        let name = || format!("{} {}", record.label(), self.name.replace('_', " "));
        if value.type_of() != self.ty {
            return Err(Error::invalid(
                name(),
                format!("must be of type {:?}", self.ty),
            ));
        }
        if let Some(s) = value.as_str() {
            if s.chars().count() > self.max_len {
                return Err(Error::invalid(
                    name(),
                    format!("must be at most {} characters", self.max_len),
                ));
            }
            if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
                && self.ty == FieldType::Str
            {
                return Err(Error::invalid(
                    name(),
                    "must not contain control characters",
                ));
            }
        }
        match (self.check, value) {
            (Check::Any, _) => Ok(()),
            (Check::NonEmpty, FieldValue::Str(s)) => {
                if s.trim().is_empty() {
                    Err(Error::invalid(name(), "must not be empty"))
                } else {
                    Ok(())
                }
            }
            (Check::Email, FieldValue::Str(s)) => {
                if is_plausible_email(s) {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        name(),
                        "must be an e-mail address like name@example.com",
                    ))
                }
            }
            (Check::Phone, FieldValue::Str(s)) => {
                let digits = s.chars().filter(|c| c.is_ascii_digit()).count();
                let ok_chars = s
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-()./xX".contains(c));
                if ok_chars && (3..=20).contains(&digits) {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        name(),
                        "must be a phone number (digits, spaces, + - ( ) .)",
                    ))
                }
            }
            (Check::OneOf(words), FieldValue::Str(s)) => {
                if words.contains(&s.as_str()) {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        name(),
                        format!("must be one of {}", words.join(", ")),
                    ))
                }
            }
            (Check::Currency, FieldValue::Str(s)) => crate::money::Currency::parse(s)
                .and_then(|c| {
                    if c.code() == s {
                        Ok(())
                    } else {
                        Err(Error::invalid(
                            name(),
                            "must be an upper-case ISO 4217 code",
                        ))
                    }
                })
                .map_err(|_| Error::invalid(name(), "must be a supported ISO 4217 currency code")),
            (Check::Id, FieldValue::Str(s)) => uuid::Uuid::parse_str(s)
                .map(|_| ())
                .map_err(|_| Error::invalid(name(), "must be a valid ID")),
            (Check::Range(lo, hi), v) => match v.as_i64() {
                Some(i) if (lo..=hi).contains(&i) => Ok(()),
                _ => Err(Error::invalid(
                    name(),
                    format!("must be between {lo} and {hi}"),
                )),
            },
            (Check::FRange(lo, hi), FieldValue::F64(x)) => {
                if x.is_finite() && (lo..=hi).contains(x) {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        name(),
                        format!("must be between {lo} and {hi}"),
                    ))
                }
            }
            (Check::Code, FieldValue::Str(s)) => check_code(s)
                .map_err(|_| Error::invalid(name(), "must be lowercase letters, digits, - or _")),
            _ => Err(Error::invalid(name(), "has the wrong type")),
        }
    }
}

/// A tax-class code or similar key: 1–32 of `[a-z0-9_-]`.
pub fn check_code(s: &str) -> Result<()> {
    if !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(Error::invalid(
            "code",
            "must be 1 to 32 lowercase letters, digits, - or _",
        ))
    }
}

/// A tag: 1–40 characters after trimming, no control characters.
pub fn check_tag(tag: &str) -> Result<()> {
    let n = tag.chars().count();
    if tag.trim() != tag || n == 0 || n > 40 || tag.chars().any(char::is_control) {
        Err(Error::invalid(
            "tag",
            "must be 1 to 40 characters without leading or trailing spaces",
        ))
    } else {
        Ok(())
    }
}

fn is_plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(keys: &[&str]) -> Vec<Prop> {
        keys.iter().map(|k| Prop::Map((*k).to_owned())).collect()
    }

    #[test]
    fn paths_locate_records_and_fields() {
        let v = VisitId::new();
        let path = RecordPath::Visit(v);
        let mut keys = path.props();
        keys.push("status".into());
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(
            locate(DocKind::Account, &props(&keys)).unwrap(),
            Location::Field(path.clone(), "status".into())
        );
        let o = OrderId::new();
        let l = OrderLineId::new();
        let line = RecordPath::OrderLine(o, l);
        let keys = line.props();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(
            locate(DocKind::Account, &props(&keys)).unwrap(),
            Location::Record(line)
        );
        assert_eq!(
            locate(DocKind::Account, &props(&["account", "owner"])).unwrap(),
            Location::Field(RecordPath::Account, "owner".into())
        );
        assert_eq!(
            locate(DocKind::Account, &props(&["account", "tags", "vip"])).unwrap(),
            Location::Field(RecordPath::AccountTags, "vip".into())
        );
        assert_eq!(
            locate(DocKind::Account, &props(&["kind"])).unwrap(),
            Location::Root("kind".into())
        );
        assert!(locate(DocKind::Account, &props(&["visits", "not-a-uuid"])).is_err());
        assert!(
            locate(
                DocKind::Account,
                &props(&["tasks", &TaskId::new().to_string()])
            )
            .is_err()
        );
        assert!(locate(DocKind::Catalog, &props(&["foo", "bar"])).is_err());
    }

    #[test]
    fn field_checks_explain_themselves() {
        let name = RecordKind::Account.field("name").unwrap();
        let e = name
            .check_value(RecordKind::Account, &FieldValue::Str("  ".into()))
            .unwrap_err();
        assert_eq!(e.to_string(), "account name must not be empty");
        let email = RecordKind::Contact.field("email").unwrap();
        assert!(
            email
                .check_value(RecordKind::Contact, &FieldValue::Str("a@b.cn".into()))
                .is_ok()
        );
        assert!(
            email
                .check_value(RecordKind::Contact, &FieldValue::Str("nope".into()))
                .is_err()
        );
        let qty = RecordKind::OrderLine.field("quantity_milli").unwrap();
        assert!(
            qty.check_value(RecordKind::OrderLine, &FieldValue::Int(-5))
                .is_err()
        );
        assert!(
            qty.check_value(RecordKind::OrderLine, &FieldValue::Str("5".into()))
                .is_err()
        );
        let phone = RecordKind::Account.field("phone").unwrap();
        assert!(
            phone
                .check_value(
                    RecordKind::Account,
                    &FieldValue::Str("+86 (21) 5555-0100".into())
                )
                .is_ok()
        );
        assert!(
            phone
                .check_value(RecordKind::Account, &FieldValue::Str("call me".into()))
                .is_err()
        );
        let lat = RecordKind::Account.field("lat").unwrap();
        assert!(
            lat.check_value(RecordKind::Account, &FieldValue::F64(f64::NAN))
                .is_err()
        );
        assert!(
            lat.check_value(RecordKind::Account, &FieldValue::F64(31.2))
                .is_ok()
        );
    }

    #[test]
    fn every_record_with_identity_has_the_three_identity_fields() {
        for kind in [
            RecordKind::Account,
            RecordKind::Contact,
            RecordKind::Visit,
            RecordKind::Order,
            RecordKind::OrderLine,
            RecordKind::Task,
            RecordKind::Product,
            RecordKind::PriceList,
            RecordKind::PriceListItem,
        ] {
            for name in ["id", "created_at", "created_by"] {
                assert!(kind.field(name).is_some(), "{kind:?} lacks {name}");
            }
        }
    }
}
