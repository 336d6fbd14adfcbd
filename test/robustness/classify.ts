/**
 * Sorts a corpus case's outcome into good or one of the bad classes the issue counts:
 * crash (a stack trace, an internal error, an exit status other than 0/1/2/130), hang (past the
 * time limit), outside-root (an item behind a link out of the dataset was read), unclear (a
 * refusal that does not name the file / key / flag, or more than one line), accepted (the wrong
 * outcome: ran when it should refuse, no finding where one was due, refused something fine).
 */
import type { Case } from './corpus';

export type Verdict = 'good' | 'crash' | 'hang' | 'outside-root' | 'network' | 'unclear' | 'accepted';

export interface Outcome {
  code?: number;
  thrown?: string;
  stdout: string;
  stderr: string;
  ms: number;
  hang?: boolean;
  report?: {
    evaluated: number;
    findings: Array<{ rule: string; message: string; image?: number }>;
    images: Array<{ id: string; sha256?: string }>;
  };
}

/** A JavaScript stack frame: "    at fn (file:line:col)" or "    at file:line:col". */
const STACK = /^[ \t]+at (.+ \(.*:\d+:\d+\)|\S+:\d+:\d+)$/m;

export function classify(c: Case, o: Outcome): { verdict: Verdict; why?: string } {
  if (o.hang) return { verdict: 'hang', why: `no answer within the limit` };
  if (o.thrown) return { verdict: 'crash', why: o.thrown.split('\n').slice(0, 3).join(' | ') };
  if (STACK.test(o.stderr) || STACK.test(o.stdout)) return { verdict: 'crash', why: `stack trace: ${o.stderr.slice(0, 300)}` };
  if (/^skeptic: internal error/m.test(o.stderr)) return { verdict: 'crash', why: o.stderr.split('\n')[0] };
  if (![0, 1, 2, 130].includes(o.code ?? -1)) return { verdict: 'crash', why: `exit status ${o.code}` };
  // Items behind a link out of the root must not be read (a read item has a hash in the report).
  for (const id of c.unread ?? []) {
    const im = o.report?.images.find((x) => x.id === id);
    if (im?.sha256) return { verdict: 'outside-root', why: `${id} was read (sha256 ${im.sha256.slice(0, 12)})` };
  }
  const first = o.stderr.split('\n').find((l) => l.trim()) ?? '';
  switch (c.expect) {
    case 'refuse': {
      if (o.code !== 2) return { verdict: 'accepted', why: `exit ${o.code}, expected a refusal (2); stderr: ${first}` };
      if (!first.startsWith('skeptic: ')) return { verdict: 'unclear', why: `first line: ${first}` };
      // one line (a usage error adds the usage text after it)
      const lines = o.stderr.split('\n').filter((l) => l.trim());
      if (lines.length > 1 && !o.stderr.includes('\nUsage:')) return { verdict: 'unclear', why: `${lines.length} lines: ${lines.slice(0, 3).join(' | ')}` };
      const missing = (c.says ?? []).filter((s) => !first.includes(s));
      if (missing.length) return { verdict: 'unclear', why: `"${first}" does not say ${missing.map((m) => JSON.stringify(m)).join(', ')}` };
      return { verdict: 'good' };
    }
    case 'item':
    case 'model': {
      if (o.code !== 0 && o.code !== 1) return { verdict: 'accepted', why: `exit ${o.code}, expected the audit to run; stderr: ${first}` };
      if (!o.report) return { verdict: 'accepted', why: 'no report.json' };
      const rules = c.rules ?? [];
      const hits = o.report.findings.filter((f) => rules.includes(f.rule) && (c.expect === 'model' ? f.image === undefined : f.image !== undefined));
      const said = hits.filter((f) => (c.says ?? []).every((s) => f.message.includes(s)));
      if (!hits.length) return { verdict: 'accepted', why: `no ${rules.join('/')} finding on the ${c.expect === 'model' ? 'model' : 'item'}` };
      if (!said.length) return { verdict: 'unclear', why: `finding "${hits[0].message}" does not say ${(c.says ?? []).join(', ')}` };
      return { verdict: 'good' };
    }
    case 'ok': {
      if (o.code !== 0) return { verdict: 'accepted', why: `exit ${o.code}, expected 0; stderr: ${first}` };
      const missing = (c.says ?? []).filter((s) => !o.stderr.includes(s) && !o.stdout.includes(s));
      if (missing.length) return { verdict: 'unclear', why: `the output does not say ${missing.join(', ')}` };
      return { verdict: 'good' };
    }
  }
}
