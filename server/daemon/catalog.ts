/**
 * The engine's probe catalog (names, summaries, default parameters, rules) as the daemon uses it
 * for skeptic.json. Built in the worker process (worker.ts answers `describe` with it): the
 * probes' modules load sharp, which the daemon itself never loads.
 */
import { PROBES } from '../engine/probes';
import type { ProbeCatalog } from '../protocol';

export function describeProbes(): ProbeCatalog {
  return {
    probes: Object.entries(PROBES).map(([id, entry]) => {
      const probe = entry.factory({});
      // Parameters that only a variant takes (cue-conflict's style transfer) are known too, with
      // their defaults; the base parameters keep theirs.
      const params = Object.assign({}, ...(entry.variants ?? []).map((v) => entry.factory(v).params), probe.params);
      return { id, title: probe.title, summary: entry.summary, params, rules: probe.rules };
    }),
  };
}
