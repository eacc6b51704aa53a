//! Administration over HTTP, for callers with the administrator role: users,
//! served domains and policies — the same operations as the command-line
//! tool, with the same rules.

use super::problem::{ApiResult, Problem};
use super::{AdminCaller, Body, Web};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard_core::archive::{ArchivingConfig, ArchivingPolicy};
use switchboard_core::policy::{ImPolicy, PolicyKind, PrivacyPolicy, overlay};
use switchboard_core::{Address, address};
use switchboard_store::{NewUser, PolicyScope, StoreError, UserRecord};

fn user_json(u: &UserRecord) -> Value {
    json!({
        "user": u.address,
        "display_name": u.display_name,
        "admin": u.admin,
        "created_at": u.created_ms,
    })
}

/// Every user.
pub async fn users(State(web): State<Arc<Web>>, _: AdminCaller) -> ApiResult<Json<Value>> {
    let users = web.store.list_users().await?;
    Ok(Json(
        json!({"users": users.iter().map(user_json).collect::<Vec<_>>()}),
    ))
}

/// `POST /admin/users` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    pub user: String,
    pub password: String,
    pub display_name: Option<String>,
    #[serde(default)]
    pub admin: bool,
}

const MIN_PASSWORD: usize = 8;

fn check_password(p: &str) -> ApiResult<()> {
    if p.chars().count() < MIN_PASSWORD {
        return Err(Problem::invalid(
            "password",
            format!("The password needs at least {MIN_PASSWORD} characters"),
        ));
    }
    Ok(())
}

fn check_display_name(d: &Option<String>) -> ApiResult<()> {
    if let Some(d) = d
        && (d.chars().count() > 200 || d.chars().any(char::is_control))
    {
        return Err(Problem::invalid(
            "display_name",
            "At most 200 printable characters",
        ));
    }
    Ok(())
}

/// Creates a user.
pub async fn add_user(
    State(web): State<Arc<Web>>,
    _: AdminCaller,
    Body(req): Body<NewUserBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let address = Address::parse(req.user.trim())
        .map_err(|e| Problem::invalid("user", format!("Not a user address: {e}")))?;
    if web.sip.is_reserved_user(address.user()) {
        return Err(Problem::invalid(
            "user",
            format!("{:?} is reserved for conferences", address.user()),
        ));
    }
    check_password(&req.password)?;
    check_display_name(&req.display_name)?;
    let credentials = crate::credentials::derive(&address, &req.password)
        .map_err(|e| Problem::internal("deriving credentials", e))?;
    let new = NewUser {
        address: address.to_string(),
        display_name: req.display_name.clone(),
        credentials,
        created_ms: switchboard_core::now_ms(),
    };
    match web.store.add_user(&new).await {
        Ok(()) => {}
        Err(StoreError::NotFound(_)) => {
            return Err(Problem::invalid(
                "user",
                format!("The domain {} is not served", address.domain()),
            ));
        }
        Err(StoreError::Conflict(_)) => {
            return Err(Problem::conflict(format!("The user {address} exists")));
        }
        Err(e) => return Err(e.into()),
    }
    if req.admin {
        web.store.set_admin(&address.to_string(), true).await?;
    }
    web.reload_now().await;
    tracing::info!(user = %address, "user added through the web API");
    let record = web
        .store
        .get_user(&address.to_string())
        .await?
        .ok_or_else(|| Problem::internal("user", "created user not found"))?;
    Ok((StatusCode::CREATED, Json(user_json(&record))))
}

async fn existing(web: &Web, raw: &str) -> ApiResult<(Address, UserRecord)> {
    let address = Address::parse(raw.trim())
        .map_err(|e| Problem::invalid("user", format!("Not a user address: {e}")))?;
    match web.store.get_user(&address.to_string()).await? {
        Some(u) => Ok((address, u)),
        None => Err(Problem::not_found(format!("No user {address}"))),
    }
}

/// One user.
pub async fn user(
    State(web): State<Arc<Web>>,
    _: AdminCaller,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let (_, u) = existing(&web, &raw).await?;
    Ok(Json(user_json(&u)))
}

/// `PATCH /admin/users/{user}` body: fields left out are unchanged.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default, deserialize_with = "present")]
    pub display_name: Option<Option<String>>,
    pub password: Option<String>,
    pub admin: Option<bool>,
}

fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes a user's display name, password (which signs out their web
/// sessions) or administrator role.
pub async fn update_user(
    State(web): State<Arc<Web>>,
    AdminCaller(me): AdminCaller,
    Path(raw): Path<String>,
    Body(req): Body<UpdateUser>,
) -> ApiResult<Json<Value>> {
    let (address, _) = existing(&web, &raw).await?;
    if let Some(p) = &req.password {
        check_password(p)?;
    }
    if let Some(d) = &req.display_name {
        check_display_name(d)?;
    }
    if req.admin == Some(false) && address == me.user {
        return Err(Problem::invalid(
            "admin",
            "You cannot withdraw your own administrator role",
        ));
    }
    let key = address.to_string();
    if let Some(d) = &req.display_name {
        web.store.set_display_name(&key, d.as_deref()).await?;
    }
    if let Some(a) = req.admin {
        web.store.set_admin(&key, a).await?;
    }
    if let Some(p) = &req.password {
        let credentials = crate::credentials::derive(&address, p)
            .map_err(|e| Problem::internal("deriving credentials", e))?;
        web.store.set_credentials(&key, &credentials).await?;
        web.sessions.revoke_all(&address).await?;
        for s in web.live.of_user(&address) {
            web.live.end(&web, &s.sid);
        }
    }
    web.reload_now().await;
    let (_, u) = existing(&web, &raw).await?;
    Ok(Json(user_json(&u)))
}

/// Removes a user and everything that is theirs.
pub async fn remove_user(
    State(web): State<Arc<Web>>,
    AdminCaller(me): AdminCaller,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let (address, _) = existing(&web, &raw).await?;
    if address == me.user {
        return Err(Problem::invalid("user", "You cannot remove yourself"));
    }
    for s in web.live.of_user(&address) {
        web.live.end(&web, &s.sid);
    }
    web.sessions.revoke_all(&address).await?;
    web.store.remove_user(&address.to_string()).await?;
    web.reload_now().await;
    tracing::info!(user = %address, "user removed through the web API");
    Ok(StatusCode::NO_CONTENT)
}

/// Served domains.
pub async fn domains(State(web): State<Arc<Web>>, _: AdminCaller) -> ApiResult<Json<Value>> {
    let domains = web.store.list_domains().await?;
    Ok(Json(json!({
        "domains": domains.iter().map(|d| json!({"name": d.name, "created_at": d.created_ms})).collect::<Vec<_>>()
    })))
}

/// `POST /admin/domains` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    pub name: String,
}

