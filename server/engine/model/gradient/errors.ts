/**
 * Raised when the input gradient of a model cannot be built: the message names every op type
 * without a rule (or with an unsupported configuration) and the first few nodes of each, so the
 * adversarial probe can fall back to black-box attacks and tell the user why.
 */
export interface UnsupportedOp {
  op: string;
  /** Node names (or first outputs) where it occurs. */
  nodes: string[];
  /** Why, when the op has a rule but not for this configuration. */
  reason?: string;
}

const SHOW = 3;

export class GradientUnsupportedError extends Error {
  /** The op types named (strings), for callers that only need the list. */
  readonly unsupported: string[];

  constructor(
    readonly file: string,
    readonly ops: UnsupportedOp[],
    /** A sentence of context put before the list (default: no gradient rule). */
    lead?: string,
  ) {
    const parts = ops.map((o) => {
      const more = o.nodes.length > SHOW ? ` and ${o.nodes.length - SHOW} more` : '';
      const where = o.nodes.length ? ` (node${o.nodes.length > 1 ? 's' : ''} ${o.nodes.slice(0, SHOW).map((n) => `'${n}'`).join(', ')}${more})` : '';
      return `${o.op}${o.reason ? `: ${o.reason}` : ''}${where}`;
    });
    const head = lead ?? `no gradient rule for ${ops.length === 1 ? 'op' : `${ops.length} ops`} on the path from the input to the class scores`;
    super(`${file}: ${head}: ${parts.join('; ')}`);
    this.name = 'GradientUnsupportedError';
    this.unsupported = [...new Set(ops.map((o) => o.op))];
  }
}

/** Collects unsupported ops by type. */
export class UnsupportedList {
  private readonly byOp = new Map<string, UnsupportedOp>();

  add(op: string, node: string, reason?: string): void {
    const key = reason ? `${op}\u0000${reason}` : op;
    let e = this.byOp.get(key);
    if (!e) this.byOp.set(key, (e = { op, nodes: [], reason }));
    if (!e.nodes.includes(node)) e.nodes.push(node);
  }

  get size(): number {
    return this.byOp.size;
  }

  list(): UnsupportedOp[] {
    return [...this.byOp.values()];
  }
}
