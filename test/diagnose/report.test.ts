// The pure parts of --diagnose: the verdict per VIP (and the exit code it gives), the
// trigger-value against member names, the member prefix beside a leader key, the probe frames
// and what counts as another host's claim, and that secrets never reach the output.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { checkMembers, membersPrefix } from '../../src/diagnose/checks.js';
import { buildArpProbe, buildDadSolicitation, foreignClaim } from '../../src/diagnose/neighbour-probe.js';
import { decideVerdict, exitCode, fact, renderReport, type LeaderFinding, type VerdictInput } from '../../src/diagnose/report.js';
import { buildGratuitousArp, buildUnsolicitedNa, icmpv6Checksum, ARPOP_REPLY, ARPOP_REQUEST } from '../../src/net/frames.js';
import { parseMac } from '../../src/net/links.js';
import { clearSecrets, registerSecrets } from '../../src/ops/redact.js';

const value = (namesThisNode: boolean, display: string | null): LeaderFinding => ({
  kind: 'value', namesThisNode, display, describe: display === null ? '/k does not exist' : `/k = "${display}"`,
});
const base: VerdictInput = { iface: 'eth0', triggerValue: 'n1', leader: value(true, 'n1'), held: true, foreign: [], misspelt: null, cannotTake: null };

describe('diagnose: verdict', () => {
  const cases: Array<[string, Partial<VerdictInput>, string, boolean]> = [
    ['holds', {}, 'held here, as the DCS asks (/k = "n1")', true],
    ['standby', { leader: value(false, 'n2'), held: false }, 'not here, as the DCS asks (/k = "n2", not this node\'s "n1")', true],
    ['no leader', { leader: value(false, null), held: false }, 'not here, as the DCS asks (/k does not exist: no node is leader)', true],
    ['should hold', { held: false }, 'the DCS names this node (/k = "n1") but the VIP is not on eth0', false],
    ['should hold, interface gone', { held: false, cannotTake: 'interface eth0 does not exist' }, 'the DCS names this node (/k = "n1") but the VIP is not on eth0; it cannot be: interface eth0 does not exist', false],
    ['should release', { leader: value(false, 'n2') }, 'the VIP is on eth0 but the DCS names another node (/k = "n2"; trigger-value "n1")', false],
    ['held without a leader', { leader: value(false, null) }, 'the VIP is on eth0 but the DCS names no node (the key does not exist)', false],
    ['conflict', { foreign: [{ mac: '02:00:00:00:00:09', source: 'probe', how: 'ARP reply' }] }, 'another host answers for the VIP (02:00:00:00:00:09) while it is on eth0 as the DCS asks (/k = "n1")', false],
    ['conflict reported by the daemon', { foreign: [{ mac: '02:00:00:00:00:09', source: 'daemon', how: 'reported' }] }, 'another host answers for the VIP (02:00:00:00:00:09) while it is on eth0 as the DCS asks (/k = "n1")', false],
    ['the holder answering while standing by is no conflict', { leader: value(false, 'n2'), held: false, foreign: [{ mac: '02:00:00:00:00:09', source: 'probe', how: 'ARP reply' }] }, 'not here, as the DCS asks (/k = "n2", not this node\'s "n1")', true],
    ['DCS unknown', { leader: { kind: 'unreachable' }, held: false }, 'cannot tell what the DCS asks: no DCS endpoint answered (the VIP is not on eth0)', false],
    ['misspelt', { leader: value(false, 'pg1'), held: false, triggerValue: 'pg-1', misspelt: ' (did you mean pg1?)' }, 'trigger-value "pg-1" names no member the DCS knows (did you mean pg1?)', false],
    ['cannot take', { leader: value(false, 'n2'), held: false, cannotTake: 'interface eth0 is down' }, 'not here, as the DCS asks (/k = "n2"), but this node could not take the VIP over: interface eth0 is down', false],
  ];
  for (const [name, input, text, ok] of cases) {
    test(name, () => {
      const v = decideVerdict({ ...base, ...input });
      assert.equal(v.text, text);
      assert.equal(v.ok, ok);
      assert.equal(v.mark, ok ? 'OK' : 'FAIL');
      assert.equal(exitCode({ vips: [{ label: 'VIP', verdict: v, facts: [] }], shared: [] }), ok ? 0 : 1);
    });
  }

  test('one VIP not as asked makes the exit code 1; WARN facts never do', () => {
    const good = { label: 'a', verdict: decideVerdict(base), facts: [fact('WARN', 'daemon', 'none')] };
    const bad = { label: 'b', verdict: decideVerdict({ ...base, held: false }), facts: [] };
    assert.equal(exitCode({ vips: [good], shared: [fact('WARN', 'capabilities', 'x')] }), 0);
    assert.equal(exitCode({ vips: [good, bad], shared: [] }), 1);
  });
});