/// Adds a served domain.
pub async fn add_domain(
    State(web): State<Arc<Web>>,
    _: AdminCaller,
    Body(req): Body<NewDomain>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = address::normalise_domain(&req.name)
        .map_err(|e| Problem::invalid("name", format!("Not a domain name: {e}")))?;
    match web
        .store
        .add_domain(&name, switchboard_core::now_ms())
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(Problem::conflict(format!(
                "The domain {name} is served already"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    web.reload_now().await;
    Ok((StatusCode::CREATED, Json(json!({"name": name}))))
}

/// Stops serving a domain (refused while it has users).
pub async fn remove_domain(
    State(web): State<Arc<Web>>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let name = address::normalise_domain(&name)
        .map_err(|e| Problem::invalid("domain", format!("Not a domain name: {e}")))?;
    match web.store.remove_domain(&name).await {
        Ok(()) => {}
        Err(StoreError::NotFound(_)) => {
            return Err(Problem::not_found(format!(
                "The domain {name} is not served"
            )));
        }
        Err(StoreError::Conflict(_)) => {
            return Err(Problem::conflict(format!(
                "The domain {name} still has users; remove them first"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    web.reload_now().await;
    Ok(StatusCode::NO_CONTENT)
}

/// The policy kinds and whether they may have per-user documents.
const KINDS: [(&str, bool); 4] = [
    (ImPolicy::KIND, true),
    (PrivacyPolicy::KIND, true),
    (ArchivingPolicy::KIND, true),
    (ArchivingConfig::KIND, false),
];

fn kind_of(kind: &str) -> ApiResult<(&'static str, bool)> {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .copied()
        .ok_or_else(|| {
            Problem::not_found(format!(
                "No policy kind {kind:?}; kinds: {}",
                KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            ))
        })
}

fn defaults(kind: &str) -> Value {
    match kind {
        ImPolicy::KIND => serde_json::to_value(ImPolicy::default()),
        PrivacyPolicy::KIND => serde_json::to_value(PrivacyPolicy::default()),
        ArchivingPolicy::KIND => serde_json::to_value(ArchivingPolicy::default()),
        _ => serde_json::to_value(ArchivingConfig::default()),
    }
    .unwrap_or(Value::Null)
}

fn validate_as<K: PolicyKind + DeserializeOwned>(doc: &Value) -> Result<(), String> {
    let full = overlay(
        &serde_json::to_value(K::default()).unwrap_or(Value::Null),
        doc,
    );
    serde_json::from_value::<K>(full)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn validate(kind: &str, doc: &Value) -> ApiResult<()> {
    if !doc.is_object() {
        return Err(Problem::bad_request("A policy document is a JSON object"));
    }
    let r = match kind {
        ImPolicy::KIND => validate_as::<ImPolicy>(doc),
        PrivacyPolicy::KIND => validate_as::<PrivacyPolicy>(doc),
        ArchivingPolicy::KIND => validate_as::<ArchivingPolicy>(doc),
        _ => validate_as::<ArchivingConfig>(doc),
    };
    r.map_err(|e| {
        let mut p = Problem::bad_request(format!("Invalid {kind} policy: {e}"));
        p.field = e
            .split('`')
            .nth(1)
            .map(str::to_owned)
            .filter(|_| e.contains("field"));
        p.kind = "/problems/invalid-field".into();
        p
    })
}

fn scope_of(web: &Web, kind: &str, per_user: bool, raw: &str) -> ApiResult<PolicyScope> {
    if raw == "global" {
        return Ok(PolicyScope::Global);
    }
    if !per_user {
        return Err(Problem::invalid(
            "scope",
            format!("The {kind} policy has a global document only"),
        ));
    }
    let user = web.parse_user("scope", raw, None)?;
    Ok(PolicyScope::User(user.to_string()))
}

/// The documents of a policy kind: defaults, global and per user.
pub async fn policies(
    State(web): State<Arc<Web>>,
    _: AdminCaller,
    Path(kind): Path<String>,
) -> ApiResult<Json<Value>> {
    let (kind, _) = kind_of(&kind)?;
    let docs = web.store.list_policies(kind).await?;
    let mut global = Value::Null;
    let mut users = serde_json::Map::new();
    for (scope, doc) in docs {
        match scope {
            PolicyScope::Global => global = doc,
            PolicyScope::User(u) => {
                users.insert(u, doc);
            }
        }
    }
    Ok(Json(json!({
        "kind": kind,
        "defaults": defaults(kind),
        "global": global,
        "users": users,
    })))
}

/// Sets the fields of a policy document at a scope (`global` or a user).
/// Fields given replace the stored ones; others are kept.
pub async fn set_policy(
    State(web): State<Arc<Web>>,
    _: AdminCaller,
    Path((kind, scope)): Path<(String, String)>,
    Body(doc): Body<Value>,
) -> ApiResult<Json<Value>> {
    let (kind, per_user) = kind_of(&kind)?;
    let scope = scope_of(&web, kind, per_user, &scope)?;
    if let PolicyScope::User(u) = &scope
        && web.store.get_user(u).await?.is_none()
    {
        return Err(Problem::not_found(format!("No user {u}")));
    }
    let current = web
        .store
        .get_policy(kind, &scope)
        .await?
        .unwrap_or_else(|| json!({}));
    let merged = overlay(&current, &doc);
    validate(kind, &merged)?;
    web.store.set_policy(kind, &scope, &merged).await?;
    web.reload_now().await;
    tracing::info!(kind, scope = %scope.key(), "policy set through the web API");
    // The scope as the API names it (`global` or the user's address, as in
    // the path and in the `users` map of GET), not the storage key.
    let scope = match &scope {
        PolicyScope::Global => "global".to_owned(),
        PolicyScope::User(u) => u.clone(),
    };
    Ok(Json(
        json!({"kind": kind, "scope": scope, "document": merged}),
    ))
}

/// Removes a policy document at a scope (the user falls back to the global
/// document, the global one to the defaults).
pub async fn clear_policy(
    State(web): State<Arc<Web>>,
    _: AdminCaller,
    Path((kind, scope)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (kind, per_user) = kind_of(&kind)?;
    let scope = scope_of(&web, kind, per_user, &scope)?;
    match web.store.clear_policy(kind, &scope).await {
        Ok(()) => {}
        Err(StoreError::NotFound(_)) => {
            return Err(Problem::not_found("No document at this scope"));
        }
        Err(e) => return Err(e.into()),
    }
    web.reload_now().await;
    Ok(StatusCode::NO_CONTENT)
}
