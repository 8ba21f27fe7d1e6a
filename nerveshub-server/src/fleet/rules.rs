//! Deployment membership (NervesHub §4.1): which deployment a device belongs to, as pure
//! functions over what the device reported and what the deployments say.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::version;

/// How a deployment's tags are matched against a device's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TagOperator {
    /// Every deployment tag must be on the device.
    #[default]
    And,
    /// At least one deployment tag must be on the device.
    Or,
}

/// A deployment's `conditions` as NervesHub stores them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Conditions {
    /// An Elixir version requirement, `""` for any version.
    #[serde(default)]
    pub(crate) version: String,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) tag_operator: TagOperator,
}

impl Conditions {
    /// Whether the tag condition holds for a device with `device_tags` (no tags: always).
    pub(crate) fn tags_match(&self, device_tags: &[String]) -> bool {
        if self.tags.is_empty() {
            return true;
        }
        match self.tag_operator {
            TagOperator::And => self.tags.iter().all(|t| device_tags.contains(t)),
            TagOperator::Or => self.tags.iter().any(|t| device_tags.contains(t)),
        }
    }

    /// How many of the deployment's tags the device carries (the second ranking key).
    pub(crate) fn matching_tags(&self, device_tags: &[String]) -> usize {
        self.tags.iter().filter(|t| device_tags.contains(t)).count()
    }

    /// Whether the version requirement holds for a device reporting `version`.
    pub(crate) fn version_matches(&self, version: Option<&str>) -> bool {
        version::matches(&self.version, version)
    }
}

/// What membership looks at of a device.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceFacts {
    pub(crate) product_id: i64,
    pub(crate) tags: Vec<String>,
    pub(crate) version: Option<String>,
    pub(crate) platform: Option<String>,
    pub(crate) architecture: Option<String>,
}

/// What membership looks at of a deployment.
#[derive(Debug, Clone)]
pub(crate) struct GroupFacts {
    pub(crate) id: i64,
    pub(crate) product_id: i64,
    pub(crate) platform: String,
    pub(crate) architecture: String,
    pub(crate) is_active: bool,
    pub(crate) locked: bool,
    pub(crate) conditions: Conditions,
    /// The version of the current release's firmware.
    pub(crate) release_version: String,
}

impl GroupFacts {
    /// Same product, platform and architecture: what a manual assignment needs. A device that
    /// has not reported its firmware yet has no platform to disagree with.
    pub(crate) fn compatible(&self, device: &DeviceFacts) -> bool {
        self.product_id == device.product_id
            && device
                .platform
                .as_deref()
                .is_none_or(|p| p == self.platform)
            && device
                .architecture
                .as_deref()
                .is_none_or(|a| a == self.architecture)
    }

    /// Whether an automatic assignment may put the device here.
    pub(crate) fn accepts(&self, device: &DeviceFacts) -> bool {
        self.is_active
            && !self.locked
            && device.platform.is_some()
            && self.compatible(device)
            && self.conditions.tags_match(&device.tags)
            && self.conditions.version_matches(device.version.as_deref())
    }

    /// Whether a member still belongs at a join: version, platform and architecture are
    /// re-checked (not tags, as NervesHub), unless the membership is locked.
    pub(crate) fn keeps(&self, device: &DeviceFacts) -> bool {
        self.locked
            || (self.compatible(device)
                && self.conditions.version_matches(device.version.as_deref()))
    }
}

/// The deployment an unassigned device joins automatically: among those that accept it, the
/// highest release version first, then the most matching tags, then the oldest deployment.
pub(crate) fn best_group<'a>(
    groups: &'a [GroupFacts],
    device: &DeviceFacts,
) -> Option<&'a GroupFacts> {
    groups
        .iter()
        .filter(|g| g.accepts(device))
        .min_by(|a, b| rank(a, b, device))
}

