// Consul's KV read endpoint: the request path for the trigger key and the meaning of an
// answer, after Consul's HTTP API documentation (api-docs/kv.mdx "Read Key") and its server
// code (agent/kvs_endpoint.go: 404 for a missing key with the index headers still set; 403
// for ACL errors, whose text is the error, e.g. "ACL not found" or "Permission denied: ...").
// A recursive read (?recurse, agent/consul/kvs_endpoint.go List) answers every key under a
// prefix, sorted by key; keys the token may not read are left out (not refused), which
// Consul 1.11+ says with X-Consul-Results-Filtered-By-ACLs: true, except to a request without
// a token (maskResultsFilteredByACLs); nothing left is a 404 that still carries the index.
import type { HttpAnswer } from '../http-client.js';
import { ConsulAclError, ConsulResponseError } from './errors.js';

/** Characters of an error body kept for the log and /status. */
export const ERROR_BODY_CHARS = 200;

export interface KvLocation {
  /** The key as Consul stores it (no leading '/': Consul rejects keys that begin with one). */
  readonly key: string;
  /** Encoded request path below the endpoint. */
  readonly path: string;
}

export function kvLocation(triggerKey: string): KvLocation {
  const key = triggerKey.replace(/^\/+/, '');
  if (key === '') throw new Error(`trigger-key "${triggerKey}" names no Consul key`);
  return { key, path: `v1/kv/${key.split('/').map(encodeURIComponent).join('/')}` };
}

/** A prefix as Consul stores it ('' = every key) and the encoded request path of a recursive read. */
export interface ListLocation {
  readonly prefix: string;
  readonly path: string;
}

export function listLocation(prefix: string): ListLocation {
  const p = prefix.replace(/^\/+/, '');
  return { prefix: p, path: `v1/kv/${p.split('/').map(encodeURIComponent).join('/')}` };
}

export type KvRead =
  | { readonly kind: 'found'; readonly value: Buffer; readonly modifyIndex: bigint; readonly index: bigint; readonly session: string | null }
  | { readonly kind: 'absent'; readonly index: bigint };

export interface ListEntry {
  readonly value: Buffer;
  readonly modifyIndex: bigint;
}

/** A recursive read: every key under the prefix the token may read (Consul key → entry, in key order). */
export interface KvList {
  readonly kind: 'list';
  readonly entries: ReadonlyMap<string, ListEntry>;
  /** X-Consul-Index: the highest ModifyIndex (or tombstone) under the prefix, else the KV table's. */
  readonly index: bigint;
  /** Consul left out keys the token may not read (X-Consul-Results-Filtered-By-ACLs). */
  readonly filtered: boolean;
}

/** X-Consul-Index as an unsigned integer (a uint64 in Consul, hence bigint), or null. */
export function parseIndexHeader(raw: string | string[] | undefined): bigint | null {
  const s = Array.isArray(raw) ? raw[0] : raw;
  if (s === undefined || !/^\d{1,20}$/.test(s.trim())) return null;
  return BigInt(s.trim());
}

/**
 * Decodes standard padded base64 as Consul (Go's encoding/json for []byte) writes it, or null:
 * Buffer.from alone skips characters it does not know, which could turn junk into a value.
 */
function decodeBase64(text: string): Buffer | null {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : null;
}

interface DirEntry {
  Key?: unknown;
  Value?: unknown;
  ModifyIndex?: unknown;
  Session?: unknown;
}

function parseJson(answer: HttpAnswer): unknown {
  try {
    return JSON.parse(answer.body.toString('utf8'));
  } catch {
    throw new ConsulResponseError(answer.endpoint, answer.status, 'body is not JSON');
  }
}

function decodeValue(answer: HttpAnswer, raw: unknown): Buffer {
  // A key written with an empty body has Value null; it exists, so its value is empty. The bytes
  // are kept as they are: decoding to text would make different invalid UTF-8 values equal.
  if (raw === null || raw === undefined) return Buffer.alloc(0);
  if (typeof raw === 'string') {
    const bytes = decodeBase64(raw);
    if (bytes === null) throw new ConsulResponseError(answer.endpoint, answer.status, 'Value is not valid base64');
    return bytes;
  }
  throw new ConsulResponseError(answer.endpoint, answer.status, 'Value is neither base64 text nor null');
}

