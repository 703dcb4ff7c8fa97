// The manual page vip-manager(1) (src/ops/man-page.ts): man-db renders it without a single groff
// warning, and it documents every key of the configuration schema (flag, environment variable,
// help text, default) and every command-line-only option with the words --help prints.
// Needs man and groff (Debian: man-db, groff-base).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildCommand } from '../../src/config/flags.js';
import { CLI_ONLY, KEYS, envName } from '../../src/config/schema.js';
import { renderManPage } from '../../src/ops/man-page.js';

const WIDTH = 80;

/** `man -l` on a roff file: the rendered text and groff's complaints (-ww: every warning groff has). */
function man(file: string): { text: string; warnings: string } {
  const r = spawnSync('man', ['--warnings=w', '-l', file], {
    encoding: 'utf8',
    timeout: 60_000,
    // Plain text of a fixed width, whatever the terminal and locale of the test run.
    env: { ...process.env, MANWIDTH: String(WIDTH), MANPAGER: 'cat', PAGER: 'cat', MAN_KEEP_FORMATTING: '', LC_ALL: 'C.UTF-8' },
  });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    assert.fail('man not found: install Debian\'s man-db and groff-base packages (scripts/setup.sh does)');
  }
  assert.equal(r.error, undefined, `man -l: ${r.error?.message}`);
  assert.equal(r.status, 0, `man -l exited ${r.status}: ${r.stderr}`);
  return { text: r.stdout, warnings: r.stderr };
}

/** Rendered text as words: groff's typographic hyphens, minus signs and quotes as ASCII. */
function flat(text: string): string {
  return text.replace(/[\u2010\u2212]/g, '-').replace(/[\u2018\u2019]/g, "'").replace(/[\u201c\u201d]/g, '"').replace(/\s+/g, ' ');
}

describe('man page vip-manager(1)', () => {
  let dir: string;
  let rendered: { text: string; warnings: string };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vip-man-'));
    const file = join(dir, 'vip-manager.1');
    writeFileSync(file, renderManPage({ version: '9.8.7', date: '2001-02-03' }));
    rendered = man(file);
  });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('renders with man -l without a warning, within the page width', () => {
    assert.equal(rendered.warnings, '', 'groff/man warnings');
    assert.match(rendered.text, /^VIP-MANAGER\(1\) +User Commands +VIP-MANAGER\(1\)$/m);
    assert.match(rendered.text, /^vip-manager 9\.8\.7 +2001-02-03 +VIP-MANAGER\(1\)$/m);
    for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'CONFIGURATION KEYS', 'ENVIRONMENT', 'FILES', 'EXIT STATUS', 'SEE ALSO']) {
      assert.match(rendered.text, new RegExp(`^${section}$`, 'm'), `section ${section}`);
    }
    const long = rendered.text.split('\n').filter((l) => [...l].length > WIDTH);
    assert.deepEqual(long, [], 'lines wider than the page');
  });

  it('documents every schema key: flag, YAML key, environment variable, help text and default', () => {
    const text = flat(rendered.text);
    for (const k of KEYS) {
      assert.match(text, new RegExp(`(^| )--${k.name} `), `--${k.name} missing`);
      assert.ok(text.includes(`YAML key ${k.name}, environment ${envName(k.name)},`), `${k.name}: YAML key / environment line missing`);
      assert.ok(text.includes(k.help.replace(/\s+/g, ' ')), `${k.name}: help text missing`);
      const dflt = k.defaultText.replace(/^\((.*)\)$/, '$1');
      assert.ok(text.toLowerCase().includes(dflt.toLowerCase()), `${k.name}: default "${k.defaultText}" missing`);
      if (k.kind === 'enum') assert.ok(text.includes(`One of: ${k.values!.join(', ')}`), `${k.name}: values missing`);
      for (const old of k.legacy ?? []) assert.ok(text.includes(old), `${k.name}: legacy name ${old} missing`);
    }
  });

  it('describes the command-line-only options in the words of --help', () => {
    const text = flat(rendered.text);
    const options = buildCommand().options.filter((o) => (CLI_ONLY as readonly string[]).includes(o.long!.slice(2)));
    assert.equal(options.length, CLI_ONLY.length);
    for (const o of options) {
      assert.ok(text.includes(`${o.long}`), `${o.long} missing`);
      assert.ok(text.includes(o.description.replace(/\s+/g, ' ')), `${o.long}: --help's description missing`);
    }
  });

  it('names the exit codes and the files the packages install', () => {
    const text = flat(rendered.text);
    for (const s of ['/etc/default/vip-manager.yml', '/usr/share/vip-manager/prometheus/vip-manager.rules.yml',
      '/usr/share/vip-manager/grafana/vip-manager.json', ' 78 A configuration error', ' 0 Stopped by a signal', ' 1 A runtime failure']) {
      assert.ok(text.includes(s), `${s} missing`);
    }
  });

  it('defaults to the build\'s version and date', () => {
    assert.match(renderManPage(), /^\.TH VIP\\-MANAGER 1 "\d{4}\\-\d\d\\-\d\d" "vip\\-manager \d+\.\d+\.\d+/m);
  });
});
