"""The bindings from Python, against the real native library and a real fieldline-server:
the same flows as the Kotlin tests (offline work, sync, a manager's change by sync and live,
a visit day with an order, clear errors, objects released)."""

import asyncio
import gc
import threading
import time

import pytest

from conftest import password
from fieldline import (
    AccountInput,
    AccountStatus,
    Address,
    ApiError,
    ChangeListener,
    FollowUp,
    GeoPoint,
    LiveEnd,
    LiveListener,
    OrderStatus,
    Preferences,
    Language,
    Replica,
    Role,
    SyncPhase,
    SyncProgressListener,
    TaskInput,
    TimelineItem,
    Visibility,
    VisitReport,
    VisitStatus,
    login,
)

DAY_MS = 86_400_000


def now_ms():
    return int(time.time() * 1000)


def account_input(name, city=None, **extra):
    return AccountInput(name=name, currency="CNY", status=AccountStatus.LEAD,
                        address=Address(city=city), **extra)


def sign_in(server, username):
    return asyncio.run(login(server.url, username, password(username)))


def open_synced(server, tmp_path, username):
    session = sign_in(server, username)
    replica = Replica.open(str(tmp_path / f"{username}-{time.monotonic_ns()}.db"))
    asyncio.run(replica.sync(server.url, session.access_token, None))
    return replica, session


class Recorder(ChangeListener):
    def __init__(self):
        self.seen = []
        self.lock = threading.Lock()

    def on_change(self, changes):
        with self.lock:
            self.seen.append(changes)

    def accounts(self):
        with self.lock:
            return {a for c in self.seen for a in c.accounts}


def test_a_rep_works_offline_then_syncs(server, org, tmp_path):
    session = sign_in(server, "rep.a")
    assert session.user.username == "rep.a"
    assert session.user.role == Role.REP
    assert session.user.id == org.rep_id

    rep = Replica.open(str(tmp_path / "rep.db"))
    assert rep.signed_in_user() is None
    with pytest.raises(ApiError.NotSignedIn):
        rep.create_account(account_input("Too early"), Visibility.TEAM, "", [])

    phases = []

    class Progress(SyncProgressListener):
        def on_progress(self, progress):
            phases.append(progress.phase)

    first = asyncio.run(rep.sync(server.url, session.access_token, Progress()))
    assert first.complete
    assert first.documents_received >= 1
    assert isinstance(phases[-1], SyncPhase.DONE)
    assert any(isinstance(p, SyncPhase.SENDING) for p in phases)
    me = rep.signed_in_user()
    assert me.username == "rep.a" and me.teams == [org.team]
    assert len(rep.products("", 50)) == 3

    recorder = Recorder()
    rep.set_change_listener(recorder)
    account = rep.create_account(account_input("Teahouse Lin", "Hangzhou"), Visibility.TEAM,
                                 "Prefers mornings", ["vip"])
    assert account in recorder.accounts()
    visit = rep.log_visit(account, GeoPoint(lat=30.25, lon=120.17, accuracy_m=15.0), "Intro",
                          VisitReport(outcome="Interested"))
    assert rep.pending_changes() == 2

    listed = rep.accounts_by_name(50, 0)
    assert [a.name for a in listed] == ["Teahouse Lin"]
    assert listed[0].tags == ["vip"] and listed[0].city == "Hangzhou"
    assert [a.id for a in rep.search_accounts("hangzhou", 10)] == [account]
    detail = rep.account(account)
    assert detail.notes == "Prefers mornings" and detail.owner == org.rep_id
    visits = rep.visits(account)
    assert [v.id for v in visits] == [visit]
    assert visits[0].status == VisitStatus.COMPLETED

    result = asyncio.run(rep.sync(server.url, session.access_token, None))
    assert result.accepted == 2 and result.rejected == 0
    assert rep.pending_changes() == 0
    assert rep.parked_writes() == []
    rep.set_change_listener(None)


