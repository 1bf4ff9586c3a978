//! [`Replica`]: a rep's offline copy of their accounts, tasks and the catalog, in one file.
//!
//! Every edit goes through one pipeline ([`Inner::write`]):
//!
//! 1. apply the [`Edit`] to the cached automerge document in one automerge transaction;
//! 2. judge the resulting change with the protocol's validator — the same code the server
//!    runs — as the signed-in user;
//! 3. in one SQLite transaction: append the change, put it in the outbox (with the edit, for
//!    replay after a refusal) and re-project the records it touched; commit (fsync).
//!
//! If any step fails nothing is written and the cached document is dropped (the file is the
//! truth), so the caller sees a clear error and the replica is exactly as before.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::{ActorId, Automerge, ChangeHash, Patch, PatchLog, transaction::CommitOptions};
use fieldline_protocol::access::Principal;
use fieldline_protocol::doc::{Catalog, Quote, Reader};
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::{Currency, Quantity};
use fieldline_protocol::ops::{
    self, AccountInput, Applied, ContactInput, Edit, TaskInput, VisitReport,
};
use fieldline_protocol::validate::{Authority, WriteContext, validate_patches};
use fieldline_protocol::wire::Identity;
use rusqlite::{Connection, TransactionBehavior, params};

use crate::docs::DocStore;
use crate::queries::{
    self, AccountSummary, OrderDetail, OrderSummary, ParkedWrite, ProductItem, TimelineItem,
    VisitItem,
};
use crate::{ChangeSet, Error, Result, projection, store};

/// Source of "now", in milliseconds since the Unix epoch. Tests inject a fixed clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Called after every committed change with what changed (never while the replica is locked,
/// so a listener may query the replica).
pub type Listener = Arc<dyn Fn(&ChangeSet) + Send + Sync>;

/// How to open a replica.
#[derive(Clone)]
pub struct ReplicaOptions {
    pub clock: Clock,
    /// How many documents to keep loaded.
    pub cached_documents: usize,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            clock: Arc::new(system_now),
            cached_documents: 64,
        }
    }
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A follow-up task to create when completing a visit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowUp {
    pub title: String,
    pub due_at: Option<i64>,
}

pub(crate) struct Inner {
    pub conn: Connection,
    pub docs: DocStore,
    pub device_id: DeviceId,
    pub identity: Option<Identity>,
    pub clock: Clock,
    pub peers: crate::peer::PeerStates,
    catalog: Option<(Vec<ChangeHash>, Arc<Catalog>)>,
}

/// The replica. Cheap to share across threads (`Arc<Replica>`); calls are serialised.
pub struct Replica {
    inner: Mutex<Inner>,
    listener: Mutex<Option<Listener>>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").finish_non_exhaustive()
    }
}

