// The commented sample configuration (packaging/vip-manager.yml, installed as
// /etc/default/vip-manager.yml), generated from the schema so it cannot drift from it:
// test/ops/sample-config.test.ts fails when the checked-in file differs from this output.
// Regenerate with `node scripts/package.mjs sample-config` after `npm run build`.
import { stringify } from 'yaml';
import { KEYS, envName, type KeyDef } from '../config/schema.js';
import { VIPS_EXAMPLE_LIST } from '../config/vips.js';

/**
 * Keys set (uncommented) in the sample: the required ones, with documentation-range values
 * (RFC 5737) so the file passes `--check-config` as shipped yet cannot claim a real address.
 */
export const SAMPLE_VALUES: Readonly<Record<string, string | number>> = {
  ip: '198.51.100.10',
  netmask: 24,
  interface: 'eth0',
  'trigger-key': '/service/pgcluster/leader',
  'trigger-value': 'pgcluster_member_1',
};

const WRAP_COLUMNS = 92;

const HEADER = [
  'vip-manager configuration, read with --config (the systemd unit passes',
  '/etc/default/vip-manager.yml). Every key can also be given as a flag (--key=value) or as an',
  'environment variable (VIP_ + the key upper-cased, dashes as underscores); a flag beats the',
  'environment, which beats this file. Check a change with:',
  '  vip-manager --check-config --config /etc/default/vip-manager.yml',
  'The values set below are examples from the documentation address ranges: replace them.',
  'This file may hold secrets (etcd-password, consul-token, hcloud-token): keep it readable',
  'only by root and the vip-manager group (mode 0640).',
  'Several VIPs: list them under vips:, each entry with the keys marked "Per VIP" below; the',
  'top-level values are the defaults of every entry, and each entry needs its own ip:',
  ...VIPS_EXAMPLE_LIST.map((line) => `  ${line}`),
  'Generated from the configuration schema of vip-manager.',
];

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** The example text of the schema as the value it stands for. */
function exampleValue(k: KeyDef): unknown {
  switch (k.kind) {
    case 'integer':
      return Number(k.example);
    case 'boolean':
      return k.example === 'true';
    case 'list':
      return k.example.split(',');
    default:
      return k.example;
  }
}

/** The value shown for a commented-out key: its literal default (uncommenting changes nothing), else the example. */
function shownValue(k: KeyDef): unknown {
  const d = k.default;
  return d === undefined || typeof d === 'function' ? exampleValue(k) : d;
}

function yamlLines(key: string, value: unknown): string[] {
  return stringify({ [key]: value }, { lineWidth: 0 }).trimEnd().split('\n');
}

function keyBlock(k: KeyDef): string[] {
  const facts = [
    k.required === true ? 'Required.' : `Default: ${k.defaultText}.`,
    k.kind === 'enum' ? `One of: ${k.values!.join(', ')}.` : '',
    `Environment: ${envName(k.name)}.`,
    k.scope === 'vip' ? 'Per VIP.' : '',
    k.legacy?.length ? `Old names: ${k.legacy.join(', ')}.` : '',
  ].filter((s) => s !== '');
  const comment = [...wrap(k.help, WRAP_COLUMNS), ...wrap(facts.join(' '), WRAP_COLUMNS)].map((l) => `# ${l}`);
  const set = Object.hasOwn(SAMPLE_VALUES, k.name);
  const value = yamlLines(k.name, set ? SAMPLE_VALUES[k.name] : shownValue(k));
  return [...comment, ...(set ? value : value.map((l) => `#${l}`))];
}

export function renderSampleConfig(): string {
  const section = (title: string, origin: KeyDef['origin']) => [
    `# ---- ${title} ----`,
    '',
    ...KEYS.filter((k) => k.origin === origin).flatMap((k) => [...keyBlock(k), '']),
  ];
  return [
    ...HEADER.map((l) => `# ${l}`),
    '',
    ...section('Keys of the Go original (cybertec-postgresql/vip-manager)', 'upstream'),
    ...section('Keys added by this implementation', 'new'),
  ].join('\n').trimEnd() + '\n';
}
