//! Device tags are rows of their own (`device_tags`), on SQLite and PostgreSQL: a tag filter
//! matches the tag exactly — not a longer tag containing it, not another case, not a LIKE
//! pattern — and a device's tags read back in the order they were given.

mod common;
mod devices_support;

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::TestServer;
use devices_support::{device, product};

fn identifiers(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|d| d["identifier"].as_str().expect("identifier").to_owned())
        .collect()
}

#[tokio::test]
async fn a_tag_filter_matches_whole_tags_only_and_tags_keep_their_order() {
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;
        product(&ts, &f, "hub").await;
        for (identifier, tags) in [
            ("d-europe", json!(["europe"])),
            ("d-eu", json!(["zeta", "eu", "alpha"])),
            ("d-upper", json!(["EU"])),
            ("d-neu", json!(["neu"])),
            ("d-pattern", json!(["e_u"])),
            ("d-none", json!([])),
        ] {
            device(
                &ts,
                &f.manage,
                "acme",
                "hub",
                json!({"identifier": identifier, "tags": tags}),
            )
            .await;
        }
        let base = "/orgs/acme/products/hub/devices";
        let filtered = |tag: &str| format!("{base}?tag={tag}");

        let (status, body) = ts.get(&f.view, &filtered("eu")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            identifiers(&body),
            vec!["d-eu"],
            "eu is not europe, EU or neu"
        );
        assert_eq!(body["pagination"]["total_entries"], 1);
        // Tags come back in the order they were given, not sorted.
        assert_eq!(body["data"][0]["tags"], json!(["zeta", "eu", "alpha"]));

        // LIKE's wildcards are plain characters in a tag.
        let (_, body) = ts.get(&f.view, &filtered("e_u")).await;
        assert_eq!(identifiers(&body), vec!["d-pattern"]);
        let (_, body) = ts.get(&f.view, &filtered("e%25")).await;
        assert_eq!(identifiers(&body), Vec::<String>::new());
        let (_, body) = ts.get(&f.view, &filtered("europe")).await;
        assert_eq!(identifiers(&body), vec!["d-europe"]);

        // A change replaces the tags, in the new order; the old ones no longer match.
        let one = format!("{base}/d-eu");
        let (status, body) = ts
            .put(&f.manage, &one, json!({"tags": ["beta", "europe"]}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["tags"], json!(["beta", "europe"]));
        let (_, body) = ts.get(&f.view, &filtered("eu")).await;
        assert_eq!(identifiers(&body), Vec::<String>::new());
        let (_, body) = ts.get(&f.view, &filtered("europe")).await;
        assert_eq!(identifiers(&body), vec!["d-eu", "d-europe"]);
        let (_, body) = ts.get(&f.view, &one).await;
        assert_eq!(body["data"]["tags"], json!(["beta", "europe"]));

        // Deleting a device takes its tags with it.
        let (status, body) = ts.delete(&f.manage, &one).await;
        assert!(status.is_success(), "{status}: {body}");
        let (_, body) = ts.get(&f.view, &filtered("europe")).await;
        assert_eq!(identifiers(&body), vec!["d-europe"]);
        ts.stop().await;
    }
}
