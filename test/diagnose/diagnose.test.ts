// `vip-manager --diagnose` against a real etcd, run as a child process inside a test node's
// namespace on a LAN of namespaces (test/daemon/bed.ts): one test per verdict, each asserting
// the exact lines printed and the exit code, and that nothing was changed (the VIP is where it
// was before, the leader key holds what it held).
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { designate, type RoleSpec } from '../../src/dcs/patroni/roles.js';
import { BIN, hasVip } from '../harness/daemon.js';
import { freePort, startEtcd } from '../harness/etcd.js';
import { ConsulStandin } from '../standins/consul.js';
import type { LanHost } from '../harness/netns.js';
import { createBed, ETCD_HOST, KEY, VIP4, VIP6, type Bed } from '../daemon/bed.js';

const V4 = `${VIP4}/24`;
const V6 = `${VIP6}/64`;
const MEMBERS = '/service/test/members/';

interface Run {
  code: number | null;
  out: string[];
  err: string;
}

/** setpriv flags that hand exactly `caps` across the change to user nobody (as harness/daemon.ts). */
function setpriv(caps: readonly string[]): string[] {
  const list = caps.map((c) => `+${c}`).join(',');
  return ['--reuid=nobody', '--regid=nogroup', '--clear-groups', ...(caps.length ? [`--inh-caps=${list}`, `--ambient-caps=${list}`] : ['--inh-caps=-all'])];
}

/** Runs `vip-manager --diagnose` in the host's namespace; resolves when it exits. */
function diagnose(host: LanHost, args: string[], opts: { caps?: readonly string[] } = {}): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VIP_')));
  const argv = [BIN, '--diagnose', ...args];
  const child = opts.caps
    ? host.ns.spawn('setpriv', [...setpriv(opts.caps), process.execPath, ...argv], { env })
    : host.ns.spawn(process.execPath, argv, { env });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString('utf8'); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString('utf8'); });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, out: out.split('\n').filter((l) => l !== ''), err })));
}

function ifindex(host: LanHost): number {
  return (JSON.parse(host.ns.ip('-j', 'link', 'show', 'dev', 'eth0')) as Array<{ ifindex: number }>)[0]!.ifindex;
}