def test_a_managers_change_reaches_the_rep_by_sync_and_live(server, org, tmp_path):
    rep, rep_session = open_synced(server, tmp_path, "rep.a")
    manager, manager_session = open_synced(server, tmp_path, "manager")
    account = rep.create_account(account_input("Shop Chen", "Suzhou"), Visibility.TEAM, "", [])
    asyncio.run(rep.sync(server.url, rep_session.access_token, None))
    asyncio.run(manager.sync(server.url, manager_session.access_token, None))
    assert manager.account(account) is not None

    tomorrow = now_ms() + DAY_MS
    planned = manager.plan_visit(account, tomorrow, "Quarterly review")
    task = manager.create_task_for(org.rep_id, TaskInput(title="Bring samples", account_id=account))
    asyncio.run(manager.sync(server.url, manager_session.access_token, None))

    recorder = Recorder()
    rep.set_change_listener(recorder)
    result = asyncio.run(rep.sync(server.url, rep_session.access_token, None))
    assert account in result.changes.accounts and result.changes.tasks
    assert account in recorder.accounts()
    upcoming = rep.upcoming_visits(now_ms(), 10)
    assert [u.visit.id for u in upcoming] == [planned]
    assert upcoming[0].account_name == "Shop Chen"
    assert upcoming[0].visit.created_by == org.manager_id
    assert [t.id for t in rep.tasks(True, None, 10)] == [task]

    # Live: the rep stays connected; the manager's next change is pushed.
    pushed = threading.Event()
    ended = threading.Event()
    reasons = []

    class Pushes(ChangeListener):
        def on_change(self, changes):
            if account in changes.accounts:
                pushed.set()

    class Live(LiveListener):
        def on_synced(self, result):
            pass

        def on_push(self, changes):
            pass

        def on_ended(self, reason):
            reasons.append(reason)
            ended.set()

    rep.set_change_listener(Pushes())

    async def connect():
        return await rep.connect_live(server.url, rep_session.access_token, Live())

    live = asyncio.run(connect())
    assert live.initial_sync().complete
    assert not live.is_finished()
    second = manager.plan_visit(account, tomorrow + 3_600_000, "Tasting")
    asyncio.run(manager.sync(server.url, manager_session.access_token, None))
    assert pushed.wait(60), "the push arrived and the listener fired"
    assert rep.visit(second) is not None
    asyncio.run(live.disconnect())
    assert ended.wait(30)
    assert reasons == [LiveEnd.CLOSED()]
    assert live.is_finished()
    rep.set_change_listener(None)


def test_a_visit_day_with_a_follow_up_and_an_order(server, org, tmp_path):
    rep, session = open_synced(server, tmp_path, "rep.a")
    account = rep.create_account(account_input("Tea Garden Wu"), Visibility.PRIVATE, "", [])
    now = now_ms()
    visit = rep.plan_visit(account, now + 60_000, "Restock")
    rep.check_in(account, visit, None)
    assert rep.visit(visit).status == VisitStatus.IN_PROGRESS
    task = rep.complete_visit(
        account, visit, GeoPoint(lat=31.2, lon=121.4),
        VisitReport(outcome="Ordered", next_step="Deliver", notes="Wants oolong"),
        FollowUp(title="Call back about delivery", due_at=now + 2 * DAY_MS),
    )
    assert task is not None
    assert rep.visit(visit).status == VisitStatus.COMPLETED
    assert any(i.visit.id == visit for i in rep.visits_between(now - 3_600_000, now + DAY_MS))
    assert task in [t.id for t in rep.tasks(True, None, 50)]

    product = rep.products("longjing", 5)[0].product
    order = rep.create_order(account, None, visit)
    quote = rep.quote(account, order, product.id, "2.5")
    assert (quote.unit_price_minor, quote.currency, quote.totals.net_minor) == (5000, "CNY", 12500)
    line = rep.add_order_line(account, order, product.id, "2.5", 1000)
    rep.update_order_line(account, order, line, "3", 1000)
    draft = rep.order(order)
    assert draft.status == OrderStatus.DRAFT
    assert draft.lines[0].quantity == "3"
    assert (draft.totals.net_minor, draft.totals.tax_minor) == (13500, 1755)
    assert [o.id for o in rep.orders_with_status(OrderStatus.DRAFT, 10)] == [order]
    rep.submit_order(account, order)
    assert rep.order(order).status == OrderStatus.SUBMITTED

    timeline = rep.timeline(account, 20)
    assert any(isinstance(i, TimelineItem.VISIT) and i.visit.id == visit for i in timeline)
    assert any(isinstance(i, TimelineItem.ORDER) and i.order.id == order for i in timeline)
    assert any(isinstance(i, TimelineItem.TASK) and i.task.id == task for i in timeline)

    rep.set_task_done(task, True)
    assert task not in [t.id for t in rep.tasks(True, None, 50)]
    rep.set_preferences(Preferences(language=Language.ZH, visit_reminder_minutes=30))
    assert rep.preferences() == Preferences(language=Language.ZH, currency=None, visit_reminder_minutes=30)
    result = asyncio.run(rep.sync(server.url, session.access_token, None))
    assert result.rejected == 0
    assert rep.pending_changes() == 0


