/** The tool's version (package.json) and the engine's: bump ENGINE_VERSION whenever a probe's
 *  results change for the same inputs, so cached results from older engines are not reused. */
export const TOOL_VERSION = '0.1.0';
export const ENGINE_VERSION = '1';
