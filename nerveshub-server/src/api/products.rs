//! `/api/orgs/{org}/products`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Api, Body, Endpoint, Success, check_name, created, data, no_content};
use crate::auth::{Caller, Role};
use crate::db::{self, Actor, Audit, OnUnique, ProductRow};
use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn routes(api: Api) -> Api {
    api.route(
        Endpoint::get("/orgs/{org}/products", "The org's products")
            .tag("products")
            .role(Role::View)
            .ok(Success::List("Product")),
        list,
    )
    .route(
        Endpoint::post("/orgs/{org}/products", "Create a product")
            .tag("products")
            .role(Role::Admin)
            .body("ProductCreate")
            .ok(Success::Object(201, "Product")),
        create,
    )
    .route(
        Endpoint::get("/orgs/{org}/products/{product}", "One product")
            .tag("products")
            .role(Role::View)
            .ok(Success::Object(200, "Product")),
        show,
    )
    .route(
        Endpoint::put(
            "/orgs/{org}/products/{product}",
            "Rename a product, or set its devices' poll interval",
        )
        .tag("products")
        .role(Role::Manage)
        .body("ProductUpdate")
        .ok(Success::Object(200, "Product")),
        update,
    )
    .route(
        Endpoint::delete(
            "/orgs/{org}/products/{product}",
            "Delete a product with no devices or firmware",
        )
        .tag("products")
        .role(Role::Admin)
        .ok(Success::NoContent)
        .errors(&[409]),
        remove,
    )
}

/// NervesHub's product (`{"name"}`), with `poll_interval_seconds` when the product sets one.
fn product_json(product: &ProductRow) -> serde_json::Value {
    let mut product_value = json!({"name": product.name});
    if let Some(seconds) = product.poll_interval_seconds {
        product_value["poll_interval_seconds"] = json!(seconds);
    }
    product_value
}

/// The product `name` of `org_id`, or 404.
pub(crate) async fn find(
    state: &AppState,
    org_id: i64,
    name: &str,
) -> Result<ProductRow, ApiError> {
    state
        .db
        .product(org_id, name)
        .await?
        .ok_or(ApiError::NotFound("product"))
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let products = state.db.products(membership.org.id).await?;
    Ok(data(products.iter().map(product_json).collect::<Vec<_>>()).into_response())
}

/// The poll intervals a product may ask of its devices: from 10 s to a week.
const POLL_INTERVAL_SECONDS: std::ops::RangeInclusive<i64> = 10..=604_800;

#[derive(Deserialize)]
struct ProductFields {
    name: String,
    #[serde(default)]
    poll_interval_seconds: Option<i64>,
}

/// A change: a new name, and/or the poll interval (`null` returns to the server's).
#[derive(Deserialize)]
struct ProductChange {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    poll_interval_seconds: Option<Option<i64>>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

fn check_poll_interval(seconds: Option<i64>) -> Result<(), ApiError> {
    match seconds {
        Some(s) if !POLL_INTERVAL_SECONDS.contains(&s) => Err(ApiError::invalid(
            "poll_interval_seconds",
            format!(
                "must be from {} to {}",
                POLL_INTERVAL_SECONDS.start(),
                POLL_INTERVAL_SECONDS.end()
            ),
        )),
        _ => Ok(()),
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(new): Body<ProductFields>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let org = &membership.org.name;
    check_name("name", &new.name)?;
    check_poll_interval(new.poll_interval_seconds)?;
    let mut tx = state.db.begin().await?;
    let mut product = db::insert_product(&mut tx, membership.org.id, &new.name)
        .await
        .on_unique(|| ApiError::invalid("name", "has already been taken"))?;
    if new.poll_interval_seconds.is_some() {
        db::set_product_poll_interval(&mut tx, product.id, new.poll_interval_seconds).await?;
        product.poll_interval_seconds = new.poll_interval_seconds;
    }
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(membership.org.id),
            actor: Actor::User(caller.user.id),
            resource_type: "product",
            resource_id: &product.name,
            action: "create",
            description: format!(
                "{} created product {} in {org}",
                caller.user.email, product.name
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(created(product_json(&product)))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let product = find(&state, membership.org.id, &product).await?;
    Ok(data(product_json(&product)).into_response())
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, name)): Path<(String, String)>,
    Body(fields): Body<ProductChange>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let org = &membership.org.name;
    let mut product = find(&state, membership.org.id, &name).await?;
    if let Some(new_name) = &fields.name {
        check_name("name", new_name)?;
    }
    if let Some(seconds) = fields.poll_interval_seconds {
        check_poll_interval(seconds)?;
    }
    if fields.name.is_none() && fields.poll_interval_seconds.is_none() {
        return Err(ApiError::invalid(
            "name",
            "give a name or a poll_interval_seconds to change",
        ));
    }
    let mut tx = state.db.begin().await?;
    let mut changes = Vec::new();
    if let Some(new_name) = &fields.name {
        db::rename_product(&mut tx, product.id, new_name)
            .await
            .on_unique(|| ApiError::invalid("name", "has already been taken"))?;
        changes.push(format!("renamed product {name} to {new_name}"));
        product.name = new_name.clone();
    }
    if let Some(seconds) = fields.poll_interval_seconds {
        db::set_product_poll_interval(&mut tx, product.id, seconds).await?;
        changes.push(match seconds {
            Some(s) => format!("set the poll interval of {} to {s} s", product.name),
            None => format!(
                "reset the poll interval of {} to the server's",
                product.name
            ),
        });
        product.poll_interval_seconds = seconds;
    }
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(membership.org.id),
            actor: Actor::User(caller.user.id),
            resource_type: "product",
            resource_id: &product.name,
            action: "update",
            description: format!("{} {} in {org}", caller.user.email, changes.join(", ")),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(data(product_json(&product)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let org = &membership.org.name;
    let product = find(&state, membership.org.id, &name).await?;
    let in_use = || {
        ApiError::Conflict(format!(
            "product {name} still has devices or firmware; delete them first"
        ))
    };
    let mut tx = state.db.begin().await?;
    // The row lock makes "empty" and "deleted" one step: a device or firmware insert into
    // this product waits for it and then fails its foreign key, instead of committing, being
    // acknowledged, and being removed by the cascade a moment later.
    if !db::lock_row(&mut tx, db::Lockable::Product, product.id).await? {
        return Err(ApiError::NotFound("product"));
    }
    if db::product_in_use(&mut tx, product.id).await? {
        return Err(in_use());
    }
    if !db::delete_empty_product(&mut tx, product.id).await? {
        return Err(in_use());
    }
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(membership.org.id),
            actor: Actor::User(caller.user.id),
            resource_type: "product",
            resource_id: &product.name,
            action: "delete",
            description: format!("{} deleted product {name} from {org}", caller.user.email),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(no_content())
}
