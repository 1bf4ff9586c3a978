//! Read-only queries over the projection: every list and search a screen shows.
//!
//! Nothing here loads a document; each query is one indexed SQL statement, which is what
//! keeps lists fast on a cheap phone with thousands of accounts.

use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::{Currency, Quantity, Totals};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use crate::Result;
use crate::search::fts_query;

/// One line of an account list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountSummary {
    pub id: AccountId,
    pub name: String,
    pub status: AccountStatus,
    pub city: Option<String>,
    pub tier: Option<Tier>,
    pub owner: UserId,
    pub visibility: Visibility,
    pub tags: Vec<String>,
    pub next_visit_at: Option<i64>,
    pub last_visit_at: Option<i64>,
}

/// A visit with the name of its account, for agenda screens.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VisitItem {
    pub visit: Visit,
    pub account_name: String,
}

/// One line of an order list, with computed totals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderSummary {
    pub id: OrderId,
    pub account_id: AccountId,
    pub account_name: String,
    pub status: OrderStatus,
    pub currency: Currency,
    pub totals: Totals,
    pub line_count: i64,
    pub visit_id: Option<VisitId>,
    pub created_at: i64,
    pub submitted_at: Option<i64>,
    pub deleted: bool,
}

/// An order with its lines and totals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderDetail {
    pub order: Order,
    pub totals: Totals,
}

/// One entry of an account's timeline, newest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TimelineItem {
    Visit(Visit),
    Order(OrderSummary),
    Task(Task),
}

impl TimelineItem {
    pub fn at(&self) -> i64 {
        match self {
            TimelineItem::Visit(v) => v
                .checked_out_at
                .or(v.checked_in_at)
                .or(v.planned_at)
                .unwrap_or(v.created_at),
            TimelineItem::Order(o) => o.submitted_at.unwrap_or(o.created_at),
            TimelineItem::Task(t) => t.due_at.unwrap_or(t.created_at),
        }
    }
}

/// A product with its tax rate, for the order screen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProductItem {
    pub product: Product,
    pub tax_bp: Option<i64>,
}

/// A write the server refused and parked for review, kept on the device until resolved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParkedWrite {
    pub id: i64,
    pub doc: DocId,
    /// What the user did (`log_visit`, …), if the write came from this device.
    pub action: Option<String>,
    pub code: Option<String>,
    pub reason: Option<String>,
    pub review_id: Option<i64>,
    pub created_at: i64,
}

/// Reads a text column and parses it (an ID, an enum word, a currency); a value that does not
/// parse means the file is damaged and is reported as a conversion error of that column.
fn parsed<T, E>(
    r: &Row<'_>,
    idx: usize,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> rusqlite::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let s: String = r.get(idx)?;
    parse(&s).map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn parsed_opt<T, E>(
    r: &Row<'_>,
    idx: usize,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> rusqlite::Result<Option<T>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let s: Option<String> = r.get(idx)?;
    s.map(|s| {
        parse(&s)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
    })
    .transpose()
}

fn tags(r: &Row<'_>, idx: usize) -> rusqlite::Result<Vec<String>> {
    parsed(r, idx, |s| serde_json::from_str::<Vec<String>>(s))
}

fn geo(lat: Option<f64>, lon: Option<f64>) -> Option<GeoPoint> {
    Some(GeoPoint {
        lat: lat?,
        lon: lon?,
        accuracy_m: None,
    })
}

fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<T>>) -> Result<Vec<T>> {
    Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
}

const ACCOUNT_COLS: &str = "id, name, status, erp_code, street, city, region, postal_code, country, lat, lon, phone, email,
    tags, notes, owner, team, visibility, payment_terms, price_list_id, currency, tier, created_at, created_by";

