// Rewrites the configuration table in README.md from the schema (after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
import { renderReadmeTable } from '../dist/src/config/render.js';

const readme = readFileSync('README.md', 'utf8');
const next = readme.replace(/(<!-- config-table:start -->\n)[\s\S]*?(<!-- config-table:end -->)/, `$1${renderReadmeTable()}\n$2`);
if (next === readme && !readme.includes('<!-- config-table:start -->')) throw new Error('README.md has no config-table markers');
writeFileSync('README.md', next);
