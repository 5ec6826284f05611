// The signed-in session: the bearer token (sessionStorage: gone when the tab
// closes, never a cookie), who the token belongs to, and the team shown.

import type { Principal } from "./types";

const TOKEN_KEY = "oz.token";
const TEAM_KEY = "oz.team";

let caller: Principal | null = null;

export const session = {
  token(): string {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  },
  setToken(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(TEAM_KEY);
    caller = null;
  },

  caller(): Principal | null {
    return caller;
  },
  setCaller(p: Principal): void {
    caller = p;
    const teams = p.teams ?? [];
    const cur = sessionStorage.getItem(TEAM_KEY);
    if (!cur || !teams.some((t) => t.team === cur)) {
      if (teams.length > 0) sessionStorage.setItem(TEAM_KEY, teams[0].team);
      else sessionStorage.removeItem(TEAM_KEY);
    }
  },

  /** userId is the caller's user id ("alice" for "users/alice"). */
  userId(): string {
    return caller?.name.replace(/^users\//, "") ?? "";
  },
  /** owner is the caller's canonical owner name for personal secrets. */
  personalOwner(): string {
    return caller?.name ?? "";
  },

  /** team is the id of the team shown ("" when the caller has none). */
  team(): string {
    return sessionStorage.getItem(TEAM_KEY) ?? "";
  },
  setTeam(team: string): void {
    sessionStorage.setItem(TEAM_KEY, team);
  },
  /** isAdmin: the caller is an admin of the team shown. */
  isAdmin(): boolean {
    const t = session.team();
    return !!caller?.teams?.some((r) => r.team === t && r.role === "ROLE_ADMIN");
  },
};
