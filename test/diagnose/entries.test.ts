// --diagnose over several VIP entries without a network: the entries and their labels from a
// loaded `vips:` file, the verdicts for a role VIP's designation (replica, sync-standby), two
// entries rendered as two reports, and the running daemon's /status read per entry (its
// `vips[]` by name; the top-level fields of a daemon from before several VIPs). The /status
// documents are built by the daemon's own StatusBoard / statusDocument, not written by hand.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig, type LoadedConfig } from '../../src/config/load.js';
import { leaderValue } from '../../src/dcs/leader-value.js';
import { StatusBoard, statusDocument, type EntryStatus } from '../../src/daemon/status.js';
import { probeDaemon } from '../../src/diagnose/daemon-probe.js';
import { decideVerdict, exitCode, fact, renderReport, type LeaderFinding, type VerdictInput } from '../../src/diagnose/report.js';
import { vipEntries, vipLabel } from '../../src/diagnose/run.js';

const dir = mkdtempSync(join(tmpdir(), 'vmt-diag-entries-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function load(yaml: string, argv: string[] = []): LoadedConfig {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(file, yaml);
  return loadConfig(['--config', file, ...argv], { env: {}, hostname: 'h' });
}

const TWO = `dcs-type: etcd
dcs-endpoints: [http://198.51.100.2:2379]
interface: eth0
netmask: 24
trigger-value: pg1
vips:
  - name: primary
    ip: 198.51.100.100
    trigger-key: /service/pg/leader
  - name: billing
    ip: 198.51.100.101
    trigger-key: /service/billing/leader
    interface: eth1
  - ip: 198.51.100.102
    trigger-key: /service/pg/leader
    role: replica
    max-lag: 1048576
    fallback: leader
`;

describe('diagnose: the entries', () => {
  test('a vips: file gives one entry per VIP, each with its own keys; the label names it where the name is not the ip', () => {
    const entries = vipEntries(load(TWO).vips);
    assert.deepEqual(entries.map((e) => [e.name, e.ip, e.netmask, e.iface, e.triggerKey, e.triggerValue, e.role, e.fallback, e.maxLag, e.prefix, e.managerType]), [
      ['primary', '198.51.100.100', 24, 'eth0', '/service/pg/leader', 'pg1', 'leader', 'none', undefined, null, 'basic'],
      ['billing', '198.51.100.101', 24, 'eth1', '/service/billing/leader', 'pg1', 'leader', 'none', undefined, null, 'basic'],
      ['198.51.100.102', '198.51.100.102', 24, 'eth0', '/service/pg/leader', 'pg1', 'replica', 'leader', 1048576, '/service/pg/', 'basic'],
    ]);
    assert.deepEqual(entries.map(vipLabel), [
      'VIP primary (198.51.100.100/24 on eth0)',
      'VIP billing (198.51.100.101/24 on eth1)',
      'VIP 198.51.100.102/24 on eth0',
    ]);
    assert.equal(vipLabel({ name: 'ro', ip: '198.51.100.7', netmask: 32, iface: null }), 'VIP ro (198.51.100.7/32)');
  });

  test('without vips: the one implicit entry, labelled as before', () => {
    const entries = vipEntries(load('dcs-type: etcd\ndcs-endpoints: [http://198.51.100.2:2379]\n', [
      '--ip', '203.0.113.100', '--netmask', '24', '--interface', 'eth0', '--trigger-key', '/service/test/leader', '--trigger-value', 'n1',
    ]).vips);
    assert.equal(entries.length, 1);
    assert.equal(vipLabel(entries[0]!), 'VIP 203.0.113.100/24 on eth0');
    assert.equal(entries[0]!.prefix, null);
  });
});

const role = (namesThisNode: boolean, member: string | null, reason = 'no qualifying replica (no other member keys)'): LeaderFinding => ({
  kind: 'value', namesThisNode, display: member, role: true,
  describe: member === null ? `role replica of /service/pg/ designates nobody (${reason})` : `role replica of /service/pg/ designates "${member}"`,
});
const base: VerdictInput = { iface: 'eth0', triggerValue: 'pg2', leader: role(true, 'pg2'), held: true, foreign: [], misspelt: null, cannotTake: null };

describe('diagnose: verdicts on a role designation, exactly as on a leader key', () => {
  const cases: Array<[string, Partial<VerdictInput>, string, boolean]> = [
    ['designated and held', {}, 'held here, as the DCS asks (role replica of /service/pg/ designates "pg2")', true],
    ['designated, not held', { held: false }, 'the DCS names this node (role replica of /service/pg/ designates "pg2") but the VIP is not on eth0', false],
    ['another member designated, not held', { leader: role(false, 'pg3'), held: false }, 'not here, as the DCS asks (role replica of /service/pg/ designates "pg3", not this node\'s "pg2")', true],
    ['another member designated, held', { leader: role(false, 'pg3') }, 'the VIP is on eth0 but the DCS names another node (role replica of /service/pg/ designates "pg3"; trigger-value "pg2")', false],
    ['nobody designated, not held', { leader: role(false, null), held: false }, 'not here, as the DCS asks (role replica of /service/pg/ designates nobody (no qualifying replica (no other member keys)))', true],
    ['nobody designated, held', { leader: role(false, null) }, 'the VIP is on eth0 but the DCS names no node (role replica of /service/pg/ designates nobody (no qualifying replica (no other member keys)))', false],
    ['nobody designated, unchecked', { leader: role(false, null), held: null }, 'the DCS names no node (role replica of /service/pg/ designates nobody (no qualifying replica (no other member keys))); whether the VIP is here was not checked', true],
    ['the prefix could not be used', { leader: { kind: 'unreachable', why: 'the keys under /service/pg/ cannot be used: too many' }, held: false }, 'cannot tell what the DCS asks: the keys under /service/pg/ cannot be used: too many (the VIP is not on eth0)', false],
  ];
  for (const [name, input, text, ok] of cases) {
    test(name, () => {
      const v = decideVerdict({ ...base, ...input });
      assert.equal(v.text, text);
      assert.equal(v.ok, ok);
    });
  }

  test('two entries: two reports, verdict first each, the shared facts once at the end; one bad entry makes exit 1', () => {
    const primary = { label: 'VIP primary (198.51.100.100/24 on eth0)', verdict: decideVerdict({ ...base, leader: role(false, 'pg3'), held: false }), facts: [fact('INFO', 'leader key', 'x')] };
    const ro = { label: 'VIP ro (198.51.100.101/24 on eth0)', verdict: decideVerdict({ ...base, held: false }), facts: [fact('OK', 'role replica of /service/pg/', 'y')] };
    const report = { vips: [primary, ro], shared: [fact('OK', 'capabilities', 'z')] };
    assert.equal(renderReport(report), [
      'OK   VIP primary (198.51.100.100/24 on eth0): not here, as the DCS asks (role replica of /service/pg/ designates "pg3", not this node\'s "pg2")',
      '  INFO leader key: x',
      'FAIL VIP ro (198.51.100.101/24 on eth0): the DCS names this node (role replica of /service/pg/ designates "pg2") but the VIP is not on eth0',
      '  OK   role replica of /service/pg/: y',
      '  OK   capabilities: z',
      '',
    ].join('\n'));
    assert.equal(exitCode(report), 1);
    assert.equal(exitCode({ vips: [primary], shared: [] }), 0);
  });
});

describe('diagnose: the running daemon, per entry', () => {
  let server: http.Server;
  let port = 0;
  let doc: unknown = null;
  before(async () => {
    server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(doc));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const conflict = { mac: '02:00:00:00:00:09', how: 'ARP reply', firstSeenAt: '2026-01-01T00:00:00.000Z', lastSeenAt: '2026-01-01T00:00:01.000Z', claims: 3 };
  /** The daemon's /status for `loaded` (its StatusBoards, as daemon/entry.ts makes them), the second entry held with a conflict. */
  function daemonDoc(loaded: LoadedConfig): Record<string, unknown> {
    const entries: EntryStatus[] = loaded.vips.map((v, i) => {
      const board = new StatusBoard(v.name, v.config);
      board.view(leaderValue(Buffer.from(i === 0 ? 'pg3' : 'pg1'), '7', 0, null));
      board.observed(i === 1);
      return { board, reconciler: { snapshot: () => ({ view: null, held: null }) }, conflicts: () => (i === 1 ? [conflict] : undefined) };
    });
    return statusDocument(entries, { version: '9.9.9', commit: 'c', date: 'd' }, new Date(0));
  }

  test('a multi-entry /status: each entry found by name, its conflict reported for it alone', async () => {
    const loaded = load(`${TWO}http-listen: 127.0.0.1:${port}\n`);
    doc = daemonDoc(loaded);
    assert.ok(Array.isArray((doc as { vips: unknown[] }).vips) && (doc as { vips: unknown[] }).vips.length === 3, 'the document lists every entry');
    const entries = vipEntries(loaded.vips);
    const r = await probeDaemon(loaded.config, entries);
    assert.deepEqual(r.fact, fact('OK', 'daemon', `vip-manager 9.9.9 runs here (http://127.0.0.1:${port}/status): primary does not hold the VIP (leader "pg3"); billing holds the VIP (leader "pg1"); 198.51.100.102 does not hold the VIP (leader "pg1")`));
    assert.deepEqual(r.foreign.get('billing'), [{ mac: '02:00:00:00:00:09', source: 'daemon', how: 'reported by the running daemon' }]);
    assert.deepEqual(r.foreign.get('primary'), []);
    assert.deepEqual(r.foreign.get('198.51.100.102'), []);
  });

  test('an entry the daemon does not run (a reload pending), or runs under another address: a WARN naming it', async () => {
    const loaded = load(`${TWO}http-listen: 127.0.0.1:${port}\n`);
    const running = load(`${TWO.replace('198.51.100.101', '198.51.100.111').replace(/ {2}- ip: 198\.51\.100\.102[\s\S]*$/, '')}http-listen: 127.0.0.1:${port}\n`);
    doc = daemonDoc(running);
    const r = await probeDaemon(loaded.config, vipEntries(loaded.vips));
    assert.equal(r.fact.mark, 'WARN');
    assert.equal(r.fact.text, `vip-manager 9.9.9 runs here (http://127.0.0.1:${port}/status): primary does not hold the VIP (leader "pg3"); `
      + 'billing: managed as 198.51.100.111/24, not 198.51.100.101/24; 198.51.100.102: not managed by it '
      + '(it manages 198.51.100.100/24 (primary), 198.51.100.111/24 (billing): reload it after a configuration change, or is it another instance?)');
    assert.equal(r.foreign.get('billing'), undefined, 'a conflict on another address is not this entry\'s');
  });

  test('a daemon from before several VIPs (top-level fields only): matched by address, as before', async () => {
    const loaded = load('dcs-type: etcd\ndcs-endpoints: [http://198.51.100.2:2379]\n', [
      '--ip', '203.0.113.100', '--netmask', '24', '--interface', 'eth0', '--trigger-key', '/k/leader', '--trigger-value', 'n1', '--http-listen', `127.0.0.1:${port}`,
    ]);
    doc = {
      version: '0.1.0', config: { ip: '203.0.113.100', netmask: 24, interface: 'eth0' },
      leader: { value: 'n1', isThisNode: true }, vip: { held: true, conflict: [conflict] },
    };
    const one = vipEntries(loaded.vips);
    let r = await probeDaemon(loaded.config, one);
    assert.deepEqual(r.fact, fact('OK', 'daemon', `vip-manager 0.1.0 runs here (http://127.0.0.1:${port}/status): holds the VIP (leader "n1")`));
    assert.deepEqual(r.foreign.get('203.0.113.100')?.map((f) => f.mac), ['02:00:00:00:00:09']);
    doc = { ...(doc as object), config: { ip: '203.0.113.7', netmask: 24 } };
    r = await probeDaemon(loaded.config, one);
    assert.deepEqual(r.fact, fact('WARN', 'daemon', `vip-manager 0.1.0 answers on http://127.0.0.1:${port}/status but manages 203.0.113.7/24, not 203.0.113.100/24 (another instance?)`));
    assert.equal(r.foreign.size, 0);
  });
});
