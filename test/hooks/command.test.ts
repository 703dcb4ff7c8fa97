// The hook keys on their own: how a command string is split (systemd's ExecStart= rules, no
// shell), which commands and files are refused and with what words, how the loader reports
// them (one line naming the key), the hook's environment, and the bounded line splitter.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { commandProblem, hookFileProblem, splitCommand } from '../../src/hooks/command.js';
import { hookEnvironment, LineSplitter } from '../../src/hooks/runner.js';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig } from '../../src/config/load.js';
import { BOUNDS } from '../../src/config/schema.js';

const words = (text: string) => {
  const r = splitCommand(text);
  assert.ok(r.ok, `${text}: ${r.ok ? '' : r.expected}`);
  return r.words;
};
const refused = (text: string) => {
  const r = splitCommand(text);
  assert.ok(!r.ok, `${text} should be refused, got ${JSON.stringify(r.ok && r.words)}`);
  return r.expected;
};

describe('hooks: splitting a command string', () => {
  test('words at whitespace; quotes group; backslash escapes', () => {
    assert.deepEqual(words('/usr/local/bin/notify acquired'), ['/usr/local/bin/notify', 'acquired']);
    assert.deepEqual(words('  /x   a\tb  '), ['/x', 'a', 'b']);
    assert.deepEqual(words(`/x "two words" 'single q' ""`), ['/x', 'two words', 'single q', '']);
    assert.deepEqual(words(`/x a"b c"d 'it''s'`), ['/x', 'ab cd', 'its']);
    assert.deepEqual(words(`/x "say \\"hi\\"" 'no \\escape' back\\ slash`), ['/x', 'say "hi"', 'no \\escape', 'back slash']);
    assert.deepEqual(words(`/x '$HOME' "|" \\;`), ['/x', '$HOME', '|', ';'], 'quoted or escaped, shell characters are plain words');
    assert.deepEqual(words('/x a=b --c=d'), ['/x', 'a=b', '--c=d']);
  });

  test('refused: unterminated quotes, a lone backslash, shell operators, unquoted $', () => {
    assert.match(refused('/x "open'), /double quote is not closed/);
    assert.match(refused("/x 'open"), /single quote is not closed/);
    assert.match(refused('/x a\\'), /lone backslash/);
    for (const op of ['|', '&&', ';', '>', '>>', '<', '&', '2>&1']) assert.match(refused(`/x a ${op} b`), /shell operator .* no shell runs the hook/, op);
    assert.match(refused('/x >'), /shell operator/);
    assert.match(refused('/x $VIP_IP'), /unquoted "\$".*VIP_IP.*environment/);
    assert.match(refused('/x a${B}'), /unquoted "\$"/);
  });

  test('the command: an absolute path first, no NUL, not empty', () => {
    assert.equal(commandProblem(['/bin/true']), undefined);
    assert.match(commandProblem([])!, /absolute path/);
    assert.match(commandProblem(['notify', 'x'])!, /"notify" is not an absolute path.*no PATH lookup/);
    assert.match(commandProblem(['./notify'])!, /not an absolute path/);
    assert.match(commandProblem(['/bin/x', 'a\0b'])!, /NUL/);
  });
});

