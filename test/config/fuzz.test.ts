// Property test of the configuration layer through the real executable: random combinations of
// valid and invalid values, each given as a flag, an environment variable or a YAML file key.
// Invariants for every run: exit 0 or 78 only, within a time bound, never a stack trace, never
// a configured secret in the output. Then a sample of the accepted configurations is started as
// the daemon in a test namespace (the DCS unreachable): none may exit 1 at start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { EXIT_CONFIG } from '../../src/config/errors.js';
import { envName } from '../../src/config/schema.js';
import { BIN, Daemon, isRuntimeWarning } from '../harness/daemon.js';
import { createLan, type Lan } from '../harness/netns.js';

const RUNS = 150;
/** One --check-config run takes ~0.5 s on the loaded 2-core CI machine. */
const RUN_TIMEOUT_MS = 20_000;
const SECRETS = ['Pw-SECRET-1', 'Tok-SECRET-2', 'Hc-SECRET-3', 'Url-SECRET-4'];

const DURATION = ['1', '100', '250', '2000', '60000', '600000', '600001', '3600000', '3600001', '2147483648', '0', '-5', '1e3', '1.5', 'soon', '99999999999999999999'];
const VALUES: Record<string, readonly string[]> = {
  ip: ['198.51.100.10', '203.0.113.77', '2001:db8::10', '224.0.0.1', '255.255.255.255', '198.51.100.255', '198.51.100.0', '127.0.0.1', '0.0.0.0', '::1', '::', 'fe80::1', 'fe80::1%eth0', '::ffff:198.51.100.1', '169.254.1.1', 'ff02::1', 'not-an-ip', ''],
  netmask: ['24', '26', '31', '32', '64', '0', '33', '129', '-1', 'abc', '99999999999999999999'],
  interface: ['eth0', 'eth0', 'vmt-x', 'abcdefghijklmno', 'abcdefghijklmnop', 'eth/0', 'eth0:1', '..', '.', 'ééééééééé', 'a b', ''],
  'trigger-key': ['/service/pg/leader', '/k', ''],
  'trigger-value': ['node1', '0123', '1.10', 'node\uFFFD1', 'x'.repeat(5000), ''],
  'dcs-type': ['etcd', 'etcd3', 'consul', 'patroni', 'zookeeper'],
  'dcs-endpoints': ['http://127.0.0.1:2379', '127.0.0.1:2379', 'https://[::1]:2379', `http://patroni:${SECRETS[3]}@127.0.0.1:2379`, `http://127.0.0.1:2379,https://u:${SECRETS[3]}@127.0.0.1:2380`, 'ftp://x:21', ''],
  'etcd-user': ['patroni', ''],
  'etcd-password': [SECRETS[0]!],
  'consul-token': [SECRETS[1]!],
  'hcloud-token': [SECRETS[2]!],
  interval: DURATION,
  'retry-after': DURATION,
  'lease-check-interval': DURATION,
  'announce-interval': DURATION,
  'announce-refresh': DURATION,
  'retry-num': ['1', '3', '100', '101', '0', '-1', '1000000000'],
  'announce-count': ['0', '5', '100', '101', '1000000000', '-1'],
  'dcs-loss': ['hold-lease', 'release', 'keep', 'sometimes'],
  'release-on-stop': ['true', 'false', 'maybe'],
};

type Layer = 'flag' | 'env' | 'file';
interface Setting { key: string; layer: Layer; value: string }
interface Case { settings: Setting[]; garbage: string | undefined }

/** Values each key accepts on its own (the pools above mix them with refused ones). */
const VALID: Record<string, readonly string[]> = {
  ip: ['198.51.100.10', '203.0.113.77', '2001:db8::10'],
  netmask: ['24', '26'],
  interface: ['eth0', 'vmt-x', 'abcdefghijklmno'],
  'trigger-key': ['/service/pg/leader', '/k'],
  'trigger-value': ['node1', '0123', '1.10', 'x'.repeat(5000)],
  'dcs-type': ['etcd', 'etcd3', 'consul', 'patroni'],
  'dcs-endpoints': ['http://127.0.0.1:2379', 'https://[::1]:2379'],
  'etcd-user': ['patroni'],
  'consul-token': [SECRETS[1]!],
  interval: ['1', '250', '600000'],
  'retry-after': ['1', '250', '600000'],
  'lease-check-interval': ['100', '2000', '600000'],
  'announce-interval': ['1', '200', '60000'],
  'announce-refresh': ['0', '1000', '3600000'],
  'retry-num': ['1', '3', '100'],
  'announce-count': ['0', '5', '100'],
  'dcs-loss': ['hold-lease', 'release', 'keep'],
  'release-on-stop': ['true', 'false'],
};

const setting = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...Object.keys(VALID)).chain((key) => fc.record({ key: fc.constant(key), layer: fc.constantFrom<Layer>('flag', 'env', 'file'), value: fc.constantFrom(...VALID[key]!) })) },
  // The pools with refused values; sometimes any text at all for a key.
  { weight: 3, arbitrary: fc.constantFrom(...Object.keys(VALUES)).chain((key) => fc.record({ key: fc.constant(key), layer: fc.constantFrom<Layer>('flag', 'env', 'file'), value: fc.constantFrom(...VALUES[key]!) })) },
  { weight: 1, arbitrary: fc.record({ key: fc.constantFrom(...Object.keys(VALUES)), layer: fc.constantFrom<Layer>('flag', 'env', 'file'), value: fc.string({ unit: 'binary', maxLength: 40 }) }) },
);
/** The required keys as valid values first, so that many cases get as far as the deeper checks. */
const BASE: Setting[] = [
  { key: 'ip', layer: 'flag', value: '198.51.100.10' },
  { key: 'netmask', layer: 'env', value: '24' },
  { key: 'interface', layer: 'file', value: 'eth0' },
  { key: 'trigger-key', layer: 'flag', value: '/service/pg/leader' },
  { key: 'trigger-value', layer: 'file', value: 'node1' },
];
const cases: fc.Arbitrary<Case> = fc.record({
  settings: fc.array(setting, { maxLength: 6 }).map((s) => [...BASE, ...s]),
  // Now and then a broken or hostile file body instead of clean keys.
  garbage: fc.option(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('a: &a [x]\nb: *a\n', 'ip: [\n', '---\n---\n', 'ip: 1\nip: 2\n', '? [a]\n: 1\n', '!!binary x: 1\n')), { freq: 5 }),
});