fn rank(a: &GroupFacts, b: &GroupFacts, device: &DeviceFacts) -> Ordering {
    let va = version::parse_version(&a.release_version);
    let vb = version::parse_version(&b.release_version);
    // Higher versions first; a version that is not SemVer sorts after every one that is.
    let by_version = match (&va, &vb) {
        (Some(x), Some(y)) => version::precedence(y, x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_version
        .then_with(|| {
            b.conditions
                .matching_tags(&device.tags)
                .cmp(&a.conditions.matching_tags(&device.tags))
        })
        .then_with(|| a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn group(id: i64, release: &str, version: &str, t: &[&str], op: TagOperator) -> GroupFacts {
        GroupFacts {
            id,
            product_id: 1,
            platform: "rpi4".into(),
            architecture: "arm".into(),
            is_active: true,
            locked: false,
            conditions: Conditions {
                version: version.into(),
                tags: tags(t),
                tag_operator: op,
            },
            release_version: release.into(),
        }
    }

    fn device(version: &str, t: &[&str]) -> DeviceFacts {
        DeviceFacts {
            product_id: 1,
            tags: tags(t),
            version: Some(version.into()),
            platform: Some("rpi4".into()),
            architecture: Some("arm".into()),
        }
    }

    #[test]
    fn tag_conditions() {
        use TagOperator::{And, Or};
        let table: &[(&[&str], TagOperator, &[&str], bool)] = &[
            (&[], And, &[], true),
            (&[], Or, &["x"], true),
            (&["beta"], And, &["beta", "eu"], true),
            (&["beta", "eu"], And, &["beta"], false),
            (&["beta", "eu"], Or, &["beta"], true),
            (&["beta", "eu"], Or, &["us"], false),
            (&["beta"], And, &[], false),
        ];
        for (group_tags, op, device_tags, expected) in table {
            let c = Conditions {
                version: String::new(),
                tags: tags(group_tags),
                tag_operator: *op,
            };
            assert_eq!(
                c.tags_match(&tags(device_tags)),
                *expected,
                "{group_tags:?} {op:?} {device_tags:?}"
            );
        }
    }

    #[test]
    fn acceptance() {
        let g = group(1, "2.0.0", "~> 1.0", &["beta"], TagOperator::And);
        assert!(g.accepts(&device("1.4.0", &["beta"])));
        assert!(!g.accepts(&device("2.0.0", &["beta"])), "version");
        assert!(!g.accepts(&device("1.4.0", &[])), "tags");
        let mut other_platform = device("1.4.0", &["beta"]);
        other_platform.platform = Some("bbb".into());
        assert!(!g.accepts(&other_platform), "platform");
        let mut other_arch = device("1.4.0", &["beta"]);
        other_arch.architecture = Some("x86_64".into());
        assert!(!g.accepts(&other_arch), "architecture");
        let mut unreported = device("1.4.0", &["beta"]);
        unreported.platform = None;
        assert!(!g.accepts(&unreported), "no firmware reported yet");
        assert!(g.compatible(&unreported), "but it may be assigned by hand");
        let mut inactive = g.clone();
        inactive.is_active = false;
        assert!(!inactive.accepts(&device("1.4.0", &["beta"])));
        let mut locked = g.clone();
        locked.locked = true;
        assert!(!locked.accepts(&device("1.4.0", &["beta"])));
        // Membership is kept while version/platform/arch hold (tags are not re-checked), and
        // always when locked.
        assert!(g.keeps(&device("1.5.0", &[])));
        assert!(!g.keeps(&device("3.0.0", &["beta"])));
        assert!(locked.keeps(&device("3.0.0", &["beta"])));
    }

    #[test]
    fn ranking_prefers_newer_releases_then_tags_then_age() {
        let d = device("1.0.0", &["a", "b"]);
        let groups = vec![
            group(1, "1.1.0", "", &[], TagOperator::And),
            group(2, "1.2.0", "", &["a"], TagOperator::And),
            group(3, "1.2.0", "", &["a", "b"], TagOperator::And),
            group(4, "1.2.0", "", &["a", "b"], TagOperator::Or),
            group(5, "not-semver", "", &[], TagOperator::And),
        ];
        assert_eq!(best_group(&groups, &d).map(|g| g.id), Some(3));
        assert_eq!(best_group(&groups[..2], &d).map(|g| g.id), Some(2));
        assert_eq!(best_group(&groups[4..], &d).map(|g| g.id), Some(5));
        let newer = vec![
            group(9, "1.2.0-rc.1", "", &["a", "b"], TagOperator::And),
            group(8, "1.2.0", "", &[], TagOperator::And),
        ];
        assert_eq!(best_group(&newer, &d).map(|g| g.id), Some(8));
        assert!(best_group(&[], &d).is_none());
    }
}
