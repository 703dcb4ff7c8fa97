// The leader value's two faces: bytes decide whether the key names this node, a bounded text is
// what logs and /status show. And the secret registry every outgoing string passes through.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DISPLAY_CHARS, DISPLAY_MAX_CHARS, displayText, displayValue, leaderValue, sameBytes } from '../../src/dcs/leader-value.js';
import { namesThisNode } from '../../src/reconcile/decide.js';
import { clearSecrets, MASK, registerBasicAuth, registerConfigSecrets, registerSecrets, safeText, scrubLogLine, scrubSecrets, toSafeJson } from '../../src/ops/redact.js';
import type { Config } from '../../src/config/schema.js';

const b = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

test('invalid UTF-8 never compares equal: node\\xfe1 is not the trigger-value "node\\ufffd1" nor node\\xff1', () => {
  const trigger = 'node\ufffd1';
  for (const bytes of [b('node', [0xfe], '1'), b('node', [0xff], '1'), b('node', [0xef, 0xbf], '1')]) {
    assert.equal(bytes.toString('utf8'), trigger, 'the old decode-then-compare would have matched');
    assert.equal(namesThisNode(leaderValue(bytes, '1', 0, null), trigger), false, bytes.toString('hex'));
  }
  assert.equal(namesThisNode(leaderValue(b(trigger), '1', 0, null), trigger), true, 'the exact UTF-8 bytes match');
  // A trigger-value with a lone surrogate (the config refuses one) matches nothing, not U+FFFD.
  assert.equal(namesThisNode(leaderValue(b('node\ufffd1'), '1', 0, null), 'node\ud8001'), false);
});

test('near-equal values are not this node: changed byte, trailing NUL/space/newline, other normalisation, BOM', () => {
  const trigger = 'nœud-é1';
  const exact = b(trigger);
  const near = [
    b(trigger, [0]), b(trigger, ' '), b(trigger, '\n'), b(' ', trigger), b([0xef, 0xbb, 0xbf], trigger),
    b(trigger.normalize('NFD')), b(trigger.toUpperCase()), Buffer.from(exact.map((x, i) => (i === 0 ? x ^ 1 : x))), b(''),
  ];
  for (const v of near) assert.equal(namesThisNode(leaderValue(v, '1', 0, null), trigger), false, v.toString('hex'));
  assert.equal(namesThisNode(leaderValue(exact, '1', 0, null), trigger), true);
  assert.equal(namesThisNode(leaderValue(null, '1', 0, null), trigger), false, 'absent key');
  // Text-only views (Patroni's status code, fakes) still compare their text.
  assert.equal(namesThisNode({ kind: 'value', value: '200', revision: '200', at: 0, leaseDeadline: null }, '200'), true);
});

test('displayValue: short valid text as is; long, huge or invalid summarised with length and hash', () => {
  assert.equal(displayValue(b('node1')), 'node1');
  assert.equal(displayValue(b('')), '');
  const exactly = 'é'.repeat(DISPLAY_CHARS);
  assert.equal(displayValue(b(exactly)), exactly, 'the limit counts characters, not bytes');
  const huge = Buffer.alloc(1_048_576, 'x');
  const shown = displayValue(huge);
  assert.ok(shown.length <= DISPLAY_MAX_CHARS, shown);
  assert.match(shown, /^x{64}… \(1048576 bytes, sha256 [0-9a-f]{12}\)$/);
  const other = Buffer.from(huge);
  other[500_000] = 0x79;
  assert.notEqual(displayValue(other), shown, 'two long values with the same beginning are told apart');
  assert.match(displayValue(b('node', [0xfe], '1')), /^node\ufffd1 \(6 bytes, not valid UTF-8, sha256 [0-9a-f]{12}\)$/);
  assert.notEqual(displayValue(b('node', [0xfe], '1')), displayValue(b('node', [0xff], '1')));
  // A huge run of invalid bytes or 4-byte characters stays bounded too.
  assert.ok(displayValue(Buffer.alloc(1_000_000, 0xff)).length < 130);
  assert.ok(displayValue(b('😀'.repeat(100_000))).length <= DISPLAY_MAX_CHARS);
  assert.equal(displayText(displayValue(b('😀'.repeat(100_000)))), displayValue(b('😀'.repeat(100_000))));
  assert.equal(displayText('n1'), 'n1');
  assert.ok(displayText('y'.repeat(120_000)).length <= DISPLAY_MAX_CHARS);
  const summary = displayValue(Buffer.alloc(5000, 0xfe));
  assert.ok(summary.length <= DISPLAY_MAX_CHARS, summary);
  assert.equal(displayText(summary), summary, 'a summary is never summarised again');
  assert.equal(sameBytes(b('a'), b('a')), true);
  assert.equal(sameBytes(b('a'), null), false);
  assert.equal(sameBytes(null, undefined), true);
});

