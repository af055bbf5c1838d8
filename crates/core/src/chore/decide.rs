//! The chore's rules: what a command means given the state, and the refusals, named
//! after the rules.

use super::*;
use crate::contracts::Actor;
use crate::domain::Context;
use crate::ids::MemberId;

/// A broken chore rule. The variant's name, in snake case, is the rule's stable code
/// ([`ChoreRefusal`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, strum::EnumDiscriminants)]
#[strum_discriminants(
    name(ChoreRefusal),
    derive(
        Hash,
        strum::IntoStaticStr,
        strum::EnumString,
        strum::VariantNames,
        strum::EnumIter
    ),
    strum(serialize_all = "snake_case")
)]
pub enum ChoreRule {
    #[error("chore {0} already exists")]
    ChoreAlreadyExists(ChoreId),
    #[error("chore {0} does not exist")]
    ChoreNotFound(ChoreId),
    #[error("a chore's title must be 1 to {max} characters", max = limits::MAX_TITLE_CHARS)]
    InvalidTitle,
    #[error("{field} must not contain control characters")]
    ChoreControlCharacters { field: &'static str },
    #[error("the due time must be in the future")]
    DueAtNotInFuture,
    #[error("the due time must be within {days} days", days = limits::MAX_DUE_DAYS)]
    DueAtTooFar,
    #[error("a chore recurs every 1 to {max} days, got {got}", max = limits::MAX_EVERY_DAYS)]
    RecurrenceOutOfRange { got: u16 },
    #[error(
        "escalation comes {min} to {max} minutes after the reminder, got {got}",
        min = limits::MIN_ESCALATE_AFTER_MINUTES,
        max = limits::MAX_ESCALATE_AFTER_MINUTES
    )]
    EscalationOutOfRange { got: u32 },
    #[error("reason has {got} characters, at most {max} allowed", max = limits::MAX_REASON_CHARS)]
    ChoreReasonTooLong { got: usize },
    #[error("the chore is {status}: it can no longer change")]
    ChoreClosed { status: ChoreStatus },
    #[error("only the chore's assignee, the member who scheduled it, or an owner can do this")]
    NotAssignee,
    #[error("a chore cannot be swapped with its own assignee")]
    SwapWithSelf,
    #[error("a swap with {0} is already waiting for an answer")]
    SwapPending(MemberId),
    #[error("no swap of this chore is waiting for this member's answer")]
    NoSwapPending,
    #[error("{command} is internal to the chore's process; members cannot send it")]
    ChoreInternalCommand { command: &'static str },
    #[error("{command} does not apply to a chore that is {status}")]
    ChoreInvalidTransition {
        command: &'static str,
        status: ChoreStatus,
    },
}

impl ChoreRefusal {
    pub fn code(self) -> &'static str {
        self.into()
    }

    /// Whether the refusal depends on the chore's state at the time (409) rather than
    /// on the command alone (422).
    pub fn is_conflict(self) -> bool {
        matches!(
            self,
            ChoreRefusal::ChoreAlreadyExists
                | ChoreRefusal::ChoreNotFound
                | ChoreRefusal::ChoreClosed
                | ChoreRefusal::NotAssignee
                | ChoreRefusal::SwapPending
                | ChoreRefusal::NoSwapPending
                | ChoreRefusal::ChoreInvalidTransition
        )
    }

    /// The rule in a sentence a member can read.
    pub fn sentence(self) -> &'static str {
        match self {
            ChoreRefusal::ChoreAlreadyExists => "This chore was already scheduled.",
            ChoreRefusal::ChoreNotFound => "This chore does not exist.",
            ChoreRefusal::InvalidTitle => "Give the chore a title of at most 100 characters.",
            ChoreRefusal::ChoreControlCharacters => {
                "The text contains characters that cannot be stored."
            }
            ChoreRefusal::DueAtNotInFuture => "The due time has already passed; pick a later one.",
            ChoreRefusal::DueAtTooFar => "A chore can be due at most a year ahead.",
            ChoreRefusal::RecurrenceOutOfRange => "A chore can repeat every 1 to 365 days.",
            ChoreRefusal::EscalationOutOfRange => {
                "Escalation can come 5 minutes to 7 days after the reminder."
            }
            ChoreRefusal::ChoreReasonTooLong => "The reason is too long (at most 200 characters).",
            ChoreRefusal::ChoreClosed => "This chore is already done or skipped.",
            ChoreRefusal::NotAssignee => {
                "Only the member it is assigned to, who scheduled it, or an owner can do this."
            }
            ChoreRefusal::SwapWithSelf => "Pick another member to swap with.",
            ChoreRefusal::SwapPending => "A swap of this chore is already waiting for an answer.",
            ChoreRefusal::NoSwapPending => "No swap of this chore is waiting for your answer.",
            ChoreRefusal::ChoreInternalCommand => "Only the chore's reminders can do this.",
            ChoreRefusal::ChoreInvalidTransition => {
                "This step does not apply to the chore as it is now."
            }
        }
    }
}

