//! The registry of household domains: the one place a domain is registered.
//!
//! `registry!` lists each domain once (its variant, its name, its [`Domain`] type) and
//! generates what the platform routes by:
//! - [`DomainId`], the domain's name in stores (`events.domain`), jobs and workflow ids;
//! - [`AnyCommand`] and [`AnyEvent`], a command or event of any domain, on the wire the
//!   domain's own `{"type": ..., "payload": ...}` (type names are unique across
//!   domains, so the type says the domain);
//! - [`Registered`], how generic code (the service, the view) gets from the registry's
//!   types to a domain's own, and [`DomainVisitor`] to call generic code for a
//!   [`DomainId`] known only at run time;
//! - [`Caches`], the service's state cache of each domain.
//!
//! Adding a domain is a line here, its module, and its view (`projection`).

use crate::cache::StateCache;
use crate::domain::{AggregateId, Domain, JobKind, RefusalInfo};
use serde::de::{DeserializeSeed, Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// How generic code reaches a registered domain's own types from the registry's.
/// Implemented by `registry!` for each domain.
pub trait Registered: Domain {
    fn wrap_command(command: Self::Command) -> AnyCommand;
    fn command_of(command: &AnyCommand) -> Option<&Self::Command>;
    fn wrap_event(event: Self::Event) -> AnyEvent;
    fn event_of(event: &AnyEvent) -> Option<&Self::Event>;
    fn cache(caches: &Caches) -> &StateCache<Self::State>;
}

/// Generic code to run for a domain chosen at run time ([`DomainId::visit`]).
pub trait DomainVisitor {
    type Output;
    fn visit<D: Registered>(self) -> Self::Output;
}

/// A command or event `type` that no registered domain has.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} type \"{name}\"")]
pub struct UnknownType {
    pub what: &'static str,
    pub name: String,
}

macro_rules! registry {
    ($($variant:ident : $name:literal => $domain:ty),+ $(,)?) => {
        /// A registered domain. Serialized as its name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS))]
        pub enum DomainId {
            $(#[serde(rename = $name)] $variant,)+
        }

        impl DomainId {
            /// Every registered domain, in registration order.
            pub const ALL: &'static [DomainId] = &[$(DomainId::$variant),+];

            /// The domain's name (stores, job rows, workflow ids, the wire).
            pub fn name(self) -> &'static str {
                match self {
                    $(DomainId::$variant => $name,)+
                }
            }

            /// The domain named `name`, if one is registered.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|d| d.name() == name)
            }

            /// The domain that has the command type `name`.
            pub fn of_command_type(name: &str) -> Option<Self> {
                $(if <$domain as Domain>::COMMAND_TYPES.contains(&name) {
                    return Some(DomainId::$variant);
                })+
                None
            }

            /// The domain that has the event type `name`.
            pub fn of_event_type(name: &str) -> Option<Self> {
                $(if <$domain as Domain>::EVENT_TYPES.contains(&name) {
                    return Some(DomainId::$variant);
                })+
                None
            }

            /// The domain's command types, member commands first.
            pub fn command_types(self) -> &'static [&'static str] {
                match self {
                    $(DomainId::$variant => <$domain as Domain>::COMMAND_TYPES,)+
                }
            }

            /// The command types a member may send.
            pub fn member_command_types(self) -> &'static [&'static str] {
                match self {
                    $(DomainId::$variant => <$domain as Domain>::MEMBER_COMMAND_TYPES,)+
                }
            }

            /// The domain's event types.
            pub fn event_types(self) -> &'static [&'static str] {
                match self {
                    $(DomainId::$variant => <$domain as Domain>::EVENT_TYPES,)+
                }
            }

            /// Every refusal of the domain's rules.
            pub fn refusals(self) -> Vec<RefusalInfo> {
                match self {
                    $(DomainId::$variant => <$domain as Domain>::refusals(),)+
                }
            }

            /// Runs generic code for this domain.
            pub fn visit<V: DomainVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $(DomainId::$variant => visitor.visit::<$domain>(),)+
                }
            }
        }

        /// A command of any registered domain.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum AnyCommand {
            $($variant(<$domain as Domain>::Command),)+
        }

        impl AnyCommand {
            pub fn domain(&self) -> DomainId {
                match self {
                    $(AnyCommand::$variant(_) => DomainId::$variant,)+
                }
            }

            /// The aggregate the command addresses.
            pub fn aggregate(&self) -> AggregateId {
                match self {
                    $(AnyCommand::$variant(c) => AggregateId::new(
                        DomainId::$variant,
                        <$domain as Domain>::command_aggregate(c),
                    ),)+
                }
            }

            /// The `type` tag on the wire.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(AnyCommand::$variant(c) => <$domain as Domain>::command_type(c),)+
                }
            }

            /// Internal commands may only come from a process or the system.
            pub fn is_internal(&self) -> bool {
                match self {
                    $(AnyCommand::$variant(c) => <$domain as Domain>::is_internal(c),)+
                }
            }
        }

        $(impl From<<$domain as Domain>::Command> for AnyCommand {
            fn from(command: <$domain as Domain>::Command) -> Self {
                AnyCommand::$variant(command)
            }
        })+

        impl Serialize for AnyCommand {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(AnyCommand::$variant(c) => c.serialize(serializer),)+
                }
            }
        }

        impl<'de> DeserializeSeed<'de> for CommandOf {
            type Value = AnyCommand;
            fn deserialize<De: Deserializer<'de>>(self, de: De) -> Result<AnyCommand, De::Error> {
                match self.0 {
                    $(DomainId::$variant => {
                        <<$domain as Domain>::Command as Deserialize>::deserialize(de)
                            .map(AnyCommand::$variant)
                    })+
                }
            }
        }

        /// An event of any registered domain.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum AnyEvent {
            $($variant(<$domain as Domain>::Event),)+
        }

        impl AnyEvent {
            pub fn domain(&self) -> DomainId {
                match self {
                    $(AnyEvent::$variant(_) => DomainId::$variant,)+
                }
            }

            /// The aggregate the event belongs to.
            pub fn aggregate(&self) -> AggregateId {
                match self {
                    $(AnyEvent::$variant(e) => AggregateId::new(
                        DomainId::$variant,
                        <$domain as Domain>::event_aggregate(e),
                    ),)+
                }
            }

            /// The `type` tag on the wire.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(AnyEvent::$variant(e) => <$domain as Domain>::event_type(e),)+
                }
            }

            /// The durable work the event asks for, if any.
            pub fn job(&self) -> Option<JobKind> {
                match self {
                    $(AnyEvent::$variant(e) => <$domain as Domain>::job(e),)+
                }
            }

            /// The schema version its payload is written in.
            pub fn schema_version(&self) -> u32 {
                match self {
                    $(AnyEvent::$variant(_) => <$domain as Domain>::EVENT_SCHEMA_VERSION,)+
                }
            }
        }

        $(impl From<<$domain as Domain>::Event> for AnyEvent {
            fn from(event: <$domain as Domain>::Event) -> Self {
                AnyEvent::$variant(event)
            }
        })+

        impl Serialize for AnyEvent {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(AnyEvent::$variant(e) => e.serialize(serializer),)+
                }
            }
        }

        impl<'de> DeserializeSeed<'de> for EventOf {
            type Value = AnyEvent;
            fn deserialize<De: Deserializer<'de>>(self, de: De) -> Result<AnyEvent, De::Error> {
                match self.0 {
                    $(DomainId::$variant => {
                        <<$domain as Domain>::Event as Deserialize>::deserialize(de)
                            .map(AnyEvent::$variant)
                    })+
                }
            }
        }

        /// TypeScript: a command of any domain is the union of the domains' commands
        /// (the same `{type, payload}` shape each has).
        #[cfg(feature = "ts")]
        impl ts_rs::TS for AnyCommand {
            type WithoutGenerics = Self;
            type OptionInnerType = Self;
            fn name() -> String {
                "AnyCommand".to_owned()
            }
            fn decl() -> String {
                format!("type AnyCommand = {};", Self::inline())
            }
            fn decl_concrete() -> String {
                Self::decl()
            }
            fn inline() -> String {
                [$(<<$domain as Domain>::Command as ts_rs::TS>::inline()),+].join(" | ")
            }
            fn inline_flattened() -> String {
                format!(
                    "({})",
                    [$(<<$domain as Domain>::Command as ts_rs::TS>::inline_flattened()),+]
                        .join(" | ")
                )
            }
            fn visit_dependencies(v: &mut impl ts_rs::TypeVisitor) {
                $(<<$domain as Domain>::Command as ts_rs::TS>::visit_dependencies(v);)+
            }
        }

        /// TypeScript: an event of any domain is the union of the domains' events.
        #[cfg(feature = "ts")]
        impl ts_rs::TS for AnyEvent {
            type WithoutGenerics = Self;
            type OptionInnerType = Self;
            fn name() -> String {
                "AnyEvent".to_owned()
            }
            fn decl() -> String {
                format!("type AnyEvent = {};", Self::inline())
            }
            fn decl_concrete() -> String {
                Self::decl()
            }
            fn inline() -> String {
                [$(<<$domain as Domain>::Event as ts_rs::TS>::inline()),+].join(" | ")
            }
            fn inline_flattened() -> String {
                format!(
                    "({})",
                    [$(<<$domain as Domain>::Event as ts_rs::TS>::inline_flattened()),+]
                        .join(" | ")
                )
            }
            fn visit_dependencies(v: &mut impl ts_rs::TypeVisitor) {
                $(<<$domain as Domain>::Event as ts_rs::TS>::visit_dependencies(v);)+
            }
        }

        /// The service's cache of each domain's states.
        #[allow(non_snake_case)]
        #[derive(Debug)]
        pub struct Caches {
            $($variant: StateCache<<$domain as Domain>::State>,)+
        }

        impl Caches {
            /// About `capacity` aggregates per domain; 0 keeps none.
            pub(crate) fn new(capacity: usize) -> Self {
                Self {
                    $($variant: StateCache::new(capacity),)+
                }
            }
        }

        $(impl Registered for $domain {
            fn wrap_command(command: Self::Command) -> AnyCommand {
                AnyCommand::$variant(command)
            }
            #[allow(unreachable_patterns)]
            fn command_of(command: &AnyCommand) -> Option<&Self::Command> {
                match command {
                    AnyCommand::$variant(c) => Some(c),
                    _ => None,
                }
            }
            fn wrap_event(event: Self::Event) -> AnyEvent {
                AnyEvent::$variant(event)
            }
            #[allow(unreachable_patterns)]
            fn event_of(event: &AnyEvent) -> Option<&Self::Event> {
                match event {
                    AnyEvent::$variant(e) => Some(e),
                    _ => None,
                }
            }
            fn cache(caches: &Caches) -> &StateCache<Self::State> {
                &caches.$variant
            }
        })+
    };
}

