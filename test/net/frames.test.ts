// Pure tests of the frame builders and of address normalisation, checked against byte offsets
// written out here independently of the builders.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildGratuitousArp, buildUnsolicitedNa, parseAnnouncement, announcementFrames, ARPOP_REQUEST, ARPOP_REPLY } from '../../src/net/frames.js';
import { normaliseIp, parseIp, InvalidAddressError } from '../../src/net/ip.js';

const MAC = Buffer.from([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);

/** RFC 1071 sum over the IPv6 pseudo-header and the ICMPv6 message, written out separately. */
function onesComplementOk(ip6: Buffer): boolean {
  const plen = ip6.readUInt16BE(4);
  const parts = [ip6.subarray(8, 40), Buffer.from([0, 0, plen >> 8, plen & 0xff, 0, 0, 0, 58]), ip6.subarray(40, 40 + plen)];
  let sum = 0;
  for (const p of parts) for (let i = 0; i < p.length; i += 2) sum += (p[i]! << 8) + (p[i + 1] ?? 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum === 0xffff;
}

describe('net/frames', () => {
  it('builds a gratuitous ARP request: broadcast, sender = target = VIP, zero target MAC, padded', () => {
    const f = buildGratuitousArp(ARPOP_REQUEST, MAC, '198.51.100.5');
    assert.equal(f.length, 60);
    assert.equal(f.subarray(0, 6).toString('hex'), 'ffffffffffff');
    assert.equal(f.subarray(6, 12).toString('hex'), '021122334455');
    assert.equal(f.readUInt16BE(12), 0x0806);
    assert.equal(f.subarray(14, 22).toString('hex'), '0001080006040001');
    assert.equal(f.subarray(22, 28).toString('hex'), '021122334455');
    assert.deepEqual([...f.subarray(28, 32)], [198, 51, 100, 5]);
    assert.equal(f.subarray(32, 38).toString('hex'), '000000000000');
    assert.deepEqual([...f.subarray(38, 42)], [198, 51, 100, 5]);
  });

  it('builds a gratuitous ARP reply whose target MAC is the sender (what Linux calls gratuitous)', () => {
    const f = buildGratuitousArp(ARPOP_REPLY, MAC, '198.51.100.5');
    assert.equal(f.readUInt16BE(20), 2);
    assert.equal(f.subarray(32, 38).toString('hex'), '021122334455');
    const p = parseAnnouncement(f);
    assert.deepEqual(p, {
      kind: 'arp', ethDst: 'ff:ff:ff:ff:ff:ff', ethSrc: '02:11:22:33:44:55', op: 2,
      senderMac: '02:11:22:33:44:55', senderIp: '198.51.100.5', targetMac: '02:11:22:33:44:55', targetIp: '198.51.100.5',
    });
  });

  it('builds an unsolicited NA with every field RFC 4861 asks for and a valid checksum', () => {
    const f = buildUnsolicitedNa(MAC, '2001:db8::5');
    assert.equal(f.subarray(0, 6).toString('hex'), '333300000001');
    assert.equal(f.readUInt16BE(12), 0x86dd);
    const ip6 = f.subarray(14);
    assert.equal(ip6[0]! >> 4, 6);
    assert.equal(ip6.readUInt16BE(4), 32);
    assert.equal(ip6[6], 58);
    assert.equal(ip6[7], 255);
    assert.equal(ip6.subarray(8, 24).toString('hex'), '20010db8000000000000000000000005');
    assert.equal(ip6.subarray(24, 40).toString('hex'), 'ff020000000000000000000000000001');
    const icmp = ip6.subarray(40);
    assert.equal(icmp[0], 136);
    assert.equal(icmp[1], 0);
    assert.equal(icmp.readUInt32BE(4), 0x20000000, 'Override only');
    assert.equal(icmp.subarray(8, 24).toString('hex'), '20010db8000000000000000000000005');
    assert.deepEqual([icmp[24], icmp[25]], [2, 1]);
    assert.equal(icmp.subarray(26, 32).toString('hex'), '021122334455');
    assert.ok(onesComplementOk(ip6), 'checksum verifies');
    const corrupt = Buffer.from(f);
    corrupt[14 + 40 + 10]! ^= 1;
    assert.equal(onesComplementOk(corrupt.subarray(14)), false);
    assert.equal((parseAnnouncement(corrupt) as { checksumValid: boolean }).checksumValid, false);
    const p = parseAnnouncement(f);
    assert.ok(p && p.kind === 'na');
    assert.deepEqual(
      { ...p },
      { kind: 'na', ethDst: '33:33:00:00:00:01', ethSrc: '02:11:22:33:44:55', hopLimit: 255, src: '2001:db8::5', dst: 'ff02::1', code: 0, router: false, solicited: false, override: true, target: '2001:db8::5', targetMac: '02:11:22:33:44:55', checksumValid: true },
    );
  });

  it('makes one round per family: ARP request + reply for IPv4, one NA for IPv6', () => {
    assert.deepEqual(announcementFrames(MAC, '198.51.100.5').map((f) => f.readUInt16BE(20)), [1, 2]);
    assert.deepEqual(announcementFrames(MAC, '2001:db8::5').map((f) => f.readUInt16BE(12)), [0x86dd]);
    assert.throws(() => buildGratuitousArp(1, MAC, '2001:db8::5'), /IPv4/);
    assert.throws(() => buildUnsolicitedNa(Buffer.alloc(5), '2001:db8::5'), /6 bytes/);
  });
});

describe('net/ip', () => {
  it('normalises IPv6 text to RFC 5952', () => {
    assert.equal(normaliseIp('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
    assert.equal(normaliseIp('2001:db8:0:1:0:0:0:1'), '2001:db8:0:1::1');
    assert.equal(normaliseIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    assert.equal(normaliseIp('::'), '::');
    assert.equal(normaliseIp('::1'), '::1');
    assert.equal(normaliseIp('fe80::'), 'fe80::');
    assert.equal(normaliseIp('::ffff:198.51.100.1'), '::ffff:c633:6401');
    assert.equal(normaliseIp('2001:db8:1:2:3:4:5:0'), '2001:db8:1:2:3:4:5:0');
    assert.equal(normaliseIp('198.51.100.1'), '198.51.100.1');
    assert.equal(parseIp('2001:db8::1:0:0:1').bytes.toString('hex'), '20010db8000000000001000000000001');
  });

  it('refuses what is not an address', () => {
    for (const bad of ['198.51.100.256', 'fe80::1%eth0', 'eth0', '', '1.2.3', '2001:db8::1::2']) {
      assert.throws(() => parseIp(bad), InvalidAddressError, bad);
    }
  });
});