impl crate::domain::Rule for ChoreRule {
    fn code(&self) -> &'static str {
        ChoreRefusal::from(self).code()
    }

    fn is_conflict(&self) -> bool {
        ChoreRefusal::from(self).is_conflict()
    }
}

/// The member behind the command, if a member sent it.
fn member(ctx: &Context) -> Option<MemberId> {
    match &ctx.actor {
        Actor::Member { id } => Some(*id),
        _ => None,
    }
}

/// Decides what a command means for a chore, given its current state.
pub fn decide(
    state: &ChoreState,
    command: &ChoreCommand,
    ctx: &Context,
) -> Result<Vec<ChoreEvent>, ChoreRule> {
    if command.is_internal() && matches!(ctx.actor, Actor::Member { .. }) {
        return Err(ChoreRule::ChoreInternalCommand {
            command: command.type_name(),
        });
    }
    let Some(chore) = state.chore.as_ref() else {
        return match command {
            ChoreCommand::ScheduleChore(s) => schedule(s, ctx),
            ChoreCommand::ScheduleNextChore(s) => Ok(vec![ChoreEvent::ChoreScheduled {
                chore_id: s.chore_id,
                title: s.title.clone(),
                assignee: s.assignee,
                due_at: s.due_at,
                every_days: Some(s.every_days),
                escalate_after_minutes: s.escalate_after_minutes,
                created_by: s.created_by,
                previous: Some(s.previous),
            }]),
            _ => Err(ChoreRule::ChoreNotFound(command.chore_id())),
        };
    };
    let id = chore.id;
    let status = chore.status;
    if let ChoreCommand::ScheduleChore(_) | ChoreCommand::ScheduleNextChore(_) = command {
        return Err(ChoreRule::ChoreAlreadyExists(id));
    }
    if !status.is_open() {
        return Err(ChoreRule::ChoreClosed { status });
    }
    let actor = member(ctx);
    // The assignee, whoever scheduled it, or an owner (a process or the system acts for
    // them).
    let may_close =
        ctx.is_owner() || actor.is_none_or(|m| m == chore.assignee || m == chore.created_by);
    let invalid = || ChoreRule::ChoreInvalidTransition {
        command: command.type_name(),
        status,
    };
    let event = match command {
        ChoreCommand::ScheduleChore(_) | ChoreCommand::ScheduleNextChore(_) => {
            return Err(ChoreRule::ChoreAlreadyExists(id));
        }
        ChoreCommand::CompleteChore(_) => {
            if !may_close {
                return Err(ChoreRule::NotAssignee);
            }
            ChoreEvent::ChoreCompleted {
                chore_id: id,
                by: actor.unwrap_or(chore.assignee),
            }
        }
        ChoreCommand::SkipChore(s) => {
            if !may_close {
                return Err(ChoreRule::NotAssignee);
            }
            if let Some(reason) = &s.reason {
                let got = reason.chars().count();
                if got > limits::MAX_REASON_CHARS {
                    return Err(ChoreRule::ChoreReasonTooLong { got });
                }
                check_text(reason, true, "reason")?;
            }
            ChoreEvent::ChoreSkipped {
                chore_id: id,
                by: actor.unwrap_or(chore.assignee),
                reason: s.reason.clone(),
            }
        }
        ChoreCommand::ProposeSwap(p) => {
            if actor != Some(chore.assignee) {
                return Err(ChoreRule::NotAssignee);
            }
            if p.with == chore.assignee {
                return Err(ChoreRule::SwapWithSelf);
            }
            if let Some(pending) = chore.pending_swap {
                return Err(ChoreRule::SwapPending(pending));
            }
            ChoreEvent::SwapProposed {
                chore_id: id,
                from: chore.assignee,
                to: p.with,
            }
        }
        ChoreCommand::AcceptSwap(_) => match chore.pending_swap {
            Some(to) if actor == Some(to) => ChoreEvent::SwapAccepted {
                chore_id: id,
                from: chore.assignee,
                to,
            },
            _ => return Err(ChoreRule::NoSwapPending),
        },
        ChoreCommand::DeclineSwap(_) => match (chore.pending_swap, actor) {
            // The member asked declines, or the assignee withdraws the proposal.
            (Some(to), Some(by)) if by == to || by == chore.assignee => {
                ChoreEvent::SwapDeclined { chore_id: id, by }
            }
            _ => return Err(ChoreRule::NoSwapPending),
        },
        ChoreCommand::SendChoreReminder(_) => {
            if status != ChoreStatus::Scheduled {
                return Err(invalid());
            }
            ChoreEvent::ChoreReminderSent {
                chore_id: id,
                assignee: chore.assignee,
            }
        }
        ChoreCommand::EscalateChore(_) => {
            if status != ChoreStatus::Due {
                return Err(invalid());
            }
            ChoreEvent::ChoreEscalated {
                chore_id: id,
                assignee: chore.assignee,
            }
        }
    };
    Ok(vec![event])
}

