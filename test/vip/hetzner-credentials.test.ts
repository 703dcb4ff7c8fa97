// Robot credentials file: the original's format, the variations people write by hand, and the
// refusals (missing file, permissions that let others read the password).
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseRobotCredentials, readRobotCredentials } from '../../src/vip/hetzner/credentials.js';
import { HetznerConfigError } from '../../src/vip/hetzner/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'vip-hetzner-creds-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string, mode = 0o600): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
}

describe('parseRobotCredentials', () => {
  it("reads the original's format", () => {
    const c = parseRobotCredentials('user="myUsername"\npass="myPassword"\n', 'f');
    assert.equal(c.user, 'myUsername');
    assert.equal(c.pass, 'myPassword');
    assert.deepEqual(c.warnings, []);
  });

  it('accepts spaces around =, single quotes, no quotes, comments, blank lines, CRLF and a BOM', () => {
    const text = '\uFEFF# Robot webservice user\r\n\r\n  user = \'#ws+abc\'  # trailing comment\r\n\tpass=p@ss w0rd#with#hashes\r\n';
    const c = parseRobotCredentials(text, 'f');
    assert.equal(c.user, '#ws+abc');
    assert.equal(c.pass, 'p@ss w0rd#with#hashes');
  });

  it('accepts export prefixes, escaped quotes and key aliases; the last duplicate wins with a warning', () => {
    const c = parseRobotCredentials('export user="a"\nusername="b"\npassword="x\\"y\\\\z"\nfoo=1\n', 'f');
    assert.equal(c.user, 'b');
    assert.equal(c.pass, 'x"y\\z');
    assert.equal(c.warnings.length, 2);
    assert.match(c.warnings.join('\n'), /user given twice/);
    assert.match(c.warnings.join('\n'), /unknown key "foo"/);
  });

  it('names what is missing', () => {
    assert.throws(() => parseRobotCredentials('user="a"\n', 'creds'), (e: Error) => e instanceof HetznerConfigError && /creds has no pass/.test(e.message));
    assert.throws(() => parseRobotCredentials('# nothing\n', 'creds'), /no user and no pass/);
    assert.throws(() => parseRobotCredentials('user=""\npass="x"', 'creds'), /no user/);
  });

  it('reports malformed lines by number without echoing them', () => {
    const secret = 'hunter2-secret';
    for (const text of [`user="a"\n${secret}\n`, `user="a"\npass="${secret}\n`, `user="a"\npass="${secret}" junk\n`]) {
      assert.throws(
        () => parseRobotCredentials(text, 'creds'),
        (e: Error) => e instanceof HetznerConfigError && /creds line 2/.test(e.message) && !e.message.includes(secret),
      );
    }
  });
});

describe('readRobotCredentials', () => {
  it('reads a 0600 file', () => {
    const c = readRobotCredentials(file('ok', 'user="u"\npass="p"\n'));
    assert.deepEqual([c.user, c.pass], ['u', 'p']);
  });

  it('refuses a file group or others can read, naming the file and chmod 600', () => {
    for (const mode of [0o640, 0o604, 0o644, 0o660]) {
      const p = file(`loose-${mode.toString(8)}`, 'user="u"\npass="p"\n', mode);
      assert.throws(
        () => readRobotCredentials(p),
        (e: Error) => e instanceof HetznerConfigError && e.message.includes(p) && e.message.includes(`chmod 600 ${p}`) && !e.message.includes('"p"'),
      );
    }
  });

  it('refuses a missing file with a clear error that says how to create it', () => {
    const p = join(dir, 'absent');
    assert.throws(() => readRobotCredentials(p), (e: Error) => e instanceof HetznerConfigError && e.message.includes(`${p} does not exist`) && /user=/.test(e.message));
  });

  it('refuses a symbolic link and a directory', () => {
    const target = file('target', 'user="u"\npass="p"\n');
    const link = join(dir, 'link');
    symlinkSync(target, link);
    assert.throws(() => readRobotCredentials(link), /symbolic link/);
    assert.throws(() => readRobotCredentials(dir), HetznerConfigError);
  });
});
