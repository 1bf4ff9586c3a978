//! Typed records: what a document holds, as plain Rust values.
//!
//! These are *views*: they are built from a document by [`crate::doc`] for the phone's SQL
//! projection, the server's metadata and API answers. Writes never go through them (see
//! [`crate::ops`]) so a stale view can never overwrite a concurrent edit.

use serde::{Deserialize, Serialize};

use crate::doc::Fields;
use crate::ids::*;
use crate::money::{Currency, LinePricing, Quantity, Totals};
use crate::{Error, Result};

macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            pub fn parse(s: &str) -> Result<Self> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(Error::invalid(
                        stringify!($name).to_lowercase(),
                        format!("must be one of {}", [$($word),+].join(", ")),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> { Self::parse(s) }
        }
    };
}

word_enum!(/// A user's role in the organisation.
    Role { Rep = "rep", Manager = "manager", Admin = "admin" });
word_enum!(/// Who besides the owner and the team's managers may read an account.
    Visibility { Private = "private", Team = "team", Company = "company" });
word_enum!(/// Where an account stands commercially.
    AccountStatus { Lead = "lead", Customer = "customer", Inactive = "inactive" });
word_enum!(/// Customer value tier by revenue: key 1 %, major 4 %, regular 15 %, small 80 %.
    Tier { Key = "key", Major = "major", Regular = "regular", Small = "small" });
word_enum!(/// A visit's lifecycle: planned → in progress (check-in) → completed, or cancelled.
    VisitStatus { Planned = "planned", InProgress = "in_progress", Completed = "completed", Cancelled = "cancelled" });
word_enum!(/// An order's lifecycle: draft → submitted → confirmed / rejected, confirmed → delivered.
    OrderStatus { Draft = "draft", Submitted = "submitted", Confirmed = "confirmed", Rejected = "rejected", Delivered = "delivered" });
word_enum!(/// The languages of the user interface.
    Language { En = "en", Zh = "zh" });

/// A position given by the app at check-in or check-out, or an account's address location.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
    /// Accuracy radius in metres, if the platform reported one.
    pub accuracy_m: Option<f64>,
}

/// The postal address of an account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub street: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

/// Who may see and change an account: the three fields only the manager API changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountAcl {
    pub owner: UserId,
    pub team: TeamId,
    pub visibility: Visibility,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub status: AccountStatus,
    pub erp_code: Option<String>,
    pub address: Address,
    pub location: Option<GeoPoint>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub tags: Vec<String>,
    pub notes: String,
    pub acl: AccountAcl,
    pub payment_terms: Option<String>,
    pub price_list_id: Option<PriceListId>,
    pub currency: Currency,
    pub tier: Option<Tier>,
    pub created_at: i64,
    pub created_by: UserId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: ContactId,
    pub account_id: AccountId,
    pub name: String,
    pub title: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub primary: bool,
    pub deleted: bool,
    pub created_at: i64,
    pub created_by: UserId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub id: VisitId,
    pub account_id: AccountId,
    pub status: VisitStatus,
    pub planned_at: Option<i64>,
    pub checked_in_at: Option<i64>,
    pub check_in_location: Option<GeoPoint>,
    pub checked_out_at: Option<i64>,
    pub check_out_location: Option<GeoPoint>,
    pub purpose: Option<String>,
    pub notes: String,
    pub outcome: Option<String>,
    pub next_step: Option<String>,
    pub cancel_reason: Option<String>,
    pub created_at: i64,
    /// The rep who logged (and makes) the visit.
    pub created_by: UserId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    pub id: OrderLineId,
    pub product_id: ProductId,
    pub product_code: String,
    pub product_name: String,
    pub unit: Option<String>,
    pub unit_price_minor: i64,
    pub quantity: Quantity,
    pub discount_bp: i64,
    pub tax_bp: i64,
    pub deleted: bool,
    pub created_at: i64,
    pub created_by: UserId,
}

