// An owner changes the household's time zone: an IANA name, from the browser's list (or
// typed); the server checks it again and refuses an unknown one (`unknown_time_zone`),
// shown as a sentence. Every member reads it at their next connect.
import { useId, useState } from "react";
import type { FormEvent } from "react";
import { setTimeZone } from "./api";
import { knownTimeZone, localTimeZone } from "./format";
import type { Household } from "./generated";
import { errorSentence } from "./messages";

/** The zones this browser knows, for the list (empty where `Intl` cannot list them). */
function zones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  try {
    return intl.supportedValuesOf?.("timeZone") ?? [];
  } catch {
    return [];
  }
}

export function TimeZoneSetting(props: { householdId: string; token: string; zone: string; onChanged: (h: Household) => void }) {
  const { householdId, token, zone, onChanged } = props;
  const [value, setValue] = useState(zone);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(false);
  const listId = useId();
  const here = localTimeZone();

  async function save(e: FormEvent) {
    e.preventDefault();
    const wanted = value.trim();
    setError(null);
    setSaved(false);
    if (!knownTimeZone(wanted)) return setError(`“${wanted}” is not a time zone. Pick one from the list, such as Europe/Berlin.`);
    setBusy(true);
    try {
      onChanged(await setTimeZone(householdId, token, wanted));
      setSaved(true);
    } catch (err) {
      setError(errorSentence(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <details className="card" data-testid="time-zone-setting">
      <summary>Household time zone: {zone}</summary>
      <form className="stack" onSubmit={save}>
        <p className="muted small">Every member sees and picks times in this zone, wherever they are.</p>
        <label>
          Time zone
          <input name="timeZone" list={listId} value={value} onChange={(e) => (setValue(e.target.value), setSaved(false))} autoComplete="off" />
        </label>
        <datalist id={listId}>
          {zones().map((z) => (
            <option key={z} value={z} />
          ))}
        </datalist>
        <div className="row">
          <button type="submit" disabled={busy || value.trim() === zone}>
            Save time zone
          </button>
          {here !== zone && (
            <button type="button" className="secondary" onClick={() => setValue(here)}>
              Use this device's ({here})
            </button>
          )}
        </div>
        {error && (
          <p className="error" role="alert" data-testid="time-zone-error">
            {error}
          </p>
        )}
        {saved && (
          <p className="muted" role="status">
            Saved: times are now in {zone}.
          </p>
        )}
      </form>
    </details>
  );
}
