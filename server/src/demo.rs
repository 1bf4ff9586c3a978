//! Demo organisation and data: a deterministic generator of a whole Fieldline company.
//!
//! Used by `fieldline-server demo` to seed a server that a newcomer can try at once, and by
//! benchmarks that need a known, realistic load (for example one rep with 2,000 accounts,
//! each with 3 contacts, 20 visits and 5 orders of 5 lines).
//!
//! Everything here is pure and in memory: [`generate`] returns the teams, the users (with one
//! demo password), the catalog document, one document per account and one per user. Every
//! document is built the way the real system builds it: from its deterministic skeleton
//! ([`doc::skeleton`]), through the typed edit builders of [`ops`], one automerge change per
//! user action (create the account, add a contact, plan / check in / complete a visit, add an
//! order line, submit, …), each made by the actor of the user who would make it on their
//! phone and judged by the one rule engine ([`validate_change`]) with that user's
//! [`Principal`]. Back-office decisions (confirming, rejecting and delivering orders), the
//! manager API's sharing of an account with the whole company and the value tiers are
//! changes on the server's authority, like in production. A change the rules refuse fails
//! the generation: demo data that the server itself would refuse is worse than none. (Data
//! sets above 500 accounts — benchmarks — validate a deterministic sample of the accounts,
//! because validation costs three times as much as writing; see [`validate_account`].)
//!
//! Accounts are first *planned* (every decision, sequentially) and then *played* (their
//! documents built) on all cores; each account has its own random stream, so the result does
//! not depend on the number of threads. `single_rep(2000, 3, 20, 5, 5, …)` takes about 30 s
//! in a debug build on two cores (automerge's per-operation cost dominates).
//!
//! Output is a pure function of the [`DemoSpec`]: the same seed and `now_ms` give identical
//! IDs and byte-identical documents (a tiny SplitMix64 generator seeds every ID, actor,
//! name and number; IDs are UUIDv7-shaped with the record's creation time as prefix).
//!
//! The content follows the field-sales CRM domain: a catalog in CNY with VAT classes
//! (13 %, 9 %, 0 %), tea, beverages, snacks and household products, a wholesale price list
//! with volume breaks and a seasonal promotion, USD and EUR export price lists; Chinese and
//! English company names (supermarkets, distributors, hotels, restaurants, tea houses …)
//! across Chinese cities plus a few export customers abroad; leads, customers and inactive
//! accounts; visits over the past six months and the next two weeks (completed, planned,
//! cancelled, and one in progress per rep, checked in right now); orders priced from the
//! catalog with [`Catalog::quote`] in the account's currency, as drafts, submitted, confirmed,
//! rejected or delivered; and for every user a private document with preferences and, for
//! reps and managers, follow-up tasks (some done, some due today, some overdue).

use std::collections::BTreeSet;

use automerge::{ActorId, Automerge, transaction::CommitOptions};
use fieldline_protocol::access::{self, Principal};
use fieldline_protocol::doc::{self, Catalog, Reader};
use fieldline_protocol::ids::{
    AccountId, ContactId, DocId, DocKind, OrderId, OrderLineId, PriceListId, PriceListItemId,
    ProductId, TaskId, TeamId, UserId, VisitId,
};
use fieldline_protocol::model::{
    AccountAcl, AccountStatus, Address, GeoPoint, Language, OrderStatus, Preferences, Role,
    Visibility,
};
use fieldline_protocol::money::{self, Currency, LinePricing, Quantity};
use fieldline_protocol::ops::{
    self, AccountInput, Applied, ContactInput, Edit, PriceInput, ProductInput, TaskInput,
    VisitReport,
};
use fieldline_protocol::tier;
use fieldline_protocol::validate::{Authority, WriteContext, validate_change};
use fieldline_protocol::{Error, Result};
use uuid::Uuid;

/// The seed of [`DemoSpec::demo`] and [`DemoSpec::single_rep`].
pub const DEMO_SEED: u64 = 0x0F1E_1D11_4E00_2025;

/// The password of every demo user (the server prints it when it seeds the demo).
pub const DEMO_PASSWORD: &str = "fieldline-demo";

/// What to generate. Counts are per account; see [`DemoSpec::vary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoSpec {
    pub seed: u64,
    /// Sales teams; each has one manager and `reps_per_team` reps.
    pub teams: usize,
    pub reps_per_team: usize,
    /// Accounts in total, spread round-robin over all reps.
    pub accounts: usize,
    pub contacts_per_account: usize,
    pub visits_per_account: usize,
    pub orders_per_account: usize,
    pub lines_per_order: usize,
    /// Products in the catalog.
    pub products: usize,
    /// "Now": visits are spread over the six months before and the two weeks after it.
    pub now_ms: i64,
    /// `true` (the demo): per-account counts vary around the figures above and leads have no
    /// orders yet. `false` (benchmarks): every account has exactly the counts above.
    pub vary: bool,
    /// `true`: some accounts are shared with the team (20 %) or the whole company (1 %);
    /// `false`: every account is private to its owner.
    pub shared: bool,
}

impl DemoSpec {
    /// The demo organisation: 2 teams with a manager and 3 reps each, an admin, 300 accounts
    /// with about 3 contacts, 6 visits and 2 orders of 2–4 lines each, 40 products.
    pub fn demo(now_ms: i64) -> Self {
        DemoSpec {
            seed: DEMO_SEED,
            teams: 2,
            reps_per_team: 3,
            accounts: 300,
            contacts_per_account: 3,
            visits_per_account: 6,
            orders_per_account: 2,
            lines_per_order: 3,
            products: 40,
            now_ms,
            vary: true,
            shared: true,
        }
    }