fn account_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: parsed(r, 0, AccountId::parse)?,
        name: r.get(1)?,
        status: parsed(r, 2, AccountStatus::parse)?,
        erp_code: r.get(3)?,
        address: Address {
            street: r.get(4)?,
            city: r.get(5)?,
            region: r.get(6)?,
            postal_code: r.get(7)?,
            country: r.get(8)?,
        },
        location: geo(r.get(9)?, r.get(10)?),
        phone: r.get(11)?,
        email: r.get(12)?,
        tags: tags(r, 13)?,
        notes: r.get(14)?,
        acl: AccountAcl {
            owner: parsed(r, 15, UserId::parse)?,
            team: parsed(r, 16, TeamId::parse)?,
            visibility: parsed(r, 17, Visibility::parse)?,
        },
        payment_terms: r.get(18)?,
        price_list_id: parsed_opt(r, 19, PriceListId::parse)?,
        currency: parsed(r, 20, Currency::parse)?,
        tier: parsed_opt(r, 21, Tier::parse)?,
        created_at: r.get(22)?,
        created_by: parsed(r, 23, UserId::parse)?,
    })
}

pub(crate) fn account(conn: &Connection, account: AccountId) -> Result<Option<Account>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ?1"
        ))?
        .query_row([account.to_string()], account_row)
        .optional()?)
}

const SUMMARY_COLS: &str = "a.id, a.name, a.status, a.city, a.tier, a.owner, a.visibility, a.tags, a.next_visit_at, a.last_visit_at";

fn summary_row(r: &Row<'_>) -> rusqlite::Result<AccountSummary> {
    Ok(AccountSummary {
        id: parsed(r, 0, AccountId::parse)?,
        name: r.get(1)?,
        status: parsed(r, 2, AccountStatus::parse)?,
        city: r.get(3)?,
        tier: parsed_opt(r, 4, Tier::parse)?,
        owner: parsed(r, 5, UserId::parse)?,
        visibility: parsed(r, 6, Visibility::parse)?,
        tags: tags(r, 7)?,
        next_visit_at: r.get(8)?,
        last_visit_at: r.get(9)?,
    })
}

pub(crate) fn accounts_by_name(
    conn: &Connection,
    limit: u32,
    offset: u32,
) -> Result<Vec<AccountSummary>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLS} FROM accounts a ORDER BY a.name COLLATE NOCASE, a.id LIMIT ?1 OFFSET ?2"
    ))?;
    collect(stmt.query_map(params![limit, offset], summary_row)?)
}

pub(crate) fn accounts_by_next_visit(conn: &Connection, limit: u32) -> Result<Vec<AccountSummary>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLS} FROM accounts a WHERE a.next_visit_at IS NOT NULL ORDER BY a.next_visit_at, a.id LIMIT ?1"
    ))?;
    collect(stmt.query_map([limit], summary_row)?)
}

pub(crate) fn search_accounts(
    conn: &Connection,
    query: &str,
    limit: u32,
) -> Result<Vec<AccountSummary>> {
    let Some(q) = fts_query(query) else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLS} FROM account_search s JOIN accounts a ON a.rowid = s.rowid
         WHERE account_search MATCH ?1 ORDER BY s.rank, a.name COLLATE NOCASE, a.id LIMIT ?2"
    ))?;
    collect(stmt.query_map(params![q, limit], summary_row)?)
}

pub(crate) fn count_accounts(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?)
}

fn contact_row(r: &Row<'_>) -> rusqlite::Result<Contact> {
    Ok(Contact {
        id: parsed(r, 0, ContactId::parse)?,
        account_id: parsed(r, 1, AccountId::parse)?,
        name: r.get(2)?,
        title: r.get(3)?,
        phone: r.get(4)?,
        email: r.get(5)?,
        primary: r.get(6)?,
        deleted: r.get(7)?,
        created_at: r.get(8)?,
        created_by: parsed(r, 9, UserId::parse)?,
    })
}

pub(crate) fn contacts(conn: &Connection, account: AccountId) -> Result<Vec<Contact>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, account_id, name, title, phone, email, is_primary, deleted, created_at, created_by
         FROM contacts WHERE account_id = ?1 AND deleted = 0 ORDER BY is_primary DESC, name COLLATE NOCASE, id",
    )?;
    collect(stmt.query_map([account.to_string()], contact_row)?)
}

const VISIT_COLS: &str = "v.id, v.account_id, v.status, v.planned_at, v.checked_in_at, v.checked_out_at, v.check_in_lat,
    v.check_in_lon, v.check_out_lat, v.check_out_lon, v.purpose, v.notes, v.outcome, v.next_step, v.cancel_reason,
    v.created_at, v.created_by";

