//! The manager and admin API (JSON): users, teams, account reassignment, back-office order
//! decisions, the catalog, CSV import of accounts, and the review queue.
//!
//! Every endpoint checks who may call it first, then changes documents only through the
//! engine (so the schema and lifecycle rules apply to admins too) and the organisation only
//! through the store (so devices re-evaluate access after membership changes).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use fieldline_protocol::access::{Principal, can_read_doc, check_reassign};
use fieldline_protocol::doc::Reader;
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::Currency;
use fieldline_protocol::ops::{self, AccountInput};
use fieldline_protocol::validate::{Authority, WriteContext, validate_change};
use fieldline_protocol::wire::ReviewStatus;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::{ApiJson, AppState, Caller, UserView, blocking, now_ms};
use crate::auth;
use crate::engine::{Engine, Event, acl_of};
use crate::store::{Membership, NewUser, ReviewFilter, UserUpdate};
use crate::{Error, Result};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/users/{id}", axum::routing::patch(update_user))
        .route("/v1/teams", get(list_teams).post(create_team))
        .route(
            "/v1/teams/{team}/members/{user}",
            put(add_member).delete(remove_member),
        )
        .route(
            "/v1/teams/{team}/managers/{user}",
            put(add_manager).delete(remove_manager),
        )
        .route("/v1/accounts", get(list_accounts))
        .route("/v1/accounts/{id}", get(get_account))
        .route("/v1/accounts/{id}/history", get(account_history))
        .route("/v1/accounts/{id}/assignment", post(reassign))
        .route(
            "/v1/accounts/{id}/orders/{order}/decision",
            post(decide_order),
        )
        .route("/v1/catalog", get(get_catalog))
        .route("/v1/catalog/settings", put(set_catalog_settings))
        .route("/v1/catalog/tax-classes/{code}", put(set_tax_class))
        .route("/v1/catalog/products", post(create_product))
        .route("/v1/catalog/products/{id}", put(update_product))
        .route("/v1/catalog/price-lists", post(create_price_list))
        .route("/v1/catalog/price-lists/{id}/items", post(add_price))
        .route(
            "/v1/catalog/price-lists/{id}/items/{item}",
            delete(remove_price),
        )
        .route("/v1/import/accounts", post(import_accounts))
        .route("/v1/reviews", get(list_reviews))
        .route("/v1/reviews/{id}", get(get_review))
        .route("/v1/reviews/{id}/approve", post(approve_review))
        .route("/v1/reviews/{id}/dismiss", post(dismiss_review))
}

fn parse_path<T>(s: &str, parse: fn(&str) -> fieldline_protocol::Result<T>) -> Result<T> {
    parse(s).map_err(|e| Error::bad_request("invalid_id", e.to_string()))
}

// ---- users ------------------------------------------------------------------------------------

async fn list_users(State(st): State<AppState>, caller: Caller) -> Result<Response> {
    caller.require_manager()?;
    let store = st.store.clone();
    let users = blocking(move || Ok(store.users()?)).await?;
    let p = &caller.principal;
    let visible: Vec<UserView> = users
        .iter()
        .filter(|u| p.is_admin() || u.id == p.user_id || p.manages_user(u.id))
        .map(UserView::from)
        .collect();
    Ok(axum::Json(json!({ "users": visible })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    display_name: String,
    role: Role,
    /// Omit for users of an external identity provider.
    password: Option<String>,
    #[serde(default)]
    teams: Vec<TeamId>,
}

fn check_username(u: &str) -> Result<()> {
    let ok = (3..=64).contains(&u.len())
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(
            "invalid_username",
            "usernames are 3 to 64 of a-z, 0-9, . _ - @",
        ))
    }
}

