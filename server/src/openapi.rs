//! The OpenAPI 3.1 description served at `/v1/openapi.json`.
//!
//! Written by hand next to the routes it describes (`app`, `sync`, `admin`); an end-to-end
//! test calls every path and method listed here and checks the server serves it.

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn op(summary: &str, tag: &str, body: Option<Value>, ok: (&str, &str)) -> Value {
    let mut o = json!({
        "summary": summary,
        "tags": [tag],
        "responses": {
            ok.0: { "description": ok.1 },
            "400": error_response("Malformed request"),
            "401": error_response("Missing, invalid or expired access token"),
            "403": error_response("Not allowed"),
            "429": error_response("Too many requests (see Retry-After)"),
        },
        "security": [{ "bearer": [] }],
    });
    if let Some(b) = body {
        o["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": b } } });
    }
    o
}

/// Adds a 409 response listing the conflict codes an operation can answer.
fn with_conflict(mut o: Value, codes: &str) -> Value {
    o["responses"]["409"] = error_response(&format!("Conflict: {codes}"));
    o
}

fn obj(props: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": props, "required": required, "additionalProperties": false })
}

pub fn document() -> Value {
    let uuid = json!({ "type": "string", "format": "uuid" });
    let role = json!({ "type": "string", "enum": ["rep", "manager", "admin"] });
    let vis = json!({ "type": "string", "enum": ["private", "team", "company"] });
    let login_body = obj(
        json!({ "username": { "type": "string" }, "password": { "type": "string" } }),
        &["username", "password"],
    );
    let refresh_body = obj(
        json!({ "refresh_token": { "type": "string" } }),
        &["refresh_token"],
    );
    let mut login = op(
        "Sign in with a username and password",
        "auth",
        Some(login_body),
        ("200", "Access and refresh tokens"),
    );
    login["security"] = json!([]);
    let mut refresh = op(
        "Exchange a refresh token (it rotates)",
        "auth",
        Some(refresh_body.clone()),
        ("200", "New tokens"),
    );
    refresh["security"] = json!([]);
    let mut logout = op(
        "Revoke a refresh token",
        "auth",
        Some(refresh_body),
        ("204", "Revoked"),
    );
    logout["security"] = json!([]);
    let sync = json!({
        "summary": "One sync round: upload new changes, receive what changed after the cursor",
        "description": "Body and response are postcard-encoded SyncRequest / SyncResponse (see fieldline_protocol::wire).",
        "tags": ["sync"],
        "security": [{ "bearer": [] }],
        "requestBody": { "required": true, "content": { "application/x-fieldline-sync": { "schema": { "type": "string", "format": "binary" } } } },
        "responses": {
            "200": { "description": "A SyncResponse", "content": { "application/x-fieldline-sync": { "schema": { "type": "string", "format": "binary" } } } },
            "400": error_response("Malformed message or change"),
            "401": error_response("Bad token"),
            "403": error_response("A requested document may not be read"),
            "413": error_response("Body too large"),
            "429": error_response("Too many requests"),
        }
    });
    let user_body = obj(
        json!({ "username": { "type": "string" }, "display_name": { "type": "string" }, "role": role, "password": { "type": "string" }, "teams": { "type": "array", "items": uuid } }),
        &["username", "display_name", "role"],
    );
    let patch_user = obj(
        json!({ "display_name": { "type": "string" }, "role": role, "active": { "type": "boolean" }, "password": { "type": "string" } }),
        &[],
    );
    let team_body = obj(json!({ "name": { "type": "string" } }), &["name"]);
    let assignment = obj(
        json!({ "owner": uuid, "team": uuid, "visibility": vis }),
        &[],
    );
    let decision = obj(
        json!({ "status": { "type": "string", "enum": ["confirmed", "rejected", "delivered"] }, "erp_ref": { "type": "string" }, "reason": { "type": "string" } }),
        &["status"],
    );
    let product = obj(
        json!({ "sku": { "type": "string" }, "name": { "type": "string" }, "category": { "type": "string" }, "unit": { "type": "string" },
                "base_price_minor": { "type": "integer" }, "tax_class": { "type": "string" }, "active": { "type": "boolean" } }),
        &[
            "sku",
            "name",
            "unit",
            "base_price_minor",
            "tax_class",
            "active",
        ],
    );
    let price = obj(
        json!({ "product_id": uuid, "price_minor": { "type": "integer" }, "min_qty": { "type": "integer", "description": "thousandths" },
                "valid_from": { "type": "integer" }, "valid_to": { "type": "integer" } }),
        &["product_id", "price_minor"],
    );
    let note = obj(json!({ "note": { "type": "string" } }), &[]);
    let mut import = op(
        "Import accounts from CSV (all rows or nothing)",
        "accounts",
        None,
        ("201", "Accounts created"),
    );
    import["requestBody"] =
        json!({ "required": true, "content": { "text/csv": { "schema": { "type": "string" } } } });
    import["responses"]["422"] =
        error_response("Invalid rows, listed in error.rows; nothing imported");
    let mut health = json!({ "summary": "Liveness", "tags": ["ops"], "responses": { "200": { "description": "OK" } } });
    health["security"] = json!([]);
    let mut metrics = json!({ "summary": "Prometheus metrics", "tags": ["ops"], "responses": { "200": { "description": "Text exposition format" } } });
    metrics["security"] = json!([]);
    let ws = json!({ "summary": "Sync over a WebSocket: ClientFrame / ServerFrame binary frames, plus live pushes", "tags": ["sync"],
                     "security": [{ "bearer": [] }], "responses": { "101": { "description": "Switching protocols" } } });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Fieldline sync server", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Offline-first field-sales CRM: sync, sign-in, and the manager and admin API. Errors are {\"error\":{\"code\",\"message\"}} with stable codes." },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": { "Error": obj(json!({ "error": obj(json!({ "code": { "type": "string" }, "message": { "type": "string" } }), &["code", "message"]) }), &["error"]) }
        },
        "paths": {
            "/healthz": { "get": health },
            "/metrics": { "get": metrics },
            "/v1/openapi.json": { "get": { "summary": "This document", "tags": ["ops"], "security": [], "responses": { "200": { "description": "OpenAPI JSON" } } } },
            "/v1/auth/login": { "post": login },
            "/v1/auth/refresh": { "post": refresh },
            "/v1/auth/logout": { "post": logout },
            "/v1/me": { "get": op("Who am I: user and memberships", "auth", None, ("200", "The caller")) },
            "/v1/sync": { "post": sync },
            "/v1/sync/ws": { "get": ws },
            "/v1/users": { "get": op("List users (managers: their teams)", "organisation", None, ("200", "Users")),
                           "post": op("Create a user (admins)", "organisation", Some(user_body), ("201", "Created")) },
            "/v1/users/{id}": { "patch": op("Change a user (admins)", "organisation", Some(patch_user), ("200", "Updated")) },
            "/v1/teams": { "get": op("List teams", "organisation", None, ("200", "Teams")),
                           "post": op("Create a team (admins)", "organisation", Some(team_body), ("201", "Created")) },
            "/v1/teams/{team}/members/{user}": { "put": op("Add a member (admins)", "organisation", None, ("204", "Added")),
                                                 "delete": op("Remove a member (admins)", "organisation", None, ("204", "Removed")) },
            "/v1/teams/{team}/managers/{user}": { "put": op("Add a manager (admins)", "organisation", None, ("204", "Added")),
                                                  "delete": op("Remove a manager (admins)", "organisation", None, ("204", "Removed")) },
            "/v1/accounts": { "get": op("Accounts the caller may read", "accounts", None, ("200", "Accounts")) },
            "/v1/accounts/{id}": { "get": op("An account with contacts, visits and orders", "accounts", None, ("200", "The account")) },
            "/v1/accounts/{id}/history": { "get": op("Accepted changes: who, from which device, when received", "accounts", None, ("200", "Change log")) },
            "/v1/accounts/{id}/assignment": { "post": op("Reassign an account or change its visibility (managers, admins)", "accounts", Some(assignment), ("200", "New owner, team and visibility")) },
            "/v1/accounts/{id}/orders/{order}/decision": { "post": op("Back office: confirm, reject or deliver an order (admins)", "accounts", Some(decision), ("200", "Decided")) },
            "/v1/import/accounts": { "post": import },
            "/v1/catalog": { "get": op("The catalog", "catalog", None, ("200", "Products, tax classes, price lists")) },
            "/v1/catalog/settings": { "put": op("Set the base currency (admins)", "catalog", Some(obj(json!({ "base_currency": { "type": "string" } }), &["base_currency"])), ("204", "Set")) },
            "/v1/catalog/tax-classes/{code}": { "put": op("Create or change a tax class (admins)", "catalog", Some(obj(json!({ "name": { "type": "string" }, "rate_bp": { "type": "integer" } }), &["name", "rate_bp"])), ("204", "Set")) },
            "/v1/catalog/products": { "post": op("Create a product (admins)", "catalog", Some(product.clone()), ("201", "Created")) },
            "/v1/catalog/products/{id}": { "put": op("Create or replace a product (admins)", "catalog", Some(product), ("204", "Saved")) },
            "/v1/catalog/price-lists": { "post": op("Create a price list (admins)", "catalog", Some(obj(json!({ "name": { "type": "string" }, "currency": { "type": "string" } }), &["name", "currency"])), ("201", "Created")) },
            "/v1/catalog/price-lists/{id}/items": { "post": op("Add a price (admins)", "catalog", Some(price), ("201", "Created")) },
            "/v1/catalog/price-lists/{id}/items/{item}": { "delete": op("Remove a price (admins)", "catalog", None, ("204", "Removed")) },
            "/v1/reviews": { "get": op("Refused changes parked for review (managers: their teams)", "reviews", None, ("200", "Review items")) },
            "/v1/reviews/{id}": { "get": op("A review item with the decoded change", "reviews", None, ("200", "The item")) },
            "/v1/reviews/{id}/approve": { "post": with_conflict(
                op("Apply the change after all (rules are checked again)", "reviews", Some(note.clone()), ("204", "Applied")),
                "already_resolved (someone decided first), still_refused (it breaks a rule other than access), missing_dependencies (approve the item it builds on first)",
            ) },
            "/v1/reviews/{id}/dismiss": { "post": with_conflict(
                op("Keep the change out", "reviews", Some(note), ("204", "Dismissed")),
                "already_resolved (someone decided first)",
            ) },
        }
    })
}
