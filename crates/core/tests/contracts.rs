//! The JSON shape of the envelopes is a contract with clients and stores: camelCase,
//! `type` and `payload` at the top level, stable names.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use hearth_core::order::{Command, Event, OrderRef};
use hearth_core::{
    Actor, CommandEnvelope, CommandId, EventEnvelope, EventId, EventMetadata, HouseholdId,
    MemberId, OrderId,
};
use serde_json::json;
use uuid::Uuid;

#[test]
fn command_envelope_shape() {
    let command = CommandEnvelope::new(
        CommandId(Uuid::from_u128(1)),
        HouseholdId(Uuid::from_u128(2)),
        Actor::Member {
            id: MemberId(Uuid::from_u128(3)),
        },
        Command::CancelOrder(hearth_core::order::CancelOrder {
            order_id: OrderId(Uuid::from_u128(4)),
            reason: None,
        }),
    );
    let value = serde_json::to_value(&command).unwrap();
    assert_eq!(
        value,
        json!({
            "id": "00000000-0000-0000-0000-000000000001",
            "tenant": "00000000-0000-0000-0000-000000000002",
            "type": "CancelOrder",
            "payload": { "orderId": "00000000-0000-0000-0000-000000000004" },
            "metadata": { "actor": { "kind": "member", "id": "00000000-0000-0000-0000-000000000003" } }
        })
    );
    let back: CommandEnvelope = serde_json::from_value(value).unwrap();
    assert_eq!(back, command);
}

#[test]
fn event_envelope_shape() {
    let event = EventEnvelope {
        id: EventId(Uuid::from_u128(1)),
        tenant: HouseholdId(Uuid::from_u128(2)),
        seq: 7,
        aggregate_id: Uuid::from_u128(4),
        version: 3,
        event: Event::OrderReady {
            order_id: OrderId(Uuid::from_u128(4)),
        }
        .into(),
        schema_version: 1,
        metadata: EventMetadata {
            command_id: CommandId(Uuid::from_u128(5)),
            causation_id: Uuid::from_u128(5),
            correlation_id: Uuid::from_u128(6),
            actor: Actor::Process,
        },
        created_at: Utc
            .with_ymd_and_hms(2026, 11, 27, 18, 30, 0)
            .single()
            .unwrap(),
        requires_job: false,
    };
    let value = serde_json::to_value(&event).unwrap();
    assert_eq!(
        value,
        json!({
            "id": "00000000-0000-0000-0000-000000000001",
            "tenant": "00000000-0000-0000-0000-000000000002",
            "seq": 7,
            "aggregateId": "00000000-0000-0000-0000-000000000004",
            "version": 3,
            "type": "OrderReady",
            "payload": { "orderId": "00000000-0000-0000-0000-000000000004" },
            "schemaVersion": 1,
            "metadata": {
                "commandId": "00000000-0000-0000-0000-000000000005",
                "causationId": "00000000-0000-0000-0000-000000000005",
                "correlationId": "00000000-0000-0000-0000-000000000006",
                "actor": { "kind": "process" }
            },
            "createdAt": "2026-11-27T18:30:00Z",
            "requiresJob": false
        })
    );
    assert_eq!(
        serde_json::from_value::<EventEnvelope>(value).unwrap(),
        event
    );
}

#[test]
fn event_type_and_payload_round_trip_through_from_parts() {
    let event = Event::OrderCompleted {
        order_id: OrderId(Uuid::from_u128(9)),
        by: MemberId(Uuid::from_u128(8)),
    };
    let back = Event::from_parts(event.type_name(), event.payload()).unwrap();
    assert_eq!(back, event);
    assert!(Event::from_parts("NoSuchEvent", json!({})).is_err());
}

#[test]
fn unknown_command_types_and_fields_are_refused() {
    let base = json!({"id": Uuid::nil(), "tenant": Uuid::nil(), "metadata": {"actor": {"kind": "system"}}});
    let with = |t: &str, payload: serde_json::Value| {
        let mut v = base.clone();
        v["type"] = json!(t);
        v["payload"] = payload;
        serde_json::from_value::<CommandEnvelope>(v)
    };
    assert!(with("CompleteOrder", json!({"orderId": Uuid::nil()})).is_ok());
    assert!(with("DropTables", json!({})).is_err());
    assert!(with("CompleteOrder", json!({"orderId": Uuid::nil(), "extra": 1})).is_err());
    assert!(with("CompleteOrder", json!({"orderId": "not-a-uuid"})).is_err());
    let _ = Command::CompleteOrder(OrderRef {
        order_id: OrderId(Uuid::nil()),
    });
}

/// Names are written once, as enum variants; everything else reads them from there.
/// This pins the public lists (clients switch on them): renaming a variant must be a
/// decision, made here.
#[test]
fn type_names_and_refusal_codes_come_from_the_variants() {
    use hearth_core::{DomainError, OrderStatus, Refusal};
    use strum::IntoEnumIterator as _;

    assert_eq!(
        Command::TYPES,
        [
            "PlaceOrder",
            "CancelOrder",
            "CompleteOrder",
            "RecordStockReserved",
            "RecordPaymentCaptured",
            "ConfirmOrder",
            "RejectOrder",
            "MarkReady",
            "RecordRefundIssued",
            "RecordStockReleased",
            "RecordProviderRefund",
        ]
    );
    assert_eq!(Event::TYPES.len(), 13);
    // serde's tag and `type_name` agree, for a command and for an event.
    let order_id = OrderId(Uuid::nil());
    let command = Command::ConfirmOrder(OrderRef { order_id });
    assert_eq!(
        serde_json::to_value(&command).unwrap()["type"],
        command.type_name()
    );
    let event = Event::OrderReady { order_id };
    assert_eq!(
        serde_json::to_value(&event).unwrap()["type"],
        event.type_name()
    );
    assert!(Event::TYPES.contains(&event.type_name()));

    let codes: Vec<&str> = Refusal::iter().map(Refusal::code).collect();
    assert_eq!(
        codes,
        [
            "order_already_exists",
            "order_not_found",
            "no_lines",
            "too_many_lines",
            "quantity_out_of_range",
            "invalid_sku",
            "unknown_sku",
            "price_changed",
            "not_enough_stock",
            "invalid_name",
            "unit_price_too_high",
            "duplicate_sku",
            "total_not_positive",
            "ready_at_not_in_future",
            "ready_at_too_far",
            "note_too_long",
            "reason_too_long",
            "control_characters",
            "cannot_cancel",
            "not_your_order",
            "not_ready",
            "internal_command",
            "invalid_transition",
            "amount_mismatch",
            "refund_not_due",
            "release_not_due",
            "not_this_payment",
            "no_reaction",
        ]
    );
    for refusal in Refusal::iter() {
        assert_eq!(Refusal::from_code(refusal.code()), Some(refusal));
    }
    assert_eq!(Refusal::from_code("no_such_rule"), None);
    let rule = DomainError::CannotCancel {
        status: OrderStatus::Ready,
    };
    assert_eq!(rule.code(), "cannot_cancel");
    assert!(Refusal::from(&rule).is_conflict());
    assert!(!Refusal::NoLines.is_conflict());
}
