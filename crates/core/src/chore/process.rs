//! The chore's process, as pure logic (`next_step`) and as the durable seam runs it
//! ([`ChoreProcess`]): remind at the due time, escalate if still open later, and once
//! a recurring chore is closed, schedule its next occurrence.

use super::*;
use crate::Timestamp;
use crate::contracts::{Actor, CommandEnvelope, CommandMetadata, CommandOutcome};
use crate::durable::{Advance, Process, ProcessError};
use crate::ids::{CommandId, HouseholdId, derive};
use crate::service::Service;
use crate::trace::Cause;
use async_trait::async_trait;
use uuid::Uuid;

/// What the chore's process does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChoreStep {
    /// Nothing before `at` (the due time, the escalation time, or a re-check of a
    /// chore left open): sleep on a durable timer, or until woken.
    WaitUntil { at: Timestamp },
    /// The due time came: remind the assignee.
    Remind,
    /// Still open `escalate_after_minutes` after the reminder: escalate.
    Escalate,
    /// A recurring chore was closed: schedule the next one.
    ScheduleNext(ScheduleNextChore),
    /// Nothing left (closed, and not recurring).
    Done,
}

impl ChoreStep {
    pub fn name(&self) -> &'static str {
        match self {
            ChoreStep::WaitUntil { .. } => "waitUntil",
            ChoreStep::Remind => "remind",
            ChoreStep::Escalate => "escalate",
            ChoreStep::ScheduleNext(_) => "scheduleNext",
            ChoreStep::Done => "done",
        }
    }
}

/// The id of the occurrence that follows `chore` (derived: scheduling it twice is one
/// chore).
pub fn next_id(chore: ChoreId) -> ChoreId {
    ChoreId(derive(chore.0, "next occurrence"))
}

/// The next step of a chore's process at `now`.
pub fn next_step(state: &ChoreState, now: Timestamp) -> ChoreStep {
    let Some(chore) = state.chore.as_ref() else {
        // Not scheduled (yet): a start job came before its event could be read.
        return ChoreStep::Done;
    };
    let escalate_at =
        chore.due_at + chrono::Duration::minutes(i64::from(chore.escalate_after_minutes));
    match chore.status {
        ChoreStatus::Scheduled if now < chore.due_at => ChoreStep::WaitUntil { at: chore.due_at },
        ChoreStatus::Scheduled => ChoreStep::Remind,
        ChoreStatus::Due if now < escalate_at => ChoreStep::WaitUntil { at: escalate_at },
        ChoreStatus::Due => ChoreStep::Escalate,
        // Nothing to do until it closes (which wakes the process); look again now and
        // then so a lost wake-up is only a delay.
        ChoreStatus::Overdue => ChoreStep::WaitUntil {
            at: now + chrono::Duration::days(limits::IDLE_RECHECK_DAYS),
        },
        ChoreStatus::Done | ChoreStatus::Skipped => match chore.every_days {
            Some(days) => {
                // The next due time after this one that is still ahead.
                let every = chrono::Duration::days(i64::from(days.max(1)));
                let mut due = chore.due_at + every;
                while due <= now {
                    due += every;
                }
                ChoreStep::ScheduleNext(ScheduleNextChore {
                    chore_id: next_id(chore.id),
                    previous: chore.id,
                    title: chore.title.clone(),
                    assignee: chore.assignee,
                    due_at: due,
                    every_days: days,
                    escalate_after_minutes: chore.escalate_after_minutes,
                    created_by: chore.created_by,
                })
            }
            None => ChoreStep::Done,
        },
    }
}

/// The command id that records a step: derived, so a repeated step is one command.
pub fn step_command_id(tenant: HouseholdId, chore: ChoreId, step: &ChoreStep) -> CommandId {
    CommandId(derive(derive(tenant.0, &chore.to_string()), step.name()))
}

/// The chore domain's [`Process`]: needs nothing but the service.
#[derive(Debug, Clone)]
pub struct ChoreProcess {
    service: Service,
}

impl ChoreProcess {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

#[async_trait]
impl Process for ChoreProcess {
    async fn step(
        &self,
        tenant: HouseholdId,
        id: Uuid,
        cause: Cause,
    ) -> Result<Advance, ProcessError> {
        let chore = ChoreId(id);
        let state = self.service.load::<Chores>(tenant, chore).await?;
        let now = self.service.clock().now();
        let step = next_step(&state, now);
        let command = match &step {
            ChoreStep::Done => return Ok(Advance::Done),
            ChoreStep::WaitUntil { at } => return Ok(Advance::Waiting { until: *at }),
            ChoreStep::Remind => ChoreCommand::SendChoreReminder(ChoreRef { chore_id: chore }),
            ChoreStep::Escalate => ChoreCommand::EscalateChore(ChoreRef { chore_id: chore }),
            ChoreStep::ScheduleNext(next) => ChoreCommand::ScheduleNextChore(next.clone()),
        };
        let envelope = CommandEnvelope {
            id: step_command_id(tenant, chore, &step),
            tenant,
            command: command.into(),
            metadata: CommandMetadata {
                actor: Actor::Process,
                correlation_id: cause.correlation_id,
                // The job's event; with no job behind the step, the chore.
                causation_id: Some(cause.causation_id.unwrap_or(id)),
                role: None,
                traceparent: None,
            },
        };
        let outcome = self.service.dispatch(envelope).await?.outcome();
        if let ChoreStep::ScheduleNext(_) = step {
            // The next occurrence has its own process; this one is over, whatever
            // became of the command (scheduled now, before, or by a racing run).
            return Ok(Advance::Done);
        }
        if let CommandOutcome::Rejected { code, message } = outcome {
            // Refused now or by an earlier run: fine if the chore moved on meanwhile
            // (done before its reminder); stuck if it did not.
            let after = self.service.load::<Chores>(tenant, chore).await?;
            if after.version == state.version {
                return Ok(Advance::Stuck {
                    step: step.name(),
                    error: format!("recording was refused: {code}: {message}"),
                });
            }
        }
        Ok(Advance::Progressed { step: step.name() })
    }
}
