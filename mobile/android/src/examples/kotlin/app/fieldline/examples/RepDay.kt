package app.fieldline.examples

import app.fieldline.mobile.AccountSummary
import app.fieldline.mobile.ApiException
import app.fieldline.mobile.ChangeListener
import app.fieldline.mobile.ChangeSet
import app.fieldline.mobile.FollowUp
import app.fieldline.mobile.GeoPoint
import app.fieldline.mobile.OrderStatus
import app.fieldline.mobile.Replica
import app.fieldline.mobile.SyncPhase
import app.fieldline.mobile.SyncProgress
import app.fieldline.mobile.SyncProgressListener
import app.fieldline.mobile.SyncResult
import app.fieldline.mobile.VisitReport
import app.fieldline.mobile.login
import java.nio.file.Files
import java.time.Instant
import java.time.ZoneId
import java.time.format.DateTimeFormatter
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking

/**
 * A sales rep's day, as runnable documentation of the bindings: sign in, sync, plan a visit,
 * check in, complete it with a follow-up task, take an order from the catalog, submit it,
 * sync again.
 *
 *     RepDay <server-url> [username] [password] [replica-file]
 *
 * Defaults fit a server started with `fieldline-server demo` (user `rep.east.1`, password
 * `fieldline-demo`); `mobile/scripts/rep-day.sh` starts one and runs this.
 */
fun main(args: Array<String>) {
    if (args.isEmpty() || args[0] == "--help") {
        println("usage: RepDay <server-url> [username] [password] [replica-file]")
        exitProcess(2)
    }
    val server = args[0]
    val username = args.getOrElse(1) { "rep.east.1" }
    val password = args.getOrElse(2) { "fieldline-demo" }
    val file = args.getOrNull(3) ?: Files.createTempDirectory("rep-day-").resolve("replica.db").toString()
    try {
        RepDay(server, username, password, file).run()
    } catch (e: ApiException) {
        // Every failure of the bindings is an ApiException whose type says what to do.
        val what = when (e) {
            is ApiException.Unauthorized -> "sign in again"
            is ApiException.Network -> "no connection; try again later"
            else -> e::class.simpleName
        }
        System.err.println("failed ($what): ${e.message}")
        exitProcess(1)
    }
}

private class RepDay(
    private val server: String,
    private val username: String,
    private val password: String,
    private val file: String,
) {
    private val time = DateTimeFormatter.ofPattern("EEE HH:mm").withZone(ZoneId.systemDefault())

    private fun step(title: String) = println("\n== $title")

    private fun money(minor: Long, currency: String) = "%s %d.%02d".format(currency, minor / 100, minor % 100)

    /** Prints sync progress the way a status line would. */
    private val progress = object : SyncProgressListener {
        override fun onProgress(progress: SyncProgress) {
            when (val phase = progress.phase) {
                is SyncPhase.Retrying -> println("   retrying in ${phase.delayMs} ms (${phase.code})")
                SyncPhase.Applied -> println("   round ${progress.round}: ${progress.documentsReceived} documents so far")
                else -> {}
            }
        }
    }

    private fun report(result: SyncResult) =
        println(
            "   synced in ${result.rounds} round(s): ${result.accepted} change(s) accepted, " +
                "${result.documentsReceived} document(s) received, ${result.bytesSent + result.bytesReceived} bytes",
        )

    fun run() = runBlocking {
        step("Sign in as $username")
        val session = login(server, username, password)
        println("   hello ${session.user.displayName} (${session.user.role}); the token is valid for ${session.expiresInSeconds} s")

        // One replica file per user, opened once; close it when done (`use`).
        Replica.open(file).use { replica ->
            // Screens refresh when the replica says what changed (local edits and syncs).
            replica.setChangeListener(object : ChangeListener {
                override fun onChange(changes: ChangeSet) {
                    val parts = buildList {
                        if (changes.accounts.isNotEmpty()) add("${changes.accounts.size} account(s)")
                        if (changes.tasks) add("tasks")
                        if (changes.catalog) add("catalog")
                        if (changes.outbox) add("outbox")
                    }
                    println("   [listener] changed: ${parts.joinToString()}")
                }
            })

            step("Morning sync (device ${replica.deviceId()})")
            report(replica.sync(server, session.accessToken, progress))
            val me = replica.signedInUser() ?: error("the first sync tells the replica who its user is")
            println("   ${replica.accountCount()} accounts on this phone, ${replica.products("", 1000u).size} products in the catalog")

            step("Today's agenda")
            val now = System.currentTimeMillis()
            val agenda = replica.visitsBetween(now - 12 * 3_600_000L, now + 12 * 3_600_000L)
            if (agenda.isEmpty()) println("   nothing planned yet")
            agenda.take(5).forEach { println("   ${time.format(Instant.ofEpochMilli(it.visit.plannedAt ?: it.visit.createdAt))}  ${it.accountName}  (${it.visit.status})") }
            replica.tasks(true, null, 3u).forEach { println("   task: ${it.title}") }

            step("Plan a visit")
            val account: AccountSummary = replica.accountsByName(500u, 0u).firstOrNull { it.owner == me.userId }
                ?: replica.accountsByName(1u, 0u).firstOrNull()
                ?: error("no account on this phone")
            val visit = replica.planVisit(account.id, now + 30 * 60_000L, "Restock and new teas")
            println("   ${account.name}: visit planned at ${time.format(Instant.ofEpochMilli(now + 30 * 60_000L))}")

            step("Check in (the location is recorded only at check-in and check-out)")
            replica.checkIn(account.id, visit, GeoPoint(lat = 31.2304, lon = 121.4737, accuracyM = 12.0))

            step("Take an order from the catalog")
            val order = replica.createOrder(account.id, null, visit)
            val products = replica.products("", 3u)
            for ((i, item) in products.withIndex()) {
                val quantity = if (i == 0) "2.5" else "1"
                val quote = replica.quote(account.id, order, item.product.id, quantity)
                replica.addOrderLine(account.id, order, item.product.id, quantity, if (i == 0) 500 else 0)
                println("   + $quantity ${item.product.unit} ${item.product.name} at ${money(quote.unitPriceMinor, quote.currency)}")
            }
            val detail = replica.order(order) ?: error("the order was just created")
            println("   total ${money(detail.totals.grossMinor, detail.currency)} (tax ${money(detail.totals.taxMinor, detail.currency)})")
            replica.submitOrder(account.id, order)
            println("   submitted: ${replica.order(order)?.status}; it is read-only now")
            check(replica.order(order)?.status == OrderStatus.SUBMITTED)

            step("Complete the visit, with a follow-up task")
            val task = replica.completeVisit(
                account.id, visit, GeoPoint(lat = 31.2305, lon = 121.4738, accuracyM = 10.0),
                VisitReport(outcome = "Ordered", nextStep = "Deliver on Friday", notes = "Likes the oolong"),
                FollowUp(title = "Confirm delivery with ${account.name}", dueAt = now + 2 * 86_400_000L),
            )
            println("   follow-up task ${task?.take(8)}…; ${replica.pendingChanges()} change(s) wait for the next sync")

            step("Evening sync")
            report(replica.sync(server, session.accessToken, progress))
            println("   ${replica.pendingChanges()} change(s) pending, ${replica.parkedWrites().size} parked for review")
            replica.timeline(account.id, 3u).forEach { println("   timeline: ${it::class.simpleName}") }
            replica.setChangeListener(null)
        }
        println("\ndone (replica file: $file)")
    }
}
