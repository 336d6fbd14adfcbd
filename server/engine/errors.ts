/**
 * Errors the engine raises for bad input. Each names the file (and row) it is about, so a
 * front end can show it where the data lives and the CLI can exit with status 2.
 */
export class SkepticInputError extends Error {
  constructor(
    message: string,
    /** The file the problem is in (absolute path), when there is one. */
    readonly file?: string,
    /** 1-based line (manifest row) in that file. */
    readonly line?: number,
  ) {
    super(message);
    this.name = 'SkepticInputError';
  }
}

/** Thrown when an audit is cancelled through its AbortSignal. */
export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError();
}
