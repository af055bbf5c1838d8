//! A bounded read of a household's view: each of its lists (orders, chores) cut to its
//! most recent items within a bound, with how many came before, and the pages that reach
//! back past them. The welcome, `GET` of a room and `GET /households/{id}/{list}` all
//! read through here, so an adapter never names a domain's list: adding a domain is
//! adding its list to [`HouseholdView`] and to the table in this module.

use crate::projection::{ChoreView, HouseholdView, MemberView, OrderView};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// How much of each list one read carries: at most `items` items and `bytes` bytes of
/// their JSON, but always at least one item if there is one (an item is bounded by the
/// core's limits: an order has at most 50 lines and a 500-character note).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub items: usize,
    pub bytes: usize,
}

impl Default for Bound {
    /// 100 items, 128 KiB: a household's recent weeks (an order with one line and its
    /// whole fulfilment is about 1 KB of JSON), whatever the length of its history.
    fn default() -> Self {
        Self {
            items: 100,
            bytes: 128 * 1024,
        }
    }
}

/// How many items of each list came before a bounded read's first one (0: the read
/// holds the whole list). Page back with `GET /households/{id}/{list}?before=<count>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Older {
    /// How many orders were placed before the first one read (0: it holds them all).
    /// `GET /households/{id}/orders?before=<olderOrders>` pages them.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub older_orders: u64,
    /// How many chores were scheduled before the first one read (0: it holds them all).
    /// `GET /households/{id}/chores?before=<olderChores>` pages them.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub older_chores: u64,
}

/// The household view's lists, by the name they have in its JSON and in the URL that
/// pages them.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum List {
    Orders,
    Chores,
}

impl List {
    pub const ALL: [List; 2] = [List::Orders, List::Chores];

    /// The list's name: its key in the view's JSON and its path segment.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Which items of each list a bounded read carries: a range per list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub orders: Range<usize>,
    pub chores: Range<usize>,
}

impl Window {
    /// The most recent items of each of `view`'s lists, each list within `bound`.
    pub fn of(view: &HouseholdView, bound: Bound) -> Self {
        Self {
            orders: recent(&view.orders, view.orders.len(), bound),
            chores: recent(&view.chores, view.chores.len(), bound),
        }
    }

    /// How many items of each list precede the window's.
    pub fn older(&self) -> Older {
        Older {
            older_orders: self.orders.start as u64,
            older_chores: self.chores.start as u64,
        }
    }

    /// The view of the window's items only, at `view.seq`.
    pub fn view(&self, view: &HouseholdView) -> HouseholdView {
        HouseholdView {
            seq: view.seq,
            orders: slice(&view.orders, &self.orders).to_vec(),
            chores: slice(&view.chores, &self.chores).to_vec(),
            // Members are not a bounded list: a household's members are few, all carried.
            members: view.members.clone(),
        }
    }

    /// [`Window::view`] serialized as a `HouseholdView`, without copying the items.
    pub fn view_json(&self, view: &HouseholdView) -> String {
        #[derive(Serialize)]
        struct Partial<'a> {
            seq: u64,
            orders: &'a [OrderView],
            chores: &'a [ChoreView],
            members: &'a [MemberView],
        }
        serde_json::to_string(&Partial {
            seq: view.seq,
            orders: slice(&view.orders, &self.orders),
            chores: slice(&view.chores, &self.chores),
            members: &view.members,
        })
        // Serializing a view cannot fail (no map keys that are not strings); if it ever
        // did, an empty view at the same seq is still a true (if partial) answer.
        .unwrap_or_else(|_| {
            let empty = HouseholdView {
                seq: view.seq,
                ..HouseholdView::default()
            };
            serde_json::to_string(&empty).unwrap_or_default()
        })
    }
}

/// A page of one of a household's lists, oldest first, as
/// `GET /households/{id}/{list}?before=K` returns it: `{"seq", "<list>": [...],
/// "older<List>"}`, the same names as the welcome's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(untagged)]
pub enum Page {
    Orders(OrdersPage),
    Chores(ChoresPage),
}