registry! {
    Order: "order" => crate::order::Orders,
    Chore: "chore" => crate::chore::Chores,
    People: "people" => crate::people::People,
}

impl fmt::Display for DomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The refusal `code` of any domain, if one has it.
pub fn refusal(code: &str) -> Option<RefusalInfo> {
    DomainId::ALL
        .iter()
        .flat_map(|d| d.refusals())
        .find(|r| r.code == code)
}

/// Reads the payload-tagged command of one domain (`{"type", "payload"}`): the seed a
/// parser uses once it knows the domain from the `type` ([`DomainId::of_command_type`]).
#[derive(Clone, Copy, Debug)]
pub struct CommandOf(pub DomainId);

/// Reads the tagged event of one domain ([`DomainId::of_event_type`]).
#[derive(Clone, Copy, Debug)]
pub struct EventOf(pub DomainId);

/// The `type` of a tagged `{"type": ..., "payload": ...}` value.
fn type_of(value: &serde_json::Value) -> Option<&str> {
    value.get("type").and_then(serde_json::Value::as_str)
}

impl AnyCommand {
    /// Every command type of every domain.
    pub fn types() -> impl Iterator<Item = &'static str> {
        DomainId::ALL
            .iter()
            .flat_map(|d| d.command_types().iter().copied())
    }

    /// Rebuilds a command from its `type` and `payload`.
    pub fn from_parts(type_name: &str, payload: serde_json::Value) -> Result<Self, FromParts> {
        let domain = DomainId::of_command_type(type_name).ok_or_else(|| UnknownType {
            what: "command",
            name: type_name.to_owned(),
        })?;
        let tagged = serde_json::json!({ "type": type_name, "payload": payload });
        Ok(CommandOf(domain).deserialize(tagged)?)
    }
}