test('scrubSecrets: every registered secret in every spelling, in any text; safeText cuts after scrubbing', () => {
  clearSecrets();
  try {
    const token = 'tok-3f9a"\\x';
    registerSecrets(token, undefined, '');
    registerBasicAuth('patroni', 'S3cret!');
    const echoed = `{"X-Consul-Token":["${JSON.stringify(token).slice(1, -1)}"],"raw":"${token}","q":"${encodeURIComponent(token)}",`
      + `"Authorization":"Basic ${Buffer.from('patroni:S3cret!').toString('base64')}","pw":"S3cret!"}`;
    const clean = scrubSecrets(echoed);
    for (const s of [token, 'S3cret!', Buffer.from('patroni:S3cret!').toString('base64'), encodeURIComponent(token)]) {
      assert.equal(clean.includes(s), false, `${s} in ${clean}`);
    }
    assert.equal(clean, `{"X-Consul-Token":["${MASK}"],"raw":"${MASK}","q":"${MASK}","Authorization":"Basic ${MASK}","pw":"${MASK}"}`);
    // A cut never leaves half a secret: the secret straddles the cut point here.
    const long = `${'a'.repeat(995)}${token}${'b'.repeat(5000)}`;
    const cut = safeText(long, 1000);
    assert.equal(cut.includes(token.slice(0, 5)), false, cut.slice(980, 1010));
    assert.match(cut, /… \(\d+ characters in all\)$/);
    assert.ok(cut.length < 1100);

    clearSecrets();
    registerConfigSecrets({
      'etcd-password': 'etcd-pw-1', 'consul-token': 'consul-tok-2', 'hcloud-token': undefined,
      'dcs-endpoints': ['http://patroni:p%40ss@127.0.0.1:2379', 'http://127.0.0.1:2380', 'not a url'],
    } as unknown as Config);
    const text = 'etcd-pw-1 consul-tok-2 p%40ss p@ss ' + Buffer.from('patroni:p@ss').toString('base64');
    assert.equal(scrubSecrets(text), [MASK, MASK, MASK, MASK, MASK].join(' '));
  } finally {
    clearSecrets();
  }
});

test('log lines and JSON documents stay valid JSON while a secret is scrubbed, even one like "24"', () => {
  clearSecrets();
  try {
    registerSecrets('24', 'tok"en');
    const line = JSON.stringify({ level: 40, netmask: 24, err: 'echo: 24 and tok"en', msg: 'x' }) + '\n';
    const out = scrubLogLine(line);
    assert.ok(out.endsWith('\n'));
    assert.deepEqual(JSON.parse(out), { level: 40, netmask: 24, err: `echo: ${MASK} and ${MASK}`, msg: 'x' });
    assert.equal(scrubLogLine('{"msg":"nothing here"}\n'), '{"msg":"nothing here"}\n');
    assert.deepEqual(JSON.parse(toSafeJson({ netmask: 24, lastError: 'got tok"en' }, 2)), { netmask: 24, lastError: `got ${MASK}` });
  } finally {
    clearSecrets();
  }
});
