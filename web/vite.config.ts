import react from "@vitejs/plugin-react";
import { VitePWA } from "vite-plugin-pwa";
import { defineConfig } from "vitest/config";

// `npm run dev` proxies the API and the rooms to a `hearth serve` on 127.0.0.1:8787.
const api = "http://127.0.0.1:8787";

// The app's own routes (App.tsx's parseRoute; the server's APP_ROUTES in
// crates/axum/src/app.rs): only these open the app from the service worker's cache.
const APP_ROUTES = [/^\/$/, /^\/h\/[^/]+\/?$/, /^\/join\/[^/]+\/[^/]+\/?$/];

export default defineConfig({
  plugins: [
    react(),
    // The service worker (Workbox, generated at build time): the app's files are
    // precached, so the app opens offline and can be installed; a new build replaces the
    // old worker at once (skipWaiting + clientsClaim) and drops its caches. The board's
    // data is not the worker's: it is the localStorage cache (src/cache.ts). The catalog
    // is read network-first, so a new order can be put together offline.
    VitePWA({
      registerType: "autoUpdate",
      injectRegister: false,
      includeAssets: ["icon.svg"],
      manifest: {
        name: "Hearth: your household's orders",
        short_name: "Hearth",
        description: "Order for your household together, live.",
        start_url: "/",
        scope: "/",
        display: "standalone",
        background_color: "#f6f4ef",
        theme_color: "#2f6f4f",
        icons: [{ src: "/icon.svg", sizes: "any", type: "image/svg+xml", purpose: "any" }],
      },
      workbox: {
        globPatterns: ["**/*.{js,css,html,svg,webmanifest}"],
        navigateFallback: "/index.html",
        navigateFallbackAllowlist: APP_ROUTES,
        skipWaiting: true,
        clientsClaim: true,
        cleanupOutdatedCaches: true,
        runtimeCaching: [
          {
            urlPattern: ({ url }) => url.pathname === "/catalog",
            handler: "NetworkFirst",
            options: { cacheName: "hearth-catalog", networkTimeoutSeconds: 3 },
          },
        ],
      },
    }),
  ],
  server: {
    proxy: {
      "/households": api,
      "/catalog": api,
      "/parties": { target: api, ws: true },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
  },
});
