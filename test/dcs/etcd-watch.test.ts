// KeyWatch's handling of etcd3's watcher events, with a stand-in watcher: a server-side cancel
// ('error', e.g. "Watcher canceled" after a compaction) is reported once and the watcher is NOT
// cancelled again (awaiting that hung 20 s in etcd3); a disconnect is reported once and the
// watcher unlinked; an unconfirmed watch times out. Real-etcd behaviour is in the other tests.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { KeyWatch, WATCH_CREATE_TIMEOUT_MS, type KeyEvent } from '../../src/dcs/etcd/watch.js';
import { sleep } from './etcd-views.js';

class FakeWatcher extends EventEmitter {
  cancels = 0;
  request: Record<string, unknown> = {};
  cancel(): Promise<void> {
    this.cancels++;
    return Promise.resolve();
  }
}

function fakeClient(w: FakeWatcher): Etcd3 {
  const builder = {
    key: (k: string) => { w.request.key = k; return builder; },
    startRevision: (r: string) => { w.request.start = r; return builder; },
    watcher: () => w,
  };
  return { watch: () => builder } as unknown as Etcd3;
}

function setup() {
  const w = new FakeWatcher();
  const got = { connected: 0, events: [] as KeyEvent[][], failures: [] as unknown[] };
  const kw = new KeyWatch(fakeClient(w), '/k', '42', {
    onConnected: () => got.connected++,
    onEvents: (e) => got.events.push(e),
    onFailure: (e) => got.failures.push(e),
  });
  return { w, kw, got };
}

const put = (value: string, rev: string, lease = '0') => ({ type: 'Put', kv: { key: Buffer.from('/k'), value: Buffer.from(value), mod_revision: rev, lease } });

describe('KeyWatch', () => {
  it('watches the key from the given revision and passes events in order; progress notifications are ignored', async () => {
    const { w, kw, got } = setup();
    assert.deepEqual(w.request, { key: '/k', start: '42' });
    w.emit('connected', {});
    w.emit('data', { events: [put('a', '42'), { type: 'Delete', kv: { key: Buffer.from('/k'), value: Buffer.alloc(0), mod_revision: '43', lease: '0' } }, put('b', '44', '7')] });
    w.emit('data', { events: [] });
    assert.equal(got.connected, 1);
    assert.deepEqual(got.events, [[
      { key: Buffer.from('/k'), value: Buffer.from('a'), modRevision: '42', lease: '0' },
      { key: Buffer.from('/k'), value: null, modRevision: '43', lease: '0' },
      { key: Buffer.from('/k'), value: Buffer.from('b'), modRevision: '44', lease: '7' },
    ]]);
    await kw.close();
    assert.equal(w.cancels, 1, 'a healthy watch is cancelled on close');
  });

  it('a cancel by etcd is reported once and never cancelled again', async () => {
    const { w, kw, got } = setup();
    w.emit('connected', {});
    w.emit('error', new Error('Watcher canceled: mvcc: required revision has been compacted'));
    w.emit('error', new Error('again'));
    w.emit('data', { events: [put('late', '50')] });
    assert.equal(got.failures.length, 1);
    assert.match(String(got.failures[0]), /compacted/);
    assert.equal(got.events.length, 0, 'nothing after the failure');
    await kw.close();
    assert.equal(w.cancels, 0, 'cancel() is never called on a watcher etcd already cancelled');
  });

  it('a disconnect is reported once and the watcher unlinked (not re-attached by etcd3)', () => {
    const { w, got } = setup();
    w.emit('connected', {});
    w.emit('disconnected', new Error('14 UNAVAILABLE: Connection dropped'));
    w.emit('disconnected', new Error('The etcd watch stream was unexpectedly ended'));
    w.emit('connected', {});
    assert.equal(got.failures.length, 1);
    assert.equal(got.connected, 1);
    assert.equal(w.cancels, 1);
  });

  it('a watch etcd never confirms fails after WATCH_CREATE_TIMEOUT_MS', async () => {
    const started = performance.now();
    const { w, got } = setup();
    while (got.failures.length === 0) {
      if (performance.now() - started > WATCH_CREATE_TIMEOUT_MS + 10_000) assert.fail(`no failure ${WATCH_CREATE_TIMEOUT_MS + 10_000} ms after the watch was created`);
      await sleep(10);
    }
    // Not before the timeout (timers never fire early; 1 ms for their rounding).
    assert.ok(performance.now() - started >= WATCH_CREATE_TIMEOUT_MS - 1, `failed after ${(performance.now() - started).toFixed(0)} ms`);
    assert.equal(got.failures.length, 1);
    assert.match(String(got.failures[0]), /did not confirm the watch/);
    assert.equal(w.cancels, 1);
  });
});
