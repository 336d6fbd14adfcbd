/**
 * The VS Code side without VS Code: the client type-checks against the `vscode` API, the
 * manifest's commands, menus and settings match what the client registers and the daemon
 * reads, and the skeptic.json schema accepts the README's example.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Ajv from 'ajv';
import { parse } from 'jsonc-parser';
import { DEFAULT_SETTINGS } from '../../server/daemon/job';
import { CLIENT_COMMANDS } from '../../server/protocol';
import { ROOT } from './helpers/lsp-client';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

test('the client type-checks against the vscode API (tsc -p client)', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', 'client'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('every contributed command is registered by the client, and every menu entry names one', () => {
  const source = ['extension.ts', 'audit.ts'].map((f) => readFileSync(join(ROOT, 'client', f), 'utf8')).join('\n');
  const registered = new Set([...source.matchAll(/command\('([\w.]+)'/g)].map((m) => m[1]));
  // Commands registered by their CLIENT_COMMANDS name (the daemon's code lenses invoke them).
  for (const m of source.matchAll(/command\(CLIENT_COMMANDS\.(\w+)/g)) registered.add(CLIENT_COMMANDS[m[1] as keyof typeof CLIENT_COMMANDS]);
  const contributed = pkg.contributes.commands.map((c: { command: string }) => c.command);
  assert.deepEqual([...registered].sort(), [...contributed].sort());
  for (const c of pkg.contributes.commands) assert.equal(c.category, 'Skeptic', c.command);
  for (const [menu, items] of Object.entries(pkg.contributes.menus) as Array<[string, Array<{ command: string; when?: string }>]>) {
    for (const item of items) assert.ok(contributed.includes(item.command), `${menu}: ${item.command}`);
  }
  const explorer = pkg.contributes.menus['explorer/context'];
  assert.match(explorer.find((m: { command: string }) => m.command === 'skeptic.auditModel').when, /resourceExtname == \.onnx/);
  assert.match(explorer.find((m: { command: string }) => m.command === 'skeptic.auditDataset').when, /explorerResourceIsFolder \|\| resourceExtname =~/);
});

test('the manifest: workspace extension, limited in untrusted workspaces, settings the daemon reads', () => {
  assert.equal(pkg.main, './dist/extension.js');
  assert.deepEqual(pkg.extensionKind, ['workspace']);
  assert.equal(pkg.capabilities.untrustedWorkspaces.supported, 'limited');
  assert.match(pkg.engines.vscode, /^\^1\.(9[1-9]|\d{3})/);
  const settings = Object.keys(pkg.contributes.configuration.properties).filter((k) => k !== 'skeptic.trace.server').map((k) => k.slice('skeptic.'.length));
  assert.deepEqual(settings.sort(), Object.keys(DEFAULT_SETTINGS).sort());
  for (const [k, v] of Object.entries(DEFAULT_SETTINGS)) {
    assert.deepEqual(pkg.contributes.configuration.properties[`skeptic.${k}`].default, v, `default of skeptic.${k}`);
  }
  assert.equal(pkg.contributes.jsonValidation[0].url, './schemas/skeptic.schema.json');
});

test("skeptic.schema.json accepts the README's skeptic.json and rejects a broken one", () => {
  const schema = JSON.parse(readFileSync(join(ROOT, 'schemas/skeptic.schema.json'), 'utf8'));
  const validate = new Ajv({ strict: false }).compile(schema);
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const example = /```jsonc\n(\{[\s\S]*?\n\})\n```/.exec(readme);
  assert.ok(example, 'the README shows a skeptic.json');
  assert.ok(validate(parse(example[1])), JSON.stringify(validate.errors));
  assert.equal(validate({ device: 'tpu', models: [{ dataset: 'x' }] }), false);
});
