import { useEffect, useState } from "react";
import { Board } from "./Board";
import { Home } from "./Home";
import { Join } from "./Join";
import { findMembership } from "./memberships";

/** Client routes: `/`, `/join/<household>/<code>`, `/h/<household>`. */
export type Route =
  | { page: "home" }
  | { page: "join"; household: string; code: string }
  | { page: "board"; household: string };

export function parseRoute(path: string): Route {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "join" && parts[1] && parts[2]) return { page: "join", household: parts[1], code: parts[2] };
  if (parts[0] === "h" && parts[1]) return { page: "board", household: parts[1] };
  return { page: "home" };
}

export function navigate(path: string) {
  history.pushState(null, "", path);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function App() {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const onPop = () => setRoute(parseRoute(location.pathname));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  switch (route.page) {
    case "home":
      return <Home />;
    case "join":
      return <Join household={route.household} code={route.code} />;
    case "board": {
      const membership = findMembership(route.household);
      if (!membership) {
        return (
          <main className="page">
            <h1>Hearth</h1>
            <p className="error" data-testid="not-member">
              You are not a member of this household on this device. Ask a member for an invite link.
            </p>
            <a href="/">Back to my households</a>
          </main>
        );
      }
      return <Board key={route.household} membership={membership} />;
    }
  }
}
