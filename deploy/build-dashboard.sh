#!/usr/bin/env bash
# Build the dashboard's vendored JavaScript: install lightweight-charts and swagger-ui-dist
# from the npm registry (exact versions pinned by services/api/web/package-lock.json) and
# copy their bundles to services/api/web/static/vendor/, where `botfleet api` serves them
# (the chart library for the dashboard, Swagger UI for /schema: no CDN).
# Idempotent: does nothing when the bundle is already there and the lockfile unchanged.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
web="$root/services/api/web"
vendor="$web/static/vendor"
bundle="$vendor/lightweight-charts.standalone.production.js"
stamp="$vendor/.lock-sha"
want="$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)"
if [ -f "$bundle" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "build-dashboard: npm is missing (apt-get install npm)" >&2; exit 1; }
cd "$web"
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
mkdir -p "$vendor"
cp node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js "$bundle"
mkdir -p "$vendor/swagger-ui"
for f in swagger-ui-bundle.js swagger-ui-standalone-preset.js swagger-ui.css; do
  cp "node_modules/swagger-ui-dist/$f" "$vendor/swagger-ui/$f"
done
echo "$want" > "$stamp"
echo "build-dashboard: vendored lightweight-charts $(node -p "require('./node_modules/lightweight-charts/package.json').version" 2>/dev/null || echo '?')"
