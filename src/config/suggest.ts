// "Did you mean" for unknown keys. leven is the edit distance; a suggestion is offered only
// when it is close enough to be a plausible typo rather than a different word.
import leven from 'leven';

export function didYouMean(word: string, candidates: Iterable<string>): string {
  // No key is this long: a pasted blob is not a typo, and the edit distance would cost seconds.
  if (word.length > 64) return '';
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = leven(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  // A third of the word's length: "netmaks" → "netmask" (2 of 7), but not "foo" → "ip".
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? ` (did you mean ${best}?)` : '';
}
