package app.fieldline.examples

import app.fieldline.mobile.AccountInput
import app.fieldline.mobile.AccountStatus
import app.fieldline.mobile.Address
import app.fieldline.mobile.Org
import app.fieldline.mobile.Replica
import app.fieldline.mobile.TestServer
import app.fieldline.mobile.Visibility
import app.fieldline.mobile.VisitReport
import app.fieldline.mobile.login
import java.nio.file.Files
import kotlinx.coroutines.runBlocking

/**
 * Benchmarks of the bindings as an app sees them (figures, not assertions). Prints JSON
 * lines `{"scenario","metric","value","unit"}`.
 *
 * Starts a real fieldline-server (`-Dfieldline.server`), signs a rep in, syncs, creates
 * 2,000 accounts through the FFI, then measures:
 * - `list_2000_accounts`: `accountsByName(2000, 0)` — the query, the conversion of 2,000
 *   records and their transfer to Kotlin (target < 20 ms p50);
 * - `log_visit`: one `logVisit` call — validation, a durable SQLite transaction (fsync) and
 *   the projection (target < 3 ms p50);
 * - `create_account` while setting up, and the upload of it all in one sync.
 *
 * `mobile/scripts/bench.sh` runs it against a release build of the library.
 */
fun main() {
    val dir = Files.createTempDirectory("fieldline-bench-")
    TestServer.start(dir.resolve("server")).use { server ->
        val org = Org(server)
        val url = server.baseUrl
        val session = runBlocking { login(url, "rep.a", Org.password("rep.a")) }
        Replica.open(dir.resolve("bench.db").toString()).use { replica ->
            runBlocking { replica.sync(url, session.accessToken, null) }
            check(org.products.size == replica.products("", 10u).size)

            val create = LongArray(2000)
            val ids = ArrayList<String>(2000)
            for (i in 0 until 2000) {
                val input = AccountInput(
                    name = "Account %04d %s".format(i, listOf("Tea", "Shop", "Market", "Teahouse")[i % 4]),
                    currency = "CNY",
                    status = AccountStatus.CUSTOMER,
                    address = Address(city = listOf("Hangzhou", "Suzhou", "Shanghai", "Nanjing")[i % 4]),
                    phone = "+86 21 5555 %04d".format(i),
                )
                val t0 = System.nanoTime()
                ids.add(replica.createAccount(input, Visibility.TEAM, "", listOf("bench")))
                create[i] = System.nanoTime() - t0
            }
            emit("create_account", "p50", percentile(create, 50.0), "ms")
            emit("create_account", "p99", percentile(create, 99.0), "ms")

            val t0 = System.nanoTime()
            val result = runBlocking { replica.sync(url, session.accessToken, null) }
            emit("sync_upload_2000_accounts", "total", (System.nanoTime() - t0) / 1e6, "ms")
            emit("sync_upload_2000_accounts", "accepted", result.accepted.toDouble(), "changes")

            // Listing 2,000 accounts through the FFI.
            repeat(5) { check(replica.accountsByName(2000u, 0u).size == 2000) }
            val list = LongArray(50) {
                val s = System.nanoTime()
                val rows = replica.accountsByName(2000u, 0u)
                val e = System.nanoTime() - s
                check(rows.size == 2000)
                e
            }
            emit("list_2000_accounts", "p50", percentile(list, 50.0), "ms")
            emit("list_2000_accounts", "p99", percentile(list, 99.0), "ms")
            val page = LongArray(200) {
                val s = System.nanoTime()
                replica.accountsByName(50u, (it * 7 % 1950).toUInt())
                System.nanoTime() - s
            }
            emit("list_page_of_50", "p50", percentile(page, 50.0), "ms")

            // Logging a visit from Kotlin.
            repeat(20) { replica.logVisit(ids[it], null, "warm-up", VisitReport()) }
            val log = LongArray(500) {
                val account = ids[(it * 13) % ids.size]
                val s = System.nanoTime()
                replica.logVisit(account, null, "Check-in", VisitReport(outcome = "ok"))
                System.nanoTime() - s
            }
            emit("log_visit", "p50", percentile(log, 50.0), "ms")
            emit("log_visit", "p99", percentile(log, 99.0), "ms")
        }
    }
    dir.toFile().deleteRecursively()
}

private fun percentile(nanos: LongArray, p: Double): Double {
    val sorted = nanos.sorted()
    val index = ((p / 100.0) * (sorted.size - 1)).let { Math.round(it).toInt() }
    return sorted[index] / 1e6
}

private fun emit(scenario: String, metric: String, value: Double, unit: String) =
    println("""{"scenario":"$scenario","metric":"$metric","value":${"%.3f".format(java.util.Locale.ROOT, value)},"unit":"$unit"}""")
