import { useState, type FormEvent } from 'react';
import { signIn, type Session } from '../api';
import { ProblemBox } from '../ui';

export function SignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await signIn(key));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" className="signin">
      <h1>Kyclo console</h1>
      <form onSubmit={submit} className="card">
        <label htmlFor="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autoComplete="off" spellCheck={false} required value={key} onChange={(e) => setKey(e.target.value)} placeholder="kyclo_live_…" />
        <p className="muted small">Kept in this tab only (session storage): closing the tab signs you out. What you see follows the key’s role; the server decides every request.</p>
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <ProblemBox error={error} />
      </form>
    </main>
  );
}
