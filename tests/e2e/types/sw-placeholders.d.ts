// wasm/build.sh replaces this placeholder of wasm/www/sw.js with the list of
// files to cache (JSON) when it writes the dist.
declare const __ASSETS__: string[];