/// A page of a household's orders, oldest first: `GET /households/{id}/orders`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct OrdersPage {
    /// The household position the orders are at: every event up to it is in them.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub seq: u64,
    /// Orders in the order they were placed, each at `seq`; the last one is the one
    /// placed right before `before`.
    pub orders: Vec<OrderView>,
    /// How many orders were placed before the first one here: the next page is
    /// `before=<olderOrders>` (0: none).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub older_orders: u64,
}

/// A page of a household's chores, oldest first: `GET /households/{id}/chores`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChoresPage {
    /// The household position the chores are at.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub seq: u64,
    /// Chores in the order they were scheduled; the last one is the one scheduled right
    /// before `before`.
    pub chores: Vec<ChoreView>,
    /// How many chores were scheduled before the first one here: the next page is
    /// `before=<olderChores>` (0: none).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub older_chores: u64,
}

/// The items of `list` that come before its `before`-th (all of them if `before` is past
/// its end), the most recent first while they fit `bound`, returned oldest first.
pub fn page(view: &HouseholdView, list: List, before: usize, bound: Bound) -> Page {
    match list {
        List::Orders => {
            let range = recent(&view.orders, before, bound);
            Page::Orders(OrdersPage {
                seq: view.seq,
                older_orders: range.start as u64,
                orders: slice(&view.orders, &range).to_vec(),
            })
        }
        List::Chores => {
            let range = recent(&view.chores, before, bound);
            Page::Chores(ChoresPage {
                seq: view.seq,
                older_chores: range.start as u64,
                chores: slice(&view.chores, &range).to_vec(),
            })
        }
    }
}

fn slice<'a, T>(items: &'a [T], range: &Range<usize>) -> &'a [T] {
    items.get(range.clone()).unwrap_or_default()
}

