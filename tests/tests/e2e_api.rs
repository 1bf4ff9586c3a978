//! The HTTP API against bad input and floods, and the admin features: every bad request is a
//! clear 4xx JSON error with a stable code, nothing is stored, the server stays up.

use fieldline_protocol::automerge;
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::{Currency, Quantity};
use fieldline_protocol::ops::AccountInput;
use fieldline_protocol::wire::{
    Bytes, Cursor, DocUpload, Hash, PROTOCOL_VERSION, Replacement, SyncRequest,
};
use fieldline_tests::*;
use serde_json::json;

async fn stored_changes(api: &Api) -> u64 {
    let (_, text) = api.call("GET", "/metrics", None, None).await.unwrap();
    let text = text.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("fieldline_stored_changes "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_with(&dir.path().join("server"), &["--max-body-bytes", "70000"]).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let api = &org.api;
    let http = reqwest::Client::new();
    // A phone that knows who it is (used for a replacement claim below).
    let phone = Device::open(dir.path(), "phone", &org.rep_a).unwrap();
    phone.sync().await.unwrap();
    let before = stored_changes(api).await;

    // Malformed and unexpected JSON.
    let r = http
        .post(format!("{}/v1/teams", server.base))
        .bearer_auth(&org.admin.access)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    let (status, body) = api
        .call(
            "POST",
            "/v1/teams",
            Some(&org.admin.access),
            Some(json!({ "name": "x", "colour": "red" })),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "unknown fields are refused"
    );
    let (status, body) = api.call("POST", "/v1/users", Some(&org.admin.access), Some(json!({ "username": "x y", "display_name": "X", "role": "rep", "password": "long-enough-1" }))).await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_username"))
    );
    let (status, body) = api.call("POST", "/v1/users", Some(&org.admin.access), Some(json!({ "username": "shorty", "display_name": "X", "role": "rep", "password": "123" }))).await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("weak_password"))
    );
    let (status, body) = api
        .call(
            "POST",
            "/v1/teams",
            Some(&org.admin.access),
            Some(json!({ "name": "East" })),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already_exists"))
    );
    let (status, body) = api
        .call(
            "POST",
            "/v1/teams",
            Some(&org.rep_a.access),
            Some(json!({ "name": "Mine" })),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, body) = api
        .call(
            "GET",
            "/v1/accounts/not-a-uuid",
            Some(&org.rep_a.access),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_id"))
    );
    let (status, body) = api
        .call("GET", "/v1/nothing-here", None, None)
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("no_such_endpoint"))
    );
    let (status, body) = api
        .call("DELETE", "/v1/me", Some(&org.rep_a.access), None)
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );

    // Sync: garbage, wrong content type, invalid automerge bytes, unknown protocol.
    let device = DeviceId::new();
    let r = http
        .post(format!("{}/v1/sync", server.base))
        .bearer_auth(&org.rep_a.access)
        .header("content-type", "application/x-fieldline-sync")
        .body(vec![0xff; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "malformed_message"
    );
    let r = http
        .post(format!("{}/v1/sync", server.base))
        .bearer_auth(&org.rep_a.access)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "unsupported_media_type"
    );
    let good_doc = DocId::Account(AccountId::new());
    let req = SyncRequest {
        protocol: PROTOCOL_VERSION,
        device_id: device,
        cursor: Cursor(0),
        uploads: vec![DocUpload {
            doc: good_doc,
            changes: vec![Bytes(b"definitely not automerge".to_vec())],
            replaces: vec![],
        }],
        want_full: vec![],
    };
    let (status, _, body) = raw_sync(&server.base, &org.rep_a.access, &req)
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_change"))
    );
    let req = SyncRequest {
        protocol: 99,
        uploads: vec![],
        ..req
    };
    let (status, _, body) = raw_sync(&server.base, &org.rep_a.access, &req)
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unsupported_protocol"))
    );
    // A document nobody has heard of.
    let req = SyncRequest {
        protocol: PROTOCOL_VERSION,
        want_full: vec![good_doc],
        ..req
    };
    let (status, _, _) = raw_sync(&server.base, &org.rep_a.access, &req)
        .await
        .unwrap();
    assert_eq!(status, 403);
    // A body over the limit.
    let r = http
        .post(format!("{}/v1/sync", server.base))
        .bearer_auth(&org.rep_a.access)
        .header("content-type", "application/x-fieldline-sync")
        .body(vec![0u8; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "body_too_large"
    );
    // A valid change with a malformed claim that it replaces refused ones: the round is
    // refused whole, the valid change included.
    phone
        .replica
        .create_account(
            &AccountInput::named("Replaced nothing", Currency::CNY),
            Visibility::Private,
            "",
            &[],
        )
        .unwrap();
    let valid = phone.replica.prepare_sync(usize::MAX).unwrap();
    let some_hash = Hash([7; 32]);
    for replaces in [
        vec![Replacement {
            change: some_hash,
            originals: vec![some_hash],
        }],
        vec![Replacement {
            change: Hash(
                automerge::Change::from_bytes(valid.uploads[0].changes[0].0.clone())
                    .unwrap()
                    .hash()
                    .0,
            ),
            originals: vec![],
        }],
    ] {
        let mut req = valid.clone();
        req.uploads[0].replaces = replaces;
        let (status, _, body) = raw_sync(&server.base, &org.rep_a.access, &req)
            .await
            .unwrap();
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_replacement"))
        );
    }

    assert_eq!(
        stored_changes(api).await,
        before,
        "no bad request stored anything"
    );
    let (status, _) = api.call("GET", "/healthz", None, None).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_user_is_limited_and_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(
        &dir.path().join("server"),
        &["--requests-per-minute", "120"],
    )
    .unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let mut limited = 0;
    let mut retry_after = None;
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let (http, url, token) = (
            http.clone(),
            format!("{}/v1/me", server.base),
            org.rep_a.access.clone(),
        );
        tasks.push(tokio::spawn(async move {
            http.get(url).bearer_auth(token).send().await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        if r.status() == 429 {
            limited += 1;
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(
                r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
                "rate_limited"
            );
        }
    }
    assert!(limited >= 150, "{limited} of 300 requests limited");
    assert!(retry_after.is_some(), "429s say when to retry");
    // Another user syncs undisturbed.
    let other = Device::open(dir.path(), "other", &org.rep_b).unwrap();
    other.sync().await.unwrap();
    let (status, _) = org.api.call("GET", "/healthz", None, None).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_endpoint_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let doc = org
        .api
        .ok("GET", "/v1/openapi.json", &org.admin.access, None)
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 30);
    let id = uuid::Uuid::now_v7().to_string();
    for (path, methods) in paths {
        let concrete = path
            .replace("{id}", &id)
            .replace("{team}", &id)
            .replace("{user}", &id)
            .replace("{order}", &id)
            .replace("{item}", &id)
            .replace("{code}", "standard");
        for method in methods.as_object().unwrap().keys() {
            if path.ends_with("/ws") {
                continue;
            }
            let (status, body) = org
                .api
                .call(
                    &method.to_uppercase(),
                    &concrete,
                    Some(&org.admin.access),
                    None,
                )
                .await
                .unwrap();
            let code = body["error"]["code"].as_str().unwrap_or_default();
            assert!(
                code != "no_such_endpoint" && status != 405,
                "{method} {path} is documented but not served ({status} {code})"
            );
        }
    }
    let metrics = org.api.call("GET", "/metrics", None, None).await.unwrap().1;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("fieldline_http_requests_total")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_import_is_all_or_nothing_and_orders_go_to_the_back_office() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let http = reqwest::Client::new();
    let import = |csv: &'static str, token: String| {
        let (http, url) = (http.clone(), format!("{}/v1/import/accounts", server.base));
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "text/csv")
                .body(csv)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let bad = "name,owner,currency,email,city\nGood Co,rep.b,CNY,a@b.cn,Shanghai\n,rep.b,CNY,,x\nBad Mail,rep.b,CNY,not-an-email,x\nWho,nobody,CNY,,x\n";
    let (status, body) = import(bad, org.manager.access.clone()).await;
    assert_eq!(status, 422, "{body}");
    let rows: Vec<u64> = body["error"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        rows,
        vec![3, 4, 5],
        "every bad row is reported with its line"
    );
    let listed = org
        .api
        .ok("GET", "/v1/accounts", &org.manager.access, None)
        .await
        .unwrap();
    assert_eq!(
        listed["accounts"].as_array().unwrap().len(),
        0,
        "nothing was imported"
    );
    let good = "name,owner,currency,city,tags,visibility\n杭州西湖茶庄,rep.b,CNY,杭州,vip;tea,private\nGolden Dragon,rep.b,USD,Shanghai,,team\n";
    let (status, body) = import(good, org.manager.access.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], 2);
    let (status, _) = import(good, org.rep_a.access.clone()).await;
    assert_eq!(status, 403, "reps do not import");
    let rep = Device::open(dir.path(), "rep_b", &org.rep_b).unwrap();
    rep.sync().await.unwrap();
    let found = rep.replica.search_accounts("西湖", 10).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].tags, vec!["tea", "vip"]);

    // An order goes to the back office and comes back confirmed.
    let account = found[0].id;
    let order = rep.replica.create_order(account, None, None).unwrap();
    rep.replica
        .add_order_line(account, order, org.products[1], Quantity::whole(12), 500)
        .unwrap();
    rep.replica.submit_order(account, order).unwrap();
    rep.sync().await.unwrap();
    let (status, body) = org
        .api
        .call(
            "POST",
            &format!("/v1/accounts/{account}/orders/{order}/decision"),
            Some(&org.manager.access),
            Some(json!({ "status": "confirmed" })),
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "only the back office (admins) decides: {body}");
    org.api
        .ok(
            "POST",
            &format!("/v1/accounts/{account}/orders/{order}/decision"),
            &org.admin.access,
            Some(json!({ "status": "confirmed", "erp_ref": "ERP-2026-0042" })),
        )
        .await
        .unwrap();
    let (status, body) = org
        .api
        .call(
            "POST",
            &format!("/v1/accounts/{account}/orders/{order}/decision"),
            Some(&org.admin.access),
            Some(json!({ "status": "rejected" })),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );
    rep.sync().await.unwrap();
    let detail = rep.replica.order(order).unwrap().unwrap();
    assert_eq!(detail.order.status, OrderStatus::Confirmed);
    assert_eq!(detail.order.erp_ref.as_deref(), Some("ERP-2026-0042"));
    assert_eq!(detail.totals.net_minor, 12 * 6000 * 95 / 100);
    assert_eq!(
        rep.replica
            .update_order_line(
                account,
                order,
                detail.order.lines[0].id,
                Quantity::whole(1),
                0
            )
            .unwrap_err()
            .code(),
        "locked"
    );
    // The history shows who did what, from where, when the server received it.
    let history = org
        .api
        .ok(
            "GET",
            &format!("/v1/accounts/{account}/history"),
            &org.manager.access,
            None,
        )
        .await
        .unwrap();
    let sources: Vec<&str> = history["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"sync") && sources.contains(&"server") && sources.contains(&"import"),
        "{sources:?}"
    );
    let _ = AccountInput::named("unused", Currency::CNY);
}
