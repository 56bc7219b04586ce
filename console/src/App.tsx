// The shell: sign-in first, then a header with what this key's role may open, and the page for the URL.
import { useEffect, useState } from 'react';
import { resume, signOut, type Session } from './api';
import { Link, navigate, useRoute } from './router';
import { SignIn } from './pages/SignIn';
import { UsersPage } from './pages/Users';
import { UserPage } from './pages/User';
import { ReviewsPage } from './pages/Reviews';
import { OperationsPage } from './pages/Operations';
import { Loading, ProblemBox } from './ui';

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  // A resume that failed for another reason than a refused key: shown, with the key still kept.
  const [unreachable, setUnreachable] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    resume().then(setSession, (err: unknown) => setUnreachable(err ?? new Error('The session could not be resumed.')));
  }, [attempt]);
  if (unreachable) {
    return (
      <ResumeFailed
        error={unreachable}
        onRetry={() => {
          setUnreachable(null);
          setAttempt((a) => a + 1);
        }}
        onSignOut={() => {
          signOut();
          setUnreachable(null);
          setSession(null);
        }}
      />
    );
  }
  if (session === undefined) return <Loading what="Opening the console" />;
  if (!session) return <SignIn onSignedIn={setSession} />;
  return (
    <Shell
      session={session}
      onSignOut={() => {
        signOut();
        setSession(null);
        navigate('/', { replace: true });
      }}
    />
  );
}

/** The key was not refused, the check failed (rate limited, server unavailable, network): try again. */
function ResumeFailed({ error, onRetry, onSignOut }: { error: unknown; onRetry: () => void; onSignOut: () => void }) {
  return (
    <main id="main" className="signin">
      <h1>Kyclo console</h1>
      <div className="card">
        <p>This tab’s session could not be resumed just now. The key was not refused, so it is kept: try again in a moment.</p>
        <ProblemBox error={error} />
        <div className="buttons">
          <button type="button" autoFocus onClick={onRetry}>
            Try again
          </button>
          <button type="button" className="secondary" onClick={onSignOut}>
            Sign in with another key
          </button>
        </div>
      </div>
    </main>
  );
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const { path, query } = useRoute();
  const nav: { to: string; label: string; show: boolean }[] = [
    { to: '/users', label: 'Users', show: true },
    { to: '/reviews', label: 'Review queue', show: session.can('changes:review') },
    { to: '/operations', label: 'Operations', show: session.can('events:manage') || session.can('audit:read') || session.can('tenant:admin') },
  ];
  const userMatch = /^\/users\/([^/]+)$/.exec(path);
  let page;
  if (userMatch) page = <UserPage key={userMatch[1]} session={session} id={decodeURIComponent(userMatch[1]!)} />;
  else if (path === '/reviews') page = <ReviewsPage session={session} />;
  else if (path.startsWith('/operations')) page = <OperationsPage session={session} tab={path.split('/')[2] ?? ''} />;
  else page = <UsersPage session={session} query={query} />;
  const active = (to: string) => (to === '/users' ? path === '/' || path.startsWith('/users') : path.startsWith(to));
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Kyclo</span>
        <nav aria-label="Main">
          {nav
            .filter((n) => n.show)
            .map((n) => (
              <Link key={n.to} to={n.to} aria-current={active(n.to) ? 'page' : undefined}>
                {n.label}
              </Link>
            ))}
        </nav>
        <div className="who">
          <span title={session.me.id}>
            {session.me.name} · <strong>{session.me.role.replace(/_/g, ' ')}</strong> · {session.me.tenant.name}
          </span>
          <button type="button" className="link" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}
