//! The records and enums that cross the FFI, and their conversions from and to the client
//! core's types.
//!
//! Conventions, the same in every record (and in Kotlin, Swift and Python):
//!
//! - **IDs** are UUID strings (`"0190f5c2-…"`). An ID argument that does not parse is an
//!   [`ApiError::InvalidInput`] naming the argument.
//! - **Times** are `i64` milliseconds since the Unix epoch (UTC).
//! - **Money** is `i64` in the currency's minor unit (fen, cents; yen have none) next to an
//!   ISO 4217 code string (`"CNY"`). Totals are computed by the core, never typed in.
//! - **Quantities** are decimal strings with at most three decimals (`"2"`, `"2.5"`,
//!   `"0.125"`), in both directions; the core stores thousandths, so nothing is ever rounded.
//! - **Discounts and tax rates** are basis points (`1000` = 10 %).
//! - Records that the core keeps but marks deleted (contacts, order lines) carry `deleted`.

use fieldline_client_core::queries;
use fieldline_protocol::ids::{
    AccountId, ContactId, OrderId, OrderLineId, PriceListId, ProductId, TaskId, TeamId, UserId,
    VisitId,
};
use fieldline_protocol::{doc, model, money, ops, wire};

use crate::ApiError;

// ---- enums ------------------------------------------------------------------------------

/// Declares an FFI enum mirroring a core enum variant by variant, with conversions both ways.
macro_rules! mirror_enum {
    ($(#[$meta:meta])* $name:ident => $core:ty { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl From<$core> for $name {
            fn from(v: $core) -> Self {
                match v {
                    $(<$core>::$variant => $name::$variant),+
                }
            }
        }

        impl From<$name> for $core {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => <$core>::$variant),+
                }
            }
        }
    };
}

mirror_enum!(
    /// A user's role in the organisation.
    Role => model::Role { Rep, Manager, Admin }
);

mirror_enum!(
    /// Who besides the owner and the team's managers may read an account.
    Visibility => model::Visibility {
        /// The owner, the team's managers and admins only.
        Private,
        /// Also every member of the account's team.
        Team,
        /// Everyone in the company (a manager's decision).
        Company,
    }
);

mirror_enum!(
    /// Where an account stands commercially: lead → customer, lead → inactive,
    /// customer ⇄ inactive.
    AccountStatus => model::AccountStatus { Lead, Customer, Inactive }
);

mirror_enum!(
    /// Customer value tier, computed by the server from revenue.
    Tier => model::Tier { Key, Major, Regular, Small }
);

mirror_enum!(
    /// A visit's lifecycle: planned → in progress (check-in) → completed, or cancelled.
    VisitStatus => model::VisitStatus { Planned, InProgress, Completed, Cancelled }
);

mirror_enum!(
    /// An order's lifecycle: draft → submitted → confirmed / rejected, confirmed → delivered.
    /// Only drafts can be changed on a device.
    OrderStatus => model::OrderStatus { Draft, Submitted, Confirmed, Rejected, Delivered }
);

mirror_enum!(
    /// The languages of the user interface.
    Language => model::Language { En, Zh }
);

/// Where a refused write stands in the manager's review queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum ReviewStatus {
    /// Waiting for a manager.
    Open,
    /// A manager applied the change after all.
    Approved,
    /// A manager decided it stays out.
    Dismissed,
    /// This device replayed the edit as a new change that was accepted.
    Superseded,
}

impl From<wire::ReviewStatus> for ReviewStatus {
    fn from(s: wire::ReviewStatus) -> Self {
        match s {
            wire::ReviewStatus::Open => ReviewStatus::Open,
            wire::ReviewStatus::Approved => ReviewStatus::Approved,
            wire::ReviewStatus::Dismissed => ReviewStatus::Dismissed,
            wire::ReviewStatus::Superseded => ReviewStatus::Superseded,
        }
    }
}

// ---- parsing arguments ------------------------------------------------------------------

/// Parses an ID argument; the error names the argument, never its value.
pub(crate) fn parse_id<T>(
    value: &str,
    argument: &str,
    parse: fn(&str) -> fieldline_protocol::Result<T>,
) -> Result<T, ApiError> {
    parse(value).map_err(|_| ApiError::InvalidInput {
        message: format!("{argument} must be a valid ID (a UUID string)"),
    })
}

