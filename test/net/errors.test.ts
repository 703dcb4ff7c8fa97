// errno naming and the typed errors' contract (code, errno, capability, transient).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { errnoName } from '../../src/net/libc.js';
import { NetlinkError, SyscallError, InterfaceNotFoundError, NoLinkLayerAddressError } from '../../src/net/errors.js';

describe('net/errors', () => {
  it('names errno values as the kernel sources do', () => {
    assert.equal(errnoName(1), 'EPERM');
    assert.equal(errnoName(11), 'EAGAIN');
    assert.equal(errnoName(17), 'EEXIST');
    assert.equal(errnoName(19), 'ENODEV');
    assert.equal(errnoName(22), 'EINVAL');
    assert.equal(errnoName(35), 'EDEADLK');
    assert.equal(errnoName(95), 'EOPNOTSUPP');
    assert.equal(errnoName(99), 'EADDRNOTAVAIL');
    assert.equal(errnoName(105), 'ENOBUFS');
    assert.equal(errnoName(9999), 'E9999');
  });

  it('carries code, errno, the kernel text and what is missing', () => {
    const e = new NetlinkError('adding 198.51.100.1/24 to interface #2', 1, 'EPERM');
    assert.equal(e.name, 'NetlinkError');
    assert.equal(e.missingCapability, 'CAP_NET_ADMIN');
    assert.match(e.message, /^adding 198\.51\.100\.1\/24 to interface #2 failed with EPERM \(this process lacks CAP_NET_ADMIN/);
    assert.equal(e.transient, false);
    const x = new NetlinkError('op', 17, 'EEXIST', 'ipv4: Address already assigned');
    assert.equal(x.message, 'op failed with EEXIST: ipv4: Address already assigned');
    assert.equal(x.missingCapability, undefined);
    for (const code of ['EBUSY', 'EAGAIN', 'ENOBUFS', 'EINTR']) assert.equal(new NetlinkError('op', 1, code).transient, true, code);
    const s = new SyscallError('socket', 1, 'EPERM', 'announcing', 'CAP_NET_RAW');
    assert.match(s.message, /^announcing: socket\(\) failed with EPERM \(this process lacks CAP_NET_RAW/);
    assert.equal(new InterfaceNotFoundError('eth7').message, 'interface eth7 does not exist');
    assert.match(new NoLinkLayerAddressError('wg0', 65534, 'none').message, /wg0 has no Ethernet link-layer address \(type none\)/);
  });
});
