//! The caller's contact list: contacts with their group and the privacy
//! access level the caller gives them, groups, the blocked list, and the
//! watchers waiting for a decision while privacy mode is on.
//!
//! Blocking someone who is not in the list does not put them in it: the store
//! keeps the block as an unlisted entry, which no list-shaped answer shows and
//! which unblocking removes, so that a blocked and then unblocked stranger is
//! exactly where they were before (still waiting, with privacy mode on).

use super::problem::{ApiResult, Problem};
use super::{Body, Caller, OptionalBody, Web, presence_json};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use switchboard_core::Address;
use switchboard_core::presence::{AccessLevel, Decision};
use switchboard_store::ContactRecord;

const MAX_GROUP_NAME: usize = 100;

fn contact_json(web: &Web, me: &Address, r: &ContactRecord) -> Value {
    let addr = Address::parse(&r.contact).ok();
    let view = addr.as_ref().map(|a| web.presence_for(a, me));
    json!({
        "user": r.contact,
        "display_name": addr.as_ref().and_then(|a| web.display_of(a)),
        "group": r.group,
        "level": r.level,
        "presence": view.as_ref().map(|v| presence_json(&v.state)),
        "access": view.as_ref().map(|v| if v.pending { "pending" } else { "allowed" }),
        "added_at": r.added_ms,
    })
}

/// The whole list with groups and presence.
pub async fn list(State(web): State<Arc<Web>>, Caller(me): Caller) -> ApiResult<Json<Value>> {
    let owner = me.user.to_string();
    let contacts = web.store.list_contacts(&owner).await?;
    let groups = web.store.list_groups(&owner).await?;
    Ok(Json(json!({
        "groups": groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>(),
        "contacts": contacts.iter().map(|c| contact_json(&web, &me.user, c)).collect::<Vec<_>>(),
    })))
}

/// `owner`'s entry for `contact` in their list (not a block of someone outside it).
async fn find(web: &Web, owner: &Address, contact: &Address) -> ApiResult<Option<ContactRecord>> {
    Ok(web
        .store
        .get_contact(&owner.to_string(), &contact.to_string())
        .await?
        .filter(|c| c.listed))
}

/// One contact.
pub async fn one(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(contact): Path<String>,
) -> ApiResult<Json<Value>> {
    let contact = web.parse_user("contact", &contact, Some(&me.user))?;
    match find(&web, &me.user, &contact).await? {
        Some(r) => Ok(Json(contact_json(&web, &me.user, &r))),
        None => Err(Problem::not_found("Not in your contact list")),
    }
}

/// `PUT /contacts/{contact}` body. Fields left out keep their current value
/// for an existing contact; `null` clears them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertContact {
    #[serde(default, deserialize_with = "present")]
    pub group: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub level: Option<Option<String>>,
}

/// Distinguishes a field set to null (Some(None)) from a missing one (None).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The level as stored (its canonical token), or a 400 for an unknown one.
fn check_level(level: Option<String>) -> ApiResult<Option<String>> {
    match level {
        None => Ok(None),
        Some(l) => match AccessLevel::from_token(&l) {
            Some(level) => Ok(Some(level.token().to_owned())),
            None => Err(Problem::invalid(
                "level",
                format!(
                    "Unknown access level {l:?}; use blocked, external, colleagues, workgroup or family"
                ),
            )),
        },
    }
}

fn check_group(group: &Option<String>) -> ApiResult<()> {
    if let Some(g) = group
        && (g.trim().is_empty()
            || g.chars().count() > MAX_GROUP_NAME
            || g.chars().any(char::is_control))
    {
        return Err(Problem::invalid(
            "group",
            format!("A group name has 1 to {MAX_GROUP_NAME} printable characters"),
        ));
    }
    Ok(())
}

async fn save(
    web: &Web,
    me: &Address,
    contact: &Address,
    group: Option<Option<String>>,
    level: Option<Option<String>>,
) -> ApiResult<(bool, ContactRecord)> {
    if contact == me {
        return Err(Problem::invalid("contact", "You cannot add yourself"));
    }
    let existing = web
        .store
        .get_contact(&me.to_string(), &contact.to_string())
        .await?;
    let created = !existing.as_ref().is_some_and(|e| e.listed);
    let base = match existing {
        Some(e) if e.listed => e,
        // New to the list. Someone blocked outside it keeps the block unless
        // the request gives a level: adding a person is not unblocking them.
        other => ContactRecord {
            owner: me.to_string(),
            contact: contact.to_string(),
            group: None,
            level: other.and_then(|e| e.level),
            added_ms: switchboard_core::now_ms(),
            listed: true,
        },
    };
    let record = ContactRecord {
        group: group.unwrap_or(base.group.clone()),
        level: check_level(level.unwrap_or(base.level.clone()))?,
        ..base
    };
    check_group(&record.group)?;
    match web
        .store
        .upsert_contact(&record, web.settings.max_contacts)
        .await
    {
        Ok(()) => {}
        Err(switchboard_store::StoreError::Limit(_)) => {
            return Err(Problem::conflict(format!(
                "Your contact list is full ({} contacts)",
                web.settings.max_contacts
            )));
        }
        Err(e) => return Err(e.into()),
    }
    web.reload_now().await;
    Ok((created, record))
}

