// Consul's KV read endpoint: the request path for the trigger key and the meaning of an
// answer, after Consul's HTTP API documentation (api-docs/kv.mdx "Read Key") and its server
// code (agent/kvs_endpoint.go: 404 for a missing key with the index headers still set; 403
// for ACL errors, whose text is the error, e.g. "ACL not found" or "Permission denied: ...").
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

export type KvRead =
  | { readonly kind: 'found'; readonly value: Buffer; readonly modifyIndex: bigint; readonly index: bigint; readonly session: string | null }
  | { readonly kind: 'absent'; readonly index: bigint };

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

function decodeEntry(answer: HttpAnswer, key: string, index: bigint): KvRead {
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body.toString('utf8'));
  } catch {
    throw new ConsulResponseError(answer.endpoint, answer.status, 'body is not JSON');
  }
  const entry = Array.isArray(parsed) ? (parsed[0] as DirEntry | undefined) : undefined;
  if (entry === undefined || typeof entry !== 'object' || entry === null) {
    throw new ConsulResponseError(answer.endpoint, answer.status, 'expected a JSON array with one entry');
  }
  if (entry.Key !== key) {
    throw new ConsulResponseError(answer.endpoint, answer.status, `answer is for key ${JSON.stringify(entry.Key)?.slice(0, ERROR_BODY_CHARS)}, not "${key}"`);
  }
  // A key written with an empty body has Value null; it exists, so its value is empty. The bytes
  // are kept as they are: decoding to text would make different invalid UTF-8 values equal.
  let value: Buffer;
  if (entry.Value === null || entry.Value === undefined) value = Buffer.alloc(0);
  else if (typeof entry.Value === 'string') {
    const bytes = decodeBase64(entry.Value);
    if (bytes === null) throw new ConsulResponseError(answer.endpoint, answer.status, 'Value is not valid base64');
    value = bytes;
  } else throw new ConsulResponseError(answer.endpoint, answer.status, 'Value is neither base64 text nor null');
  const modifyIndex = typeof entry.ModifyIndex === 'number' && Number.isInteger(entry.ModifyIndex) && entry.ModifyIndex >= 0
    ? BigInt(entry.ModifyIndex) : index;
  const session = typeof entry.Session === 'string' && entry.Session !== '' ? entry.Session : null;
  return { kind: 'found', value, modifyIndex, index, session };
}

/** Interprets a KV read. Throws ConsulAclError (403) or ConsulResponseError (anything unusable). */
export function interpretKvAnswer(answer: HttpAnswer, key: string, tokenSet: boolean): KvRead {
  // Error bodies are cut short here; secrets a server echoes are scrubbed where text is shown.
  if (answer.status === 403) throw new ConsulAclError(answer.endpoint, key, answer.body.toString('utf8').trim().slice(0, ERROR_BODY_CHARS), tokenSet);
  if (answer.status !== 200 && answer.status !== 404) {
    const text = answer.body.toString('utf8').trim().slice(0, ERROR_BODY_CHARS);
    throw new ConsulResponseError(answer.endpoint, answer.status, text || 'no body');
  }
  if (answer.truncated) throw new ConsulResponseError(answer.endpoint, answer.status, 'answer larger than expected for one key');
  // Consul sets X-Consul-Index on every KV read answer, 404 included; without it this is not a
  // Consul agent (a proxy's or another server's 404 must not read as "no leader key").
  const index = parseIndexHeader(answer.headers['x-consul-index']);
  if (index === null) throw new ConsulResponseError(answer.endpoint, answer.status, 'no X-Consul-Index header (is this a Consul agent?)');
  if (answer.status === 404) return { kind: 'absent', index };
  return decodeEntry(answer, key, index);
}
