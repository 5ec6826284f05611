// The oz secrets web app: sign in with a token, then Secrets, Agents,
// Environments, Runs, Integrations, and for team admins Audit and Review. Routing is by
// the URL fragment (#/secrets, #/runs/RUN_ID…), so the gateway serves one
// page.

import { ApiError, call, setUnauthenticatedHandler } from "./api";
import { h, replace } from "./dom";
import { closePane, field, form } from "./forms";
import { renderAgents } from "./pages/agents";
import { renderAudit, renderReview } from "./pages/audit";
import { renderEnvironments } from "./pages/environments";
import { renderIntegrations } from "./pages/integrations";
import { renderRun, renderRuns } from "./pages/runs";
import { renderSecrets } from "./pages/secrets";
import type { Page } from "./pages/page";
import { session } from "./session";
import type { Principal } from "./types";

interface Route {
  path: string;
  title: string;
  adminOnly?: boolean;
  render: Page;
}

const routes: Route[] = [
  { path: "secrets", title: "Secrets", render: renderSecrets },
  { path: "agents", title: "Agents", render: renderAgents },
  { path: "environments", title: "Environments", render: renderEnvironments },
  { path: "runs", title: "Runs", render: renderRuns },
  { path: "integrations", title: "Integrations", render: renderIntegrations },
  { path: "audit", title: "Audit", adminOnly: true, render: renderAudit },
  { path: "review", title: "Review", adminOnly: true, render: renderReview },
];

const root = document.getElementById("app")!;
let generation = 0;
let signInNotice = "";

setUnauthenticatedHandler((message) => {
  if (!session.caller()) return; // signing in: the sign-in form shows the error
  session.clear();
  signInNotice = "Your token was not accepted: " + message;
  void route();
});

window.addEventListener("hashchange", () => void route());
void boot();

async function boot(): Promise<void> {
  if (session.token()) {
    try {
      await loadCaller();
    } catch (e) {
      session.clear();
      if (!signInNotice) signInNotice = e instanceof Error ? e.message : String(e);
    }
  }
  await route();
}

async function loadCaller(): Promise<void> {
  const resp = await call<{ principal: Principal }>("GET", "/v1/caller");
  const p = resp.principal;
  if (p.kind !== "PRINCIPAL_KIND_USER") {
    throw new Error("This token is not a person's: runner and agent tokens cannot sign in to the web app.");
  }
  session.setCaller(p);
}

async function route(): Promise<void> {
  const gen = ++generation;
  closePane();
  if (!session.caller()) {
    renderSignIn();
    return;
  }
  const hash = location.hash.replace(/^#\/?/, "");
  const [first, ...rest] = hash.split("/").map((s) => decodeURIComponent(s));
  let r = routes.find((x) => x.path === first);
  if (!r) {
    r = routes[0];
    history.replaceState(null, "", "#/" + r.path);
  }
  const main = renderLayout(r);
  document.title = r.title + " · oz secrets";
  const ctx = {
    team: session.team(),
    admin: session.isAdmin(),
    current: () => gen === generation,
    refresh: () => void route(),
  };
  try {
    if (r.adminOnly && !ctx.admin) {
      replace(main, h("h1", null, r.title), h("p", { class: "notice" }, "Only admins of the team can see this page."));
      return;
    }
    if (r.path === "runs" && rest.length > 0 && rest[0]) await renderRun(main, ctx, rest[0]);
    else await r.render(main, ctx);
  } catch (e) {
    if (gen !== generation) return;
    replace(main, h("h1", null, r.title), errorBox(e));
  }
}

/** errorBox shows an API error that is not about a form field. */
function errorBox(e: unknown): HTMLElement {
  const msg = e instanceof Error ? e.message : String(e);
  const hint =
    e instanceof ApiError && e.notDeployed
      ? h("p", { class: "sub" }, "This gateway does not serve the API this page needs: it may be older than the web app.")
      : null;
  return h("div", { class: "form-error page-error", role: "alert" }, h("p", null, msg), hint);
}

function renderLayout(active: Route): HTMLElement {
  const p = session.caller()!;
  const teams = p.teams ?? [];
  let teamControl: HTMLElement;
  if (teams.length > 1) {
    const sel = h(
      "select",
      { id: "team-select", "aria-label": "Team" },
      teams.map((t) => h("option", { value: t.team, selected: t.team === session.team() }, t.team)),
    );
    sel.addEventListener("change", () => {
      session.setTeam(sel.value);
      void route();
    });
    teamControl = sel;
  } else {
    teamControl = h("span", { id: "team-name" }, teams.length === 1 ? teams[0].team : "no team");
  }
  const role = session.isAdmin() ? "admin" : teams.length > 0 ? "member" : "";
  const signOut = h("button", { type: "button", id: "sign-out", class: "link" }, "Sign out");
  signOut.addEventListener("click", () => {
    session.clear();
    signInNotice = "";
    location.hash = "";
    void route();
  });
  const nav = h(
    "nav",
    { "aria-label": "Main" },
    h(
      "ul",
      null,
      routes
        .filter((r) => !r.adminOnly || session.isAdmin())
        .map((r) =>
          h(
            "li",
            null,
            h("a", { href: "#/" + r.path, id: "nav-" + r.path, "aria-current": r === active ? "page" : null }, r.title),
          ),
        ),
    ),
  );
  const main = h("main", { id: "page", tabindex: "-1" });
  replace(
    root,
    h(
      "header",
      { class: "top" },
      h("a", { class: "brand", href: "#/secrets" }, "oz secrets"),
      h(
        "div",
        { class: "who" },
        h("span", { class: "team" }, "Team ", teamControl),
        h("span", { id: "caller-name" }, session.userId()),
        role ? h("span", { class: "badge", id: "caller-role" }, role) : null,
        signOut,
      ),
    ),
    h("div", { class: "shell" }, nav, main),
    h("aside", { id: "pane", class: "pane", hidden: true, role: "dialog", "aria-modal": "false" }),
  );
  return main;
}

function renderSignIn(): void {
  document.title = "Sign in · oz secrets";
  const token = field({
    id: "token",
    label: "Token",
    fields: ["token"],
    hint: "Paste a token made with `oz admin token create --user YOU`. It is kept in this tab only and sent as a bearer header.",
    input: h("input", { type: "password", autocomplete: "off", spellcheck: "false", required: true }),
  });
  const f = form(
    "sign-in",
    async () => {
      const t = token.input.value.trim();
      if (!t) throw new ApiError(0, 3, "Paste a token first.", [{ field: "token", description: "required" }]);
      session.setToken(t);
      try {
        await loadCaller();
      } catch (e) {
        session.clear();
        throw e;
      }
      signInNotice = "";
      token.input.value = "";
      if (!location.hash || location.hash === "#") location.hash = "#/secrets";
      else await route();
    },
    token.row,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "sign-in-submit", class: "primary" }, "Sign in")),
  );
  const notice = signInNotice ? h("p", { class: "form-error", role: "alert", id: "sign-in-notice" }, signInNotice) : null;
  replace(
    root,
    h(
      "div",
      { class: "sign-in" },
      h("h1", null, "oz secrets"),
      h("p", null, "Sign in to manage your team's secrets, agent identities, environments and runs."),
      notice,
      f,
    ),
  );
  token.input.focus();
}