async fn create_user(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<Response> {
    caller.require_admin()?;
    let username = body.username.trim().to_lowercase();
    check_username(&username)?;
    if body.display_name.trim().is_empty() {
        return Err(Error::bad_request(
            "invalid_display_name",
            "display_name must not be empty",
        ));
    }
    let hash = match &body.password {
        Some(pw) => {
            auth::check_password_policy(pw)?;
            let pw = pw.clone();
            Some(blocking(move || Ok(auth::hash_password(&pw)?)).await?)
        }
        None if st.issuer.is_some() => {
            return Err(Error::bad_request(
                "password_required",
                "give a password (this server issues its own tokens)",
            ));
        }
        None => None,
    };
    let id = UserId::new();
    let engine = st.engine.clone();
    let user = NewUser {
        id,
        username,
        display_name: body.display_name.trim().to_owned(),
        role: body.role,
        password_hash: hash,
        created_at: now_ms(),
    };
    let teams = body.teams.clone();
    let row = blocking(move || {
        let store = engine.store();
        for t in &teams {
            if !store.teams()?.iter().any(|x| x.id == *t) {
                return Err(Error::NotFound(format!("team {t}")));
            }
        }
        store.insert_user(&user)?;
        for t in teams {
            store.set_membership(t, id, Membership::Member, true)?;
        }
        // Every user has a private document (tasks, preferences) from the start.
        engine.ensure_doc(DocId::User(id), now_ms())?;
        store
            .user(id)?
            .ok_or_else(|| Error::Internal("user vanished".into()))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "user": UserView::from(&row) })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchUser {
    display_name: Option<String>,
    role: Option<Role>,
    active: Option<bool>,
    password: Option<String>,
}

async fn update_user(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchUser>,
) -> Result<Response> {
    caller.require_admin()?;
    let id = parse_path(&id, UserId::parse)?;
    let password_hash = match body.password {
        Some(pw) => {
            auth::check_password_policy(&pw)?;
            Some(blocking(move || Ok(auth::hash_password(&pw)?)).await?)
        }
        None => None,
    };
    if body
        .display_name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        return Err(Error::bad_request(
            "invalid_display_name",
            "display_name must not be empty",
        ));
    }
    let update = UserUpdate {
        display_name: body.display_name.map(|n| n.trim().to_owned()),
        role: body.role,
        active: body.active,
        password_hash,
    };
    let changes_access = update.role.is_some() || update.active.is_some();
    let store = st.store.clone();
    let row = blocking(move || Ok(store.update_user(id, &update)?)).await?;
    if changes_access {
        st.engine.publish(Event::Access { user: id });
    }
    Ok(axum::Json(json!({ "user": UserView::from(&row) })).into_response())
}

// ---- teams ------------------------------------------------------------------------------------

#[derive(Serialize)]
struct TeamView {
    id: TeamId,
    name: String,
    members: Vec<UserId>,
    managers: Vec<UserId>,
}

async fn list_teams(State(st): State<AppState>, caller: Caller) -> Result<Response> {
    let store = st.store.clone();
    let teams = blocking(move || Ok(store.teams()?)).await?;
    let p = &caller.principal;
    let visible: Vec<TeamView> = teams
        .into_iter()
        .filter(|t| p.is_admin() || p.member_of(t.id) || p.manages(t.id))
        .map(|t| TeamView {
            id: t.id,
            name: t.name,
            members: t.members,
            managers: t.managers,
        })
        .collect();
    Ok(axum::Json(json!({ "teams": visible })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTeam {
    name: String,
}

async fn create_team(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTeam>,
) -> Result<Response> {
    caller.require_admin()?;
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::bad_request(
            "invalid_name",
            "team names are 1 to 100 characters",
        ));
    }
    let id = TeamId::new();
    let store = st.store.clone();
    let n = name.clone();
    blocking(move || Ok(store.insert_team(id, &n)?)).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "team": { "id": id, "name": name } })),
    )
        .into_response())
}

