// The Debian maintainer scripts, run for real with every command that reaches beyond files
// replaced by a recording stub (PATH holds the stubs and the real cp/mv/mkdir/rm/chmod, so
// nothing on the host is touched), inside a private mount namespace whose /run, /etc/default
// and /usr/share are fresh tmpfs: that decides whether "systemd is running"
// (/run/systemd/system), what configuration file exists, and where the packaged sample is.
// Needs root (unshare --mount and mount), like the namespace-based tests.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SCRIPTS = fileURLToPath(new URL('../../../packaging/debian/', import.meta.url));
const SYSTEMD_TOOLS = ['deb-systemd-helper', 'deb-systemd-invoke', 'systemctl'];
const BASE_TOOLS = ['adduser', 'chown'];
/** Real tools: the scripts' file handling is what is tested. */
const REAL_TOOLS = ['cp', 'mv', 'mkdir', 'rm', 'chmod', 'cat'];
const SAMPLE = '# packaged sample\nip: 198.51.100.10\n';
const EDITED = 'ip: 203.0.113.7 # edited by the administrator\n';

interface Scenario {
  script: 'postinst' | 'prerm' | 'postrm';
  args: string[];
  systemdRunning: boolean;
  /** false: deb-systemd-helper, deb-systemd-invoke and systemctl are not installed. */
  systemdTools?: boolean;
  userExists?: boolean;
  /** /etc/default/vip-manager.yml exists before the script runs (default true). */
  configExists?: boolean;
  /** The system user can read that file (runuser ... test -r). */
  configReadable?: boolean;
}

