// What /status and systemd's STATUS= say with one and with several VIP entries: every entry
// under `vips` in configuration order with its name, the first one's fields also at the top
// level (a client written for one VIP keeps working), and a STATUS= line that is the entry's
// own line alone, or `name: line` per entry joined with `; `.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { StatusBoard, statusDocument, statusLine, type EntryStatus } from '../../src/daemon/status.js';
import { leaderValue } from '../../src/dcs/leader-value.js';

const INFO = { version: '9.9.9', commit: 'abc', date: 'd' };

function entry(name: string, ip: string, held: boolean): EntryStatus & { board: StatusBoard } {
  const cfg = loadConfig(['--ip', ip, '--netmask', '24', '--interface', 'eth0', '--trigger-key', `/service/${name}/leader`, '--trigger-value', 'n1',
    '--dcs-endpoints', 'http://127.0.0.1:2379'], { env: {}, hostname: 'h' }).config;
  const board = new StatusBoard(name, cfg);
  board.view(leaderValue(Buffer.from(held ? 'n1' : 'n2'), '7', performance.now(), null));
  board.observed(held);
  return { board, reconciler: { snapshot: () => ({ view: null, held: { held, ready: true } }) }, conflicts: () => undefined };
}

test('one entry: STATUS= is its line; /status has it under vips and at the top level', () => {
  const one = [entry('198.51.100.10', '198.51.100.10', true)];
  assert.equal(statusLine(one), 'holding 198.51.100.10/24 (leader "n1")');
  const started = new Date('2026-01-02T03:04:05.000Z');
  const doc = statusDocument(one, INFO, started);
  assert.equal(doc.version, '9.9.9');
  assert.equal(doc.commit, 'abc');
  assert.equal(doc.startedAt, '2026-01-02T03:04:05.000Z');
  const vips = doc.vips as Array<Record<string, unknown>>;
  assert.equal(vips.length, 1);
  assert.equal(vips[0]!.name, '198.51.100.10');
  for (const key of ['name', 'config', 'leader', 'dcs', 'vip', 'transitions']) assert.deepEqual(doc[key], vips[0]![key], key);
  assert.equal((doc.config as { role: string }).role, 'leader');
});

test('several entries: STATUS= names each; /status lists them in order, the first also at the top level', () => {
  const many = [entry('primary', '198.51.100.100', true), entry('billing', '198.51.100.101', false)];
  assert.equal(statusLine(many),
    'primary: holding 198.51.100.100/24 (leader "n1"); billing: standby for 198.51.100.101/24 (leader "n2")');
  const doc = statusDocument(many, INFO, new Date());
  const vips = doc.vips as Array<{ name: string; config: { ip: string; 'trigger-key': string }; vip: { held: boolean }; leader: { value: string } }>;
  assert.deepEqual(vips.map((v) => [v.name, v.config.ip, v.config['trigger-key'], v.vip.held, v.leader.value]), [
    ['primary', '198.51.100.100', '/service/primary/leader', true, 'n1'],
    ['billing', '198.51.100.101', '/service/billing/leader', false, 'n2'],
  ]);
  assert.equal(doc.name, 'primary');
  assert.deepEqual(doc.vip, vips[0]!.vip);
  assert.equal(statusLine([]), 'no VIP configured');
});