fn check_text(text: &str, multiline: bool, field: &'static str) -> Result<(), ChoreRule> {
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if text.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(ChoreRule::ChoreControlCharacters { field });
    }
    Ok(())
}

fn schedule(s: &ScheduleChore, ctx: &Context) -> Result<Vec<ChoreEvent>, ChoreRule> {
    let title_len = s.title.trim().chars().count();
    if title_len == 0 || s.title.chars().count() > limits::MAX_TITLE_CHARS {
        return Err(ChoreRule::InvalidTitle);
    }
    check_text(&s.title, false, "title")?;
    if s.due_at <= ctx.now {
        return Err(ChoreRule::DueAtNotInFuture);
    }
    if s.due_at > ctx.now + chrono::Duration::days(limits::MAX_DUE_DAYS) {
        return Err(ChoreRule::DueAtTooFar);
    }
    if let Some(got) = s.every_days
        && !(1..=limits::MAX_EVERY_DAYS).contains(&got)
    {
        return Err(ChoreRule::RecurrenceOutOfRange { got });
    }
    let escalate_after_minutes = s
        .escalate_after_minutes
        .unwrap_or(limits::DEFAULT_ESCALATE_AFTER_MINUTES);
    if !(limits::MIN_ESCALATE_AFTER_MINUTES..=limits::MAX_ESCALATE_AFTER_MINUTES)
        .contains(&escalate_after_minutes)
    {
        return Err(ChoreRule::EscalationOutOfRange {
            got: escalate_after_minutes,
        });
    }
    Ok(vec![ChoreEvent::ChoreScheduled {
        chore_id: s.chore_id,
        title: s.title.clone(),
        assignee: s.assignee,
        due_at: s.due_at,
        every_days: s.every_days,
        escalate_after_minutes,
        // Scheduled by the system (imports, tests): the nil member.
        created_by: member(ctx).unwrap_or(MemberId(uuid::Uuid::nil())),
        previous: None,
    }])
}
