//! The SQL projection: the documents' records as plain tables that screens query.
//!
//! Every write and every received change re-projects exactly the records the validator
//! reported as touched, in the same SQLite transaction as the change itself, so the
//! projection can never disagree with the documents after a crash. It holds nothing that
//! is not derived: [`rebuild_all`] recreates it from the documents at any time.

use std::collections::BTreeSet;

use automerge::Automerge;
use fieldline_protocol::doc::{Catalog, Reader};
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::line_totals;
use fieldline_protocol::schema::RecordPath;
use rusqlite::{Connection, params};

use crate::docs::DocStore;
use crate::search::index_text;
use crate::{ChangeSet, Error, Result};

/// Re-projects the records an edit or a received change touched.
pub(crate) fn project_records(
    conn: &Connection,
    doc_id: DocId,
    doc: &Automerge,
    touched: &BTreeSet<RecordPath>,
    changes: &mut ChangeSet,
) -> Result<()> {
    let r = Reader::new(doc);
    match doc_id {
        DocId::Account(account) => {
            let mut search = false;
            let mut visits = false;
            let mut orders = BTreeSet::new();
            for rp in touched {
                match rp {
                    RecordPath::Account | RecordPath::AccountTags => {
                        if let Some(a) = r.account()? {
                            upsert_account(conn, &a)?;
                        }
                        search = true;
                    }
                    RecordPath::Contact(id) => {
                        if let Some(c) = r.contact(account, *id)? {
                            upsert_contact(conn, &c)?;
                        }
                        search = true;
                    }
                    RecordPath::Visit(id) => {
                        if let Some(v) = r.visit(account, *id)? {
                            upsert_visit(conn, &v)?;
                        }
                        visits = true;
                    }
                    RecordPath::Order(id) | RecordPath::OrderLine(id, _) => {
                        orders.insert(*id);
                    }
                    _ => {}
                }
            }
            for id in orders {
                if let Some(o) = r.order(account, id)? {
                    upsert_order(conn, &o)?;
                }
            }
            if visits {
                refresh_visit_dates(conn, account)?;
            }
            if search {
                refresh_search(conn, account)?;
            }
            changes.accounts.insert(account);
        }
        DocId::User(user) => {
            for rp in touched {
                match rp {
                    RecordPath::Task(id) => {
                        if let Some(t) = r.task(*id)? {
                            upsert_task(conn, user, &t)?;
                        }
                    }
                    RecordPath::Preferences => upsert_preferences(conn, user, &r.preferences()?)?,
                    _ => {}
                }
            }
            changes.tasks = true;
        }
        DocId::Catalog => {
            project_catalog(conn, &r.catalog()?)?;
            changes.catalog = true;
        }
    }
    Ok(())
}

/// Re-projects a whole document (received whole, rebased, or during a rebuild).
pub(crate) fn project_doc(
    conn: &Connection,
    doc_id: DocId,
    doc: &Automerge,
    changes: &mut ChangeSet,
) -> Result<()> {
    delete_doc_rows(conn, doc_id)?;
    let r = Reader::new(doc);
    match doc_id {
        DocId::Account(account) => {
            let Some(a) = r.account()? else {
                // A skeleton without an account yet (its creation was refused): nothing to show.
                return Ok(());
            };
            upsert_account(conn, &a)?;
            for c in r.contacts(account)? {
                upsert_contact(conn, &c)?;
            }
            for v in r.visits(account)? {
                upsert_visit(conn, &v)?;
            }
            for o in r.orders(account)? {
                upsert_order(conn, &o)?;
            }
            refresh_visit_dates(conn, account)?;
            refresh_search(conn, account)?;
            changes.accounts.insert(account);
        }
        DocId::User(user) => {
            for t in r.tasks()? {
                upsert_task(conn, user, &t)?;
            }
            upsert_preferences(conn, user, &r.preferences()?)?;
            changes.tasks = true;
        }
        DocId::Catalog => {
            project_catalog(conn, &r.catalog()?)?;
            changes.catalog = true;
        }
    }
    Ok(())
}