async fn membership(
    st: AppState,
    caller: Caller,
    team: String,
    user: String,
    kind: Membership,
    present: bool,
) -> Result<StatusCode> {
    caller.require_admin()?;
    let team = parse_path(&team, TeamId::parse)?;
    let user = parse_path(&user, UserId::parse)?;
    let engine = st.engine.clone();
    let managers = blocking(move || {
        let store = engine.store();
        store.set_membership(team, user, kind, present)?;
        Ok(store
            .teams()?
            .into_iter()
            .find(|t| t.id == team)
            .map(|t| t.managers)
            .unwrap_or_default())
    })
    .await?;
    // Everyone whose readable set may have changed re-evaluates: the user, and the team's
    // managers (who gain or lose the user's private document).
    st.engine.publish(Event::Access { user });
    if kind == Membership::Member {
        for m in managers {
            st.engine.publish(Event::Access { user: m });
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn add_member(
    State(st): State<AppState>,
    caller: Caller,
    Path((team, user)): Path<(String, String)>,
) -> Result<StatusCode> {
    membership(st, caller, team, user, Membership::Member, true).await
}

async fn remove_member(
    State(st): State<AppState>,
    caller: Caller,
    Path((team, user)): Path<(String, String)>,
) -> Result<StatusCode> {
    membership(st, caller, team, user, Membership::Member, false).await
}

async fn add_manager(
    State(st): State<AppState>,
    caller: Caller,
    Path((team, user)): Path<(String, String)>,
) -> Result<StatusCode> {
    membership(st, caller, team, user, Membership::Manager, true).await
}

async fn remove_manager(
    State(st): State<AppState>,
    caller: Caller,
    Path((team, user)): Path<(String, String)>,
) -> Result<StatusCode> {
    membership(st, caller, team, user, Membership::Manager, false).await
}

// ---- accounts ---------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Limit {
    limit: Option<u32>,
}

async fn list_accounts(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<Limit>,
) -> Result<Response> {
    let store = st.store.clone();
    let p = caller.principal.clone();
    let limit = q.limit.unwrap_or(500).clamp(1, 10_000);
    let list = blocking(move || Ok(store.accounts(&p, limit)?)).await?;
    Ok(axum::Json(json!({ "accounts": list })).into_response())
}

/// Loads an account the caller may read (a foreign ID is a 403, whether or not it exists, so
/// the answer reveals nothing).
fn readable_account(st: &AppState, p: &Principal, id: AccountId) -> Result<crate::store::DocMeta> {
    let doc = DocId::Account(id);
    match st.store.doc_meta(doc)? {
        Some(meta) if can_read_doc(p, &doc, acl_of(&meta).as_ref()) => Ok(meta),
        _ => Err(Error::Forbidden(format!("read account {id}"))),
    }
}

async fn get_account(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_path(&id, AccountId::parse)?;
    let s = st.clone();
    let view = blocking(move || {
        readable_account(&s, &caller.principal, id)?;
        s.engine
            .read(DocId::Account(id), |doc| {
                let r = Reader::new(doc);
                let account = r.account()?.ok_or_else(|| Error::NotFound(format!("account {id}")))?;
                let orders: Vec<serde_json::Value> = r
                    .orders(id)?
                    .into_iter()
                    .map(|o| {
                        let totals = o.totals().ok();
                        json!({ "order": o, "totals": totals })
                    })
                    .collect();
                Ok(json!({ "account": account, "contacts": r.contacts(id)?, "visits": r.visits(id)?, "orders": orders }))
            })?
            .ok_or_else(|| Error::NotFound(format!("account {id}")))
    })
    .await?;
    Ok(axum::Json(view).into_response())
}

async fn account_history(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Response> {
    let id = parse_path(&id, AccountId::parse)?;
    let s = st.clone();
    let limit = q.limit.unwrap_or(200).clamp(1, 5000);
    let log = blocking(move || {
        readable_account(&s, &caller.principal, id)?;
        Ok(s.store.change_log(DocId::Account(id), limit)?)
    })
    .await?;
    Ok(axum::Json(json!({ "changes": log })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Assignment {
    owner: Option<UserId>,
    team: Option<TeamId>,
    visibility: Option<Visibility>,
}

/// Moves an account to another rep or team, or changes its visibility. The previous owner's
/// devices purge it at their next round (unless they may still read it); the new owner's
/// receive it.
async fn reassign(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Assignment>,
) -> Result<Response> {
    caller.require_manager()?;
    let id = parse_path(&id, AccountId::parse)?;
    let s = st.clone();
    let acl = blocking(move || {
        let p = &caller.principal;
        // A quick refusal for accounts the caller cannot see, before any lock.
        readable_account(&s, p, id)?;
        let store = s.store.clone();
        let teams = store.teams()?;
        let mut decided = None;
        // Decided on the document as it is, under its lock: two managers reassigning at once
        // cannot both pass a check made on the owner before the other's move.
        s.engine
            .server_edit_checked(p.user_id, DocId::Account(id), now_ms(), |doc| {
                let current = Reader::new(doc)
                    .account()?
                    .map(|a| a.acl)
                    .ok_or_else(|| Error::Forbidden(format!("read account {id}")))?;
                if !can_read_doc(p, &DocId::Account(id), Some(&current)) {
                    return Err(Error::Forbidden(format!("read account {id}")));
                }
                let new = new_assignment(store.as_ref(), &teams, &current, &body)?;
                check_reassign(p, &current, &new)?;
                decided = Some(new);
                Ok(vec![ops::set_account_acl(id, new)])
            })?;
        decided.ok_or_else(|| Error::Internal("reassignment was not decided".into()))
    })
    .await?;
    Ok(axum::Json(json!({ "account": id, "owner": acl.owner, "team": acl.team, "visibility": acl.visibility })).into_response())
}

/// The access an assignment asks for, checked against the organisation: the owner is an
/// active user of the account's team (a new owner outside the current team takes the
/// account into their own team unless a team is given).
fn new_assignment(
    store: &dyn crate::store::Store,
    teams: &[crate::store::TeamRow],
    current: &AccountAcl,
    body: &Assignment,
) -> Result<AccountAcl> {
    let owner = body.owner.unwrap_or(current.owner);
    let owner_teams: Vec<TeamId> = teams
        .iter()
        .filter(|t| t.members.contains(&owner) || t.managers.contains(&owner))
        .map(|t| t.id)
        .collect();
    let team = match body.team {
        Some(t) => t,
        None if !owner_teams.contains(&current.team) => *owner_teams.first().ok_or_else(|| {
            Error::bad_request(
                "owner_without_team",
                "the new owner is in no team; add them to a team first",
            )
        })?,
        None => current.team,
    };
    let owner_row = store
        .user(owner)?
        .ok_or_else(|| Error::NotFound(format!("user {owner}")))?;
    if !owner_row.active {
        return Err(Error::bad_request(
            "inactive_owner",
            "the new owner is deactivated",
        ));
    }
    if !owner_teams.contains(&team) {
        return Err(Error::bad_request(
            "owner_not_in_team",
            "the owner must belong to the account's team",
        ));
    }
    Ok(AccountAcl {
        owner,
        team,
        visibility: body.visibility.unwrap_or(current.visibility),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    status: OrderStatus,
    erp_ref: Option<String>,
    reason: Option<String>,
}

/// The back office confirms, rejects or delivers a submitted order (admins: the ERP hand-off).
async fn decide_order(
    State(st): State<AppState>,
    caller: Caller,
    Path((id, order)): Path<(String, String)>,
    ApiJson(body): ApiJson<Decision>,
) -> Result<Response> {
    caller.require_admin()?;
    let id = parse_path(&id, AccountId::parse)?;
    let order = parse_path(&order, OrderId::parse)?;
    if !matches!(
        body.status,
        OrderStatus::Confirmed | OrderStatus::Rejected | OrderStatus::Delivered
    ) {
        return Err(Error::bad_request(
            "invalid_status",
            "the back office sets confirmed, rejected or delivered",
        ));
    }
    let s = st.clone();
    blocking(move || {
        readable_account(&s, &caller.principal, id)?;
        let edit = ops::decide_order(
            id,
            order,
            body.status,
            now_ms(),
            body.erp_ref.as_deref(),
            body.reason.as_deref(),
        );
        s.engine
            .server_edit(caller.principal.user_id, &[edit], now_ms())
    })
    .await?;
    Ok(axum::Json(json!({ "order": order, "status": body.status })).into_response())
}

// ---- catalog ----------------------------------------------------------------------------------

async fn get_catalog(State(st): State<AppState>, _caller: Caller) -> Result<Response> {
    let engine = st.engine.clone();
    let c = blocking(move || engine.catalog()).await?;
    Ok(axum::Json(json!({
        "base_currency": c.base_currency,
        "tax_classes": c.tax_classes.values().collect::<Vec<_>>(),
        "products": c.products.values().collect::<Vec<_>>(),
        "price_lists": c.price_lists.values().collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn catalog_edit(st: &AppState, caller: &Caller, edits: Vec<ops::Edit>) -> Result<()> {
    caller.require_admin()?;
    let engine = st.engine.clone();
    let user = caller.principal.user_id;
    blocking(move || engine.server_edit(user, &edits, now_ms())).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    base_currency: Currency,
}

async fn set_catalog_settings(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Settings>,
) -> Result<StatusCode> {
    catalog_edit(
        &st,
        &caller,
        vec![ops::set_base_currency(body.base_currency)],
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaxClassBody {
    name: String,
    rate_bp: i64,
}

async fn set_tax_class(
    State(st): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(b): ApiJson<TaxClassBody>,
) -> Result<StatusCode> {
    fieldline_protocol::schema::check_code(&code)?;
    catalog_edit(
        &st,
        &caller,
        vec![ops::set_tax_class(&code, &b.name, b.rate_bp)],
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn upsert_product(
    st: &AppState,
    caller: &Caller,
    id: ProductId,
    input: ops::ProductInput,
) -> Result<()> {
    caller.require_admin()?;
    let engine = st.engine.clone();
    let user = caller.principal.user_id;
    blocking(move || {
        let catalog = engine.catalog()?;
        let edit = ops::upsert_product(id, &input, &catalog)?;
        engine.server_edit(user, &[edit], now_ms())
    })
    .await
}

async fn create_product(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<ops::ProductInput>,
) -> Result<Response> {
    let id = ProductId::new();
    upsert_product(&st, &caller, id, input).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response())
}

async fn update_product(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ops::ProductInput>,
) -> Result<StatusCode> {
    let id = parse_path(&id, ProductId::parse)?;
    upsert_product(&st, &caller, id, input).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceListBody {
    name: String,
    currency: Currency,
}

async fn create_price_list(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<PriceListBody>,
) -> Result<Response> {
    let id = PriceListId::new();
    catalog_edit(
        &st,
        &caller,
        vec![ops::create_price_list(id, &b.name, b.currency)],
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response())
}

async fn add_price(
    State(st): State<AppState>,
    caller: Caller,
    Path(list): Path<String>,
    ApiJson(input): ApiJson<ops::PriceInput>,
) -> Result<Response> {
    let list = parse_path(&list, PriceListId::parse)?;
    let item = PriceListItemId::new();
    catalog_edit(&st, &caller, vec![ops::add_price(list, item, &input)?]).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": item }))).into_response())
}

async fn remove_price(
    State(st): State<AppState>,
    caller: Caller,
    Path((list, item)): Path<(String, String)>,
) -> Result<StatusCode> {
    let list = parse_path(&list, PriceListId::parse)?;
    let item = parse_path(&item, PriceListItemId::parse)?;
    catalog_edit(&st, &caller, vec![ops::remove_price(list, item)]).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- CSV import -------------------------------------------------------------------------------

/// Columns of the account import, in any order (a header row is required).
const CSV_COLUMNS: &[&str] = &[
    "name",
    "status",
    "erp_code",
    "street",
    "city",
    "region",
    "postal_code",
    "country",
    "phone",
    "email",
    "owner",
    "team",
    "visibility",
    "currency",
    "payment_terms",
    "tags",
    "notes",
];

#[derive(Serialize)]
struct RowError {
    line: u64,
    message: String,
}

/// Imports accounts from CSV. Every row is checked (and every document built and judged)
/// before anything is stored: one bad row means a 422 listing every bad row, and nothing
/// written.
async fn import_accounts(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    caller.require_manager()?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("text/csv") {
        return Err(Error::bad_request(
            "unsupported_media_type",
            "send the accounts as text/csv with a header row",
        ));
    }
    let s = st.clone();
    blocking(move || import_csv(&s, &caller, &body)).await
}

fn import_csv(st: &AppState, caller: &Caller, body: &[u8]) -> Result<Response> {
    let p = &caller.principal;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| {
            Error::bad_request("invalid_csv", format!("the header row is unreadable: {e}"))
        })?
        .clone();
    for h in headers.iter() {
        if !CSV_COLUMNS.contains(&h) {
            return Err(Error::bad_request(
                "invalid_csv",
                format!("unknown column {h}; columns are {}", CSV_COLUMNS.join(", ")),
            ));
        }
    }
    for required in ["name", "owner", "currency"] {
        if !headers.iter().any(|h| h == required) {
            return Err(Error::bad_request(
                "invalid_csv",
                format!("the column {required} is required"),
            ));
        }
    }
    let users = st.store.users()?;
    let teams = st.store.teams()?;
    let catalog = st.engine.catalog()?;
    let now = now_ms();
    let mut errors: Vec<RowError> = Vec::new();
    let mut docs = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = (i + 2) as u64;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(RowError {
                    line,
                    message: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let get = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let row = (|| -> std::result::Result<(AccountId, automerge::Automerge), String> {
            let owner_name = get("owner").ok_or("owner is required")?;
            let owner = users
                .iter()
                .find(|u| u.username.eq_ignore_ascii_case(owner_name))
                .ok_or(format!("unknown owner {owner_name}"))?;
            let team = match get("team") {
                Some(name) => teams
                    .iter()
                    .find(|t| t.name.eq_ignore_ascii_case(name))
                    .ok_or(format!("unknown team {name}"))?,
                None => teams
                    .iter()
                    .find(|t| t.members.contains(&owner.id))
                    .ok_or(format!("{owner_name} is in no team; give a team"))?,
            };
            if !team.members.contains(&owner.id) && !team.managers.contains(&owner.id) {
                return Err(format!("{owner_name} is not in team {}", team.name));
            }
            if !p.is_admin() && !p.manages(team.id) {
                return Err(format!("you do not manage team {}", team.name));
            }
            let visibility = get("visibility")
                .map(Visibility::parse)
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or(Visibility::Private);
            let currency =
                Currency::parse(get("currency").unwrap_or("")).map_err(|e| e.to_string())?;
            let mut input = AccountInput::named(get("name").unwrap_or(""), currency);
            input.status = get("status")
                .map(AccountStatus::parse)
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or(AccountStatus::Lead);
            input.erp_code = get("erp_code").map(str::to_owned);
            input.address = Address {
                street: get("street").map(str::to_owned),
                city: get("city").map(str::to_owned),
                region: get("region").map(str::to_owned),
                postal_code: get("postal_code").map(str::to_owned),
                country: get("country").map(str::to_owned),
            };
            input.phone = get("phone").map(str::to_owned);
            input.email = get("email").map(str::to_owned);
            input.payment_terms = get("payment_terms").map(str::to_owned);
            let tags: Vec<String> = get("tags")
                .map(|t| {
                    t.split(';')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let id = AccountId::new();
            let acl = AccountAcl {
                owner: owner.id,
                team: team.id,
                visibility,
            };
            let edit = ops::create_account(id, acl, &input, get("notes").unwrap_or(""), &tags);
            let mut doc = fieldline_protocol::doc::skeleton(&DocId::Account(id))
                .map_err(|e| e.to_string())?;
            doc.set_actor(automerge::ActorId::random());
            let before = doc.get_heads();
            let mut tx = doc.transaction();
            if let Err(e) = edit.apply(&mut tx, p.user_id, now) {
                tx.rollback();
                return Err(e.to_string());
            }
            tx.commit_with(
                automerge::transaction::CommitOptions::default()
                    .with_message("import_account".to_owned())
                    .with_time(now),
            );
            let ctx = WriteContext {
                principal: p,
                doc_id: DocId::Account(id),
                authority: Authority::Server,
                catalog: Some(&catalog),
            };
            validate_change(&ctx, &doc, &before).map_err(|e| e.to_string())?;
            Ok((id, doc))
        })();
        match row {
            Ok(d) => docs.push(d),
            Err(message) => errors.push(RowError { line, message }),
        }
    }
    if !errors.is_empty() {
        let body = json!({ "error": { "code": "invalid_csv", "message": format!("{} row(s) are invalid; nothing was imported", errors.len()), "rows": errors } });
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response());
    }
    if docs.is_empty() {
        return Err(Error::bad_request("invalid_csv", "the file has no rows"));
    }
    let ids: Vec<AccountId> = docs.iter().map(|(id, _)| *id).collect();
    for (id, doc) in &docs {
        st.engine
            .import_doc(DocId::Account(*id), doc, Some(p.user_id), now)?;
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "created": ids.len(), "accounts": ids })),
    )
        .into_response())
}

// ---- review queue -----------------------------------------------------------------------------

#[derive(Deserialize)]
struct ReviewQuery {
    status: Option<String>,
    limit: Option<u32>,
}

async fn list_reviews(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<ReviewQuery>,
) -> Result<Response> {
    caller.require_manager()?;
    let status = q
        .status
        .as_deref()
        .map(ReviewStatus::parse)
        .transpose()
        .map_err(|e| Error::bad_request("invalid_status", e.to_string()))?;
    let store = st.store.clone();
    let filter = ReviewFilter {
        status,
        limit: q.limit.unwrap_or(200).clamp(1, 5000),
        reviewer: (!caller.principal.is_admin()).then_some(caller.principal.user_id),
    };
    let rows = blocking(move || Ok(store.reviews(&filter)?)).await?;
    let visible: Vec<_> = rows
        .into_iter()
        .filter(|r| Engine::may_review(&caller.principal, r))
        .collect();
    Ok(axum::Json(json!({ "reviews": visible })).into_response())
}

async fn get_review(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response> {
    caller.require_manager()?;
    let store = st.store.clone();
    let (row, bytes) = blocking(move || {
        store
            .review(id)?
            .ok_or_else(|| Error::NotFound(format!("review item {id}")))
    })
    .await?;
    if !Engine::may_review(&caller.principal, &row) {
        return Err(Error::Forbidden(
            "see this review item (it is not from your teams)".into(),
        ));
    }
    // What the change does, decoded, so the reviewer decides knowing what they approve.
    let change = automerge::Change::from_bytes(bytes)
        .map(|c| serde_json::to_value(c.decode()).unwrap_or(serde_json::Value::Null))
        .unwrap_or(serde_json::Value::Null);
    Ok(axum::Json(json!({ "review": row, "change": change })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Resolution {
    note: Option<String>,
}

/// An optional JSON body: empty means the defaults.
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| Error::bad_request("invalid_json", e.to_string()))
}

async fn approve_review(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<StatusCode> {
    caller.require_manager()?;
    let note = optional_json::<Resolution>(&body)?.note;
    let engine = st.engine.clone();
    blocking(move || engine.approve(id, &caller.principal, note.as_deref(), now_ms())).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn dismiss_review(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<StatusCode> {
    caller.require_manager()?;
    let note = optional_json::<Resolution>(&body)?.note;
    let engine = st.engine.clone();
    blocking(move || engine.dismiss(id, &caller.principal, note.as_deref(), now_ms())).await?;
    Ok(StatusCode::NO_CONTENT)
}
