/**
 * The quote-free fast path of the CSV reader gives exactly what csv-parse gives (values and the
 * line each row starts on) on the shapes manifests take: BOM, CRLF, lone CR, blank lines, rows of
 * commas, ragged rows, trailing newline or not, non-ASCII names, NUL bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { csvRows } from '../../server/engine/data/manifest';

const CASES: Record<string, string> = {
  plain: 'path,label\na.png,cat\nb.png,dog\n',
  'no trailing newline': 'path,label\na.png,cat\nb.png,dog',
  bom: '\ufeffpath,label\na.png,cat\n',
  crlf: 'path,label\r\na.png,cat\r\n\r\nb.png,dog\r\n',
  'lone CR': 'path,label\ra.png,cat\rb.png,dog\r',
  'blank lines and rows of commas': '\n\npath,label\n\n,\na.png,cat\n,,\n\nb.png,dog\n\n',
  ragged: 'path,label,x\na.png\nb.png,dog,1,2,3\n',
  'non-ASCII and spaces': 'path, label \nkatzen/ä ö.png, Katze \n猫.png,猫\n',
  'NUL bytes': 'path,label\na\0.png,cat\n',
  'only a header': 'path,label\n',
  'single column': 'path\na.png\nb.png\n',
};

for (const [name, text] of Object.entries(CASES)) {
  test(`csvRows fast path = csv-parse: ${name}`, () => {
    const buf = Buffer.from(text);
    assert.deepEqual(csvRows(buf), csvRows(buf, undefined, true));
  });
}

test('a file with a quote goes through csv-parse (quoted commas and newlines)', () => {
  const rows = csvRows(Buffer.from('path,label\n"a,b.png","multi\nline"\nc.png,d\n'));
  assert.deepEqual(rows.map((r) => [r.line, r.values]), [[1, ['path', 'label']], [2, ['a,b.png', 'multi\nline']], [4, ['c.png', 'd']]]);
});
