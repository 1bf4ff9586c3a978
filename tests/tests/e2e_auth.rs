//! JWT attacks against the real server: alg `none`, HS/RS confusion, expiry, wrong audience,
//! tampered signatures, tokens of another server, deactivated users — all 401.

use fieldline_protocol::model::Role;
use fieldline_server::auth::{TokenIssuer, load_or_create_hs256_secret};
use fieldline_tests::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

const RSA_PRIVATE: &[u8] =
    include_bytes!("../../server/tests/fixtures/auth/test_only_rsa2048_private_pkcs8.pem");
const RSA_PUBLIC: &[u8] =
    include_bytes!("../../server/tests/fixtures/auth/test_only_rsa2048_public_spki.pem");

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(user: &str, aud: &str, exp: i64) -> serde_json::Value {
    json!({ "sub": user, "role": "admin", "iss": "fieldline", "aud": aud, "exp": exp, "iat": now() - 10, "jti": "t" })
}

async fn status_with(api: &Api, token: &str) -> (u16, String) {
    let (status, body) = api.call("GET", "/v1/me", Some(token), None).await.unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_stale_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let server = TestServer::start(&data).unwrap();
    let api = Api::new(&server.base);
    let admin = TestServer::admin_id(&data).unwrap().to_string();
    let secret = load_or_create_hs256_secret(&data.join("token-signing-key")).unwrap();
    // A genuine token works.
    let good = encode(
        &Header::new(Algorithm::HS256),
        &claims(&admin, "fieldline-sync", now() + 600),
        &EncodingKey::from_secret(&secret),
    )
    .unwrap();
    assert_eq!(status_with(&api, &good).await.0, 200);

    let mut bad: Vec<(&str, String)> = Vec::new();
    // alg none.
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims(&admin, "fieldline-sync", now() + 600)
        .to_string()
        .as_bytes());
    bad.push(("alg none", format!("{header}.{payload}.")));
    // RS256 signed with someone's RSA key, to a server pinned to HS256.
    bad.push((
        "RS256 to an HS256 server",
        encode(
            &Header::new(Algorithm::RS256),
            &claims(&admin, "fieldline-sync", now() + 600),
            &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
        )
        .unwrap(),
    ));
    // Expired (beyond the leeway).
    bad.push((
        "expired",
        encode(
            &Header::new(Algorithm::HS256),
            &claims(&admin, "fieldline-sync", now() - 3600),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap(),
    ));
    // Wrong audience.
    bad.push((
        "wrong audience",
        encode(
            &Header::new(Algorithm::HS256),
            &claims(&admin, "another-app", now() + 600),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap(),
    ));
    // Tampered: the payload changed (role rep → admin is already admin; change the subject).
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = b64(claims(
        &fieldline_protocol::ids::UserId::new().to_string(),
        "fieldline-sync",
        now() + 600,
    )
    .to_string()
    .as_bytes());
    bad.push(("tampered payload", parts.join(".")));
    let mut sig: Vec<String> = good.split('.').map(str::to_owned).collect();
    sig[2] = b64(&[7u8; 32]);
    bad.push(("tampered signature", sig.join(".")));
    // Signed by another server's key.
    let other = TokenIssuer::new(vec![9u8; 64], "fieldline", "fieldline-sync", 900).unwrap();
    let (t, _) = other
        .issue_access(
            fieldline_protocol::ids::UserId::parse(&admin).unwrap(),
            Role::Admin,
            now(),
        )
        .unwrap();
    bad.push(("another server's key", t));
    // A valid signature for a user this server does not know.
    bad.push((
        "unknown user",
        encode(
            &Header::new(Algorithm::HS256),
            &claims(
                &fieldline_protocol::ids::UserId::new().to_string(),
                "fieldline-sync",
                now() + 600,
            ),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap(),
    ));
    bad.push(("garbage", "not.a.token".into()));
    for (what, token) in &bad {
        let (status, code) = status_with(&api, token).await;
        assert_eq!(status, 401, "{what} gave {status} {code}");
        assert!(!code.is_empty(), "{what}: a stable code");
    }
    let (status, _) = api.call("GET", "/v1/me", None, None).await.unwrap();
    assert_eq!(status, 401, "no token");
    let (status, _) = api.call("GET", "/v1/me", Some("x"), None).await.unwrap();
    assert_eq!(status, 401);

    // A deactivated user's still-valid token stops working, and their refresh token too.
    let org = Org::create(&server.base).await.unwrap();
    api.ok(
        "PATCH",
        &format!("/v1/users/{}", org.rep_b.user_id),
        &org.admin.access,
        Some(json!({ "active": false })),
    )
    .await
    .unwrap();
    assert_eq!(status_with(&api, &org.rep_b.access).await.0, 401);
    let (status, _) = api
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": org.rep_b.refresh })),
        )
        .await
        .unwrap();
    assert_eq!(status, 401);
    // Refresh tokens rotate: the old one is spent.
    let (status, fresh) = api
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": org.rep_a.refresh })),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        status_with(&api, fresh["access_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    let (status, _) = api
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": org.rep_a.refresh })),
        )
        .await
        .unwrap();
    assert_eq!(status, 401, "a used refresh token is refused");
    // Wrong passwords: 401 with the same answer as unknown users.
    let (s1, b1) = api
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({ "username": "rep.a", "password": "nope-nope" })),
        )
        .await
        .unwrap();
    let (s2, b2) = api
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({ "username": "nobody", "password": "nope-nope" })),
        )
        .await
        .unwrap();
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2, "no hint whether the user exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_identity_provider_cannot_be_confused_into_hmac() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let key = dir.path().join("idp.pem");
    std::fs::write(&key, RSA_PUBLIC).unwrap();
    let server = TestServer::start_with(
        &data,
        &[
            "--external-algorithm",
            "RS256",
            "--external-public-key",
            key.to_str().unwrap(),
        ],
    )
    .unwrap();
    let api = Api::new(&server.base);
    let admin = TestServer::admin_id(&data).unwrap().to_string();
    // The identity provider's genuine RS256 token works.
    let good = encode(
        &Header::new(Algorithm::RS256),
        &claims(&admin, "fieldline-sync", now() + 600),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap();
    assert_eq!(status_with(&api, &good).await.0, 200);
    // HS256 "signed" with the public key as the HMAC secret: the classic confusion.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims(&admin, "fieldline-sync", now() + 600),
        &EncodingKey::from_secret(RSA_PUBLIC),
    )
    .unwrap();
    assert_eq!(status_with(&api, &confused).await.0, 401);
    // This server issues no tokens of its own.
    let (status, body) = api
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({ "username": "admin", "password": ADMIN_PASSWORD })),
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
}