describe('diagnose: trigger-value against the members', () => {
  test('the member prefix beside a leader key', () => {
    assert.equal(membersPrefix('/service/pg/leader'), '/service/pg/members/');
    assert.equal(membersPrefix('service/pg/leader'), 'service/pg/members/');
    assert.equal(membersPrefix('leader'), 'members/');
    assert.equal(membersPrefix('/service/pg/leader2'), null);
    assert.equal(membersPrefix('/leader/x'), null);
  });

  test('differing only in case, punctuation or white space: misspelt (FAIL)', () => {
    for (const tv of ['pg-1', 'PG1', 'pg_1', 'pg1 ', 'pg1\n']) {
      const r = checkMembers(tv, '/p/members/', ['pg1', 'pg2'], 'pg2');
      assert.equal(r.misspelt, ' (did you mean pg1?)', JSON.stringify(tv));
      assert.equal(r.fact?.mark, 'FAIL');
    }
    // The leader's value alone is evidence of a misspelling only when it is the same name.
    assert.equal(checkMembers('pg-1', null, null, 'pg1').misspelt, ' (did you mean pg1?)');
  });

  test('merely similar: a WARN with a did-you-mean, no verdict change; another name next to the leader: nothing', () => {
    const r = checkMembers('pg3', '/p/members/', ['pg1', 'pg2'], 'pg1');
    assert.equal(r.misspelt, null);
    assert.deepEqual(r.fact, fact('WARN', 'trigger-value', '"pg3" is no member name the DCS knows (members under /p/members/: pg1, pg2) (did you mean pg1?)'));
    assert.deepEqual(checkMembers('n1', null, null, 'n2'), { misspelt: null, fact: null });
    assert.deepEqual(checkMembers('n1', '/p/members/', [], 'n2'), { misspelt: null, fact: null });
    assert.deepEqual(checkMembers('alpha', '/p/members/', ['pg1'], 'pg1').fact,
      fact('WARN', 'trigger-value', '"alpha" is no member name the DCS knows (members under /p/members/: pg1); is Patroni running on this node under that name?'));
  });
});

describe('diagnose: probe frames', () => {
  const ours = '02:00:00:00:00:01';
  const theirs = '02:00:00:00:00:02';

  test('the ARP probe: broadcast request, sender IP 0.0.0.0, target the VIP', () => {
    const f = buildArpProbe(parseMac(ours), '198.51.100.7');
    assert.equal(f.length, 60);
    assert.equal(f.subarray(0, 6).toString('hex'), 'ffffffffffff');
    assert.equal(f.readUInt16BE(12), 0x0806);
    assert.equal(f.readUInt16BE(14 + 6), ARPOP_REQUEST);
    assert.equal(f.subarray(14 + 14, 14 + 18).toString('hex'), '00000000');
    assert.equal(f.subarray(14 + 24, 14 + 28).toString('hex'), 'c6336407');
  });

  test('the DAD solicitation: source ::, solicited-node group, valid checksum, hop limit 255', () => {
    const f = buildDadSolicitation(parseMac(ours), '2001:db8::12:3456');
    assert.equal(f.subarray(0, 6).toString('hex'), '3333ff123456');
    const ip6 = f.subarray(14);
    assert.equal(ip6[7], 255);
    assert.equal(ip6.subarray(8, 24).toString('hex'), '0'.repeat(32));
    assert.equal(ip6.subarray(24, 40).toString('hex'), 'ff0200000000000000000001ff123456');
    const icmp = ip6.subarray(40, 40 + ip6.readUInt16BE(4));
    assert.equal(icmp[0], 135);
    assert.equal(icmp.length, 24, 'no source link-layer option');
    assert.equal(icmpv6Checksum(ip6.subarray(8, 24), ip6.subarray(24, 40), icmp), 0);
  });

  test('claims: other hosts\' ARP replies, gratuitous ARP and NAs for the VIP; never ours, never other addresses', () => {
    const ip = '198.51.100.7';
    assert.deepEqual(foreignClaim(buildGratuitousArp(ARPOP_REPLY, parseMac(theirs), ip), ip, ours), { mac: theirs, how: 'ARP reply' });
    assert.deepEqual(foreignClaim(buildGratuitousArp(ARPOP_REQUEST, parseMac(theirs), ip), ip, ours), { mac: theirs, how: 'ARP request' });
    assert.equal(foreignClaim(buildGratuitousArp(ARPOP_REPLY, parseMac(ours), ip), ip, ours), null);
    assert.equal(foreignClaim(buildGratuitousArp(ARPOP_REPLY, parseMac(theirs), '198.51.100.8'), ip, ours), null);
    assert.equal(foreignClaim(buildArpProbe(parseMac(theirs), ip), ip, ours), null, 'another host probing is no claim');
    const v6 = '2001:db8::7';
    assert.deepEqual(foreignClaim(buildUnsolicitedNa(parseMac(theirs), v6), v6, ours), { mac: theirs, how: 'neighbour advertisement' });
    assert.equal(foreignClaim(buildUnsolicitedNa(parseMac(ours), v6), v6, ours), null);
    assert.equal(foreignClaim(buildUnsolicitedNa(parseMac(theirs), '2001:db8::8'), v6, ours), null);
  });
});

describe('diagnose: output', () => {
  after(clearSecrets);
  test('verdict first, facts indented, every line scrubbed of secrets', () => {
    registerSecrets('s3cr3t-token');
    const text = renderReport({
      vips: [{ label: 'VIP 198.51.100.7/24 on eth0', verdict: decideVerdict(base), facts: [fact('OK', 'leader key', '/k = "n1"')] }],
      shared: [fact('FAIL', 'consul endpoint https://c:8501', 'acl: Consul said "token s3cr3t-token unknown"')],
    });
    assert.equal(text, [
      'OK   VIP 198.51.100.7/24 on eth0: held here, as the DCS asks (/k = "n1")',
      '  OK   leader key: /k = "n1"',
      '  FAIL consul endpoint https://c:8501: acl: Consul said "token ***** unknown"',
      '',
    ].join('\n'));
  });
});