fn visit_row(r: &Row<'_>) -> rusqlite::Result<Visit> {
    Ok(Visit {
        id: parsed(r, 0, VisitId::parse)?,
        account_id: parsed(r, 1, AccountId::parse)?,
        status: parsed(r, 2, VisitStatus::parse)?,
        planned_at: r.get(3)?,
        checked_in_at: r.get(4)?,
        checked_out_at: r.get(5)?,
        check_in_location: geo(r.get(6)?, r.get(7)?),
        check_out_location: geo(r.get(8)?, r.get(9)?),
        purpose: r.get(10)?,
        notes: r.get(11)?,
        outcome: r.get(12)?,
        next_step: r.get(13)?,
        cancel_reason: r.get(14)?,
        created_at: r.get(15)?,
        created_by: parsed(r, 16, UserId::parse)?,
    })
}

fn visit_item_row(r: &Row<'_>) -> rusqlite::Result<VisitItem> {
    Ok(VisitItem {
        visit: visit_row(r)?,
        account_name: r.get(17)?,
    })
}

pub(crate) fn visits_of(conn: &Connection, account: AccountId) -> Result<Vec<Visit>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VISIT_COLS} FROM visits v WHERE v.account_id = ?1 ORDER BY COALESCE(v.planned_at, v.created_at) DESC, v.id DESC"
    ))?;
    collect(stmt.query_map([account.to_string()], visit_row)?)
}

pub(crate) fn visit(conn: &Connection, visit: VisitId) -> Result<Option<Visit>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {VISIT_COLS} FROM visits v WHERE v.id = ?1"
        ))?
        .query_row([visit.to_string()], visit_row)
        .optional()?)
}

/// Planned (or started) visits from `from` on, soonest first.
pub(crate) fn upcoming_visits(conn: &Connection, from: i64, limit: u32) -> Result<Vec<VisitItem>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VISIT_COLS}, a.name FROM visits v JOIN accounts a ON a.id = v.account_id
         WHERE v.status IN ('planned', 'in_progress') AND v.planned_at >= ?1
         ORDER BY v.planned_at, v.id LIMIT ?2"
    ))?;
    collect(stmt.query_map(params![from, limit], visit_item_row)?)
}

/// Every visit planned or made in `[from, to)` (a day's agenda), in time order.
pub(crate) fn visits_between(conn: &Connection, from: i64, to: i64) -> Result<Vec<VisitItem>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VISIT_COLS}, a.name FROM visits v JOIN accounts a ON a.id = v.account_id
         WHERE COALESCE(v.checked_in_at, v.planned_at) >= ?1 AND COALESCE(v.checked_in_at, v.planned_at) < ?2
         ORDER BY COALESCE(v.checked_in_at, v.planned_at), v.id"
    ))?;
    collect(stmt.query_map(params![from, to], visit_item_row)?)
}

const ORDER_COLS: &str =
    "o.id, o.account_id, a.name, o.status, o.currency, o.net_minor, o.tax_minor, o.gross_minor,
    o.line_count, o.visit_id, o.created_at, o.submitted_at, o.deleted";

fn order_summary_row(r: &Row<'_>) -> rusqlite::Result<OrderSummary> {
    Ok(OrderSummary {
        id: parsed(r, 0, OrderId::parse)?,
        account_id: parsed(r, 1, AccountId::parse)?,
        account_name: r.get(2)?,
        status: parsed(r, 3, OrderStatus::parse)?,
        currency: parsed(r, 4, Currency::parse)?,
        totals: Totals {
            net_minor: r.get(5)?,
            tax_minor: r.get(6)?,
            gross_minor: r.get(7)?,
        },
        line_count: r.get(8)?,
        visit_id: parsed_opt(r, 9, VisitId::parse)?,
        created_at: r.get(10)?,
        submitted_at: r.get(11)?,
        deleted: r.get(12)?,
    })
}

pub(crate) fn orders_of(conn: &Connection, account: AccountId) -> Result<Vec<OrderSummary>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ORDER_COLS} FROM orders o JOIN accounts a ON a.id = o.account_id
         WHERE o.account_id = ?1 AND o.deleted = 0 ORDER BY o.created_at DESC, o.id DESC"
    ))?;
    collect(stmt.query_map([account.to_string()], order_summary_row)?)
}

