// The scanner app's service worker (served at /scan/sw.js, scope /scan):
// keeps the app shell so the page opens without a connection. The shell is
// network-first, so a deploy reaches the phones on their next load; the
// cache answers only when the network does not. The API is never cached: a
// verdict, a token or the gate's figures must come from the server.
"use strict";

const CACHE = "voelgoed-scanner-v1";
const SHELL = [
  "/scan",
  "/assets/scan.js",
  "/assets/scan.css",
  "/assets/vendor/jsQR.js",
  "/scan/manifest.webmanifest",
  "/scan/icon.svg",
];
// Past this, a slow network loses to the cached shell (a gate's signal).
const NETWORK_WAIT_MS = 4000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) =>
      // One file that fails to load must not keep the rest out.
      Promise.all(SHELL.map((path) => cache.add(new Request(path, { cache: "reload" })).catch(() => undefined)))
    ).then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("voelgoed-scanner-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") { return; }
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith("/api/")) { return; }
  if (SHELL.indexOf(url.pathname) === -1) { return; }
  event.respondWith(networkFirst(req, url.pathname));
});

async function networkFirst(req, key) {
  const cache = await caches.open(CACHE);
  const fromNetwork = fetch(req).then((res) => {
    if (res.ok && res.type === "basic") {
      cache.put(key, res.clone()).catch(() => undefined);
    }
    return res;
  });
  const cached = await cache.match(key);
  if (!cached) { return fromNetwork; }
  // Keep the network's answer when it comes in time; the cache otherwise.
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve(cached), NETWORK_WAIT_MS); });
  try {
    return await Promise.race([fromNetwork.then((res) => (res.ok ? res : cached)), late]);
  } catch (e) {
    return cached;
  } finally {
    clearTimeout(timer);
  }
}