/// Counts the bytes written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The most recent of `items[..before]`, newest first while they fit `bound`: their
/// range in `items` (its start is the number of items before them).
pub fn recent<T: Serialize>(items: &[T], before: usize, bound: Bound) -> Range<usize> {
    let end = before.min(items.len());
    let mut start = end;
    // The array's JSON: `[`, each item and a `,` or the closing `]`.
    let mut bytes = 1usize;
    while start > 0 && end - start < bound.items.max(1) {
        let mut counter = Counter(0);
        // Serializing an item cannot fail (no map keys that are not strings).
        let _ = serde_json::to_writer(&mut counter, &items[start - 1]);
        let size = counter.0 + 1;
        if start < end && bytes + size > bound.bytes {
            break;
        }
        bytes += size;
        start -= 1;
    }
    start..end
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every list of the view's JSON has a name here, an older-count in [`Older`] and a
    /// page: a list added to `HouseholdView` but not here fails this test. `members` is
    /// not a history but who is in now, carried whole by every read.
    #[test]
    fn every_list_of_the_view_is_windowed_counted_and_paged() {
        let json = serde_json::to_value(HouseholdView::default()).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "seq" && *k != "members")
            .collect();
        keys.sort_unstable();
        let mut names: Vec<&str> = List::ALL.iter().map(|l| l.name()).collect();
        names.sort_unstable();
        assert_eq!(keys, names);
        let older = serde_json::to_value(Older::default()).unwrap();
        for list in List::ALL {
            let name = list.name();
            let counter = format!("older{}{}", name[..1].to_uppercase(), &name[1..]);
            assert!(older.get(&counter).is_some(), "Older lacks {counter}");
            let page = serde_json::to_value(page(
                &HouseholdView::default(),
                list,
                usize::MAX,
                Bound::default(),
            ))
            .unwrap();
            assert!(page.get(name).is_some() && page.get(&counter).is_some());
            assert_eq!(name.parse::<List>().unwrap(), list);
            assert_eq!(serde_json::to_value(list).unwrap(), name);
        }
        let window = Window::of(&HouseholdView::default(), Bound::default());
        let view: serde_json::Value =
            serde_json::from_str(&window.view_json(&HouseholdView::default())).unwrap();
        assert_eq!(view, json);
    }

    #[test]
    fn a_window_keeps_the_most_recent_items_within_the_count_and_the_bytes() {
        let items: Vec<u32> = (0..10).collect();
        let by_count = Bound {
            items: 3,
            bytes: 1024,
        };
        assert_eq!(recent(&items, items.len(), by_count), 7..10);
        assert_eq!(recent(&items, 5, by_count), 2..5);
        assert_eq!(recent(&items, 2, by_count), 0..2);
        // `[7,8,9]` is 7 bytes: a bound of 6 keeps two.
        let by_bytes = Bound {
            items: 100,
            bytes: 6,
        };
        assert_eq!(recent(&items, items.len(), by_bytes), 8..10);
        // One item always fits, whatever its size.
        let tiny = Bound { items: 1, bytes: 1 };
        assert_eq!(recent(&items, items.len(), tiny), 9..10);
        assert_eq!(recent(&items, 0, by_count), 0..0);
    }

    fn view_of(orders: usize, note: usize) -> HouseholdView {
        use crate::order::{OrderLine, OrderStatus};
        use crate::projection::TimelineEntry;
        use crate::{MemberId, OrderId};
        let mut view = HouseholdView::new();
        view.seq = orders as u64;
        for i in 0..orders {
            view.orders.push(OrderView {
                id: OrderId(uuid::Uuid::now_v7()),
                status: OrderStatus::Placed,
                lines: vec![OrderLine {
                    sku: "milk".into(),
                    name: "Milk".into(),
                    quantity: 1,
                    unit_price_cents: 120,
                }],
                total_cents: 120,
                ready_at: None,
                note: Some("n".repeat(note)),
                placed_by: MemberId(uuid::Uuid::nil()),
                placed_at: chrono::Utc::now(),
                rejection: None,
                cancelled_by: None,
                cancel_reason: None,
                completed_by: None,
                refunded: false,
                stock_released: false,
                timeline: vec![TimelineEntry {
                    seq: i as u64 + 1,
                    at: chrono::Utc::now(),
                    event: "OrderPlaced".into(),
                    status: OrderStatus::Placed,
                }],
            });
        }
        view
    }

    #[test]
    fn a_bounded_read_of_orders_counts_their_json_and_pages_back() {
        let view = view_of(10, 10);
        let by_count = Bound {
            items: 4,
            bytes: usize::MAX,
        };
        assert_eq!(recent(&view.orders, usize::MAX, by_count), 6..10);
        // By bytes: the array's JSON counts; at least one order.
        let three = serde_json::json!(view.orders[7..10]).to_string().len();
        let by_bytes = |bytes| Bound { items: 100, bytes };
        assert_eq!(recent(&view.orders, 10, by_bytes(three)), 7..10);
        assert_eq!(recent(&view.orders, 10, by_bytes(three - 1)), 8..10);
        // The window's view is a HouseholdView of those orders at the view's seq.
        let window = Window::of(&view, by_bytes(three));
        assert_eq!(
            window.older(),
            Older {
                older_orders: 7,
                older_chores: 0
            }
        );
        let partial: HouseholdView = serde_json::from_str(&window.view_json(&view)).unwrap();
        assert_eq!(partial, window.view(&view));
        assert_eq!(partial.seq, 10);
        assert_eq!(partial.orders, view.orders[7..10].to_vec());
        // The page before the window's first order ends right before it.
        let Page::Orders(back) = page(&view, List::Orders, 7, by_bytes(three)) else {
            panic!("an orders page");
        };
        assert_eq!(back.orders, view.orders[4..7].to_vec());
        assert_eq!((back.seq, back.older_orders), (10, 4));
        let Page::Chores(chores) = page(&view, List::Chores, usize::MAX, by_count) else {
            panic!("a chores page");
        };
        assert!(chores.chores.is_empty() && chores.older_chores == 0);
    }
}
