// The net layer needs CAP_NET_ADMIN (addresses) and CAP_NET_RAW (announcements), not root.
// A fixture runs as user nobody through setpriv inside a test namespace, with exactly those
// ambient capabilities, with one of them, and with none; the errors must name what is missing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLan, type Lan, type LanHost } from '../harness/netns.js';
import { Capture } from './support/capture.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/net-ops.js', import.meta.url));
const ROOT = resolve(dirname(FIXTURE), '../../../..');
const VIP = '203.0.113.150';

interface Outcome { ok: boolean; value?: unknown; code?: string; missingCapability?: string; message?: string }
interface Report { uid: number; results: Record<string, Outcome> }

function asNobody(host: LanHost, caps: string[], steps: string[], ip = VIP, prefix = '24'): Report {
  const capArgs = caps.length
    ? [`--inh-caps=${caps.map((c) => `+${c}`).join(',')}`, `--ambient-caps=${caps.map((c) => `+${c}`).join(',')}`]
    : ['--inh-caps=-all'];
  const out = host.ns.exec('setpriv', [
    '--reuid=nobody', '--regid=nogroup', '--clear-groups', ...capArgs,
    process.execPath, FIXTURE, steps.join(','), 'eth0', ip, prefix,
  ]);
  return JSON.parse(out) as Report;
}

describe('net layer without root', () => {
  let lan: Lan;
  let self: LanHost;
  let peer: LanHost;

  before(() => {
    lan = createLan(2, ['self', 'peer']);
    [self, peer] = lan.hosts as [LanHost, LanHost];
  });
  after(() => lan?.dispose());

  it('user nobody can read the build and node_modules (precondition of the other tests)', () => {
    const files = [FIXTURE, resolve(ROOT, 'dist/src/net/addresses.js'), resolve(ROOT, 'node_modules/koffi/index.js'), resolve(ROOT, 'node_modules/pino/package.json')];
    for (const f of files) {
      execFileSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'test', '-r', f], { stdio: 'pipe' });
    }
    const koffiDir = resolve(ROOT, 'node_modules/koffi');
    execFileSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'sh', '-c', `find ${JSON.stringify(koffiDir)} ! -perm -o=r -print -quit | grep -q . && exit 1 || exit 0`], { stdio: 'pipe' });
  });

  it('adds, announces and deletes with only CAP_NET_ADMIN and CAP_NET_RAW', async () => {
    const capture = new Capture(peer.ns, 'eth0');
    try {
      const r = asNobody(self, ['net_admin', 'net_raw'], ['add', 'has', 'announce']);
      assert.equal(r.uid, 65534, 'ran as nobody');
      assert.deepEqual(r.results.add, { ok: true });
      assert.deepEqual(r.results.has, { ok: true, value: true });
      assert.deepEqual(r.results.announce, { ok: true, value: 2 });
      assert.ok(self.ns.addresses('eth0').includes(`${VIP}/24`), 'ip sees the VIP');
      const selfMac = self.mac.replaceAll(':', '');
      await capture.waitFor((fs) => fs.filter((c) => c.frame.readUInt16BE(12) === 0x0806 && c.frame.subarray(22, 28).toString('hex') === selfMac).length >= 2, 1000, 'the two ARP frames');
      const d = asNobody(self, ['net_admin', 'net_raw'], ['delete', 'has']);
      assert.deepEqual(d.results.delete, { ok: true });
      assert.deepEqual(d.results.has, { ok: true, value: false });
      assert.ok(!self.ns.addresses('eth0').includes(`${VIP}/24`));
    } finally {
      capture.close();
    }
  });

  it('IPv6 works the same way unprivileged', () => {
    const r = asNobody(self, ['net_admin', 'net_raw'], ['add', 'announce', 'delete'], '2001:db8:1::150', '64');
    assert.deepEqual(r.results, { add: { ok: true }, announce: { ok: true, value: 1 }, delete: { ok: true } });
  });

  it('without capabilities, each error names the capability that is missing', () => {
    self.ns.ip('addr', 'add', `${VIP}/24`, 'dev', 'eth0');
    try {
      const r = asNobody(self, [], ['add', 'delete', 'announce', 'has']);
      for (const s of ['add', 'delete'] as const) {
        assert.equal(r.results[s]?.ok, false);
        assert.equal(r.results[s]?.code, 'EPERM');
        assert.equal(r.results[s]?.missingCapability, 'CAP_NET_ADMIN');
        assert.match(r.results[s]?.message ?? '', /CAP_NET_ADMIN/);
      }
      assert.equal(r.results.announce?.ok, false);
      assert.match(r.results.announce?.code ?? '', /^(EPERM|EACCES)$/);
      assert.equal(r.results.announce?.missingCapability, 'CAP_NET_RAW');
      assert.match(r.results.announce?.message ?? '', /CAP_NET_RAW/);
      assert.deepEqual(r.results.has, { ok: true, value: true }, 'reading needs no capability');
      assert.ok(self.ns.addresses('eth0').includes(`${VIP}/24`), 'the failed delete left it');
    } finally {
      self.ns.ip('addr', 'del', `${VIP}/24`, 'dev', 'eth0');
    }
  });

  it('with one capability only, the other operation names the other one', () => {
    const adminOnly = asNobody(self, ['net_admin'], ['add', 'announce', 'delete']);
    assert.deepEqual(adminOnly.results.add, { ok: true });
    assert.equal(adminOnly.results.announce?.missingCapability, 'CAP_NET_RAW');
    assert.deepEqual(adminOnly.results.delete, { ok: true });
    self.ns.ip('addr', 'add', `${VIP}/24`, 'dev', 'eth0');
    try {
      const rawOnly = asNobody(self, ['net_raw'], ['announce', 'delete']);
      assert.deepEqual(rawOnly.results.announce, { ok: true, value: 2 });
      assert.equal(rawOnly.results.delete?.missingCapability, 'CAP_NET_ADMIN');
    } finally {
      self.ns.ip('addr', 'del', `${VIP}/24`, 'dev', 'eth0');
    }
  });
});