pub(crate) fn orders_with_status(
    conn: &Connection,
    status: OrderStatus,
    limit: u32,
) -> Result<Vec<OrderSummary>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ORDER_COLS} FROM orders o JOIN accounts a ON a.id = o.account_id
         WHERE o.status = ?1 AND o.deleted = 0 ORDER BY o.created_at DESC, o.id DESC LIMIT ?2"
    ))?;
    collect(stmt.query_map(params![status.as_str(), limit], order_summary_row)?)
}

fn order_line_row(r: &Row<'_>) -> rusqlite::Result<OrderLine> {
    Ok(OrderLine {
        id: parsed(r, 0, OrderLineId::parse)?,
        product_id: parsed(r, 1, ProductId::parse)?,
        product_code: r.get(2)?,
        product_name: r.get(3)?,
        unit: r.get(4)?,
        unit_price_minor: r.get(5)?,
        quantity: Quantity::from_milli(r.get(6)?),
        discount_bp: r.get(7)?,
        tax_bp: r.get(8)?,
        deleted: r.get(9)?,
        created_at: r.get(10)?,
        created_by: parsed(r, 11, UserId::parse)?,
    })
}

pub(crate) fn order(conn: &Connection, order: OrderId) -> Result<Option<OrderDetail>> {
    let row = conn
        .prepare_cached(
            "SELECT id, account_id, status, currency, price_list_id, visit_id, notes, submitted_at, decided_at,
                erp_ref, reject_reason, deleted, created_at, created_by, net_minor, tax_minor, gross_minor
             FROM orders WHERE id = ?1",
        )?
        .query_row([order.to_string()], |r| {
            Ok(OrderDetail {
                order: Order {
                    id: parsed(r, 0, OrderId::parse)?,
                    account_id: parsed(r, 1, AccountId::parse)?,
                    status: parsed(r, 2, OrderStatus::parse)?,
                    currency: parsed(r, 3, Currency::parse)?,
                    price_list_id: parsed_opt(r, 4, PriceListId::parse)?,
                    visit_id: parsed_opt(r, 5, VisitId::parse)?,
                    notes: r.get(6)?,
                    submitted_at: r.get(7)?,
                    decided_at: r.get(8)?,
                    erp_ref: r.get(9)?,
                    reject_reason: r.get(10)?,
                    deleted: r.get(11)?,
                    created_at: r.get(12)?,
                    created_by: parsed(r, 13, UserId::parse)?,
                    lines: Vec::new(),
                },
                totals: Totals { net_minor: r.get(14)?, tax_minor: r.get(15)?, gross_minor: r.get(16)? },
            })
        })
        .optional()?;
    let Some(mut detail) = row else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT id, product_id, product_code, product_name, unit, unit_price_minor, quantity_milli, discount_bp,
            tax_bp, deleted, created_at, created_by
         FROM order_lines WHERE order_id = ?1 ORDER BY id",
    )?;
    detail.order.lines = collect(stmt.query_map([order.to_string()], order_line_row)?)?;
    Ok(Some(detail))
}

const TASK_COLS: &str = "id, title, due_at, done, done_at, account_id, visit_id, assignee, notes, deleted, created_at, created_by";

fn task_row(r: &Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        id: parsed(r, 0, TaskId::parse)?,
        title: r.get(1)?,
        due_at: r.get(2)?,
        done: r.get(3)?,
        done_at: r.get(4)?,
        account_id: parsed_opt(r, 5, AccountId::parse)?,
        visit_id: parsed_opt(r, 6, VisitId::parse)?,
        assignee: parsed(r, 7, UserId::parse)?,
        notes: r.get(8)?,
        deleted: r.get(9)?,
        created_at: r.get(10)?,
        created_by: parsed(r, 11, UserId::parse)?,
    })
}

