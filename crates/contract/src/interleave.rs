//! Providers that let a test put a member's cancel in the middle of a provider call,
//! deterministically: the wrapped provider's effect happens, then the cancel commits,
//! then the reply reaches the caller (or is lost, as when the caller dies). No sleeps,
//! no timing: the interleaving that left money and stock behind (issue 19).

use async_trait::async_trait;
use hearth_core::order::{CancelOrder, Command};
use hearth_core::ports::{
    Capture, CaptureEntry, CaptureRequest, Inventory, Payments, ProviderError, RefundRequest,
    ReleaseRequest, ReservationEntry, ReserveRequest,
};
use hearth_core::{Actor, CommandEnvelope, CommandId, HouseholdId, MemberId, OrderId, Service};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Which call the cancel lands in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum During {
    Reserve,
    Capture,
}

/// What becomes of the reply after the cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// It reaches the caller late: the order is cancelled by then.
    Late,
    /// It never reaches the caller (a timeout, a dead worker): the caller sees a
    /// transient error and will run again.
    Lost,
}

#[derive(Debug)]
struct Armed {
    during: During,
    reply: Reply,
}

/// Wraps real providers; armed once with [`CancelDuring::arm`].
#[derive(Debug)]
pub struct CancelDuring {
    payments: Arc<dyn Payments>,
    inventory: Arc<dyn Inventory>,
    service: Service,
    armed: Mutex<Option<Armed>>,
    fired: AtomicUsize,
}

impl CancelDuring {
    pub fn new(
        payments: Arc<dyn Payments>,
        inventory: Arc<dyn Inventory>,
        service: Service,
    ) -> Arc<Self> {
        Arc::new(Self {
            payments,
            inventory,
            service,
            armed: Mutex::new(None),
            fired: AtomicUsize::new(0),
        })
    }

    /// The next `during` call that takes effect is followed by a member's cancel of its
    /// order, then by its reply as `reply` says.
    pub fn arm(&self, during: During, reply: Reply) {
        *self.armed.lock().unwrap() = Some(Armed { during, reply });
    }

    /// How many cancels were put in a call.
    pub fn fired(&self) -> usize {
        self.fired.load(Ordering::SeqCst)
    }

    /// After a call to `during` took effect: cancel if armed for it, and say what to
    /// do with the reply.
    async fn after(&self, during: During, tenant: HouseholdId, order: OrderId) -> Option<Reply> {
        let reply = {
            let mut armed = self.armed.lock().unwrap();
            match armed.as_ref() {
                Some(a) if a.during == during => armed.take().map(|a| a.reply),
                _ => None,
            }
        }?;
        let cancel = CommandEnvelope::new(
            CommandId(Uuid::now_v7()),
            tenant,
            Actor::Member {
                id: MemberId(Uuid::now_v7()),
            },
            Command::CancelOrder(CancelOrder {
                order_id: order,
                reason: Some("changed my mind".into()),
            }),
        );
        let outcome = self.service.dispatch(cancel).await.unwrap();
        assert!(
            matches!(outcome, hearth_core::Dispatched::Accepted { .. }),
            "the cancel in the middle of the call was refused: {outcome:?}"
        );
        self.fired.fetch_add(1, Ordering::SeqCst);
        Some(reply)
    }
}

fn deliver(id: String, reply: Option<Reply>) -> Result<String, ProviderError> {
    match reply {
        Some(Reply::Lost) => Err(ProviderError::Transient(
            "the reply was lost (injected)".into(),
        )),
        _ => Ok(id),
    }
}

#[async_trait]
impl Payments for CancelDuring {
    async fn capture(&self, request: CaptureRequest) -> Result<String, ProviderError> {
        let (tenant, order) = (request.tenant, request.order_id);
        let payment = self.payments.capture(request).await?;
        let reply = self.after(During::Capture, tenant, order).await;
        deliver(payment, reply)
    }

    async fn refund(&self, request: RefundRequest) -> Result<String, ProviderError> {
        self.payments.refund(request).await
    }

    async fn find_capture(&self, key: Uuid) -> Result<Option<Capture>, ProviderError> {
        self.payments.find_capture(key).await
    }

    async fn capture_ledger(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<CaptureEntry>, ProviderError> {
        self.payments.capture_ledger(after, limit).await
    }
}

#[async_trait]
impl Inventory for CancelDuring {
    async fn reserve(&self, request: ReserveRequest) -> Result<String, ProviderError> {
        let (tenant, order) = (request.tenant, request.order_id);
        let reservation = self.inventory.reserve(request).await?;
        let reply = self.after(During::Reserve, tenant, order).await;
        deliver(reservation, reply)
    }

    async fn release(&self, request: ReleaseRequest) -> Result<(), ProviderError> {
        self.inventory.release(request).await
    }

    async fn find_reservation(&self, key: Uuid) -> Result<Option<String>, ProviderError> {
        self.inventory.find_reservation(key).await
    }

    async fn reservation_ledger(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ReservationEntry>, ProviderError> {
        self.inventory.reservation_ledger(after, limit).await
    }
}