pub(crate) fn parse_opt_id<T>(
    value: Option<&str>,
    argument: &str,
    parse: fn(&str) -> fieldline_protocol::Result<T>,
) -> Result<Option<T>, ApiError> {
    value.map(|v| parse_id(v, argument, parse)).transpose()
}

pub(crate) fn parse_account(value: &str) -> Result<AccountId, ApiError> {
    parse_id(value, "account_id", AccountId::parse)
}

pub(crate) fn parse_contact(value: &str) -> Result<ContactId, ApiError> {
    parse_id(value, "contact_id", ContactId::parse)
}

pub(crate) fn parse_visit(value: &str) -> Result<VisitId, ApiError> {
    parse_id(value, "visit_id", VisitId::parse)
}

pub(crate) fn parse_order(value: &str) -> Result<OrderId, ApiError> {
    parse_id(value, "order_id", OrderId::parse)
}

pub(crate) fn parse_line(value: &str) -> Result<OrderLineId, ApiError> {
    parse_id(value, "line_id", OrderLineId::parse)
}

pub(crate) fn parse_product(value: &str) -> Result<ProductId, ApiError> {
    parse_id(value, "product_id", ProductId::parse)
}

pub(crate) fn parse_task(value: &str) -> Result<TaskId, ApiError> {
    parse_id(value, "task_id", TaskId::parse)
}

pub(crate) fn parse_user(value: &str) -> Result<UserId, ApiError> {
    parse_id(value, "user_id", UserId::parse)
}

/// Parses a currency code argument (`"CNY"`).
pub(crate) fn parse_currency(value: &str) -> Result<money::Currency, ApiError> {
    Ok(money::Currency::parse(value)?)
}

/// Parses a quantity argument (`"2.5"`); more than three decimals is an error, not a rounding.
pub(crate) fn parse_quantity(value: &str) -> Result<money::Quantity, ApiError> {
    Ok(money::Quantity::parse(value)?)
}

fn ids<T: ToString>(ids: &[T]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

fn opt_string<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

// ---- small records ----------------------------------------------------------------------

/// A position given by the app at check-in or check-out (never tracked otherwise), or an
/// account's location.
#[derive(Clone, Copy, Debug, PartialEq, uniffi::Record)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
    /// Accuracy radius in metres, if the platform reported one.
    #[uniffi(default = None)]
    pub accuracy_m: Option<f64>,
}

impl From<model::GeoPoint> for GeoPoint {
    fn from(g: model::GeoPoint) -> Self {
        GeoPoint {
            lat: g.lat,
            lon: g.lon,
            accuracy_m: g.accuracy_m,
        }
    }
}

impl From<GeoPoint> for model::GeoPoint {
    fn from(g: GeoPoint) -> Self {
        model::GeoPoint {
            lat: g.lat,
            lon: g.lon,
            accuracy_m: g.accuracy_m,
        }
    }
}

/// The postal address of an account; every part is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct Address {
    #[uniffi(default = None)]
    pub street: Option<String>,
    #[uniffi(default = None)]
    pub city: Option<String>,
    #[uniffi(default = None)]
    pub region: Option<String>,
    #[uniffi(default = None)]
    pub postal_code: Option<String>,
    #[uniffi(default = None)]
    pub country: Option<String>,
}

