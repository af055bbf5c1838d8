// The chore rota beside the orders: the second domain's view (view.chores, folded by
// projection.ts like the server's HouseholdView) and its member commands, sent through
// the same socket and queue as orders (useHousehold's `send`).
import { useState } from "react";
import type { FormEvent, ReactNode } from "react";
import type { ChoreView, Member, MemberCommand } from "./protocol";
import { fromZonedInput, toZonedInput, when } from "./format";
import { useZone } from "./zone";

const STATUS_TEXT: Record<ChoreView["status"], string> = {
  scheduled: "Scheduled",
  due: "Due now",
  overdue: "Overdue",
  done: "Done",
  skipped: "Skipped",
};

const newId = () => crypto.randomUUID();

export function Chores(props: {
  chores: ChoreView[];
  me: string;
  members: Member[];
  /** Reads the members again (someone may have joined since): when a list of them opens. */
  refreshMembers: () => void;
  send: (command: MemberCommand) => string;
  disabled: boolean;
  /** The control that loads older chores, when some are not loaded. */
  older?: ReactNode;
}) {
  const { chores, me, members, refreshMembers, send, disabled, older } = props;
  const name = (id: string) => (id === me ? "you" : (members.find((m) => m.id === id)?.name ?? "a member"));
  const open = chores.filter((c) => c.status === "scheduled" || c.status === "due" || c.status === "overdue");
  const closed = chores.filter((c) => !open.includes(c)).slice(-5).reverse();
  return (
    <section aria-labelledby="chores-heading" data-testid="chores">
      <h2 id="chores-heading">Chores</h2>
      <NewChore me={me} members={members} refreshMembers={refreshMembers} send={send} disabled={disabled} />
      <ul className="plain chores">
        {chores.length === 0 && <li className="muted">No chores yet.</li>}
        {[...open, ...closed].map((c) => (
          <Chore
            key={c.id}
            chore={c}
            me={me}
            members={members}
            refreshMembers={refreshMembers}
            name={name}
            send={send}
            disabled={disabled}
          />
        ))}
      </ul>
      {older}
    </section>
  );
}

function Chore(props: {
  chore: ChoreView;
  me: string;
  members: Member[];
  refreshMembers: () => void;
  name: (id: string) => string;
  send: (command: MemberCommand) => string;
  disabled: boolean;
}) {
  const { chore, me, members, refreshMembers, name, send, disabled } = props;
  const zone = useZone();
  const [swapWith, setSwapWith] = useState("");
  const isOpen = chore.status === "scheduled" || chore.status === "due" || chore.status === "overdue";
  const mayClose = chore.assignee === me || chore.createdBy === me;
  const choreId = chore.id;
  return (
    <li className={`card chore ${chore.status}`} data-testid="chore" data-chore-id={chore.id} data-status={chore.status}>
      <div className="chore-head">
        <strong>{chore.title}</strong> <span className={`pill ${chore.status}`}>{STATUS_TEXT[chore.status]}</span>
      </div>
      <p className="muted">
        For {name(chore.assignee)} · due {when(chore.dueAt, zone)}
        {chore.everyDays ? ` · every ${chore.everyDays === 1 ? "day" : `${chore.everyDays} days`}` : ""}
        {chore.closedBy ? ` · ${chore.status === "done" ? "done" : "skipped"} by ${name(chore.closedBy)}` : ""}
        {chore.skipReason ? ` (${chore.skipReason})` : ""}
      </p>
      {chore.pendingSwap && (
        <p data-testid="swap">
          {name(chore.assignee)} asked {name(chore.pendingSwap)} to take it over.{" "}
          {chore.pendingSwap === me && (
            <>
              <button disabled={disabled} onClick={() => send({ type: "AcceptSwap", payload: { choreId } })}>
                Take “{chore.title}” over
              </button>{" "}
              <button disabled={disabled} onClick={() => send({ type: "DeclineSwap", payload: { choreId } })}>
                Decline
              </button>
            </>
          )}
          {chore.assignee === me && (
            <button disabled={disabled} onClick={() => send({ type: "DeclineSwap", payload: { choreId } })}>
              Withdraw the swap
            </button>
          )}
        </p>
      )}
      {isOpen && (
        <div className="actions">
          {mayClose && (
            <>
              <button disabled={disabled} onClick={() => send({ type: "CompleteChore", payload: { choreId } })}>
                Mark “{chore.title}” done
              </button>{" "}
              <button disabled={disabled} onClick={() => send({ type: "SkipChore", payload: { choreId } })}>
                Skip “{chore.title}”
              </button>
            </>
          )}
          {chore.assignee === me && !chore.pendingSwap && (
            <form
              className="inline"
              onSubmit={(e) => {
                e.preventDefault();
                if (swapWith) send({ type: "ProposeSwap", payload: { choreId, with: swapWith } });
              }}
            >
              <label>
                Swap “{chore.title}” with{" "}
                <select aria-label={`Swap “${chore.title}” with`} value={swapWith} onFocus={refreshMembers} onChange={(e) => setSwapWith(e.target.value)}>
                  <option value="">someone…</option>
                  {members
                    .filter((m) => m.id !== me)
                    .map((m) => (
                      <option key={m.id} value={m.id}>
                        {m.name}
                      </option>
                    ))}
                </select>
              </label>{" "}
              <button type="submit" disabled={disabled || !swapWith}>
                Ask
              </button>
            </form>
          )}
        </div>
      )}
    </li>
  );
}

