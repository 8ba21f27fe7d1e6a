//! One method per management API endpoint the CLI uses, each returning the answer's `data`
//! (the API's JSON, NervesHub's shapes). Paths are built with [`api_path`], so names with
//! spaces or `/` stay one segment.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, Error, api_path};

/// Filters and page of a device listing (`GET …/devices`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DeviceQuery {
    /// 1-based page; the server's default (1) when `None`.
    pub page: Option<u32>,
    /// Devices per page (1 to 100); the server's default (50) when `None`.
    pub page_size: Option<u32>,
    /// Only devices with this tag.
    pub tag: Option<String>,
    /// Only devices whose identifier contains this (ignoring case).
    pub identifier: Option<String>,
    /// Only connected (`true`) or only disconnected (`false`) devices.
    pub online: Option<bool>,
}

impl DeviceQuery {
    fn query_string(&self) -> String {
        let mut pairs = Vec::new();
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, super::SEGMENT).to_string();
        if let Some(page) = self.page {
            pairs.push(format!("page={page}"));
        }
        if let Some(size) = self.page_size {
            pairs.push(format!("page_size={size}"));
        }
        if let Some(tag) = &self.tag {
            pairs.push(format!("tag={}", enc(tag)));
        }
        if let Some(identifier) = &self.identifier {
            pairs.push(format!("identifier={}", enc(identifier)));
        }
        if let Some(online) = self.online {
            pairs.push(format!("online={online}"));
        }
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }
}

fn product_path(org: &str, product: &str, rest: &[&str]) -> String {
    let mut segments = vec!["orgs", org, "products", product];
    segments.extend_from_slice(rest);
    api_path(&segments)
}

fn device_path(org: &str, product: &str, identifier: &str, rest: &[&str]) -> String {
    let mut segments = vec!["devices", identifier];
    segments.extend_from_slice(rest);
    product_path(org, product, &segments)
}

impl Client {
    async fn get(&self, path: &str) -> Result<Value, Error> {
        self.data(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Error> {
        self.data(Method::POST, path, Some(&body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Result<Value, Error> {
        self.data(Method::PUT, path, Some(&body)).await
    }

    async fn delete(&self, path: &str) -> Result<(), Error> {
        self.data(Method::DELETE, path, None).await.map(drop)
    }

    // Users and sign-in

    /// `POST /users/auth`: a new API token for email and password (`{name, email, token}`).
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for a wrong email or password; as [`Client::call`].
    pub async fn sign_in(&self, email: &str, password: &str, note: &str) -> Result<Value, Error> {
        let body = json!({"email": email, "password": password, "note": note});
        self.post("/users/auth", body).await
    }

    /// `GET /users/me`: the signed-in user.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn me(&self) -> Result<Value, Error> {
        self.get("/users/me").await
    }

    /// `POST /users` (server admins): creates a user account.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        password: &str,
    ) -> Result<Value, Error> {
        let body = json!({"email": email, "name": name, "password": password});
        self.post("/users", body).await
    }

    // Orgs and members

    /// `GET /orgs`: the caller's orgs with the caller's role.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn orgs(&self) -> Result<Value, Error> {
        self.get("/orgs").await
    }

    /// `POST /orgs`: creates an org; the caller becomes its admin.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn create_org(&self, name: &str) -> Result<Value, Error> {
        self.post("/orgs", json!({"name": name})).await
    }

    /// `GET /orgs/{org}/users`: the members (admin).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn members(&self, org: &str) -> Result<Value, Error> {
        self.get(&api_path(&["orgs", org, "users"])).await
    }

