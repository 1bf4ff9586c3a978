//! [`Replica`]: the rep's offline data, as one object for the app.
//!
//! Every method here is a thin translation of a method of
//! [`fieldline_client_core::Replica`]: parse the arguments (IDs, currencies, quantities),
//! call the core, convert the result. No rule lives here: the core judges every edit with
//! the same rule engine the server runs.
//!
//! The non-async methods are quick local SQLite work (an edit is one transaction, a query
//! one indexed statement) and may be called from the UI thread; calls are serialised
//! inside the core. Network work is in [`crate::sync`] and is `async`.

use std::sync::{Arc, Mutex};

use fieldline_client_core as core;
use fieldline_protocol::ids::{AccountId, OrderId, VisitId};

use crate::ApiError;
use crate::listener::{ChangeListener, call_quietly};
use crate::sync::Connection;
use crate::types::*;

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// A rep's replica: every account they may read, their tasks and the catalog, in one
/// SQLite file. Edits are applied and stored locally before the call returns, so the app
/// works offline; `sync` exchanges them with the server.
///
/// One file per user: open it once and keep the object for the app's lifetime (it is safe
/// to use from any thread). Release it when done: Kotlin `close()` or `use {}`; Swift and
/// Python free it when the last reference goes.
#[derive(uniffi::Object)]
pub struct Replica {
    pub(crate) core: Arc<core::Replica>,
    /// The sync client, reused between syncs (see `crate::sync`).
    pub(crate) connection: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").finish_non_exhaustive()
    }
}

/// Parses the two IDs that name an order.
fn order_ids(account_id: &str, order_id: &str) -> Result<(AccountId, OrderId)> {
    Ok((parse_account(account_id)?, parse_order(order_id)?))
}

#[uniffi::export]
impl Replica {
    /// Opens (or creates) the replica file at `path`. Loads no document; migrates a file
    /// written by an older app version. A file written by a newer version is
    /// `ApiError.Storage`.
    #[uniffi::constructor]
    pub fn open(path: String) -> Result<Arc<Self>> {
        if path.trim().is_empty() {
            return Err(ApiError::InvalidInput {
                message: "path must name the replica file".into(),
            });
        }
        Ok(Arc::new(Replica {
            core: Arc::new(core::Replica::open(&path)?),
            connection: Mutex::new(None),
        }))
    }

    // ---- identity ---------------------------------------------------------------------

    /// This installation's device ID (a UUID string, stable for the file's lifetime).
    pub fn device_id(&self) -> String {
        self.core.device_id().to_string()
    }

    /// Who uses this replica, as the server said at the last sync; `None` before the first
    /// sync (edits then fail with `ApiError.NotSignedIn`).
    pub fn signed_in_user(&self) -> Option<SignedInUser> {
        self.core.identity().map(Into::into)
    }

    /// Registers the listener told what changed after every committed edit and every sync
    /// (replacing any earlier one; `None` removes it). It is called on the thread that made
    /// the change, after the replica's lock is released: it may query the replica.
    pub fn set_change_listener(&self, listener: Option<Arc<dyn ChangeListener>>) {
        self.core.set_listener(listener.map(|l| {
            Arc::new(move |changes: &core::ChangeSet| {
                let changes = ChangeSet::from(changes);
                call_quietly(|| l.on_change(changes));
            }) as core::Listener
        }));
    }

    // ---- accounts ---------------------------------------------------------------------

    /// Creates an account owned by the signed-in user in their first team; returns its ID.
    pub fn create_account(
        &self,
        input: AccountInput,
        visibility: Visibility,
        notes: String,
        tags: Vec<String>,
    ) -> Result<String> {
        let id = self
            .core
            .create_account(&input.to_core()?, visibility.into(), &notes, &tags)?;
        Ok(id.to_string())
    }