impl AnyEvent {
    /// Every event type of every domain.
    pub fn types() -> impl Iterator<Item = &'static str> {
        DomainId::ALL
            .iter()
            .flat_map(|d| d.event_types().iter().copied())
    }

    /// Rebuilds an event from its stored `type` and `payload`.
    pub fn from_parts(type_name: &str, payload: serde_json::Value) -> Result<Self, FromParts> {
        let domain = DomainId::of_event_type(type_name).ok_or_else(|| UnknownType {
            what: "event",
            name: type_name.to_owned(),
        })?;
        let tagged = serde_json::json!({ "type": type_name, "payload": payload });
        Ok(EventOf(domain).deserialize(tagged)?)
    }

    /// The payload alone, as stored next to the `type` column.
    pub fn payload(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.remove("payload").unwrap_or(serde_json::Value::Null)
            }
            _ => serde_json::Value::Null,
        }
    }

    /// The event as its domain's own type, if it is of domain `D`.
    pub fn of<D: Registered>(&self) -> Option<&D::Event> {
        D::event_of(self)
    }
}

/// Why a stored or received `type` and `payload` are not a command or event.
#[derive(Debug, thiserror::Error)]
pub enum FromParts {
    #[error(transparent)]
    UnknownType(#[from] UnknownType),
    #[error(transparent)]
    Payload(#[from] serde_json::Error),
}

impl<'de> Deserialize<'de> for AnyCommand {
    fn deserialize<De: Deserializer<'de>>(de: De) -> Result<Self, De::Error> {
        let value = serde_json::Value::deserialize(de)?;
        let name = type_of(&value).ok_or_else(|| De::Error::missing_field("type"))?;
        let domain = DomainId::of_command_type(name).ok_or_else(|| {
            De::Error::custom(UnknownType {
                what: "command",
                name: name.to_owned(),
            })
        })?;
        CommandOf(domain)
            .deserialize(value)
            .map_err(De::Error::custom)
    }
}

impl<'de> Deserialize<'de> for AnyEvent {
    fn deserialize<De: Deserializer<'de>>(de: De) -> Result<Self, De::Error> {
        let value = serde_json::Value::deserialize(de)?;
        let name = type_of(&value).ok_or_else(|| De::Error::missing_field("type"))?;
        let domain = DomainId::of_event_type(name).ok_or_else(|| {
            De::Error::custom(UnknownType {
                what: "event",
                name: name.to_owned(),
            })
        })?;
        EventOf(domain)
            .deserialize(value)
            .map_err(De::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn type_names_are_unique_across_domains() {
        let mut seen = HashSet::new();
        for name in AnyCommand::types().chain(AnyEvent::types()) {
            assert!(seen.insert(name), "type {name} is registered twice");
        }
    }

    #[test]
    fn domain_names_round_trip() {
        for &d in DomainId::ALL {
            assert_eq!(DomainId::from_name(d.name()), Some(d));
            assert_eq!(
                serde_json::to_value(d).ok(),
                Some(serde_json::Value::from(d.name()))
            );
        }
        assert_eq!(DomainId::from_name("nope"), None);
    }
}
