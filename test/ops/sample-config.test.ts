import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { KEYS, envName } from '../../src/config/schema.js';
import { SAMPLE_VALUES, renderSampleConfig } from '../../src/ops/sample-config.js';

// dist/test/ops → repository root
const SAMPLE = new URL('../../../packaging/vip-manager.yml', import.meta.url);

describe('sample configuration (packaging/vip-manager.yml)', () => {
  const text = readFileSync(SAMPLE, 'utf8');

  it('is exactly what the schema renders (regenerate: node scripts/package.mjs sample-config)', () => {
    assert.equal(text, renderSampleConfig());
  });

  it('documents every key of the schema with its help text, default and environment name', () => {
    for (const k of KEYS) {
      assert.match(text, new RegExp(`^#?${k.name}:`, 'm'), `${k.name} has no line`);
      assert.ok(text.includes(`Environment: ${envName(k.name)}.`), `${k.name}: environment name missing`);
      // Help text is wrapped; compare it with whitespace collapsed.
      const flat = text.replace(/\n# /g, ' ');
      assert.ok(flat.includes(k.help.replace(/\s+/g, ' ')), `${k.name}: help text missing`);
    }
  });

  it('sets only the example values, which parse back as themselves', () => {
    const parsed = parse(text) as Record<string, unknown>;
    assert.deepEqual(parsed, SAMPLE_VALUES);
  });

  it('uses documentation-range addresses only (RFC 5737)', () => {
    for (const m of text.matchAll(/\b(\d+\.\d+\.\d+\.\d+)\b/g)) {
      const ip = m[1]!;
      assert.ok(/^(192\.0\.2|198\.51\.100|203\.0\.113|127\.0\.0|169\.254\.169)\./.test(ip), `${ip} is not a documentation, loopback or metadata address`);
    }
  });

  it('shows secrets only as commented-out placeholders', () => {
    const parsed = parse(text) as Record<string, unknown>;
    for (const k of KEYS.filter((k) => k.secret)) assert.equal(parsed[k.name], undefined, `${k.name} is set`);
  });
});
