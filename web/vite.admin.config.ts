import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The back office's app, built into dist-admin/ and served only by `coss admin serve
// --web-dir web/dist-admin`. During development, `npx vite --config vite.admin.config.ts`
// proxies its calls to a running operator program on 127.0.0.1:8090.
export default defineConfig({
  root: 'admin',
  plugins: [vue()],
  build: { outDir: '../dist-admin', emptyOutDir: true, assetsInlineLimit: 0 },
  server: { proxy: { '/api': 'http://127.0.0.1:8090' } },
})
