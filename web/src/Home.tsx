import { useState } from "react";
import type { FormEvent } from "react";
import { navigate } from "./App";
import { createHousehold } from "./api";
import { localTimeZone } from "./format";
import { loadMemberships, saveMembership } from "./memberships";
import { errorSentence } from "./messages";
import { takeDepartureNotice } from "./session";

export function Home() {
  const memberships = loadMemberships();
  const [notice] = useState(takeDepartureNotice);
  const [name, setName] = useState("");
  const [ownerName, setOwnerName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const m = await createHousehold({ name, ownerName, timeZone: localTimeZone() });
      saveMembership(m);
      navigate(`/h/${m.household.id}`);
    } catch (err) {
      setError(errorSentence(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="page">
      <h1>Hearth</h1>
      <p className="muted">Order for your household together, live.</p>
      {notice && (
        <p className="banner" role="status" data-testid="departure-notice">
          {notice}
        </p>
      )}
      {memberships.length > 0 && (
        <section className="card">
          <h2>Your households</h2>
          <ul className="plain">
            {memberships.map((m) => (
              <li key={m.household.id}>
                <a href={`/h/${m.household.id}`} onClick={(e) => (e.preventDefault(), navigate(`/h/${m.household.id}`))}>
                  {m.household.name}
                </a>{" "}
                <span className="muted">as {m.member.name}</span>
              </li>
            ))}
          </ul>
        </section>
      )}
      <section className="card">
        <h2>Start a household</h2>
        <form onSubmit={submit} className="stack">
          <label>
            Household name
            <input name="household" value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} placeholder="e.g. Flat 3B" />
          </label>
          <label>
            Your name
            <input name="owner" value={ownerName} onChange={(e) => setOwnerName(e.target.value)} required maxLength={200} placeholder="e.g. Ann" />
          </label>
          <button type="submit" disabled={busy}>
            Create household
          </button>
          {error && <p className="error" role="alert">{error}</p>}
        </form>
      </section>
      <p className="muted">Joining someone else's household? Open the invite link they sent you.</p>
    </main>
  );
}
