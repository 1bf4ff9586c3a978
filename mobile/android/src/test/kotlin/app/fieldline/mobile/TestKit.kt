package app.fieldline.mobile

import java.io.BufferedReader
import java.io.InputStreamReader
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.CompletableFuture
import java.util.concurrent.TimeUnit
import org.json.JSONArray
import org.json.JSONObject

/**
 * Test kit: starts the real `fieldline-server` binary on a loopback port and sets up an
 * organisation through its JSON admin API. Nothing is mocked.
 *
 * The binary comes from the system property `fieldline.server` (set by
 * `mobile/scripts/test.sh`, `rep-day.sh` and `bench.sh`).
 */
class TestServer private constructor(
    private val process: Process,
    /** `http://127.0.0.1:PORT` */
    val baseUrl: String,
) : AutoCloseable {
    companion object {
        const val ADMIN_PASSWORD = "admin-password-for-tests"

        fun binary(): Path {
            val path = System.getProperty("fieldline.server")
            require(!path.isNullOrBlank()) {
                "set -Dfieldline.server=/path/to/fieldline-server (mobile/scripts/test.sh does)"
            }
            val p = Path.of(path)
            require(Files.isExecutable(p)) { "fieldline-server not found at $p; build it with cargo build -p fieldline-server" }
            return p
        }

        /** A server on an empty data directory with one admin (`admin` / [ADMIN_PASSWORD]). */
        fun start(dataDir: Path): TestServer {
            Files.createDirectories(dataDir)
            val create = ProcessBuilder(
                binary().toString(), "create-user", "--role", "admin", "--username", "admin",
                "--data-dir", dataDir.toString(),
            ).redirectErrorStream(true)
            create.environment()["FIELDLINE_NEW_PASSWORD"] = ADMIN_PASSWORD
            create.environment()["RUST_LOG"] = "warn"
            val p = create.start()
            val output = p.inputStream.readAllBytes().decodeToString()
            check(p.waitFor(120, TimeUnit.SECONDS) && p.exitValue() == 0) { "create-user failed: $output" }
            return spawn("serve", dataDir)
        }

        /** A server seeded with the demo organisation (users `rep.east.1` … / `fieldline-demo`). */
        fun startDemo(dataDir: Path): TestServer {
            Files.createDirectories(dataDir)
            return spawn("demo", dataDir)
        }

        private fun spawn(command: String, dataDir: Path): TestServer {
            val builder = ProcessBuilder(
                binary().toString(), command, "--addr", "127.0.0.1:0", "--data-dir", dataDir.toString(),
            ).redirectError(ProcessBuilder.Redirect.INHERIT)
            builder.environment()["RUST_LOG"] = System.getenv("FIELDLINE_TEST_LOG") ?: "warn"
            val process = builder.start()
            val listening = CompletableFuture<String>()
            // Keep draining stdout so the server never blocks on a full pipe.
            Thread {
                BufferedReader(InputStreamReader(process.inputStream)).useLines { lines ->
                    for (line in lines) {
                        if (line.startsWith("listening on ")) listening.complete(line.removePrefix("listening on ").trim())
                    }
                }
                listening.completeExceptionally(IllegalStateException("fieldline-server exited before listening"))
            }.apply { isDaemon = true }.start()
            val url = try {
                listening.get(300, TimeUnit.SECONDS)
            } catch (e: Exception) {
                process.destroyForcibly()
                throw IllegalStateException("fieldline-server did not start listening", e)
            }
            return TestServer(process, url)
        }
    }

    override fun close() {
        process.destroyForcibly()
        process.waitFor(30, TimeUnit.SECONDS)
    }
}

/** A small client of the server's JSON API (what an admin console would do). */
class AdminApi(private val baseUrl: String) {
    private val http: HttpClient = HttpClient.newHttpClient()

    fun call(method: String, path: String, token: String?, body: JSONObject?): Pair<Int, Any?> {
        val builder = HttpRequest.newBuilder(URI.create(baseUrl + path))
            .header("content-type", "application/json")
            .method(method, body?.let { HttpRequest.BodyPublishers.ofString(it.toString()) } ?: HttpRequest.BodyPublishers.noBody())
        if (token != null) builder.header("authorization", "Bearer $token")
        val response = http.send(builder.build(), HttpResponse.BodyHandlers.ofString())
        val text = response.body()
        val json: Any? = when {
            text.isBlank() -> null
            text.trimStart().startsWith("{") -> JSONObject(text)
            text.trimStart().startsWith("[") -> JSONArray(text)
            else -> text
        }
        return response.statusCode() to json
    }

    fun ok(method: String, path: String, token: String, body: JSONObject? = null): JSONObject? {
        val (status, json) = call(method, path, token, body)
        check(status in 200..299) { "$method $path: $status $json" }
        return json as? JSONObject
    }

    fun login(username: String, password: String): String {
        val (status, json) = call("POST", "/v1/auth/login", null, JSONObject(mapOf("username" to username, "password" to password)))
        check(status == 200) { "login $username: $status $json" }
        return (json as JSONObject).getString("access_token")
    }

    fun createTeam(admin: String, name: String): String =
        ok("POST", "/v1/teams", admin, JSONObject(mapOf("name" to name)))!!.getJSONObject("team").getString("id")

    /** Creates a user with the password `<username>-password`; a manager manages [team]. */
    fun createUser(admin: String, username: String, role: String, team: String): String {
        val body = JSONObject(
            mapOf(
                "username" to username, "display_name" to username, "role" to role,
                "password" to "$username-password", "teams" to listOf(team),
            ),
        )
        val id = ok("POST", "/v1/users", admin, body)!!.getJSONObject("user").getString("id")
        if (role == "manager") ok("PUT", "/v1/teams/$team/managers/$id", admin)
        return id
    }

    /** Base currency CNY, a 13 % tax class and [names] as products (50.00, 60.00, … CNY). */
    fun createCatalog(admin: String, names: List<String>): List<String> {
        ok("PUT", "/v1/catalog/settings", admin, JSONObject(mapOf("base_currency" to "CNY")))
        ok("PUT", "/v1/catalog/tax-classes/standard", admin, JSONObject(mapOf("name" to "VAT 13%", "rate_bp" to 1300)))
        return names.mapIndexed { i, name ->
            val body = JSONObject(
                mapOf(
                    "sku" to "TEA-$i", "name" to name, "category" to "tea", "unit" to "box",
                    "base_price_minor" to 5000 + i * 1000, "tax_class" to "standard", "active" to true,
                ),
            )
            ok("POST", "/v1/catalog/products", admin, body)!!.getString("id")
        }
    }
}

/** One team "East" with a manager and a rep, and a catalog of three teas. */
class Org(val server: TestServer) {
    val api = AdminApi(server.baseUrl)
    val admin = api.login("admin", TestServer.ADMIN_PASSWORD)
    val team = api.createTeam(admin, "East")
    val managerId = api.createUser(admin, "manager", "manager", team)
    val repId = api.createUser(admin, "rep.a", "rep", team)
    val products = api.createCatalog(admin, listOf("Longjing 500g", "Oolong 250g", "Green tea gift box"))

    companion object {
        fun password(username: String) = "$username-password"
    }
}
