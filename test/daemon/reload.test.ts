// Reload on SIGHUP (issue 14): one daemon with a `vips:` file holding every VIP, `ip monitor`
// recording every address change in its namespace. Rewriting the file and sending SIGHUP must
// leave an unchanged entry's address alone (no netlink delete at all), release a removed entry,
// start an added one, hand a changed one over without a gap (or move it when its address
// changed), and refuse an invalid file with one error line while the old configuration runs on.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, afterEach, before, describe, test } from 'node:test';
import { eventually, hasVip, type Daemon, type LogRecord } from '../harness/daemon.js';
import { createBed, type Bed } from './bed.js';

const IPS = ['203.0.113.120', '203.0.113.121', '203.0.113.122', '203.0.113.123', '203.0.113.124'];

interface Entry { name: string; ip: string; key: string; extra?: string[] }

const entry = (name: string, ip: string, extra?: string[]): Entry => ({ name, ip, key: `/service/${name}/leader`, extra });

function write(file: string, list: Entry[], top: string[] = []): void {
  writeFileSync(file, [...top, 'vips:', ...list.flatMap((e) => [`  - name: ${e.name}`, `    ip: ${e.ip}`, `    trigger-key: ${e.key}`, ...(e.extra ?? []).map((l) => `    ${l}`)]), ''].join('\n'));
}

/** Address changes on the node's eth0 as `ip -o monitor address` prints them, from now on. */
class AddressMonitor {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  constructor(bed: Bed) {
    this.child = bed.nodes[0].ns.spawn('ip', ['-o', 'monitor', 'address', 'dev', 'eth0'], {});
    createInterface({ input: this.child.stdout! }).on('line', (l) => this.lines.push(l));
  }
  deleted(ip: string): string[] {
    return this.lines.filter((l) => l.startsWith('Deleted') && l.includes(` ${ip}/`));
  }
  added(ip: string): string[] {
    return this.lines.filter((l) => !l.startsWith('Deleted') && l.includes(` ${ip}/`));
  }
  stop(): void {
    this.child.kill('SIGKILL');
  }
}