    /// One team with one rep owning every account (plus the team's manager and the admin),
    /// with exactly the given counts per account: for benchmarks.
    pub fn single_rep(
        accounts: usize,
        contacts: usize,
        visits: usize,
        orders: usize,
        lines: usize,
        now_ms: i64,
    ) -> Self {
        DemoSpec {
            seed: DEMO_SEED,
            teams: 1,
            reps_per_team: 1,
            accounts,
            contacts_per_account: contacts,
            visits_per_account: visits,
            orders_per_account: orders,
            lines_per_order: lines,
            products: 40,
            now_ms,
            vary: false,
            shared: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoTeam {
    pub id: TeamId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoUser {
    pub id: UserId,
    /// Simple ASCII: `admin`, `manager.east`, `rep.east.1`, …
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// [`DEMO_PASSWORD`] for everyone.
    pub password: String,
    /// Teams the user is a member of (a manager is a member of the team they manage).
    pub teams: Vec<TeamId>,
    /// Teams the user manages.
    pub manages: Vec<TeamId>,
}

/// A generated organisation and its documents.
pub struct DemoData {
    pub teams: Vec<DemoTeam>,
    /// The admin first, then per team its manager and its reps.
    pub users: Vec<DemoUser>,
    pub catalog: Automerge,
    pub accounts: Vec<(AccountId, Automerge)>,
    /// One private document per user, in the order of `users`.
    pub user_docs: Vec<(UserId, Automerge)>,
}

impl DemoData {
    /// The principal of a demo user, as the server would build it from the organisation.
    pub fn principal(&self, user: UserId) -> Option<Principal> {
        let u = self.users.iter().find(|u| u.id == user)?;
        Some(principal_of(&self.users, u))
    }
}

/// Generates the organisation and documents described by `spec`.
pub fn generate(spec: &DemoSpec) -> Result<DemoData> {
    generate_with_progress(spec, &mut |_, _| {})
}

/// Like [`generate`], reporting `(accounts done, accounts in total)` after every account.
pub fn generate_with_progress(
    spec: &DemoSpec,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<DemoData> {
    check_spec(spec)?;
    let clock = Clock::new(spec.now_ms);
    let org = build_org(spec, &clock);
    let (catalog_doc, catalog, info) = build_catalog(spec, &org, &clock)?;

    // Deciding is cheap and sequential (names must be unique); building the documents is
    // the expensive part and runs on every core, each account independently.
    let mut names = BTreeSet::new();
    let plans: Vec<AccountPlan> = (0..spec.accounts)
        .map(|index| plan_account(index, spec, &org, &clock, &info, &mut names))
        .collect();
    let built = play_accounts(&plans, &org, &catalog, progress)?;
    drop(plans);

    let mut revenue = Vec::new();
    let mut followups: Vec<FollowUp> = Vec::new();
    let mut rep_accounts: Vec<Vec<(AccountId, String)>> = vec![Vec::new(); org.users.len()];
    let mut accounts = Vec::with_capacity(built.len());
    for b in built {
        if let Some(rev) = b.revenue_cny {
            revenue.push((b.id, rev));
        }
        let mine = &mut rep_accounts[b.owner];
        if mine.len() < 3 {
            mine.push((b.id, b.name));
        }
        followups.extend(b.followups);
        accounts.push((b.id, b.doc));
    }

    // The server's nightly job: value tiers by revenue (the 80/20 rule).
    let writer = Writer {
        org: &org,
        catalog: Some(&catalog),
        validate: true,
    };
    let position: std::collections::BTreeMap<AccountId, usize> = accounts
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let at = clock.now - 3 * HOUR;
    for (account, tier) in tier::assign_tiers(&revenue) {
        if let Some((_, doc)) = position.get(&account).and_then(|i| accounts.get_mut(*i)) {
            writer.server(doc, &ops::set_tier(account, Some(tier)), org.admin, at)?;
        }
    }

    let user_docs = build_user_docs(spec, &org, &clock, followups, &rep_accounts, &writer)?;
    Ok(DemoData {
        teams: org.teams,
        users: org.users,
        catalog: catalog_doc,
        accounts,
        user_docs,
    })
}

/// Builds the account documents on all cores; the result is in account order and does not
/// depend on the number of threads. The first error (by account) wins.
fn play_accounts(
    plans: &[AccountPlan],
    org: &Org,
    catalog: &Catalog,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<BuiltAccount>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let total = plans.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(total.max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut slots: Vec<Option<Result<BuiltAccount>>> = (0..total).map(|_| None).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, failed) = (&next, &failed);
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let result = play_account(&plans[index], org, catalog);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if tx.send((index, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0;
        for (index, result) in rx {
            slots[index] = Some(result);
            done += 1;
            progress(done, total);
        }
    });
    let mut out = Vec::with_capacity(total);
    let mut first_error = None;
    for slot in slots {
        match slot {
            Some(Ok(b)) => out.push(b),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            // Skipped because another account failed.
            None => {}
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if out.len() != total {
        return Err(Error::Malformed {
            path: "demo".into(),
            reason: "an account was not generated".into(),
        });
    }
    Ok(out)
}

fn check_spec(spec: &DemoSpec) -> Result<()> {
    let bad = |field: &str, reason: &str| {
        Err(Error::InvalidInput {
            field: format!("demo spec {field}"),
            reason: reason.to_owned(),
        })
    };
    if spec.accounts > 0 && (spec.teams == 0 || spec.reps_per_team == 0) {
        return bad("teams", "accounts need at least one team with one rep");
    }
    if spec.products == 0 && spec.orders_per_account > 0 && spec.lines_per_order > 0 {
        return bad("products", "order lines need at least one product");
    }
    if spec.teams > 1_000 || spec.reps_per_team > 1_000 || spec.products > 100_000 {
        return bad("size", "is unreasonably large");
    }
    Ok(())
}

/// The principal of `u` in the organisation `users`.
fn principal_of(users: &[DemoUser], u: &DemoUser) -> Principal {
    let managed_users = users
        .iter()
        .filter(|o| o.id != u.id && o.teams.iter().any(|t| u.manages.contains(t)))
        .map(|o| o.id)
        .collect();
    Principal {
        user_id: u.id,
        role: u.role,
        teams: u.teams.clone(),
        managed_teams: u.manages.clone(),
        managed_users,
    }
}

// ---- randomness, IDs and time -------------------------------------------------------------------

/// SplitMix64: tiny, fast and good enough for demo data; never for anything secret.
#[derive(Clone)]
struct Rng(u64);

const STREAM_ORG: u64 = 1;
const STREAM_CATALOG: u64 = 2;
const STREAM_ACCOUNT: u64 = 3;
const STREAM_USER: u64 = 4;
const STREAM_ACTOR: u64 = 5;

impl Rng {
    /// An independent generator for one purpose (`stream`) and one item of it (`index`), so
    /// that e.g. account 7 is the same whatever happens to the other accounts.
    fn stream(seed: u64, stream: u64, index: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        let base = r.next_u64();
        let mut r = Rng(base ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB));
        r.next_u64();
        r
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..hi`; `lo` when the range is empty.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64) as i64
    }

    fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as i64, hi as i64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn word(&mut self, words: &[&'static str]) -> &'static str {
        words[self.below(words.len() as u64) as usize]
    }

    /// `k` distinct indices of `0..n` (with repeats only when `k > n`).
    fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        let mut out = Vec::with_capacity(k);
        while out.len() < k && n > 0 {
            for i in 0..n {
                let j = i + self.below((n - i) as u64) as usize;
                all.swap(i, j);
            }
            out.extend(all.iter().take(k - out.len()));
        }
        out
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// A UUIDv7-shaped ID: the creation time as prefix, the rest from the seeded generator.
fn uuid7(rng: &mut Rng, at: i64) -> Uuid {
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(at.max(0) as u64, &bytes).into_uuid()
}

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// The demo company works on China Standard Time.
const TZ: i64 = 8 * HOUR;

/// Business days and hours relative to "now", in China Standard Time.
struct Clock {
    now: i64,
    /// The instant of today's local midnight.
    today: i64,
}

impl Clock {
    fn new(now: i64) -> Self {
        let local = now + TZ;
        Clock {
            now,
            today: local - local.rem_euclid(DAY) - TZ,
        }
    }

    /// Local time `hour:minute` on the day `day` days from today.
    fn at(&self, day: i64, hour: i64, minute: i64) -> i64 {
        self.today + day * DAY + hour * HOUR + minute * MIN
    }

    /// 0 = Sunday … 6 = Saturday.
    fn weekday(&self, day: i64) -> i64 {
        ((self.today + TZ).div_euclid(DAY) + day + 4).rem_euclid(7)
    }

    /// Moves a weekend day to the nearest working day in `lo..=hi` (keeps it if none).
    fn workday(&self, day: i64, lo: i64, hi: i64) -> i64 {
        let candidates: &[i64] = match self.weekday(day) {
            6 => &[-1, 2],
            0 => &[1, -2],
            _ => return day,
        };
        candidates
            .iter()
            .map(|d| day + d)
            .find(|d| (lo..=hi).contains(d))
            .unwrap_or(day)
    }

    /// A random working day in `lo..=hi` at a business hour (09:00–17:45).
    fn business(&self, rng: &mut Rng, lo: i64, hi: i64) -> i64 {
        let day = self.workday(rng.range(lo, hi + 1), lo, hi);
        self.at(day, rng.range(9, 18), rng.range(0, 4) * 15)
    }

    /// The day (relative to today) of an instant.
    fn day_of(&self, t: i64) -> i64 {
        (t - self.today).div_euclid(DAY)
    }
}

// ---- the organisation ---------------------------------------------------------------------------

/// Team names, login slugs and the cities (indices into [`CITIES`]) their accounts are in.
const TEAMS: &[(&str, &str, &[usize])] = &[
    ("East China 华东", "east", &[0, 1, 2, 3, 4]),
    ("North China 华北", "north", &[5, 6, 7, 8, 9]),
    ("South China 华南", "south", &[10, 11, 12]),
    ("West China 华西", "west", &[13, 14, 15]),
    ("Central China 华中", "central", &[16, 17]),
    ("Northeast China 东北", "northeast", &[18, 19]),
];

/// Display names of the staff, in the order users are created.
const STAFF: &[&str] = &[
    "李静 Jing Li",
    "王建华 Jianhua Wang",
    "陈晓东 Xiaodong Chen",
    "Lily Zhang 张丽",
    "刘洋 Yang Liu",
    "赵志强 Zhiqiang Zhao",
    "孙磊 Lei Sun",
    "Kevin Zhou 周凯",
    "吴婷 Ting Wu",
    "黄海燕 Haiyan Huang",
    "Tony Lin 林涛",
    "郭芳 Fang Guo",
    "何勇 Yong He",
    "马超 Chao Ma",
    "Grace Gao 高敏",
    "罗丹 Dan Luo",
    "郑明 Ming Zheng",
    "梁艳 Yan Liang",
    "徐刚 Gang Xu",
    "Vivian Hu 胡霞",
    "朱平 Ping Zhu",
];

struct Org {
    teams: Vec<DemoTeam>,
    /// City indices per team.
    team_cities: Vec<&'static [usize]>,
    users: Vec<DemoUser>,
    principals: Vec<Principal>,
    /// The device actor of each user.
    actors: Vec<ActorId>,
    languages: Vec<Language>,
    /// The server's own actor (back office, manager API, tiers).
    server: ActorId,
    admin: usize,
    /// The manager of each team (user index).
    managers: Vec<usize>,
    /// Every rep (user index), team after team.
    reps: Vec<usize>,
    /// The team (index) of every user; admins have none.
    team_of: Vec<Option<usize>>,
}

fn actor_id(seed: u64, index: u64) -> ActorId {
    let mut rng = Rng::stream(seed, STREAM_ACTOR, index);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    ActorId::from(bytes.as_slice())
}

fn staff_name(index: usize) -> String {
    if let Some(name) = STAFF.get(index) {
        return (*name).to_owned();
    }
    let s = &SURNAMES[index % SURNAMES.len()];
    let g = &GIVEN[(index / SURNAMES.len()) % GIVEN.len()];
    format!("{}{} {} {}", s.0, g.0, g.1, s.1)
}

fn build_org(spec: &DemoSpec, clock: &Clock) -> Org {
    let mut rng = Rng::stream(spec.seed, STREAM_ORG, 0);
    let founded = clock.at(-600, 9, 0);
    let mut teams = Vec::new();
    let mut team_cities = Vec::new();
    let mut slugs = Vec::new();
    for t in 0..spec.teams {
        let id = TeamId::from_uuid(uuid7(&mut rng, founded + t as i64 * MIN));
        let (name, slug, cities) = match TEAMS.get(t) {
            Some((name, slug, cities)) => ((*name).to_owned(), (*slug).to_owned(), *cities),
            None => (
                format!("Region {} 区域{}", t + 1, t + 1),
                format!("region{}", t + 1),
                TEAMS[t % TEAMS.len()].2,
            ),
        };
        teams.push(DemoTeam { id, name });
        team_cities.push(cities);
        slugs.push(slug);
    }

    let mut users = Vec::new();
    let mut team_of = Vec::new();
    let mut managers = Vec::new();
    let mut reps = Vec::new();
    let mut add = |users: &mut Vec<DemoUser>,
                   rng: &mut Rng,
                   username: String,
                   role: Role,
                   team: Option<usize>| {
        let index = users.len();
        let team_id = team.map(|t| teams[t].id);
        users.push(DemoUser {
            id: UserId::from_uuid(uuid7(rng, founded + HOUR + index as i64 * MIN)),
            username,
            display_name: staff_name(index),
            role,
            password: DEMO_PASSWORD.to_owned(),
            teams: team_id.into_iter().collect(),
            manages: if role == Role::Manager {
                team_id.into_iter().collect()
            } else {
                Vec::new()
            },
        });
        team_of.push(team);
        index
    };
    let admin = add(&mut users, &mut rng, "admin".to_owned(), Role::Admin, None);
    for (t, slug) in slugs.iter().enumerate() {
        managers.push(add(
            &mut users,
            &mut rng,
            format!("manager.{slug}"),
            Role::Manager,
            Some(t),
        ));
        for r in 0..spec.reps_per_team {
            reps.push(add(
                &mut users,
                &mut rng,
                format!("rep.{slug}.{}", r + 1),
                Role::Rep,
                Some(t),
            ));
        }
    }
    let principals = users.iter().map(|u| principal_of(&users, u)).collect();
    let actors = (0..users.len())
        .map(|i| actor_id(spec.seed, i as u64))
        .collect();
    let languages = users
        .iter()
        .map(|u| {
            if u.display_name
                .starts_with(|c: char| c.is_ascii_alphabetic())
            {
                Language::En
            } else {
                Language::Zh
            }
        })
        .collect();
    Org {
        teams,
        team_cities,
        users,
        principals,
        actors,
        languages,
        server: actor_id(spec.seed, u64::MAX),
        admin,
        managers,
        reps,
        team_of,
    }
}

// ---- writing changes ----------------------------------------------------------------------------

/// Applies edits as one change each and judges every change with the rule engine.
struct Writer<'a> {
    org: &'a Org,
    catalog: Option<&'a Catalog>,
    /// Judge every change (see [`validate_account`] for when this is off).
    validate: bool,
}

impl Writer<'_> {
    /// An edit made on the phone of user `user` at `at`.
    fn device(&self, doc: &mut Automerge, edit: &Edit, user: usize, at: i64) -> Result<()> {
        self.write(
            doc,
            edit,
            &self.org.principals[user],
            &self.org.actors[user],
            Authority::Device,
            at,
        )
    }

    /// An edit the server makes on its own authority, on behalf of user `user` (the back
    /// office, a manager through the manager API, the tier job).
    fn server(&self, doc: &mut Automerge, edit: &Edit, user: usize, at: i64) -> Result<()> {
        self.write(
            doc,
            edit,
            &self.org.principals[user],
            &self.org.server,
            Authority::Server,
            at,
        )
    }

    fn write(
        &self,
        doc: &mut Automerge,
        edit: &Edit,
        principal: &Principal,
        actor: &ActorId,
        authority: Authority,
        at: i64,
    ) -> Result<()> {
        doc.set_actor(actor.clone());
        let before = doc.get_heads();
        let mut tx = doc.transaction();
        match edit.apply(&mut tx, principal.user_id, at) {
            Ok(Applied::Changed) => {
                tx.commit_with(
                    CommitOptions::default()
                        .with_message(edit.action.clone())
                        .with_time(at),
                );
            }
            Ok(Applied::Unchanged) => {
                tx.rollback();
                return Ok(());
            }
            Err(e) => {
                tx.rollback();
                return Err(e);
            }
        }
        let ctx = WriteContext {
            principal,
            doc_id: edit.doc,
            authority,
            catalog: if edit.doc.kind() == DocKind::Account {
                self.catalog
            } else {
                None
            },
        };
        if self.validate {
            validate_change(&ctx, doc, &before)?;
        }
        Ok(())
    }
}

// ---- the catalog --------------------------------------------------------------------------------

const TEA: &str = "茶叶 Tea";
const BEV: &str = "饮料 Beverages";
const SNACK: &str = "零食 Snacks";
const HOME: &str = "日用品 Household";
const SAMPLE: &str = "样品与物料 Samples & POS";

/// One product: SKU, name, category, unit, base price (fen), tax class, usual order
/// quantity range, still sold?
struct ProductRow {
    sku: &'static str,
    name: &'static str,
    category: &'static str,
    unit: &'static str,
    price: i64,
    tax: &'static str,
    qty: (i64, i64),
    active: bool,
}

const fn p(
    sku: &'static str,
    name: &'static str,
    category: &'static str,
    unit: &'static str,
    price: i64,
    tax: &'static str,
    qty: (i64, i64),
) -> ProductRow {
    ProductRow {
        sku,
        name,
        category,
        unit,
        price,
        tax,
        qty,
        active: true,
    }
}

const fn discontinued(mut row: ProductRow) -> ProductRow {
    row.active = false;
    row
}

#[rustfmt::skip]
const PRODUCTS: &[ProductRow] = &[
    p("TEA-001", "西湖龙井 250g West Lake Longjing 250g", TEA, "box", 26_800, "reduced", (2, 20)),
    p("TEA-002", "安溪铁观音 500g Anxi Tieguanyin 500g", TEA, "box", 19_800, "reduced", (2, 20)),
    p("TEA-003", "武夷山大红袍 200g Wuyi Da Hong Pao 200g", TEA, "box", 32_800, "reduced", (1, 12)),
    p("TEA-004", "云南普洱茶饼 357g Yunnan Pu'er cake 357g", TEA, "pcs", 15_800, "reduced", (2, 30)),
    p("TEA-005", "茉莉花茶(散装) Jasmine green tea, loose", TEA, "kg", 16_000, "reduced", (1, 15)),
    p("TEA-006", "祁门红茶 250g Keemun black tea 250g", TEA, "box", 12_800, "reduced", (2, 24)),
    p("TEA-007", "白毫银针 100g Silver Needle white tea 100g", TEA, "tin", 29_800, "reduced", (1, 10)),
    p("TEA-008", "碧螺春 250g Biluochun green tea 250g", TEA, "box", 22_800, "reduced", (2, 20)),
    p("TEA-009", "杭白菊 100g Chrysanthemum tea 100g", TEA, "bag", 2_800, "reduced", (10, 80)),
    discontinued(p("TEA-010", "铁观音礼盒(旧包装) Tieguanyin gift box (old packaging)", TEA, "box", 36_800, "reduced", (1, 10))),
    p("BEV-001", "王老吉凉茶 310ml×24 Herbal tea 310ml ×24", BEV, "case", 7_200, "standard", (5, 60)),
    p("BEV-002", "天然矿泉水 550ml×24 Mineral water 550ml ×24", BEV, "case", 3_600, "standard", (10, 120)),
    p("BEV-003", "无糖绿茶饮料 500ml×15 Unsweetened green tea 500ml ×15", BEV, "case", 6_000, "standard", (5, 60)),
    p("BEV-004", "椰汁 245ml×24 Coconut milk drink 245ml ×24", BEV, "case", 8_400, "standard", (5, 40)),
    p("BEV-005", "青岛啤酒 330ml×24 Tsingtao beer 330ml ×24", BEV, "case", 9_600, "standard", (5, 80)),
    p("BEV-006", "北冰洋橙汁汽水 248ml×24 Orange soda 248ml ×24", BEV, "case", 7_800, "standard", (5, 40)),
    p("BEV-007", "维他柠檬茶 250ml×24 Lemon tea 250ml ×24", BEV, "case", 6_600, "standard", (5, 50)),
    p("BEV-008", "冷萃咖啡 270ml×15 Cold brew coffee 270ml ×15", BEV, "case", 10_500, "standard", (2, 30)),
    p("BEV-009", "燕麦奶 1L×12 Oat milk 1L ×12", BEV, "case", 15_600, "standard", (2, 30)),
    p("BEV-010", "酸梅汤 1.5L×6 Sour plum drink 1.5L ×6", BEV, "case", 5_400, "standard", (5, 40)),
    p("SNK-001", "雪饼 520g Rice crackers 520g", SNACK, "bag", 2_590, "standard", (10, 100)),
    p("SNK-002", "坚果礼盒 750g Mixed nuts gift box 750g", SNACK, "box", 12_800, "standard", (2, 40)),
    p("SNK-003", "辣条 106g×20 Spicy gluten strips 106g ×20", SNACK, "carton", 5_800, "standard", (2, 30)),
    p("SNK-004", "稻香村糕点礼盒 Daoxiangcun pastry gift box", SNACK, "box", 9_800, "standard", (2, 40)),
    p("SNK-005", "五香瓜子(散装) Spiced sunflower seeds, loose", SNACK, "kg", 3_200, "standard", (2, 25)),
    p("SNK-006", "牛肉干 200g Beef jerky 200g", SNACK, "bag", 4_580, "standard", (5, 60)),
    p("SNK-007", "苏打饼干 400g×12 Soda crackers 400g ×12", SNACK, "carton", 9_600, "standard", (2, 30)),
    p("SNK-008", "广式月饼礼盒 Cantonese mooncake gift box", SNACK, "box", 16_800, "standard", (5, 80)),
    p("SNK-009", "海苔脆片 40g×24 Seaweed crisps 40g ×24", SNACK, "carton", 7_200, "standard", (2, 30)),
    p("SNK-010", "天津麻花 500g Tianjin dough twists 500g", SNACK, "bag", 2_800, "standard", (10, 80)),
    p("HH-001", "洗衣液 3kg Laundry detergent 3kg", HOME, "bottle", 5_990, "standard", (6, 60)),
    p("HH-002", "抽纸 3层×24包 Facial tissue ×24", HOME, "case", 6_900, "standard", (5, 50)),
    p("HH-003", "洗洁精 1.5kg Dishwashing liquid 1.5kg", HOME, "bottle", 1_890, "standard", (12, 120)),
    p("HH-004", "一次性纸杯 250ml×1000 Paper cups 250ml ×1000", HOME, "carton", 13_500, "standard", (1, 20)),
    p("HH-005", "垃圾袋(大号)×20卷 Trash bags, large ×20 rolls", HOME, "carton", 8_800, "standard", (1, 20)),
    p("HH-006", "消毒液 1.2kg×12 Disinfectant 1.2kg ×12", HOME, "case", 7_800, "standard", (1, 20)),
    p("HH-007", "厨房纸巾 4卷×12 Kitchen paper 4 rolls ×12", HOME, "case", 9_200, "standard", (2, 30)),
    p("HH-008", "洗手液 500ml×12 Hand soap 500ml ×12", HOME, "case", 10_800, "standard", (1, 20)),
    p("SMP-001", "新品试吃装 New product tasting kit", SAMPLE, "kit", 500, "zero", (1, 5)),
    p("SMP-002", "促销物料包(货架贴/海报) POS kit (shelf talkers, posters)", SAMPLE, "kit", 0, "zero", (1, 3)),
];

/// Products on seasonal promotion in the wholesale list (SKUs).
const PROMO_SKUS: &[&str] = &["SNK-008", "BEV-008", "TEA-006"];

struct ProductDef {
    sku: String,
    name: String,
    row: &'static ProductRow,
    price: i64,
}

/// The `n` products of the catalog: spread over the table when fewer, variants when more.
fn product_defs(n: usize) -> Vec<ProductDef> {
    let len = PRODUCTS.len();
    (0..n)
        .map(|i| {
            if n <= len {
                let row = &PRODUCTS[i * len / n];
                ProductDef {
                    sku: row.sku.to_owned(),
                    name: row.name.to_owned(),
                    row,
                    price: row.price,
                }
            } else {
                let row = &PRODUCTS[i % len];
                let v = (i / len) as i64;
                if v == 0 {
                    ProductDef {
                        sku: row.sku.to_owned(),
                        name: row.name.to_owned(),
                        row,
                        price: row.price,
                    }
                } else {
                    ProductDef {
                        sku: format!("{}-V{v}", row.sku),
                        name: format!("{} (规格{v} variant {v})", row.name),
                        row,
                        price: row.price * (100 + 7 * v) / 100,
                    }
                }
            }
        })
        .collect()
}

/// What accounts need to know about the catalog to take orders.
struct CatalogInfo {
    /// Orderable products with their usual quantity range and whether sold by weight.
    products: Vec<(ProductId, (i64, i64), bool)>,
    wholesale: PriceListId,
    usd: PriceListId,
    eur: PriceListId,
}

/// Rounds fen down to a multiple of `step`.
fn round_to(minor: i64, step: i64) -> i64 {
    minor / step * step
}

fn build_catalog(
    spec: &DemoSpec,
    org: &Org,
    clock: &Clock,
) -> Result<(Automerge, Catalog, CatalogInfo)> {
    let mut rng = Rng::stream(spec.seed, STREAM_CATALOG, 0);
    let writer = Writer {
        org,
        catalog: None,
        validate: true,
    };
    let admin = org.admin;
    let mut doc = doc::skeleton(&DocId::Catalog)?;
    let mut t = clock.at(-560, 10, 0);
    let mut next = |step: i64| {
        t += step;
        t
    };

    writer.device(
        &mut doc,
        &ops::set_base_currency(Currency::CNY),
        admin,
        next(0),
    )?;
    for (code, name, rate) in [
        ("standard", "增值税 13% Standard VAT", 1300),
        (
            "reduced",
            "增值税 9% Reduced VAT (agricultural products)",
            900,
        ),
        ("zero", "零税率 Zero-rated", 0),
    ] {
        writer.device(
            &mut doc,
            &ops::set_tax_class(code, name, rate),
            admin,
            next(MIN),
        )?;
    }

    let snapshot = Reader::new(&doc).catalog()?;
    let defs = product_defs(spec.products);
    let mut ids = Vec::with_capacity(defs.len());
    for def in &defs {
        let at = next(2 * MIN);
        let id = ProductId::from_uuid(uuid7(&mut rng, at));
        let input = ProductInput {
            sku: def.sku.clone(),
            name: def.name.clone(),
            category: Some(def.row.category.to_owned()),
            unit: def.row.unit.to_owned(),
            base_price_minor: def.price,
            tax_class: def.row.tax.to_owned(),
            active: true,
        };
        writer.device(
            &mut doc,
            &ops::upsert_product(id, &input, &snapshot)?,
            admin,
            at,
        )?;
        ids.push((id, input));
    }

    // Price lists: domestic wholesale (volume breaks, a seasonal promotion), export USD / EUR.
    let lists = [
        ("批发价目表 2025 Wholesale CNY", Currency::CNY),
        ("出口价目表 Export USD", Currency::USD),
        ("出口价目表 Export EUR", Currency::EUR),
    ];
    let mut list_ids = Vec::new();
    for (name, currency) in lists {
        let at = next(5 * MIN);
        let id = PriceListId::from_uuid(uuid7(&mut rng, at));
        writer.device(
            &mut doc,
            &ops::create_price_list(id, name, currency),
            admin,
            at,
        )?;
        list_ids.push(id);
    }
    let (wholesale, usd, eur) = (list_ids[0], list_ids[1], list_ids[2]);
    let promo_from = clock.at(-45, 0, 0);
    let promo_to = clock.at(30, 23, 59);
    let mut add =
        |doc: &mut Automerge, rng: &mut Rng, list: PriceListId, input: PriceInput| -> Result<()> {
            let at = next(MIN);
            let item = PriceListItemId::from_uuid(uuid7(rng, at));
            writer.device(doc, &ops::add_price(list, item, &input)?, admin, at)
        };
    for (def, (id, _)) in defs.iter().zip(&ids) {
        let base = def.price;
        let item = |price_minor: i64, min_qty: Option<Quantity>| PriceInput {
            product_id: *id,
            price_minor,
            min_qty,
            valid_from: None,
            valid_to: None,
        };
        if def.row.category != SAMPLE {
            add(
                &mut doc,
                &mut rng,
                wholesale,
                item(round_to(base * 92 / 100, 10), None),
            )?;
            if PROMO_SKUS.contains(&def.row.sku) {
                // Seasonal promotion: applies from the first unit, only within its dates.
                add(
                    &mut doc,
                    &mut rng,
                    wholesale,
                    PriceInput {
                        valid_from: Some(promo_from),
                        valid_to: Some(promo_to),
                        ..item(round_to(base * 80 / 100, 10), Some(Quantity::whole(1)))
                    },
                )?;
            } else {
                let break_qty = (def.row.qty.1 / 2).max(5);
                add(
                    &mut doc,
                    &mut rng,
                    wholesale,
                    item(
                        round_to(base * 86 / 100, 10),
                        Some(Quantity::whole(break_qty)),
                    ),
                )?;
            }
        }
        add(
            &mut doc,
            &mut rng,
            usd,
            item(round_to(base * 115 / 720, 5), None),
        )?;
        add(
            &mut doc,
            &mut rng,
            eur,
            item(round_to(base * 118 / 790, 5), None),
        )?;
    }

    // Discontinued products: created when they were sold, switched off since.
    let snapshot = Reader::new(&doc).catalog()?;
    for (def, (id, input)) in defs.iter().zip(&ids) {
        if !def.row.active {
            let off = ProductInput {
                active: false,
                ..input.clone()
            };
            let at = next(HOUR);
            writer.device(
                &mut doc,
                &ops::upsert_product(*id, &off, &snapshot)?,
                admin,
                at,
            )?;
        }
    }

    let catalog = Reader::new(&doc).catalog()?;
    let products = defs
        .iter()
        .zip(&ids)
        .filter(|(def, _)| def.row.active)
        .map(|(def, (id, _))| (*id, def.row.qty, def.row.unit == "kg"))
        .collect();
    Ok((
        doc,
        catalog,
        CatalogInfo {
            products,
            wholesale,
            usd,
            eur,
        },
    ))
}

// ---- account content ----------------------------------------------------------------------------

/// A Chinese city: names, address city and province, code for ERP numbers, phone area code,
/// postal prefix, centre, districts.
struct City {
    zh: &'static str,
    en: &'static str,
    city: &'static str,
    region: &'static str,
    code: &'static str,
    area: &'static str,
    postal: &'static str,
    lat: f64,
    lon: f64,
    districts: &'static [&'static str],
}

#[rustfmt::skip]
const CITIES: &[City] = &[
    City { zh: "上海", en: "Shanghai", city: "上海市", region: "上海市", code: "SH", area: "21", postal: "200", lat: 31.230, lon: 121.473, districts: &["徐汇区", "静安区", "浦东新区", "黄浦区", "长宁区", "闵行区"] },
    City { zh: "杭州", en: "Hangzhou", city: "杭州市", region: "浙江省", code: "HZ", area: "571", postal: "310", lat: 30.274, lon: 120.155, districts: &["西湖区", "拱墅区", "上城区", "滨江区"] },
    City { zh: "南京", en: "Nanjing", city: "南京市", region: "江苏省", code: "NJ", area: "25", postal: "210", lat: 32.060, lon: 118.797, districts: &["鼓楼区", "玄武区", "秦淮区", "建邺区"] },
    City { zh: "苏州", en: "Suzhou", city: "苏州市", region: "江苏省", code: "SZ", area: "512", postal: "215", lat: 31.299, lon: 120.585, districts: &["姑苏区", "吴中区", "相城区"] },
    City { zh: "宁波", en: "Ningbo", city: "宁波市", region: "浙江省", code: "NB", area: "574", postal: "315", lat: 29.868, lon: 121.544, districts: &["海曙区", "鄞州区", "江北区"] },
    City { zh: "北京", en: "Beijing", city: "北京市", region: "北京市", code: "BJ", area: "10", postal: "100", lat: 39.904, lon: 116.407, districts: &["朝阳区", "海淀区", "东城区", "西城区", "丰台区"] },
    City { zh: "天津", en: "Tianjin", city: "天津市", region: "天津市", code: "TJ", area: "22", postal: "300", lat: 39.125, lon: 117.190, districts: &["和平区", "河西区", "南开区", "滨海新区"] },
    City { zh: "济南", en: "Jinan", city: "济南市", region: "山东省", code: "JN", area: "531", postal: "250", lat: 36.651, lon: 117.120, districts: &["历下区", "市中区", "槐荫区"] },
    City { zh: "青岛", en: "Qingdao", city: "青岛市", region: "山东省", code: "QD", area: "532", postal: "266", lat: 36.067, lon: 120.383, districts: &["市南区", "市北区", "崂山区"] },
    City { zh: "石家庄", en: "Shijiazhuang", city: "石家庄市", region: "河北省", code: "SJ", area: "311", postal: "050", lat: 38.042, lon: 114.515, districts: &["长安区", "桥西区", "裕华区"] },
    City { zh: "广州", en: "Guangzhou", city: "广州市", region: "广东省", code: "GZ", area: "20", postal: "510", lat: 23.129, lon: 113.264, districts: &["天河区", "越秀区", "海珠区"] },
    City { zh: "深圳", en: "Shenzhen", city: "深圳市", region: "广东省", code: "SN", area: "755", postal: "518", lat: 22.543, lon: 114.058, districts: &["福田区", "南山区", "罗湖区"] },
    City { zh: "厦门", en: "Xiamen", city: "厦门市", region: "福建省", code: "XM", area: "592", postal: "361", lat: 24.480, lon: 118.089, districts: &["思明区", "湖里区"] },
    City { zh: "成都", en: "Chengdu", city: "成都市", region: "四川省", code: "CD", area: "28", postal: "610", lat: 30.657, lon: 104.066, districts: &["锦江区", "武侯区", "青羊区"] },
    City { zh: "重庆", en: "Chongqing", city: "重庆市", region: "重庆市", code: "CQ", area: "23", postal: "400", lat: 29.563, lon: 106.551, districts: &["渝中区", "江北区", "南岸区"] },
    City { zh: "西安", en: "Xi'an", city: "西安市", region: "陕西省", code: "XA", area: "29", postal: "710", lat: 34.342, lon: 108.940, districts: &["雁塔区", "碑林区", "莲湖区"] },
    City { zh: "武汉", en: "Wuhan", city: "武汉市", region: "湖北省", code: "WH", area: "27", postal: "430", lat: 30.593, lon: 114.305, districts: &["江汉区", "武昌区", "洪山区"] },
    City { zh: "长沙", en: "Changsha", city: "长沙市", region: "湖南省", code: "CS", area: "731", postal: "410", lat: 28.228, lon: 112.939, districts: &["芙蓉区", "岳麓区", "天心区"] },
    City { zh: "沈阳", en: "Shenyang", city: "沈阳市", region: "辽宁省", code: "SY", area: "24", postal: "110", lat: 41.806, lon: 123.432, districts: &["和平区", "沈河区", "皇姑区"] },
    City { zh: "大连", en: "Dalian", city: "大连市", region: "辽宁省", code: "DL", area: "411", postal: "116", lat: 38.914, lon: 121.615, districts: &["中山区", "西岗区", "沙河口区"] },
];

/// An export customer's city: name, region, country, phone prefix, postal prefix, centre,
/// street, currency.
struct Abroad {
    city: &'static str,
    region: &'static str,
    country: &'static str,
    phone: &'static str,
    postal: &'static str,
    lat: f64,
    lon: f64,
    street: &'static str,
    currency: Currency,
}

#[rustfmt::skip]
const ABROAD: &[Abroad] = &[
    Abroad { city: "Hong Kong", region: "", country: "Hong Kong SAR", phone: "+852 2", postal: "", lat: 22.282, lon: 114.158, street: "Queen's Road Central", currency: Currency::USD },
    Abroad { city: "Singapore", region: "", country: "Singapore", phone: "+65 6", postal: "05", lat: 1.284, lon: 103.844, street: "South Bridge Road", currency: Currency::USD },
    Abroad { city: "Los Angeles", region: "CA", country: "USA", phone: "+1 213 ", postal: "900", lat: 34.062, lon: -118.238, street: "N Broadway", currency: Currency::USD },
    Abroad { city: "Vancouver", region: "BC", country: "Canada", phone: "+1 604 ", postal: "V6A ", lat: 49.280, lon: -123.102, street: "Keefer Street", currency: Currency::USD },
    Abroad { city: "Hamburg", region: "", country: "Germany", phone: "+49 40 ", postal: "20", lat: 53.551, lon: 9.993, street: "Steindamm", currency: Currency::EUR },
    Abroad { city: "Amsterdam", region: "", country: "Netherlands", phone: "+31 20 ", postal: "10", lat: 52.374, lon: 4.900, street: "Zeedijk", currency: Currency::EUR },
    Abroad { city: "Milan", region: "MI", country: "Italy", phone: "+39 02 ", postal: "201", lat: 45.480, lon: 9.177, street: "Via Paolo Sarpi", currency: Currency::EUR },
    Abroad { city: "Paris", region: "", country: "France", phone: "+33 1 ", postal: "750", lat: 48.826, lon: 2.362, street: "Avenue d'Ivry", currency: Currency::EUR },
];

/// Brand words: Chinese and pinyin.
#[rustfmt::skip]
const BRANDS: &[(&str, &str)] = &[
    ("华联", "Hualian"), ("联华", "Lianhua"), ("永辉", "Yonghui"), ("鑫源", "Xinyuan"),
    ("恒昌", "Hengchang"), ("金桥", "Jinqiao"), ("万家", "Wanjia"), ("盛世", "Shengshi"),
    ("和平", "Heping"), ("东方", "Dongfang"), ("福满多", "Fumanduo"), ("好邻居", "Haolinju"),
    ("百味", "Baiwei"), ("知味", "Zhiwei"), ("锦江", "Jinjiang"), ("新天地", "Xintiandi"),
    ("宏达", "Hongda"), ("佳美", "Jiamei"), ("康乐", "Kangle"), ("天润", "Tianrun"),
    ("祥和", "Xianghe"), ("金鼎", "Jinding"), ("悦来", "Yuelai"), ("德胜", "Desheng"),
    ("瑞丰", "Ruifeng"), ("国泰", "Guotai"), ("春风", "Chunfeng"), ("嘉禾", "Jiahe"),
    ("明珠", "Mingzhu"), ("长城", "Changcheng"), ("红星", "Hongxing"), ("顺发", "Shunfa"),
];

/// Kinds of business: Chinese suffix, English suffix, tag, buys wholesale, is a shop
/// (named after its street branch).
struct Biz {
    zh: &'static str,
    en: &'static str,
    tag: &'static str,
    wholesale: bool,
    shop: bool,
}

#[rustfmt::skip]
const BIZ: &[Biz] = &[
    Biz { zh: "超市", en: "Supermarket", tag: "retail", wholesale: false, shop: true },
    Biz { zh: "连锁超市有限公司", en: "Supermarket Chain Co., Ltd.", tag: "chain", wholesale: true, shop: false },
    Biz { zh: "便利店", en: "Convenience Store", tag: "retail", wholesale: false, shop: true },
    Biz { zh: "食品贸易有限公司", en: "Food Trading Co., Ltd.", tag: "wholesale", wholesale: true, shop: false },
    Biz { zh: "商贸有限公司", en: "Trading Co., Ltd.", tag: "wholesale", wholesale: true, shop: false },
    Biz { zh: "副食品批发部", en: "Grocery Wholesale", tag: "wholesale", wholesale: true, shop: false },
    Biz { zh: "大酒店", en: "Hotel", tag: "horeca", wholesale: false, shop: false },
    Biz { zh: "餐饮管理有限公司", en: "Catering Management Co., Ltd.", tag: "horeca", wholesale: false, shop: false },
    Biz { zh: "茶楼", en: "Teahouse", tag: "horeca", wholesale: false, shop: false },
    Biz { zh: "酒家", en: "Restaurant", tag: "horeca", wholesale: false, shop: false },
    Biz { zh: "咖啡馆", en: "Café", tag: "horeca", wholesale: false, shop: true },
    Biz { zh: "茶叶店", en: "Tea Shop", tag: "retail", wholesale: false, shop: true },
    Biz { zh: "烟酒商行", en: "Tobacco & Liquor Store", tag: "retail", wholesale: false, shop: true },
    Biz { zh: "企业采购中心", en: "Corporate Procurement Center", tag: "corporate", wholesale: false, shop: false },
];

const ROADS: &[&str] = &[
    "人民路",
    "中山路",
    "解放路",
    "建设路",
    "和平路",
    "长江路",
    "新华路",
    "文化路",
    "胜利路",
    "青年路",
    "东风路",
    "光明路",
    "学府路",
    "滨江大道",
    "世纪大道",
    "南京路",
    "黄河路",
];

const FOREIGN_BRANDS: &[&str] = &[
    "Golden Harvest",
    "Pacific Rim",
    "Silk Road",
    "Jade Garden",
    "Lotus",
    "Orient Express",
    "Red Lantern",
    "Dragon Gate",
    "Bamboo House",
    "Lucky Star",
    "Eastern Pearl",
    "Tea Leaf",
];

/// Kinds of export customer and their tag.
const FOREIGN_KINDS: &[(&str, &str)] = &[
    ("Trading Ltd.", "wholesale"),
    ("Asian Grocery", "retail"),
    ("Foods Inc.", "wholesale"),
    ("Import & Export GmbH", "wholesale"),
    ("Restaurant", "horeca"),
    ("Supermarket", "retail"),
    ("Tea Room", "horeca"),
    ("Wholesale B.V.", "wholesale"),
];

const SURNAMES: &[(&str, &str)] = &[
    ("王", "Wang"),
    ("李", "Li"),
    ("张", "Zhang"),
    ("刘", "Liu"),
    ("陈", "Chen"),
    ("杨", "Yang"),
    ("赵", "Zhao"),
    ("黄", "Huang"),
    ("周", "Zhou"),
    ("吴", "Wu"),
    ("徐", "Xu"),
    ("孙", "Sun"),
    ("马", "Ma"),
    ("朱", "Zhu"),
    ("胡", "Hu"),
    ("郭", "Guo"),
    ("何", "He"),
    ("林", "Lin"),
    ("高", "Gao"),
    ("罗", "Luo"),
    ("郑", "Zheng"),
    ("梁", "Liang"),
];

const GIVEN: &[(&str, &str)] = &[
    ("伟", "Wei"),
    ("芳", "Fang"),
    ("娜", "Na"),
    ("敏", "Min"),
    ("静", "Jing"),
    ("丽", "Li"),
    ("强", "Qiang"),
    ("磊", "Lei"),
    ("军", "Jun"),
    ("洋", "Yang"),
    ("勇", "Yong"),
    ("艳", "Yan"),
    ("杰", "Jie"),
    ("涛", "Tao"),
    ("明", "Ming"),
    ("超", "Chao"),
    ("秀英", "Xiuying"),
    ("霞", "Xia"),
    ("平", "Ping"),
    ("刚", "Gang"),
    ("建华", "Jianhua"),
    ("晓东", "Xiaodong"),
    ("海燕", "Haiyan"),
    ("志强", "Zhiqiang"),
    ("丹", "Dan"),
    ("婷", "Ting"),
];

const FIRST_NAMES: &[&str] = &[
    "Michael", "Sarah", "David", "Anna", "James", "Emily", "Thomas", "Laura", "Kevin", "Grace",
    "Peter", "Sophie", "Daniel", "Mei", "Lukas", "Chloé",
];

const LAST_NAMES: &[&str] = &[
    "Chen", "Wong", "Miller", "Schmidt", "Tan", "Lee", "Johnson", "de Vries", "Rossi", "Martin",
    "Nguyen", "Lim",
];

const TITLES: &[&str] = &[
    "采购经理 Purchasing Manager",
    "店长",
    "总经理",
    "财务主管 Finance Supervisor",
    "行政主厨 Executive Chef",
    "仓库主管",
    "老板 Owner",
    "品类经理 Category Manager",
    "餐饮总监 F&B Director",
    "采购专员",
    "Store Manager",
    "Buyer",
];

const ACCOUNT_NOTES: &[&str] = &[
    "每月初补货，偏好整箱采购。Restocks at the start of each month, prefers full cases.",
    "收货时间：上午9点至11点。Deliveries 9–11 am only.",
    "连锁总部统一采购，需走供应商准入流程。Chain HQ buys centrally; supplier onboarding required.",
    "对有机和低糖产品感兴趣。Interested in organic and low-sugar lines.",
    "Pays reliably; ask for the annual rebate review in Q4.",
    "现有供应商为竞争对手，需要价格优势。Incumbent supplier is a competitor; needs a price edge.",
    "老板更喜欢微信沟通。Owner prefers WeChat to e-mail.",
    "中秋和春节前备货量大。Big stock-ups before Mid-Autumn and Spring Festival.",
];

const PAYMENT_TERMS: &[&str] = &[
    "月结30天 Net 30",
    "月结60天 Net 60",
    "现款现货 Cash on delivery",
    "预付款 Prepayment",
    "Net 45",
];

const PURPOSES: &[&str] = &[
    "新品推介 New product introduction",
    "季度业务回顾 Quarterly business review",
    "库存与陈列检查 Stock and shelf check",
    "价格谈判 Price negotiation",
    "回款跟进 Payment collection",
    "客诉处理 Complaint follow-up",
    "促销活动沟通 Promotion planning",
    "合同续签 Contract renewal",
    "样品品鉴 Sample tasting",
    "节日备货 Holiday stock-up",
];

const LEAD_PURPOSES: &[&str] = &[
    "首次拜访 First visit",
    "需求了解 Needs assessment",
    "样品品鉴 Sample tasting",
    "报价讲解 Walk through the quotation",
];

const OUTCOMES: &[&str] = &[
    "客户同意试销两款新茶 Agreed to trial two new teas",
    "现场下单 Placed an order on site",
    "需要正式报价 Needs a formal quotation",
    "采购负责人不在，留下样品 Buyer out, left samples",
    "货架陈列良好，补货正常 Shelves OK, restocking on track",
    "要求账期延长至60天 Asked for 60-day payment terms",
    "对价格有顾虑 Concerned about price vs. competitor",
    "确认节日备货量 Confirmed holiday volumes",
    "已收回上月货款 Collected last month's payment",
    "投诉已解决，客户满意 Complaint resolved, customer satisfied",
];

const LEAD_OUTCOMES: &[&str] = &[
    "有兴趣，要求报价 Interested, asked for a quotation",
    "已留样品，下周反馈 Left samples, feedback next week",
    "决策人出差，需再约 Decision maker travelling, rebook",
    "需总部审批新供应商 HQ must approve new suppliers",
    "对茶叶礼盒很感兴趣 Keen on the tea gift boxes",
];

const NEXT_STEPS: &[&str] = &[
    "下周三前发送报价 Send quotation by next Wednesday",
    "两周后回访 Revisit in two weeks",
    "安排样品寄送 Arrange sample delivery",
    "跟进付款 Follow up on payment",
    "与仓库确认送货日期 Confirm delivery date with warehouse",
    "申请特价审批 Request special price approval",
    "邀请参加新品品鉴会 Invite to the tasting event",
    "准备年度合同草案 Draft the annual contract",
];

const VISIT_NOTES: &[&str] = &[
    "店内客流大，端架位置可争取。Busy store; end-cap space is negotiable.",
    "竞品本月有买二送一促销。Competitor runs buy-2-get-1 this month.",
    "仓库空间有限，需要小批量多次送货。Limited storage: small, frequent deliveries.",
    "Met the new F&B director; very interested in cold brew.",
    "拍了货架照片，缺货两款。Took shelf photos; two items out of stock.",
];

const CANCEL_REASONS: &[&str] = &[
    "客户临时有事改期 Customer rescheduled",
    "采购负责人休假 Buyer on leave",
    "暴雨，交通中断 Heavy rain, roads closed",
    "门店装修暂停营业 Store closed for renovation",
    "与另一拜访时间冲突 Clashed with another visit",
];

const ORDER_NOTES: &[&str] = &[
    "请周五前送达 Please deliver before Friday",
    "需开具增值税专用发票 Special VAT invoice required",
    "送货到后门仓库 Deliver to the back-door warehouse",
    "Ship with the next container",
    "与上次订单合并发货 Combine with the previous shipment",
];

const REJECT_REASONS: &[&str] = &[
    "超出信用额度 Credit limit exceeded",
    "库存不足 Out of stock",
    "价格低于审批底价 Price below the approved floor",
];

// ---- accounts -----------------------------------------------------------------------------------

/// One action in an account's history; indices point into the account's plan.
#[derive(Clone, Copy)]
enum Step {
    Create,
    Convert,
    ShareCompany,
    Inactivate,
    Contact(usize),
    DeleteContact(usize),
    Plan(usize),
    CheckIn(usize),
    Complete(usize),
    Log(usize),
    Cancel(usize),
    Order(usize),
    Line(usize, usize),
    OrderNotes(usize),
    Submit(usize),
    Discard(usize),
    Decide(usize, OrderStatus),
}

/// Steps with their times; sorted by time (then insertion) before they are applied.
#[derive(Default)]
struct Timeline(Vec<(i64, usize, Step)>);

impl Timeline {
    fn push(&mut self, at: i64, step: Step) {
        let n = self.0.len();
        self.0.push((at, n, step));
    }

    fn sorted(mut self) -> Vec<(i64, Step)> {
        self.0.sort_by_key(|(t, n, _)| (*t, *n));
        self.0.into_iter().map(|(t, _, s)| (t, s)).collect()
    }
}

struct VisitPlan {
    id: VisitId,
    /// Who makes the visit (user index): the owner, or their manager for a joint visit.
    by: usize,
    planned_at: i64,
    purpose: &'static str,
    check_in: Option<GeoPoint>,
    check_out: Option<GeoPoint>,
    outcome: &'static str,
    next_step: Option<&'static str>,
    notes: Option<&'static str>,
    cancel_reason: &'static str,
}

impl VisitPlan {
    fn report(&self) -> VisitReport {
        VisitReport {
            outcome: Some(self.outcome.to_owned()),
            next_step: self.next_step.map(str::to_owned),
            notes: self.notes.map(str::to_owned),
        }
    }
}

struct OrderPlan {
    id: OrderId,
    visit: Option<VisitId>,
    lines: Vec<(OrderLineId, ProductId, Quantity, i64)>,
    notes: &'static str,
    erp_ref: String,
    reject_reason: &'static str,
}

/// A completed visit with a next step: material for a follow-up task.
struct FollowUp {
    rep: usize,
    account: AccountId,
    account_name: String,
    visit: VisitId,
    next_step: &'static str,
    at: i64,
}

/// Everything decided about one account before its document is built.
struct AccountPlan {
    id: AccountId,
    name: String,
    owner: usize,
    manager: usize,
    status: AccountStatus,
    acl: AccountAcl,
    lead_input: AccountInput,
    customer_input: AccountInput,
    notes: &'static str,
    tags: Vec<String>,
    currency: Currency,
    price_list: Option<PriceListId>,
    contacts: Vec<(ContactId, ContactInput)>,
    visits: Vec<VisitPlan>,
    orders: Vec<OrderPlan>,
    /// Completion time and index of the visits the owner completed.
    completed_by_owner: Vec<(i64, usize)>,
    steps: Vec<(i64, Step)>,
    validate: bool,
}

struct BuiltAccount {
    id: AccountId,
    name: String,
    owner: usize,
    doc: Automerge,
    /// Confirmed and delivered order value in CNY fen; `None` for leads.
    revenue_cny: Option<i64>,
    followups: Vec<FollowUp>,
}

/// A count that varies around `n` (the demo) or is exactly `n` (benchmarks).
fn around(rng: &mut Rng, n: usize, vary: bool) -> usize {
    if !vary || n == 0 {
        return n;
    }
    rng.range_usize((n - n / 2).max(1), n + n / 2 + 1)
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// A point near `(lat, lon)`, within about `spread` degrees.
fn near(rng: &mut Rng, lat: f64, lon: f64, spread: f64, accuracy: Option<f64>) -> GeoPoint {
    GeoPoint {
        lat: round6(lat + (rng.unit() - 0.5) * spread),
        lon: round6(lon + (rng.unit() - 0.5) * spread * 1.3),
        accuracy_m: accuracy,
    }
}

fn push_tag(tags: &mut Vec<String>, tag: &str) {
    if !tags.iter().any(|t| t == tag) {
        tags.push(tag.to_owned());
    }
}

fn unique_name(names: &mut BTreeSet<String>, name: String) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while names.contains(&candidate) {
        candidate = format!("{name} ({n})");
        n += 1;
    }
    names.insert(candidate.clone());
    candidate
}

/// Decides everything about account `index`: who it is, its contacts, visits and orders, and
/// the timeline of actions that builds its document. Cheap; [`play_account`] does the work.
fn plan_account(
    index: usize,
    spec: &DemoSpec,
    org: &Org,
    clock: &Clock,
    info: &CatalogInfo,
    names: &mut BTreeSet<String>,
) -> AccountPlan {
    let mut rng = Rng::stream(spec.seed, STREAM_ACCOUNT, index as u64);
    let now = clock.now;
    let vary = spec.vary;
    let rep_pos = index % org.reps.len();
    let owner = org.reps[rep_pos];
    let team = org.team_of[owner].unwrap_or(0);
    let manager = org.managers[team];

    // Who the account is.
    let status = match rng.below(100) {
        x if vary && x < 28 => AccountStatus::Lead,
        x if x < 88 => AccountStatus::Customer,
        _ => AccountStatus::Inactive,
    };
    let created_day = match status {
        AccountStatus::Lead => rng.range(-120, -3),
        AccountStatus::Customer => rng.range(-420, -200),
        AccountStatus::Inactive => rng.range(-500, -250),
    };
    let created = clock.business(&mut rng, created_day, created_day);
    let id = AccountId::from_uuid(uuid7(&mut rng, created));
    let export = rng.chance(8);
    let biz = rng.pick(BIZ);
    let mut tags = Vec::new();
    let name;
    let address;
    let center;
    let phone;
    let domain;
    let currency;
    let erp_prefix;
    let biz_tag;
    let mut abroad = None;
    if export {
        let place = rng.pick(ABROAD);
        abroad = Some(place);
        let (kind, tag) = *rng.pick(FOREIGN_KINDS);
        name = format!("{} {kind}", rng.pick(FOREIGN_BRANDS));
        biz_tag = tag;
        address = Address {
            street: Some(format!("{} {}", rng.range(1, 400), place.street)),
            city: Some(place.city.to_owned()),
            region: (!place.region.is_empty()).then(|| place.region.to_owned()),
            postal_code: (!place.postal.is_empty())
                .then(|| format!("{}{}", place.postal, rng.digits(3))),
            country: Some(place.country.to_owned()),
        };
        center = (place.lat, place.lon);
        phone = format!("{}{} {}", place.phone, rng.digits(3), rng.digits(4));
        domain = format!("{}.com", slug(&name));
        currency = place.currency;
        erp_prefix = "EX";
        push_tag(&mut tags, "export");
    } else {
        let cities = org.team_cities[team];
        let city = &CITIES[*rng.pick(cities)];
        let (brand_zh, brand_en) = *rng.pick(BRANDS);
        let road = *rng.pick(ROADS);
        name = if rng.chance(25) {
            format!("{brand_en} {} ({})", biz.en, city.en)
        } else if biz.shop {
            format!("{brand_zh}{}({road}店)", biz.zh)
        } else {
            format!("{}{brand_zh}{}", city.zh, biz.zh)
        };
        address = Address {
            street: Some(format!(
                "{}{road}{}号",
                rng.pick(city.districts),
                rng.range(1, 999)
            )),
            city: Some(city.city.to_owned()),
            region: Some(city.region.to_owned()),
            postal_code: Some(format!("{}{}", city.postal, rng.digits(3))),
            country: Some("中国".to_owned()),
        };
        center = (city.lat, city.lon);
        phone = format!(
            "+86 {} {}{} {}",
            city.area,
            rng.range(2, 9),
            rng.digits(3),
            rng.digits(4)
        );
        domain = format!("{}{}.com.cn", slug(brand_en), slug(city.en));
        currency = Currency::CNY;
        erp_prefix = city.code;
        biz_tag = biz.tag;
    }
    let name = unique_name(names, name);
    push_tag(&mut tags, biz_tag);
    if rng.chance(12) {
        push_tag(&mut tags, "vip");
    }
    if rng.chance(8) {
        push_tag(&mut tags, "promo");
    }
    if status == AccountStatus::Lead && created_day > -45 {
        push_tag(&mut tags, "new");
    }
    let company = spec.shared && index % 100 == 7;
    if company {
        push_tag(&mut tags, "key-account");
    }
    let price_list = match currency {
        c if c == Currency::USD => Some(info.usd),
        c if c == Currency::EUR => Some(info.eur),
        _ if biz.wholesale || rng.chance(20) => Some(info.wholesale),
        _ => None,
    };
    let location = rng.chance(65).then(|| {
        near(
            &mut rng,
            center.0,
            center.1,
            if export { 0.03 } else { 0.12 },
            None,
        )
    });
    let lead_input = AccountInput {
        name: name.clone(),
        status: AccountStatus::Lead,
        erp_code: None,
        address,
        location,
        phone: rng.chance(85).then_some(phone),
        email: rng
            .chance(50)
            .then(|| format!("{}@{domain}", rng.pick(&["purchasing", "info", "order"]))),
        payment_terms: None,
        price_list_id: None,
        currency,
    };
    let customer_input = AccountInput {
        status: AccountStatus::Customer,
        erp_code: Some(format!("C-{erp_prefix}-{:05}", index + 1)),
        payment_terms: Some((*rng.pick(PAYMENT_TERMS)).to_owned()),
        price_list_id: price_list,
        ..lead_input.clone()
    };
    let notes = if rng.chance(50) {
        *rng.pick(ACCOUNT_NOTES)
    } else {
        ""
    };
    let visibility = if spec.shared && rng.chance(20) {
        Visibility::Team
    } else {
        Visibility::Private
    };
    let acl = AccountAcl {
        owner: org.users[owner].id,
        team: org.teams[team].id,
        visibility,
    };

    let mut tl = Timeline::default();
    tl.push(created, Step::Create);
    let converted = match status {
        AccountStatus::Lead => None,
        _ => Some(created + rng.range(2 * DAY, 30 * DAY)),
    };
    if let Some(at) = converted {
        tl.push(at, Step::Convert);
    }
    let inactive_at =
        (status == AccountStatus::Inactive).then(|| now - rng.range(20 * DAY, 120 * DAY));
    if let Some(at) = inactive_at {
        tl.push(at, Step::Inactivate);
    }
    if company {
        tl.push(
            (created + rng.range(DAY, 10 * DAY)).min(now - HOUR),
            Step::ShareCompany,
        );
    }

    // Contacts.
    let n_contacts = around(&mut rng, spec.contacts_per_account, vary);
    let mut contacts = Vec::with_capacity(n_contacts);
    for k in 0..n_contacts {
        let at = if k < 2 || !vary {
            created + (k as i64 + 1) * 3 * MIN
        } else {
            rng.range(created + HOUR, now - HOUR)
        };
        let contact = if export {
            let first = *rng.pick(FIRST_NAMES);
            let last = *rng.pick(LAST_NAMES);
            ContactInput {
                name: format!("{first} {last}"),
                title: Some(
                    (*rng.pick(&["Purchasing Manager", "Owner", "Buyer", "Head Chef"])).to_owned(),
                ),
                phone: rng.chance(70).then(|| {
                    let prefix = abroad.map_or("+852 9", |a| a.phone);
                    format!("{prefix}{} {}", rng.digits(3), rng.digits(4))
                }),
                email: rng
                    .chance(80)
                    .then(|| format!("{}.{}@{domain}", slug(first), slug(last))),
                primary: k == 0,
            }
        } else {
            let (s_zh, s_en) = *rng.pick(SURNAMES);
            let (g_zh, g_en) = *rng.pick(GIVEN);
            ContactInput {
                name: format!("{s_zh}{g_zh}"),
                title: rng.chance(85).then(|| (*rng.pick(TITLES)).to_owned()),
                phone: rng.chance(90).then(|| {
                    format!(
                        "+86 1{}{} {} {}",
                        rng.pick(&["3", "5", "8"]),
                        rng.digits(1),
                        rng.digits(4),
                        rng.digits(4)
                    )
                }),
                email: rng
                    .chance(45)
                    .then(|| format!("{}.{}@{domain}", slug(g_en), slug(s_en))),
                primary: k == 0,
            }
        };
        let cid = ContactId::from_uuid(uuid7(&mut rng, at));
        tl.push(at, Step::Contact(k));
        if vary && k > 0 && rng.chance(4) {
            tl.push(rng.range(at + HOUR, now - MIN), Step::DeleteContact(k));
        }
        contacts.push((cid, contact));
    }

    // Visits: the six months before now and the two weeks after.
    let n_visits = match status {
        AccountStatus::Lead if vary => rng
            .range_usize(1, spec.visits_per_account.min(3) + 1)
            .min(spec.visits_per_account),
        _ => around(&mut rng, spec.visits_per_account, vary),
    };
    let first_past_day = (clock.day_of(created) + 1).max(-180);
    let last_past_day = -1;
    let mut visits: Vec<VisitPlan> = Vec::with_capacity(n_visits);
    let mut visit_days: Vec<(i64, bool)> = (0..n_visits)
        .map(|_| {
            let future = rng.chance(20) || first_past_day > last_past_day;
            let t = if future {
                clock.business(&mut rng, 1, 14)
            } else {
                clock.business(&mut rng, first_past_day, last_past_day)
            };
            (t, future)
        })
        .collect();
    visit_days.sort_by_key(|(t, _)| *t);
    // Each rep's first account: the rep is there right now (checked in, not yet out).
    let in_progress = index < org.reps.len() && n_visits > 0;
    let mut completed_by_owner: Vec<(i64, usize)> = Vec::new();
    for (k, (mut planned_at, future)) in visit_days.into_iter().enumerate() {
        let purposes = if status == AccountStatus::Lead {
            LEAD_PURPOSES
        } else {
            PURPOSES
        };
        let purpose = *rng.pick(purposes);
        let mut by = owner;
        let gps = |rng: &mut Rng| {
            let accuracy = Some(rng.range(4, 40) as f64);
            let (lat, lon) = match location {
                Some(g) => (g.lat, g.lon),
                None => center,
            };
            near(rng, lat, lon, 0.001, accuracy)
        };
        let outcome = if status == AccountStatus::Lead {
            *rng.pick(LEAD_OUTCOMES)
        } else {
            *rng.pick(OUTCOMES)
        };
        let next_step = rng.chance(70).then(|| *rng.pick(NEXT_STEPS));
        let visit_notes = rng.chance(30).then(|| *rng.pick(VISIT_NOTES));
        let mut plan = VisitPlan {
            id: VisitId::from_uuid(Uuid::nil()),
            by,
            planned_at,
            purpose,
            check_in: None,
            check_out: None,
            outcome,
            next_step,
            notes: visit_notes,
            cancel_reason: rng.word(CANCEL_REASONS),
        };
        let plan_created = |rng: &mut Rng, planned_at: i64| {
            within(
                rng.range(planned_at - 7 * DAY, planned_at - DAY),
                created + 30 * MIN,
                now - 10 * MIN,
            )
        };
        if in_progress && k + 1 == n_visits {
            // Checked in during today's business hours (or, outside them, at the end of the
            // last business day, and not checked out since).
            let local_minutes = (now - clock.today) / MIN;
            planned_at = if (9 * 60 + 30..19 * 60).contains(&local_minutes) {
                now - 45 * MIN
            } else if local_minutes >= 19 * 60 {
                clock.at(0, 17, 0)
            } else {
                clock.at(-1, 17, 0)
            };
            plan.planned_at = planned_at;
            let made = plan_created(&mut rng, planned_at).min(planned_at - MIN);
            plan.check_in = Some(gps(&mut rng));
            tl.push(made, Step::Plan(k));
            tl.push(planned_at + 15 * MIN, Step::CheckIn(k));
            plan.id = VisitId::from_uuid(uuid7(&mut rng, made));
        } else if future {
            let made = rng.range((now - 10 * DAY).max(created + 30 * MIN), now - 10 * MIN);
            tl.push(made, Step::Plan(k));
            if rng.chance(10) {
                tl.push(rng.range(made + 5 * MIN, now), Step::Cancel(k));
            }
            plan.id = VisitId::from_uuid(uuid7(&mut rng, made));
        } else if rng.chance(10) {
            let made = plan_created(&mut rng, planned_at);
            tl.push(made, Step::Plan(k));
            let cancel = rng
                .range(planned_at - 20 * HOUR, planned_at - HOUR)
                .max(made + 5 * MIN);
            tl.push(cancel, Step::Cancel(k));
            plan.id = VisitId::from_uuid(uuid7(&mut rng, made));
        } else if rng.chance(35) {
            // Logged afterwards in one step (sometimes a joint visit by the manager).
            if vary && rng.chance(10) {
                by = manager;
                plan.by = by;
                plan.purpose = "经理陪访 Joint visit with manager";
            }
            if rng.chance(40) {
                plan.check_in = Some(gps(&mut rng));
            }
            tl.push(planned_at, Step::Log(k));
            plan.id = VisitId::from_uuid(uuid7(&mut rng, planned_at));
            if by == owner {
                completed_by_owner.push((planned_at, k));
            }
        } else {
            let made = plan_created(&mut rng, planned_at);
            tl.push(made, Step::Plan(k));
            let checked_in = if rng.chance(85) {
                let at = planned_at + rng.range(-10 * MIN, 15 * MIN);
                if rng.chance(75) {
                    plan.check_in = Some(gps(&mut rng));
                }
                tl.push(at, Step::CheckIn(k));
                at
            } else {
                planned_at
            };
            let out = checked_in + rng.range(20 * MIN, 90 * MIN);
            if rng.chance(50) {
                plan.check_out = Some(gps(&mut rng));
            }
            tl.push(out, Step::Complete(k));
            plan.id = VisitId::from_uuid(uuid7(&mut rng, made));
            completed_by_owner.push((out, k));
        }
        visits.push(plan);
    }

    // Orders: customers (and former customers) order; leads do not yet in the demo.
    let n_orders = match status {
        AccountStatus::Lead if vary => 0,
        AccountStatus::Customer if vary => rng.range_usize(0, 2 * spec.orders_per_account + 1),
        AccountStatus::Inactive if vary => rng.range_usize(1, spec.orders_per_account + 2),
        _ => spec.orders_per_account,
    };
    let window_start = converted.unwrap_or(created) + HOUR;
    let window_start = window_start.max(now - 240 * DAY).min(now - 3 * HOUR);
    let window_end = match inactive_at {
        Some(at) => (at - DAY).max(window_start + HOUR),
        None => now - 2 * HOUR,
    };
    let mut linkable: Vec<(i64, usize)> = completed_by_owner
        .iter()
        .copied()
        .filter(|(t, _)| (window_start..window_end).contains(&(t + 3 * MIN)))
        .collect();
    let mut orders: Vec<OrderPlan> = Vec::with_capacity(n_orders);
    for o in 0..n_orders {
        let (t, visit) = if !linkable.is_empty() && rng.chance(60) {
            let (end, k) = linkable.swap_remove(rng.below(linkable.len() as u64) as usize);
            (end + 3 * MIN, Some(visits[k].id))
        } else {
            let mut lo = clock.day_of(window_start) + 1;
            let hi = clock.day_of(window_end);
            // Recent business: some orders in the last days and weeks of the window.
            if rng.chance(15) {
                lo = lo.max(hi - 4);
            } else if rng.chance(20) {
                lo = lo.max(hi - 30);
            }
            let t = if lo <= hi {
                clock.business(&mut rng, lo, hi)
            } else {
                rng.range(window_start, window_end)
            };
            (within(t, window_start, window_end), None)
        };
        let oid = OrderId::from_uuid(uuid7(&mut rng, t));
        tl.push(t, Step::Order(o));
        let n_lines = if spec.lines_per_order == 0 {
            0
        } else {
            around(&mut rng, spec.lines_per_order, vary)
        };
        let picks = rng.sample(info.products.len(), n_lines);
        let mut lines = Vec::with_capacity(n_lines);
        let mut lt = t;
        for (l, pi) in picks.into_iter().enumerate() {
            lt += rng.range(20_000, 70_000);
            let (product, (lo, hi), by_weight) = info.products[pi];
            let quantity = if by_weight {
                Quantity::from_milli(rng.range(lo * 2, hi * 2 + 1) * 500)
            } else {
                Quantity::whole(rng.range(lo, hi + 1))
            };
            let discount = if rng.chance(15) {
                *rng.pick(&[200, 300, 500, 800])
            } else {
                0
            };
            lines.push((
                OrderLineId::from_uuid(uuid7(&mut rng, lt)),
                product,
                quantity,
                discount,
            ));
            tl.push(lt, Step::Line(o, l));
        }
        let mut plan = OrderPlan {
            id: oid,
            visit,
            lines,
            notes: "",
            erp_ref: format!("SO{}", rng.digits(8)),
            reject_reason: rng.word(REJECT_REASONS),
        };
        let age = now - t;
        if rng.chance(20) {
            plan.notes = *rng.pick(ORDER_NOTES);
            lt += rng.range(10_000, 60_000);
            tl.push(lt, Step::OrderNotes(o));
        }
        if plan.lines.is_empty() || (age < 4 * DAY && rng.chance(45)) {
            // Still a draft on the rep's phone.
        } else if vary && age > 7 * DAY && rng.chance(4) {
            tl.push(
                rng.range(lt + HOUR, (lt + 3 * DAY).min(now - MIN))
                    .max(lt + MIN),
                Step::Discard(o),
            );
        } else {
            let submitted = lt + rng.range(MIN, 20 * MIN);
            tl.push(submitted, Step::Submit(o));
            let decided = submitted + rng.range(4 * HOUR, 3 * DAY);
            if decided < now - 10 * MIN {
                if rng.chance(6) {
                    tl.push(decided, Step::Decide(o, OrderStatus::Rejected));
                } else {
                    tl.push(decided, Step::Decide(o, OrderStatus::Confirmed));
                    let delivered = decided + rng.range(DAY, 5 * DAY);
                    if delivered < now && rng.chance(92) {
                        tl.push(delivered, Step::Decide(o, OrderStatus::Delivered));
                    }
                }
            }
        }
        orders.push(plan);
    }

    AccountPlan {
        id,
        name,
        owner,
        manager,
        status,
        acl,
        lead_input,
        customer_input,
        notes,
        tags,
        currency,
        price_list,
        contacts,
        visits,
        orders,
        completed_by_owner,
        steps: tl.sorted(),
        validate: validate_account(spec, index),
    }
}

/// Whether every change of account `index` is judged by the rule engine while generating.
///
/// Validation costs about three times as much as writing the change (measured: 2.4 s to
/// write and 6.4 s to validate the changes of 100 benchmark accounts in a debug build), so
/// for large data sets (benchmarks) only a deterministic sample is validated: the first 100
/// accounts and every 20th one after them, plus the catalog and every user document. The
/// demo (300 accounts) and anything up to 500 accounts is validated in full.
fn validate_account(spec: &DemoSpec, index: usize) -> bool {
    spec.accounts <= 500 || index < 100 || index.is_multiple_of(20)
}

/// Plays an account's timeline: one change per action, each (see [`validate_account`])
/// judged by the rules with the principal of the user making it.
fn play_account(plan: &AccountPlan, org: &Org, catalog: &Catalog) -> Result<BuiltAccount> {
    let writer = Writer {
        org,
        catalog: Some(catalog),
        validate: plan.validate,
    };
    let id = plan.id;
    let owner = plan.owner;
    let (acl, currency, price_list) = (plan.acl, plan.currency, plan.price_list);
    let (contacts, visits, orders) = (&plan.contacts, &plan.visits, &plan.orders);
    let doc_id = DocId::Account(id);
    let mut doc = doc::skeleton(&doc_id)?;
    let mut revenue_by_order = vec![0i64; orders.len()];
    let mut pricing: Vec<Vec<LinePricing>> = vec![Vec::new(); orders.len()];
    for &(at, step) in &plan.steps {
        match step {
            Step::Create => {
                let edit = ops::create_account(id, acl, &plan.lead_input, plan.notes, &plan.tags);
                writer.device(&mut doc, &edit, owner, at)?;
            }
            Step::Convert => {
                let current = Reader::new(&doc)
                    .account()?
                    .ok_or_else(|| missing("account", id))?;
                if let Some(edit) = ops::update_account(&current, &plan.customer_input) {
                    writer.device(&mut doc, &edit, owner, at)?;
                }
            }
            Step::Inactivate => {
                let edit = ops::set_account_status(id, AccountStatus::Inactive);
                writer.device(&mut doc, &edit, owner, at)?;
            }
            Step::ShareCompany => {
                // The team's manager shares a key account with everyone (manager API).
                let current = Reader::new(&doc).account_acl()?.unwrap_or(acl);
                let shared = AccountAcl {
                    visibility: Visibility::Company,
                    ..current
                };
                access::check_reassign(&org.principals[plan.manager], &current, &shared)?;
                let edit = ops::set_account_acl(id, shared);
                writer.server(&mut doc, &edit, plan.manager, at)?;
            }
            Step::Contact(k) => {
                let (cid, input) = &contacts[k];
                writer.device(&mut doc, &ops::add_contact(id, *cid, input), owner, at)?;
            }
            Step::DeleteContact(k) => {
                let edit = ops::set_contact_deleted(id, contacts[k].0, true);
                writer.device(&mut doc, &edit, owner, at)?;
            }
            Step::Plan(k) => {
                let v = &visits[k];
                let edit = ops::plan_visit(id, v.id, v.planned_at, Some(v.purpose));
                writer.device(&mut doc, &edit, v.by, at)?;
            }
            Step::CheckIn(k) => {
                let v = &visits[k];
                writer.device(&mut doc, &ops::check_in(id, v.id, at, v.check_in), v.by, at)?;
            }
            Step::Complete(k) => {
                let v = &visits[k];
                let current = Reader::new(&doc)
                    .visit(id, v.id)?
                    .ok_or_else(|| missing("visit", v.id))?;
                let edit = ops::complete_visit(id, &current, at, v.check_out, &v.report());
                writer.device(&mut doc, &edit, v.by, at)?;
            }
            Step::Log(k) => {
                let v = &visits[k];
                let edit = ops::log_visit(id, v.id, at, v.check_in, Some(v.purpose), &v.report());
                writer.device(&mut doc, &edit, v.by, at)?;
            }
            Step::Cancel(k) => {
                let v = &visits[k];
                let edit = ops::cancel_visit(id, v.id, Some(v.cancel_reason));
                writer.device(&mut doc, &edit, v.by, at)?;
            }
            Step::Order(o) => {
                let plan = &orders[o];
                let edit = ops::create_order(id, plan.id, currency, price_list, plan.visit);
                writer.device(&mut doc, &edit, owner, at)?;
            }
            Step::Line(o, l) => {
                let plan = &orders[o];
                let (line, product, quantity, discount) = plan.lines[l];
                let quote = catalog.quote(product, currency, price_list, quantity, at)?;
                pricing[o].push(LinePricing {
                    unit_price_minor: quote.unit_price_minor,
                    quantity,
                    discount_bp: discount,
                    tax_bp: quote.tax_bp,
                });
                let edit = ops::add_order_line(id, plan.id, line, &quote, quantity, discount);
                writer.device(&mut doc, &edit, owner, at)?;
            }
            Step::OrderNotes(o) => {
                let edit = ops::set_order_notes(id, orders[o].id, Some(orders[o].notes));
                writer.device(&mut doc, &edit, owner, at)?;
            }
            Step::Submit(o) => {
                writer.device(
                    &mut doc,
                    &ops::submit_order(id, orders[o].id, at),
                    owner,
                    at,
                )?;
            }
            Step::Discard(o) => {
                writer.device(&mut doc, &ops::discard_order(id, orders[o].id), owner, at)?;
            }
            Step::Decide(o, status) => {
                let plan = &orders[o];
                let (erp, reason) = match status {
                    OrderStatus::Confirmed => (Some(plan.erp_ref.as_str()), None),
                    OrderStatus::Rejected => (None, Some(plan.reject_reason)),
                    _ => (None, None),
                };
                let edit = ops::decide_order(id, plan.id, status, at, erp, reason);
                writer.server(&mut doc, &edit, org.admin, at)?;
                if status == OrderStatus::Confirmed {
                    revenue_by_order[o] = money::order_totals(&pricing[o])?.net_minor;
                }
            }
        }
    }

    let revenue_cny = (plan.status != AccountStatus::Lead).then(|| {
        // Confirmed (and later delivered) orders count; rejected ones never were confirmed.
        to_cny(revenue_by_order.iter().sum(), currency)
    });
    let followups = plan
        .completed_by_owner
        .iter()
        .filter_map(|(at, k)| {
            let v = &visits[*k];
            Some(FollowUp {
                rep: owner,
                account: id,
                account_name: plan.name.clone(),
                visit: v.id,
                next_step: v.next_step?,
                at: *at,
            })
        })
        .collect();
    Ok(BuiltAccount {
        id,
        name: plan.name.clone(),
        owner,
        doc,
        revenue_cny,
        followups,
    })
}

/// `x` within `lo..=hi` (never panics: `lo` wins if the range is empty).
fn within(x: i64, lo: i64, hi: i64) -> i64 {
    x.min(hi).max(lo)
}

/// Rough conversion for ranking accounts by revenue (tiers), not for accounting.
fn to_cny(minor: i64, currency: Currency) -> i64 {
    match currency {
        c if c == Currency::USD => minor.saturating_mul(72) / 10,
        c if c == Currency::EUR => minor.saturating_mul(78) / 10,
        _ => minor,
    }
}

fn missing(kind: &'static str, id: impl std::fmt::Display) -> Error {
    Error::NotFound {
        kind,
        id: id.to_string(),
    }
}

/// Lowercase ASCII letters and digits only (for e-mail addresses and domains).
fn slug(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

// ---- private user documents ---------------------------------------------------------------------

struct TaskPlan {
    id: TaskId,
    /// Who creates the task (user index): the user, or their manager.
    by: usize,
    input: TaskInput,
    done_at: Option<i64>,
}

enum UserStep {
    Preferences,
    Task(usize),
    Done(usize),
}

fn build_user_docs(
    spec: &DemoSpec,
    org: &Org,
    clock: &Clock,
    mut followups: Vec<FollowUp>,
    rep_accounts: &[Vec<(AccountId, String)>],
    writer: &Writer<'_>,
) -> Result<Vec<(UserId, Automerge)>> {
    let now = clock.now;
    // Most recent first, so each rep's follow-ups are their latest visits.
    followups.sort_by_key(|f| (std::cmp::Reverse(f.at), f.visit));
    let mut out = Vec::with_capacity(org.users.len());
    for (u, user) in org.users.iter().enumerate() {
        let mut rng = Rng::stream(spec.seed, STREAM_USER, u as u64);
        let mut tasks: Vec<(i64, TaskPlan)> = Vec::new();
        let mut task =
            |rng: &mut Rng, created: i64, by: usize, input: TaskInput, done_at: Option<i64>| {
                let id = TaskId::from_uuid(uuid7(rng, created));
                tasks.push((
                    created,
                    TaskPlan {
                        id,
                        by,
                        input,
                        done_at,
                    },
                ));
            };
        let accounts = &rep_accounts[u];
        match user.role {
            Role::Rep => {
                let max_followups = if spec.vary { 6 } else { 8 };
                for f in followups.iter().filter(|f| f.rep == u).take(max_followups) {
                    let created = f.at + 5 * MIN;
                    let due = f.at + rng.range(2 * DAY, 6 * DAY);
                    // Old follow-ups are mostly done; recent ones often still open.
                    let done = ((due < now - 3 * DAY && rng.chance(90))
                        || (due < now && rng.chance(40)))
                    .then(|| rng.range(created + HOUR, due.min(now - HOUR)));
                    task(
                        &mut rng,
                        created,
                        u,
                        TaskInput {
                            title: format!("跟进 Follow up: {} — {}", f.account_name, f.next_step),
                            due_at: Some(due),
                            account_id: Some(f.account),
                            visit_id: Some(f.visit),
                            notes: None,
                        },
                        done,
                    );
                }
                let first = accounts.first();
                let account_task = |title_zh: &str, title_en: &str| match first {
                    Some((_, name)) => format!("{title_zh} {title_en}: {name}"),
                    None => format!("{title_zh} {title_en}"),
                };
                // Due today, overdue and done: every rep's list shows each case.
                task(
                    &mut rng,
                    now - DAY,
                    u,
                    TaskInput {
                        title: account_task("电话确认订单", "Call to confirm the order"),
                        due_at: Some(clock.at(0, 16, 0)),
                        account_id: first.map(|a| a.0),
                        visit_id: None,
                        notes: Some("客户希望周五前到货。Wants delivery before Friday.".into()),
                    },
                    None,
                );
                let second = accounts.get(1).or(first);
                task(
                    &mut rng,
                    now - 6 * DAY,
                    u,
                    TaskInput {
                        title: match second {
                            Some((_, name)) => format!("发送报价单 Send the quotation: {name}"),
                            None => "发送报价单 Send the quotation".into(),
                        },
                        due_at: Some(now - 2 * DAY),
                        account_id: second.map(|a| a.0),
                        visit_id: None,
                        notes: None,
                    },
                    None,
                );
                task(
                    &mut rng,
                    now - 8 * DAY,
                    u,
                    TaskInput {
                        title: "提交上周拜访报告 Submit last week's visit report".into(),
                        due_at: Some(now - 4 * DAY),
                        account_id: None,
                        visit_id: None,
                        notes: None,
                    },
                    Some(now - 4 * DAY - 2 * HOUR),
                );
                // Assigned by the team's manager.
                if let Some(team) = org.team_of[u] {
                    let third = accounts.get(2).or(first);
                    task(
                        &mut rng,
                        now - DAY - 3 * HOUR,
                        org.managers[team],
                        TaskInput {
                            title: match third {
                                Some((_, name)) => {
                                    format!("季度回顾 Quarterly review: {name}")
                                }
                                None => "完成新品培训 Complete the new product training".into(),
                            },
                            due_at: Some(clock.at(5, 18, 0)),
                            account_id: third.map(|a| a.0),
                            visit_id: None,
                            notes: Some("请在周五前完成。Please finish by Friday.".into()),
                        },
                        None,
                    );
                }
            }
            Role::Manager => {
                task(
                    &mut rng,
                    now - 2 * DAY,
                    u,
                    TaskInput {
                        title: "审核团队周报 Review the team's weekly report".into(),
                        due_at: Some(clock.at(2, 12, 0)),
                        ..Default::default()
                    },
                    None,
                );
                task(
                    &mut rng,
                    now - 20 * DAY,
                    u,
                    TaskInput {
                        title: "准备季度销售会议 Prepare the quarterly sales meeting".into(),
                        due_at: Some(now - 10 * DAY),
                        ..Default::default()
                    },
                    Some(now - 11 * DAY),
                );
                if let Some(rep) = org.reps.iter().find(|r| org.team_of[**r] == org.team_of[u]) {
                    task(
                        &mut rng,
                        now - 3 * DAY,
                        u,
                        TaskInput {
                            title: format!(
                                "一对一辅导 1:1 coaching: {}",
                                org.users[*rep].display_name
                            ),
                            due_at: Some(clock.at(1, 15, 0)),
                            ..Default::default()
                        },
                        None,
                    );
                }
            }
            Role::Admin => {
                task(
                    &mut rng,
                    now - DAY,
                    u,
                    TaskInput {
                        title: "更新出口价目表 Update the export price lists (USD/EUR)".into(),
                        due_at: Some(clock.at(7, 18, 0)),
                        ..Default::default()
                    },
                    None,
                );
                task(
                    &mut rng,
                    now - 30 * DAY,
                    u,
                    TaskInput {
                        title: "导入秋季新品 Import the autumn products".into(),
                        due_at: Some(now - 20 * DAY),
                        ..Default::default()
                    },
                    Some(now - 21 * DAY),
                );
            }
        }

        let mut tl: Vec<(i64, usize, UserStep)> = Vec::new();
        let joined = clock.at(-590, 10, 0) + u as i64 * MIN;
        tl.push((joined, 0, UserStep::Preferences));
        for (i, (created, plan)) in tasks.iter().enumerate() {
            tl.push((*created, tl.len(), UserStep::Task(i)));
            if let Some(done) = plan.done_at {
                tl.push((done.max(created + MIN), tl.len(), UserStep::Done(i)));
            }
        }
        tl.sort_by_key(|(t, n, _)| (*t, *n));

        let mut doc = doc::skeleton(&DocId::User(user.id))?;
        for (at, _, step) in tl {
            match step {
                UserStep::Preferences => {
                    let prefs = Preferences {
                        language: Some(org.languages[u]),
                        currency: Some(Currency::CNY),
                        visit_reminder_minutes: Some(*rng.pick(&[15, 30, 60])),
                    };
                    writer.device(&mut doc, &ops::set_preferences(user.id, &prefs), u, at)?;
                }
                UserStep::Task(i) => {
                    let plan = &tasks[i].1;
                    let edit = ops::create_task(user.id, plan.id, &plan.input);
                    writer.device(&mut doc, &edit, plan.by, at)?;
                }
                UserStep::Done(i) => {
                    let edit = ops::set_task_done(user.id, tasks[i].1.id, true, at);
                    writer.device(&mut doc, &edit, u, at)?;
                }
            }
        }
        out.push((user.id, doc));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::OnceLock;

    use fieldline_protocol::model::{Tier, VisitStatus};

    use super::*;

    /// 2026-09-21 14:13 UTC: Monday evening in China.
    const NOW: i64 = 1_790_000_000_000;

    /// The demo data set, generated once for all tests.
    fn demo() -> &'static DemoData {
        static DEMO: OnceLock<DemoData> = OnceLock::new();
        DEMO.get_or_init(|| generate(&DemoSpec::demo(NOW)).unwrap())
    }

    fn small(seed: u64) -> DemoSpec {
        DemoSpec {
            seed,
            accounts: 12,
            ..DemoSpec::demo(NOW)
        }
    }

    fn account_of(doc: &Automerge) -> fieldline_protocol::model::Account {
        Reader::new(doc).account().unwrap().unwrap()
    }

    #[test]
    fn the_demo_organisation() {
        let data = demo();
        assert_eq!(data.teams.len(), 2);
        let count = |role: Role| data.users.iter().filter(|u| u.role == role).count();
        assert_eq!(count(Role::Admin), 1);
        assert_eq!(count(Role::Manager), 2);
        assert_eq!(count(Role::Rep), 6);
        assert_eq!(data.accounts.len(), 300);
        assert_eq!(data.user_docs.len(), data.users.len());
        let usernames: BTreeSet<&str> = data.users.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(usernames.len(), data.users.len());
        assert!(usernames.contains("admin") && usernames.contains("manager.east"));
        assert!(usernames.contains("rep.north.3"));
        for u in &data.users {
            assert!(u.username.is_ascii());
            assert_eq!(u.password, DEMO_PASSWORD);
            match u.role {
                Role::Admin => assert!(u.teams.is_empty() && u.manages.is_empty()),
                Role::Manager => {
                    assert_eq!(u.manages.len(), 1);
                    assert_eq!(u.teams, u.manages, "a manager is a member of their team");
                }
                Role::Rep => assert!(u.teams.len() == 1 && u.manages.is_empty()),
            }
        }
        for team in &data.teams {
            let managers = data.users.iter().filter(|u| u.manages.contains(&team.id));
            assert_eq!(managers.count(), 1);
            let reps = data
                .users
                .iter()
                .filter(|u| u.role == Role::Rep && u.teams.contains(&team.id));
            assert_eq!(reps.count(), 3);
        }
        assert!(data.teams.iter().any(|t| t.name.contains("华东")));
    }

    #[test]
    fn every_account_belongs_to_a_rep_of_its_team_and_is_readable_by_them() {
        let data = demo();
        let mut visibility = BTreeMap::new();
        let mut status = BTreeMap::new();
        let mut names = BTreeSet::new();
        let mut tiers = BTreeMap::new();
        for (id, doc) in &data.accounts {
            let account = account_of(doc);
            assert_eq!(account.id, *id);
            assert!(
                names.insert(account.name.clone()),
                "duplicate name {}",
                account.name
            );
            let acl = account.acl;
            let owner = data.users.iter().find(|u| u.id == acl.owner).unwrap();
            assert_eq!(owner.role, Role::Rep);
            assert!(owner.teams.contains(&acl.team));
            let principal = data.principal(owner.id).unwrap();
            assert!(access::can_read_account(&principal, &acl));
            assert!(access::can_write_account(&principal, &acl));
            let manager = data
                .users
                .iter()
                .find(|u| u.manages.contains(&acl.team))
                .unwrap();
            assert!(access::can_write_account(
                &data.principal(manager.id).unwrap(),
                &acl
            ));
            *visibility.entry(acl.visibility).or_insert(0) += 1;
            *status.entry(account.status).or_insert(0) += 1;
            if let Some(t) = account.tier {
                *tiers.entry(t).or_insert(0) += 1;
            }
            if account.status == AccountStatus::Customer {
                assert!(account.erp_code.is_some());
            }
        }
        assert!(visibility[&Visibility::Private] > visibility[&Visibility::Team]);
        assert!((2..=5).contains(&visibility[&Visibility::Company]));
        assert_eq!(
            status.len(),
            3,
            "leads, customers and inactive accounts: {status:?}"
        );
        assert!(tiers.contains_key(&Tier::Key) && tiers.contains_key(&Tier::Small));
    }

    #[test]
    fn visits_and_orders_cover_every_state() {
        let data = demo();
        let mut visits = BTreeMap::new();
        let mut orders = BTreeMap::new();
        let mut linked = 0;
        for (id, doc) in &data.accounts {
            let account = account_of(doc);
            let reader = Reader::new(doc);
            for v in reader.visits(*id).unwrap() {
                *visits.entry(v.status).or_insert(0) += 1;
                let t = v.planned_at.unwrap();
                assert!(t > NOW - 190 * DAY && t < NOW + 16 * DAY);
            }
            for o in reader.orders(*id).unwrap() {
                *orders.entry(o.status).or_insert(0) += 1;
                linked += usize::from(o.visit_id.is_some());
                assert_eq!(o.currency, account.currency);
                let totals = o.totals().unwrap();
                assert!(totals.gross_minor >= totals.net_minor);
                if o.status != OrderStatus::Draft {
                    assert!(o.live_lines().count() >= 1, "submitted orders have lines");
                    assert!(o.submitted_at.is_some());
                }
                for line in o.live_lines() {
                    assert!([1300, 900, 0].contains(&line.tax_bp));
                }
            }
        }
        assert_eq!(visits.len(), 4, "{visits:?}");
        assert_eq!(
            visits[&VisitStatus::InProgress],
            6,
            "one rep, one customer, right now"
        );
        assert_eq!(orders.len(), 5, "{orders:?}");
        assert!(linked > 0);
    }

    #[test]
    fn every_user_has_a_private_document() {
        let data = demo();
        for ((id, doc), user) in data.user_docs.iter().zip(&data.users) {
            assert_eq!(*id, user.id);
            let reader = Reader::new(doc);
            assert!(reader.preferences().unwrap().language.is_some());
            let tasks = reader.tasks().unwrap();
            assert!(tasks.iter().all(|t| t.assignee == user.id));
            if user.role == Role::Rep {
                assert!(tasks.iter().any(|t| t.done));
                assert!(
                    tasks
                        .iter()
                        .any(|t| !t.done && t.due_at.is_some_and(|d| d < NOW))
                );
                let today = Clock::new(NOW);
                assert!(
                    tasks
                        .iter()
                        .any(|t| t.due_at.is_some_and(|d| today.day_of(d) == 0))
                );
                assert!(
                    tasks.iter().any(|t| t.visit_id.is_some()),
                    "follow-ups of visits"
                );
                assert!(
                    tasks.iter().any(|t| t.created_by != user.id),
                    "assigned by the manager"
                );
            }
        }
    }

    #[test]
    fn the_catalog_prices_in_three_currencies() {
        let catalog = Reader::new(&demo().catalog).catalog().unwrap();
        assert_eq!(catalog.base_currency, Some(Currency::CNY));
        assert_eq!(catalog.products.len(), 40);
        assert_eq!(catalog.tax_classes.len(), 3);
        let currencies: BTreeSet<Currency> =
            catalog.price_lists.values().map(|l| l.currency).collect();
        assert_eq!(currencies.len(), 3);
        assert!(catalog.products.values().any(|p| !p.active));
        let categories: BTreeSet<_> = catalog
            .products
            .values()
            .filter_map(|p| p.category.clone())
            .collect();
        assert!(categories.len() >= 4);
    }

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let mut calls = Vec::new();
        let a = generate_with_progress(&small(7), &mut |done, total| calls.push((done, total)))
            .unwrap();
        assert_eq!(calls.len(), 12);
        assert_eq!(calls.last(), Some(&(12, 12)));
        let b = generate(&small(7)).unwrap();
        let c = generate(&small(8)).unwrap();
        assert_eq!(a.catalog.get_heads(), b.catalog.get_heads());
        assert_eq!(a.accounts[0].0, b.accounts[0].0);
        assert_eq!(a.accounts[0].1.get_heads(), b.accounts[0].1.get_heads());
        assert_eq!(a.accounts[0].1.save(), b.accounts[0].1.save());
        assert_eq!(a.users, b.users);
        assert_eq!(a.user_docs[3].1.get_heads(), b.user_docs[3].1.get_heads());
        assert_ne!(a.catalog.get_heads(), c.catalog.get_heads());
        assert_ne!(a.accounts[0].0, c.accounts[0].0);
        assert_ne!(a.accounts[0].1.get_heads(), c.accounts[0].1.get_heads());
        assert_ne!(a.users[0].id, c.users[0].id);
    }

    #[test]
    fn single_rep_gives_exactly_the_requested_counts() {
        let data = generate(&DemoSpec::single_rep(6, 3, 7, 4, 5, NOW)).unwrap();
        assert_eq!(data.teams.len(), 1);
        let reps: Vec<_> = data.users.iter().filter(|u| u.role == Role::Rep).collect();
        assert_eq!(reps.len(), 1);
        assert_eq!(data.accounts.len(), 6);
        for (id, doc) in &data.accounts {
            let reader = Reader::new(doc);
            assert_eq!(reader.account_acl().unwrap().unwrap().owner, reps[0].id);
            assert_eq!(reader.contacts(*id).unwrap().len(), 3);
            assert_eq!(reader.visits(*id).unwrap().len(), 7);
            let orders = reader.orders(*id).unwrap();
            assert_eq!(orders.len(), 4);
            for o in &orders {
                assert_eq!(o.lines.len(), 5);
                assert_eq!(o.live_lines().count(), 5);
                o.totals().unwrap();
            }
        }
    }

    #[test]
    fn empty_and_odd_specs() {
        let data = generate(&DemoSpec::single_rep(2, 0, 0, 2, 0, NOW)).unwrap();
        for (id, doc) in &data.accounts {
            let orders = Reader::new(doc).orders(*id).unwrap();
            assert!(
                orders
                    .iter()
                    .all(|o| o.status == OrderStatus::Draft && o.lines.is_empty())
            );
        }
        let bad = DemoSpec {
            teams: 0,
            ..DemoSpec::single_rep(3, 1, 1, 1, 1, NOW)
        };
        assert_eq!(
            generate(&bad).err().map(|e| e.code()),
            Some("invalid_input")
        );
        let many = DemoSpec {
            products: 90,
            ..DemoSpec::single_rep(2, 1, 2, 2, 3, NOW)
        };
        let data = generate(&many).unwrap();
        assert_eq!(
            Reader::new(&data.catalog).catalog().unwrap().products.len(),
            90
        );
    }

    #[test]
    fn any_time_of_day_or_week_works_and_nothing_happens_in_the_future() {
        for k in 0..9 {
            let now = NOW + k * 17 * HOUR + 7 * MIN;
            let spec = DemoSpec {
                accounts: 24,
                seed: k as u64,
                ..DemoSpec::demo(now)
            };
            let data = generate(&spec).unwrap();
            let docs = data
                .accounts
                .iter()
                .map(|(_, d)| d)
                .chain(data.user_docs.iter().map(|(_, d)| d))
                .chain([&data.catalog]);
            for doc in docs {
                for change in doc.get_changes(&[]) {
                    assert!(change.timestamp() <= now, "{:?}", change.message());
                }
            }
            let in_progress: usize = data
                .accounts
                .iter()
                .map(|(id, d)| {
                    let visits = Reader::new(d).visits(*id).unwrap();
                    visits
                        .iter()
                        .filter(|v| v.status == VisitStatus::InProgress)
                        .count()
                })
                .sum();
            assert_eq!(in_progress, 6);
        }
    }

    /// Replays a document change by change, judging each change like the server judges an
    /// upload: as the user whose device made it, or on the server's authority for the
    /// server's own changes. (One validation over the whole history at once is not
    /// possible: a visit created and cancelled, or an order submitted and confirmed, are
    /// separate transitions that only make sense one after the other.)
    fn replay(doc: &Automerge, doc_id: DocId, org: &Org, catalog: Option<&Catalog>) -> usize {
        let mut replica = doc::skeleton(&doc_id).unwrap();
        let changes = doc.get_changes(&replica.get_heads());
        let n = changes.len();
        for change in changes {
            let (principal, authority) = if *change.actor_id() == org.server {
                (&org.principals[org.admin], Authority::Server)
            } else {
                let user = org
                    .actors
                    .iter()
                    .position(|a| a == change.actor_id())
                    .unwrap();
                (&org.principals[user], Authority::Device)
            };
            let before = replica.get_heads();
            let message = change.message().map(str::to_owned);
            replica.apply_changes([change]).unwrap();
            assert_ne!(replica.get_heads(), before, "changes come in causal order");
            let ctx = WriteContext {
                principal,
                doc_id,
                authority,
                catalog,
            };
            if let Err(e) = validate_change(&ctx, &replica, &before) {
                panic!("{doc_id}: {message:?} refused: {e}");
            }
        }
        assert_eq!(replica.get_heads(), doc.get_heads());
        n
    }

    #[test]
    fn every_document_revalidates_from_its_skeleton() {
        let data = demo();
        let org = build_org(&DemoSpec::demo(NOW), &Clock::new(NOW));
        assert_eq!(
            org.users, data.users,
            "the organisation is rebuilt identically"
        );
        let catalog = Reader::new(&data.catalog).catalog().unwrap();
        assert!(replay(&data.catalog, DocId::Catalog, &org, None) > 40);
        for (id, doc) in &data.accounts {
            replay(doc, DocId::Account(*id), &org, Some(&catalog));
        }
        for (id, doc) in &data.user_docs {
            replay(doc, DocId::User(*id), &org, None);
        }
    }
}