/// Adds or updates a contact.
pub async fn upsert(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(contact): Path<String>,
    OptionalBody(body): OptionalBody<UpsertContact>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let contact = web.parse_user("contact", &contact, Some(&me.user))?;
    let req = body.unwrap_or_default();
    let (created, record) = save(&web, &me.user, &contact, req.group, req.level).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(contact_json(&web, &me.user, &record))))
}

/// Removes a contact.
pub async fn remove(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(contact): Path<String>,
) -> ApiResult<StatusCode> {
    let contact = web.parse_user("contact", &contact, Some(&me.user))?;
    match web
        .store
        .remove_contact(&me.user.to_string(), &contact.to_string())
        .await
    {
        Ok(()) => {}
        Err(switchboard_store::StoreError::NotFound(_)) => {
            return Err(Problem::not_found("Not in your contact list"));
        }
        Err(e) => return Err(e.into()),
    }
    web.reload_now().await;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's groups.
pub async fn groups(State(web): State<Arc<Web>>, Caller(me): Caller) -> ApiResult<Json<Value>> {
    let owner = me.user.to_string();
    let groups = web.store.list_groups(&owner).await?;
    let contacts = web.store.list_contacts(&owner).await?;
    Ok(Json(json!({
        "groups": groups.iter().map(|g| json!({
            "name": g.name,
            "contacts": contacts.iter().filter(|c| c.group.as_deref() == Some(g.name.as_str())).count(),
            "created_at": g.created_ms,
        })).collect::<Vec<_>>()
    })))
}

/// `POST /groups` and `PUT /groups/{group}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupName {
    pub name: String,
}