    /// Saves the account form: only the fields that differ from the stored account are
    /// written.
    pub fn update_account(&self, account_id: String, input: AccountInput) -> Result<()> {
        Ok(self
            .core
            .update_account(parse_account(&account_id)?, &input.to_core()?)?)
    }

    /// Turns a lead into a customer.
    pub fn convert_lead(&self, account_id: String) -> Result<()> {
        Ok(self.core.convert_lead(parse_account(&account_id)?)?)
    }

    /// Moves the account's status along its lifecycle (lead → customer / inactive,
    /// customer ⇄ inactive); anything else is `ApiError.Conflict`.
    pub fn set_account_status(&self, account_id: String, status: AccountStatus) -> Result<()> {
        Ok(self
            .core
            .set_account_status(parse_account(&account_id)?, status.into())?)
    }

    /// Replaces the account notes (merged character by character with concurrent edits).
    pub fn edit_account_notes(&self, account_id: String, notes: String) -> Result<()> {
        Ok(self
            .core
            .edit_account_notes(parse_account(&account_id)?, &notes)?)
    }

    /// Adds (`present = true`) or removes a tag.
    pub fn set_tag(&self, account_id: String, tag: String, present: bool) -> Result<()> {
        Ok(self
            .core
            .set_tag(parse_account(&account_id)?, &tag, present)?)
    }

    // ---- contacts ---------------------------------------------------------------------

    /// Adds a contact person to the account; returns its ID.
    pub fn add_contact(&self, account_id: String, input: ContactInput) -> Result<String> {
        let id = self
            .core
            .add_contact(parse_account(&account_id)?, &(&input).into())?;
        Ok(id.to_string())
    }

    /// Saves the contact form (only changed fields are written).
    pub fn update_contact(
        &self,
        account_id: String,
        contact_id: String,
        input: ContactInput,
    ) -> Result<()> {
        Ok(self.core.update_contact(
            parse_account(&account_id)?,
            parse_contact(&contact_id)?,
            &(&input).into(),
        )?)
    }

    /// Marks the contact deleted (records are never erased).
    pub fn delete_contact(&self, account_id: String, contact_id: String) -> Result<()> {
        Ok(self
            .core
            .delete_contact(parse_account(&account_id)?, parse_contact(&contact_id)?)?)
    }

    // ---- visits -----------------------------------------------------------------------

    /// Plans a visit at `planned_at` (ms); returns its ID.
    pub fn plan_visit(
        &self,
        account_id: String,
        planned_at: i64,
        purpose: Option<String>,
    ) -> Result<String> {
        let id =
            self.core
                .plan_visit(parse_account(&account_id)?, planned_at, purpose.as_deref())?;
        Ok(id.to_string())
    }

    /// Checks in to a planned visit now. The location is recorded only if given.
    pub fn check_in(
        &self,
        account_id: String,
        visit_id: String,
        location: Option<GeoPoint>,
    ) -> Result<()> {
        Ok(self.core.check_in(
            parse_account(&account_id)?,
            parse_visit(&visit_id)?,
            location.map(Into::into),
        )?)
    }

    /// Completes a visit now (a planned one is checked in at the same moment), with its
    /// report; with `follow_up`, also creates that task in the user's list and returns the
    /// task's ID.
    pub fn complete_visit(
        &self,
        account_id: String,
        visit_id: String,
        location: Option<GeoPoint>,
        report: VisitReport,
        follow_up: Option<FollowUp>,
    ) -> Result<Option<String>> {
        let follow_up = follow_up.as_ref().map(core::FollowUp::from);
        let task = self.core.complete_visit(
            parse_account(&account_id)?,
            parse_visit(&visit_id)?,
            location.map(Into::into),
            &(&report).into(),
            follow_up.as_ref(),
        )?;
        Ok(task.map(|t| t.to_string()))
    }