const dir = mkdtempSync(join(tmpdir(), 'vmt-fuzz-'));
let n = 0;

/** Argv, environment and file text of a case; within a layer the last setting of a key wins. */
function materialise(c: Case): { args: string[]; env: Record<string, string>; file: string } {
  const last = new Map<string, Setting>();
  for (const s of c.settings) last.set(`${s.layer}:${s.key}`, s);
  const args: string[] = [];
  const env: Record<string, string> = {};
  const lines: string[] = [];
  for (const s of last.values()) {
    const v = s.value.replace(/\0/g, ''); // argv and the environment cannot carry NUL
    if (s.layer === 'flag') args.push(`--${s.key}=${v}`);
    else if (s.layer === 'env') env[envName(s.key)] = v;
    else lines.push(`${s.key}: ${JSON.stringify(s.value)}`);
  }
  return { args, env, file: c.garbage !== undefined ? `${lines.join('\n')}\n${c.garbage}` : `${lines.join('\n')}\n` };
}

interface Result { code: number | null; signal: NodeJS.Signals | null; out: string; ms: number }

function runCli(args: string[], env: Record<string, string>): Promise<Result> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VIP_')));
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: RUN_TIMEOUT_MS });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, out, ms: performance.now() - t0 }));
  });
}

const accepted: Array<{ args: string[]; env: Record<string, string> }> = [];

describe('fuzz: configuration through the executable', () => {
  test(`${RUNS} random flag/env/file combinations: exit 0 or 78, bounded time, no stack trace, no secret`, async (t) => {
    const stats = { ok: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const { args, env, file } = materialise(c);
        const path = join(dir, `c${++n}.yml`);
        writeFileSync(path, file);
        const r = await runCli(['--check-config', ...args, '--config', path], env);
        assert.ok(r.signal === null, `killed by ${r.signal} after ${Math.round(r.ms)} ms (bound ${RUN_TIMEOUT_MS} ms)`);
        assert.ok(r.code === 0 || r.code === EXIT_CONFIG, `exit ${r.code}:\n${r.out.slice(0, 2000)}`);
        assert.ok(!/^\s+at .+:\d+:\d+\)?$/m.test(r.out) && !/\b(TypeError|RangeError|ReferenceError|SyntaxError): /.test(r.out), `stack trace:\n${r.out.slice(0, 2000)}`);
        assert.ok(!r.out.split('\n').some(isRuntimeWarning), `Node runtime warning:\n${r.out.slice(0, 2000)}`);
        for (const s of SECRETS) assert.ok(!r.out.includes(s), `secret ${s} printed:\n${r.out.slice(0, 2000)}`);
        for (const line of r.out.split('\n')) assert.ok(Buffer.byteLength(line) < 1200, `a line of ${Buffer.byteLength(line)} bytes`);
        if (r.code === 0) {
          stats.ok++;
          if (accepted.length < 40) accepted.push({ args: [...args, '--config', path], env });
        } else stats.refused++;
      }),
      { numRuns: RUNS },
    );
    t.diagnostic(`accepted ${stats.ok}, refused ${stats.refused}`);
    // The generator must exercise both sides, or the invariants prove little.
    assert.ok(stats.ok >= 10 && stats.refused >= 10, `accepted ${stats.ok}, refused ${stats.refused}`);
  });

  describe('accepted configurations start the daemon (DCS unreachable): never exit 1', () => {
    let lan: Lan | undefined;
    after(() => lan?.dispose());
    test('a sample of 6 accepted configurations', async () => {
      assert.ok(accepted.length >= 6, `only ${accepted.length} accepted configurations`);
      lan = createLan(1, ['fz']);
      const ns = lan.hosts[0]!.ns;
      // Every 6th, for variety across the run.
      const sample = accepted.filter((_, i) => i % Math.floor(accepted.length / 6) === 0).slice(0, 6);
      for (const { args, env } of sample) {
        // Each started daemon listens on its namespace's 127.0.0.1:9466; one at a time.
        const d = new Daemon({ ns, args, env });
        const exited = d.waitExit(30_000).then((x) => ({ exited: x }));
        const listening = d.waitForLog((r) => r.msg === 'HTTP endpoint listening', 30_000, 'the HTTP endpoint').then(() => ({ exited: undefined }));
        const first = await Promise.race([exited, listening]);
        // Not even 78: what --check-config accepts, the start accepts.
        assert.equal(first.exited, undefined, `exited ${JSON.stringify(first.exited)} at start with ${JSON.stringify({ args, env })}:\n${d.transcript()}`);
        d.signal('SIGTERM');
        const end = await d.waitExit(15_000);
        assert.equal(end.code, 0, `after SIGTERM: ${JSON.stringify(end)}:\n${d.transcript()}`);
        assert.ok(!d.transcript().includes('SECRET'), d.transcript());
      }
    });
  });
});