function decodeEntry(answer: HttpAnswer, key: string, index: bigint): KvRead {
  const parsed = parseJson(answer);
  const entry = Array.isArray(parsed) ? (parsed[0] as DirEntry | undefined) : undefined;
  if (entry === undefined || typeof entry !== 'object' || entry === null) {
    throw new ConsulResponseError(answer.endpoint, answer.status, 'expected a JSON array with one entry');
  }
  if (entry.Key !== key) {
    throw new ConsulResponseError(answer.endpoint, answer.status, `answer is for key ${JSON.stringify(entry.Key)?.slice(0, ERROR_BODY_CHARS)}, not "${key}"`);
  }
  const value = decodeValue(answer, entry.Value);
  const modifyIndex = typeof entry.ModifyIndex === 'number' && Number.isInteger(entry.ModifyIndex) && entry.ModifyIndex >= 0
    ? BigInt(entry.ModifyIndex) : index;
  const session = typeof entry.Session === 'string' && entry.Session !== '' ? entry.Session : null;
  return { kind: 'found', value, modifyIndex, index, session };
}

/** The checks every KV read answer passes; returns its X-Consul-Index. */
function checkAnswer(answer: HttpAnswer, what: string, tokenSet: boolean, tooLarge: string): bigint {
  // Error bodies are cut short here; secrets a server echoes are scrubbed where text is shown.
  if (answer.status === 403) throw new ConsulAclError(answer.endpoint, what, answer.body.toString('utf8').trim().slice(0, ERROR_BODY_CHARS), tokenSet);
  if (answer.status !== 200 && answer.status !== 404) {
    const text = answer.body.toString('utf8').trim().slice(0, ERROR_BODY_CHARS);
    throw new ConsulResponseError(answer.endpoint, answer.status, text || 'no body');
  }
  if (answer.truncated) throw new ConsulResponseError(answer.endpoint, answer.status, tooLarge);
  // Consul sets X-Consul-Index on every KV read answer, 404 included; without it this is not a
  // Consul agent (a proxy's or another server's 404 must not read as "no leader key").
  const index = parseIndexHeader(answer.headers['x-consul-index']);
  if (index === null) throw new ConsulResponseError(answer.endpoint, answer.status, 'no X-Consul-Index header (is this a Consul agent?)');
  return index;
}

/**
 * Interprets a recursive read of `prefix` (as Consul stores it). Throws ConsulAclError (403: an
 * unknown token, or key:list refused where acl.enable_key_list_policy is on) or
 * ConsulResponseError (anything unusable, an entry outside the prefix included).
 */
export function interpretListAnswer(answer: HttpAnswer, prefix: string, tokenSet: boolean, maxBodyBytes: number): KvList {
  const index = checkAnswer(answer, prefix, tokenSet,
    `the keys under "${prefix}" make an answer larger than ${maxBodyBytes} bytes (the longest common prefix of the watched keys: keep them under a narrower shared prefix)`);
  const filtered = answer.headers['x-consul-results-filtered-by-acls'] === 'true';
  const entries = new Map<string, ListEntry>();
  if (answer.status === 404) return { kind: 'list', entries, index, filtered };
  const parsed = parseJson(answer);
  if (!Array.isArray(parsed)) throw new ConsulResponseError(answer.endpoint, answer.status, 'expected a JSON array of entries');
  for (const raw of parsed as unknown[]) {
    const e = raw as DirEntry | null;
    if (typeof e !== 'object' || e === null || typeof e.Key !== 'string' || !e.Key.startsWith(prefix)) {
      throw new ConsulResponseError(answer.endpoint, answer.status, `entry ${JSON.stringify(e?.Key ?? e)?.slice(0, ERROR_BODY_CHARS)} is not a key under "${prefix}"`);
    }
    if (typeof e.ModifyIndex !== 'number' || !Number.isInteger(e.ModifyIndex) || e.ModifyIndex < 0) {
      throw new ConsulResponseError(answer.endpoint, answer.status, `entry "${e.Key.slice(0, ERROR_BODY_CHARS)}" has no ModifyIndex`);
    }
    entries.set(e.Key, { value: decodeValue(answer, e.Value), modifyIndex: BigInt(e.ModifyIndex) });
  }
  return { kind: 'list', entries, index, filtered };
}

/** Interprets a KV read. Throws ConsulAclError (403) or ConsulResponseError (anything unusable). */
export function interpretKvAnswer(answer: HttpAnswer, key: string, tokenSet: boolean): KvRead {
  const index = checkAnswer(answer, key, tokenSet, 'answer larger than expected for one key');
  if (answer.status === 404) return { kind: 'absent', index };
  return decodeEntry(answer, key, index);
}