    /// Logs a visit that just happened, in one step; returns its ID.
    pub fn log_visit(
        &self,
        account_id: String,
        location: Option<GeoPoint>,
        purpose: Option<String>,
        report: VisitReport,
    ) -> Result<String> {
        let id = self.core.log_visit(
            parse_account(&account_id)?,
            location.map(Into::into),
            purpose.as_deref(),
            &(&report).into(),
        )?;
        Ok(id.to_string())
    }

    /// Cancels a planned or started visit.
    pub fn cancel_visit(
        &self,
        account_id: String,
        visit_id: String,
        reason: Option<String>,
    ) -> Result<()> {
        Ok(self.core.cancel_visit(
            parse_account(&account_id)?,
            parse_visit(&visit_id)?,
            reason.as_deref(),
        )?)
    }

    /// Moves a planned visit to another time (and optionally another purpose).
    pub fn reschedule_visit(
        &self,
        account_id: String,
        visit_id: String,
        planned_at: i64,
        purpose: Option<String>,
    ) -> Result<()> {
        Ok(self.core.reschedule_visit(
            parse_account(&account_id)?,
            parse_visit(&visit_id)?,
            planned_at,
            purpose.as_deref(),
        )?)
    }

    /// Replaces the visit notes (editable even after the visit is completed).
    pub fn edit_visit_notes(
        &self,
        account_id: String,
        visit_id: String,
        notes: String,
    ) -> Result<()> {
        Ok(self.core.edit_visit_notes(
            parse_account(&account_id)?,
            parse_visit(&visit_id)?,
            &notes,
        )?)
    }

    // ---- orders -----------------------------------------------------------------------

    /// Starts a draft order in the account's currency (or `currency`), priced from the
    /// account's price list, optionally linked to the visit where it is taken; returns its
    /// ID.
    pub fn create_order(
        &self,
        account_id: String,
        currency: Option<String>,
        visit_id: Option<String>,
    ) -> Result<String> {
        let currency = currency.as_deref().map(parse_currency).transpose()?;
        let visit = parse_opt_id(visit_id.as_deref(), "visit_id", VisitId::parse)?;
        let id = self
            .core
            .create_order(parse_account(&account_id)?, currency, visit)?;
        Ok(id.to_string())
    }

    /// The price the catalog gives now for `quantity` (a decimal string) of a product on an
    /// order. `ApiError.NoCatalog` before the catalog has been synced.
    pub fn quote(
        &self,
        account_id: String,
        order_id: String,
        product_id: String,
        quantity: String,
    ) -> Result<Quote> {
        let (account, order) = order_ids(&account_id, &order_id)?;
        let quantity = parse_quantity(&quantity)?;
        let quote = self
            .core
            .quote(account, order, parse_product(&product_id)?, quantity)?;
        let currency = self
            .core
            .order(order)?
            .map(|d| d.order.currency)
            .ok_or_else(|| ApiError::NotFound {
                message: format!("order {order} does not exist"),
            })?;
        Quote::new(quote, currency, quantity)
    }

    /// Adds `quantity` (a decimal string, e.g. `"2.5"`) of a product to a draft order, with
    /// a discount in basis points; code, name, price and tax are copied from the catalog.
    /// Returns the line's ID.
    pub fn add_order_line(
        &self,
        account_id: String,
        order_id: String,
        product_id: String,
        quantity: String,
        discount_bp: i64,
    ) -> Result<String> {
        let (account, order) = order_ids(&account_id, &order_id)?;
        let id = self.core.add_order_line(
            account,
            order,
            parse_product(&product_id)?,
            parse_quantity(&quantity)?,
            discount_bp,
        )?;
        Ok(id.to_string())
    }

    /// Changes a line's quantity and discount. Only drafts can change: a submitted order
    /// is `ApiError.Conflict`.
    pub fn update_order_line(
        &self,
        account_id: String,
        order_id: String,
        line_id: String,
        quantity: String,
        discount_bp: i64,
    ) -> Result<()> {
        let (account, order) = order_ids(&account_id, &order_id)?;
        Ok(self.core.update_order_line(
            account,
            order,
            parse_line(&line_id)?,
            parse_quantity(&quantity)?,
            discount_bp,
        )?)
    }

