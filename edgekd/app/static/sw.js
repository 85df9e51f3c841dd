// The service worker: every file of the app is cached on install (PRECACHE, written by edgekd app), so the app
// opens and classifies with no network after the first visit. The page adds the LiteRT.js wasm build it loads
// to the same cache (one of two builds, 9 MB each: caching both would double a phone's first download).
const CACHE = `edgekd-app-${VERSION}`;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(PRECACHE)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  // A newer app replaces the old cache; other apps' caches on the same origin are left alone.
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith('edgekd-app-') && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  // Reports go to the collector (another origin, POST): never cached, never answered from here.
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(caches.open(CACHE)
    .then((cache) => cache.match(request, { ignoreSearch: true }))
    .then((hit) => hit || fetch(request)));
});