/// Creates an empty group.
pub async fn add_group(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Body(req): Body<GroupName>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = req.name.trim().to_owned();
    check_group(&Some(name.clone())).map_err(|mut p| {
        p.field = Some("name".into());
        p
    })?;
    let now = switchboard_core::now_ms();
    match web.store.add_group(&me.user.to_string(), &name, now).await {
        Ok(()) => {}
        Err(switchboard_store::StoreError::Conflict(_)) => {
            return Err(Problem::conflict(format!(
                "You already have a group {name:?}"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    web.reload_now().await;
    // The same shape as an entry of `GET /groups`.
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": name, "contacts": 0, "created_at": now})),
    ))
}

/// Renames a group (its contacts move with it).
pub async fn rename_group(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(group): Path<String>,
    Body(req): Body<GroupName>,
) -> ApiResult<Json<Value>> {
    let name = req.name.trim().to_owned();
    check_group(&Some(name.clone())).map_err(|mut p| {
        p.field = Some("name".into());
        p
    })?;
    match web
        .store
        .rename_group(&me.user.to_string(), &group, &name)
        .await
    {
        Ok(()) => {}
        Err(switchboard_store::StoreError::NotFound(_)) => {
            return Err(Problem::not_found(format!("You have no group {group:?}")));
        }
        Err(switchboard_store::StoreError::Conflict(_)) => {
            return Err(Problem::conflict(format!(
                "You already have a group {name:?}"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    web.reload_now().await;
    Ok(Json(json!({"name": name})))
}

/// Deletes a group; its contacts stay, ungrouped.
pub async fn remove_group(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(group): Path<String>,
) -> ApiResult<StatusCode> {
    match web.store.remove_group(&me.user.to_string(), &group).await {
        Ok(_) => {}
        Err(switchboard_store::StoreError::NotFound(_)) => {
            return Err(Problem::not_found(format!("You have no group {group:?}")));
        }
        Err(e) => return Err(e.into()),
    }
    web.reload_now().await;
    Ok(StatusCode::NO_CONTENT)
}

/// The people the caller blocked, in their contact list or not.
pub async fn blocked(State(web): State<Arc<Web>>, Caller(me): Caller) -> ApiResult<Json<Value>> {
    let blocked = web.store.list_blocked(&me.user.to_string()).await?;
    Ok(Json(json!({
        "blocked": blocked
            .iter()
            .map(|c| json!({"user": c.contact, "since": c.added_ms}))
            .collect::<Vec<_>>()
    })))
}

/// Blocks `contact` for `me` and applies it at once. A contact in the list
/// keeps their entry with the level blocked; anyone else is blocked without
/// being added to the list.
async fn block_person(web: &Web, me: &Address, contact: &Address) -> ApiResult<ContactRecord> {
    if contact == me {
        return Err(Problem::invalid("contact", "You cannot block yourself"));
    }
    let max = web.settings.max_contacts;
    let record = match web
        .store
        .block_contact(
            &me.to_string(),
            &contact.to_string(),
            switchboard_core::now_ms(),
            max,
        )
        .await
    {
        Ok(r) => r,
        Err(switchboard_store::StoreError::Limit(_)) => {
            return Err(Problem::conflict(format!(
                "You already block {max} people who are not in your contact list"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    web.reload_now().await;
    Ok(record)
}

/// Blocks someone: they see the caller as offline and cannot message or
/// invite them. Someone not in the caller's list is not added to it.
pub async fn block(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(contact): Path<String>,
) -> ApiResult<StatusCode> {
    let contact = web.parse_user("contact", &contact, Some(&me.user))?;
    block_person(&web, &me.user, &contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unblocks someone: a contact stays in the list (in their group) with the
/// default level; anyone else is as if never blocked (not in the list, and
/// waiting again if the caller has privacy mode on).
pub async fn unblock(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(contact): Path<String>,
) -> ApiResult<StatusCode> {
    let contact = web.parse_user("contact", &contact, Some(&me.user))?;
    match web
        .store
        .unblock_contact(&me.user.to_string(), &contact.to_string())
        .await
    {
        Ok(_) => {}
        Err(switchboard_store::StoreError::NotFound(_)) => {
            return Err(Problem::not_found("You have not blocked this person"));
        }
        Err(e) => return Err(e.into()),
    }
    web.reload_now().await;
    Ok(StatusCode::NO_CONTENT)
}

/// Who waits for the caller's decision: people watching the caller's
/// presence (by contact list, SIP or web) while privacy mode is on.
pub async fn pending(State(web): State<Arc<Web>>, Caller(me): Caller) -> ApiResult<Json<Value>> {
    let list = pending_watchers(&web, &me.user).await?;
    Ok(Json(json!({
        "pending": list.iter().map(|w| json!({
            "user": w.to_string(),
            "display_name": web.display_of(w),
        })).collect::<Vec<_>>()
    })))
}

/// The pending watchers of `person`.
pub async fn pending_watchers(web: &Web, person: &Address) -> ApiResult<Vec<Address>> {
    let mut candidates: BTreeSet<Address> = web
        .store
        .contacts_naming(&person.to_string())
        .await?
        .into_iter()
        .filter_map(|c| Address::parse(&c.owner).ok())
        .collect();
    candidates.extend(web.sip.watchers_of_person(person));
    Ok(candidates
        .into_iter()
        .filter(|w| {
            switchboard_core::presence::access::decision(
                &web.directory,
                &web.contacts,
                &web.policies,
                person,
                w,
            ) == Decision::Pending
        })
        .collect())
}

/// `POST /watchers/pending/{watcher}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingDecision {
    /// `allow` or `block`.
    pub decision: String,
    /// For `allow`: the access level (default colleagues).
    pub level: Option<String>,
    /// For `allow`: put them in this group of the caller's list.
    pub group: Option<String>,
}

/// Allows a pending watcher (adds them to the caller's list with the level)
/// or blocks them (without adding them to the list).
pub async fn decide_pending(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(watcher): Path<String>,
    Body(req): Body<PendingDecision>,
) -> ApiResult<Json<Value>> {
    let watcher = web.parse_user("watcher", &watcher, Some(&me.user))?;
    let level = match req.decision.as_str() {
        "allow" => req
            .level
            .clone()
            .unwrap_or_else(|| AccessLevel::Colleagues.token().to_owned()),
        "block" => AccessLevel::Blocked.token().to_owned(),
        other => {
            return Err(Problem::invalid(
                "decision",
                format!("Unknown decision {other:?}; use allow or block"),
            ));
        }
    };
    let blocking = req.decision == "block";
    if !blocking && AccessLevel::from_token(&level) == Some(AccessLevel::Blocked) {
        return Err(Problem::invalid("level", "Use the decision block to block"));
    }
    if blocking && req.group.is_some() {
        return Err(Problem::invalid(
            "group",
            "A blocked watcher is not put in your contact list, so not in a group either",
        ));
    }
    if !pending_watchers(&web, &me.user).await?.contains(&watcher) {
        return Err(Problem::not_found(
            "This person is not waiting for your decision",
        ));
    }
    if blocking {
        let record = block_person(&web, &me.user, &watcher).await?;
        return Ok(Json(contact_json(&web, &me.user, &record)));
    }
    let group = req.group.map(Some);
    let (_, record) = save(&web, &me.user, &watcher, group, Some(Some(level))).await?;
    Ok(Json(contact_json(&web, &me.user, &record)))
}