function NewChore(props: {
  me: string;
  members: Member[];
  refreshMembers: () => void;
  send: (command: MemberCommand) => string;
  disabled: boolean;
}) {
  const { me, members, refreshMembers, send, disabled } = props;
  const zone = useZone();
  const inAnHour = () => toZonedInput(new Date(Date.now() + 60 * 60 * 1000), zone);
  const [title, setTitle] = useState("");
  const [assignee, setAssignee] = useState(me);
  const [due, setDue] = useState(inAnHour);
  const [every, setEvery] = useState("");
  const [problem, setProblem] = useState<string | null>(null);

  function submit(e: FormEvent) {
    e.preventDefault();
    const dueAt = fromZonedInput(due, zone);
    if (title.trim() === "") return setProblem("Give the chore a title.");
    if (dueAt === null || dueAt.getTime() <= Date.now()) return setProblem("Pick a due time in the future.");
    const everyDays = every === "" ? undefined : Number(every);
    send({
      type: "ScheduleChore",
      payload: { choreId: newId(), title: title.trim(), assignee, dueAt: dueAt.toISOString(), ...(everyDays ? { everyDays } : {}) },
    });
    setTitle("");
    setDue(inAnHour());
    setEvery("");
    setProblem(null);
  }

  return (
    <form className="card new-chore" aria-labelledby="new-chore-heading" onSubmit={submit}>
      <h3 id="new-chore-heading">New chore</h3>
      <label>
        Chore <input aria-label="Chore" value={title} maxLength={100} onChange={(e) => setTitle(e.target.value)} placeholder="Take the bins out" />
      </label>
      <label>
        For{" "}
        <select aria-label="For" value={assignee} onFocus={refreshMembers} onChange={(e) => setAssignee(e.target.value)}>
          <option value={me}>me</option>
          {members
            .filter((m) => m.id !== me)
            .map((m) => (
              <option key={m.id} value={m.id}>
                {m.name}
              </option>
            ))}
        </select>
      </label>
      <label>
        Due ({zone}) <input aria-label="Due" type="datetime-local" value={due} onChange={(e) => setDue(e.target.value)} />
      </label>
      <label>
        Repeats{" "}
        <select aria-label="Repeats" value={every} onChange={(e) => setEvery(e.target.value)}>
          <option value="">never</option>
          <option value="1">every day</option>
          <option value="7">every week</option>
          <option value="14">every two weeks</option>
          <option value="30">every 30 days</option>
        </select>
      </label>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <button type="submit" disabled={disabled}>
        Schedule chore
      </button>
    </form>
  );
}