    /// `POST /orgs/{org}/users`: adds an existing user with a role (admin).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn add_member(&self, org: &str, email: &str, role: &str) -> Result<Value, Error> {
        let body = json!({"email": email, "role": role});
        self.post(&api_path(&["orgs", org, "users"]), body).await
    }

    /// `PUT /orgs/{org}/users/{email}`: changes a member's role (admin).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn update_member(&self, org: &str, email: &str, role: &str) -> Result<Value, Error> {
        let path = api_path(&["orgs", org, "users", email]);
        self.put(&path, json!({"role": role})).await
    }

    /// `DELETE /orgs/{org}/users/{email}`: removes a member (admin).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn remove_member(&self, org: &str, email: &str) -> Result<(), Error> {
        self.delete(&api_path(&["orgs", org, "users", email])).await
    }

    // Products

    /// `GET /orgs/{org}/products`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn products(&self, org: &str) -> Result<Value, Error> {
        self.get(&api_path(&["orgs", org, "products"])).await
    }

    /// `GET /orgs/{org}/products/{product}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn product(&self, org: &str, product: &str) -> Result<Value, Error> {
        self.get(&product_path(org, product, &[])).await
    }

    /// `POST /orgs/{org}/products` (admin).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn create_product(&self, org: &str, name: &str) -> Result<Value, Error> {
        let body = json!({"name": name});
        self.post(&api_path(&["orgs", org, "products"]), body).await
    }

    /// `PUT /orgs/{org}/products/{product}`: renames a product.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn rename_product(
        &self,
        org: &str,
        product: &str,
        name: &str,
    ) -> Result<Value, Error> {
        self.put(&product_path(org, product, &[]), json!({"name": name}))
            .await
    }

    /// `DELETE /orgs/{org}/products/{product}` (admin).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn delete_product(&self, org: &str, product: &str) -> Result<(), Error> {
        self.delete(&product_path(org, product, &[])).await
    }

    // Devices

    /// `GET …/devices`: one page, the whole answer (`{data, pagination}`).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn devices(
        &self,
        org: &str,
        product: &str,
        query: &DeviceQuery,
    ) -> Result<Value, Error> {
        let path = format!(
            "{}{}",
            product_path(org, product, &["devices"]),
            query.query_string()
        );
        self.call(Method::GET, &path, None).await
    }

    /// `GET …/devices/{identifier}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn device(&self, org: &str, product: &str, identifier: &str) -> Result<Value, Error> {
        self.get(&device_path(org, product, identifier, &[])).await
    }

    /// `POST …/devices`: `body` is `{identifier, description?, tags?}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn create_device(
        &self,
        org: &str,
        product: &str,
        body: Value,
    ) -> Result<Value, Error> {
        self.post(&product_path(org, product, &["devices"]), body)
            .await
    }

    /// `PUT …/devices/{identifier}`: `body` has any of `description`, `tags`,
    /// `updates_enabled`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn update_device(
        &self,
        org: &str,
        product: &str,
        identifier: &str,
        body: Value,
    ) -> Result<Value, Error> {
        self.put(&device_path(org, product, identifier, &[]), body)
            .await
    }

    /// `DELETE …/devices/{identifier}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn delete_device(
        &self,
        org: &str,
        product: &str,
        identifier: &str,
    ) -> Result<(), Error> {
        self.delete(&device_path(org, product, identifier, &[]))
            .await
    }

    /// `POST …/devices/{identifier}/{action}` for `reboot`, `reconnect`, `identify`, or
    /// `upgrade` (with `{"uuid": …}`); [`Error::Conflict`] when the device is offline.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn device_action(
        &self,
        org: &str,
        product: &str,
        identifier: &str,
        action: &str,
        body: Option<Value>,
    ) -> Result<Value, Error> {
        let path = device_path(org, product, identifier, &[action]);
        self.data(Method::POST, &path, body.as_ref()).await
    }

    /// `DELETE …/devices/{identifier}/penalty`: lets a device penalised for failing updates
    /// take updates again.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn clear_penalty(
        &self,
        org: &str,
        product: &str,
        identifier: &str,
    ) -> Result<(), Error> {
        self.delete(&device_path(org, product, identifier, &["penalty"]))
            .await
    }

    /// `GET …/devices/{identifier}/updates`: the device's updates, oldest first.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn device_updates(
        &self,
        org: &str,
        product: &str,
        identifier: &str,
    ) -> Result<Value, Error> {
        self.get(&device_path(org, product, identifier, &["updates"]))
            .await
    }

    // Device certificates

    /// `GET …/devices/{identifier}/certificates`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn device_certificates(
        &self,
        org: &str,
        product: &str,
        identifier: &str,
    ) -> Result<Value, Error> {
        self.get(&device_path(org, product, identifier, &["certificates"]))
            .await
    }

    /// `POST …/devices/{identifier}/certificates` with a PEM certificate.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn add_device_certificate(
        &self,
        org: &str,
        product: &str,
        identifier: &str,
        pem: &str,
    ) -> Result<Value, Error> {
        let path = device_path(org, product, identifier, &["certificates"]);
        self.post(&path, json!({"cert": pem})).await
    }

    /// `DELETE …/devices/{identifier}/certificates/{serial}` (decimal serial).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn remove_device_certificate(
        &self,
        org: &str,
        product: &str,
        identifier: &str,
        serial: &str,
    ) -> Result<(), Error> {
        self.delete(&device_path(
            org,
            product,
            identifier,
            &["certificates", serial],
        ))
        .await
    }

    // Shared secrets

    /// `GET …/shared_secrets` of the product, or of one device.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn shared_secrets(
        &self,
        org: &str,
        product: &str,
        device: Option<&str>,
    ) -> Result<Value, Error> {
        self.get(&secrets_path(org, product, device, None)).await
    }

    /// `POST …/shared_secrets`: a new secret, shown only in this answer.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn create_shared_secret(
        &self,
        org: &str,
        product: &str,
        device: Option<&str>,
    ) -> Result<Value, Error> {
        self.post(&secrets_path(org, product, device, None), json!({}))
            .await
    }

    /// `DELETE …/shared_secrets/{key}`: deactivates a secret.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn deactivate_shared_secret(
        &self,
        org: &str,
        product: &str,
        device: Option<&str>,
        key: &str,
    ) -> Result<(), Error> {
        self.delete(&secrets_path(org, product, device, Some(key)))
            .await
    }

    // Device CAs

    /// `GET /orgs/{org}/ca_certificates/verification_token`: a one-time proof-of-possession
    /// token.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn ca_verification_token(&self, org: &str) -> Result<String, Error> {
        let data = self
            .get(&api_path(&[
                "orgs",
                org,
                "ca_certificates",
                "verification_token",
            ]))
            .await?;
        data.get("verification_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::InvalidResponse(format!("no verification_token in {data}")))
    }

    /// `POST /orgs/{org}/ca_certificates`: `body` is `{cert, verification_cert,
    /// description?, jitp?}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn register_ca(&self, org: &str, body: Value) -> Result<Value, Error> {
        self.post(&api_path(&["orgs", org, "ca_certificates"]), body)
            .await
    }

    /// `GET /orgs/{org}/ca_certificates`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn cas(&self, org: &str) -> Result<Value, Error> {
        self.get(&api_path(&["orgs", org, "ca_certificates"])).await
    }

    /// `GET /orgs/{org}/ca_certificates/{serial}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn ca(&self, org: &str, serial: &str) -> Result<Value, Error> {
        self.get(&api_path(&["orgs", org, "ca_certificates", serial]))
            .await
    }

    /// `DELETE /orgs/{org}/ca_certificates/{serial}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn delete_ca(&self, org: &str, serial: &str) -> Result<(), Error> {
        self.delete(&api_path(&["orgs", org, "ca_certificates", serial]))
            .await
    }

    // Signing keys

    /// `GET /orgs/{org}/keys`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn keys(&self, org: &str) -> Result<Value, Error> {
        self.get(&api_path(&["orgs", org, "keys"])).await
    }

    /// `POST /orgs/{org}/keys` with a base64 Ed25519 public key (a `fwup-key.pub`).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn register_key(&self, org: &str, name: &str, key: &str) -> Result<Value, Error> {
        let body = json!({"name": name, "key": key});
        self.post(&api_path(&["orgs", org, "keys"]), body).await
    }

    /// `DELETE /orgs/{org}/keys/{name}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn delete_key(&self, org: &str, name: &str) -> Result<(), Error> {
        self.delete(&api_path(&["orgs", org, "keys", name])).await
    }

    // Firmware

    /// `GET …/firmwares`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn firmwares(&self, org: &str, product: &str) -> Result<Value, Error> {
        self.get(&product_path(org, product, &["firmwares"])).await
    }

    /// `GET …/firmwares/{uuid}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn firmware(&self, org: &str, product: &str, uuid: &str) -> Result<Value, Error> {
        self.get(&product_path(org, product, &["firmwares", uuid]))
            .await
    }

    /// `DELETE …/firmwares/{uuid}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn delete_firmware(&self, org: &str, product: &str, uuid: &str) -> Result<(), Error> {
        self.delete(&product_path(org, product, &["firmwares", uuid]))
            .await
    }

    // Deployments

    /// `GET …/deployments`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn deployments(&self, org: &str, product: &str) -> Result<Value, Error> {
        self.get(&product_path(org, product, &["deployments"]))
            .await
    }

    /// `GET …/deployments/{name}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn deployment(&self, org: &str, product: &str, name: &str) -> Result<Value, Error> {
        self.get(&product_path(org, product, &["deployments", name]))
            .await
    }

    /// `POST …/deployments`: `body` is `{name, firmware, conditions: {version, tags,
    /// tag_operator}, …}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn create_deployment(
        &self,
        org: &str,
        product: &str,
        body: Value,
    ) -> Result<Value, Error> {
        self.post(&product_path(org, product, &["deployments"]), body)
            .await
    }

    /// `PUT …/deployments/{name}` with `{"deployment": changes}` (a `firmware` makes a new
    /// release; `is_active` turns it on or off).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn update_deployment(
        &self,
        org: &str,
        product: &str,
        name: &str,
        changes: Value,
    ) -> Result<Value, Error> {
        let path = product_path(org, product, &["deployments", name]);
        self.put(&path, json!({ "deployment": changes })).await
    }

    /// `DELETE …/deployments/{name}`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn delete_deployment(
        &self,
        org: &str,
        product: &str,
        name: &str,
    ) -> Result<(), Error> {
        self.delete(&product_path(org, product, &["deployments", name]))
            .await
    }

    /// `GET …/deployments/{name}/status`: the rollout's counts.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn deployment_status(
        &self,
        org: &str,
        product: &str,
        name: &str,
    ) -> Result<Value, Error> {
        self.get(&product_path(
            org,
            product,
            &["deployments", name, "status"],
        ))
        .await
    }

    /// `GET …/deployments/{name}/releases`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn deployment_releases(
        &self,
        org: &str,
        product: &str,
        name: &str,
    ) -> Result<Value, Error> {
        self.get(&product_path(
            org,
            product,
            &["deployments", name, "releases"],
        ))
        .await
    }

    // User certificates

    /// `POST /users/me/certificates` with a PEM certificate signing request: the server's
    /// user CA signs it (`{serial, certificate, not_before, not_after, …}`).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn request_user_certificate(
        &self,
        csr_pem: &str,
        note: &str,
    ) -> Result<Value, Error> {
        let body = json!({"csr": csr_pem, "note": note});
        self.post("/users/me/certificates", body).await
    }

    /// `GET /users/me/certificates`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn user_certificates(&self) -> Result<Value, Error> {
        self.get("/users/me/certificates").await
    }

    /// `DELETE /users/me/certificates/{serial}`: revokes one.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn revoke_user_certificate(&self, serial: &str) -> Result<(), Error> {
        self.delete(&api_path(&["users", "me", "certificates", serial]))
            .await
    }
}

fn secrets_path(org: &str, product: &str, device: Option<&str>, key: Option<&str>) -> String {
    let mut rest = Vec::new();
    if let Some(device) = device {
        rest.extend(["devices", device]);
    }
    rest.push("shared_secrets");
    if let Some(key) = key {
        rest.push(key);
    }
    product_path(org, product, &rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_queries_are_encoded() {
        let query = DeviceQuery {
            page: Some(2),
            tag: Some("eu west".to_owned()),
            online: Some(true),
            ..DeviceQuery::default()
        };
        assert_eq!(query.query_string(), "?page=2&tag=eu%20west&online=true");
        assert_eq!(DeviceQuery::default().query_string(), "");
        assert_eq!(
            secrets_path("o", "p", Some("d 1"), Some("nhd_x")),
            "/orgs/o/products/p/devices/d%201/shared_secrets/nhd_x"
        );
    }
}
