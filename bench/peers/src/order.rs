//! The order decisions the peers make: the same rules as Hearth's PlaceOrder and
//! CancelOrder, cut to what this workload exercises (lines checked against the same
//! catalog, shown prices compared, the total computed, a ready-at set; a cancel
//! refused unless the order is placed and not yet closed). Each peer wraps these in
//! its own aggregate or decision type, so every system decides the same thing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long an order takes to prepare, as `hearth serve` sets it by default.
pub const PREP_TIME_SECS: i64 = 600;
const MAX_LINES: usize = 50;
const MAX_QUANTITY: u32 = 99;

/// A line as asked for: a sku, a quantity, the unit price the member was shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedLine {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_cents: u64,
}

/// A line as recorded: the catalog's name and price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price_cents: u64,
}

/// What was placed, as the OrderPlaced event carries it (Hearth's fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placed {
    pub order_id: Uuid,
    pub household_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub total_cents: u64,
    pub ready_at: DateTime<Utc>,
    pub placed_by: Uuid,
}

/// What a cancellation records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancelled {
    pub order_id: Uuid,
    pub by: Uuid,
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    #[default]
    None,
    Placed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("order {0} already exists")]
    AlreadyExists(Uuid),
    #[error("order {0} not found")]
    NotFound(Uuid),
    #[error("an order cannot be cancelled once it is {0:?}")]
    CannotCancel(Status),
    #[error("an order needs 1 to {MAX_LINES} lines")]
    Lines,
    #[error("quantity {0} out of range")]
    Quantity(u32),
    #[error("no {0} in the catalog")]
    UnknownSku(String),
    #[error("the price of {0} changed")]
    PriceChanged(String),
}

/// The catalog (the same items and prices as Hearth's default catalog).
pub fn catalog_entry(sku: &str) -> Option<(&'static str, u64)> {
    Some(match sku {
        "bread" => ("Sourdough loaf", 450),
        "milk" => ("Milk 1 L", 129),
        "eggs" => ("Eggs, dozen", 399),
        "coffee" => ("Coffee beans 250 g", 899),
        "apples" => ("Apples 1 kg", 299),
        "pizza" => ("Margherita pizza", 1150),
        _ => return None,
    })
}

/// The lines every order of the workload asks for (three lines, prices as shown by the
/// catalog).
pub fn workload_lines() -> Vec<RequestedLine> {
    [("bread", 1), ("milk", 2), ("coffee", 1)]
        .into_iter()
        .map(|(sku, quantity)| RequestedLine {
            sku: sku.to_owned(),
            quantity,
            unit_price_cents: catalog_entry(sku).map_or(0, |(_, cents)| cents),
        })
        .collect()
}

pub fn place(
    status: Status,
    order_id: Uuid,
    household_id: Uuid,
    member: Uuid,
    lines: &[RequestedLine],
    now: DateTime<Utc>,
) -> Result<Placed, Refusal> {
    if status != Status::None {
        return Err(Refusal::AlreadyExists(order_id));
    }
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(Refusal::Lines);
    }
    let mut recorded = Vec::with_capacity(lines.len());
    for line in lines {
        if line.quantity == 0 || line.quantity > MAX_QUANTITY {
            return Err(Refusal::Quantity(line.quantity));
        }
        let (name, cents) =
            catalog_entry(&line.sku).ok_or_else(|| Refusal::UnknownSku(line.sku.clone()))?;
        if cents != line.unit_price_cents {
            return Err(Refusal::PriceChanged(line.sku.clone()));
        }
        recorded.push(OrderLine {
            sku: line.sku.clone(),
            name: name.to_owned(),
            quantity: line.quantity,
            unit_price_cents: cents,
        });
    }
    let total_cents = recorded
        .iter()
        .map(|l| l.unit_price_cents * u64::from(l.quantity))
        .sum();
    Ok(Placed {
        order_id,
        household_id,
        lines: recorded,
        total_cents,
        ready_at: now + chrono::Duration::seconds(PREP_TIME_SECS),
        placed_by: member,
    })
}

pub fn cancel(status: Status, order_id: Uuid, by: Uuid) -> Result<Cancelled, Refusal> {
    match status {
        Status::None => Err(Refusal::NotFound(order_id)),
        Status::Placed => Ok(Cancelled {
            order_id,
            by,
            reason: Some("plans changed".to_owned()),
        }),
        Status::Cancelled => Err(Refusal::CannotCancel(status)),
    }
}
