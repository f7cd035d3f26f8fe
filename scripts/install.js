#!/usr/bin/env node
// npm "install" script. node-gyp-build keeps the prebuilt binary from
// prebuilds/ when it loads, and otherwise compiles the addon from source with
// node-gyp. Where that compile fails (no C++ toolchain, no headers offline),
// the install must still succeed: flowvae then runs on its pure-TypeScript
// reference backend and says why once at run time. Set
// FLOWVAE_REQUIRE_NATIVE=1 to make a failed build fail the install (CI).
'use strict';
const { spawnSync } = require('node:child_process');

const bin = require.resolve('node-gyp-build/bin.js');
const result = spawnSync(process.execPath, [bin], { stdio: 'inherit' });
const status = result.error ? 1 : (result.status ?? 1);

if (status !== 0) {
  const why = result.error ? result.error.message : result.signal ? `signal ${result.signal}` : `exit status ${status}`;
  if (process.env.FLOWVAE_REQUIRE_NATIVE === '1') {
    console.error(`flowvae: building the native addon failed (${why}) and FLOWVAE_REQUIRE_NATIVE=1`);
    process.exit(status || 1);
  }
  console.error(
    `flowvae: no prebuilt binary for ${process.platform}-${process.arch} loaded and building the native addon ` +
      `from source failed (${why}; it needs a C++17 compiler, make and python3).\n` +
      'flowvae will run on its pure-TypeScript "reference" backend (slower). ' +
      'To get the native "cpu" backend, install a toolchain and run "npm rebuild flowvae".',
  );
}
process.exit(0);
