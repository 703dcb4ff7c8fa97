// The README's configuration table is generated from the schema; this fails when they drift.
// Regenerate with: npm run build && node scripts/readme-table.mjs
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { renderReadmeTable } from '../../src/config/render.js';

test('README configuration table matches the schema', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const m = /<!-- config-table:start -->\n([\s\S]*?)<!-- config-table:end -->/.exec(readme);
  assert.ok(m, 'README has the config-table markers');
  assert.equal(m[1]!.trim(), renderReadmeTable().trim(), 'README table differs from the schema: run `node scripts/readme-table.mjs`');
});
