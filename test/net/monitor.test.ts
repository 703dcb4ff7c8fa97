// NetMonitor against a real kernel: changes made by another process (`ip`) arrive as events,
// and a forced receive-buffer overrun ends in 'resync' and a monitor that still works.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createLan, type Lan, type LanHost } from '../harness/netns.js';
import { enterNetns, leaveNetns } from '../harness/enter-netns.js';
import { NetMonitor, type AddressEvent, type LinkEvent } from '../../src/net/monitor.js';
import { addAddress, deleteAddress } from '../../src/net/addresses.js';
import { lookupInterface } from '../../src/net/links.js';

/** Generous: events arrive in milliseconds; this only has to fail a monitor that is deaf. */
const EVENT_BOUND_MS = 1000;

function next<K extends 'address' | 'link' | 'resync'>(
  m: NetMonitor,
  event: K,
  pred: (ev: K extends 'address' ? AddressEvent : K extends 'link' ? LinkEvent : string) => boolean,
  timeoutMs: number,
): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      m.off(event, on as never);
      reject(new Error(`no matching '${event}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    function on(ev: never): void {
      if (!pred(ev)) return;
      clearTimeout(timer);
      m.off(event, on as never);
      resolve(performance.now() - start);
    }
    m.on(event, on as never);
  });
}

describe('net/monitor', () => {
  let lan: Lan;
  let host: LanHost;
  let ifindex: number;
  let monitor: NetMonitor | undefined;

  before(() => {
    lan = createLan(1);
    host = lan.hosts[0]!;
    enterNetns(host.ns);
    ifindex = lookupInterface('eth0').index;
  });
  afterEach(() => {
    monitor?.close();
    monitor = undefined;
  });
  after(() => {
    leaveNetns();
    lan?.dispose();
  });

  it('reports an address removed by another process, with op, index, address and prefix', async () => {
    monitor = new NetMonitor();
    host.ns.ip('addr', 'add', '198.51.100.20/24', 'dev', 'eth0');
    const seen: AddressEvent[] = [];
    monitor.on('address', (e) => seen.push(e));
    const waited = next(monitor, 'address', (e) => e.op === 'del' && e.address === '198.51.100.20', EVENT_BOUND_MS);
    host.ns.ip('addr', 'del', '198.51.100.20/24', 'dev', 'eth0');
    const ms = await waited;
    assert.ok(ms < EVENT_BOUND_MS);
    assert.deepEqual(seen.find((e) => e.op === 'del'), { op: 'del', ifindex, address: '198.51.100.20', prefixLen: 24, family: 4 });
  });

  it('reports IPv6 additions in canonical form', async () => {
    monitor = new NetMonitor();
    const waited = next(monitor, 'address', (e) => e.op === 'add' && e.address === '2001:db8::20' && e.prefixLen === 64 && e.family === 6, EVENT_BOUND_MS);
    host.ns.ip('addr', 'add', '2001:DB8:0::20/64', 'dev', 'eth0', 'nodad');
    await waited;
    host.ns.ip('addr', 'del', '2001:db8::20/64', 'dev', 'eth0');
  });

  it('reports a link set down by another process, then up again', async () => {
    monitor = new NetMonitor();
    const down = next(monitor, 'link', (e) => e.op === 'new' && e.ifindex === ifindex && e.name === 'eth0' && !e.up && !e.running, EVENT_BOUND_MS);
    host.ns.ip('link', 'set', 'eth0', 'down');
    try {
      await down;
    } finally {
      const up = next(monitor, 'link', (e) => e.ifindex === ifindex && e.up, EVENT_BOUND_MS);
      host.ns.ip('link', 'set', 'eth0', 'up');
      await up;
    }
  });

  it('reports a link created and deleted', async () => {
    monitor = new NetMonitor();
    const created = next(monitor, 'link', (e) => e.op === 'new' && e.name === 'vt0', EVENT_BOUND_MS);
    host.ns.ip('link', 'add', 'vt0', 'type', 'veth', 'peer', 'name', 'vt1');
    await created;
    const deleted = next(monitor, 'link', (e) => e.op === 'del' && e.name === 'vt0', EVENT_BOUND_MS);
    host.ns.ip('link', 'del', 'vt0');
    await deleted;
  });

  it('recovers from a receive-buffer overrun: emits resync, then keeps reporting', async () => {
    // Test hook: the smallest receive buffer the kernel allows.
    monitor = new NetMonitor({ receiveBufferBytes: 1 });
    let reason = '';
    monitor.once('resync', (r) => { reason = r; });
    const resync = next(monitor, 'resync', () => true, 5000);
    // Hundreds of changes while this process cannot drain the socket (no await in between).
    for (let i = 0; i < 200; i++) {
      addAddress(ifindex, `198.51.100.${i + 1}`, 32);
      deleteAddress(ifindex, `198.51.100.${i + 1}`, 32);
    }
    await resync;
    assert.match(reason, /overrun/);
    const later = next(monitor, 'address', (e) => e.op === 'add' && e.address === '198.51.100.250', EVENT_BOUND_MS);
    host.ns.ip('addr', 'add', '198.51.100.250/32', 'dev', 'eth0');
    await later;
    host.ns.ip('addr', 'del', '198.51.100.250/32', 'dev', 'eth0');
  });

  it('keeps up with the same burst without loss at the default receive buffer', async () => {
    monitor = new NetMonitor();
    let resyncs = 0;
    let dels = 0;
    monitor.on('resync', () => resyncs++);
    monitor.on('address', (e) => { if (e.op === 'del' && e.prefixLen === 32 && e.address.startsWith('198.51.100.')) dels++; });
    for (let i = 0; i < 200; i++) {
      addAddress(ifindex, `198.51.100.${i + 1}`, 32);
      deleteAddress(ifindex, `198.51.100.${i + 1}`, 32);
    }
    const end = performance.now() + EVENT_BOUND_MS;
    while (dels < 200 && performance.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(resyncs, 0);
    assert.equal(dels, 200, 'every removal reported');
  });

  it('lets the process exit once closed', () => {
    const script = `
      const { NetMonitor } = await import(${JSON.stringify(new URL('../../src/net/monitor.js', import.meta.url).href)});
      const m = new NetMonitor();
      m.on('address', () => {});
      setTimeout(() => m.close(), 50);
    `;
    const started = performance.now();
    // Would hang until the timeout if the poll handle kept the event loop alive after close().
    execFileSync('ip', ['netns', 'exec', host.ns.name, process.execPath, '--input-type=module', '-e', script], { timeout: 10_000, stdio: 'pipe' });
    assert.ok(performance.now() - started < 10_000);
  });
});