describe('daemon: SIGHUP reloads the configuration', { concurrency: false }, () => {
  let bed: Bed;
  let dir: string;
  let file: string;
  let monitor: AddressMonitor | null = null;
  before(async () => {
    bed = await createBed();
    dir = mkdtempSync(join(tmpdir(), 'vmt-reload-'));
    file = join(dir, 'vips.yml');
  });
  after(async () => {
    await bed?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    monitor?.stop();
    monitor = null;
    await bed.reset();
    for (const ip of IPS) if (hasVip(bed.nodes[0].ns, `${ip}/24`)) bed.nodes[0].ns.ip('addr', 'del', `${ip}/24`, 'dev', 'eth0');
  });

  /** Sends SIGHUP and waits for this reload's outcome line. */
  async function reload(d: Daemon): Promise<LogRecord> {
    const from = d.logs.length;
    d.signal('SIGHUP');
    return d.waitForLog((r) => d.logs.indexOf(r) >= from && (r.msg.startsWith('reload applied') || r.msg.startsWith('reload refused')), 10_000, 'the reload outcome');
  }

  async function startHolding(list: Entry[]): Promise<Daemon> {
    for (const e of list) await bed.kv.put(e.key).value('n1');
    write(file, list);
    const d = await bed.start(0, ['--config', file], { waitReady: false });
    await eventually('every VIP held', () => list.every((e) => hasVip(bed.nodes[0].ns, `${e.ip}/24`)), 15_000);
    monitor = new AddressMonitor(bed);
    // ip monitor is listening once it prints; a dummy change would touch the node: instead give it a moment.
    await new Promise((r) => setTimeout(r, 200));
    return d;
  }

  test('unchanged entries are untouched; removed released; added started; changed handed over without a delete', async () => {
    const [a, b, c, dd] = [entry('a', IPS[0]!), entry('b', IPS[1]!), entry('c', IPS[2]!), entry('d', IPS[3]!)];
    const d = await startHolding([a, b, c]);
    await bed.kv.put(dd.key).value('n1');
    write(file, [a, { ...c, extra: ['announce-count: 3'] }, dd]);
    const r = await reload(d);
    assert.match(r.msg, /^reload applied: 1 unchanged; added d; changed c; removed b$/);
    await eventually('d added, b removed', () => hasVip(bed.nodes[0].ns, `${dd.ip}/24`) && !hasVip(bed.nodes[0].ns, `${b.ip}/24`), 5000);
    assert.ok(hasVip(bed.nodes[0].ns, `${a.ip}/24`) && hasVip(bed.nodes[0].ns, `${c.ip}/24`));
    await new Promise((res) => setTimeout(res, 300)); // let ip monitor print anything pending
    assert.deepEqual(monitor!.deleted(a.ip), [], 'the unchanged entry saw a netlink delete');
    assert.deepEqual(monitor!.deleted(c.ip), [], 'the changed entry (same address) saw a netlink delete');
    assert.equal(monitor!.deleted(b.ip).length, 1, `the removed entry's VIP was deleted once: ${monitor!.lines.join('\n')}`);
    assert.equal(monitor!.added(dd.ip).length, 1);
    // The new and changed entries follow their keys; the removed one no longer does.
    await bed.kv.put(c.key).value('n2');
    await eventually('c released after its key moved', () => !hasVip(bed.nodes[0].ns, `${c.ip}/24`), 5000);
    await bed.kv.put(b.key).value('n1');
    await new Promise((res) => setTimeout(res, 300));
    assert.ok(!hasVip(bed.nodes[0].ns, `${b.ip}/24`), 'a removed entry must not follow its key any more');
  });

  test('a changed address moves: the old one is released, the new one added', async () => {
    const a = entry('a', IPS[0]!);
    const d = await startHolding([a]);
    write(file, [{ ...a, ip: IPS[4]! }]);
    const r = await reload(d);
    assert.match(r.msg, /changed a/);
    await eventually('moved to the new address', () => hasVip(bed.nodes[0].ns, `${IPS[4]}/24`) && !hasVip(bed.nodes[0].ns, `${IPS[0]}/24`), 5000);
  });

  test('an invalid file is refused with one error line; the running configuration goes on', async () => {
    const [a, b] = [entry('a', IPS[0]!), entry('b', IPS[1]!)];
    const d = await startHolding([a, b]);
    // Two entries with one address: invalid as a whole, nothing of it may be applied.
    write(file, [a, { ...b, ip: a.ip }, entry('x', IPS[2]!)]);
    const errorsBefore = d.logs.filter((r) => r.level >= 50).length;
    const r = await reload(d);
    assert.match(r.msg, /^reload refused: .*vips\[1\].*; the running configuration stays$/);
    assert.equal(d.logs.filter((x) => x.level >= 50).length - errorsBefore, 1, 'exactly one error line');
    assert.ok(hasVip(bed.nodes[0].ns, `${a.ip}/24`) && hasVip(bed.nodes[0].ns, `${b.ip}/24`));
    assert.ok(!hasVip(bed.nodes[0].ns, `${IPS[2]}/24`));
    assert.deepEqual(monitor!.lines.filter((l) => l.startsWith('Deleted')), []);
    // The old configuration still follows its keys.
    await bed.kv.put(b.key).value('n2');
    await eventually('b released under the old configuration', () => !hasVip(bed.nodes[0].ns, `${b.ip}/24`), 5000);
    // A broken YAML file likewise.
    writeFileSync(file, 'vips: [\n');
    const r2 = await reload(d);
    assert.match(r2.msg, /^reload refused: config file .* YAML syntax error/);
    assert.ok(hasVip(bed.nodes[0].ns, `${a.ip}/24`));
  });

  test('a process-wide key that cannot change live is named in a warning; the entries still reload', async () => {
    const [a, b] = [entry('a', IPS[0]!), entry('b', IPS[1]!)];
    const d = await startHolding([a]);
    await bed.kv.put(b.key).value('n1');
    write(file, [a, b], ['http-listen: 127.0.0.1:9477']);
    const r = await reload(d);
    assert.match(r.msg, /added b/);
    const warn = d.logs.find((x) => typeof x.msg === 'string' && x.msg.startsWith('reload: http-listen cannot change while running'));
    assert.ok(warn, `no warning naming http-listen:\n${d.transcript()}`);
    await eventually('b added', () => hasVip(bed.nodes[0].ns, `${b.ip}/24`), 5000);
    assert.deepEqual(monitor!.deleted(a.ip), []);
  });
});
