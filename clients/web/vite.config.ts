// Build and dev-server settings of the web app.
//
// `base: './'` makes every asset URL relative, so the same dist/ works when palaverd serves it at
// `/` and when an ingress publishes Palaver below a prefix such as `/chat/`. The dev server
// proxies the API (REST and the WebSocket) to a palaverd pod, so the app talks to its own origin
// in development exactly as it does when palaverd serves it.
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

const target = process.env.PALAVER_URL ?? 'http://127.0.0.1:8081';

export default defineConfig({
  base: './',
  plugins: [preact()],
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2022',
    // Every browser the app supports has modulepreload; the polyfill would only add bytes.
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: {
      '/v1': { target, ws: true },
    },
  },
});