describe('hooks: the file', () => {
  const base = mkdtempSync(join(tmpdir(), 'vmt-hookfile-'));
  chmodSync(base, 0o755);
  after(() => rmSync(base, { recursive: true, force: true }));
  const me = { uid: process.geteuid!() };
  let n = 0;
  const file = (mode: number, dir = base) => {
    const p = join(dir, `hook${n++}`);
    writeFileSync(p, '#!/bin/sh\nexit 0\n');
    chmodSync(p, mode);
    return p;
  };

  test('an executable regular file of root or the daemon\'s user, writable by no one else, is accepted', () => {
    assert.equal(hookFileProblem(file(0o755), me), undefined);
    assert.equal(hookFileProblem(file(0o700), me), undefined);
    assert.equal(hookFileProblem(file(0o555), me), undefined);
  });

  test('refused: group- or world-writable, not executable, missing, a directory, owned by someone else', () => {
    assert.match(hookFileProblem(file(0o775), me)!, /^is group-writable \(mode 0775\); expected it writable only by its owner \(chmod go-w\)$/);
    assert.match(hookFileProblem(file(0o757), me)!, /^is world-writable \(mode 0757\)/);
    assert.match(hookFileProblem(file(0o644), me)!, /^is not executable/);
    assert.equal(hookFileProblem(join(base, 'nope'), me), 'does not exist');
    assert.match(hookFileProblem(base, me)!, /^is not a regular file/);
    const other = file(0o755);
    chownSync(other, 4242, 4242);
    assert.match(hookFileProblem(other, me)!, /^is owned by uid 4242; expected a file owned by root or by the daemon's user/);
    // The daemon's user may own it, root always may.
    assert.equal(hookFileProblem(other, { uid: 4242 }), undefined);
  });

  test('refused: a directory on its path that others can write (sticky ones allowed); symlinks are followed', () => {
    const open = join(base, 'open');
    mkdirSync(open);
    const inOpen = file(0o755, open);
    chmodSync(open, 0o777);
    assert.match(hookFileProblem(inOpen, me)!, /^sits in .*\/open, which is world-writable \(mode 0777\): others could replace the hook/);
    chmodSync(open, 0o1777);
    assert.equal(hookFileProblem(inOpen, me), undefined, 'sticky: others cannot rename or delete it');
    chmodSync(open, 0o775);
    assert.match(hookFileProblem(inOpen, me)!, /group-writable \(mode 0775\)/);
    chmodSync(open, 0o755);
    const link = join(base, 'link');
    symlinkSync(file(0o777), link);
    assert.match(hookFileProblem(link, me)!, /world-writable/, 'the target is checked, not the link');
  });

  test('the loader: exit-78 problems name the key, one line each; a list takes words as given', () => {
    const ok = file(0o755);
    const loaded = loadConfig(['--ip', '198.51.100.10', '--netmask', '24', '--interface', 'eth0', '--trigger-key', '/k', '--on-acquire', `${ok} "a b" c`],
      { env: { VIP_ON_RELEASE: `${ok} released`, VIP_HOOK_TIMEOUT: '2500' }, hostname: 'h' });
    assert.deepEqual(loaded.config['on-acquire'], [ok, 'a b', 'c']);
    assert.deepEqual(loaded.config['on-release'], [ok, 'released']);
    assert.equal(loaded.config['hook-timeout'], 2500);
    const dflt = loadConfig(['--ip', '198.51.100.10', '--netmask', '24', '--interface', 'eth0', '--trigger-key', '/k'], { env: {}, hostname: 'h' });
    assert.equal(dflt.config['hook-timeout'], 10_000);
    assert.equal(dflt.config['on-acquire'], undefined);

    const yml = join(base, 'c.yml');
    writeFileSync(yml, `ip: 198.51.100.10\nnetmask: 24\ninterface: eth0\ntrigger-key: /k\non-acquire: [${ok}, 010, "x y", 1.10]\n`);
    assert.deepEqual(loadConfig(['--config', yml], { env: {}, hostname: 'h' }).config['on-acquire'], [ok, '010', 'x y', '1.10']);

    const bad = file(0o775);
    const problems = (argv: string[], env: Record<string, string> = {}) => {
      try {
        loadConfig(['--ip', '198.51.100.10', '--netmask', '24', '--interface', 'eth0', '--trigger-key', '/k', ...argv], { env, hostname: 'h' });
      } catch (e) {
        assert.ok(e instanceof ConfigError);
        return e.problems;
      }
      assert.fail('expected a ConfigError');
    };
    assert.deepEqual(problems(['--on-acquire', bad]), [`on-acquire: ${JSON.stringify(bad)} from flag --on-acquire is group-writable (mode 0775); expected it writable only by its owner (chmod go-w)`]);
    assert.match(problems([], { VIP_ON_RELEASE: 'notify x' })[0]!, /^on-release: \["notify","x"\] from env VIP_ON_RELEASE is not valid; the first word "notify" is not an absolute path/);
    assert.match(problems(['--on-acquire', `${ok} | logger`])[0]!, /^on-acquire: .* from flag --on-acquire is not valid; found the shell operator "\|"/);
    assert.match(problems(['--on-acquire', ''])[0]!, /^on-acquire: .*absolute path/);
    assert.match(problems(['--hook-timeout', '99'])[0]!, new RegExp(`^hook-timeout: 99 from flag --hook-timeout is not valid; expected a whole number of milliseconds, ${BOUNDS['hook-timeout'].min}-${BOUNDS['hook-timeout'].max} \\(10 minutes\\)$`));
    assert.match(problems(['--hook-timeout', '600001'])[0]!, /^hook-timeout: 600001 /);
  });
});

describe('hooks: environment and output lines', () => {
  test('the environment is an allow-list plus the event; nothing else from the daemon passes', () => {
    const parent = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', HOME: '/root', VIP_ETCD_PASSWORD: 'pw', VIP_HCLOUD_TOKEN: 'tok', NOTIFY_SOCKET: '/run/x', LD_PRELOAD: '/evil.so' };
    assert.deepEqual(hookEnvironment({ event: 'acquire', name: '198.51.100.10', ip: '198.51.100.10', cause: 'key-ours', value: 'pg1' }, parent), {
      PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', VIP_EVENT: 'acquire', VIP_NAME: '198.51.100.10', VIP_IP: '198.51.100.10', VIP_CAUSE: 'key-ours', VIP_VALUE: 'pg1',
    });
    const bare = hookEnvironment({ event: 'release', name: 'n', ip: '2001:db8::1', cause: 'key-absent', value: null }, {});
    assert.equal(bare.VIP_VALUE, '', 'an absent key is an empty value');
    assert.match(bare.PATH!, /^\/usr\/local\/sbin:/);
    assert.ok(!('LANG' in bare));
    const long = hookEnvironment({ event: 'release', name: 'n', ip: 'i', cause: 'c', value: 'x'.repeat(10_000) }, {}).VIP_VALUE!;
    assert.ok(long.length <= 200 && /\(10000 bytes, sha256 [0-9a-f]{12}\)$/.test(long), long);
    assert.equal(hookEnvironment({ event: 'release', name: 'n', ip: 'i', cause: 'c', value: 'a\0b' }, {}).VIP_VALUE, 'a\uFFFDb');
  });

  test('lines are split across chunks, bounded in length and count; control characters neutralised', () => {
    const got: Array<[string, boolean]> = [];
    const s = new LineSplitter((l, t) => got.push([l, t]), 10, 4);
    s.write(Buffer.from('ab'));
    s.write(Buffer.from('c\nde\r\n\x1b[31mx'));
    s.write(Buffer.from('0123456789ABCDEF'));
    s.write(Buffer.from('GHI\nnext\nmore\n'));
    s.end();
    assert.deepEqual(got, [['abc', false], ['de', false], ['\uFFFD[31mx0123', true], ['next', false]]);
    assert.equal(s.dropped, 1);
    const utf = new LineSplitter((l) => got.push([l, false]));
    const euro = Buffer.from('€\n');
    utf.write(euro.subarray(0, 1));
    utf.write(euro.subarray(1));
    utf.write(Buffer.from('tail'));
    utf.end();
    assert.deepEqual(got.slice(-2), [['€', false], ['tail', false]]);
  });
});
