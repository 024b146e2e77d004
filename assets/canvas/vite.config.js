// Builds the canvas as one ES module for NiceGUI (library mode). `vue` stays an import: the
// page's import map points it at NiceGUI's Vue, so the canvas and NiceGUI share one Vue.
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

const outDir = fileURLToPath(new URL('../../studio/components/canvas_bundle', import.meta.url))

export default defineConfig({
  plugins: [vue()],
  define: {
    'process.env.NODE_ENV': JSON.stringify('production'),
    __VUE_OPTIONS_API__: 'true',
    __VUE_PROD_DEVTOOLS__: 'false',
  },
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    minify: process.env.FLOWLOOM_CANVAS_DEBUG ? false : 'terser',
    lib: {
      entry: fileURLToPath(new URL('src/index.js', import.meta.url)),
      formats: ['es'],
      fileName: () => 'index.js',
    },
    rollupOptions: {
      external: ['vue'],
      output: {
        chunkFileNames: '[name]-[hash].js',
      },
    },
  },
})
