// The rtnetlink address layer against a real kernel: a host namespace with eth0 on a bridge
// (test/harness/netns.ts). `ip -j addr` is the independent observer.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLan, type Lan, type LanHost } from '../harness/netns.js';
import { enterNetns, leaveNetns } from '../harness/enter-netns.js';
import { addAddress, deleteAddress, hasAddress, listAddresses, primaryIPv4, IFA_F_TENTATIVE } from '../../src/net/addresses.js';
import { lookupInterface, findInterface, ARPHRD_LOOPBACK, ARPHRD_ETHER } from '../../src/net/links.js';
import { InterfaceNotFoundError, NetlinkError } from '../../src/net/errors.js';

function netlinkError(code: string, extAck?: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof NetlinkError, `expected a NetlinkError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.ok(e.errno > 0);
    if (extAck) {
      assert.match(e.extAck ?? '', extAck);
      assert.ok(e.message.includes(e.extAck!), 'the message carries the kernel text');
    }
    return true;
  };
}

describe('net/addresses', () => {
  let lan: Lan;
  let host: LanHost;
  let ifindex: number;

  before(() => {
    lan = createLan(1);
    host = lan.hosts[0]!;
    enterNetns(host.ns);
    ifindex = lookupInterface('eth0').index;
  });
  after(() => {
    leaveNetns();
    lan?.dispose();
  });

  it('looks up interfaces: index, MAC, type, flags; loopback has no MAC; a missing name throws', () => {
    const eth = lookupInterface('eth0');
    assert.equal(eth.name, 'eth0');
    assert.equal(eth.mac, host.mac);
    assert.equal(eth.hwType, ARPHRD_ETHER);
    assert.equal(eth.up, true);
    const lo = lookupInterface('lo');
    assert.equal(lo.index, 1);
    assert.equal(lo.mac, null);
    assert.equal(lo.hwType, ARPHRD_LOOPBACK);
    assert.equal(findInterface('nosuch0'), null);
    assert.throws(() => lookupInterface('nosuch0'), (e: unknown) => e instanceof InterfaceNotFoundError && e.code === 'ENODEV' && /nosuch0 does not exist/.test(e.message));
  });

  it('adds, lists and deletes an IPv4 address', () => {
    addAddress(ifindex, '198.51.100.7', 24);
    assert.ok(host.ns.addresses('eth0').includes('198.51.100.7/24'), 'ip sees it');
    const listed = listAddresses(ifindex).find((a) => a.address === '198.51.100.7');
    assert.deepEqual(listed && { p: listed.prefixLen, f: listed.family, i: listed.ifindex }, { p: 24, f: 4, i: ifindex });
    assert.equal(hasAddress(ifindex, '198.51.100.7', 24), true);
    deleteAddress(ifindex, '198.51.100.7', 24);
    assert.ok(!host.ns.addresses('eth0').includes('198.51.100.7/24'), 'ip no longer sees it');
    assert.equal(hasAddress(ifindex, '198.51.100.7', 24), false);
  });

  it('adds an IPv6 address usable at once (NODAD) and compares textual forms by value', () => {
    addAddress(ifindex, '2001:DB8:0:0::0:77', 64);
    const ip = JSON.parse(host.ns.ip('-j', 'addr', 'show', 'dev', 'eth0')) as Array<{ addr_info: Array<{ local: string; prefixlen: number; tentative?: boolean; nodad?: boolean }> }>;
    const entry = ip[0]!.addr_info.find((a) => a.local === '2001:db8::77');
    assert.ok(entry, 'ip sees 2001:db8::77');
    assert.equal(entry.prefixlen, 64);
    assert.notEqual(entry.tentative, true, 'not tentative');
    assert.equal(entry.nodad, true);
    const listed = listAddresses(ifindex, 6).find((a) => a.address === '2001:db8::77');
    assert.ok(listed, 'listed in canonical form');
    assert.equal(listed.flags & IFA_F_TENTATIVE, 0);
    assert.equal(hasAddress(ifindex, '2001:0db8:0000:0000:0000:0000:0000:0077', 64), true);
    assert.equal(hasAddress(ifindex, '2001:db8::77', 128), false);
    deleteAddress(ifindex, '2001:db8:0::77', 64);
    assert.equal(hasAddress(ifindex, '2001:db8::77', 64), false);
    assert.ok(!host.ns.addresses('eth0').some((a) => a.startsWith('2001:db8::77/')));
  });

  it('lists only the requested interface and family', () => {
    const lo = listAddresses(1);
    assert.ok(lo.every((a) => a.ifindex === 1));
    assert.ok(lo.some((a) => a.address === '127.0.0.1' && a.prefixLen === 8));
    assert.ok(listAddresses(ifindex, 4).every((a) => a.family === 4 && a.ifindex === ifindex));
    const all = listAddresses();
    assert.ok(all.some((a) => a.ifindex === 1) && all.some((a) => a.ifindex === ifindex));
  });

  it('finds the primary IPv4 address, not a secondary one added later', () => {
    addAddress(ifindex, '203.0.113.99', 24);
    try {
      assert.equal(listAddresses(ifindex, 4).find((a) => a.address === '203.0.113.99')?.secondary, true);
      assert.equal(primaryIPv4(ifindex), host.ipv4);
      assert.equal(primaryIPv4(1), null, 'loopback has only host scope');
    } finally {
      deleteAddress(ifindex, '203.0.113.99', 24);
    }
  });

  it('matches exactly: neither a longer address nor another prefix length counts', () => {
    // eth0 holds 203.0.113.11/24 (from the harness).
    assert.equal(hasAddress(ifindex, '203.0.113.11', 24), true);
    assert.equal(hasAddress(ifindex, '203.0.113.1', 24), false);
    assert.equal(hasAddress(ifindex, '203.0.113.11', 32), false);
    addAddress(ifindex, '198.51.100.110', 24);
    try {
      assert.equal(hasAddress(ifindex, '198.51.100.1', 24), false, '198.51.100.1 is a prefix of 198.51.100.110 as text');
      assert.equal(hasAddress(ifindex, '198.51.100.11', 24), false);
      assert.equal(hasAddress(ifindex, '2001:db8:1::1', 64), false, '2001:db8:1::11 is there, ::1 is not');
      assert.equal(hasAddress(ifindex, '2001:db8:1::11', 64), true);
    } finally {
      deleteAddress(ifindex, '198.51.100.110', 24);
    }
  });

  it('reports EEXIST with the kernel text on a double add (IPv4 and IPv6)', () => {
    addAddress(ifindex, '198.51.100.8', 24);
    addAddress(ifindex, '2001:db8::8', 64);
    try {
      assert.throws(() => addAddress(ifindex, '198.51.100.8', 24), netlinkError('EEXIST', /already assigned/i));
      assert.throws(() => addAddress(ifindex, '2001:db8::8', 64), netlinkError('EEXIST', /already assigned/i));
    } finally {
      deleteAddress(ifindex, '198.51.100.8', 24);
      deleteAddress(ifindex, '2001:db8::8', 64);
    }
  });

  it('reports EADDRNOTAVAIL on deleting a missing address, including a wrong prefix length', () => {
    assert.throws(() => deleteAddress(ifindex, '198.51.100.9', 24), netlinkError('EADDRNOTAVAIL', /not found/i));
    assert.throws(() => deleteAddress(ifindex, '203.0.113.11', 25), netlinkError('EADDRNOTAVAIL'));
    assert.throws(() => deleteAddress(ifindex, '2001:db8::9', 64), netlinkError('EADDRNOTAVAIL', /not found/i));
    assert.ok(host.ns.addresses('eth0').includes('203.0.113.11/24'), 'the /24 survived the /25 delete');
  });

  it('reports ENODEV for an interface index that does not exist', () => {
    assert.throws(() => addAddress(99999, '198.51.100.10', 24), netlinkError('ENODEV', /device not found/i));
    assert.throws(() => addAddress(99999, '2001:db8::10', 64), netlinkError('ENODEV', /interface/i));
  });

  it('reports EINVAL for a bad prefix length, from the kernel or before encoding', () => {
    assert.throws(() => addAddress(ifindex, '198.51.100.10', 33), netlinkError('EINVAL', /invalid prefix length/i));
    assert.throws(() => addAddress(ifindex, '2001:db8::10', 129), netlinkError('EINVAL', /invalid prefix length/i));
    assert.throws(() => addAddress(ifindex, '198.51.100.10', 300), netlinkError('EINVAL', /out of range/));
    assert.equal(hasAddress(ifindex, '198.51.100.10', 33), false);
  });
});
