// The page imports the npm module as `./pkg/index.js` (wasm/build.sh copies it
// there). tsconfig.json's rootDirs map wasm/www onto this folder, so the page
// scripts are checked against the module's declarations in the source tree.
export * from '../../../../wasm/js/index.js';
