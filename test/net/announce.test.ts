// Announcements on a real LAN (three namespaces on a bridge). The VIP starts on host A and a
// peer talks to it, so the peer has a neighbour entry (Linux ignores announcements for
// neighbours it has no entry for); then the VIP moves to host B, which announces through
// src/net/announce.ts. The peer's own neighbour table must switch to B's MAC, and a capture on
// the peer must show the frames with every field as sent, decoded here by byte offset.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLan, type Lan, type LanHost } from '../harness/netns.js';
import { enterNetns, leaveNetns } from '../harness/enter-netns.js';
import { Capture } from './support/capture.js';
import { neighbourMac, waitForNeighbour } from './support/neighbours.js';
import { addAddress, deleteAddress } from '../../src/net/addresses.js';
import { lookupInterface } from '../../src/net/links.js';
import { announce } from '../../src/net/announce.js';

const VIP4 = '203.0.113.100';
const VIP6 = '2001:db8:1::100';
const macHex = (mac: string): string => mac.replaceAll(':', '');
const ipv4Hex = (ip: string): string => Buffer.from(ip.split('.').map(Number)).toString('hex');

/** The checksum check written out independently of src/net/frames.ts (RFC 1071, RFC 8200 §8.1). */
function icmpv6ChecksumVerifies(ip6: Buffer): boolean {
  const plen = ip6.readUInt16BE(4);
  const parts = [ip6.subarray(8, 40), Buffer.from([0, 0, plen >> 8, plen & 0xff, 0, 0, 0, ip6[6]!]), ip6.subarray(40, 40 + plen)];
  let sum = 0;
  for (const p of parts) for (let i = 0; i < p.length; i += 2) sum += (p[i]! << 8) + (p[i + 1] ?? 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum === 0xffff;
}

describe('net/announce on a LAN', () => {
  let lan: Lan;
  let a: LanHost;
  let b: LanHost;
  let peer: LanHost;
  let capture: Capture;

  before(() => {
    lan = createLan(3, ['a', 'b', 'peer']);
    [a, b, peer] = lan.hosts as [LanHost, LanHost, LanHost];
    capture = new Capture(peer.ns, 'eth0');
  });
  after(() => {
    capture?.close();
    leaveNetns();
    lan?.dispose();
  });

  it('moves the peer\'s ARP entry to B with a gratuitous ARP request + reply', async () => {
    a.ns.ip('addr', 'add', `${VIP4}/24`, 'dev', 'eth0');
    peer.ns.exec('ping', ['-c', '1', '-W', '2', VIP4]);
    assert.equal(neighbourMac(peer.ns, 'eth0', VIP4), a.mac, 'peer learnt A as the VIP holder');
    a.ns.ip('addr', 'del', `${VIP4}/24`, 'dev', 'eth0');

    enterNetns(b.ns);
    const eth0 = lookupInterface('eth0');
    addAddress(eth0.index, VIP4, 24);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(neighbourMac(peer.ns, 'eth0', VIP4), a.mac, 'adding the address alone tells the peer nothing');

    const sentAt = performance.now();
    assert.equal(announce({ index: eth0.index, name: 'eth0', mac: eth0.mac! }, VIP4), 2);
    // The move is the behaviour; how soon `ip neigh` shows it is not (a give-up bound only).
    await waitForNeighbour(peer.ns, 'eth0', VIP4, b.mac, 5000);

    const fromB = (): Buffer[] => capture.frames.filter((c) => c.at >= sentAt - 50 && c.frame.subarray(6, 12).toString('hex') === macHex(b.mac) && c.frame.readUInt16BE(12) === 0x0806).map((c) => c.frame);
    await capture.waitFor(() => fromB().length >= 2, 1000, 'two ARP frames from B');
    const [req, rep] = fromB() as [Buffer, Buffer];
    for (const [f, op, tha] of [[req, 1, '000000000000'], [rep, 2, macHex(b.mac)]] as const) {
      assert.equal(f.subarray(0, 6).toString('hex'), 'ffffffffffff', 'Ethernet broadcast');
      assert.equal(f.readUInt16BE(14), 1, 'htype Ethernet');
      assert.equal(f.readUInt16BE(16), 0x0800, 'ptype IPv4');
      assert.deepEqual([f[18], f[19]], [6, 4]);
      assert.equal(f.readUInt16BE(20), op);
      assert.equal(f.subarray(22, 28).toString('hex'), macHex(b.mac), 'sender MAC = B');
      assert.equal(f.subarray(28, 32).toString('hex'), ipv4Hex(VIP4), 'sender IP = VIP');
      assert.equal(f.subarray(32, 38).toString('hex'), tha);
      assert.equal(f.subarray(38, 42).toString('hex'), ipv4Hex(VIP4), 'target IP = VIP');
    }
    deleteAddress(eth0.index, VIP4, 24);
    leaveNetns();
  });

  it('moves the peer\'s IPv6 neighbour entry to B with an unsolicited NA', async () => {
    a.ns.ip('addr', 'add', `${VIP6}/64`, 'dev', 'eth0', 'nodad');
    peer.ns.exec('ping', ['-6', '-c', '1', '-W', '2', VIP6]);
    assert.equal(neighbourMac(peer.ns, 'eth0', VIP6), a.mac, 'peer learnt A as the VIP holder');
    a.ns.ip('addr', 'del', `${VIP6}/64`, 'dev', 'eth0');

    enterNetns(b.ns);
    const eth0 = lookupInterface('eth0');
    addAddress(eth0.index, VIP6, 64);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(neighbourMac(peer.ns, 'eth0', VIP6), a.mac, 'adding the address alone tells the peer nothing');

    const sentAt = performance.now();
    assert.equal(announce({ index: eth0.index, name: 'eth0', mac: eth0.mac! }, VIP6), 1);
    await waitForNeighbour(peer.ns, 'eth0', VIP6, b.mac, 5000);

    const nas = (): Buffer[] => capture.frames
      .filter((c) => c.at >= sentAt - 50 && c.frame.subarray(6, 12).toString('hex') === macHex(b.mac) && c.frame.readUInt16BE(12) === 0x86dd && c.frame[14 + 6] === 58 && c.frame[14 + 40] === 136)
      .map((c) => c.frame);
    await capture.waitFor(() => nas().length >= 1, 1000, 'a neighbour advertisement from B');
    const f = nas()[0]!;
    const ip6 = f.subarray(14);
    const vip6Hex = '20010db8000100000000000000000100';
    assert.equal(f.subarray(0, 6).toString('hex'), '333300000001', 'Ethernet all-nodes');
    assert.equal(ip6[0]! >> 4, 6);
    assert.equal(ip6.readUInt16BE(4), 32, 'payload: NA + one option');
    assert.equal(ip6[7], 255, 'hop limit 255');
    assert.equal(ip6.subarray(8, 24).toString('hex'), vip6Hex, 'source = the VIP');
    assert.equal(ip6.subarray(24, 40).toString('hex'), 'ff020000000000000000000000000001', 'destination ff02::1');
    const icmp = ip6.subarray(40);
    assert.equal(icmp[1], 0, 'code 0');
    const flags = icmp.readUInt32BE(4);
    assert.equal(flags & 0x80000000, 0, 'Router clear');
    assert.equal(flags & 0x40000000, 0, 'Solicited clear');
    assert.notEqual(flags & 0x20000000, 0, 'Override set');
    assert.equal(icmp.subarray(8, 24).toString('hex'), vip6Hex, 'target = the VIP');
    assert.deepEqual([icmp[24], icmp[25]], [2, 1], 'target link-layer address option');
    assert.equal(icmp.subarray(26, 32).toString('hex'), macHex(b.mac));
    assert.ok(icmpv6ChecksumVerifies(ip6), 'ICMPv6 checksum verifies');
    deleteAddress(eth0.index, VIP6, 64);
    leaveNetns();
  });
});
