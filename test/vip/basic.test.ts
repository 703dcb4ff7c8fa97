// BasicManager on a real LAN: host "self" (this process, via setns) and a peer that captures
// what self announces. Everything the manager reports is checked against `ip` and the capture.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLan, type Lan, type LanHost } from '../harness/netns.js';
import { enterNetns, leaveNetns } from '../harness/enter-netns.js';
import { Capture, type Captured } from '../net/support/capture.js';
import { BasicManager, type BasicManagerOptions } from '../../src/vip/basic.js';
import { NoLinkLayerAddressError } from '../../src/net/errors.js';
import { silentLogger } from '../../src/log.js';

const VIP4 = '203.0.113.200';
const VIP6 = '2001:db8:1::200';
/** Generous bound for "onChange fires": kernel events arrive in milliseconds. */
const CHANGE_BOUND_MS = 1000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class Changes {
  count = 0;
  readonly fn = (): void => {
    this.count++;
  };
  /** Resolves once onChange has fired after this call. */
  async next(timeoutMs = CHANGE_BOUND_MS): Promise<void> {
    const before = this.count;
    const end = performance.now() + timeoutMs;
    while (this.count === before) {
      if (performance.now() > end) throw new Error(`onChange did not fire within ${timeoutMs} ms`);
      await sleep(5);
    }
  }
}

