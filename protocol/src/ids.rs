//! Identifiers.
//!
//! Every record ID is a UUIDv7 generated on the device that creates the record: time-ordered
//! (so IDs sort by creation and index well) and random enough that two offline devices never
//! collide. Because the ID is chosen *before* the write and travels inside the journaled
//! operation, a retried or replayed operation writes the same key again instead of a
//! duplicate record.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Error, Result};

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh time-ordered ID (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Parses the hyphenated form; the error names the kind of ID.
            pub fn parse(s: &str) -> Result<Self> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| Error::invalid($what, "is not a valid ID"))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(/// An account (customer or lead); also names the account's document.
    AccountId, "account id");
uuid_id!(/// A contact person of an account.
    ContactId, "contact id");
uuid_id!(/// A visit to an account.
    VisitId, "visit id");
uuid_id!(/// An order taken for an account.
    OrderId, "order id");
uuid_id!(/// One line of an order.
    OrderLineId, "order line id");
uuid_id!(/// A task (follow-up, reminder) in a user's private document.
    TaskId, "task id");
uuid_id!(/// A product of the catalog.
    ProductId, "product id");
uuid_id!(/// A price list of the catalog.
    PriceListId, "price list id");
uuid_id!(/// One item (product price) of a price list.
    PriceListItemId, "price list item id");
uuid_id!(/// A user: rep, manager or admin.
    UserId, "user id");
uuid_id!(/// A sales team.
    TeamId, "team id");
uuid_id!(/// One installation of the app (one replica file).
    DeviceId, "device id");

/// The three kinds of document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// One per account: the account, its contacts, visits and orders.
    Account,
    /// The single company-wide catalog: products, tax classes, price lists.
    Catalog,
    /// One per user: tasks and preferences.
    User,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Account => "account",
            DocKind::Catalog => "catalog",
            DocKind::User => "user",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "account" => Ok(DocKind::Account),
            "catalog" => Ok(DocKind::Catalog),
            "user" => Ok(DocKind::User),
            _ => Err(Error::invalid(
                "document kind",
                "must be account, catalog or user",
            )),
        }
    }
}

/// The name of one automerge document: the unit of sync and of access.
///
/// Written as `account:<uuid>`, `user:<uuid>` or `catalog`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocId {
    Account(AccountId),
    Catalog,
    User(UserId),
}

impl DocId {
    pub fn kind(&self) -> DocKind {
        match self {
            DocId::Account(_) => DocKind::Account,
            DocId::Catalog => DocKind::Catalog,
            DocId::User(_) => DocKind::User,
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s == "catalog" {
            return Ok(DocId::Catalog);
        }
        match s.split_once(':') {
            Some(("account", id)) => Ok(DocId::Account(AccountId::parse(id)?)),
            Some(("user", id)) => Ok(DocId::User(UserId::parse(id)?)),
            _ => Err(Error::invalid(
                "document id",
                "must look like account:<uuid>, user:<uuid> or catalog",
            )),
        }
    }

    pub fn as_account(&self) -> Option<AccountId> {
        match self {
            DocId::Account(id) => Some(*id),
            _ => None,
        }
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocId::Account(id) => write!(f, "account:{id}"),
            DocId::Catalog => f.write_str("catalog"),
            DocId::User(id) => write!(f, "user:{id}"),
        }
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for DocId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl Serialize for DocId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DocId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        DocId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids_round_trip_through_text_and_serde() {
        for id in [
            DocId::Account(AccountId::new()),
            DocId::Catalog,
            DocId::User(UserId::new()),
        ] {
            assert_eq!(DocId::parse(&id.to_string()).unwrap(), id);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<DocId>(&json).unwrap(), id);
            let bin = postcard::to_allocvec(&id).unwrap();
            assert_eq!(postcard::from_bytes::<DocId>(&bin).unwrap(), id);
        }
    }

    #[test]
    fn bad_ids_are_clear_errors() {
        assert!(DocId::parse("account:nope").is_err());
        assert!(DocId::parse("orders:1").is_err());
        let err = VisitId::parse("xyz").unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        assert!(err.to_string().contains("visit id"));
    }

    #[test]
    fn new_ids_are_time_ordered() {
        let a = VisitId::new();
        let b = VisitId::new();
        assert!(a < b);
    }
}
