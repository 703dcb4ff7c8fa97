// The harness that turns a unit file into the command and environment systemd would run
// (test/harness/systemd-exec.ts), checked on the syntax systemd.exec(5) and systemd.service(5)
// document, including Debian's own vip-manager@.service.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execPlan, expandSpecifiers, parseEnvironmentFile, parseUnitName, splitWords, substituteEnv } from '../harness/systemd-exec.js';

describe('EnvironmentFile= syntax', () => {
  it('reads assignments, drops comments and lines without "=", unquotes values', () => {
    const env = parseEnvironmentFile([
      '# The virtual IP address that will be managed',
      '; also a comment',
      'VIP_IP="203.0.113.100"',
      'VIP_MASK=24',
      '  SPACED =   inner  spaces kept   ',
      "SINGLE='a \"b\" $c \\n'",
      'DOUBLE="x \\"y\\" \\$z \\\\ \\q"',
      'CONT=one\\',
      'two',
      'NO_EQUALS_SIGN',
      'EMPTY=',
      '#VIP_ETCD_USER=patroni ',
      '1BAD=not a variable name',
      'VIP_MASK=25',
    ].join('\n'));
    assert.deepEqual(Object.fromEntries(env), {
      VIP_IP: '203.0.113.100',
      VIP_MASK: '25',
      SPACED: 'inner  spaces kept',
      SINGLE: 'a "b" $c \\n',
      DOUBLE: 'x "y" $z \\ \\q',
      CONT: 'onetwo',
      EMPTY: '',
    });
  });

  it('keeps whitespace inside quotes and lets a quoted value span lines', () => {
    const env = parseEnvironmentFile('A="  padded  "\nB=\'line1\nline2\'\n');
    assert.equal(env.get('A'), '  padded  ');
    assert.equal(env.get('B'), 'line1\nline2');
  });
});

describe('unit command lines', () => {
  it('splits words with quotes and escapes', () => {
    assert.deepEqual(splitWords('/usr/bin/vip-manager --config="/etc/a b.yml" \'x y\' c\\ d'), ['/usr/bin/vip-manager', '--config=/etc/a b.yml', 'x y', 'c d']);
  });

  it('expands instance specifiers', () => {
    const u = parseUnitName('vip-manager@15-main.service');
    assert.equal(expandSpecifiers('/etc/patroni/%i.vip', u), '/etc/patroni/15-main.vip');
    assert.equal(expandSpecifiers('%I|%p|%n|%N|100%%', u), '15/main|vip-manager|vip-manager@15-main.service|vip-manager@15-main|100%');
    assert.throws(() => expandSpecifiers('%H', u), /specifier %H/);
  });

  it('substitutes ${VAR} inside a word and splits a lone $VAR', () => {
    const env = new Map([['A', 'one two'], ['B', 'x']]);
    assert.deepEqual(substituteEnv(['--a=${A}', '$A', '$B$$', '${UNSET}'], env), ['--a=one two', 'one', 'two', '$B$', '']);
  });
});

describe('execPlan', () => {
  // Debian's vip-manager 1.0.2 template, verbatim apart from its comments.
  const debianTemplate = '[Unit]\nDescription=Manages Virtual IP for Patroni\nBefore=patroni.service\n\n[Service]\nType=simple\n\nEnvironmentFile=-/etc/patroni/%i.vip\n\nExecStart=/usr/bin/vip-manager\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n';

  it('gives the command and environment of an instance, reading its EnvironmentFile', () => {
    const read: string[] = [];
    const plan = execPlan(debianTemplate, 'vip-manager@15-main.service', (p) => {
      read.push(p);
      return 'VIP_IP="203.0.113.100"\nVIP_IFACE="eth0"\n';
    });
    assert.deepEqual(read, ['/etc/patroni/15-main.vip']);
    assert.deepEqual(plan.argv, ['/usr/bin/vip-manager']);
    assert.deepEqual(Object.fromEntries(plan.env), { VIP_IP: '203.0.113.100', VIP_IFACE: 'eth0' });
    assert.deepEqual(plan.environmentFiles, [{ path: '/etc/patroni/15-main.vip', optional: true }]);
  });

  it('skips a missing optional file, refuses a missing required one, and lets files override Environment=', () => {
    assert.deepEqual([...execPlan(debianTemplate, 'vip-manager@x.service', () => null).env], []);
    const unit = '[Service]\nEnvironment="A=from unit" B=b\nEnvironmentFile=/etc/%i.env\nEnvironmentFile=-/etc/missing\nExecStart=-/usr/bin/x --a=${A} $B\nUser=svc\n';
    const plan = execPlan(unit, 'x@i.service', (p) => (p === '/etc/i.env' ? 'A=from file\n' : null));
    assert.deepEqual(plan.argv, ['/usr/bin/x', '--a=from file', 'b']);
    assert.equal(plan.user, 'svc');
    assert.throws(() => execPlan(unit, 'x@i.service', () => null), /EnvironmentFile=\/etc\/i\.env does not exist/);
  });
});
