//! Column ↔ Rust type conversions, in one place. sqlx's `Any` driver carries only `i64`,
//! `String` and bytes the same way on both engines, so flags are stored as 0/1 and states as
//! text; rows read them as `bool` and enums with `#[sqlx(try_from = "Flag")]` and
//! `#[sqlx(try_from = "String")]`, and writes bind [`Flag`] and [`ConnectionStatus::as_str`].

use std::fmt;

use sqlx::any::{Any, AnyTypeInfo, AnyValueRef};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

/// A 0/1 column. Read into a `bool` field with `#[sqlx(try_from = "Flag")]`; bound as
/// `Flag(value)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Flag(pub(crate) bool);

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.0
    }
}

impl Type<Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        // Written as 0 or 1 only; anything else would be another writer's, read as set.
        Ok(Flag(<i64 as Decode<'r, Any>>::decode(value)? != 0))
    }
}

impl Encode<'_, Any> for Flag {
    fn encode_by_ref(
        &self,
        buf: &mut <Any as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'_, Any>>::encode(i64::from(self.0), buf)
    }
}

/// `devices.connection_status`: whether the device's socket is connected now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionStatus {
    /// Never connected by socket.
    NotSeen,
    Connected,
    Disconnected,
}

impl ConnectionStatus {
    /// The column (and API) text.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::NotSeen => "not_seen",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A column value no Rust type here stands for (only another writer could have stored it).
#[derive(Debug, thiserror::Error)]
#[error("unknown {column} value {value:?}")]
pub(crate) struct UnknownValue {
    column: &'static str,
    value: String,
}

impl TryFrom<String> for ConnectionStatus {
    type Error = UnknownValue;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.as_str() {
            "not_seen" => Ok(ConnectionStatus::NotSeen),
            "connected" => Ok(ConnectionStatus::Connected),
            "disconnected" => Ok(ConnectionStatus::Disconnected),
            _ => Err(UnknownValue {
                column: "connection_status",
                value: text,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_status_reads_back_what_it_writes() {
        for status in [
            ConnectionStatus::NotSeen,
            ConnectionStatus::Connected,
            ConnectionStatus::Disconnected,
        ] {
            assert_eq!(
                ConnectionStatus::try_from(status.as_str().to_owned()).unwrap(),
                status
            );
        }
        let err = ConnectionStatus::try_from("online".to_owned()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown connection_status value \"online\""
        );
    }

    /// A flag is written as 0/1 and read back as the bool it was, on both engines.
    #[tokio::test]
    async fn flags_round_trip_through_both_databases() {
        let dir = tempfile::tempdir().unwrap();
        for (db, pg) in crate::db::test_databases(dir.path(), "nhunit_types").await {
            for value in [true, false] {
                let stored: i64 = sqlx::query_scalar("SELECT $1")
                    .bind(Flag(value))
                    .fetch_one(db.pool())
                    .await
                    .unwrap();
                assert_eq!(stored, i64::from(value));
                let read: Flag = sqlx::query_scalar("SELECT $1")
                    .bind(stored)
                    .fetch_one(db.pool())
                    .await
                    .unwrap();
                assert_eq!(bool::from(read), value);
            }
            db.close().await;
            crate::db::drop_test_database(pg).await;
        }
    }
}
