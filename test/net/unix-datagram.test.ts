// AF_UNIX datagrams: how the daemon talks to systemd ($NOTIFY_SOCKET), filesystem and
// abstract ('@') addresses alike.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bindDatagramReceiver, sendDatagram, UnixPathError } from '../../src/net/unix-datagram.js';
import { SyscallError } from '../../src/net/errors.js';

describe('net/unix-datagram', () => {
  it('sends to and receives on a filesystem socket, one message per datagram', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vm-dgram-'));
    const path = join(dir, 'notify');
    const r = bindDatagramReceiver(path);
    try {
      assert.ok(statSync(path).isSocket());
      assert.equal(r.recv(), null, 'nothing queued: null, no blocking');
      sendDatagram(path, 'READY=1\nSTATUS=holding');
      sendDatagram(path, Buffer.from('STOPPING=1'));
      assert.equal(r.recv()?.toString(), 'READY=1\nSTATUS=holding');
      assert.equal((await r.next(1000)).toString(), 'STOPPING=1');
      await assert.rejects(r.next(100), /no datagram .* within 100 ms/);
    } finally {
      r.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('supports abstract socket names (leading @)', async () => {
    const name = `@vip-manager-test-${process.pid}-${Date.now()}`;
    const r = bindDatagramReceiver(name);
    try {
      const later = r.next(1000);
      setTimeout(() => sendDatagram(name, 'WATCHDOG=1'), 20);
      assert.equal((await later).toString(), 'WATCHDOG=1');
    } finally {
      r.close();
    }
    // Closed: the name is free again and nobody listens.
    assert.throws(() => sendDatagram(name, 'x'), (e: unknown) => e instanceof SyscallError && e.code === 'ECONNREFUSED');
  });

  it('fails with typed errors for a missing socket and an over-long path', () => {
    assert.throws(() => sendDatagram('/nonexistent-dir/notify', 'READY=1'), (e: unknown) => e instanceof SyscallError && e.code === 'ENOENT' && /\/nonexistent-dir\/notify/.test(e.message));
    assert.throws(() => sendDatagram(`/tmp/${'x'.repeat(120)}`, 'READY=1'), UnixPathError);
  });
});