/// Removes every projected row that came from a document.
pub(crate) fn delete_doc_rows(conn: &Connection, doc_id: DocId) -> Result<()> {
    match doc_id {
        DocId::Account(account) => {
            let id = account.to_string();
            let rowid: Option<i64> = {
                use rusqlite::OptionalExtension;
                conn.query_row("SELECT rowid FROM accounts WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()?
            };
            if let Some(rowid) = rowid {
                conn.execute("DELETE FROM account_search WHERE rowid = ?1", [rowid])?;
            }
            for table in ["order_lines", "orders", "visits", "contacts"] {
                conn.execute(&format!("DELETE FROM {table} WHERE account_id = ?1"), [&id])?;
            }
            conn.execute("DELETE FROM accounts WHERE id = ?1", [&id])?;
        }
        DocId::User(user) => {
            conn.execute("DELETE FROM tasks WHERE user_id = ?1", [user.to_string()])?;
            conn.execute(
                "DELETE FROM preferences WHERE user_id = ?1",
                [user.to_string()],
            )?;
        }
        DocId::Catalog => {
            conn.execute_batch(
                "DELETE FROM products; DELETE FROM price_lists; DELETE FROM price_list_items;",
            )?;
        }
    }
    Ok(())
}

/// Drops the whole projection and recreates it from the documents, reporting progress.
pub(crate) fn rebuild_all(
    conn: &Connection,
    docs: &DocStore,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM account_search; DELETE FROM accounts; DELETE FROM contacts; DELETE FROM visits;
         DELETE FROM orders; DELETE FROM order_lines; DELETE FROM tasks; DELETE FROM preferences;
         DELETE FROM products; DELETE FROM price_lists; DELETE FROM price_list_items;",
    )?;
    let ids = DocStore::all_ids(conn)?;
    let mut ignored = ChangeSet::default();
    for (i, id) in ids.iter().enumerate() {
        if let Some(doc) = docs.load(conn, *id)? {
            project_doc(conn, *id, &doc, &mut ignored)?;
        }
        progress(i + 1, ids.len());
    }
    Ok(())
}

fn opt_id<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|x| x.to_string())
}

fn upsert_account(conn: &Connection, a: &Account) -> Result<()> {
    let tags = serde_json::to_string(&a.tags)?;
    conn.prepare_cached(
        "INSERT INTO accounts (id, name, status, erp_code, street, city, region, postal_code, country,
            lat, lon, phone, email, tags, notes, owner, team, visibility, payment_terms, price_list_id,
            currency, tier, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, status = excluded.status,
            erp_code = excluded.erp_code, street = excluded.street, city = excluded.city,
            region = excluded.region, postal_code = excluded.postal_code, country = excluded.country,
            lat = excluded.lat, lon = excluded.lon, phone = excluded.phone, email = excluded.email,
            tags = excluded.tags, notes = excluded.notes, owner = excluded.owner, team = excluded.team,
            visibility = excluded.visibility, payment_terms = excluded.payment_terms,
            price_list_id = excluded.price_list_id, currency = excluded.currency, tier = excluded.tier,
            created_at = excluded.created_at, created_by = excluded.created_by",
    )?
    .execute(params![
        a.id.to_string(),
        a.name,
        a.status.as_str(),
        a.erp_code,
        a.address.street,
        a.address.city,
        a.address.region,
        a.address.postal_code,
        a.address.country,
        a.location.map(|g| g.lat),
        a.location.map(|g| g.lon),
        a.phone,
        a.email,
        tags,
        a.notes,
        a.acl.owner.to_string(),
        a.acl.team.to_string(),
        a.acl.visibility.as_str(),
        a.payment_terms,
        opt_id(a.price_list_id),
        a.currency.code(),
        a.tier.map(Tier::as_str),
        a.created_at,
        a.created_by.to_string(),
    ])?;
    Ok(())
}

fn upsert_contact(conn: &Connection, c: &Contact) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO contacts (id, account_id, name, title, phone, email, is_primary, deleted, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        c.id.to_string(),
        c.account_id.to_string(),
        c.name,
        c.title,
        c.phone,
        c.email,
        c.primary,
        c.deleted,
        c.created_at,
        c.created_by.to_string()
    ])?;
    Ok(())
}

fn upsert_visit(conn: &Connection, v: &Visit) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO visits (id, account_id, status, planned_at, checked_in_at, checked_out_at,
            check_in_lat, check_in_lon, check_out_lat, check_out_lon, purpose, notes, outcome, next_step,
            cancel_reason, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        v.id.to_string(),
        v.account_id.to_string(),
        v.status.as_str(),
        v.planned_at,
        v.checked_in_at,
        v.checked_out_at,
        v.check_in_location.map(|g| g.lat),
        v.check_in_location.map(|g| g.lon),
        v.check_out_location.map(|g| g.lat),
        v.check_out_location.map(|g| g.lon),
        v.purpose,
        v.notes,
        v.outcome,
        v.next_step,
        v.cancel_reason,
        v.created_at,
        v.created_by.to_string(),
    ])?;
    Ok(())
}