describe('vip/basic', () => {
  let lan: Lan;
  let self: LanHost;
  let peer: LanHost;
  let capture: Capture;
  const managers: BasicManager[] = [];

  function manager(over: Partial<BasicManagerOptions> = {}): BasicManager {
    const m = new BasicManager({
      ip: VIP4, prefixLen: 24, interfaceName: 'eth0',
      announceCount: 3, announceInterval: 150, announceRefresh: 0, retryNum: 3, retryAfter: 50,
      ...over,
    }, silentLogger());
    managers.push(m);
    return m;
  }

  /** ARP requests for `ip` sent by self since `since` (one per announcement round). */
  function rounds(since: number, ip = VIP4): Captured[] {
    const mac = self.mac.replaceAll(':', '');
    const ipHex = Buffer.from(ip.split('.').map(Number)).toString('hex');
    capture.drain();
    return capture.frames.filter((c) => c.at >= since && c.frame.readUInt16BE(12) === 0x0806 && c.frame.readUInt16BE(20) === 1
      && c.frame.subarray(22, 28).toString('hex') === mac && c.frame.subarray(28, 32).toString('hex') === ipHex);
  }

  function nas(since: number): Captured[] {
    const mac = self.mac.replaceAll(':', '');
    capture.drain();
    return capture.frames.filter((c) => c.at >= since && c.frame.readUInt16BE(12) === 0x86dd && c.frame[20] === 58 && c.frame[54] === 136
      && c.frame.subarray(6, 12).toString('hex') === mac);
  }

  /** A point in time after which captured frames belong to the caller: earlier frames drained. */
  async function mark(): Promise<number> {
    await sleep(50);
    capture.drain();
    return performance.now();
  }

  before(() => {
    lan = createLan(2, ['self', 'peer']);
    [self, peer] = lan.hosts as [LanHost, LanHost];
    capture = new Capture(peer.ns, 'eth0');
    enterNetns(self.ns);
  });
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.close();
    for (const a of self.ns.addresses('eth0')) if (a.startsWith(VIP4) || a.startsWith(VIP6)) self.ns.ip('addr', 'del', a, 'dev', 'eth0');
  });
  after(() => {
    capture?.close();
    leaveNetns();
    lan?.dispose();
  });

  it('acquire adds the VIP and sends announce-count rounds announce-interval apart; release removes it', async () => {
    // Send times come from onAnnounce (called right after each round's sendto, in this process):
    // the capture's read times also carry when this shared event loop got round to reading, and
    // under load two frames read in one batch looked 51 ms apart though sent 150 ms apart.
    const packets: number[] = [];
    const sentAt: number[] = [];
    const m = manager({ onAnnounce: (n) => { packets.push(n); sentAt.push(performance.now()); } });
    await m.start(() => {});
    assert.deepEqual(await m.observe(), { held: false, ready: true });
    const t0 = await mark();
    await m.acquire();
    // "Round 1 now": sent by the time acquire() returns, no timer involved.
    assert.deepEqual(packets, [2], 'the first round went out inside acquire()');
    assert.ok(self.ns.addresses('eth0').includes(`${VIP4}/24`), 'ip sees the VIP');
    assert.deepEqual(await m.observe(), { held: true, ready: true });
    await capture.waitFor(() => rounds(t0).length >= 3, 5000, 'three announcement rounds on the wire');
    await sleep(500); // an absence window: a 4th round would be due 150 ms after the 3rd
    assert.equal(rounds(t0).length, 3, 'exactly announce-count rounds on the wire');
    assert.deepEqual(packets, [2, 2, 2], 'onAnnounce per round: ARP request + reply');
    // Round k is scheduled (k-1) × announce-interval after round 1, so it can never come sooner
    // (timers never fire early; 1 ms for their millisecond rounding). Rounds are not paced from
    // each other, so one round's lateness may shorten the next gap: offsets, not gaps, are the
    // sound check. Lateness measured 0.2-3 ms idle, up to ~100 ms under load: 1 s allowed.
    const offsets = sentAt.map((t) => t - sentAt[0]!);
    offsets.forEach((o, k) => {
      assert.ok(o >= k * 150 - 1, `round ${k + 1} sent ${o.toFixed(1)} ms after round 1, before its time (${k * 150} ms)`);
      assert.ok(o < k * 150 + 1000, `round ${k + 1} sent ${o.toFixed(1)} ms after round 1`);
    });

    await m.release();
    assert.ok(!self.ns.addresses('eth0').includes(`${VIP4}/24`), 'ip no longer sees it');
    assert.deepEqual(await m.observe(), { held: false, ready: true });
  });

  it('is idempotent: acquiring a held VIP and releasing a missing one are fine', async () => {
    const m = manager({ announceCount: 1 });
    await m.acquire();
    await m.acquire();
    assert.equal(self.ns.addresses('eth0').filter((a) => a === `${VIP4}/24`).length, 1);
    await m.release();
    await m.release();
    assert.deepEqual(await m.observe(), { held: false, ready: true });
  });

  it('release cancels the rounds still pending', async () => {
    const m = manager({ announceCount: 5, announceInterval: 100 });
    const t0 = await mark();
    await m.acquire();
    await m.release();
    await sleep(700);
    assert.equal(rounds(t0).length, 1, 'only the immediate round');
  });

  it('fires onChange when someone else removes the VIP', async () => {
    const changes = new Changes();
    const m = manager({ announceCount: 1 });
    await m.start(changes.fn);
    // The acquire's own address event fires onChange first: wait for it, not for a while.
    const added = changes.next();
    await m.acquire();
    await added;
    const next = changes.next();
    self.ns.ip('addr', 'del', `${VIP4}/24`, 'dev', 'eth0');
    await next;
    assert.deepEqual(await m.observe(), { held: false, ready: true });
  });

  it('observe() keeps its answer only until the kernel reports a change: an address added and removed by hand is seen each time', async () => {
    const changes = new Changes();
    const m = manager({ announceCount: 1 });
    await m.start(changes.fn);
    assert.deepEqual(await m.observe(), { held: false, ready: true });
    assert.deepEqual(await m.observe(), { held: false, ready: true }, 'unchanged while nothing happened');
    let next = changes.next();
    self.ns.ip('addr', 'add', `${VIP4}/24`, 'dev', 'eth0');
    await next;
    assert.deepEqual(await m.observe(), { held: true, ready: true }, 'added behind its back');
    next = changes.next();
    self.ns.ip('addr', 'del', `${VIP4}/24`, 'dev', 'eth0');
    await next;
    assert.deepEqual(await m.observe(), { held: false, ready: true }, 'removed behind its back');
    // Its own changes are seen at once, before their events arrive.
    await m.acquire();
    assert.deepEqual(await m.observe(), { held: true, ready: true }, 'after acquire');
    await m.release();
    assert.deepEqual(await m.observe(), { held: false, ready: true }, 'after release');
    await sleep(300); // the add and delete events of acquire/release are in: the next change is the link's
    next = changes.next();
    self.ns.ip('link', 'set', 'eth0', 'down');
    await next;
    assert.deepEqual(await m.observe(), { held: false, ready: false, detail: 'interface eth0 is down' }, 'link down');
    next = changes.next();
    self.ns.ip('link', 'set', 'eth0', 'up');
    await next;
    assert.equal((await m.observe()).ready, true, 'link up again');
  });

  it('IPv6: announces with an NA; link down fires onChange and the VIP vanishes; link up fires again', async () => {
    const changes = new Changes();
    const m = manager({ ip: VIP6, prefixLen: 64, announceCount: 2, announceInterval: 100 });
    await m.start(changes.fn);
    const t0 = await mark();
    await m.acquire();
    assert.deepEqual(await m.observe(), { held: true, ready: true });
    await capture.waitFor(() => nas(t0).length >= 2, 2000, 'two neighbour advertisements');
    const down = changes.next();
    self.ns.ip('link', 'set', 'eth0', 'down');
    try {
      await down;
      assert.deepEqual(await m.observe(), { held: false, ready: false, detail: 'interface eth0 is down' });
      assert.ok(!self.ns.addresses('eth0').some((a) => a.startsWith(`${VIP6}/`)), 'keep_addr_on_down=0 removed it');
    } finally {
      const up = changes.next();
      self.ns.ip('link', 'set', 'eth0', 'up');
      await up;
    }
    assert.deepEqual(await m.observe(), { held: false, ready: true });
  });

  it('announce() re-announces a held VIP and does nothing for one it does not hold', async () => {
    const m = manager({ announceCount: 2, announceInterval: 100 });
    const t0 = await mark();
    await m.announce();
    await sleep(300);
    assert.equal(rounds(t0).length, 0, 'nothing announced for an address not held');
    await m.acquire();
    await capture.waitFor(() => rounds(t0).length >= 2, 1000, 'the acquire series');
    const t1 = await mark();
    await m.announce();
    await capture.waitFor(() => rounds(t1).length >= 2, 1000, 'a fresh series');
  });

  it('announce-refresh repeats rounds while held and stops on release', async () => {
    const m = manager({ announceCount: 1, announceRefresh: 150 });
    const t0 = await mark();
    await m.acquire();
    await capture.waitFor(() => rounds(t0).length >= 4, 2000, 'refresh rounds');
    await m.release();
    const t1 = await mark();
    await sleep(450);
    assert.equal(rounds(t1).length, 0, 'no refresh after release');
  });

  it('refuses an interface without a link-layer address (loopback) with a clear error', async () => {
    const m = manager({ interfaceName: 'lo', ip: '198.51.100.77', prefixLen: 32 });
    await m.start(() => {});
    const refusal = (e: unknown): boolean => e instanceof NoLinkLayerAddressError && /lo has no Ethernet link-layer address \(type loopback\)/.test(e.message);
    await assert.rejects(m.observe(), refusal);
    await assert.rejects(m.acquire(), refusal);
    assert.ok(!self.ns.addresses('lo').includes('198.51.100.77/32'), 'nothing was added');
  });

  it('waits for a missing interface: not ready, then onChange when it appears, is renamed, goes up', async () => {
    const changes = new Changes();
    const m = manager({ interfaceName: 'vip0' });
    await m.start(changes.fn);
    assert.deepEqual(await m.observe(), { held: false, ready: false, detail: 'interface vip0 does not exist' });
    try {
      // Appears under another name first: no business of ours... until renamed to ours.
      self.ns.ip('link', 'add', 'tmp0', 'type', 'veth', 'peer', 'name', 'tmp1');
      await sleep(100);
      const renamed = changes.next();
      self.ns.ip('link', 'set', 'tmp0', 'name', 'vip0');
      await renamed;
      assert.deepEqual(await m.observe(), { held: false, ready: false, detail: 'interface vip0 is down' });
      const up = changes.next();
      self.ns.ip('link', 'set', 'vip0', 'up');
      await up;
      assert.equal((await m.observe()).ready, true);
      const away = changes.next();
      self.ns.ip('link', 'set', 'vip0', 'down');
      self.ns.ip('link', 'set', 'vip0', 'name', 'other0');
      await away;
      assert.deepEqual(await m.observe(), { held: false, ready: false, detail: 'interface vip0 does not exist' });
    } finally {
      self.ns.ip('link', 'del', 'other0');
    }
  });

  it('refuses a prefix length that does not fit the address', () => {
    assert.throws(() => manager({ prefixLen: 33 }), /netmask 33/);
    assert.throws(() => manager({ ip: VIP6, prefixLen: 0 }), /netmask 0/);
  });
});
