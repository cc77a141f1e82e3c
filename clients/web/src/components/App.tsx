// The root: the sign-in page without a session, the chat with one. A new ChatApp (and so a new
// connection) is made per session; signing out closes it.

import { useEffect, useState } from 'preact/hooks';
import { AppContext, ChatApp } from '../state/app';
import { currentSession, endSession, takeEndReason, type Session } from '../session';
import { Chat } from './Chat';
import { SignIn } from './SignIn';

export function App({ handOffError }: { handOffError: string | null }) {
  const [session, setSession] = useState<Session | null>(() => currentSession());
  const [notice, setNotice] = useState<string | null>(() => handOffError ?? takeEndReason());
  const [app, setApp] = useState<ChatApp | null>(null);

  useEffect(() => {
    if (!session) return;
    const chat = new ChatApp(session, (reason) => {
      endSession();
      setNotice(reason);
      setSession(null);
    });
    chat.start();
    setApp(chat);
    return () => {
      setApp(null);
      void chat.stop();
    };
  }, [session]);

  if (!session) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(s) => {
          setNotice(null);
          setSession(s);
        }}
      />
    );
  }
  if (!app) return null;
  return (
    <AppContext.Provider value={app}>
      <Chat
        onSignOut={() => {
          endSession();
          setSession(null);
        }}
      />
    </AppContext.Provider>
  );
}