/// A user's tasks: open ones (or all), due before a time (or any), soonest due first.
pub(crate) fn tasks(
    conn: &Connection,
    user: UserId,
    open_only: bool,
    due_before: Option<i64>,
    limit: u32,
) -> Result<Vec<Task>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TASK_COLS} FROM tasks WHERE user_id = ?1 AND deleted = 0 AND (?2 = 0 OR done = 0)
            AND (?3 IS NULL OR due_at < ?3)
         ORDER BY done, due_at IS NULL, due_at, id LIMIT ?4"
    ))?;
    collect(stmt.query_map(
        params![user.to_string(), open_only, due_before, limit],
        task_row,
    )?)
}

pub(crate) fn tasks_of_account(conn: &Connection, account: AccountId) -> Result<Vec<Task>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TASK_COLS} FROM tasks WHERE account_id = ?1 AND deleted = 0"
    ))?;
    collect(stmt.query_map([account.to_string()], task_row)?)
}

pub(crate) fn task(conn: &Connection, task: TaskId) -> Result<Option<Task>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {TASK_COLS} FROM tasks WHERE id = ?1"))?
        .query_row([task.to_string()], task_row)
        .optional()?)
}

/// Visits, orders and tasks of an account, newest first.
pub(crate) fn timeline(
    conn: &Connection,
    account: AccountId,
    limit: usize,
) -> Result<Vec<TimelineItem>> {
    let mut items: Vec<TimelineItem> = visits_of(conn, account)?
        .into_iter()
        .map(TimelineItem::Visit)
        .collect();
    items.extend(
        orders_of(conn, account)?
            .into_iter()
            .map(TimelineItem::Order),
    );
    items.extend(
        tasks_of_account(conn, account)?
            .into_iter()
            .map(TimelineItem::Task),
    );
    items.sort_by_key(|i| std::cmp::Reverse(i.at()));
    items.truncate(limit);
    Ok(items)
}

/// Active products whose name, SKU or category contains `query` (all when empty).
pub(crate) fn products(conn: &Connection, query: &str, limit: u32) -> Result<Vec<ProductItem>> {
    let pattern = format!(
        "%{}%",
        query
            .trim()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let mut stmt = conn.prepare_cached(
        "SELECT id, sku, name, category, unit, base_price_minor, tax_class, active, tax_bp FROM products
         WHERE active = 1 AND (name LIKE ?1 ESCAPE '\\' OR sku LIKE ?1 ESCAPE '\\' OR category LIKE ?1 ESCAPE '\\')
         ORDER BY name COLLATE NOCASE, id LIMIT ?2",
    )?;
    collect(stmt.query_map(params![pattern, limit], |r| {
        Ok(ProductItem {
            product: Product {
                id: parsed(r, 0, ProductId::parse)?,
                sku: r.get(1)?,
                name: r.get(2)?,
                category: r.get(3)?,
                unit: r.get(4)?,
                base_price_minor: r.get(5)?,
                tax_class: r.get(6)?,
                active: r.get(7)?,
            },
            tax_bp: r.get(8)?,
        })
    })?)
}

/// A user's preferences (defaults when they have set none).
pub(crate) fn preferences(conn: &Connection, user: UserId) -> Result<Preferences> {
    Ok(conn
        .prepare_cached(
            "SELECT language, currency, visit_reminder_minutes FROM preferences WHERE user_id = ?1",
        )?
        .query_row([user.to_string()], |r| {
            Ok(Preferences {
                language: parsed_opt(r, 0, Language::parse)?,
                currency: parsed_opt(r, 1, Currency::parse)?,
                visit_reminder_minutes: r.get(2)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}

pub(crate) fn parked(conn: &Connection) -> Result<Vec<ParkedWrite>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, doc_id, edit, reason_code, reason, review_id, created_at FROM outbox WHERE status = 'parked' ORDER BY id",
    )?;
    collect(stmt.query_map([], |r| {
        Ok(ParkedWrite {
            id: r.get(0)?,
            doc: parsed(r, 1, DocId::parse)?,
            action: parsed_opt(r, 2, |e| {
                serde_json::from_str::<fieldline_protocol::ops::Edit>(e).map(|e| e.action)
            })?,
            code: r.get(3)?,
            reason: r.get(4)?,
            review_id: r.get(5)?,
            created_at: r.get(6)?,
        })
    })?)
}

pub(crate) fn pending_count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM outbox WHERE status = 'pending'",
        [],
        |r| r.get(0),
    )?)
}