impl From<model::Address> for Address {
    fn from(a: model::Address) -> Self {
        Address {
            street: a.street,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

impl From<Address> for model::Address {
    fn from(a: Address) -> Self {
        model::Address {
            street: a.street,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

/// Computed totals of an order or a line, in minor units of the order's currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct Totals {
    /// After discount, before tax.
    pub net_minor: i64,
    pub tax_minor: i64,
    /// `net + tax`.
    pub gross_minor: i64,
}

impl From<money::Totals> for Totals {
    fn from(t: money::Totals) -> Self {
        Totals {
            net_minor: t.net_minor,
            tax_minor: t.tax_minor,
            gross_minor: t.gross_minor,
        }
    }
}

// ---- accounts ---------------------------------------------------------------------------

/// What a rep types in the account form (create or edit). On edit, only the fields that
/// differ from the stored account are written, so two people editing different fields both
/// keep their change.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct AccountInput {
    /// Required, not blank.
    pub name: String,
    /// ISO 4217 code of the account's orders (`"CNY"`).
    pub currency: String,
    pub status: AccountStatus,
    #[uniffi(default = None)]
    pub erp_code: Option<String>,
    /// Use `Address()` (every part is optional) when there is none.
    pub address: Address,
    #[uniffi(default = None)]
    pub location: Option<GeoPoint>,
    #[uniffi(default = None)]
    pub phone: Option<String>,
    #[uniffi(default = None)]
    pub email: Option<String>,
    #[uniffi(default = None)]
    pub payment_terms: Option<String>,
    /// The price list the account buys from (an ID), if any.
    #[uniffi(default = None)]
    pub price_list_id: Option<String>,
}

impl AccountInput {
    pub(crate) fn to_core(&self) -> Result<ops::AccountInput, ApiError> {
        Ok(ops::AccountInput {
            name: self.name.clone(),
            status: self.status.into(),
            erp_code: self.erp_code.clone(),
            address: self.address.clone().into(),
            location: self.location.map(Into::into),
            phone: self.phone.clone(),
            email: self.email.clone(),
            payment_terms: self.payment_terms.clone(),
            price_list_id: parse_opt_id(
                self.price_list_id.as_deref(),
                "price_list_id",
                PriceListId::parse,
            )?,
            currency: parse_currency(&self.currency)?,
        })
    }
}

/// An account with everything the detail screen shows.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub status: AccountStatus,
    pub erp_code: Option<String>,
    pub address: Address,
    pub location: Option<GeoPoint>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub tags: Vec<String>,
    pub notes: String,
    /// The owning rep (a user ID).
    pub owner: String,
    /// The team the account belongs to (a team ID).
    pub team: String,
    pub visibility: Visibility,
    pub payment_terms: Option<String>,
    pub price_list_id: Option<String>,
    pub currency: String,
    pub tier: Option<Tier>,
    pub created_at: i64,
    pub created_by: String,
}

impl From<model::Account> for Account {
    fn from(a: model::Account) -> Self {
        Account {
            id: a.id.to_string(),
            name: a.name,
            status: a.status.into(),
            erp_code: a.erp_code,
            address: a.address.into(),
            location: a.location.map(Into::into),
            phone: a.phone,
            email: a.email,
            tags: a.tags,
            notes: a.notes,
            owner: a.acl.owner.to_string(),
            team: a.acl.team.to_string(),
            visibility: a.acl.visibility.into(),
            payment_terms: a.payment_terms,
            price_list_id: opt_string(a.price_list_id),
            currency: a.currency.code().to_owned(),
            tier: a.tier.map(Into::into),
            created_at: a.created_at,
            created_by: a.created_by.to_string(),
        }
    }
}

/// One line of an account list.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct AccountSummary {
    pub id: String,
    pub name: String,
    pub status: AccountStatus,
    pub city: Option<String>,
    pub tier: Option<Tier>,
    pub owner: String,
    pub visibility: Visibility,
    pub tags: Vec<String>,
    /// The soonest planned visit, if any.
    pub next_visit_at: Option<i64>,
    /// The latest visit made, if any.
    pub last_visit_at: Option<i64>,
}

impl From<queries::AccountSummary> for AccountSummary {
    fn from(a: queries::AccountSummary) -> Self {
        AccountSummary {
            id: a.id.to_string(),
            name: a.name,
            status: a.status.into(),
            city: a.city,
            tier: a.tier.map(Into::into),
            owner: a.owner.to_string(),
            visibility: a.visibility.into(),
            tags: a.tags,
            next_visit_at: a.next_visit_at,
            last_visit_at: a.last_visit_at,
        }
    }
}

// ---- contacts ---------------------------------------------------------------------------

/// A contact person as typed by the rep.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ContactInput {
    /// Required, not blank.
    pub name: String,
    #[uniffi(default = None)]
    pub title: Option<String>,
    #[uniffi(default = None)]
    pub phone: Option<String>,
    /// Must look like an e-mail address when given.
    #[uniffi(default = None)]
    pub email: Option<String>,
    /// The account's main contact.
    #[uniffi(default = false)]
    pub primary: bool,
}

impl From<&ContactInput> for ops::ContactInput {
    fn from(c: &ContactInput) -> Self {
        ops::ContactInput {
            name: c.name.clone(),
            title: c.title.clone(),
            phone: c.phone.clone(),
            email: c.email.clone(),
            primary: c.primary,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Contact {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub title: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub primary: bool,
    pub deleted: bool,
    pub created_at: i64,
    pub created_by: String,
}

impl From<model::Contact> for Contact {
    fn from(c: model::Contact) -> Self {
        Contact {
            id: c.id.to_string(),
            account_id: c.account_id.to_string(),
            name: c.name,
            title: c.title,
            phone: c.phone,
            email: c.email,
            primary: c.primary,
            deleted: c.deleted,
            created_at: c.created_at,
            created_by: c.created_by.to_string(),
        }
    }
}

// ---- visits -----------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Visit {
    pub id: String,
    pub account_id: String,
    pub status: VisitStatus,
    pub planned_at: Option<i64>,
    pub checked_in_at: Option<i64>,
    /// Recorded only if the app passed a location at check-in.
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
    pub created_by: String,
}

impl From<model::Visit> for Visit {
    fn from(v: model::Visit) -> Self {
        Visit {
            id: v.id.to_string(),
            account_id: v.account_id.to_string(),
            status: v.status.into(),
            planned_at: v.planned_at,
            checked_in_at: v.checked_in_at,
            check_in_location: v.check_in_location.map(Into::into),
            checked_out_at: v.checked_out_at,
            check_out_location: v.check_out_location.map(Into::into),
            purpose: v.purpose,
            notes: v.notes,
            outcome: v.outcome,
            next_step: v.next_step,
            cancel_reason: v.cancel_reason,
            created_at: v.created_at,
            created_by: v.created_by.to_string(),
        }
    }
}

/// A visit with the name of its account, for agenda screens.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct VisitItem {
    pub visit: Visit,
    pub account_name: String,
}

impl From<queries::VisitItem> for VisitItem {
    fn from(v: queries::VisitItem) -> Self {
        VisitItem {
            visit: v.visit.into(),
            account_name: v.account_name,
        }
    }
}

/// How a visit ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct VisitReport {
    #[uniffi(default = None)]
    pub outcome: Option<String>,
    #[uniffi(default = None)]
    pub next_step: Option<String>,
    /// Replaces the visit notes when given.
    #[uniffi(default = None)]
    pub notes: Option<String>,
}

impl From<&VisitReport> for ops::VisitReport {
    fn from(r: &VisitReport) -> Self {
        ops::VisitReport {
            outcome: r.outcome.clone(),
            next_step: r.next_step.clone(),
            notes: r.notes.clone(),
        }
    }
}

/// A follow-up task to create (in the signed-in user's list) when completing a visit.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct FollowUp {
    pub title: String,
    #[uniffi(default = None)]
    pub due_at: Option<i64>,
}