fn upsert_order(conn: &Connection, o: &Order) -> Result<()> {
    let totals = o.totals().map_err(Error::Rule)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO orders (id, account_id, status, currency, price_list_id, visit_id, notes,
            net_minor, tax_minor, gross_minor, line_count, submitted_at, decided_at, erp_ref, reject_reason,
            deleted, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        o.id.to_string(),
        o.account_id.to_string(),
        o.status.as_str(),
        o.currency.code(),
        opt_id(o.price_list_id),
        opt_id(o.visit_id),
        o.notes,
        totals.net_minor,
        totals.tax_minor,
        totals.gross_minor,
        o.live_lines().count() as i64,
        o.submitted_at,
        o.decided_at,
        o.erp_ref,
        o.reject_reason,
        o.deleted,
        o.created_at,
        o.created_by.to_string(),
    ])?;
    let mut line_stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO order_lines (id, order_id, account_id, product_id, product_code, product_name,
            unit, unit_price_minor, quantity_milli, discount_bp, tax_bp, net_minor, tax_minor, deleted,
            created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    for l in &o.lines {
        let t = line_totals(&l.pricing()).map_err(Error::Rule)?;
        line_stmt.execute(params![
            l.id.to_string(),
            o.id.to_string(),
            o.account_id.to_string(),
            l.product_id.to_string(),
            l.product_code,
            l.product_name,
            l.unit,
            l.unit_price_minor,
            l.quantity.milli(),
            l.discount_bp,
            l.tax_bp,
            t.net_minor,
            t.tax_minor,
            l.deleted,
            l.created_at,
            l.created_by.to_string(),
        ])?;
    }
    Ok(())
}

fn upsert_task(conn: &Connection, user: UserId, t: &Task) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO tasks (id, user_id, title, due_at, done, done_at, account_id, visit_id, assignee,
            notes, deleted, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        t.id.to_string(),
        user.to_string(),
        t.title,
        t.due_at,
        t.done,
        t.done_at,
        opt_id(t.account_id),
        opt_id(t.visit_id),
        t.assignee.to_string(),
        t.notes,
        t.deleted,
        t.created_at,
        t.created_by.to_string(),
    ])?;
    Ok(())
}

fn upsert_preferences(conn: &Connection, user: UserId, p: &Preferences) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO preferences (user_id, language, currency, visit_reminder_minutes) VALUES (?1, ?2, ?3, ?4)",
        params![user.to_string(), p.language.map(Language::as_str), p.currency.map(|c| c.code().to_owned()), p.visit_reminder_minutes],
    )?;
    Ok(())
}

fn project_catalog(conn: &Connection, c: &Catalog) -> Result<()> {
    delete_doc_rows(conn, DocId::Catalog)?;
    let mut p = conn.prepare_cached(
        "INSERT INTO products (id, sku, name, category, unit, base_price_minor, tax_class, tax_bp, active)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for prod in c.products.values() {
        let tax = c.tax_classes.get(&prod.tax_class).map(|t| t.rate_bp);
        p.execute(params![
            prod.id.to_string(),
            prod.sku,
            prod.name,
            prod.category,
            prod.unit,
            prod.base_price_minor,
            prod.tax_class,
            tax,
            prod.active
        ])?;
    }
    let mut l = conn.prepare_cached(
        "INSERT INTO price_lists (id, name, currency, active) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut i = conn.prepare_cached(
        "INSERT INTO price_list_items (id, price_list_id, product_id, price_minor, min_qty_milli, valid_from, valid_to, deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for list in c.price_lists.values() {
        l.execute(params![
            list.id.to_string(),
            list.name,
            list.currency.code(),
            list.active
        ])?;
        for item in &list.items {
            i.execute(params![
                item.id.to_string(),
                list.id.to_string(),
                item.product_id.to_string(),
                item.price_minor,
                item.min_qty.map(|q| q.milli()),
                item.valid_from,
                item.valid_to,
                item.deleted
            ])?;
        }
    }
    Ok(())
}

/// Next planned and last completed visit of an account, derived from its visits.
fn refresh_visit_dates(conn: &Connection, account: AccountId) -> Result<()> {
    conn.prepare_cached(
        "UPDATE accounts SET
            next_visit_at = (SELECT MIN(planned_at) FROM visits WHERE account_id = ?1 AND status IN ('planned', 'in_progress')),
            last_visit_at = (SELECT MAX(COALESCE(checked_out_at, checked_in_at)) FROM visits WHERE account_id = ?1 AND status = 'completed')
         WHERE id = ?1",
    )?
    .execute([account.to_string()])?;
    Ok(())
}

/// Rewrites the account's full-text entry: name, city and the names of its live contacts.
fn refresh_search(conn: &Connection, account: AccountId) -> Result<()> {
    use rusqlite::OptionalExtension;
    let id = account.to_string();
    let row: Option<(i64, String, Option<String>)> = conn
        .prepare_cached("SELECT rowid, name, city FROM accounts WHERE id = ?1")?
        .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((rowid, name, city)) = row else {
        return Ok(());
    };
    let contacts: Vec<String> = conn
        .prepare_cached("SELECT name FROM contacts WHERE account_id = ?1 AND deleted = 0")?
        .query_map([&id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    conn.prepare_cached("DELETE FROM account_search WHERE rowid = ?1")?
        .execute([rowid])?;
    conn.prepare_cached(
        "INSERT INTO account_search (rowid, name, city, contacts) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        rowid,
        index_text(&name),
        index_text(city.as_deref().unwrap_or("")),
        index_text(&contacts.join(" ")),
    ])?;
    Ok(())
}
