// Instances of the template unit vip-manager@NAME. Two configurations meet there: ours, a YAML
// file /etc/default/vip-manager-NAME.yml, and Debian's, /etc/patroni/NAME.vip, an environment
// file written by pg_createconfig_patroni --vip that the unit loads (EnvironmentFile=) with the
// legacy VIP_* names. `--instance NAME` reads the YAML file when it exists; the .vip file's
// variables arrive as environment, so where both exist the .vip file's values win key by key,
// as the environment beats the file everywhere.
import { existsSync } from 'node:fs';
import { quote } from './show.js';

export interface InstancePaths {
  yaml: string;
  vip: string;
}

export function instancePaths(name: string): InstancePaths {
  return { yaml: `/etc/default/vip-manager-${name}.yml`, vip: `/etc/patroni/${name}.vip` };
}

/** The name must make a file name of one component: systemd's %i can hold almost anything. */
export function instanceNameProblem(name: string): string | undefined {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    return `--instance ${quote(name)}: expected a unit instance name such as 15-main (no "/", not "." or "..")`;
  }
  return undefined;
}

export interface InstanceFiles {
  /** The YAML file to read, when it exists. */
  configFile: string | undefined;
  problems: string[];
  warnings: string[];
}

export function resolveInstance(name: string, paths: InstancePaths = instancePaths(name)): InstanceFiles {
  const bad = instanceNameProblem(name);
  if (bad) return { configFile: undefined, problems: [bad], warnings: [] };
  const yaml = existsSync(paths.yaml);
  const vip = existsSync(paths.vip);
  if (!yaml && !vip) {
    return { configFile: undefined, problems: [`instance ${name}: neither ${paths.yaml} nor ${paths.vip} exists; create one of them`], warnings: [] };
  }
  const warnings = yaml && vip
    ? [`instance ${name}: both ${paths.yaml} and ${paths.vip} exist; the unit loads ${paths.vip} as environment, so its values override the YAML file's`]
    : [];
  return { configFile: yaml ? paths.yaml : undefined, problems: [], warnings };
}
