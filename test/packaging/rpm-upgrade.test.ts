// The .rpm over upstream's Go vip-manager rpm (5.x, no epoch, the YAML file as
// %config(noreplace)), with this machine's real rpm into a private --root: ours installs as an
// upgrade, not as an older package, and an edited /etc/default/vip-manager.yml stays as it was
// with ours beside it as .rpmnew. No rpm-based distribution can be had here, so the stand-in
// for upstream's package is built by the test with rpmbuild, with the files upstream's nfpm
// packaging installs; scriptlets and dependencies are left out (--noscripts --nodeps: the
// empty root has no shell and no rpm database of libraries).
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { builtPackage } from '../harness/packages.js';

const EDITED = '# edited by the administrator\nip: 203.0.113.100\nnetmask: 24\ninterface: eth0\ntrigger-key: /service/pg/leader\ntrigger-value: pg1\n';

function run(cmd: string, args: string[]): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  assert.equal(r.error, undefined, `cannot run ${cmd} (apt-get install rpm): ${r.error?.message}`);
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** An rpm shaped like upstream's 5.0.0: binary, unit, and the YAML file as %config(noreplace). */
function upstreamRpm(work: string): string {
  const top = join(work, 'rpmbuild');
  const stage = join(work, 'upstream-stage');
  for (const d of ['SPECS', 'RPMS', 'BUILD', 'BUILDROOT']) mkdirSync(join(top, d), { recursive: true });
  for (const [p, text] of [
    ['usr/bin/vip-manager', '#!/bin/sh\necho "vip-manager 5.0.0 (stand-in)"\n'],
    ['etc/default/vip-manager.yml', 'ip: 10.0.0.1\nnetmask: 24\ninterface: eth0\n'],
    ['usr/lib/systemd/system/vip-manager.service', '[Service]\nExecStart=/usr/bin/vip-manager --config=/etc/default/vip-manager.yml\n'],
  ] as const) {
    mkdirSync(join(stage, p, '..'), { recursive: true });
    writeFileSync(join(stage, p), text);
  }
  const spec = join(top, 'SPECS', 'upstream.spec');
  writeFileSync(spec, [
    'Name: vip-manager', 'Version: 5.0.0', 'Release: 1', 'Summary: stand-in for the Go vip-manager 5.0.0', 'License: BSD-2-Clause',
    '%global debug_package %{nil}', '%description', 'stand-in', '%install', `cp -a ${stage}/. %{buildroot}/`,
    '%files', '/usr/bin/vip-manager', '/usr/lib/systemd/system/vip-manager.service', '%config(noreplace) /etc/default/vip-manager.yml', '',
  ].join('\n'));
  ok(run('rpmbuild', ['-bb', '--quiet', '--nodeps', '--target', 'x86_64-linux', '--define', `_topdir ${top}`, spec]), 'rpmbuild (upstream stand-in)');
  const dir = join(top, 'RPMS', 'x86_64');
  return join(dir, readdirSync(dir).find((f) => f.endsWith('.rpm'))!);
}

describe('the .rpm over upstream\'s rpm (5.x)', () => {
  let work: string;
  let root: string;
  const rpm = (...args: string[]) => run('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', ...args]);

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'vip-rpm-upgrade-'));
    root = join(work, 'root');
    mkdirSync(root);
    ok(rpm('--initdb'), 'rpm --initdb');
    ok(rpm('-i', '--nodeps', '--noscripts', upstreamRpm(work)), 'installing the upstream stand-in');
    writeFileSync(join(root, 'etc/default/vip-manager.yml'), EDITED);
    const ours = await builtPackage('rpm', 'amd64');
    const r = rpm('-U', '--nodeps', '--noscripts', ours);
    ok(r, 'rpm -U ours over upstream\'s');
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('is an upgrade: ours is the one installed, at epoch 1', () => {
    assert.equal(ok(rpm('-q', '--qf', '%{EPOCH}:%{VERSION}-%{RELEASE}', 'vip-manager'), 'rpm -q').trim(), `1:${(JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version}-1`);
    assert.ok(existsSync(join(root, 'usr/lib/vip-manager/node')), 'the embedded runtime is installed');
    assert.match(readFileSync(join(root, 'usr/bin/vip-manager'), 'utf8'), /exec "\$lib\/node"/, 'our launcher replaced upstream\'s binary');
  });

  it('keeps the edited /etc/default/vip-manager.yml and writes ours beside it as .rpmnew', () => {
    assert.equal(readFileSync(join(root, 'etc/default/vip-manager.yml'), 'utf8'), EDITED);
    assert.equal(readFileSync(join(root, 'etc/default/vip-manager.yml.rpmnew'), 'utf8'), readFileSync(join(root, 'usr/share/vip-manager/vip-manager.yml'), 'utf8'));
  });

  it('an older upstream release no longer installs over ours', () => {
    const r = rpm('-U', '--nodeps', '--noscripts', '--test', upstreamRpm(join(work, 'again')));
    assert.notEqual(r.status, 0, 'rpm would downgrade to 5.0.0');
    assert.match(r.stderr, /newer version of vip-manager|is already installed/);
  });
});
