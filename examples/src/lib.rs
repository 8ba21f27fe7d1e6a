//! Library side of the `nerveshub-examples` package: [`Client`], a client of the NervesHub
//! management API (the one the `nerveshub` command-line tool is built on), for other Rust
//! programs too.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nerveshub_examples::Error> {
//! use nerveshub_examples::Client;
//!
//! let client = Client::builder("http://127.0.0.1:4000")
//!     .token("nhu_…")
//!     .build()?;
//! let me = client.me().await?;
//! println!("signed in as {}", me["email"]);
//! for org in client.orgs().await?.as_array().into_iter().flatten() {
//!     println!("{}", org["name"]);
//! }
//! # Ok(())
//! # }
//! ```

mod api_client;

pub use api_client::{Client, ClientBuilder, DeviceQuery, Error, api_path};
