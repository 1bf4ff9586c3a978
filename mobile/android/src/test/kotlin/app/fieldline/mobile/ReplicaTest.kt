package app.fieldline.mobile

import java.nio.file.Files
import java.nio.file.Path
import java.util.Collections
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertDoesNotThrow
import org.junit.jupiter.api.assertThrows

/**
 * The bindings from Kotlin, against the real native library and a real fieldline-server:
 * a rep works offline, syncs, receives a manager's change (by sync and live), and gets clear
 * errors for bad input.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ReplicaTest {
    private lateinit var dir: Path
    private lateinit var server: TestServer
    private lateinit var org: Org
    private lateinit var url: String

    @BeforeAll
    fun startServer() {
        dir = Files.createTempDirectory("fieldline-kotlin-")
        server = TestServer.start(dir.resolve("server"))
        org = Org(server)
        url = server.baseUrl
    }

    @AfterAll
    fun stopServer() {
        server.close()
        dir.toFile().deleteRecursively()
    }

    private fun <T> notNull(value: T?, message: String? = null): T {
        assertNotNull(value, message)
        return value!!
    }

    private fun replicaPath(name: String) = dir.resolve("$name-${System.nanoTime()}.db").toString()

    private fun signIn(username: String): AuthSession = runBlocking { login(url, username, Org.password(username)) }

    /** A replica of [username], signed in and synced once. */
    private fun openSynced(username: String): Pair<Replica, AuthSession> {
        val session = signIn(username)
        val replica = Replica.open(replicaPath(username))
        runBlocking { replica.sync(url, session.accessToken, null) }
        return replica to session
    }

    private fun accountInput(name: String, city: String? = null) = AccountInput(
        name = name,
        currency = "CNY",
        status = AccountStatus.LEAD,
        address = Address(city = city),
    )

    private class Recorder : ChangeListener {
        val seen: MutableList<ChangeSet> = Collections.synchronizedList(mutableListOf())
        override fun onChange(changes: ChangeSet) {
            seen.add(changes)
        }
        fun accounts(): Set<String> = synchronized(seen) { seen.flatMap { it.accounts }.toSet() }
    }

    @Test
    fun `a rep works offline, then syncs`() {
        val session = signIn("rep.a")
        assertEquals("rep.a", session.user.username)
        assertEquals(Role.REP, session.user.role)
        assertEquals(org.repId, session.user.id)
        assertTrue(session.expiresInSeconds > 0)

        Replica.open(replicaPath("rep-offline")).use { rep ->
            // Before the first sync the replica does not know its user.
            assertNull(rep.signedInUser())
            assertThrows<ApiException.NotSignedIn> {
                rep.createAccount(accountInput("Too early"), Visibility.TEAM, "", listOf())
            }

            val phases = Collections.synchronizedList(mutableListOf<SyncProgress>())
            val first = runBlocking {
                rep.sync(url, session.accessToken, object : SyncProgressListener {
                    override fun onProgress(progress: SyncProgress) {
                        phases.add(progress)
                    }
                })
            }
            assertTrue(first.complete)
            assertTrue(first.documentsReceived >= 1uL, "the catalog and the user's document arrive")
            assertEquals(SyncPhase.Done, phases.last().phase)
            assertTrue(phases.any { it.phase is SyncPhase.Sending })
            val me = notNull(rep.signedInUser())
            assertEquals("rep.a", me.username)
            assertEquals(listOf(org.team), me.teams)
            assertEquals(3, rep.products("", 50u).size)
            assertEquals(1, rep.products("oolong", 50u).size)

            val recorder = Recorder()
            rep.setChangeListener(recorder)

            // Offline: create an account and log a visit; nothing touches the network.
            val account = rep.createAccount(accountInput("Teahouse Lin", "Hangzhou"), Visibility.TEAM, "Prefers mornings", listOf("vip"))
            assertTrue(account in recorder.accounts(), "the listener hears about the new account")
            assertTrue(recorder.seen.any { it.outbox })
            val visit = rep.logVisit(account, GeoPoint(30.25, 120.17, 15.0), "Intro", VisitReport(outcome = "Interested"))
            assertEquals(2L, rep.pendingChanges())

            val listed = rep.accountsByName(50u, 0u)
            assertEquals(listOf("Teahouse Lin"), listed.map { it.name })
            assertEquals("Hangzhou", listed[0].city)
            assertEquals(listOf("vip"), listed[0].tags)
            assertNotNull(listed[0].lastVisitAt)
            assertEquals(listOf(account), rep.searchAccounts("hangzhou", 10u).map { it.id })
            val detail = notNull(rep.account(account))
            assertEquals("Prefers mornings", detail.notes)
            assertEquals(org.repId, detail.owner)
            assertEquals(Visibility.TEAM, detail.visibility)
            val visits = rep.visits(account)
            assertEquals(listOf(visit), visits.map { it.id })
            assertEquals(VisitStatus.COMPLETED, visits[0].status)
            assertEquals(30.25, visits[0].checkInLocation?.lat)

            val result = runBlocking { rep.sync(url, session.accessToken, null) }
            assertEquals(2uL, result.accepted)
            assertEquals(0uL, result.rejected)
            assertEquals(0L, rep.pendingChanges())
            assertTrue(rep.parkedWrites().isEmpty())
            rep.setChangeListener(null)
        }
    }

    @Test
    fun `a manager's change reaches the rep, by sync and live`() {
        val (rep, repSession) = openSynced("rep.a")
        val (manager, managerSession) = openSynced("manager")
        rep.use {
            manager.use {
                val account = rep.createAccount(accountInput("Shop Chen", "Suzhou"), Visibility.TEAM, "", listOf())
                runBlocking { rep.sync(url, repSession.accessToken, null) }
                runBlocking { manager.sync(url, managerSession.accessToken, null) }
                assertNotNull(manager.account(account), "the manager reads the team's accounts")

                // By sync: the manager plans a visit and assigns a follow-up task to the rep.
                val tomorrow = System.currentTimeMillis() + 24 * 3600 * 1000L
                val planned = manager.planVisit(account, tomorrow, "Quarterly review")
                val task = manager.createTaskFor(org.repId, TaskInput(title = "Bring samples", accountId = account))
                runBlocking { manager.sync(url, managerSession.accessToken, null) }

                val recorder = Recorder()
                rep.setChangeListener(recorder)
                val result = runBlocking { rep.sync(url, repSession.accessToken, null) }
                assertTrue(account in result.changes.accounts)
                assertTrue(result.changes.tasks)
                assertTrue(account in recorder.accounts(), "the listener fired for the manager's visit")
                assertTrue(recorder.seen.any { it.tasks })
                val upcoming = rep.upcomingVisits(System.currentTimeMillis(), 10u)
                assertEquals(listOf(planned), upcoming.map { it.visit.id })
                assertEquals("Shop Chen", upcoming[0].accountName)
                assertEquals(org.managerId, upcoming[0].visit.createdBy)
                assertEquals(listOf(account), rep.accountsByNextVisit(10u).map { it.id })
                val tasks = rep.tasks(true, null, 10u)
                assertEquals(listOf(task), tasks.map { it.id })
                assertEquals(org.managerId, tasks[0].createdBy)

                // Live: the rep stays connected; the manager's next change is pushed.
                val pushed = CountDownLatch(1)
                val ended = CountDownLatch(1)
                val endReason = Collections.synchronizedList(mutableListOf<LiveEnd>())
                rep.setChangeListener(object : ChangeListener {
                    override fun onChange(changes: ChangeSet) {
                        if (account in changes.accounts) pushed.countDown()
                    }
                })
                val live = runBlocking {
                    rep.connectLive(url, repSession.accessToken, object : LiveListener {
                        override fun onSynced(result: SyncResult) {}
                        override fun onPush(changes: ChangeSet) {}
                        override fun onEnded(reason: LiveEnd) {
                            endReason.add(reason)
                            ended.countDown()
                        }
                    })
                }
                live.use {
                    assertTrue(live.initialSync().complete)
                    assertFalse(live.isFinished())
                    val second = manager.planVisit(account, tomorrow + 3600_000L, "Tasting")
                    runBlocking { manager.sync(url, managerSession.accessToken, null) }
                    assertTrue(pushed.await(60, TimeUnit.SECONDS), "the push arrived and the listener fired")
                    assertNotNull(rep.visit(second))
                    runBlocking { live.disconnect() }
                    assertTrue(ended.await(30, TimeUnit.SECONDS))
                    assertEquals(listOf<LiveEnd>(LiveEnd.Closed), endReason.toList())
                    assertTrue(live.isFinished())
                }
                rep.setChangeListener(null)
            }
        }
    }

    @Test
    fun `a visit day with a follow-up and an order`() {
        val (rep, session) = openSynced("rep.a")
        rep.use {
            val account = rep.createAccount(accountInput("Tea Garden Wu"), Visibility.PRIVATE, "", listOf())
            val now = System.currentTimeMillis()
            val visit = rep.planVisit(account, now + 60_000L, "Restock")
            rep.checkIn(account, visit, null)
            assertEquals(VisitStatus.IN_PROGRESS, rep.visit(visit)?.status)
            val task = rep.completeVisit(
                account, visit, GeoPoint(31.2, 121.4, null),
                VisitReport(outcome = "Ordered", nextStep = "Deliver", notes = "Wants oolong"),
                FollowUp(title = "Call back about delivery", dueAt = now + 2 * 86_400_000L),
            )
            assertNotNull(task)
            val done = notNull(rep.visit(visit))
            assertEquals(VisitStatus.COMPLETED, done.status)
            assertEquals("Wants oolong", done.notes)
            val day = rep.visitsBetween(now - 3_600_000L, now + 86_400_000L)
            assertTrue(day.any { it.visit.id == visit })
            val open = rep.tasks(true, null, 50u).map { it.id }
            assertTrue(task in open)

            // An order from the catalog, taken at the visit.
            val product = rep.products("longjing", 5u).single().product
            val order = rep.createOrder(account, null, visit)
            val quote = rep.quote(account, order, product.id, "2.5")
            assertEquals(5000L, quote.unitPriceMinor)
            assertEquals("CNY", quote.currency)
            assertEquals(12500L, quote.totals.netMinor)
            val line = rep.addOrderLine(account, order, product.id, "2.5", 1000)
            rep.updateOrderLine(account, order, line, "3", 1000)
            val draft = notNull(rep.order(order))
            assertEquals(OrderStatus.DRAFT, draft.status)
            assertEquals("3", draft.lines.single().quantity)
            assertEquals(13500L, draft.totals.netMinor, "3 × 50.00 − 10 %")
            assertEquals(1755L, draft.totals.taxMinor)
            assertEquals(draft.totals, draft.lines.single().totals)
            assertEquals(listOf(order), rep.ordersWithStatus(OrderStatus.DRAFT, 10u).map { it.id })
            rep.submitOrder(account, order)
            assertEquals(OrderStatus.SUBMITTED, rep.order(order)?.status)
            assertTrue(rep.ordersWithStatus(OrderStatus.DRAFT, 10u).none { it.id == order })

            val timeline = rep.timeline(account, 20u)
            assertTrue(timeline.any { it is TimelineItem.Visit && it.visit.id == visit })
            assertTrue(timeline.any { it is TimelineItem.Order && it.order.id == order })
            assertTrue(timeline.any { it is TimelineItem.Task && it.task.id == task })

            rep.setTaskDone(task!!, true)
            assertTrue(task !in rep.tasks(true, null, 50u).map { it.id })
            rep.setPreferences(Preferences(language = Language.ZH, visitReminderMinutes = 30))

            val result = runBlocking { rep.sync(url, session.accessToken, null) }
            assertEquals(0uL, result.rejected)
            assertEquals(0L, rep.pendingChanges())
        }
    }

    @Test
    fun `bad input gets a clear ApiException`() {
        val (rep, _) = openSynced("rep.a")
        rep.use {
            val empty = assertThrows<ApiException.InvalidInput> {
                rep.createAccount(accountInput("   "), Visibility.TEAM, "", listOf())
            }
            assertEquals("account name must not be empty", empty.message)
            assertThrows<ApiException.InvalidInput> { rep.visits("not-an-id") }
            assertThrows<ApiException.InvalidInput> {
                rep.createAccount(accountInput("X").copy(currency = "XYZ"), Visibility.TEAM, "", listOf())
            }
            assertThrows<ApiException.InvalidInput> {
                rep.createAccount(accountInput("X").copy(email = "not an address"), Visibility.TEAM, "", listOf())
            }
            assertThrows<ApiException.NotFound> {
                rep.updateAccount("0190f5c2-0000-7000-8000-000000000000", accountInput("Ghost"))
            }
            assertThrows<ApiException.Forbidden> {
                rep.createTaskFor(org.managerId, TaskInput(title = "Not mine to assign"))
            }

            val account = rep.createAccount(accountInput("Order Shop"), Visibility.TEAM, "", listOf())
            val order = rep.createOrder(account, null, null)
            assertThrows<ApiException.InvalidInput>("an empty order cannot be submitted") { rep.submitOrder(account, order) }
            val product = org.products[0]
            assertThrows<ApiException.InvalidInput>("more than three decimals") {
                rep.addOrderLine(account, order, product, "1.2345", 0)
            }
            val line = rep.addOrderLine(account, order, product, "1", 0)
            rep.submitOrder(account, order)
            val locked = assertThrows<ApiException.Conflict> { rep.updateOrderLine(account, order, line, "2", 0) }
            assertTrue(locked.message!!.contains("locked"), locked.message)
            assertThrows<ApiException.Conflict> { rep.addOrderLine(account, order, product, "1", 0) }
            assertThrows<ApiException.Conflict> { rep.discardOrder(account, order) }

            val visit = rep.logVisit(account, null, null, VisitReport())
            assertThrows<ApiException.Conflict>("a completed visit cannot be checked in again") {
                rep.checkIn(account, visit, null)
            }
            // Nothing of the refused edits was written.
            assertEquals("1", rep.order(order)!!.lines.single().quantity)

            // Sign-in and network errors.
            assertThrows<ApiException.Unauthorized> { runBlocking { login(url, "rep.a", "wrong password") } }
            assertThrows<ApiException.Unauthorized> { runBlocking { rep.sync(url, "not-a-token", null) } }
            assertThrows<ApiException.InvalidInput> { runBlocking { rep.sync("ftp://example.invalid", "t", null) } }
            // Nothing listens on port 1: the transport retries with backoff, then gives up.
            assertThrows<ApiException.Network> { runBlocking { login("http://127.0.0.1:1", "rep.a", "x") } }
        }
    }

    @Test
    fun `a listener that throws does not break the edit`() {
        val (rep, _) = openSynced("rep.a")
        rep.use {
            var calls = 0
            rep.setChangeListener(object : ChangeListener {
                override fun onChange(changes: ChangeSet) {
                    calls++
                    throw IllegalStateException("a buggy screen")
                }
            })
            val account = rep.createAccount(accountInput("Still saved"), Visibility.TEAM, "", listOf())
            assertEquals(1, calls)
            assertEquals("Still saved", rep.account(account)?.name)
            rep.setChangeListener(null)
            rep.setTag(account, "after", true)
            assertEquals(1, calls, "a removed listener is not called")
        }
    }

    @Test
    fun `objects close without leaks`() {
        val path = replicaPath("close")
        val replica = Replica.open(path)
        assertDoesNotThrow { replica.close() }
        assertDoesNotThrow { replica.close() }
        assertThrows<IllegalStateException>("a closed object refuses calls") { replica.deviceId() }
        // The file was released: it opens again, with the same device ID every time.
        val first = Replica.open(path).use { it.deviceId() }
        val second = Replica.open(path).use { it.deviceId() }
        assertEquals(first, second)
        // Many short-lived objects (and their callback handles) do not pile up.
        repeat(200) {
            Replica.open(path).use { r ->
                r.setChangeListener(Recorder())
                r.accountCount()
                r.setChangeListener(null)
            }
        }
        assertThrows<ApiException.InvalidInput> { Replica.open("") }
    }
}