impl From<&FollowUp> for fieldline_client_core::FollowUp {
    fn from(f: &FollowUp) -> Self {
        fieldline_client_core::FollowUp {
            title: f.title.clone(),
            due_at: f.due_at,
        }
    }
}

// ---- orders -----------------------------------------------------------------------------

/// One line of an order list.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct OrderSummary {
    pub id: String,
    pub account_id: String,
    pub account_name: String,
    pub status: OrderStatus,
    pub currency: String,
    pub totals: Totals,
    /// Live (not removed) lines.
    pub line_count: i64,
    /// The visit the order was taken at, if any.
    pub visit_id: Option<String>,
    pub created_at: i64,
    pub submitted_at: Option<i64>,
    pub deleted: bool,
}

impl From<queries::OrderSummary> for OrderSummary {
    fn from(o: queries::OrderSummary) -> Self {
        OrderSummary {
            id: o.id.to_string(),
            account_id: o.account_id.to_string(),
            account_name: o.account_name,
            status: o.status.into(),
            currency: o.currency.code().to_owned(),
            totals: o.totals.into(),
            line_count: o.line_count,
            visit_id: opt_string(o.visit_id),
            created_at: o.created_at,
            submitted_at: o.submitted_at,
            deleted: o.deleted,
        }
    }
}