describe('Debian maintainer scripts', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vip-maint-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function stub(stubs: string, name: string, exitCode: number | string = 0): void {
    const p = join(stubs, name);
    const code = typeof exitCode === 'number' ? `exit ${exitCode}` : exitCode;
    writeFileSync(p, `#!/bin/sh\necho "${name} $*" >> "$LOG"\n${code}\n`);
    chmodSync(p, 0o755);
  }

  /** Runs one script; returns its exit status and the commands it ran, one per line. */
  function run(s: Scenario): { status: number | null; calls: string[]; stderr: string; config: string | null; configMode: string | null } {
    const stubs = mkdtempSync(join(dir, 'bin-'));
    const log = join(stubs, 'calls.log');
    writeFileSync(log, '');
    stub(stubs, 'getent', s.userExists ? 0 : 2);
    stub(stubs, 'runuser', s.configReadable === false ? 1 : 0);
    for (const t of BASE_TOOLS) stub(stubs, t);
    for (const t of REAL_TOOLS) symlinkSync(`/bin/${t}`, join(stubs, t));
    const result = join(stubs, 'config-after');
    if (s.systemdTools !== false) {
      for (const t of SYSTEMD_TOOLS) stub(stubs, t);
      // Not installed before, not enabled: a fresh install.
      stub(stubs, 'deb-systemd-helper', 'case "$1" in debian-installed|was-enabled|--quiet) exit 1;; esac\nexit 0');
    }
    const setup = [
      'set -e',
      'mount -t tmpfs vip-run /run',
      s.systemdRunning ? 'mkdir -p /run/systemd/system' : ':',
      'mount -t tmpfs vip-etc-default /etc/default',
      'mount -t tmpfs vip-usr-share /usr/share',
      'mkdir /usr/share/vip-manager',
      `printf '${SAMPLE}' > /usr/share/vip-manager/vip-manager.yml`,
      s.configExists === false ? ':' : `printf '${EDITED}' > /etc/default/vip-manager.yml`,
      `env -i PATH="${stubs}" LOG="${log}" /bin/sh "${join(SCRIPTS, s.script)}" "$@" && rc=0 || rc=$?`,
      `if [ -e /etc/default/vip-manager.yml ]; then stat -c %a /etc/default/vip-manager.yml > "${result}.mode"; cat /etc/default/vip-manager.yml > "${result}"; fi`,
      'exit $rc',
    ].join('\n');
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '/bin/sh', '-c', setup, 'maint', ...s.args], { encoding: 'utf8' });
    assert.equal(r.error, undefined, `cannot run unshare: ${r.error?.message}`);
    assert.doesNotMatch(r.stderr, /unshare failed|mount:.*(denied|not permitted)/i, `needs root for a mount namespace: ${r.stderr}`);
    const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : null);
    return { status: r.status, calls: readFileSync(log, 'utf8').split('\n').filter((l) => l !== ''), stderr: r.stderr, config: read(result), configMode: read(`${result}.mode`)?.trim() ?? null };
  }

  it('are valid POSIX sh', () => {
    for (const s of ['postinst', 'prerm', 'postrm']) {
      const r = spawnSync('sh', ['-n', join(SCRIPTS, s)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${s}: ${r.stderr}`);
    }
  });

  it('postinst configure (fresh install): creates the user, installs the sample config readable by its group, registers but does not start', () => {
    const r = run({ script: 'postinst', args: ['configure', ''], systemdRunning: true, configExists: false });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.calls.includes('adduser --system --group --no-create-home --home /nonexistent --quiet --gecos vip-manager daemon vip-manager'), r.calls.join('\n'));
    assert.equal(r.config, SAMPLE.replace(/\\n/g, '\n'));
    assert.equal(r.configMode, '640');
    assert.ok(r.calls.includes('chown root:vip-manager /etc/default/vip-manager.yml.dpkg-new'), r.calls.join('\n'));
    assert.match(r.stderr, /installed the sample configuration \/etc\/default\/vip-manager\.yml/);
    assert.ok(r.calls.includes('deb-systemd-helper update-state vip-manager.service'));
    assert.ok(!r.calls.some((c) => c.startsWith('deb-systemd-helper enable')), 'a fresh install is not enabled');
    assert.ok(r.calls.includes('systemctl --system daemon-reload'));
    assert.ok(!r.calls.some((c) => c.startsWith('deb-systemd-invoke')), 'a fresh install is not started');
  });

  it('postinst configure (upgrade): keeps the user, restarts what runs', () => {
    const r = run({ script: 'postinst', args: ['configure', '0.0.9'], systemdRunning: true, userExists: true });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!r.calls.some((c) => c.startsWith('adduser')));
    assert.ok(r.calls.includes('deb-systemd-invoke try-restart vip-manager.service'), r.calls.join('\n'));
    assert.ok(r.calls.includes('systemctl try-restart vip-manager@*.service'));
  });

  it('postinst never touches an existing configuration (an upgrade from the Go packages keeps it)', () => {
    const r = run({ script: 'postinst', args: ['configure', '1.0.2-6+b2'], systemdRunning: true, userExists: true });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.config, EDITED.replace(/\\n/g, '\n'));
    assert.ok(!r.calls.some((c) => c.startsWith('chown')), r.calls.join('\n'));
    assert.equal(r.stderr, '');
  });

  it('postinst says so when the system user cannot read an existing configuration (the Go daemon ran as root)', () => {
    const r = run({ script: 'postinst', args: ['configure', '5.0.0'], systemdRunning: true, userExists: true, configReadable: false });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.config, EDITED.replace(/\\n/g, '\n'), 'the file is left as it is');
    assert.match(r.stderr, /not readable by user vip-manager.*chgrp vip-manager \/etc\/default\/vip-manager\.yml && chmod g\+r/);
  });

  it('prerm remove stops every instance; prerm upgrade leaves the daemon running', () => {
    const remove = run({ script: 'prerm', args: ['remove'], systemdRunning: true });
    assert.equal(remove.status, 0, remove.stderr);
    assert.deepEqual(remove.calls, ['deb-systemd-invoke stop vip-manager.service', 'systemctl stop vip-manager@*.service']);
    const upgrade = run({ script: 'prerm', args: ['upgrade', '0.2.0'], systemdRunning: true });
    assert.equal(upgrade.status, 0, upgrade.stderr);
    assert.deepEqual(upgrade.calls, []);
  });

  it('postrm remove masks and reloads; purge clears the helper state', () => {
    const remove = run({ script: 'postrm', args: ['remove'], systemdRunning: true });
    assert.equal(remove.status, 0, remove.stderr);
    assert.deepEqual(remove.calls, ['systemctl --system daemon-reload', 'deb-systemd-helper mask vip-manager.service']);
    assert.equal(remove.config, EDITED.replace(/\\n/g, '\n'), 'remove keeps the configuration');
    const purge = run({ script: 'postrm', args: ['purge'], systemdRunning: false });
    assert.equal(purge.status, 0, purge.stderr);
    assert.deepEqual(purge.calls, ['deb-systemd-helper purge vip-manager.service', 'deb-systemd-helper unmask vip-manager.service']);
    assert.equal(purge.config, null, 'purge removes the configuration');
  });

  it('never fail without systemd (no tools, not running)', () => {
    for (const s of [
      { script: 'postinst', args: ['configure', ''] },
      { script: 'postinst', args: ['configure', '0.0.9'] },
      { script: 'prerm', args: ['remove'] },
      { script: 'postrm', args: ['remove'] },
      { script: 'postrm', args: ['purge'] },
    ] as const) {
      const r = run({ ...s, args: [...s.args], systemdRunning: false, systemdTools: false });
      assert.equal(r.status, 0, `${s.script} ${s.args.join(' ')}: ${r.stderr}`);
      assert.ok(!r.calls.some((c) => /^(systemctl|deb-systemd)/.test(c)), r.calls.join('\n'));
    }
  });
});