describe('vip-manager --diagnose', { concurrency: false }, () => {
  let bed: Bed;
  let n1: LanHost;
  let n2: LanHost;
  let peer: LanHost;
  let etcdUrl: string;
  /** The flags a node's daemon gets (as bed.start gives them), with trigger-value `name` and `set` overriding. */
  const flags = (name: string, set: Record<string, string> = {}) => Object.entries({
    ip: VIP4, netmask: '24', interface: 'eth0', 'trigger-key': KEY, 'trigger-value': name, 'dcs-endpoints': etcdUrl, ...set,
  }).flatMap(([k, v]) => [`--${k}`, v]);
  /** Lines every run on n1 with the default flags ends with. */
  const tail = () => [
    '  OK   capabilities: CAP_NET_ADMIN and CAP_NET_RAW effective',
    `  OK   etcd endpoint ${etcdUrl}: reachable, answered`,
    '  WARN daemon: none answers on http://127.0.0.1:9466/status (connection refused): nothing keeps this host in step with the DCS',
  ];
  const ifaceLine = (h: LanHost) => `  OK   interface eth0: exists (index ${ifindex(h)}), up, carrier, link-layer address ${h.mac}`;

  before(async () => {
    bed = await createBed();
    [n1, n2] = bed.nodes;
    peer = bed.peer;
    etcdUrl = bed.etcd.clientUrl;
  });
  after(async () => { await bed?.dispose(); });
  afterEach(async () => {
    if (!bed) return;
    await bed.reset();
    await bed.kv.delete().prefix('/service/test/');
  });

  test('the key names this node and the VIP is here: exit 0', async () => {
    await bed.kv.put(KEY).value('n1');
    n1.ns.ip('addr', 'add', V4, 'dev', 'eth0');
    const r = await diagnose(n1, flags('n1'));
    assert.deepEqual(r.out, [
      'OK   VIP 203.0.113.100/24 on eth0: held here, as the DCS asks (/service/test/leader = "n1")',
      '  OK   leader key: /service/test/leader = "n1": names this node (trigger-value "n1")',
      ifaceLine(n1),
      '  OK   address 203.0.113.100/24: on eth0',
      '  OK   ARP for 203.0.113.100: no other host answers (one probe, 1000 ms of listening)',
      ...tail(),
    ], r.err);
    assert.equal(r.code, 0);
    assert.equal(r.err, '');
    assert.ok(hasVip(n1.ns, V4), 'the VIP is still there');
  });

  test('the key names this node but the VIP is not here: exit 1', async () => {
    await bed.kv.put(KEY).value('n1');
    const r = await diagnose(n1, flags('n1'));
    assert.deepEqual(r.out, [
      'FAIL VIP 203.0.113.100/24 on eth0: the DCS names this node (/service/test/leader = "n1") but the VIP is not on eth0',
      '  OK   leader key: /service/test/leader = "n1": names this node (trigger-value "n1")',
      ifaceLine(n1),
      '  FAIL address 203.0.113.100/24: not on eth0',
      '  OK   ARP for 203.0.113.100: no other host answers (one probe, 1000 ms of listening)',
      ...tail(),
    ], r.err);
    assert.equal(r.code, 1);
    assert.equal(hasVip(n1.ns, V4), false, 'diagnose adds nothing');
  });

  test('the key names another node but the VIP is here: exit 1', async () => {
    await bed.kv.put(KEY).value('n2');
    n1.ns.ip('addr', 'add', V4, 'dev', 'eth0');
    const r = await diagnose(n1, flags('n1'));
    assert.deepEqual(r.out, [
      'FAIL VIP 203.0.113.100/24 on eth0: the VIP is on eth0 but the DCS names another node (/service/test/leader = "n2"; trigger-value "n1")',
      '  INFO leader key: /service/test/leader = "n2": names another node, not this one (trigger-value "n1")',
      ifaceLine(n1),
      '  FAIL address 203.0.113.100/24: on eth0',
      '  OK   ARP for 203.0.113.100: no other host answers (one probe, 1000 ms of listening)',
      ...tail(),
    ], r.err);
    assert.equal(r.code, 1);
    assert.ok(hasVip(n1.ns, V4), 'diagnose removes nothing');
    assert.equal((await bed.kv.get(KEY).string()), 'n2', 'the key is untouched');
  });

  test('the key names another node, the VIP is there: exit 0, and its MAC is named', async () => {
    await bed.kv.put(KEY).value('n2');
    n2.ns.ip('addr', 'add', V4, 'dev', 'eth0');
    const r = await diagnose(n1, flags('n1'));
    assert.deepEqual(r.out, [
      'OK   VIP 203.0.113.100/24 on eth0: not here, as the DCS asks (/service/test/leader = "n2", not this node\'s "n1")',
      '  INFO leader key: /service/test/leader = "n2": names another node, not this one (trigger-value "n1")',
      ifaceLine(n1),
      '  OK   address 203.0.113.100/24: not on eth0',
      `  INFO ARP for 203.0.113.100: answered by ${n2.mac} (ARP reply): the node the DCS names, presumably`,
      ...tail(),
    ], r.err);
    assert.equal(r.code, 0);
  });

  test('trigger-value "pg-1" next to the member "pg1": a did-you-mean, exit 1', async () => {
    await bed.kv.put(KEY).value('pg1');
    await bed.kv.put(`${MEMBERS}pg1`).value('{"role":"primary"}');
    await bed.kv.put(`${MEMBERS}pg2`).value('{"role":"replica"}');
    const r = await diagnose(n1, flags('pg-1'));
    assert.deepEqual(r.out, [
      'FAIL VIP 203.0.113.100/24 on eth0: trigger-value "pg-1" names no member the DCS knows (did you mean pg1?)',
      '  INFO leader key: /service/test/leader = "pg1": names another node, not this one (trigger-value "pg-1")',
      '  FAIL trigger-value: "pg-1" is no member name the DCS knows (members under /service/test/members/: pg1, pg2) (did you mean pg1?)',
      ifaceLine(n1),
      '  OK   address 203.0.113.100/24: not on eth0',
      '  WARN ARP for 203.0.113.100: no host answers (one probe, 1000 ms of listening), although the DCS names another node: does it hold the VIP?',
      ...tail(),
    ], r.err);
    assert.equal(r.code, 1);
  });

  test('trigger-value among the members: named as one', async () => {
    await bed.kv.put(KEY).value('pg2');
    await bed.kv.put(`${MEMBERS}pg1`).value('{}');
    await bed.kv.put(`${MEMBERS}pg2`).value('{}');
    const r = await diagnose(n1, flags('pg1'));
    assert.equal(r.out[2], '  OK   trigger-value: "pg1" is a member the DCS knows (members under /service/test/members/: pg1, pg2)', r.out.join('\n'));
  });

  test('only CAP_NET_ADMIN: the missing CAP_NET_RAW is named, the ARP check is not made', async () => {
    await bed.kv.put(KEY).value('n2');
    const r = await diagnose(n1, flags('n1'), { caps: ['net_admin'] });
    assert.deepEqual(r.out, [
      'OK   VIP 203.0.113.100/24 on eth0: not here, as the DCS asks (/service/test/leader = "n2", not this node\'s "n1")',
      '  INFO leader key: /service/test/leader = "n2": names another node, not this one (trigger-value "n1")',
      ifaceLine(n1),
      '  OK   address 203.0.113.100/24: not on eth0',
      '  SKIP ARP for 203.0.113.100: not checked: no CAP_NET_RAW',
      '  WARN capabilities: this process lacks CAP_NET_RAW, which manager-type basic needs for announcing the VIP with gratuitous ARP / unsolicited neighbour advertisements (AF_PACKET); grant it with AmbientCapabilities=CAP_NET_RAW in the systemd unit, or run as root; a daemon run like this would not start',
      ...tail().slice(1),
    ], r.err);
    assert.equal(r.code, 0);
  });

  test('a missing interface is named and fails the verdict', async () => {
    await bed.kv.put(KEY).value('n2');
    const r = await diagnose(n1, flags('n1', { interface: 'eth9' }));
    assert.deepEqual(r.out, [
      'FAIL VIP 203.0.113.100/24 on eth9: not here, as the DCS asks (/service/test/leader = "n2"), but this node could not take the VIP over: interface eth9 does not exist',
      '  INFO leader key: /service/test/leader = "n2": names another node, not this one (trigger-value "n1")',
      '  FAIL interface eth9: does not exist (did you mean eth0?) (interfaces here: lo, eth0)',
      '  OK   address 203.0.113.100/24: not on eth9',
      '  SKIP ARP for 203.0.113.100: not checked: interface eth9 does not exist',
      ...tail(),
    ], r.err);
    assert.equal(r.code, 1);
  });

  test('endpoints: a closed port is named with its reason, the verdict comes from the one that answers', async () => {
    await bed.kv.put(KEY).value('n1');
    n1.ns.ip('addr', 'add', V4, 'dev', 'eth0');
    const closed = `http://${ETCD_HOST}:${await freePort(ETCD_HOST)}`;
    const r = await diagnose(n1, flags('n1', { 'dcs-endpoints': `${closed},${etcdUrl}` }));
    assert.equal(r.out[0], 'OK   VIP 203.0.113.100/24 on eth0: held here, as the DCS asks (/service/test/leader = "n1")');
    const port = closed.split(':').pop();
    assert.deepEqual(r.out.slice(-3, -1), [
      `  FAIL etcd endpoint ${closed}: unavailable: etcd unreachable at ${closed}: connect ECONNREFUSED ${ETCD_HOST}:${port}`,
      `  OK   etcd endpoint ${etcdUrl}: reachable, answered`,
    ], r.out.join('\n'));
    assert.equal(r.code, 0);
  });

  test('endpoints: TLS to a plain etcd is named as a TLS failure; with no endpoint answering, exit 1', async () => {
    await bed.kv.put(KEY).value('n1');
    const tls = etcdUrl.replace('http://', 'https://');
    const r = await diagnose(n1, flags('n1', { 'dcs-endpoints': tls }));
    assert.deepEqual(r.out, [
      'FAIL VIP 203.0.113.100/24 on eth0: cannot tell what the DCS asks: no DCS endpoint answered (the VIP is not on eth0)',
      '  FAIL leader key: not read: no DCS endpoint answered (see the endpoints below)',
      ifaceLine(n1),
      '  INFO address 203.0.113.100/24: not on eth0',
      '  OK   ARP for 203.0.113.100: no other host answers (one probe, 1000 ms of listening)',
      '  OK   capabilities: CAP_NET_ADMIN and CAP_NET_RAW effective',
      r.out[6]!,
      tail()[2],
    ], r.err);
    assert.match(r.out[6]!, new RegExp(`^  FAIL etcd endpoint ${tls.replace(/\./g, '\\.')}: tls: TLS handshake with ${tls.replace(/\./g, '\\.')} failed: the server closed the connection or does not speak TLS \\(.+\\); for a plain etcd write http:// \\(an endpoint without a scheme uses TLS, as in the original\\)$`));
    assert.equal(r.code, 1);
  });

  test('another host answering ARP for the VIP this node holds: a conflict, with its MAC', async () => {
    await bed.kv.put(KEY).value('n1');
    n1.ns.ip('addr', 'add', V4, 'dev', 'eth0');
    peer.ns.ip('addr', 'add', V4, 'dev', 'eth0');
    const r = await diagnose(n1, flags('n1'));
    assert.deepEqual(r.out, [
      `FAIL VIP 203.0.113.100/24 on eth0: another host answers for the VIP (${peer.mac}) while it is on eth0 as the DCS asks (/service/test/leader = "n1")`,
      '  OK   leader key: /service/test/leader = "n1": names this node (trigger-value "n1")',
      ifaceLine(n1),
      '  OK   address 203.0.113.100/24: on eth0',
      `  FAIL ARP for 203.0.113.100: answered by another host: ${peer.mac} (ARP reply)`,
      ...tail(),
    ], r.err);
    assert.equal(r.code, 1);
    // The probe is an ARP probe (sender 0.0.0.0): the answering host learnt nothing about n1.
    assert.ok(!peer.ns.ip('neigh', 'show', 'dev', 'eth0').includes(n1.mac), peer.ns.ip('neigh', 'show', 'dev', 'eth0'));
  });

  test('IPv6: another host answering a neighbour solicitation for the VIP: a conflict, with its MAC', async () => {
    await bed.kv.put(KEY).value('n1');
    n1.ns.ip('addr', 'add', V6, 'dev', 'eth0', 'nodad');
    peer.ns.ip('addr', 'add', V6, 'dev', 'eth0', 'nodad');
    const r = await diagnose(n1, flags('n1', { ip: VIP6, netmask: '64' }));
    assert.deepEqual(r.out.slice(0, 5), [
      `FAIL VIP 2001:db8:1::100/64 on eth0: another host answers for the VIP (${peer.mac}) while it is on eth0 as the DCS asks (/service/test/leader = "n1")`,
      '  OK   leader key: /service/test/leader = "n1": names this node (trigger-value "n1")',
      ifaceLine(n1),
      '  OK   address 2001:db8:1::100/64: on eth0',
      `  FAIL NDP for 2001:db8:1::100: answered by another host: ${peer.mac} (neighbour advertisement)`,
    ], r.out.join('\n'));
    assert.equal(r.code, 1);
  });

  test('a daemon running here is found through its HTTP endpoint', async () => {
    await bed.kv.put(KEY).value('n1');
    await bed.start(1, ['--http-listen', '127.0.0.1:9466']);
    const r = await diagnose(n2, flags('n2'));
    assert.equal(r.out.at(-1), '  OK   daemon: vip-manager 0.1.0 runs here (http://127.0.0.1:9466/status): does not hold the VIP (leader "n1")', r.out.join('\n') + r.err);
    assert.equal(r.code, 0, r.out.join('\n'));
  });

  /** A config file with `vips:` (top-level keys as the daemon's flags give them); `--config` to it. */
  const vipsFile = (trigger: string, entries: string): string[] => {
    const dir = mkdtempSync(join(tmpdir(), 'vmt-diag-vips-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'vip-manager.yml');
    writeFileSync(file, `dcs-type: etcd\ndcs-endpoints: [${etcdUrl}]\ninterface: eth0\nnetmask: 24\ntrigger-value: ${trigger}\nvips:\n${entries}`);
    return ['--config', file];
  };
  const cleanups: Array<() => void> = [];
  afterEach(() => { for (const c of cleanups.splice(0)) c(); });
  const V4B = '203.0.113.101';
  const V4C = '203.0.113.102';
  /** Removes the extra VIPs of the multi-entry tests from every host (bed.reset knows only VIP4/VIP6). */
  const dropExtra = (hosts: LanHost[]) => {
    for (const h of hosts) for (const ip of [V4B, V4C]) if (hasVip(h.ns, `${ip}/24`)) h.ns.ip('addr', 'del', `${ip}/24`, 'dev', 'eth0');
  };

  test('two entries in a vips: file: two reports, each with its own key, address and ARP probe; shared facts once', async () => {
    await bed.kv.put(KEY).value('n1');
    await bed.kv.put('/service/test/billing/leader').value('n2');
    n1.ns.ip('addr', 'add', V4, 'dev', 'eth0');
    n2.ns.ip('addr', 'add', `${V4B}/24`, 'dev', 'eth0');
    try {
      const r = await diagnose(n1, vipsFile('n1', [
        `  - name: primary\n    ip: ${VIP4}\n    trigger-key: ${KEY}\n`,
        `  - name: billing\n    ip: ${V4B}\n    trigger-key: /service/test/billing/leader\n`,
      ].join('')));
      assert.deepEqual(r.out, [
        'OK   VIP primary (203.0.113.100/24 on eth0): held here, as the DCS asks (/service/test/leader = "n1")',
        '  OK   leader key: /service/test/leader = "n1": names this node (trigger-value "n1")',
        ifaceLine(n1),
        '  OK   address 203.0.113.100/24: on eth0',
        '  OK   ARP for 203.0.113.100: no other host answers (one probe, 1000 ms of listening)',
        'OK   VIP billing (203.0.113.101/24 on eth0): not here, as the DCS asks (/service/test/billing/leader = "n2", not this node\'s "n1")',
        '  INFO leader key: /service/test/billing/leader = "n2": names another node, not this one (trigger-value "n1")',
        ifaceLine(n1),
        '  OK   address 203.0.113.101/24: not on eth0',
        `  INFO ARP for 203.0.113.101: answered by ${n2.mac} (ARP reply): the node the DCS names, presumably`,
        ...tail(),
      ], r.err);
      assert.equal(r.code, 0);
      assert.ok(hasVip(n1.ns, V4) && !hasVip(n1.ns, `${V4B}/24`), 'diagnose changes no address');
    } finally {
      dropExtra([n1, n2]);
    }
  });

  // Patroni 3.0.2's keys as captured on the real bed (test/dcs/patroni-roles.test.ts BED_INITIAL):
  // leader db1, synchronous standby db2, db3 16 MiB behind the leader's optime.
  const member = (i: number, role: string, xlog: number, extra = '') =>
    `{"conn_url":"postgres://203.0.113.1${i}:5432/postgres","api_url":"http://203.0.113.1${i}:8008/patroni","state":"running","role":"${role}","version":"3.0.2","xlog_location":${xlog},"timeline":1${extra}}`;
  const patroniKeys = (over: Record<string, string> = {}): Record<string, string> => ({
    leader: 'db1', 'members/db1': member(1, 'master', 67108944), 'members/db2': member(2, 'replica', 67108944),
    'members/db3': member(3, 'replica', 50331648), status: '{"optime":67108944}', sync: '{"leader":"db1","sync_standby":"db2"}', ...over,
  });
  const patroni = async (over: Record<string, string> = {}) => {
    for (const [k, v] of Object.entries(patroniKeys(over))) await bed.kv.put(`/service/test/${k}`).value(v);
  };
  /**
   * The daemon's own words for a designation (dcs/patroni/roles.ts, which owns their wording):
   * the diagnosis must quote them; which member is designated is asserted literally.
   */
  const reason = (over: Record<string, string>, spec: RoleSpec) =>
    designate(new Map(Object.entries(patroniKeys(over)).map(([k, v]) => [k, Buffer.from(v)])), spec).reason;
  const RO: RoleSpec = { role: 'replica', fallback: 'none', maxLag: 1048576 };
  const SYNC: RoleSpec = { role: 'sync-standby', fallback: 'none', maxLag: undefined };
  const roleEntries = [
    `  - name: ro\n    ip: ${VIP4}\n    trigger-key: ${KEY}\n    role: replica\n    max-lag: 1048576\n`,
    `  - name: sync\n    ip: ${V4B}\n    trigger-key: ${KEY}\n    role: sync-standby\n`,
    `  - name: primary\n    ip: ${V4C}\n    trigger-key: ${KEY}\n`,
  ].join('');
  const known = '  OK   trigger-value: "db2" is a member the DCS knows (members under /service/test/members/: db1, db2, db3)';

  test('role VIPs against Patroni\'s keys in etcd: the designated member decides, exactly as a leader key would', async () => {
    await patroni();
    n1.ns.ip('addr', 'add', V4, 'dev', 'eth0');
    n1.ns.ip('addr', 'add', `${V4B}/24`, 'dev', 'eth0');
    try {
      const r = await diagnose(n1, vipsFile('db2', roleEntries));
      assert.deepEqual(r.out, [
        'OK   VIP ro (203.0.113.100/24 on eth0): held here, as the DCS asks (role replica of /service/test/ designates "db2")',
        `  OK   role replica of /service/test/: designates "db2" (${reason({}, RO)}): names this node (trigger-value "db2")`,
        known,
        ifaceLine(n1),
        '  OK   address 203.0.113.100/24: on eth0',
        '  OK   ARP for 203.0.113.100: no other host answers (one probe, 1000 ms of listening)',
        'OK   VIP sync (203.0.113.101/24 on eth0): held here, as the DCS asks (role sync-standby of /service/test/ designates "db2")',
        `  OK   role sync-standby of /service/test/: designates "db2" (${reason({}, SYNC)}): names this node (trigger-value "db2")`,
        known,
        ifaceLine(n1),
        '  OK   address 203.0.113.101/24: on eth0',
        '  OK   ARP for 203.0.113.101: no other host answers (one probe, 1000 ms of listening)',
        'OK   VIP primary (203.0.113.102/24 on eth0): not here, as the DCS asks (/service/test/leader = "db1", not this node\'s "db2")',
        '  INFO leader key: /service/test/leader = "db1": names another node, not this one (trigger-value "db2")',
        known,
        ifaceLine(n1),
        '  OK   address 203.0.113.102/24: not on eth0',
        '  WARN ARP for 203.0.113.102: no host answers (one probe, 1000 ms of listening), although the DCS names another node: does it hold the VIP?',
        ...tail(),
      ], r.err);
      assert.equal(r.code, 0);

      // db2 tagged noloadbalance, db3 too far behind, no synchronous standby: nobody qualifies,
      // so both role VIPs held here are where the DCS asks for none.
      const nobody = { 'members/db2': member(2, 'replica', 67108944, ',"tags":{"noloadbalance":true}'), sync: '{"leader":"db1","sync_standby":null}' };
      await patroni(nobody);
      const none = await diagnose(n1, vipsFile('db2', roleEntries));
      // Both reasons name what disqualified whom (the wording is roles.ts's).
      assert.match(reason(nobody, RO), /db2.*noloadbalance.*db3.*lag 16777296 bytes > max-lag 1048576/);
      assert.match(reason(nobody, SYNC), /db1.*has none/);
      assert.deepEqual(none.out.slice(0, 2), [
        `FAIL VIP ro (203.0.113.100/24 on eth0): the VIP is on eth0 but the DCS names no node (role replica of /service/test/ designates nobody (${reason(nobody, RO)}))`,
        `  INFO role replica of /service/test/: designates nobody (${reason(nobody, RO)})`,
      ], none.out.join('\n'));
      assert.deepEqual(none.out.slice(6, 8), [
        `FAIL VIP sync (203.0.113.101/24 on eth0): the VIP is on eth0 but the DCS names no node (role sync-standby of /service/test/ designates nobody (${reason(nobody, SYNC)}))`,
        `  INFO role sync-standby of /service/test/: designates nobody (${reason(nobody, SYNC)})`,
      ], none.out.join('\n'));
      assert.equal(none.code, 1);
      assert.ok(hasVip(n1.ns, V4) && hasVip(n1.ns, `${V4B}/24`), 'diagnose removes nothing');
    } finally {
      dropExtra([n1]);
    }
  });

  test('a cluster prefix the etcd user may not read: that role entry cannot be judged, a leader entry beside it still is', async () => {
    // The user may read the leader key (a prefix permission on it) but nothing else of the cluster.
    const secured = await startEtcd({ host: ETCD_HOST, auth: { user: 'vip', password: 'pw-4711', prefix: KEY } });
    try {
      const admin = secured.client();
      for (const [k, v] of Object.entries(patroniKeys())) await admin.put(`/service/test/${k}`).value(v);
      const r = await diagnose(n1, ['--dcs-endpoints', secured.clientUrl, '--etcd-user', 'vip', '--etcd-password', 'pw-4711', ...vipsFile('db2', [
        `  - name: ro\n    ip: ${VIP4}\n    trigger-key: ${KEY}\n    role: replica\n`,
        `  - name: primary\n    ip: ${V4C}\n    trigger-key: ${KEY}\n`,
      ].join(''))]);
      const denied = `etcd user "vip" may not read the keys under /service/test/ at ${secured.clientUrl}: permission denied`;
      assert.deepEqual(r.out.slice(0, 2), [
        `FAIL VIP ro (203.0.113.100/24 on eth0): cannot tell what the DCS asks: the keys under /service/test/ cannot be used: ${denied} (the VIP is not on eth0)`,
        `  FAIL role replica of /service/test/: not read: ${denied}`,
      ], r.out.join('\n') + r.err);
      assert.equal(r.out[5], 'OK   VIP primary (203.0.113.102/24 on eth0): not here, as the DCS asks (/service/test/leader = "db1", not this node\'s "db2")', r.out.join('\n'));
      assert.equal(r.out.at(-2), `  OK   etcd endpoint ${secured.clientUrl}: reachable, answered`);
      assert.equal(r.code, 1);
    } finally {
      await secured.dispose();
    }
  });

  test('a cluster prefix larger than the daemon reads (3 MiB): named with its numbers, the entry cannot be judged', async () => {
    await patroni();
    // etcd takes at most 1.5 MiB per request: three values of 1.1 MiB make 3.3 MiB under the prefix.
    const big = 'x'.repeat(1100 * 1024);
    for (const i of [1, 2, 3]) await bed.kv.put(`/service/test/junk/${i}`).value(big);
    const r = await diagnose(n1, vipsFile('db2', `  - name: ro\n    ip: ${VIP4}\n    trigger-key: ${KEY}\n    role: replica\n`));
    assert.match(r.out[1]!, /^ {2}FAIL role replica of \/service\/test\/: not read: etcd prefix \/service\/test\/ holds \d+ bytes of keys and values \(the limit is 3145728\); a Patroni cluster has tens of keys: is the trigger-key \(<namespace>\/<scope>\/leader\) right\?$/, r.out.join('\n') + r.err);
    assert.match(r.out[0]!, /^FAIL VIP ro \(203\.0\.113\.100\/24 on eth0\): cannot tell what the DCS asks: the keys under \/service\/test\/ cannot be used: etcd prefix/);
    assert.equal(r.out.at(-2), `  OK   etcd endpoint ${etcdUrl}: reachable, answered`);
    assert.equal(r.code, 1);
  });

  test('a role VIP over Consul: the cluster prefix read with ?recurse, the same designation', async () => {
    const consul = await ConsulStandin.start({ host: ETCD_HOST });
    try {
      for (const [k, v] of Object.entries(patroniKeys())) consul.put(`service/test/${k}`, v);
      const r = await diagnose(n1, ['--dcs-type', 'consul', '--dcs-endpoints', consul.url, ...vipsFile('db2',
        `  - name: ro\n    ip: ${VIP4}\n    trigger-key: service/test/leader\n    role: replica\n    max-lag: 1048576\n`)]);
      assert.deepEqual(r.out.slice(0, 3), [
        'FAIL VIP ro (203.0.113.100/24 on eth0): the DCS names this node (role replica of service/test/ designates "db2") but the VIP is not on eth0',
        `  OK   role replica of service/test/: designates "db2" (${reason({}, RO)}): names this node (trigger-value "db2")`,
        '  OK   trigger-value: "db2" is a member the DCS knows (members under service/test/members/: db1, db2, db3)',
      ], r.out.join('\n') + r.err);
      assert.equal(r.out.at(-2), `  OK   consul endpoint ${consul.url}: reachable, answered`);
      assert.equal(r.code, 1);
    } finally {
      await consul.close();
    }
  });

  test('a configuration error: exit 78, nothing probed', async () => {
    const r = await diagnose(n1, flags('n1', { netmask: '99' }));
    assert.equal(r.code, 78);
    assert.deepEqual(r.out, []);
    assert.equal(r.err, 'vip-manager: config error: netmask: 99 from flag --netmask is out of range; expected 1-32 for the IPv4 address 203.0.113.100\n');
  });

  test('a client certificate that cannot be used: exit 78, named, nothing probed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmt-diag-'));
    try {
      const [cert, key] = [join(dir, 'client.pem'), join(dir, 'client.key')];
      writeFileSync(cert, 'not a certificate\n');
      writeFileSync(key, 'not a key\n');
      const r = await diagnose(n1, flags('n1', { 'dcs-endpoints': etcdUrl.replace('http://', 'https://'), 'etcd-cert-file': cert, 'etcd-key-file': key }));
      assert.deepEqual(r.out, []);
      assert.match(r.err, /^vip-manager: config error: cannot use etcd-ca-file \/ etcd-cert-file \/ etcd-key-file: .+\n$/);
      assert.equal(r.code, 78);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('etcd with auth: a wrong password is named as an authentication failure, and never printed', async () => {
    const secured = await startEtcd({ host: ETCD_HOST, auth: { user: 'vip', password: 'right-pw-4711' } });
    try {
      const r = await diagnose(n1, flags('n1', { 'dcs-endpoints': secured.clientUrl, 'etcd-user': 'vip', 'etcd-password': 'wrong-pw-0815' }));
      assert.equal(r.out[6], `  FAIL etcd endpoint ${secured.clientUrl}: auth: etcd authentication failed for user "vip" at ${secured.clientUrl}: invalid user name or password (check etcd-user / etcd-password)`, r.out.join('\n'));
      assert.equal(r.out[0], 'FAIL VIP 203.0.113.100/24 on eth0: cannot tell what the DCS asks: no DCS endpoint answered (the VIP is not on eth0)');
      assert.equal(r.code, 1);
      assert.ok(!(r.out.join('\n') + r.err).includes('wrong-pw-0815'), 'the password is never printed');
      const ok = await diagnose(n1, flags('n1', { 'dcs-endpoints': secured.clientUrl, 'etcd-user': 'vip', 'etcd-password': 'right-pw-4711' }));
      assert.equal(ok.out[6], `  OK   etcd endpoint ${secured.clientUrl}: reachable, answered`, ok.out.join('\n'));
      assert.ok(!(ok.out.join('\n') + ok.err).includes('right-pw-4711'));
    } finally {
      await secured.dispose();
    }
  });

  test('Consul: the leader key read with the token; a refused token is named with its fix, and never printed', async () => {
    const consul = await ConsulStandin.start({ host: ETCD_HOST, tokens: { 'good-token-1234': { keyPrefix: { 'service/test/': 'read' } }, 'other-token-5678': { keyPrefix: { 'elsewhere/': 'read' } } } });
    try {
      consul.put('service/test/leader', 'n1');
      n1.ns.ip('addr', 'add', V4, 'dev', 'eth0');
      const consulFlags = (token: string) => flags('n1', { 'dcs-type': 'consul', 'trigger-key': 'service/test/leader', 'dcs-endpoints': consul.url, 'consul-token': token });
      const ok = await diagnose(n1, consulFlags('good-token-1234'));
      assert.deepEqual(ok.out.slice(0, 2), [
        'OK   VIP 203.0.113.100/24 on eth0: held here, as the DCS asks (service/test/leader = "n1")',
        '  OK   leader key: service/test/leader = "n1": names this node (trigger-value "n1")',
      ], ok.out.join('\n'));
      assert.equal(ok.out[6], `  OK   consul endpoint ${consul.url}: reachable, answered`);
      assert.equal(ok.code, 0);
      const refused = await diagnose(n1, consulFlags('other-token-5678'));
      assert.match(refused.out[6]!, new RegExp(`^  FAIL consul endpoint ${consul.url.replace(/\./g, '\\.')}: acl: Consul at ${consul.url.replace(/\./g, '\\.')} refused to read "service/test/leader" \\(403 Permission denied.*\\): the token is valid but may not read "service/test/leader"; grant its policy key:read there`), refused.out.join('\n'));
      assert.equal(refused.code, 1);
      for (const r of [ok, refused]) assert.ok(!(r.out.join('\n') + r.err).match(/good-token-1234|other-token-5678/), 'the token is never printed');
    } finally {
      await consul.close();
    }
  });
});
