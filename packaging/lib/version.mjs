// Package versions. Debian's own vip-manager is 1.0.2-6 and upstream's packages are 5.x; ours
// starts at 0.1.0, which apt and rpm would treat as a downgrade. An epoch of 1 makes every one
// of our versions sort above any version without an epoch (Debian policy 5.6.12; rpm compares
// Epoch first), so installing ours over either is an upgrade, and no later renumbering of ours
// is needed. Epochs never go down: keep it at 1 for good.
export const EPOCH = 1;
/** The packaging revision of one upstream version (Debian's "-1", rpm's Release). */
export const REVISION = '1';

/** A prerelease "1.0.0-rc.1" sorts before "1.0.0" only when written "1.0.0~rc.1", in both. */
const upstream = (v) => v.replace(/-/g, '~');

export function debVersion(pkgVersion) {
  return `${EPOCH}:${upstream(pkgVersion)}-${REVISION}`;
}

/** Debian's file name leaves the epoch out (vip-manager_0.1.0-1_amd64.deb). */
export function debFileName(name, pkgVersion, debArch) {
  return `${name}_${upstream(pkgVersion)}-${REVISION}_${debArch}.deb`;
}

export function rpmVersion(pkgVersion) {
  return { epoch: EPOCH, version: upstream(pkgVersion), release: REVISION };
}

export function rpmFileName(name, pkgVersion, rpmArch) {
  return `${name}-${upstream(pkgVersion)}-${REVISION}.${rpmArch}.rpm`;
}
