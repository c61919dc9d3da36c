#!/usr/bin/env bash
# Checks the real developer tools against zenmuxd: Claude Code on a model
# an openai-kind provider serves, and Codex on a model an anthropic-kind
# provider serves, each finishing a task that needs one tool call, with
# scripted fake upstreams on 127.0.0.1 (e2e/realtools_test.go).
#
# The CLIs are installed with npm, at pinned versions, into
# ZENMUX_TOOLS_CACHE (default ~/.cache/zenmux-tools), once. The recorded
# requests (as each CLI sent them, and as zenmuxd forwarded them) are
# written to ZENMUX_REALTOOLS_RECORD (default <cache>/last-run).
#
# ZENMUX_REALTOOLS_ROUTE=same puts each CLI on a provider of its own
# format instead (pass-through), the baseline when the cross pair fails.
# ZENMUX_REALTOOLS_CODEX_CONFIG is TOML added to Codex's config.toml, e.g.
# $'web_search = "disabled"\n[features]\nmulti_agent = false\n' to leave
# out tools Codex declares by default.
set -euo pipefail

claude_version=2.1.337
codex_version=0.171.0

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${ZENMUX_TOOLS_CACHE:-${HOME:?}/.cache/zenmux-tools}
record=${ZENMUX_REALTOOLS_RECORD:-$cache/last-run}
claude=$cache/node_modules/@anthropic-ai/claude-code/bin/claude.exe
codex=$cache/node_modules/@openai/codex/bin/codex.js

# installed PKG VERSION: the cache holds exactly that version.
installed() {
	local json=$cache/node_modules/$1/package.json
	[ -f "$json" ] && [ "$(node -p "require(process.argv[1]).version" "$json")" = "$2" ]
}

if ! installed @anthropic-ai/claude-code "$claude_version" || ! installed @openai/codex "$codex_version"; then
	echo "realtools: installing @anthropic-ai/claude-code@$claude_version and @openai/codex@$codex_version into $cache"
	mkdir -p "$cache"
	npm install --prefix "$cache" --save-exact --no-audit --no-fund --loglevel=error \
		"@anthropic-ai/claude-code@$claude_version" "@openai/codex@$codex_version"
fi
# Claude Code's launcher is its platform binary, put in place by its
# postinstall; run that by hand where npm skipped install scripts.
if ! "$claude" --version >/dev/null 2>&1; then
	(cd "$cache/node_modules/@anthropic-ai/claude-code" && node install.cjs)
fi
echo "realtools: $("$claude" --version), $(node "$codex" --version)"

rm -rf "$record"
mkdir -p "$record"
cd "$root"
status=0
ZENMUX_REALTOOLS=1 ZENMUX_CLAUDE_BIN=$claude ZENMUX_CODEX_BIN=$codex ZENMUX_REALTOOLS_RECORD=$record \
	go test -count=1 -timeout 15m -run '^TestRealTools$' -v ./e2e || status=$?
echo "realtools: requests recorded under $record"
exit "$status"