/// An order line. Code, name, unit price and tax rate were copied from the catalog when the
/// line was added: an order keeps the prices of the day it was taken.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct OrderLine {
    pub id: String,
    pub product_id: String,
    pub product_code: String,
    pub product_name: String,
    pub unit: Option<String>,
    pub unit_price_minor: i64,
    /// Decimal string, e.g. `"2.5"`.
    pub quantity: String,
    pub discount_bp: i64,
    pub tax_bp: i64,
    /// This line's totals (zero for a removed line).
    pub totals: Totals,
    /// Removed from the order (kept for history).
    pub deleted: bool,
    pub created_at: i64,
    pub created_by: String,
}

impl TryFrom<model::OrderLine> for OrderLine {
    type Error = ApiError;

    fn try_from(l: model::OrderLine) -> Result<Self, ApiError> {
        let totals = if l.deleted {
            Totals::default()
        } else {
            money::line_totals(&l.pricing())?.into()
        };
        Ok(OrderLine {
            id: l.id.to_string(),
            product_id: l.product_id.to_string(),
            product_code: l.product_code,
            product_name: l.product_name,
            unit: l.unit,
            unit_price_minor: l.unit_price_minor,
            quantity: l.quantity.to_string(),
            discount_bp: l.discount_bp,
            tax_bp: l.tax_bp,
            totals,
            deleted: l.deleted,
            created_at: l.created_at,
            created_by: l.created_by.to_string(),
        })
    }
}

/// An order with its lines (removed ones included, marked `deleted`) and its totals.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct OrderDetail {
    pub id: String,
    pub account_id: String,
    pub status: OrderStatus,
    pub currency: String,
    pub price_list_id: Option<String>,
    pub visit_id: Option<String>,
    pub notes: Option<String>,
    pub submitted_at: Option<i64>,
    /// When the back office confirmed or rejected it.
    pub decided_at: Option<i64>,
    pub erp_ref: Option<String>,
    pub reject_reason: Option<String>,
    pub deleted: bool,
    pub created_at: i64,
    pub created_by: String,
    pub lines: Vec<OrderLine>,
    /// The sum of the live lines' totals.
    pub totals: Totals,
}

impl TryFrom<queries::OrderDetail> for OrderDetail {
    type Error = ApiError;

    fn try_from(d: queries::OrderDetail) -> Result<Self, ApiError> {
        let o = d.order;
        Ok(OrderDetail {
            id: o.id.to_string(),
            account_id: o.account_id.to_string(),
            status: o.status.into(),
            currency: o.currency.code().to_owned(),
            price_list_id: opt_string(o.price_list_id),
            visit_id: opt_string(o.visit_id),
            notes: o.notes,
            submitted_at: o.submitted_at,
            decided_at: o.decided_at,
            erp_ref: o.erp_ref,
            reject_reason: o.reject_reason,
            deleted: o.deleted,
            created_at: o.created_at,
            created_by: o.created_by.to_string(),
            lines: o
                .lines
                .into_iter()
                .map(OrderLine::try_from)
                .collect::<Result<_, _>>()?,
            totals: d.totals.into(),
        })
    }
}

/// The price the catalog gives now for a product on an order.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Quote {
    pub product: Product,
    /// In the order's currency.
    pub unit_price_minor: i64,
    pub currency: String,
    pub tax_bp: i64,
    /// The price list the price came from, if any (else the product's base price).
    pub price_list_id: Option<String>,
    /// The quoted quantity, normalised (`"2.5"`).
    pub quantity: String,
    /// Totals of a line of that quantity without discount.
    pub totals: Totals,
}