impl OrderLine {
    pub fn pricing(&self) -> LinePricing {
        LinePricing {
            unit_price_minor: self.unit_price_minor,
            quantity: self.quantity,
            discount_bp: self.discount_bp,
            tax_bp: self.tax_bp,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub account_id: AccountId,
    pub status: OrderStatus,
    pub currency: Currency,
    pub price_list_id: Option<PriceListId>,
    pub visit_id: Option<VisitId>,
    pub notes: Option<String>,
    pub submitted_at: Option<i64>,
    pub decided_at: Option<i64>,
    pub erp_ref: Option<String>,
    pub reject_reason: Option<String>,
    pub deleted: bool,
    pub created_at: i64,
    pub created_by: UserId,
    /// Lines in creation order (their IDs are time-ordered), deleted ones included.
    pub lines: Vec<OrderLine>,
}

impl Order {
    /// Lines that count: not deleted.
    pub fn live_lines(&self) -> impl Iterator<Item = &OrderLine> {
        self.lines.iter().filter(|l| !l.deleted)
    }

    /// Totals computed from the live lines; never stored, never typed in.
    pub fn totals(&self) -> Result<Totals> {
        let pricing: Vec<LinePricing> = self.live_lines().map(OrderLine::pricing).collect();
        crate::money::order_totals(&pricing)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub title: String,
    pub due_at: Option<i64>,
    pub done: bool,
    pub done_at: Option<i64>,
    pub account_id: Option<AccountId>,
    pub visit_id: Option<VisitId>,
    pub assignee: UserId,
    pub notes: String,
    pub deleted: bool,
    pub created_at: i64,
    pub created_by: UserId,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Preferences {
    pub language: Option<Language>,
    pub currency: Option<Currency>,
    pub visit_reminder_minutes: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    pub unit: String,
    pub base_price_minor: i64,
    pub tax_class: String,
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxClass {
    pub code: String,
    pub name: String,
    pub rate_bp: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriceListItem {
    pub id: PriceListItemId,
    pub product_id: ProductId,
    pub price_minor: i64,
    pub min_qty: Option<Quantity>,
    pub valid_from: Option<i64>,
    pub valid_to: Option<i64>,
    pub deleted: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriceList {
    pub id: PriceListId,
    pub name: String,
    pub currency: Currency,
    pub active: bool,
    pub items: Vec<PriceListItem>,
}

// ---- building views from field maps -------------------------------------------------------

fn need<T>(v: Option<T>, path: &str, field: &str) -> Result<T> {
    v.ok_or_else(|| Error::malformed(format!("{path}.{field}"), "is missing"))
}

fn parse_in<T>(r: Result<T>, path: &str, field: &str) -> Result<T> {
    r.map_err(|e| Error::malformed(format!("{path}.{field}"), e.to_string()))
}

fn geo(f: &Fields, lat: &str, lon: &str, acc: Option<&str>) -> Option<GeoPoint> {
    Some(GeoPoint {
        lat: f.f64(lat)?,
        lon: f.f64(lon)?,
        accuracy_m: acc.and_then(|a| f.f64(a)),
    })
}

fn opt_id<T>(
    f: &Fields,
    name: &str,
    path: &str,
    parse: fn(&str) -> Result<T>,
) -> Result<Option<T>> {
    f.str(name)
        .map(|s| parse_in(parse(s), path, name))
        .transpose()
}

fn req_id<T>(f: &Fields, name: &str, path: &str, parse: fn(&str) -> Result<T>) -> Result<T> {
    parse_in(parse(need(f.str(name), path, name)?), path, name)
}

fn word<T>(f: &Fields, name: &str, path: &str, parse: fn(&str) -> Result<T>) -> Result<T> {
    parse_in(parse(need(f.str(name), path, name)?), path, name)
}

impl Account {
    pub fn from_fields(f: &Fields, tags: Vec<String>) -> Result<Self> {
        let p = "account";
        Ok(Account {
            id: req_id(f, "id", p, AccountId::parse)?,
            name: need(f.string("name"), p, "name")?,
            status: word(f, "status", p, AccountStatus::parse)?,
            erp_code: f.string("erp_code"),
            address: Address {
                street: f.string("street"),
                city: f.string("city"),
                region: f.string("region"),
                postal_code: f.string("postal_code"),
                country: f.string("country"),
            },
            location: geo(f, "lat", "lon", None),
            phone: f.string("phone"),
            email: f.string("email"),
            tags,
            notes: f.string("notes").unwrap_or_default(),
            acl: AccountAcl {
                owner: req_id(f, "owner", p, UserId::parse)?,
                team: req_id(f, "team", p, TeamId::parse)?,
                visibility: word(f, "visibility", p, Visibility::parse)?,
            },
            payment_terms: f.string("payment_terms"),
            price_list_id: opt_id(f, "price_list_id", p, PriceListId::parse)?,
            currency: word(f, "currency", p, Currency::parse)?,
            tier: f
                .str("tier")
                .map(|s| parse_in(Tier::parse(s), p, "tier"))
                .transpose()?,
            created_at: need(f.int("created_at"), p, "created_at")?,
            created_by: req_id(f, "created_by", p, UserId::parse)?,
        })
    }
}

impl Contact {
    pub fn from_fields(account_id: AccountId, f: &Fields) -> Result<Self> {
        let p = "contact";
        Ok(Contact {
            id: req_id(f, "id", p, ContactId::parse)?,
            account_id,
            name: need(f.string("name"), p, "name")?,
            title: f.string("title"),
            phone: f.string("phone"),
            email: f.string("email"),
            primary: f.bool("primary").unwrap_or(false),
            deleted: f.bool("deleted").unwrap_or(false),
            created_at: need(f.int("created_at"), p, "created_at")?,
            created_by: req_id(f, "created_by", p, UserId::parse)?,
        })
    }
}

impl Visit {
    pub fn from_fields(account_id: AccountId, f: &Fields) -> Result<Self> {
        let p = "visit";
        Ok(Visit {
            id: req_id(f, "id", p, VisitId::parse)?,
            account_id,
            status: word(f, "status", p, VisitStatus::parse)?,
            planned_at: f.int("planned_at"),
            checked_in_at: f.int("checked_in_at"),
            check_in_location: geo(
                f,
                "check_in_lat",
                "check_in_lon",
                Some("check_in_accuracy_m"),
            ),
            checked_out_at: f.int("checked_out_at"),
            check_out_location: geo(
                f,
                "check_out_lat",
                "check_out_lon",
                Some("check_out_accuracy_m"),
            ),
            purpose: f.string("purpose"),
            notes: f.string("notes").unwrap_or_default(),
            outcome: f.string("outcome"),
            next_step: f.string("next_step"),
            cancel_reason: f.string("cancel_reason"),
            created_at: need(f.int("created_at"), p, "created_at")?,
            created_by: req_id(f, "created_by", p, UserId::parse)?,
        })
    }
}

impl OrderLine {
    pub fn from_fields(f: &Fields) -> Result<Self> {
        let p = "order line";
        Ok(OrderLine {
            id: req_id(f, "id", p, OrderLineId::parse)?,
            product_id: req_id(f, "product_id", p, ProductId::parse)?,
            product_code: need(f.string("product_code"), p, "product_code")?,
            product_name: need(f.string("product_name"), p, "product_name")?,
            unit: f.string("unit"),
            unit_price_minor: need(f.int("unit_price_minor"), p, "unit_price_minor")?,
            quantity: Quantity::from_milli(need(f.int("quantity_milli"), p, "quantity_milli")?),
            discount_bp: f.int("discount_bp").unwrap_or(0),
            tax_bp: need(f.int("tax_bp"), p, "tax_bp")?,
            deleted: f.bool("deleted").unwrap_or(false),
            created_at: need(f.int("created_at"), p, "created_at")?,
            created_by: req_id(f, "created_by", p, UserId::parse)?,
        })
    }
}

impl Order {
    pub fn from_fields(account_id: AccountId, f: &Fields, lines: Vec<OrderLine>) -> Result<Self> {
        let p = "order";
        Ok(Order {
            id: req_id(f, "id", p, OrderId::parse)?,
            account_id,
            status: word(f, "status", p, OrderStatus::parse)?,
            currency: word(f, "currency", p, Currency::parse)?,
            price_list_id: opt_id(f, "price_list_id", p, PriceListId::parse)?,
            visit_id: opt_id(f, "visit_id", p, VisitId::parse)?,
            notes: f.string("notes"),
            submitted_at: f.int("submitted_at"),
            decided_at: f.int("decided_at"),
            erp_ref: f.string("erp_ref"),
            reject_reason: f.string("reject_reason"),
            deleted: f.bool("deleted").unwrap_or(false),
            created_at: need(f.int("created_at"), p, "created_at")?,
            created_by: req_id(f, "created_by", p, UserId::parse)?,
            lines,
        })
    }
}

impl Task {
    pub fn from_fields(f: &Fields) -> Result<Self> {
        let p = "task";
        Ok(Task {
            id: req_id(f, "id", p, TaskId::parse)?,
            title: need(f.string("title"), p, "title")?,
            due_at: f.int("due_at"),
            done: f.bool("done").unwrap_or(false),
            done_at: f.int("done_at"),
            account_id: opt_id(f, "account_id", p, AccountId::parse)?,
            visit_id: opt_id(f, "visit_id", p, VisitId::parse)?,
            assignee: req_id(f, "assignee", p, UserId::parse)?,
            notes: f.string("notes").unwrap_or_default(),
            deleted: f.bool("deleted").unwrap_or(false),
            created_at: need(f.int("created_at"), p, "created_at")?,
            created_by: req_id(f, "created_by", p, UserId::parse)?,
        })
    }
}

impl Preferences {
    pub fn from_fields(f: &Fields) -> Result<Self> {
        let p = "preferences";
        Ok(Preferences {
            language: f
                .str("language")
                .map(|s| parse_in(Language::parse(s), p, "language"))
                .transpose()?,
            currency: f
                .str("currency")
                .map(|s| parse_in(Currency::parse(s), p, "currency"))
                .transpose()?,
            visit_reminder_minutes: f.int("visit_reminder_minutes"),
        })
    }
}

impl Product {
    pub fn from_fields(f: &Fields) -> Result<Self> {
        let p = "product";
        Ok(Product {
            id: req_id(f, "id", p, ProductId::parse)?,
            sku: need(f.string("sku"), p, "sku")?,
            name: need(f.string("name"), p, "name")?,
            category: f.string("category"),
            unit: need(f.string("unit"), p, "unit")?,
            base_price_minor: need(f.int("base_price_minor"), p, "base_price_minor")?,
            tax_class: need(f.string("tax_class"), p, "tax_class")?,
            active: f.bool("active").unwrap_or(true),
        })
    }
}

impl TaxClass {
    pub fn from_fields(code: &str, f: &Fields) -> Result<Self> {
        let p = "tax class";
        Ok(TaxClass {
            code: code.to_owned(),
            name: need(f.string("name"), p, "name")?,
            rate_bp: need(f.int("rate_bp"), p, "rate_bp")?,
        })
    }
}

impl PriceListItem {
    pub fn from_fields(f: &Fields) -> Result<Self> {
        let p = "price list item";
        Ok(PriceListItem {
            id: req_id(f, "id", p, PriceListItemId::parse)?,
            product_id: req_id(f, "product_id", p, ProductId::parse)?,
            price_minor: need(f.int("price_minor"), p, "price_minor")?,
            min_qty: f.int("min_qty_milli").map(Quantity::from_milli),
            valid_from: f.int("valid_from"),
            valid_to: f.int("valid_to"),
            deleted: f.bool("deleted").unwrap_or(false),
        })
    }
}

impl PriceList {
    pub fn from_fields(f: &Fields, items: Vec<PriceListItem>) -> Result<Self> {
        let p = "price list";
        Ok(PriceList {
            id: req_id(f, "id", p, PriceListId::parse)?,
            name: need(f.string("name"), p, "name")?,
            currency: word(f, "currency", p, Currency::parse)?,
            active: f.bool("active").unwrap_or(true),
            items,
        })
    }
}
