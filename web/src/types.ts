// The REST shapes the app reads: proto3 JSON (lowerCamelCase fields, enums as
// their names, int64 as strings, timestamps as RFC 3339).

export interface TeamRole {
  team: string;
  role: string; // ROLE_MEMBER | ROLE_ADMIN
}

export interface Principal {
  kind: string; // PRINCIPAL_KIND_USER | …_RUNNER | …_AGENT
  name: string; // "users/{user}"
  systemAdmin: boolean;
  teams: TeamRole[];
  tokenId: string;
  tokenExpireTime?: string | null;
}

export interface Secret {
  name: string;
  secretId: string;
  scope: string; // SCOPE_TEAM | SCOPE_PERSONAL
  owner: string;
  description: string;
  valueVersion: string;
  createTime?: string | null;
  updateTime?: string | null;
  valueUpdateTime?: string | null;
  createBy: string;
  updateBy: string;
  etag: string;
  /** Absent when the secret is not bound to hosts. */
  binding?: HostBinding | null;
}

/**
 * HostBinding binds a secret to hosts (DESIGN §5.6): in a run the agent
 * gets a placeholder, and the runner's egress proxy puts the value into
 * requests to these hosts only.
 */
export interface HostBinding {
  hosts?: string[];
  allowQuery?: boolean;
  allowBody?: boolean;
}

export interface Agent {
  name: string;
  agentId: string;
  displayName: string;
  description: string;
  secretNames: string[];
  default: boolean;
  createTime?: string | null;
  updateTime?: string | null;
  etag: string;
  startPolicy: string; // START_POLICY_ADMINS | START_POLICY_MEMBERS
}

export interface Environment {
  name: string;
  environmentId: string;
  description: string;
  secretNames: string[];
  createTime?: string | null;
  updateTime?: string | null;
  etag: string;
}

export interface RunContext {
  trigger: string;
  user: string;
  agent: string;
  environment: string;
  secrets?: { names: string[] } | null;
  strict: boolean;
}

export interface InjectedSecret {
  secretName: string;
  scope: string; // SECRET_SCOPE_TEAM | SECRET_SCOPE_PERSONAL
  owner: string;
  valueVersion: string;
  overridesTeamSecret: boolean;
  redacted: boolean;
  /** For a run in flight: INJECTED_VALUE_STATE_CURRENT | _ROTATED | _DELETED. */
  valueState?: string;
  /** Set when the run got a placeholder and its egress proxy the value. */
  binding?: HostBinding | null;
}

export interface UnresolvedReference {
  secretName: string;
  reason: string; // UNRESOLVED_REASON_…
  detail: string;
}

export interface Run {
  name: string;
  runId: string;
  context?: RunContext | null;
  agent: string;
  resolvedBy: string;
  createTime?: string | null;
  allowlistSource: string;
  injected: InjectedSecret[];
  unresolved: UnresolvedReference[];
  outcome: string;
  state: string; // RUN_STATE_STARTED | _RESOLVED (in flight) | _ENDED | _FAILED | _EXPIRED
  /** "users/alice", "teams/t/agents/a" or "teams/t/integrations/i". */
  startedBy: string;
  ticketExpireTime?: string | null;
  resolveTime?: string | null;
  endTime?: string | null;
  end?: RunEnd | null;
  holdsStaleValues: boolean;
}

export interface RunEnd {
  exitCode: number;
  signal: number;
  duration?: string | null; // "12.5s"
  /** What the run's egress proxy did, per host. */
  egress?: EgressCount[];
}

export interface EgressCount {
  host: string;
  substitutions?: string; // int64
  denials?: string; // int64
}

/** StartedRun is StartRun's answer: the ticket is shown only here. */
export interface StartedRun {
  ticket: string;
  expireTime?: string | null;
  runId: string;
  run?: Run | null;
}

export interface Integration {
  name: string;
  integrationId: string;
  trigger: string; // TRIGGER_SLACK | _LINEAR | _SCHEDULE | _INTEGRATION
  agents: string[];
  description: string;
  createTime?: string | null;
  createBy: string;
  /** Whether the caller allowed it to start runs on their behalf. */
  allowed: boolean;
}

export interface CandidateDecision {
  secretName: string;
  scope: string;
  owner: string;
  valueVersion: string;
  decision: string;
  detail: string;
  /** Set when the secret is bound to hosts: injected, the agent gets a placeholder. */
  binding?: HostBinding | null;
}

export interface Explanation {
  context?: RunContext | null;
  agent: string;
  allowlistSource: string;
  allowlist: string[];
  candidates: CandidateDecision[];
  unresolved: UnresolvedReference[];
  notes: string[];
  wouldFailStrict: boolean;
}

/** SealingKey is a public key the secret store opens sealed values with. */
export interface SealingKey {
  keyId: string;
  kemId: number;
  kdfId: number;
  aeadId: number;
  publicKey: string; // base64
  createTime?: string | null;
  current: boolean;
}

/** SealedValue is a value sealed in the browser (HPKE base mode). */
export interface SealedValue {
  keyId: string;
  ciphertext: string; // base64 of enc || ct
}
