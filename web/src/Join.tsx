import { useEffect, useState } from "react";
import type { FormEvent } from "react";
import { navigate } from "./App";
import { fetchInvitePreview, joinHousehold } from "./api";
import type { InvitePreview } from "./generated";
import { findMembership, saveMembership } from "./memberships";
import { JOIN_ERRORS, errorSentence } from "./messages";

export function Join({ household, code }: { household: string; code: string }) {
  const existing = findMembership(household);
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState<InvitePreview | null>(null);

  useEffect(() => {
    fetchInvitePreview(household, code).then(setPreview, (err: unknown) =>
      setError(errorSentence(err, JOIN_ERRORS)),
    );
  }, [household, code]);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const m = await joinHousehold(household, { code, name });
      saveMembership(m);
      navigate(`/h/${m.household.id}`);
    } catch (err) {
      setError(errorSentence(err, JOIN_ERRORS));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="page">
      <h1>Hearth</h1>
      <section className="card">
        <h2 data-testid="join-title">{preview ? `Join ${preview.household.name}` : "Join a household"}</h2>
        {preview?.invitedBy && <p data-testid="invited-by">{preview.invitedBy} invited you.</p>}
        {existing && (
          <p>
            You already belong to {existing.household.name}.{" "}
            <a href={`/h/${household}`} onClick={(e) => (e.preventDefault(), navigate(`/h/${household}`))}>
              Open its board
            </a>
          </p>
        )}
        <form onSubmit={submit} className="stack">
          <label>
            Your name
            <input name="name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} placeholder="e.g. Bob" />
          </label>
          <button type="submit" disabled={busy}>
            Join
          </button>
          {error && <p className="error" role="alert">{error}</p>}
        </form>
      </section>
    </main>
  );
}