impl Quote {
    pub(crate) fn new(
        q: doc::Quote,
        currency: money::Currency,
        quantity: money::Quantity,
    ) -> Result<Quote, ApiError> {
        let totals = money::line_totals(&money::LinePricing {
            unit_price_minor: q.unit_price_minor,
            quantity,
            discount_bp: 0,
            tax_bp: q.tax_bp,
        })?;
        Ok(Quote {
            product: q.product.into(),
            unit_price_minor: q.unit_price_minor,
            currency: currency.code().to_owned(),
            tax_bp: q.tax_bp,
            price_list_id: opt_string(q.price_list_id),
            quantity: quantity.to_string(),
            totals: totals.into(),
        })
    }
}

// ---- catalog ----------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Product {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    pub unit: String,
    /// In the catalog's base currency.
    pub base_price_minor: i64,
    pub tax_class: String,
    pub active: bool,
}

impl From<model::Product> for Product {
    fn from(p: model::Product) -> Self {
        Product {
            id: p.id.to_string(),
            sku: p.sku,
            name: p.name,
            category: p.category,
            unit: p.unit,
            base_price_minor: p.base_price_minor,
            tax_class: p.tax_class,
            active: p.active,
        }
    }
}

/// A product with its tax rate, for the order screen.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ProductItem {
    pub product: Product,
    /// The rate of the product's tax class, if the class is known.
    pub tax_bp: Option<i64>,
}

impl From<queries::ProductItem> for ProductItem {
    fn from(p: queries::ProductItem) -> Self {
        ProductItem {
            product: p.product.into(),
            tax_bp: p.tax_bp,
        }
    }
}

// ---- tasks and preferences --------------------------------------------------------------

/// A task (follow-up, reminder) as typed by the user.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TaskInput {
    /// Required, not blank.
    pub title: String,
    #[uniffi(default = None)]
    pub due_at: Option<i64>,
    /// The account the task is about, if any.
    #[uniffi(default = None)]
    pub account_id: Option<String>,
    /// The visit the task follows up, if any.
    #[uniffi(default = None)]
    pub visit_id: Option<String>,
    #[uniffi(default = None)]
    pub notes: Option<String>,
}

impl TaskInput {
    pub(crate) fn to_core(&self) -> Result<ops::TaskInput, ApiError> {
        Ok(ops::TaskInput {
            title: self.title.clone(),
            due_at: self.due_at,
            account_id: parse_opt_id(self.account_id.as_deref(), "account_id", AccountId::parse)?,
            visit_id: parse_opt_id(self.visit_id.as_deref(), "visit_id", VisitId::parse)?,
            notes: self.notes.clone(),
        })
    }
}

/// A task in a user's list. (Called `TaskItem` because `Task` is taken in Swift.)
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TaskItem {
    pub id: String,
    pub title: String,
    pub due_at: Option<i64>,
    pub done: bool,
    pub done_at: Option<i64>,
    pub account_id: Option<String>,
    pub visit_id: Option<String>,
    /// Whose list the task is in (a user ID).
    pub assignee: String,
    pub notes: String,
    pub deleted: bool,
    pub created_at: i64,
    /// Who created it (a manager, for assigned follow-ups).
    pub created_by: String,
}

impl From<model::Task> for TaskItem {
    fn from(t: model::Task) -> Self {
        TaskItem {
            id: t.id.to_string(),
            title: t.title,
            due_at: t.due_at,
            done: t.done,
            done_at: t.done_at,
            account_id: opt_string(t.account_id),
            visit_id: opt_string(t.visit_id),
            assignee: t.assignee.to_string(),
            notes: t.notes,
            deleted: t.deleted,
            created_at: t.created_at,
            created_by: t.created_by.to_string(),
        }
    }
}

/// The user's preferences; `None` leaves (or resets to) the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct Preferences {
    #[uniffi(default = None)]
    pub language: Option<Language>,
    /// ISO 4217 code.
    #[uniffi(default = None)]
    pub currency: Option<String>,
    #[uniffi(default = None)]
    pub visit_reminder_minutes: Option<i64>,
}

impl From<model::Preferences> for Preferences {
    fn from(p: model::Preferences) -> Self {
        Preferences {
            language: p.language.map(Into::into),
            currency: p.currency.map(|c| c.code().to_owned()),
            visit_reminder_minutes: p.visit_reminder_minutes,
        }
    }
}

