// The systemd units in packaging/: systemd's own parser accepts them without a single warning,
// their hardening stays at the reviewed exposure level, and the directives this daemon relies
// on are present. Needs systemd-analyze and the stock units of Debian's `systemd` package.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const PACKAGING = fileURLToPath(new URL('../../../packaging/', import.meta.url));
const HOST_UNITS = '/usr/lib/systemd/system';
/** `systemd-analyze security` exposure ×10; the units scored 2.2 when reviewed. */
const MAX_EXPOSURE_X10 = 30;

function unitText(name: string): string {
  return readFileSync(join(PACKAGING, name), 'utf8');
}

/** [Section] → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      current = new Map();
      sections.set(sec[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(current && eq > 0, `unparsable line: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

function analyze(root: string, args: string[]) {
  const r = spawnSync('systemd-analyze', [...args.slice(0, 1), `--root=${root}`, ...args.slice(1)], { encoding: 'utf8' });
  assert.equal(r.error, undefined, `cannot run systemd-analyze (apt package systemd): ${r.error?.message}`);
  return r;
}

describe('systemd units', () => {
  let root: string;

  // A throw-away root holding the units, an executable /usr/bin/vip-manager and /bin/kill
  // (verify checks that ExecStart= and ExecReload= exist) and the stock targets and slices the
  // units depend on by default (sysinit.target, basic.target, …). Copies, not symlinks: the
  // host's absolute links would not resolve inside the root.
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'vip-units-'));
    for (const exe of ['usr/bin/vip-manager', 'bin/kill']) {
      mkdirSync(join(root, dirname(exe)), { recursive: true });
      writeFileSync(join(root, exe), '#!/bin/sh\n');
      chmodSync(join(root, exe), 0o755);
    }
    const units = join(root, 'usr/lib/systemd/system');
    mkdirSync(units, { recursive: true });
    const stock = readdirSync(HOST_UNITS).filter((n) => /\.(target|slice)$/.test(n) && statSync(join(HOST_UNITS, n)).isFile());
    assert.ok(stock.includes('sysinit.target'), `${HOST_UNITS} has no sysinit.target: install the systemd package`);
    for (const n of stock) copyFileSync(join(HOST_UNITS, n), join(units, n));
    mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
    for (const n of ['vip-manager.service', 'vip-manager@.service']) copyFileSync(join(PACKAGING, n), join(root, 'etc/systemd/system', n));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('pass systemd-analyze verify without any warning (service and a template instance)', () => {
    const r = analyze(root, ['verify', '--man=no', '--generators=no', 'vip-manager.service', 'vip-manager@pg-replica.service']);
    assert.equal(r.stdout + r.stderr, '', 'systemd-analyze printed warnings');
    assert.equal(r.status, 0);
  });

  it('verify is not vacuous: a mistake in the unit is reported', () => {
    const broken = unitText('vip-manager.service').replace('ProtectHome=yes', 'ProtectHome=yes\nProtectHomeDirectories=yes');
    writeFileSync(join(root, 'etc/systemd/system/vip-manager-broken.service'), broken);
    const r = analyze(root, ['verify', '--man=no', '--generators=no', 'vip-manager-broken.service']);
    assert.match(r.stderr, /Unknown key 'ProtectHomeDirectories'/);
    rmSync(join(root, 'etc/systemd/system/vip-manager-broken.service'));
  });

  it(`stay at or below exposure ${MAX_EXPOSURE_X10 / 10} in systemd-analyze security`, () => {
    for (const unit of ['vip-manager.service', 'vip-manager@pg-replica.service']) {
      const r = analyze(root, ['security', '--offline=true', `--threshold=${MAX_EXPOSURE_X10}`, '--no-pager', unit]);
      const overall = /Overall exposure level for \S+: ([\d.]+)/.exec(r.stdout + r.stderr)?.[1];
      assert.equal(r.status, 0, `${unit}: exposure ${overall} is above ${MAX_EXPOSURE_X10 / 10}\n${r.stdout}${r.stderr}`);
    }
  });

  it('carry the directives the daemon relies on', () => {
    const u = parseUnit(unitText('vip-manager.service'));
    const get = (sec: string, key: string) => u.get(sec)?.get(key)?.join(' ');
    const expect: Array<[string, string, string]> = [
      ['Unit', 'Before', 'patroni.service'],
      ['Unit', 'Wants', 'network-online.target'],
      ['Unit', 'After', 'network-online.target'],
      ['Service', 'Type', 'notify'],
      ['Service', 'ExecStart', '/usr/bin/vip-manager --config=/etc/default/vip-manager.yml'],
      // systemctl reload: SIGHUP re-reads the configuration (src/daemon/signals.ts, reload.ts).
      ['Service', 'ExecReload', '/bin/kill -HUP $MAINPID'],
      ['Service', 'User', 'vip-manager'],
      ['Service', 'Group', 'vip-manager'],
      ['Service', 'AmbientCapabilities', 'CAP_NET_ADMIN CAP_NET_RAW'],
      ['Service', 'CapabilityBoundingSet', 'CAP_NET_ADMIN CAP_NET_RAW'],
      ['Service', 'NoNewPrivileges', 'yes'],
      ['Service', 'ProtectSystem', 'strict'],
      ['Service', 'ProtectHome', 'yes'],
      ['Service', 'PrivateTmp', 'yes'],
      ['Service', 'RestrictAddressFamilies', 'AF_NETLINK AF_PACKET AF_UNIX AF_INET AF_INET6'],
      ['Service', 'Restart', 'on-failure'],
      ['Service', 'RestartPreventExitStatus', '78'],
      ['Service', 'WatchdogSec', '30s'],
      ['Install', 'WantedBy', 'multi-user.target'],
    ];
    for (const [sec, key, value] of expect) assert.equal(get(sec, key), value, `[${sec}] ${key}`);
    // V8's JIT needs writable+executable pages; PrivateUsers would confine the capabilities
    // to a user namespace that does not own the host's interfaces.
    for (const forbidden of ['MemoryDenyWriteExecute', 'PrivateUsers', 'PrivateNetwork']) {
      assert.equal(get('Service', forbidden), undefined, `${forbidden} would break the daemon`);
    }
  });

  it('sysusers file creates the vip-manager system user and group (systemd-sysusers --root)', () => {
    const sysRoot = mkdtempSync(join(tmpdir(), 'vip-sysusers-'));
    try {
      mkdirSync(join(sysRoot, 'etc'));
      const r = spawnSync('systemd-sysusers', [`--root=${sysRoot}`, join(PACKAGING, 'vip-manager.sysusers')], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const user = readFileSync(join(sysRoot, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith('vip-manager:'));
      assert.match(user ?? '', /^vip-manager:x:(\d+):(\d+):vip-manager daemon:\/nonexistent:\S*nologin$/);
      const [, uid] = /^vip-manager:x:(\d+):/.exec(user!)!;
      assert.ok(Number(uid) < 1000, `uid ${uid} is not a system uid`);
      assert.match(readFileSync(join(sysRoot, 'etc/group'), 'utf8'), /^vip-manager:x:\d+:/m);
    } finally {
      rmSync(sysRoot, { recursive: true, force: true });
    }
  });

  it('template differs from the service only in instance naming and Debian\'s /etc/patroni/%i.vip', () => {
    const service = unitText('vip-manager.service');
    const template = unitText('vip-manager@.service');
    assert.match(service, /^ExecStart=\/usr\/bin\/vip-manager --config=\/etc\/default\/vip-manager\.yml$/m);
    assert.match(service, /^EnvironmentFile=-\/etc\/default\/vip-manager$/m, 'Debian\'s unit read its settings from there');
    assert.match(template, /^ExecStart=\/usr\/bin\/vip-manager --instance=%i$/m);
    assert.match(template, /^EnvironmentFile=-\/etc\/patroni\/%i\.vip$/m, 'Debian\'s template contract');
    const strip = (t: string) => parseUnit(t).get('Service')!;
    const a = strip(service);
    const b = strip(template);
    for (const k of ['ExecStart', 'EnvironmentFile']) {
      a.delete(k);
      b.delete(k);
    }
    assert.deepEqual(b, a, '[Service] sections diverged');
    assert.deepEqual(parseUnit(template).get('Install'), parseUnit(service).get('Install'));
  });
});