    /// Removes a line from a draft order (it stays in the history, marked deleted).
    pub fn remove_order_line(
        &self,
        account_id: String,
        order_id: String,
        line_id: String,
    ) -> Result<()> {
        let (account, order) = order_ids(&account_id, &order_id)?;
        Ok(self
            .core
            .remove_order_line(account, order, parse_line(&line_id)?)?)
    }

    /// Sets (or with `None` clears) the order notes of a draft.
    pub fn set_order_notes(
        &self,
        account_id: String,
        order_id: String,
        notes: Option<String>,
    ) -> Result<()> {
        let (account, order) = order_ids(&account_id, &order_id)?;
        Ok(self
            .core
            .set_order_notes(account, order, notes.as_deref())?)
    }

    /// Submits a draft order (it needs at least one line) to the back office; it is
    /// read-only afterwards.
    pub fn submit_order(&self, account_id: String, order_id: String) -> Result<()> {
        let (account, order) = order_ids(&account_id, &order_id)?;
        Ok(self.core.submit_order(account, order)?)
    }

    /// Discards a draft order (only drafts can be discarded).
    pub fn discard_order(&self, account_id: String, order_id: String) -> Result<()> {
        let (account, order) = order_ids(&account_id, &order_id)?;
        Ok(self.core.discard_order(account, order)?)
    }

    // ---- tasks and preferences --------------------------------------------------------

    /// Creates a task in the signed-in user's list; returns its ID.
    pub fn create_task(&self, input: TaskInput) -> Result<String> {
        Ok(self.core.create_task(&input.to_core()?)?.to_string())
    }

    /// Creates a task in a rep's list (a manager assigning a follow-up to a member of a
    /// team they manage); returns its ID.
    pub fn create_task_for(&self, user_id: String, input: TaskInput) -> Result<String> {
        Ok(self
            .core
            .create_task_for(parse_user(&user_id)?, &input.to_core()?)?
            .to_string())
    }

    /// Saves the task form (only changed fields are written).
    pub fn update_task(&self, task_id: String, input: TaskInput) -> Result<()> {
        Ok(self
            .core
            .update_task(parse_task(&task_id)?, &input.to_core()?)?)
    }

    /// Ticks a task off (or reopens it).
    pub fn set_task_done(&self, task_id: String, done: bool) -> Result<()> {
        Ok(self.core.set_task_done(parse_task(&task_id)?, done)?)
    }

    /// Marks a task deleted.
    pub fn delete_task(&self, task_id: String) -> Result<()> {
        Ok(self.core.delete_task(parse_task(&task_id)?)?)
    }

    /// The signed-in user's preferences (defaults until they set some).
    pub fn preferences(&self) -> Result<Preferences> {
        Ok(self.core.preferences()?.into())
    }

    /// Saves the user's preferences.
    pub fn set_preferences(&self, preferences: Preferences) -> Result<()> {
        Ok(self.core.set_preferences(&preferences.to_core()?)?)
    }

    // ---- queries ----------------------------------------------------------------------

    /// One account with everything the detail screen shows, or `None`.
    pub fn account(&self, account_id: String) -> Result<Option<Account>> {
        Ok(self
            .core
            .account(parse_account(&account_id)?)?
            .map(Into::into))
    }

    /// Accounts sorted by name (case-insensitive), a page at a time.
    pub fn accounts_by_name(&self, limit: u32, offset: u32) -> Result<Vec<AccountSummary>> {
        Ok(convert(self.core.accounts_by_name(limit, offset)?))
    }

    /// Accounts with a planned visit, soonest first.
    pub fn accounts_by_next_visit(&self, limit: u32) -> Result<Vec<AccountSummary>> {
        Ok(convert(self.core.accounts_by_next_visit(limit)?))
    }

