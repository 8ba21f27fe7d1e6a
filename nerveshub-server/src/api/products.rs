//! `/api/orgs/{org}/products`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Api, Body, Endpoint, Success, check_name, created, data, no_content};
use crate::auth::{Caller, Role};
use crate::db::{self, Actor, Audit, ProductRow, is_unique_violation};
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
        Endpoint::put("/orgs/{org}/products/{product}", "Rename a product")
            .tag("products")
            .role(Role::Manage)
            .body("ProductCreate")
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

fn product_json(product: &ProductRow) -> serde_json::Value {
    json!({"name": product.name})
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

#[derive(Deserialize)]
struct ProductFields {
    name: String,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(new): Body<ProductFields>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let org = &membership.org.name;
    check_name("name", &new.name)?;
    let mut tx = state.db.begin().await?;
    let product = match db::insert_product(&mut tx, membership.org.id, &new.name).await {
        Ok(product) => product,
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::invalid("name", "has already been taken"));
        }
        Err(e) => return Err(e.into()),
    };
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
    Body(fields): Body<ProductFields>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let org = &membership.org.name;
    let mut product = find(&state, membership.org.id, &name).await?;
    check_name("name", &fields.name)?;
    let mut tx = state.db.begin().await?;
    match db::rename_product(&mut tx, product.id, &fields.name).await {
        Ok(()) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::invalid("name", "has already been taken"));
        }
        Err(e) => return Err(e.into()),
    }
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(membership.org.id),
            actor: Actor::User(caller.user.id),
            resource_type: "product",
            resource_id: &fields.name,
            action: "update",
            description: format!(
                "{} renamed product {name} to {} in {org}",
                caller.user.email, fields.name
            ),
        },
    )
    .await?;
    tx.commit().await?;
    product.name = fields.name;
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