def test_bad_input_gets_a_clear_api_error(server, org, tmp_path):
    rep, _ = open_synced(server, tmp_path, "rep.a")
    with pytest.raises(ApiError.InvalidInput) as empty:
        rep.create_account(account_input("   "), Visibility.TEAM, "", [])
    assert str(empty.value) == "account name must not be empty"
    with pytest.raises(ApiError.InvalidInput):
        rep.visits("not-an-id")
    with pytest.raises(ApiError.InvalidInput):
        rep.create_account(AccountInput(name="X", currency="XYZ", status=AccountStatus.LEAD,
                                        address=Address()), Visibility.TEAM, "", [])
    with pytest.raises(ApiError.NotFound):
        rep.update_account("0190f5c2-0000-7000-8000-000000000000", account_input("Ghost"))
    with pytest.raises(ApiError.Forbidden):
        rep.create_task_for(org.manager_id, TaskInput(title="Not mine to assign"))

    account = rep.create_account(account_input("Order Shop"), Visibility.TEAM, "", [])
    order = rep.create_order(account, None, None)
    with pytest.raises(ApiError.InvalidInput):
        rep.submit_order(account, order)  # no lines yet
    with pytest.raises(ApiError.InvalidInput):
        rep.add_order_line(account, order, org.products[0], "1.2345", 0)
    line = rep.add_order_line(account, order, org.products[0], "1", 0)
    rep.submit_order(account, order)
    with pytest.raises(ApiError.Conflict) as locked:
        rep.update_order_line(account, order, line, "2", 0)
    assert "locked" in str(locked.value)
    with pytest.raises(ApiError.Conflict):
        rep.discard_order(account, order)
    visit = rep.log_visit(account, None, None, VisitReport())
    with pytest.raises(ApiError.Conflict):
        rep.check_in(account, visit, None)
    assert rep.order(order).lines[0].quantity == "1"

    with pytest.raises(ApiError.Unauthorized):
        asyncio.run(login(server.url, "rep.a", "wrong password"))
    with pytest.raises(ApiError.Unauthorized):
        asyncio.run(rep.sync(server.url, "not-a-token", None))
    with pytest.raises(ApiError.InvalidInput):
        asyncio.run(rep.sync("ftp://example.invalid", "t", None))


def test_a_listener_that_raises_does_not_break_the_edit(server, org, tmp_path):
    rep, _ = open_synced(server, tmp_path, "rep.a")
    calls = []

    class Buggy(ChangeListener):
        def on_change(self, changes):
            calls.append(changes)
            raise RuntimeError("a buggy screen")

    rep.set_change_listener(Buggy())
    account = rep.create_account(account_input("Still saved"), Visibility.TEAM, "", [])
    assert len(calls) == 1
    assert rep.account(account).name == "Still saved"
    rep.set_change_listener(None)
    rep.set_tag(account, "after", True)
    assert len(calls) == 1


def test_objects_are_released(tmp_path):
    path = str(tmp_path / "release.db")
    replica = Replica.open(path)
    device = replica.device_id()
    del replica
    gc.collect()
    # The file was released: it opens again, with the same device ID.
    assert Replica.open(path).device_id() == device
    for _ in range(200):
        r = Replica.open(path)
        r.set_change_listener(Recorder())
        r.account_count()
        r.set_change_listener(None)
        del r
    gc.collect()
    with pytest.raises(ApiError.InvalidInput):
        Replica.open("")
