// CSS imported from TypeScript is bundled by esbuild into dist/webviews/report.css.
declare module '*.css';