    /// Full-text search over account names, cities and contact names (Chinese and Latin
    /// script), best match first.
    pub fn search_accounts(&self, query: String, limit: u32) -> Result<Vec<AccountSummary>> {
        Ok(convert(self.core.search_accounts(&query, limit)?))
    }

    /// How many accounts are on this device.
    pub fn account_count(&self) -> Result<i64> {
        Ok(self.core.account_count()?)
    }

    /// The account's contacts (not deleted), the primary one first.
    pub fn contacts(&self, account_id: String) -> Result<Vec<Contact>> {
        Ok(convert(self.core.contacts(parse_account(&account_id)?)?))
    }

    /// The account's visits, newest first.
    pub fn visits(&self, account_id: String) -> Result<Vec<Visit>> {
        Ok(convert(self.core.visits(parse_account(&account_id)?)?))
    }

    /// One visit, or `None`.
    pub fn visit(&self, visit_id: String) -> Result<Option<Visit>> {
        Ok(self.core.visit(parse_visit(&visit_id)?)?.map(Into::into))
    }

    /// The next planned (or started) visits from `from` (ms) on, soonest first.
    pub fn upcoming_visits(&self, from: i64, limit: u32) -> Result<Vec<VisitItem>> {
        Ok(convert(self.core.upcoming_visits(from, limit)?))
    }

    /// A day's agenda: visits planned or made in `[from, to)` (ms), in time order.
    pub fn visits_between(&self, from: i64, to: i64) -> Result<Vec<VisitItem>> {
        Ok(convert(self.core.visits_between(from, to)?))
    }

    /// The account's visits, orders and tasks, newest first.
    pub fn timeline(&self, account_id: String, limit: u32) -> Result<Vec<TimelineItem>> {
        Ok(convert(
            self.core
                .timeline(parse_account(&account_id)?, limit as usize)?,
        ))
    }

    /// The account's orders (not discarded), newest first.
    pub fn orders(&self, account_id: String) -> Result<Vec<OrderSummary>> {
        Ok(convert(self.core.orders(parse_account(&account_id)?)?))
    }

    /// Orders in one status across all accounts, newest first (`Draft`: the orders still
    /// to finish).
    pub fn orders_with_status(&self, status: OrderStatus, limit: u32) -> Result<Vec<OrderSummary>> {
        Ok(convert(self.core.orders_with_status(status.into(), limit)?))
    }

    /// One order with its lines and totals, or `None`.
    pub fn order(&self, order_id: String) -> Result<Option<OrderDetail>> {
        self.core
            .order(parse_order(&order_id)?)?
            .map(OrderDetail::try_from)
            .transpose()
    }

    /// The signed-in user's tasks: open ones only or all, due before a time or any, soonest
    /// due first.
    pub fn tasks(
        &self,
        open_only: bool,
        due_before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<TaskItem>> {
        Ok(convert(self.core.tasks(open_only, due_before, limit)?))
    }

    /// One task, or `None`.
    pub fn task(&self, task_id: String) -> Result<Option<TaskItem>> {
        Ok(self.core.task(parse_task(&task_id)?)?.map(Into::into))
    }

    /// Active products whose name, SKU or category contains `query` (all when empty), by
    /// name.
    pub fn products(&self, query: String, limit: u32) -> Result<Vec<ProductItem>> {
        Ok(convert(self.core.products(&query, limit)?))
    }

    /// Writes the server refused and parked for a manager's review, still kept here.
    pub fn parked_writes(&self) -> Result<Vec<ParkedWrite>> {
        Ok(convert(self.core.parked_writes()?))
    }

    /// How many changes made here the server has not acknowledged yet (0 = all synced).
    pub fn pending_changes(&self) -> Result<i64> {
        Ok(self.core.pending_changes()?)
    }
}

fn convert<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(U::from).collect()
}
