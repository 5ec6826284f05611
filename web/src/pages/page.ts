// What every page gets.

export interface Ctx {
  /** The team shown ("" when the caller belongs to none). */
  team: string;
  /** The caller is an admin of that team. */
  admin: boolean;
  /** False once the user has navigated elsewhere: drop late results. */
  current: () => boolean;
  /** Renders the current page again. */
  refresh: () => void;
}

export type Page = (main: HTMLElement, ctx: Ctx) => Promise<void>;
