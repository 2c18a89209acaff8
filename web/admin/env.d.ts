// esbuild gathers imported stylesheets into app.css; for TypeScript they are side effects only.
declare module '*.css';
