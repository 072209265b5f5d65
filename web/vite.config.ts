// The storefront's build: one JS and one CSS file with content hashes in their names
// (the edge serves them with a year-long cache; index.html is never cached). The edge
// config matches exactly these names (tools/mesh/edge/web.py), so keep them in step.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // One module graph, no dynamic imports: a single app-<hash>.js and app-<hash>.css.
    modulePreload: false,
    cssCodeSplit: false,
    assetsInlineLimit: 0,
    rollupOptions: {
      output: {
        entryFileNames: "assets/app-[hash].js",
        assetFileNames: "assets/app-[hash][extname]",
      },
    },
  },
  server: {
    // `npm run dev` (port 5173, the CORS origin in topology.toml): API calls go to `make up`'s edge.
    proxy: { "/api": "http://127.0.0.1:8080", "/images": "http://127.0.0.1:8080" },
  },
});