impl Preferences {
    pub(crate) fn to_core(&self) -> Result<model::Preferences, ApiError> {
        Ok(model::Preferences {
            language: self.language.map(Into::into),
            currency: self.currency.as_deref().map(parse_currency).transpose()?,
            visit_reminder_minutes: self.visit_reminder_minutes,
        })
    }
}

// ---- timeline ---------------------------------------------------------------------------

/// One entry of an account's timeline (newest first). `at` is when it happened or is due.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum TimelineItem {
    Visit { at: i64, visit: Visit },
    Order { at: i64, order: OrderSummary },
    Task { at: i64, task: TaskItem },
}

impl From<queries::TimelineItem> for TimelineItem {
    fn from(i: queries::TimelineItem) -> Self {
        let at = i.at();
        match i {
            queries::TimelineItem::Visit(v) => TimelineItem::Visit {
                at,
                visit: v.into(),
            },
            queries::TimelineItem::Order(o) => TimelineItem::Order {
                at,
                order: o.into(),
            },
            queries::TimelineItem::Task(t) => TimelineItem::Task { at, task: t.into() },
        }
    }
}

// ---- sync state -------------------------------------------------------------------------

/// A write the server refused and parked for a manager's review, still kept on this device.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ParkedWrite {
    pub id: i64,
    /// The document: `account:<id>`, `user:<id>` or `catalog`.
    pub doc_id: String,
    /// The account, when the document is an account's.
    pub account_id: Option<String>,
    /// What the user did (`log_visit`, `update_order_line`, …).
    pub action: Option<String>,
    /// The refusal's stable code (`forbidden`, `locked`, …).
    pub code: Option<String>,
    /// The server's reason, for display.
    pub reason: Option<String>,
    /// The review item a manager sees, if the server has one.
    pub review_id: Option<i64>,
    pub created_at: i64,
}

impl From<queries::ParkedWrite> for ParkedWrite {
    fn from(p: queries::ParkedWrite) -> Self {
        ParkedWrite {
            id: p.id,
            doc_id: p.doc.to_string(),
            account_id: opt_string(p.doc.as_account()),
            action: p.action,
            code: p.code,
            reason: p.reason,
            review_id: p.review_id,
            created_at: p.created_at,
        }
    }
}

/// What a local edit or a sync changed, for refreshing screens.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct ChangeSet {
    /// Accounts whose data (the account, its contacts, visits or orders) changed.
    pub accounts: Vec<String>,
    /// Accounts removed from this device (the user may no longer read them).
    pub purged: Vec<String>,
    /// The user's tasks or preferences changed.
    pub tasks: bool,
    /// Products or prices changed.
    pub catalog: bool,
    /// The outbox (pending changes) or the parked writes changed.
    pub outbox: bool,
}

impl From<&fieldline_client_core::ChangeSet> for ChangeSet {
    fn from(c: &fieldline_client_core::ChangeSet) -> Self {
        ChangeSet {
            accounts: c.accounts.iter().map(ToString::to_string).collect(),
            purged: c.purged.iter().map(ToString::to_string).collect(),
            tasks: c.tasks,
            catalog: c.catalog,
            outbox: c.outbox,
        }
    }
}

/// Who uses this replica, as the server last said (known after the first sync).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SignedInUser {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// Teams the user belongs to (team IDs); new accounts go to the first.
    pub teams: Vec<String>,
    /// Teams the user manages.
    pub managed_teams: Vec<String>,
    /// Members of the managed teams (user IDs), whose lists a manager may add tasks to.
    pub managed_users: Vec<String>,
}

impl From<wire::Identity> for SignedInUser {
    fn from(i: wire::Identity) -> Self {
        let p = i.principal;
        SignedInUser {
            user_id: p.user_id.to_string(),
            username: i.username,
            display_name: i.display_name,
            role: p.role.into(),
            teams: ids::<TeamId>(&p.teams),
            managed_teams: ids::<TeamId>(&p.managed_teams),
            managed_users: ids::<UserId>(&p.managed_users),
        }
    }
}