impl Replica {
    /// Opens (or creates) the replica in `path`. Loads no document; migrates an older file
    /// and rebuilds the projection if the migration asks for it.
    pub fn open(path: impl AsRef<Path>) -> Result<Replica> {
        Self::open_with(path, ReplicaOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: ReplicaOptions) -> Result<Replica> {
        let mut conn = store::open(path.as_ref())?;
        let rebuild = store::migrate_to(&mut conn, store::current_version())?;
        let device_id = match store::get_meta(&conn, "device_id")? {
            Some(s) => {
                DeviceId::parse(&s).map_err(|e| Error::corrupt(format!("device id: {e}")))?
            }
            None => {
                let d = DeviceId::from_uuid(uuid::Uuid::new_v4());
                store::set_meta(&conn, "device_id", &d.to_string())?;
                d
            }
        };
        let actor = match store::get_meta(&conn, "actor")? {
            Some(hex) => ActorId::from(
                decode_hex(&hex)
                    .ok_or_else(|| Error::corrupt("actor id"))?
                    .as_slice(),
            ),
            None => {
                let a = ActorId::random();
                store::set_meta(&conn, "actor", &a.to_hex_string())?;
                a
            }
        };
        let identity = store::get_meta(&conn, "identity")?
            .map(|s| serde_json::from_str(&s))
            .transpose()?;
        let docs = DocStore::new(actor, options.cached_documents);
        if rebuild {
            let tx = conn.transaction()?;
            projection::rebuild_all(&tx, &docs, &mut |_, _| {})?;
            tx.commit()?;
        }
        Ok(Replica {
            inner: Mutex::new(Inner {
                conn,
                docs,
                device_id,
                identity,
                clock: options.clock,
                peers: Default::default(),
                catalog: None,
            }),
            listener: Mutex::new(None),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back);
        // keep serving rather than poisoning every later call.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the listener told about every committed change (replacing any earlier one).
    pub fn set_listener(&self, listener: Option<Listener>) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = listener;
    }

    pub(crate) fn notify(&self, changes: &ChangeSet) {
        if changes.is_empty() {
            return;
        }
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(l) = listener {
            l(changes);
        }
    }

    pub fn device_id(&self) -> DeviceId {
        self.lock().device_id
    }

    pub fn identity(&self) -> Option<Identity> {
        self.lock().identity.clone()
    }

    /// Records who uses this replica (from sign-in; every sync refreshes it).
    pub fn set_identity(&self, identity: Identity) -> Result<()> {
        let mut inner = self.lock();
        if let Some(current) = &inner.identity
            && current.principal.user_id != identity.principal.user_id
        {
            return Err(Error::Rule(fieldline_protocol::Error::Forbidden {
                action:
                    "sign in as another user on this replica (each user has their own replica file)"
                        .into(),
            }));
        }
        store::set_meta(&inner.conn, "identity", &serde_json::to_string(&identity)?)?;
        inner.identity = Some(identity);
        Ok(())
    }

    /// Builds edits with access to the current documents, applies them, tells the listener.
    pub(crate) fn edit<T>(
        &self,
        build: impl FnOnce(&mut Inner) -> Result<(Vec<Edit>, T)>,
    ) -> Result<T> {
        let (changes, out) = {
            let mut inner = self.lock();
            let (edits, out) = build(&mut inner)?;
            (inner.write(&edits)?, out)
        };
        self.notify(&changes);
        Ok(out)
    }

    // ---- accounts -------------------------------------------------------------------------

    /// Creates an account owned by the signed-in user in their (first) team.
    pub fn create_account(
        &self,
        input: &AccountInput,
        visibility: Visibility,
        notes: &str,
        tags: &[String],
    ) -> Result<AccountId> {
        let id = AccountId::new();
        self.edit(|inner| {
            let p = inner.principal()?;
            let team = *p.teams.first().ok_or_else(|| {
                Error::Rule(fieldline_protocol::Error::Forbidden {
                    action: "create accounts without being in a team".into(),
                })
            })?;
            let acl = AccountAcl {
                owner: p.user_id,
                team,
                visibility,
            };
            Ok((vec![ops::create_account(id, acl, input, notes, tags)], id))
        })
    }

    /// Saves the account form: only fields that differ from the stored account are written.
    pub fn update_account(&self, account: AccountId, input: &AccountInput) -> Result<()> {
        self.edit(|inner| {
            let current = inner.read_account(account)?;
            Ok((
                ops::update_account(&current, input).into_iter().collect(),
                (),
            ))
        })
    }

    /// Turns a lead into a customer.
    pub fn convert_lead(&self, account: AccountId) -> Result<()> {
        self.edit(|_| Ok((vec![ops::convert_lead(account)], ())))
    }

    pub fn set_account_status(&self, account: AccountId, status: AccountStatus) -> Result<()> {
        self.edit(|_| Ok((vec![ops::set_account_status(account, status)], ())))
    }

    pub fn edit_account_notes(&self, account: AccountId, notes: &str) -> Result<()> {
        self.edit(|inner| {
            let base = inner.read_account(account)?.notes;
            Ok((vec![ops::edit_account_notes(account, &base, notes)], ()))
        })
    }

    pub fn set_tag(&self, account: AccountId, tag: &str, present: bool) -> Result<()> {
        self.edit(|_| Ok((vec![ops::set_tag(account, tag, present)], ())))
    }

    pub fn add_contact(&self, account: AccountId, input: &ContactInput) -> Result<ContactId> {
        let id = ContactId::new();
        self.edit(|_| Ok((vec![ops::add_contact(account, id, input)], id)))
    }

    pub fn update_contact(
        &self,
        account: AccountId,
        contact: ContactId,
        input: &ContactInput,
    ) -> Result<()> {
        self.edit(|inner| {
            let current = inner
                .with_doc(DocId::Account(account), |r| r.contact(account, contact))?
                .ok_or(missing("contact", contact))?;
            Ok((
                ops::update_contact(&current, input).into_iter().collect(),
                (),
            ))
        })
    }

    pub fn delete_contact(&self, account: AccountId, contact: ContactId) -> Result<()> {
        self.edit(|_| Ok((vec![ops::set_contact_deleted(account, contact, true)], ())))
    }

    // ---- visits ---------------------------------------------------------------------------

    pub fn plan_visit(
        &self,
        account: AccountId,
        planned_at: i64,
        purpose: Option<&str>,
    ) -> Result<VisitId> {
        let id = VisitId::new();
        self.edit(|_| Ok((vec![ops::plan_visit(account, id, planned_at, purpose)], id)))
    }

    /// Checks in now. The location is recorded only if the app passes one.
    pub fn check_in(
        &self,
        account: AccountId,
        visit: VisitId,
        location: Option<GeoPoint>,
    ) -> Result<()> {
        self.edit(|inner| {
            Ok((
                vec![ops::check_in(account, visit, (inner.clock)(), location)],
                (),
            ))
        })
    }

    /// Completes a visit now; optionally creates a follow-up task in the user's task list.
    pub fn complete_visit(
        &self,
        account: AccountId,
        visit: VisitId,
        location: Option<GeoPoint>,
        report: &VisitReport,
        follow_up: Option<&FollowUp>,
    ) -> Result<Option<TaskId>> {
        self.edit(|inner| {
            let now = (inner.clock)();
            let current = inner
                .with_doc(DocId::Account(account), |r| r.visit(account, visit))?
                .ok_or(missing("visit", visit))?;
            let mut edits = vec![ops::complete_visit(
                account, &current, now, location, report,
            )];
            let task = match follow_up {
                Some(f) => {
                    let user = inner.principal()?.user_id;
                    let id = TaskId::new();
                    let input = TaskInput {
                        title: f.title.clone(),
                        due_at: f.due_at,
                        account_id: Some(account),
                        visit_id: Some(visit),
                        notes: None,
                    };
                    edits.push(ops::create_task(user, id, &input));
                    Some(id)
                }
                None => None,
            };
            Ok((edits, task))
        })
    }

    /// Logs a visit that just happened, in one step.
    pub fn log_visit(
        &self,
        account: AccountId,
        location: Option<GeoPoint>,
        purpose: Option<&str>,
        report: &VisitReport,
    ) -> Result<VisitId> {
        let id = VisitId::new();
        self.edit(|inner| {
            Ok((
                vec![ops::log_visit(
                    account,
                    id,
                    (inner.clock)(),
                    location,
                    purpose,
                    report,
                )],
                id,
            ))
        })
    }

    pub fn cancel_visit(
        &self,
        account: AccountId,
        visit: VisitId,
        reason: Option<&str>,
    ) -> Result<()> {
        self.edit(|_| Ok((vec![ops::cancel_visit(account, visit, reason)], ())))
    }

    pub fn reschedule_visit(
        &self,
        account: AccountId,
        visit: VisitId,
        planned_at: i64,
        purpose: Option<&str>,
    ) -> Result<()> {
        self.edit(|inner| {
            let current = inner
                .with_doc(DocId::Account(account), |r| r.visit(account, visit))?
                .ok_or(missing("visit", visit))?;
            Ok((
                ops::reschedule_visit(&current, planned_at, purpose)
                    .into_iter()
                    .collect(),
                (),
            ))
        })
    }

    pub fn edit_visit_notes(&self, account: AccountId, visit: VisitId, notes: &str) -> Result<()> {
        self.edit(|inner| {
            let base = inner
                .with_doc(DocId::Account(account), |r| r.visit(account, visit))?
                .ok_or(missing("visit", visit))?
                .notes;
            Ok((
                vec![ops::edit_visit_notes(account, visit, &base, notes)],
                (),
            ))
        })
    }

    // ---- orders ---------------------------------------------------------------------------

    /// Starts a draft order in the account's currency (or `currency`), priced from the
    /// account's price list, optionally linked to the visit where it is taken.
    pub fn create_order(
        &self,
        account: AccountId,
        currency: Option<Currency>,
        visit: Option<VisitId>,
    ) -> Result<OrderId> {
        let id = OrderId::new();
        self.edit(|inner| {
            let a = inner.read_account(account)?;
            let currency = currency.unwrap_or(a.currency);
            Ok((
                vec![ops::create_order(
                    account,
                    id,
                    currency,
                    a.price_list_id,
                    visit,
                )],
                id,
            ))
        })
    }

    /// The price the catalog gives now for a product on an order.
    pub fn quote(
        &self,
        account: AccountId,
        order: OrderId,
        product: ProductId,
        quantity: Quantity,
    ) -> Result<Quote> {
        let mut inner = self.lock();
        inner.quote(account, order, product, quantity)
    }

    /// Adds a product to a draft order; code, name, price and tax are copied from the catalog.
    pub fn add_order_line(
        &self,
        account: AccountId,
        order: OrderId,
        product: ProductId,
        quantity: Quantity,
        discount_bp: i64,
    ) -> Result<OrderLineId> {
        let id = OrderLineId::new();
        self.edit(|inner| {
            let quote = inner.quote(account, order, product, quantity)?;
            Ok((
                vec![ops::add_order_line(
                    account,
                    order,
                    id,
                    &quote,
                    quantity,
                    discount_bp,
                )],
                id,
            ))
        })
    }

    pub fn update_order_line(
        &self,
        account: AccountId,
        order: OrderId,
        line: OrderLineId,
        quantity: Quantity,
        discount_bp: i64,
    ) -> Result<()> {
        self.edit(|_| {
            Ok((
                vec![ops::update_order_line(
                    account,
                    order,
                    line,
                    quantity,
                    discount_bp,
                )],
                (),
            ))
        })
    }

    pub fn remove_order_line(
        &self,
        account: AccountId,
        order: OrderId,
        line: OrderLineId,
    ) -> Result<()> {
        self.edit(|_| Ok((vec![ops::remove_order_line(account, order, line)], ())))
    }

    pub fn set_order_notes(
        &self,
        account: AccountId,
        order: OrderId,
        notes: Option<&str>,
    ) -> Result<()> {
        self.edit(|_| Ok((vec![ops::set_order_notes(account, order, notes)], ())))
    }

    /// Submits a draft order to the back office; it is read-only afterwards.
    pub fn submit_order(&self, account: AccountId, order: OrderId) -> Result<()> {
        self.edit(|inner| Ok((vec![ops::submit_order(account, order, (inner.clock)())], ())))
    }

    pub fn discard_order(&self, account: AccountId, order: OrderId) -> Result<()> {
        self.edit(|_| Ok((vec![ops::discard_order(account, order)], ())))
    }

    // ---- tasks and preferences ------------------------------------------------------------

    /// Creates a task in the signed-in user's list.
    pub fn create_task(&self, input: &TaskInput) -> Result<TaskId> {
        let id = TaskId::new();
        self.edit(|inner| {
            Ok((
                vec![ops::create_task(inner.principal()?.user_id, id, input)],
                id,
            ))
        })
    }

    /// Creates a task in a rep's list (managers assigning follow-ups).
    pub fn create_task_for(&self, user: UserId, input: &TaskInput) -> Result<TaskId> {
        let id = TaskId::new();
        self.edit(|_| Ok((vec![ops::create_task(user, id, input)], id)))
    }

    pub fn update_task(&self, task: TaskId, input: &TaskInput) -> Result<()> {
        self.edit(|inner| {
            let user = inner.principal()?.user_id;
            let current = inner
                .with_doc(DocId::User(user), |r| r.task(task))?
                .ok_or(missing("task", task))?;
            Ok((
                ops::update_task(user, &current, input)
                    .into_iter()
                    .collect(),
                (),
            ))
        })
    }

    pub fn set_task_done(&self, task: TaskId, done: bool) -> Result<()> {
        self.edit(|inner| {
            Ok((
                vec![ops::set_task_done(
                    inner.principal()?.user_id,
                    task,
                    done,
                    (inner.clock)(),
                )],
                (),
            ))
        })
    }

    pub fn delete_task(&self, task: TaskId) -> Result<()> {
        self.edit(|inner| Ok((vec![ops::delete_task(inner.principal()?.user_id, task)], ())))
    }

    /// The signed-in user's preferences (defaults until they set some).
    pub fn preferences(&self) -> Result<Preferences> {
        let inner = self.lock();
        let user = inner.principal()?.user_id;
        queries::preferences(&inner.conn, user)
    }

    pub fn set_preferences(&self, prefs: &Preferences) -> Result<()> {
        self.edit(|inner| {
            Ok((
                vec![ops::set_preferences(inner.principal()?.user_id, prefs)],
                (),
            ))
        })
    }

    /// Applies raw edits (for tools and tests: the typed methods above are the API).
    pub fn apply_edits(&self, edits: &[Edit]) -> Result<ChangeSet> {
        let changes = self.lock().write(edits)?;
        self.notify(&changes);
        Ok(changes)
    }

    // ---- queries (all on the projection) ---------------------------------------------------

    pub fn account(&self, account: AccountId) -> Result<Option<Account>> {
        queries::account(&self.lock().conn, account)
    }

    pub fn accounts_by_name(&self, limit: u32, offset: u32) -> Result<Vec<AccountSummary>> {
        queries::accounts_by_name(&self.lock().conn, limit, offset)
    }

    /// Accounts with a planned visit, soonest first.
    pub fn accounts_by_next_visit(&self, limit: u32) -> Result<Vec<AccountSummary>> {
        queries::accounts_by_next_visit(&self.lock().conn, limit)
    }

    /// Full-text search over account names, cities and contact names (Chinese and Latin).
    pub fn search_accounts(&self, query: &str, limit: u32) -> Result<Vec<AccountSummary>> {
        queries::search_accounts(&self.lock().conn, query, limit)
    }

    pub fn account_count(&self) -> Result<i64> {
        queries::count_accounts(&self.lock().conn)
    }

    pub fn contacts(&self, account: AccountId) -> Result<Vec<Contact>> {
        queries::contacts(&self.lock().conn, account)
    }

    pub fn visits(&self, account: AccountId) -> Result<Vec<Visit>> {
        queries::visits_of(&self.lock().conn, account)
    }

    pub fn visit(&self, visit: VisitId) -> Result<Option<Visit>> {
        queries::visit(&self.lock().conn, visit)
    }

    /// The next planned visits from `from` on.
    pub fn upcoming_visits(&self, from: i64, limit: u32) -> Result<Vec<VisitItem>> {
        queries::upcoming_visits(&self.lock().conn, from, limit)
    }

    /// A day's agenda: visits planned or made in `[from, to)`.
    pub fn visits_between(&self, from: i64, to: i64) -> Result<Vec<VisitItem>> {
        queries::visits_between(&self.lock().conn, from, to)
    }

    pub fn orders(&self, account: AccountId) -> Result<Vec<OrderSummary>> {
        queries::orders_of(&self.lock().conn, account)
    }

    pub fn orders_with_status(&self, status: OrderStatus, limit: u32) -> Result<Vec<OrderSummary>> {
        queries::orders_with_status(&self.lock().conn, status, limit)
    }

    pub fn order(&self, order: OrderId) -> Result<Option<OrderDetail>> {
        queries::order(&self.lock().conn, order)
    }

    pub fn timeline(&self, account: AccountId, limit: usize) -> Result<Vec<TimelineItem>> {
        queries::timeline(&self.lock().conn, account, limit)
    }

    /// The signed-in user's tasks.
    pub fn tasks(&self, open_only: bool, due_before: Option<i64>, limit: u32) -> Result<Vec<Task>> {
        let inner = self.lock();
        let user = inner.principal()?.user_id;
        queries::tasks(&inner.conn, user, open_only, due_before, limit)
    }

    pub fn task(&self, task: TaskId) -> Result<Option<Task>> {
        queries::task(&self.lock().conn, task)
    }

    pub fn products(&self, query: &str, limit: u32) -> Result<Vec<ProductItem>> {
        queries::products(&self.lock().conn, query, limit)
    }

    /// Writes the server refused and parked for review, still kept on this device.
    pub fn parked_writes(&self) -> Result<Vec<ParkedWrite>> {
        queries::parked(&self.lock().conn)
    }

    /// Changes made here that the server has not acknowledged yet.
    pub fn pending_changes(&self) -> Result<i64> {
        queries::pending_count(&self.lock().conn)
    }

    // ---- documents and maintenance ----------------------------------------------------------

    /// The stored documents' IDs.
    pub fn document_ids(&self) -> Result<Vec<DocId>> {
        DocStore::all_ids(&self.lock().conn)
    }

    /// The document's current heads, if this replica has it.
    pub fn heads(&self, doc: DocId) -> Result<Option<Vec<ChangeHash>>> {
        let mut inner = self.lock();
        let Inner { conn, docs, .. } = &mut *inner;
        Ok(docs.get(conn, doc)?.map(|d| d.get_heads()))
    }

    /// A saved copy of a document (for diagnostics, tests and export).
    pub fn save_document(&self, doc: DocId) -> Result<Option<Vec<u8>>> {
        let mut inner = self.lock();
        let Inner { conn, docs, .. } = &mut *inner;
        Ok(docs.get(conn, doc)?.map(|d| d.save()))
    }

    /// Recreates the whole SQL projection from the documents.
    pub fn rebuild_projection(&self, progress: &mut dyn FnMut(usize, usize)) -> Result<()> {
        let mut inner = self.lock();
        let Inner { conn, docs, .. } = &mut *inner;
        let tx = conn.transaction()?;
        projection::rebuild_all(&tx, docs, progress)?;
        tx.commit()?;
        Ok(())
    }

    /// A fingerprint of the projection (every projected row, in a stable order), to compare
    /// two replicas or a replica with its own rebuilt projection.
    pub fn projection_fingerprint(&self) -> Result<Vec<String>> {
        let inner = self.lock();
        let mut out = Vec::new();
        for (table, cols) in [
            (
                "accounts",
                "id, name, status, city, tags, notes, owner, team, visibility, tier, next_visit_at, last_visit_at",
            ),
            (
                "contacts",
                "id, account_id, name, title, phone, email, is_primary, deleted",
            ),
            (
                "visits",
                "id, account_id, status, planned_at, checked_in_at, checked_out_at, purpose, notes, outcome, next_step",
            ),
            (
                "orders",
                "id, account_id, status, currency, net_minor, tax_minor, gross_minor, line_count, deleted",
            ),
            (
                "order_lines",
                "id, order_id, product_id, unit_price_minor, quantity_milli, discount_bp, tax_bp, net_minor, deleted",
            ),
            (
                "tasks",
                "id, user_id, title, due_at, done, account_id, visit_id, deleted",
            ),
            (
                "products",
                "id, sku, name, base_price_minor, tax_bp, active",
            ),
            (
                "price_list_items",
                "id, price_list_id, product_id, price_minor, deleted",
            ),
        ] {
            let mut stmt = inner.conn.prepare(&format!(
                "SELECT json_array({cols}) FROM {table} ORDER BY id"
            ))?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            for row in rows {
                out.push(format!("{table} {}", row?));
            }
        }
        Ok(out)
    }

    /// Imports whole documents (saved automerge bytes) in one transaction: initial loads,
    /// tools and benchmarks. Existing documents are merged with the imported ones.
    pub fn import_documents(
        &self,
        documents: &[(DocId, Vec<u8>)],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ChangeSet> {
        let changes = {
            let mut inner = self.lock();
            let Inner { conn, docs, .. } = &mut *inner;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut changes = ChangeSet::default();
            for (i, (id, bytes)) in documents.iter().enumerate() {
                let incoming = Automerge::load(bytes)
                    .map_err(|e| Error::corrupt(format!("imported document {id}: {e}")))?;
                let merged = match docs.get(&tx, *id)? {
                    Some(existing) => {
                        let mut m = existing.fork();
                        m.merge(&mut incoming.clone())?;
                        m
                    }
                    None => incoming,
                };
                projection::project_doc(&tx, *id, &merged, &mut changes)?;
                docs.replace(&tx, *id, merged, false)?;
                progress(i + 1, documents.len());
            }
            tx.commit()?;
            changes
        };
        self.notify(&changes);
        Ok(changes)
    }
}

fn missing(kind: &'static str, id: impl std::fmt::Display) -> Error {
    Error::Rule(fieldline_protocol::Error::NotFound {
        kind,
        id: id.to_string(),
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Inner {
    pub fn principal(&self) -> Result<&Principal> {
        self.identity
            .as_ref()
            .map(|i| &i.principal)
            .ok_or(Error::NotSignedIn)
    }

    /// Reads a stored document.
    pub fn with_doc<T>(
        &mut self,
        doc: DocId,
        f: impl FnOnce(&Reader<'_, Automerge>) -> fieldline_protocol::Result<T>,
    ) -> Result<T> {
        let d = self
            .docs
            .get(&self.conn, doc)?
            .ok_or_else(|| missing(doc.kind().as_str(), doc))?;
        Ok(f(&Reader::new(d))?)
    }

    fn read_account(&mut self, account: AccountId) -> Result<Account> {
        self.with_doc(DocId::Account(account), |r| r.account())?
            .ok_or(missing("account", account))
    }

    /// The typed catalog, rebuilt only when the catalog document changed.
    pub fn catalog(&mut self) -> Result<Option<Arc<Catalog>>> {
        let Some(doc) = self.docs.get(&self.conn, DocId::Catalog)? else {
            return Ok(None);
        };
        let heads = doc.get_heads();
        if let Some((h, c)) = &self.catalog
            && *h == heads
        {
            return Ok(Some(c.clone()));
        }
        let c = Arc::new(Reader::new(&*doc).catalog()?);
        self.catalog = Some((heads, c.clone()));
        Ok(Some(c))
    }

    fn quote(
        &mut self,
        account: AccountId,
        order: OrderId,
        product: ProductId,
        quantity: Quantity,
    ) -> Result<Quote> {
        let o = self
            .with_doc(DocId::Account(account), |r| r.order(account, order))?
            .ok_or(missing("order", order))?;
        let catalog = self.catalog()?.ok_or(Error::NoCatalog)?;
        let now = (self.clock)();
        Ok(catalog.quote(product, o.currency, o.price_list_id, quantity, now)?)
    }

    /// The write pipeline: apply, validate, persist, project — all or nothing.
    pub fn write(&mut self, edits: &[Edit]) -> Result<ChangeSet> {
        let principal = self.principal()?.clone();
        let catalog = self.catalog()?;
        let now = (self.clock)();
        let mut touched_docs = Vec::new();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut changes = ChangeSet::default();
        let result = (|| -> Result<()> {
            for edit in edits {
                touched_docs.push(edit.doc);
                let (doc, _created) = self.docs.get_or_create(&tx, edit.doc)?;
                let before = doc.get_heads();
                let Some(patches) = apply_edit(doc, edit, principal.user_id, now)? else {
                    continue;
                };
                let ctx = WriteContext {
                    principal: &principal,
                    doc_id: edit.doc,
                    authority: Authority::Device,
                    catalog: catalog.as_deref(),
                };
                let summary = validate_patches(&ctx, doc, &before, &patches)?;
                let change = doc
                    .get_last_local_change()
                    .ok_or_else(|| Error::corrupt("committed change is missing"))?;
                let bytes = change.raw_bytes().to_vec();
                let hash = change.hash();
                projection::project_records(&tx, edit.doc, doc, &summary.touched, &mut changes)?;
                self.docs.append_change(&tx, edit.doc, &bytes)?;
                tx.prepare_cached(
                    "INSERT INTO outbox (doc_id, hash, bytes, edit, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![edit.doc.to_string(), hash.0.to_vec(), bytes, serde_json::to_string(edit)?, now])?;
                changes.outbox = true;
            }
            Ok(())
        })();
        match result.and_then(|()| tx.commit().map_err(Error::from)) {
            Ok(()) => Ok(changes),
            Err(e) => {
                for d in touched_docs {
                    self.docs.evict(d);
                }
                if edits.iter().any(|e| e.doc == DocId::Catalog) {
                    self.catalog = None;
                }
                Err(e)
            }
        }
    }
}

/// Applies one edit in one automerge transaction (rolled back on error). Returns the patches
/// the change made — collected while applying, far cheaper than diffing afterwards — or
/// `None` if nothing changed.
pub(crate) fn apply_edit(
    doc: &mut Automerge,
    edit: &Edit,
    user: UserId,
    now: i64,
) -> Result<Option<Vec<Patch>>> {
    let mut tx = doc
        .transaction_log_patches(PatchLog::active())
        .map_err(|e| Error::corrupt(format!("patch log: {e}")))?;
    match edit.apply(&mut tx, user, now) {
        Ok(Applied::Changed) => {
            let (_, mut log) = tx.commit_with(
                CommitOptions::default()
                    .with_message(edit.action.clone())
                    .with_time(now),
            );
            Ok(Some(doc.make_patches(&mut log)))
        }
        Ok(Applied::Unchanged) => {
            tx.rollback();
            Ok(None)
        }
        Err(e) => {
            tx.rollback();
            Err(e.into())
        }
    }
}
