// In-place upgrade of Debian's own vip-manager (1.0.2, the Go original) in a stock Debian 12 root,
// set up as a Patroni machine would be: Debian's vip-manager and patroni packages installed (no
// service may start), an instance 15-main configured by /etc/patroni/15-main.vip exactly as
// `pg_createconfig_patroni --vip` writes it, and an administrator's edited
// /etc/default/vip-manager.yml. Then `apt-get install ./….deb` of ours must be an upgrade that
// keeps both files, and the command our vip-manager@.service runs for instance 15-main (its
// ExecStart= with its EnvironmentFile=, as systemd would run it) must accept the .vip's values.
// Both installed units must pass systemd-analyze verify.
// Needs root, debootstrap, a Debian mirror in the host's apt sources, systemd-analyze.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { builtPackage } from '../harness/packages.js';
import { assertRan, openStockRoot, type StockRoot } from '../harness/stock-root.js';
import { execPlan, parseUnitFile, splitWords } from '../harness/systemd-exec.js';

const VIP_FILE = '/etc/patroni/15-main.vip';
const YML = '/etc/default/vip-manager.yml';
const UNIT_DIR = '/lib/systemd/system';
const INSTANCE = 'vip-manager@15-main.service';
/** What `pg_createconfig_patroni --vip=203.0.113.100 15 main` would find on a node named pg1. */
const PATRONI = {
  VERSION: '15',
  CLUSTER: 'main',
  VIP_IP: '203.0.113.100',
  VIP_MASK: '24',
  VIP_IFACE: 'eth0',
  VIP_KEY: '/postgresql-common/15-main/leader',
  HOSTNAME: 'pg1',
  DCS_TYPE: 'etcd',
  DCS_ENDPOINT: 'http://127.0.0.1:2379',
};
/** An administrator's edit of the configuration, distinctive enough to spot any rewrite. */
const EDITED_YML = [
  '# Edited by hand before the upgrade: this file must survive it byte for byte.',
  'ip: 198.51.100.77',
  'netmask: 25',
  'interface: eth0',
  'trigger-key: /service/edited-by-admin/leader',
  'trigger-value: edited-node-7',
  'dcs-endpoints:',
  '  - http://198.51.100.2:2379',
  'retry-num: 7  # trailing comment, odd spacing\t',
  '',
].join('\n');
/** systemd's PATH for services (systemd.exec(5), "Environment variables in spawned processes"). */
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function debField(deb: string, field: string): string {
  const r = spawnSync('dpkg-deb', ['-f', deb, field], { encoding: 'utf8' });
  assert.equal(r.status, 0, `dpkg-deb -f ${deb} ${field}: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * Writes the .vip file with the very commands pg_createconfig_patroni runs for --vip, taken
 * from the installed script, so the file is what Debian's tooling writes, not our idea of it.
 */
async function createVipFileAsPatroniWould(root: StockRoot): Promise<void> {
  const script = root.readFile('/usr/bin/pg_createconfig_patroni').toString('utf8');
  const sed = /^[ \t]*cat \/etc\/patroni\/vip\.in \|[^\n]*\n(?:[^\n]*\\\n)*[^\n]*>> \$VIP_FILE[ \t]*$/m.exec(script)?.[0];
  assert.ok(sed?.includes('@VIP_IP@'), 'cannot find the `cat /etc/patroni/vip.in | sed … >> $VIP_FILE` block in /usr/bin/pg_createconfig_patroni');
  const vars = Object.entries(PATRONI).map(([k, v]) => `${k}='${v}'`).join('\n');
  const shell = `set -e\n${vars}\nVIP_FILE=/etc/patroni/\${VERSION}-\${CLUSTER}.vip\nrm -f $VIP_FILE\ntouch $VIP_FILE\n${sed}\n`;
  assertRan(await root.run(['/bin/sh', '-c', shell]), 'writing /etc/patroni/15-main.vip with pg_createconfig_patroni\'s commands');
}

/** HOME, USER, LOGNAME, SHELL as systemd sets them for User= (from the root's passwd). */
function userEnv(root: StockRoot, user: string): Record<string, string> {
  const entry = root.readFile('/etc/passwd').toString('utf8').split('\n').map((l) => l.split(':')).find((f) => f[0] === user);
  assert.ok(entry, `user ${user} (the unit's User=) does not exist in the root`);
  return { HOME: entry[5]!, USER: user, LOGNAME: user, SHELL: entry[6]! };
}

describe('upgrading Debian\'s vip-manager 1.0.2 with Patroni\'s 15-main instance (stock bookworm root)', () => {
  let root: StockRoot | undefined;
  let deb: string;
  let install: { stdout: string; stderr: string };
  const before_: { yml?: string; vip?: string; debianVersion?: string } = {};

  before(async () => {
    deb = await builtPackage('deb', 'amd64');
    root = await openStockRoot('bookworm');
    assertRan(await root.apt(['update']), 'apt-get update');
    assertRan(await root.apt(['install', '-y', '--no-install-recommends', 'vip-manager', 'patroni']), "apt-get install Debian's vip-manager and patroni");
    before_.debianVersion = assertRan(await root.run(['dpkg-query', '-W', '-f', '${Version}', 'vip-manager']), 'dpkg-query').stdout;
    assert.match(before_.debianVersion, /^1\.0\.2-/, "Debian's vip-manager is not 1.0.2 in this root");

    await createVipFileAsPatroniWould(root);
    before_.vip = sha256(root.readFile(VIP_FILE));
    root.writeFile(YML, EDITED_YML, 0o640);
    before_.yml = sha256(root.readFile(YML));

    const inRoot = `/root/${basename(deb)}`;
    root.copyIn(deb, inRoot);
    // --force-confdef: dpkg asks before replacing a configuration file the administrator wrote;
    // this is the answer it defaults to (keep yours), as an unattended upgrade gives it.
    install = assertRan(await root.apt(['install', '-y', '-o', 'Dpkg::Options::=--force-confdef', inRoot]), `apt-get install -y ./${basename(deb)} over Debian's vip-manager`);
  });
  after(() => root?.close());

  it('the .vip file is what pg_createconfig_patroni writes', () => {
    const text = root!.readFile(VIP_FILE).toString('utf8');
    for (const line of ['VIP_IP="203.0.113.100"', 'VIP_MASK="24"', 'VIP_IFACE="eth0"', 'VIP_KEY="/postgresql-common/15-main/leader"', 'VIP_HOST="pg1"', 'VIP_TYPE="etcd"', 'VIP_ENDPOINT="http://127.0.0.1:2379"']) {
      assert.ok(text.split('\n').includes(line), `${VIP_FILE} lacks ${line}`);
    }
    assert.doesNotMatch(text, /@VIP_\w+@/, 'a placeholder was left unreplaced');
  });

  it('is an upgrade: dpkg reports ours installed at the version in the .deb, above Debian\'s', async () => {
    const ours = debField(deb, 'Version');
    const r = assertRan(await root!.run(['dpkg-query', '-W', '-f', '${Status} ${Version}', 'vip-manager']), 'dpkg-query');
    assert.equal(r.stdout, `install ok installed ${ours}`);
    const gt = await root!.run(['dpkg', '--compare-versions', ours, 'gt', before_.debianVersion!]);
    assert.equal(gt.code, 0, `${ours} does not sort above ${before_.debianVersion}`);
    assert.ok(install.stdout.includes(`Unpacking vip-manager (${ours}) over (${before_.debianVersion})`), `apt did not upgrade in place:\n${install.stdout.slice(-3000)}`);
    assert.doesNotMatch(install.stdout + install.stderr, /downgrad/i);
  });

  it('keeps the edited /etc/default/vip-manager.yml and /etc/patroni/15-main.vip byte for byte', () => {
    assert.equal(sha256(root!.readFile(YML)), before_.yml, `${YML} changed:\n${root!.readFile(YML).toString('utf8')}`);
    assert.equal(root!.readFile(YML).toString('utf8'), EDITED_YML);
    assert.equal(sha256(root!.readFile(VIP_FILE)), before_.vip, `${VIP_FILE} changed`);
  });

  it(`${INSTANCE}: our unit's ExecStart, with its EnvironmentFile, passes --check-config with the .vip's values`, async () => {
    const unitText = root!.readFile(`${UNIT_DIR}/vip-manager@.service`).toString('utf8');
    const plan = execPlan(unitText, INSTANCE, (p) => (root!.exists(p) ? root!.readFile(p).toString('utf8') : null));
    assert.ok(plan.environmentFiles.some((f) => f.path === VIP_FILE), `the template reads no EnvironmentFile=${VIP_FILE} (it reads ${JSON.stringify(plan.environmentFiles)})`);
    const asUser = plan.user ? ['setpriv', `--reuid=${plan.user}`, `--regid=${plan.group ?? plan.user}`, '--init-groups', '--'] : [];
    const env = { PATH: SYSTEMD_PATH, ...(plan.user ? userEnv(root!, plan.user) : {}), ...Object.fromEntries(plan.env) };
    const r = await root!.run([...asUser, ...plan.argv, '--check-config'], { baseEnv: env });
    assert.equal(r.code, 0, `\`${plan.argv.join(' ')} --check-config\` for ${INSTANCE} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    const cfg = parseYaml(r.stdout) as Record<string, unknown>;
    assert.deepEqual(
      { ip: cfg.ip, netmask: cfg.netmask, interface: cfg.interface, 'trigger-key': cfg['trigger-key'], 'trigger-value': cfg['trigger-value'], 'dcs-type': cfg['dcs-type'], 'dcs-endpoints': cfg['dcs-endpoints'] },
      { ip: '203.0.113.100', netmask: 24, interface: 'eth0', 'trigger-key': '/postgresql-common/15-main/leader', 'trigger-value': 'pg1', 'dcs-type': 'etcd', 'dcs-endpoints': ['http://127.0.0.1:2379'] },
      `--check-config printed:\n${r.stdout}`,
    );
  });

  it('both installed units pass systemd-analyze verify', () => {
    // A throw-away root with the installed units, the stock targets they depend on, and an
    // executable at every Exec*= path (verify checks that it exists), as in ops/units.test.ts;
    // each of those commands must exist in the upgraded root itself (ExecReload='s /bin/kill
    // comes with procps, a dependency of the package).
    const hostUnits = '/usr/lib/systemd/system';
    const vroot = mkdtempSync(join(tmpdir(), 'vip-installed-units-'));
    try {
      const units = join(vroot, 'usr/lib/systemd/system');
      mkdirSync(units, { recursive: true });
      const stock = readdirSync(hostUnits).filter((n) => /\.(target|slice)$/.test(n) && statSync(join(hostUnits, n)).isFile());
      assert.ok(stock.includes('sysinit.target'), `${hostUnits} has no sysinit.target: install the systemd package`);
      for (const n of stock) copyFileSync(join(hostUnits, n), join(units, n));
      mkdirSync(join(vroot, 'etc/systemd/system'), { recursive: true });
      for (const name of ['vip-manager.service', 'vip-manager@.service']) {
        const text = root!.readFile(`${UNIT_DIR}/${name}`);
        writeFileSync(join(vroot, 'etc/systemd/system', name), text);
        const service = parseUnitFile(text.toString('utf8')).get('Service') ?? new Map<string, string[]>();
        for (const exec of [...service].filter(([key]) => key.startsWith('Exec')).flatMap(([, values]) => values)) {
          const bin = splitWords(exec)[0]!.replace(/^[-+!:@]*/, '');
          assert.ok(root!.exists(bin), `${name}: ${bin} (${exec}) does not exist in the upgraded root`);
          mkdirSync(join(vroot, dirname(bin)), { recursive: true });
          writeFileSync(join(vroot, bin), '#!/bin/sh\n');
          chmodSync(join(vroot, bin), 0o755);
        }
      }
      const r = spawnSync('systemd-analyze', ['verify', `--root=${vroot}`, '--man=no', '--generators=no', 'vip-manager.service', INSTANCE], { encoding: 'utf8' });
      assert.equal(r.error, undefined, `cannot run systemd-analyze (apt package systemd): ${r.error?.message}`);
      assert.equal(r.stdout + r.stderr, '', 'systemd-analyze printed warnings');
      assert.equal(r.status, 0);
    } finally {
      rmSync(vroot, { recursive: true, force: true });
    }
  });
});
